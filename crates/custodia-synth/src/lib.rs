//! Synthetic border-lane traffic for `custodia demo` and for tests: the files that cameras and
//! ALPR engines drop into a lane agent's input folders, generated deterministically from a seed.
//!
//! A simulated land-border site has a few lanes; each lane has a camera and an ALPR engine. For
//! every vehicle pass this crate produces what that lane's folder would receive:
//!
//! * an **overview** JPEG (1280×720, ≈ 205 KB, 160–290 KB): road, lane markings, a port canopy, a skyline,
//!   a drawn vehicle (body class, colour) with its plate on the bumper and the occupants'
//!   silhouettes behind the windscreen, lit for the time of day, with sensor noise and the
//!   camera's burnt-in caption;
//! * a **plate crop** JPEG (320×160, 15–25 KB, ≈ 19 KB): the plate, slightly rotated and skewed,
//!   softened and noisy, different in every capture of the same car;
//! * **face** JPEGs (240×288, 25–35 KB, ≈ 30 KB) of the driver and often the front passenger;
//! * the engine's **JSON**, field names as the engines emit them (OpenALPR `alpr_results` v2
//!   and v1, Rekor Scout `alpr_group`, Plate Recognizer Snapshot and Stream webhook; see
//!   `shared/formats/alpr-inputs.md`), with OCR candidates that include the usual confusions
//!   (O/0, B/8, I/1, S/5, Z/2, …) at lower confidence.
//!
//! Every image carries camera metadata as a real lane camera writes it (an Exif APP1 segment with
//! make, model, body serial number, capture time and the port's GPS position, and a COM comment;
//! see [`jpeg_with_camera_metadata`]) so the demo can show the lane agent stripping it.
//!
//! The traffic follows a daily rhythm (rush hours, quiet nights, busier Saturdays). A small pool
//! of commuters crosses again and again (same plate, same car, same faces, a new photo each
//! time); occasional visitors cross a few times; most vehicles cross once. Cars carry 1–4
//! people. About 3 % of plates are obscured (no read), 2 % of vehicles are motorcycles (no front
//! plate, no read) and about 3 % of reads are misreads.
//!
//! # Files and how a lane pairs them
//!
//! All files of one capture share a stem chosen by the lane's engine ([`Vendor::file_stem`]):
//! alprd's `uuid` `<site>-cam<camera_id>-<epoch_ms>` for OpenALPR, the Snapshot API and plain
//! folders; Rekor's `best_uuid` `<agent_uid>-<camera_id>-<epoch_ms>`; Stream's screenshot name
//! `camera-<id>_<yy-mm-dd>_<hh-mm-ss.ffffff>`. Then:
//!
//! | file | role |
//! |---|---|
//! | `<stem>.jpg` | overview; the engine JSON names it (`uuid`/`best_uuid` + `.jpg`, or `filename`) |
//! | `<stem>.plate.jpg` | plate crop (not for Rekor, which carries it inline as `best_plate.plate_crop_jpeg`) |
//! | `<stem>.face<k>.jpg` | face of occupant `person_ids[k]` (0 = driver, 1 = front passenger) |
//! | `<stem>.json` | engine output; absent when the engine emits nothing (no read, or a plain folder) |
//!
//! Rekor groups also inline a `vehicle_crop_jpeg`; `overview_jpeg` is left out (it is the
//! `<stem>.jpg` file). Files come in write order, images first and JSON last. Stream stems
//! contain a dot (`…_08-40-42.253000`): pair by stripping the known suffix, not at the first dot.
//!
//! # Speed
//!
//! Generation costs about 13 ms per capture on one core, about twice the cost of JPEG-encoding
//! the overview alone (`benches/generate.rs`). [`generate`] runs on the calling thread; to use
//! more cores, [`plan`] the run (microseconds per capture, sequential) and [`render`] the plans
//! on as many threads as you like: rendering is pure and per capture.
//!
//! # What this is not
//!
//! * **Not a realistic image model.** Vehicles, plates and faces are drawn from rectangles,
//!   ellipses and a 5×7 bitmap font. The images are realistic in size, entropy and structure
//!   (so JPEG sizes, hashing and sealing costs are right, and unrelated captures hash far apart),
//!   not in looks.
//! * **No real persons.** Faces are procedurally generated cartoons; they depict no real person.
//!   Plates come from the synthetic space `QZ` + five of `[A-Z0-9]` ([`is_synthetic_plate`]),
//!   vehicles are random draws, the camera make "Synthetic Optics" is invented.
//! * **No ALPR.** The engine JSON is written from the ground truth the generator drew, not by
//!   reading the pixels.
//! * No I/O, no clock, no OS randomness: the caller writes the returned bytes; every random
//!   choice comes from ChaCha streams derived from the seed. The same config gives the same
//!   bytes on the same platform; across platforms a float rounding (libm `sin`, the JPEG
//!   encoder's AVX2 path versus its scalar one) may change a few pixels or bytes.
//!
//! # Example
//!
//! ```
//! use custodia_synth::{FileRole, TrafficConfig, generate, is_synthetic_plate};
//!
//! let mut config = TrafficConfig::demo(7, 1_715_000_000_000);
//! config.captures = 2;
//! for capture in generate(&config) {
//!     for file in &capture.files {
//!         // The caller writes `file.bytes` to `<lane folder>/<file.name>`.
//!         if file.role == FileRole::EngineJson {
//!             let _json: serde_json::Value = serde_json::from_slice(&file.bytes).unwrap();
//!         }
//!     }
//!     if let Some(plate) = &capture.plate_text {
//!         assert!(is_synthetic_plate(plate));
//!     }
//! }
//! ```
#![forbid(unsafe_code)]

mod civil;
mod exif;
mod face;
mod font;
mod plate;
mod raster;
mod scene;
mod traffic;
mod vendor;

pub use exif::{CameraMeta, MAX_COMMENT, MAX_EXIF_TEXT, jpeg_with_camera_metadata};
pub use face::{FACE_H, FACE_W};
pub use plate::{PLATE_CROP_H, PLATE_CROP_W, PLATE_LEN, Plate, Region, SYNTHETIC_PREFIX, is_synthetic_plate};
pub use scene::{OVERVIEW_H, OVERVIEW_W};
pub use traffic::{
    CapturePlan, FileRole, LaneSpec, MAX_DAYS, MAX_LABEL_LEN, Planner, PlateOutcome, SITE_GPS, SITE_UTC_OFFSET_MIN,
    SyntheticCapture, SyntheticFile, Traffic, TrafficConfig, generate, plan, render, sample_capture_bytes,
};
pub use vendor::{Candidate, EngineRead, PixelBox, PlateRead, VehicleAttributes, Vendor, Xy, rekor_agent_uid};

/// Errors of this crate.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum SynthError {
    /// The bytes given as a JPEG do not start with an SOI marker (FF D8).
    #[error("not a JPEG (no SOI marker)")]
    NotJpeg,
    /// A camera metadata field is out of range: non-ASCII or over-long text, an over-long
    /// comment, or a coordinate outside [-90, 90] / [-180, 180].
    #[error("camera metadata field `{field}` is invalid")]
    InvalidMetadata {
        /// The offending field of [`CameraMeta`].
        field: &'static str,
    },
}

/// SplitMix64's finaliser: a bijective 64-bit mix for deriving independent seeds.
pub(crate) fn mix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// FNV-1a, for turning names into seeds.
pub(crate) fn fnv1a(b: &[u8]) -> u64 {
    b.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &c| (h ^ c as u64).wrapping_mul(0x0000_0100_0000_01B3))
}
