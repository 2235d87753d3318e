//! Lenient serde building blocks: engines disagree on whether a number is an int, a float or a
//! string, whether an id is a number or a string, and they add fields over time. Optional
//! scalars that have the wrong type become `None` instead of failing the whole payload.

use std::borrow::Cow;
use std::fmt;
use std::marker::PhantomData;

use serde::Deserialize;
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

/// A number sent as an int, a float or a numeric string; anything else (null, bool, text, an
/// object) reads as `None`.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub(crate) struct Num(pub Option<f64>);

impl Num {
    pub(crate) fn get(self) -> Option<f64> {
        self.0.filter(|v| v.is_finite())
    }
}

impl<'de> Deserialize<'de> for Num {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Num;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_i64<E>(self, v: i64) -> Result<Num, E> {
                Ok(Num(Some(v as f64)))
            }
            fn visit_u64<E>(self, v: u64) -> Result<Num, E> {
                Ok(Num(Some(v as f64)))
            }
            fn visit_f64<E>(self, v: f64) -> Result<Num, E> {
                Ok(Num(Some(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Num, E> {
                Ok(Num(v.trim().parse::<f64>().ok()))
            }
            fn visit_bool<E>(self, v: bool) -> Result<Num, E> {
                Ok(Num(Some(if v { 1.0 } else { 0.0 })))
            }
            fn visit_unit<E>(self) -> Result<Num, E> {
                Ok(Num(None))
            }
            fn visit_none<E>(self) -> Result<Num, E> {
                Ok(Num(None))
            }
            fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Num, D::Error> {
                Num::deserialize(d)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut a: A) -> Result<Num, A::Error> {
                while a.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Num(None))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> Result<Num, A::Error> {
                while a.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(Num(None))
            }
        }
        d.deserialize_any(V)
    }
}

/// A string or a number rendered as a string (camera ids are ints in OpenALPR, strings in Plate
/// Recognizer). Borrowed from the input when it has no escapes. Anything else reads as `None`.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct Text<'a>(pub Option<Cow<'a, str>>);

impl<'a> Text<'a> {
    pub(crate) fn as_deref(&self) -> Option<&str> {
        self.0.as_deref()
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Text<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for V<'a> {
            type Value = Text<'a>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Text<'a>, E> {
                Ok(Text(Some(Cow::Borrowed(v))))
            }
            fn visit_str<E>(self, v: &str) -> Result<Text<'a>, E> {
                Ok(Text(Some(Cow::Owned(v.to_owned()))))
            }
            fn visit_string<E>(self, v: String) -> Result<Text<'a>, E> {
                Ok(Text(Some(Cow::Owned(v))))
            }
            fn visit_i64<E>(self, v: i64) -> Result<Text<'a>, E> {
                Ok(Text(Some(Cow::Owned(v.to_string()))))
            }
            fn visit_u64<E>(self, v: u64) -> Result<Text<'a>, E> {
                Ok(Text(Some(Cow::Owned(v.to_string()))))
            }
            fn visit_f64<E>(self, v: f64) -> Result<Text<'a>, E> {
                // Integral floats (1234.0) are ids written by a float-only JSON library.
                if v.fract() == 0.0 && v.abs() < 1e15 {
                    Ok(Text(Some(Cow::Owned((v as i64).to_string()))))
                } else {
                    Ok(Text(Some(Cow::Owned(v.to_string()))))
                }
            }
            fn visit_bool<E>(self, _: bool) -> Result<Text<'a>, E> {
                Ok(Text(None))
            }
            fn visit_unit<E>(self) -> Result<Text<'a>, E> {
                Ok(Text(None))
            }
            fn visit_none<E>(self) -> Result<Text<'a>, E> {
                Ok(Text(None))
            }
            fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Text<'a>, D::Error> {
                Text::deserialize(d)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut a: A) -> Result<Text<'a>, A::Error> {
                while a.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Text(None))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> Result<Text<'a>, A::Error> {
                while a.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(Text(None))
            }
        }
        d.deserialize_any(V(PhantomData))
    }
}

/// An array that keeps at most `N` elements and counts the rest, so a hostile payload with a
/// million entries costs no memory. Not an array (null, a scalar, an object) reads as empty.
/// Elements that fail to deserialize as `T` are skipped, not fatal.
#[derive(Clone, Debug)]
pub(crate) struct Capped<T, const N: usize> {
    pub items: Vec<T>,
    /// How many elements the array really had.
    pub total: usize,
}

