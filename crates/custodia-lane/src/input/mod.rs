//! ALPR engine outputs, accepted verbatim and normalised into [`PlateRead`]s.
//!
//! A lane device receives JSON from whichever plate-recognition engine the site runs. This module
//! recognises the format from the JSON itself (never from a URL, header or file name), keeps the
//! SHA-256 of the exact bytes received, and extracts the reads, the embedded JPEGs and the ids
//! that tie the JSON to its image file. Field lists: `shared/formats/alpr-inputs.md`.
//!
//! | [`Vendor`] | recognised by |
//! |---|---|
//! | `OpenAlprV2` | `"data_type": "alpr_results"` (library `alpr -j` and open-source `alprd`, which adds `uuid`, `camera_id`, `site_id`) |
//! | `OpenAlprV1` | no `data_type`, a `results` array of `{plate, confidence, coordinates…}` |
//! | `RekorScoutResults` | `"alpr_results"` plus any Scout-only field: `agent_uid`, or a result with `plate_crop_jpeg`, `vehicle_region` or `vehicle` |
//! | `RekorScoutGroup` | `"alpr_group"`; `"alpr_alert"` (its embedded `group` is read) |
//! | `PlateRecognizerSnapshot` | no `data_type`, a `results` array of `{plate, score, box…}` and/or `timestamp`, `filename`, `usage` |
//! | `PlateRecognizerStream` | a `hook` object with a `data` object (the webhook body) |
//!
//! `"alpr_heartbeat"` (and the older `"heartbeat"`) parse to an [`EngineOutput`] with
//! `heartbeat: true` and no reads: a heartbeat is a health signal, not an error.
//!
//! Normalisation: plates become upper-case `A-Z0-9` ([`normalise_plate`]); confidences become
//! 0..=1 (OpenALPR and Rekor send 0–100, Plate Recognizer 0–1); boxes become axis-aligned
//! rectangles in source-image pixels; vehicle attributes keep the best-scoring label of each list.
//! Reads whose plate normalises to nothing (a vehicle without a readable plate) are left out,
//! as are such candidates; the images that came with them are still returned.
//!
//! Bounds are checked before allocation: the whole payload ([`MAX_ENGINE_JSON_BYTES`]), the
//! number of reads ([`MAX_READS_PER_OUTPUT`], an error past it), candidates per read
//! ([`MAX_CANDIDATES`], the rest ignored), plate length ([`MAX_PLATE_LEN`]), each embedded
//! image's decoded size ([`MAX_EMBEDDED_IMAGE_BYTES`], computed from the base64 length before
//! decoding) and id lengths ([`MAX_ID_LEN`]). Error messages never contain plate text.
//!
//! It does not: read files, talk to an engine, decide whether a read is trustworthy, look at the
//! pixels of the embedded JPEGs beyond their first bytes, or strip their metadata (that is
//! [`crate::strip`]).
//!
//! ```
//! use custodia_lane::input::{parse_engine_output, Vendor};
//! let json = br#"{"processing_time": 102.9, "timestamp": "2021-10-11 05:43:58.514896",
//!   "filename": "car.jpg", "camera_id": null,
//!   "results": [{"plate": "ab12cde", "score": 0.898, "region": {"code": "gb", "score": 0.986},
//!                "box": {"xmin": 146, "ymin": 481, "xmax": 276, "ymax": 576},
//!                "candidates": [{"plate": "ab12cde", "score": 0.898}], "dscore": 0.925}]}"#;
//! let out = parse_engine_output(json)?;
//! assert_eq!(out.vendor, Vendor::PlateRecognizerSnapshot);
//! assert_eq!(out.reads[0].plate, "AB12CDE");
//! assert_eq!(out.image_ref.as_deref(), Some("car.jpg"));
//! assert_eq!(out.captured_at_ms, Some(1_633_931_038_514));
//! # Ok::<(), custodia_lane::input::InputError>(())
//! ```

mod lenient;
mod payload;

use std::fmt;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use payload::Payload;

