//! UTC calendar arithmetic for blob paths and blind-index months (no time-zone database needed:
//! everything the vault stores is UTC).

const MS_PER_DAY: i64 = 86_400_000;

/// (year, month 1–12, day 1–31) of a unix-millisecond instant, in UTC.
pub fn civil_date(unix_ms: i64) -> (i64, u32, u32) {
    // Howard Hinnant's days-to-civil algorithm (public domain), proleptic Gregorian.
    let days = unix_ms.div_euclid(MS_PER_DAY) + 719_468;
    let era = days.div_euclid(146_097);
    let day_of_era = days.rem_euclid(146_097);
    let year_of_era = (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = (day_of_year - (153 * month_index + 2) / 5 + 1) as u32;
    let month = if month_index < 10 { month_index + 3 } else { month_index - 9 } as u32;
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// `YYYY-MM` of an instant, in UTC.
pub fn month_label(unix_ms: i64) -> String {
    let (year, month, _) = civil_date(unix_ms);
    format!("{year:04}-{month:02}")
}

/// `YYYY-MM-DD` of an instant, in UTC.
pub fn date_label(unix_ms: i64) -> String {
    let (year, month, day) = civil_date(unix_ms);
    format!("{year:04}-{month:02}-{day:02}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_dates() {
        assert_eq!(date_label(0), "1970-01-01");
        assert_eq!(date_label(-1), "1969-12-31");
        // 2019-05-31T00:00:00Z, the day CBP learned of the breach.
        assert_eq!(date_label(1_559_260_800_000), "2019-05-31");
        // 2024-02-29T23:59:59.999Z, a leap day.
        assert_eq!(date_label(1_709_251_199_999), "2024-02-29");
        assert_eq!(date_label(1_709_251_200_000), "2024-03-01");
        assert_eq!(month_label(1_767_225_599_999), "2025-12");
    }

    #[test]
    fn every_day_for_sixty_years_advances_by_one() {
        let mut previous = civil_date(0);
        for day in 1..(60 * 366) {
            let current = civil_date(day * MS_PER_DAY);
            let next_expected_same_month = (previous.0, previous.1, previous.2 + 1);
            assert!(
                current == next_expected_same_month || (current.2 == 1 && (current.1 == previous.1 % 12 + 1)),
                "{previous:?} -> {current:?}"
            );
            previous = current;
        }
    }
}