impl<T, const N: usize> Default for Capped<T, N> {
    fn default() -> Self {
        Capped { items: Vec::new(), total: 0 }
    }
}

impl<'de, T: Deserialize<'de>, const N: usize> Deserialize<'de> for Capped<T, N> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<T, const N: usize>(PhantomData<T>);
        impl<'de, T: Deserialize<'de>, const N: usize> Visitor<'de> for V<T, N> {
            type Value = Capped<T, N>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an array")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut a: A) -> Result<Self::Value, A::Error> {
                let mut out = Capped::default();
                loop {
                    if out.items.len() < N {
                        match a.next_element::<Skippable<T>>()? {
                            None => break,
                            Some(Skippable(item)) => {
                                out.total += 1;
                                out.items.extend(item);
                            }
                        }
                    } else {
                        match a.next_element::<IgnoredAny>()? {
                            None => break,
                            Some(_) => out.total += 1,
                        }
                    }
                }
                Ok(out)
            }
            fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> Result<Self::Value, A::Error> {
                while a.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(Capped::default())
            }
            fn visit_unit<E>(self) -> Result<Self::Value, E> {
                Ok(Capped::default())
            }
            fn visit_none<E>(self) -> Result<Self::Value, E> {
                Ok(Capped::default())
            }
            fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
                Capped::deserialize(d)
            }
            fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
                Ok(Capped::default())
            }
            fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
                Ok(Capped::default())
            }
            fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
                Ok(Capped::default())
            }
            fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
                Ok(Capped::default())
            }
            fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> {
                Ok(Capped::default())
            }
        }
        d.deserialize_any(V::<T, N>(PhantomData))
    }
}

/// An object of the expected shape, or `None` when the value is of another JSON type. Only for
/// object-typed `T` (structs deserialize through `deserialize_map`), so a wrong type is detected
/// by buffering nothing: a non-object is consumed and dropped.
#[derive(Clone, Debug, Default)]
pub(crate) struct Skippable<T>(pub Option<T>);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Skippable<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<T>(PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for V<T> {
            type Value = Skippable<T>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<A: MapAccess<'de>>(self, a: A) -> Result<Self::Value, A::Error> {
                T::deserialize(de::value::MapAccessDeserializer::new(a)).map(|t| Skippable(Some(t)))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut a: A) -> Result<Self::Value, A::Error> {
                while a.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Skippable(None))
            }
            fn visit_unit<E>(self) -> Result<Self::Value, E> {
                Ok(Skippable(None))
            }
            fn visit_none<E>(self) -> Result<Self::Value, E> {
                Ok(Skippable(None))
            }
            fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
                Skippable::deserialize(d)
            }
            fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
                Ok(Skippable(None))
            }
            fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
                Ok(Skippable(None))
            }
            fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
                Ok(Skippable(None))
            }
            fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
                Ok(Skippable(None))
            }
            fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> {
                Ok(Skippable(None))
            }
        }
        d.deserialize_any(V::<T>(PhantomData))
    }
}

/// `[{"name": "white", "confidence": 99.1}, …]`, the Rekor/OpenALPR vehicle attribute lists.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct NamedScore<'a> {
    #[serde(borrow, default)]
    pub name: Text<'a>,
    #[serde(default)]
    pub confidence: Num,
}

/// The name with the highest confidence, ignoring entries without a name.
pub(crate) fn best_name(list: &Capped<NamedScore<'_>, 64>) -> Option<String> {
    list.items
        .iter()
        .filter_map(|e| e.name.as_deref().map(|n| (n, e.confidence.get().unwrap_or(f64::MIN))))
        .filter(|(n, _)| !n.is_empty())
        .fold(None::<(&str, f64)>, |best, (n, c)| match best {
            Some((_, bc)) if bc >= c => best,
            _ => Some((n, c)),
        })
        .map(|(n, _)| bounded_label(n))
}

/// Vehicle labels ("white", "bmw_x3", "suv-crossover") are short vocabulary words; anything
/// longer than this is cut so a hostile engine cannot smuggle a blob through a label.
pub(crate) const MAX_LABEL_LEN: usize = 64;

pub(crate) fn bounded_label(s: &str) -> String {
    s.chars().filter(|c| !c.is_control()).take(MAX_LABEL_LEN).collect()
}

