//! Calendar arithmetic for the timestamps the engines and cameras print. Proleptic Gregorian,
//! after Howard Hinnant's `civil_from_days`; no time-zone database (the site's offset is a
//! fixed number of minutes).

/// A broken-down time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Civil {
    pub(crate) year: i64,
    pub(crate) month: u32,
    pub(crate) day: u32,
    pub(crate) hour: u32,
    pub(crate) minute: u32,
    pub(crate) second: u32,
    pub(crate) milli: u32,
    /// 0 = Monday … 6 = Sunday.
    pub(crate) weekday: u32,
}

const MS_PER_DAY: i64 = 86_400_000;

/// Breaks `ms` (milliseconds since 1970-01-01T00:00:00, in whatever zone the caller shifted it
/// to) into calendar fields.
pub(crate) fn civil(ms: i64) -> Civil {
    let days = ms.div_euclid(MS_PER_DAY);
    let rem = ms.rem_euclid(MS_PER_DAY);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    Civil {
        year,
        month,
        day,
        hour: (rem / 3_600_000) as u32,
        minute: (rem / 60_000 % 60) as u32,
        second: (rem / 1000 % 60) as u32,
        milli: (rem % 1000) as u32,
        // 1970-01-01 was a Thursday.
        weekday: (days + 3).rem_euclid(7) as u32,
    }
}

impl Civil {
    /// `YYYY:MM:DD HH:MM:SS`, the EXIF DateTime form.
    pub(crate) fn exif(&self) -> String {
        format!(
            "{:04}:{:02}:{:02} {:02}:{:02}:{:02}",
            self.year, self.month, self.day, self.hour, self.minute, self.second
        )
    }

    /// `YYYY-MM-DDTHH:MM:SS.ffffffZ` (microseconds, as Plate Recognizer prints them).
    pub(crate) fn iso_utc_micros(&self) -> String {
        format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}000Z",
            self.year, self.month, self.day, self.hour, self.minute, self.second, self.milli
        )
    }

    /// `YYYY-MM-DD HH:MM:SS.ffffff±HH:MM` for a time already shifted by `offset_min`.
    pub(crate) fn local_micros(&self, offset_min: i32) -> String {
        let sign = if offset_min < 0 { '-' } else { '+' };
        let off = offset_min.unsigned_abs();
        format!(
            "{:04}-{:02}-{:02} {:02}:{:02}:{:02}.{:03}000{}{:02}:{:02}",
            self.year,
            self.month,
            self.day,
            self.hour,
            self.minute,
            self.second,
            self.milli,
            sign,
            off / 60,
            off % 60
        )
    }

    /// `YYYY-MM-DD HH:MM:SS`, a camera's burnt-in caption.
    pub(crate) fn caption(&self) -> String {
        format!(
            "{:04}-{:02}-{:02} {:02}:{:02}:{:02}",
            self.year, self.month, self.day, self.hour, self.minute, self.second
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Expected values computed independently with Python's datetime:
    //   datetime.fromtimestamp(ms / 1000, timezone.utc)
    #[test]
    fn matches_python_datetime() {
        type Fields = (i64, u32, u32, u32, u32, u32, u32, u32);
        let cases: [(i64, Fields); 5] = [
            (0, (1970, 1, 1, 0, 0, 0, 0, 3)),
            (951_782_400_000, (2000, 2, 29, 0, 0, 0, 0, 1)),
            (1_558_000_000_123, (2019, 5, 16, 9, 46, 40, 123, 3)),
            (4_102_444_799_999, (2099, 12, 31, 23, 59, 59, 999, 3)),
            (-1, (1969, 12, 31, 23, 59, 59, 999, 2)),
        ];
        for (ms, (y, mo, d, h, mi, s, milli, wd)) in cases {
            let c = civil(ms);
            assert_eq!(
                (c.year, c.month, c.day, c.hour, c.minute, c.second, c.milli, c.weekday),
                (y, mo, d, h, mi, s, milli, wd),
                "{ms}"
            );
        }
        assert_eq!(civil(1_558_000_000_123).exif(), "2019:05:16 09:46:40");
        assert_eq!(civil(1_558_000_000_123).iso_utc_micros(), "2019-05-16T09:46:40.123000Z");
    }
}