/// Largest engine payload accepted, in bytes. Rekor Scout groups carry three base64 JPEGs (plate
/// crop, vehicle crop and, when enabled, a full overview frame of a 4K camera, 1–5 MB as JPEG,
/// a third more as base64); 16 MiB leaves room for that and refuses anything else before parsing.
pub const MAX_ENGINE_JSON_BYTES: usize = 16 * 1024 * 1024;
/// Most plate reads in one payload. One frame rarely shows more than a handful of plates; a
/// multi-lane overview camera may show a dozen. More than this is refused as not a lane capture.
pub const MAX_READS_PER_OUTPUT: usize = 64;
/// Most candidates kept per read. OpenALPR's `requested_topn` defaults to 10 and Rekor to 10;
/// extra candidates (lower-ranked, engines sort by confidence) are ignored, not an error.
pub const MAX_CANDIDATES: usize = 32;
/// Longest normalised plate. The longest plates in use have 10 characters (some EU and Asian
/// formats); 16 leaves room and keeps a blob from passing as a plate.
pub const MAX_PLATE_LEN: usize = 16;
/// Largest decoded size of one embedded JPEG (a base64 field), checked from the base64 length
/// before decoding.
pub const MAX_EMBEDDED_IMAGE_BYTES: usize = 8 * 1024 * 1024;
/// Longest id or file reference kept (`uuid`, `filename`, `camera_id`, `site_id`, …). Real ones
/// are under 100 characters (a Rekor uuid is 40 + camera id + epoch ≈ 70).
pub const MAX_ID_LEN: usize = 256;

/// Which engine format a payload was recognised as.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Vendor {
    /// OpenALPR before `alpr_results` version 2 (no `version`/`data_type`).
    #[serde(rename = "openalpr-v1")]
    OpenAlprV1,
    /// OpenALPR `alpr_results` version 2: library `alpr -j` and the open-source `alprd`.
    #[serde(rename = "openalpr-v2")]
    OpenAlprV2,
    /// Rekor Scout (commercial OpenALPR) per-frame `alpr_results`. Also the vendor of a
    /// heartbeat, which only the OpenALPR/Rekor agent sends.
    #[serde(rename = "rekor-scout-results")]
    RekorScoutResults,
    /// Rekor Scout `alpr_group` (one per vehicle pass), also taken from an `alpr_alert`.
    #[serde(rename = "rekor-scout-group")]
    RekorScoutGroup,
    /// Plate Recognizer Snapshot API response.
    #[serde(rename = "platerecognizer-snapshot")]
    PlateRecognizerSnapshot,
    /// Plate Recognizer Stream webhook (`hook` + `data`).
    #[serde(rename = "platerecognizer-stream")]
    PlateRecognizerStream,
}

impl Vendor {
    /// A stable lower-case name for logs, metrics and the sealed metadata.
    pub fn as_str(self) -> &'static str {
        match self {
            Vendor::OpenAlprV1 => "openalpr-v1",
            Vendor::OpenAlprV2 => "openalpr-v2",
            Vendor::RekorScoutResults => "rekor-scout-results",
            Vendor::RekorScoutGroup => "rekor-scout-group",
            Vendor::PlateRecognizerSnapshot => "platerecognizer-snapshot",
            Vendor::PlateRecognizerStream => "platerecognizer-stream",
        }
    }
}

impl fmt::Display for Vendor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One engine payload, normalised.
#[derive(Clone, Debug, PartialEq)]
pub struct EngineOutput {
    /// The format it was recognised as.
    pub vendor: Vendor,
    /// SHA-256 of the exact bytes received, so the raw payload can be proven later.
    pub raw_sha256: [u8; 32],
    /// The plate reads, in the engine's order; at most [`MAX_READS_PER_OUTPUT`]. A group or an
    /// alert gives one read (its best plate).
    pub reads: Vec<PlateRead>,
    /// True for an agent heartbeat: no reads, nothing to seal, not an error.
    pub heartbeat: bool,
    /// JPEGs embedded as base64 (Rekor plate crops, vehicle crops, overviews), decoded and
    /// checked to start with a JPEG SOI marker. Their metadata is NOT stripped here.
    pub images: Vec<EmbeddedImage>,
    /// The name of the image file this JSON goes with: OpenALPR/Rekor `uuid` (the file is
    /// `<uuid>.jpg`), Rekor group `best_uuid`, Plate Recognizer `filename` (Stream: the hook's
    /// `filename`, a relative path). Untrusted text: never use it as a path without checking it.
    pub image_ref: Option<String>,
    /// The engine's camera id (`camera_id`; Stream falls back to the hook `id`), as text.
    pub camera_id: Option<String>,
    /// The engine's site: `site_id` when sent; for Rekor Scout, which has none, the `agent_uid`
    /// of the agent box.
    pub site_id: Option<String>,
    /// When the engine says the frame was captured, in ms since the Unix epoch (UTC). OpenALPR
    /// `epoch_time` (values below 10^11 are taken as seconds, as early alprd sent), Rekor group
    /// `best_uuid_epoch_ms` or `epoch_start`, Rekor results `epoch_time` or the uuid's epoch
    /// suffix, Plate Recognizer `timestamp` (a time without an offset is taken as UTC, which is
    /// what Plate Recognizer documents for `timestamp`; Stream falls back to `timestamp_local`,
    /// which carries its offset). `None` when absent or unparseable. This is the engine's clock;
    /// the lane's own capture time is kept separately.
    pub captured_at_ms: Option<i64>,
}