/// Parses the timestamps engines send into milliseconds since the Unix epoch:
/// `2019-10-30T08:35:24.797446Z`, `2021-03-05 10:11:12.123456`, `2021-09-29 05:56:13.606935+00:00`,
/// `…+0530`, `…-07`. A time with no offset is taken as UTC: Plate Recognizer documents `timestamp`
/// as UTC and sends the local time separately as `timestamp_local`, with an offset.
/// Returns `None` for anything else.
pub(crate) fn parse_timestamp_ms(s: &str) -> Option<i64> {
    let b = s.trim().as_bytes();
    let digits = |r: std::ops::Range<usize>| -> Option<u32> {
        let part = b.get(r)?;
        if part.is_empty() || !part.iter().all(u8::is_ascii_digit) {
            return None;
        }
        part.iter().try_fold(0u32, |acc, d| acc.checked_mul(10)?.checked_add(u32::from(d - b'0')))
    };
    if b.len() < 19 || b[4] != b'-' || b[7] != b'-' || !(b[10] == b'T' || b[10] == b' ' || b[10] == b't') {
        return None;
    }
    if b[13] != b':' || b[16] != b':' {
        return None;
    }
    let year = i32::try_from(digits(0..4)?).ok()?;
    let month = u8::try_from(digits(5..7)?).ok()?;
    let day = u8::try_from(digits(8..10)?).ok()?;
    let hour = u8::try_from(digits(11..13)?).ok()?;
    let minute = u8::try_from(digits(14..16)?).ok()?;
    let second = u8::try_from(digits(17..19)?).ok()?;
    let mut i = 19;
    let mut millis = 0u32;
    if b.get(i) == Some(&b'.') || b.get(i) == Some(&b',') {
        i += 1;
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        if i == start {
            return None;
        }
        // Milliseconds from the first three fraction digits; the rest (micro, nano) truncated.
        let frac = &b[start..i.min(start + 3)];
        millis = frac.iter().fold(0, |acc, d| acc * 10 + u32::from(d - b'0'));
        for _ in frac.len()..3 {
            millis *= 10;
        }
    }
    let offset_s: i64 = match b.get(i) {
        None => 0,
        Some(b'Z' | b'z') if i + 1 == b.len() => 0,
        Some(&sign @ (b'+' | b'-')) => {
            let rest = &b[i + 1..];
            let (h, m) = match rest.len() {
                2 => (digits(i + 1..i + 3)?, 0),
                4 => (digits(i + 1..i + 3)?, digits(i + 3..i + 5)?),
                5 if rest[2] == b':' => (digits(i + 1..i + 3)?, digits(i + 4..i + 6)?),
                _ => return None,
            };
            if h > 23 || m > 59 {
                return None;
            }
            let v = i64::from(h * 3600 + m * 60);
            if sign == b'-' { -v } else { v }
        }
        _ => return None,
    };
    let month = time::Month::try_from(month).ok()?;
    let date = time::Date::from_calendar_date(year, month, day).ok()?;
    let t = time::Time::from_hms(hour, minute, second).ok()?;
    let secs = time::PrimitiveDateTime::new(date, t).assume_utc().unix_timestamp() - offset_s;
    secs.checked_mul(1000)?.checked_add(i64::from(millis))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_in_every_form_engines_send() {
        // 2019-10-30T08:35:24Z = 1572424524 (date -u -d ... +%s)
        assert_eq!(parse_timestamp_ms("2019-10-30T08:35:24.797446Z"), Some(1_572_424_524_797));
        assert_eq!(parse_timestamp_ms("2021-03-05 10:11:12.123456"), Some(1_614_939_072_123));
        assert_eq!(parse_timestamp_ms("2021-03-05 10:11:12.123456+00:00"), Some(1_614_939_072_123));
        assert_eq!(parse_timestamp_ms("2021-03-05 15:41:12.123+05:30"), Some(1_614_939_072_123));
        assert_eq!(parse_timestamp_ms("2021-03-05T02:11:12-0800"), Some(1_614_939_072_000));
        assert_eq!(parse_timestamp_ms("2021-03-05T10:11:12.5Z"), Some(1_614_939_072_500));
        assert_eq!(parse_timestamp_ms("2021-03-05T10:11:12"), Some(1_614_939_072_000));
        for bad in [
            "",
            "yesterday",
            "2021-02-30 00:00:00",
            "2021-03-05T10:11:12Zjunk",
            "2021-03-05T10:11:12.",
            "2021-03-05T25:00:00",
        ] {
            assert_eq!(parse_timestamp_ms(bad), None, "{bad}");
        }
    }
}
