//! The read-metadata part (part kind `Metadata`), version 1: what the lane knew about a capture.
//!
//! It is the only part the vault opens at ingest. It carries the normalised plate read (best,
//! candidates, confidence), the engine it came from and the hash of the engine's raw output, and
//! one entry per image part: its role, size, plaintext SHA-256, which metadata segments the lane
//! stripped, and its perceptual hashes. It is JSON (UTF-8), at most [`MAX_METADATA_BYTES`],
//! unknown fields refused, so the schema is explicit and versioned.
//!
//! It holds personal data (the plate), which is why it is sealed like the images and lives in
//! the plate group when there is one: it expires with the plate read.
//!
//! What it is not: the engine's raw JSON (only its hash is kept) or an index entry (the vault
//! derives blind-index values from it and forgets the plate).

use serde::{Deserialize, Serialize};

/// The schema version this module writes and reads.
pub const METADATA_VERSION: u32 = 1;

/// Largest metadata part accepted, in bytes. A read with 32 candidates, a dozen image parts with
/// their hashes and a quarantine note of [`MAX_QUARANTINE_RAW_BYTES`] fit with room to spare.
pub const MAX_METADATA_BYTES: usize = 256 * 1024;

/// Largest raw input a quarantine note carries inline (before base64). Larger inputs are kept as
/// their hash and size only.
pub const MAX_QUARANTINE_RAW_BYTES: usize = 128 * 1024;

/// The metadata part.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CaptureMetadata {
    /// Always [`METADATA_VERSION`].
    pub version: u32,
    /// The plate read, when an engine produced one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read: Option<PlateReadRecord>,
    /// Further plates the engine read in the same frame (a second vehicle), best first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub other_reads: Vec<PlateReadRecord>,
    /// The engine output this capture was built from, when there was one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub engine: Option<EngineRecord>,
    /// One entry per image part.
    #[serde(default)]
    pub images: Vec<ImageRecord>,
    /// Set when the lane could not process an input and sealed it for an operator to look at.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quarantine: Option<QuarantineRecord>,
    /// Images the camera produced for this capture that the lane destroyed unsealed, because
    /// their class's retention had already passed when they reached it (a face that waited in
    /// the inbox past its hours). Only what and how large: their content is gone.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub expired_images: Vec<ExpiredImageRecord>,
}

/// An image destroyed unsealed at the lane, past its retention.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExpiredImageRecord {
    /// What it showed.
    pub role: ImageRole,
    /// Its size after metadata stripping, in bytes.
    pub bytes: u64,
}

/// A normalised plate read.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlateReadRecord {
    /// Upper-case A–Z and 0–9 only.
    pub plate: String,
    /// 0..=1.
    pub confidence: f32,
    /// Region code as the engine gave it (e.g. `us-tx`), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// Other readings, best first.
    #[serde(default)]
    pub candidates: Vec<CandidateRecord>,
    /// The plate's box in the overview image: x, y, width, height in pixels.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bbox: Option<[u32; 4]>,
    /// Vehicle attributes the engine reported (colour, make, body type…), name → value.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub vehicle: Vec<(String, String)>,
}

/// One alternative reading.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CandidateRecord {
    /// Normalised like [`PlateReadRecord::plate`].
    pub plate: String,
    /// 0..=1; absent when the engine gave no score.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub confidence: Option<f32>,
}

/// Which engine output a capture came from.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EngineRecord {
    /// The vendor format, e.g. `openalpr-v2`.
    pub vendor: String,
    /// Hex SHA-256 of the engine's raw JSON as received.
    pub raw_sha256: String,
    /// The engine's camera id, if it named one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub camera_id: Option<String>,
}

/// What an image part is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ImageRole {
    /// The wide view of the vehicle in the lane.
    Overview,
    /// The crop of the licence plate.
    PlateCrop,
    /// A crop of the vehicle.
    VehicleCrop,
    /// An occupant's face.
    Face,
}

impl ImageRole {
    /// The retention class whose group carries an image of this role: plate crops go with plate
    /// reads, overviews and vehicle crops with overviews, faces alone. The lane seals by this
    /// rule and the vault refuses a capture that breaks it.
    pub fn class(self) -> crate::RetentionClass {
        match self {
            Self::PlateCrop => crate::RetentionClass::Plate,
            Self::Overview | Self::VehicleCrop => crate::RetentionClass::Overview,
            Self::Face => crate::RetentionClass::Face,
        }
    }