/// One plate read. Plate text is personal data: these values live in memory and inside sealed
/// parts only, and no error message of this crate contains them.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PlateRead {
    /// The plate, normalised by [`normalise_plate`].
    pub plate: String,
    /// The engine's confidence in `plate`, 0..=1.
    pub confidence: f32,
    /// The engine's region/state/country code as sent, lower-cased (`"us-mo"`, `"gb"`), if any.
    pub region: Option<String>,
    /// Confidence in `region`, 0..=1.
    pub region_confidence: Option<f32>,
    /// Alternative readings, best first as the engine sent them, normalised; at most
    /// [`MAX_CANDIDATES`]. Usually the first equals `plate`.
    pub candidates: Vec<Candidate>,
    /// Where the plate is in the source image.
    pub bbox: Option<BoundingBox>,
    /// Vehicle attributes, when the engine classified the vehicle.
    pub vehicle: Option<VehicleAttributes>,
    /// Direction of travel in degrees (0..360), when the engine tracked the vehicle.
    pub travel_direction_deg: Option<f32>,
}

/// An alternative reading of a plate.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Candidate {
    /// Normalised plate text.
    pub plate: String,
    /// 0..=1; `None` when the engine sent no score (Plate Recognizer Stream candidates).
    pub confidence: Option<f32>,
}

/// An axis-aligned rectangle in source-image pixels. OpenALPR's four corner points become their
/// bounding rectangle; coordinates may be slightly negative at the image edge.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BoundingBox {
    /// Left edge.
    pub x: i32,
    /// Top edge.
    pub y: i32,
    /// Width.
    pub width: u32,
    /// Height.
    pub height: u32,
}

/// Vehicle attributes: for each list the engine sent, the label with the best confidence.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct VehicleAttributes {
    /// e.g. `"white"`.
    pub color: Option<String>,
    /// e.g. `"bmw"`.
    pub make: Option<String>,
    /// e.g. `"bmw_x3"` (Rekor) or `"bmw_x3"` built from Plate Recognizer make + model.
    pub make_model: Option<String>,
    /// e.g. `"suv-crossover"` (Rekor) or `"SUV"` (Plate Recognizer `vehicle.type`).
    pub body_type: Option<String>,
    /// e.g. `"2010-2014"`.
    pub year: Option<String>,
}

impl VehicleAttributes {
    fn is_empty(&self) -> bool {
        self == &VehicleAttributes::default()
    }
}

/// What an embedded image shows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ImageRole {
    /// The plate only.
    PlateCrop,
    /// The vehicle.
    VehicleCrop,
    /// The whole camera frame.
    Overview,
}

/// A JPEG that came inside the JSON.
#[derive(Clone, PartialEq, Eq)]
pub struct EmbeddedImage {
    /// What it shows.
    pub role: ImageRole,
    /// The decoded JPEG bytes (starting FF D8 FF), metadata not yet stripped.
    pub jpeg: Vec<u8>,
}

impl fmt::Debug for EmbeddedImage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EmbeddedImage").field("role", &self.role).field("jpeg_len", &self.jpeg.len()).finish()
    }
}

