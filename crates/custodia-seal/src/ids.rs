//! Identifiers and names that appear in the sealed-capture header and in epoch sets.
//!
//! Each is a newtype that can only hold a valid value: parsing from the wire or from text is the
//! only way in.

use std::fmt;
use std::str::FromStr;

use rand_core::{CryptoRng, RngCore};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::KeyError;

/// Longest site or lane name, in bytes. Names are identifiers (`"anzalduas"`, `"lane-07"`), not
/// prose; 64 bytes fits any real port or lane code and keeps the header bounded.
pub const MAX_NAME_LEN: usize = 64;

fn parse_hex_16(s: &str) -> Result<[u8; 16], KeyError> {
    // Lowercase only, so that `to_string()` of a parsed value gives back the input exactly.
    if s.len() != 32 || !s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
        return Err(KeyError::BadHex);
    }
    let mut out = [0u8; 16];
    hex::decode_to_slice(s, &mut out).map_err(|_| KeyError::BadHex)?;
    Ok(out)
}

macro_rules! id16 {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(pub [u8; 16]);

        impl $name {
            /// The 16 raw bytes.
            pub fn as_bytes(&self) -> &[u8; 16] {
                &self.0
            }

            /// A fresh random identifier.
            pub fn random(rng: &mut (impl RngCore + CryptoRng)) -> Self {
                let mut b = [0u8; 16];
                rng.fill_bytes(&mut b);
                Self(b)
            }
        }

        impl fmt::Display for $name {
            /// 32 lowercase hex digits.
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&hex::encode(self.0))
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!(stringify!($name), "({})"), self)
            }
        }

        impl FromStr for $name {
            type Err = KeyError;
            /// Exactly 32 lowercase hex digits.
            fn from_str(s: &str) -> Result<Self, KeyError> {
                parse_hex_16(s).map(Self)
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.to_string())
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
                s.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}

id16!(
    /// A lane device's identifier, assigned at enrolment. Text form: 32 lowercase hex digits.
    DeviceId
);
id16!(
    /// A key epoch's identifier. Opaque to the sealed-capture format; the vault derives it with
    /// [`EpochId::derive`](crate::epochs) from the epoch's announcement. Text form: 32 lowercase
    /// hex digits.
    EpochId
);

/// The retention class of a group of parts. Each class has its own key epochs and so its own
/// lifetime: destroying a class's epoch key deletes that class's parts everywhere.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(u8)]
pub enum RetentionClass {
    /// Occupant faces (shortest-lived; hourly epochs by default). Wire value 1.
    Face = 1,
    /// Licence-plate crops and reads. Wire value 2.
    Plate = 2,
    /// Whole-vehicle overview images. Wire value 3.
    Overview = 3,
}

impl RetentionClass {
    /// All classes, in wire-value order.
    pub const ALL: [RetentionClass; 3] = [Self::Face, Self::Plate, Self::Overview];

    /// The text name: `"face"`, `"plate"` or `"overview"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Face => "face",
            Self::Plate => "plate",
            Self::Overview => "overview",
        }
    }

    /// The wire value (1, 2 or 3).
    pub fn as_u8(self) -> u8 {
        self as u8
    }

    /// The class for a wire value, or `None` for any other byte.
    pub fn from_u8(v: u8) -> Option<Self> {
        match v {
            1 => Some(Self::Face),
            2 => Some(Self::Plate),
            3 => Some(Self::Overview),
            _ => None,
        }
    }
}

impl fmt::Display for RetentionClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for RetentionClass {
    type Err = KeyError;
    fn from_str(s: &str) -> Result<Self, KeyError> {
        match s {
            "face" => Ok(Self::Face),
            "plate" => Ok(Self::Plate),
            "overview" => Ok(Self::Overview),
            _ => Err(KeyError::UnknownClass),
        }
    }
}

impl Serialize for RetentionClass {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for RetentionClass {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// What a part holds. Only [`PartKind::Metadata`] is ever opened at ingest.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(u8)]
pub enum PartKind {
    /// The read metadata (plate read, candidates, PDQ hashes). Wire value 0. At most one per
    /// capture.
    Metadata = 0,
    /// A JPEG image. Wire value 1.
    Jpeg = 1,
    /// A PNG image. Wire value 2.
    Png = 2,
}

impl PartKind {
    /// The wire value.
    pub fn as_u8(self) -> u8 {
        self as u8
    }

    /// The kind for a wire value, or `None` for any other byte.
    pub fn from_u8(v: u8) -> Option<Self> {
        match v {
            0 => Some(Self::Metadata),
            1 => Some(Self::Jpeg),
            2 => Some(Self::Png),
            _ => None,
        }
    }
}

fn valid_name(s: &str) -> bool {
    (1..=MAX_NAME_LEN).contains(&s.len())
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

macro_rules! name {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(String);

        impl $name {
            /// Checks the name: 1 to 64 bytes of ASCII `[A-Za-z0-9._-]`.
            pub fn new(s: impl Into<String>) -> Result<Self, KeyError> {
                let s = s.into();
                if valid_name(&s) { Ok(Self(s)) } else { Err(KeyError::BadName) }
            }

            /// The name (1..=64 ASCII bytes).
            pub fn as_str(&self) -> &str {
                &self.0
            }

            pub(crate) fn from_wire(b: &[u8]) -> Option<Self> {
                let s = std::str::from_utf8(b).ok()?;
                valid_name(s).then(|| Self(s.to_owned()))
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Debug::fmt(&self.0, f)
            }
        }

        impl FromStr for $name {
            type Err = KeyError;
            fn from_str(s: &str) -> Result<Self, KeyError> {
                Self::new(s)
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.0)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                Self::new(s).map_err(serde::de::Error::custom)
            }
        }
    };
}

name!(
    /// A site (port of entry) name: 1 to 64 bytes of ASCII `[A-Za-z0-9._-]`.
    SiteName
);
name!(
    /// A lane name within a site: 1 to 64 bytes of ASCII `[A-Za-z0-9._-]`.
    LaneName
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn id_text_round_trip_and_strictness() {
        let id = DeviceId([0xab; 16]);
        assert_eq!(id.to_string(), "ab".repeat(16));
        assert_eq!(id.to_string().parse::<DeviceId>().unwrap(), id);
        assert!("AB".repeat(16).parse::<DeviceId>().is_err());
        assert!("ab".repeat(15).parse::<EpochId>().is_err());
        assert!(format!("{}zz", "ab".repeat(15)).parse::<EpochId>().is_err());
    }

    #[test]
    fn names() {
        assert!(SiteName::new("anzalduas").is_ok());
        assert!(LaneName::new("lane-07_b.x").is_ok());
        assert!(SiteName::new("").is_err());
        assert!(SiteName::new("a".repeat(65)).is_err());
        assert!(SiteName::new("a".repeat(64)).is_ok());
        assert!(LaneName::new("lane 7").is_err());
        assert!(LaneName::new("lané").is_err());
    }

    #[test]
    fn classes() {
        for c in RetentionClass::ALL {
            assert_eq!(c.as_str().parse::<RetentionClass>().unwrap(), c);
            assert_eq!(RetentionClass::from_u8(c.as_u8()), Some(c));
        }
        assert_eq!(RetentionClass::from_u8(0), None);
        assert_eq!(RetentionClass::from_u8(4), None);
        assert_eq!(PartKind::from_u8(3), None);
    }
}