    /// The name used in JSON and in the index.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Overview => "overview",
            Self::PlateCrop => "plate-crop",
            Self::VehicleCrop => "vehicle-crop",
            Self::Face => "face",
        }
    }
}

/// One image part.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImageRecord {
    /// Index of the group holding it.
    pub group: u8,
    /// Index of the part within the group.
    pub part: u8,
    /// What it shows.
    pub role: ImageRole,
    /// Plaintext size in bytes (after metadata stripping).
    pub bytes: u64,
    /// Hex SHA-256 of the plaintext.
    pub sha256: String,
    /// The metadata segments the lane removed before sealing, e.g. `APP1/Exif`.
    #[serde(default)]
    pub stripped: Vec<String>,
    /// Perceptual hashes, each with the pipeline that made it.
    #[serde(default)]
    pub pdq: Vec<PdqRecord>,
}

/// A perceptual hash and the pipeline that made it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PdqRecord {
    /// e.g. `pdq-fast-v1`.
    pub pipeline: String,
    /// What was hashed: `full` or the name of a standard crop.
    pub variant: String,
    /// 64 hex digits.
    pub hash: String,
    /// 0..=100.
    pub quality: u32,
}

/// An input the lane could not process, sealed so that nothing is lost and nothing is left in
/// plaintext.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QuarantineRecord {
    /// Why it was quarantined (never contains plate text).
    pub reason: String,
    /// The input's file name at the lane.
    pub file_name: String,
    /// Hex SHA-256 of the raw input.
    pub raw_sha256: String,
    /// Its size in bytes.
    pub raw_bytes: u64,
    /// The raw input, base64, when it is at most [`MAX_QUARANTINE_RAW_BYTES`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub raw_base64: Option<String>,
}

/// Why a metadata part was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MetadataError {
    /// Over [`MAX_METADATA_BYTES`].
    #[error("metadata part is {0} bytes; the limit is {MAX_METADATA_BYTES}")]
    TooLarge(usize),
    /// Not the JSON this schema describes (the message names the field, never its value).
    #[error("metadata part is not valid v1 metadata: {0}")]
    Malformed(String),
    /// A version this build does not read.
    #[error("metadata version {0} is not supported (this build reads {METADATA_VERSION})")]
    Version(u32),
}

impl CaptureMetadata {
    /// Parses a metadata part, bounded and strict.
    pub fn from_slice(bytes: &[u8]) -> Result<Self, MetadataError> {
        if bytes.len() > MAX_METADATA_BYTES {
            return Err(MetadataError::TooLarge(bytes.len()));
        }
        let metadata: Self = serde_json::from_slice(bytes).map_err(|e| {
            // serde_json messages name fields and positions, not values; keep only the category
            // and position to be sure no plate text can leak into an error.
            MetadataError::Malformed(format!("{:?} error at line {} column {}", e.classify(), e.line(), e.column()))
        })?;
        if metadata.version != METADATA_VERSION {
            return Err(MetadataError::Version(metadata.version));
        }
        Ok(metadata)
    }

    /// Serialises the part.
    pub fn to_vec(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("metadata serialises")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expired_images_round_trip_default_to_none_and_refuse_unknown_fields() {
        let mut metadata: CaptureMetadata = serde_json::from_str(r#"{"version":1,"images":[]}"#).unwrap();
        assert!(metadata.expired_images.is_empty(), "metadata written before the field still parses");
        assert!(!String::from_utf8(metadata.to_vec()).unwrap().contains("expired_images"), "an empty list is omitted");

        metadata.expired_images = vec![ExpiredImageRecord { role: ImageRole::Face, bytes: 30_712 }];
        let json = metadata.to_vec();
        assert_eq!(
            std::str::from_utf8(&json).unwrap(),
            r#"{"version":1,"images":[],"expired_images":[{"role":"face","bytes":30712}]}"#
        );
        assert_eq!(CaptureMetadata::from_slice(&json).unwrap(), metadata);

        let extra = br#"{"version":1,"images":[],"expired_images":[{"role":"face","bytes":1,"sha256":"00"}]}"#;
        assert!(matches!(CaptureMetadata::from_slice(extra), Err(MetadataError::Malformed(_))));
        let unknown_role = br#"{"version":1,"images":[],"expired_images":[{"role":"iris","bytes":1}]}"#;
        assert!(matches!(CaptureMetadata::from_slice(unknown_role), Err(MetadataError::Malformed(_))));
    }
}