/// Why a payload was refused. No variant carries plate text or any other value from the payload
/// except a sanitised, bounded `data_type`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum InputError {
    /// The payload is larger than [`MAX_ENGINE_JSON_BYTES`].
    #[error("engine payload of {len} bytes is larger than the {max}-byte limit")]
    TooLarge {
        /// Payload length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// Not valid JSON (syntax error, truncated, invalid UTF-8, trailing garbage).
    #[error("not JSON (line {line}, column {column})")]
    NotJson {
        /// 1-based line of the error.
        line: usize,
        /// 1-based column of the error.
        column: usize,
    },
    /// Valid JSON whose top level is not an object.
    #[error("JSON top level is not an object")]
    NotAnObject,
    /// Valid JSON with a structure no engine sends (e.g. a duplicated key).
    #[error("JSON of an unexpected shape (line {line}, column {column})")]
    UnexpectedShape {
        /// 1-based line of the error.
        line: usize,
        /// 1-based column of the error.
        column: usize,
    },
    /// A `data_type` this module does not know (shown sanitised: printable ASCII, ≤ 32 chars).
    #[error("unknown data_type {data_type:?}")]
    UnknownDataType {
        /// The sanitised `data_type`.
        data_type: String,
    },
    /// A JSON object that matches none of the supported engine formats.
    #[error("JSON matches no supported ALPR engine format")]
    UnrecognisedFormat,
    /// A field the format cannot do without (e.g. `results`, a webhook's `data`, an alert's
    /// `group`) is missing or null.
    #[error("missing required field {field} for {vendor}")]
    MissingField {
        /// The field's name.
        field: &'static str,
        /// The format it was recognised as.
        vendor: Vendor,
    },
    /// More plate reads than [`MAX_READS_PER_OUTPUT`].
    #[error("{count} plate reads exceed the limit of {max}")]
    TooManyReads {
        /// How many the payload had.
        count: usize,
        /// The limit.
        max: usize,
    },
    /// An embedded image field is not valid base64.
    #[error("bad base64 in field {field}")]
    BadBase64 {
        /// The field's name.
        field: &'static str,
    },
    /// An embedded image would decode to more than [`MAX_EMBEDDED_IMAGE_BYTES`].
    #[error("embedded image in field {field} would be {len} bytes, over the {max}-byte limit")]
    ImageTooLarge {
        /// The field's name.
        field: &'static str,
        /// Its decoded size (estimated from the base64 length).
        len: usize,
        /// The limit.
        max: usize,
    },
    /// An embedded image decodes to something that does not start like a JPEG.
    #[error("embedded image in field {field} is not a JPEG")]
    NotJpeg {
        /// The field's name.
        field: &'static str,
    },
    /// An id or file reference longer than [`MAX_ID_LEN`].
    #[error("field {field} is longer than {max} bytes")]
    FieldTooLong {
        /// The field's name.
        field: &'static str,
        /// The limit.
        max: usize,
    },
}

/// Normalises plate text: upper-case, keeping only ASCII `A-Z` and `0-9` (spaces, dashes, dots
/// and anything else dropped). `None` when nothing is left or the result is longer than
/// [`MAX_PLATE_LEN`] (input longer than 4 × that is refused without scanning).
///
/// ```
/// use custodia_lane::input::normalise_plate;
/// assert_eq!(normalise_plate("ab 12-cde").as_deref(), Some("AB12CDE"));
/// assert_eq!(normalise_plate(" - "), None);
/// ```
pub fn normalise_plate(raw: &str) -> Option<String> {
    if raw.len() > 4 * MAX_PLATE_LEN {
        return None;
    }
    let plate: String = raw.chars().filter(char::is_ascii_alphanumeric).map(|c| c.to_ascii_uppercase()).collect();
    (!plate.is_empty() && plate.len() <= MAX_PLATE_LEN).then_some(plate)
}

/// Parses one engine payload, detecting its format from the JSON itself.
pub fn parse_engine_output(bytes: &[u8]) -> Result<EngineOutput, InputError> {
    if bytes.len() > MAX_ENGINE_JSON_BYTES {
        return Err(InputError::TooLarge { len: bytes.len(), max: MAX_ENGINE_JSON_BYTES });
    }
    let raw_sha256: [u8; 32] = Sha256::digest(bytes).into();
    // A derived struct would also accept a JSON array positionally; only objects are payloads.
    let first = bytes.iter().find(|b| !b.is_ascii_whitespace());
    if first.is_some_and(|&b| b != b'{') {
        // Tell "valid JSON, wrong top level" from "not JSON at all".
        return Err(match serde_json::from_slice::<serde::de::IgnoredAny>(bytes) {
            Ok(_) => InputError::NotAnObject,
            Err(e) => InputError::NotJson { line: e.line(), column: e.column() },
        });
    }
    let payload: Payload<'_> = serde_json::from_slice(bytes).map_err(|e| match e.classify() {
        serde_json::error::Category::Data => InputError::UnexpectedShape { line: e.line(), column: e.column() },
        _ => InputError::NotJson { line: e.line(), column: e.column() },
    })?;
    payload::convert(payload, raw_sha256)
}

/// Keeps printable ASCII only, at most 32 characters, for an error message.
fn sanitise_for_error(s: &str) -> String {
    s.chars().filter(|c| c.is_ascii_graphic() || *c == ' ').take(32).collect()
}
