//! Turning a group of inbox files into capture plans, and a plan into a sealed capture.
//!
//! Pairing rule: files belong together when their names agree but for the extension and role suffix (the *stem*):
//! `<stem>.json` is the engine output, `<stem>.jpg`/`.png` the overview, `<stem>.plate.jpg` a plate
//! crop, `<stem>.vehicle.jpg` a vehicle crop, `<stem>.face<N>.jpg` an occupant's face. That is the
//! OpenALPR/alprd convention (`<uuid>.jpg` beside its results) extended for the other roles; JPEGs
//! that arrive inside the JSON (Rekor Scout crops and overviews) join the same capture.
//!
//! Every image is stripped of its metadata segments (EXIF, GPS, XMP, comments) without
//! re-encoding. An input that cannot be used — JSON no engine format matches, a file that is not
//! an image, an image over the size limit — becomes a *quarantine* capture of its own: sealed like
//! any other, with the reason and (when small enough) the raw bytes inside the metadata part, so
//! an operator can see it and nothing is lost or left in plaintext.
//!
//! This module is pure: bytes in, plans and sealed bytes out; the RNG and epochs are passed in.

use base64::Engine as _;
use custodia_seal::metadata::{
    CandidateRecord, CaptureMetadata, EngineRecord, ExpiredImageRecord, ImageRecord, ImageRole,
    MAX_QUARANTINE_RAW_BYTES, METADATA_VERSION, PdqRecord, PlateReadRecord, QuarantineRecord,
};
use custodia_seal::{
    CaptureHeader, DeviceId, DeviceSigningKey, GroupToSeal, LaneName, PartKind, PartToSeal, RetentionClass, SiteName,
    epochs::EpochSet,
};
use rand_core::{CryptoRng, RngCore};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::input::{self, EngineOutput, PlateRead};
use crate::outbox::ConsumedInput;
use crate::strip;

/// Largest image file the lane accepts, in bytes. A 4K JPEG at high quality is ~5 MB; the sealed
/// format allows 8 MiB per part.
pub const MAX_IMAGE_FILE_BYTES: usize = custodia_seal::MAX_PART_PLAINTEXT_BYTES;

/// How far a capture's time may lie from its inputs' arrival for the lane to trust it when
/// judging retention (see [`CapturePlan::time_is_credible`]): an hour covers an engine working
/// through a backlog; a camera clock wrong by more is a fault for an operator.
pub const CLOCK_AGREEMENT_MS: i64 = 60 * 60 * 1000;

/// Largest engine JSON accepted (Rekor groups carry base64 JPEGs).
pub const MAX_JSON_FILE_BYTES: usize = input::MAX_ENGINE_JSON_BYTES;

/// One file of a group, read from the inbox.
pub struct InputFile {
    /// Its name in the inbox.
    pub name: String,
    /// Its content (zeroized when dropped: it may be a plaintext image).
    pub bytes: Zeroizing<Vec<u8>>,
    /// Its modification time, unix ms (the capture time when no engine gives one).
    pub modified_ms: i64,
}

impl InputFile {
    /// A file named `name` holding a copy of `bytes`, last modified at `modified_ms`: how tests,
    /// benches and tools hand the planner files that are not in an inbox.
    pub fn new(name: impl Into<String>, bytes: &[u8], modified_ms: i64) -> Self {
        Self { name: name.into(), bytes: Zeroizing::new(bytes.to_vec()), modified_ms }
    }

    fn consumed(&self) -> ConsumedInput {
        ConsumedInput { name: self.name.clone(), sha256: hex::encode(Sha256::digest(&self.bytes[..])) }
    }
}

/// What kind of file a name denotes, by the pairing rule.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileRole {
    /// `<stem>.json`.
    EngineJson,
    /// An image in the given role.
    Image(ImageRole),
    /// Anything else.
    Unknown,
}

/// Splits a file name into its stem, its role suffix (`plate`, `vehicle`, `face<N>` or none) and
/// its extension, reading from the right so that stems may contain dots (Plate Recognizer names
/// files like `camera-4_26-11-01_17-56-54.018000.jpg`).
fn split_name(name: &str) -> (&str, Option<&str>, Option<&str>) {
    let Some((rest, extension)) = name.rsplit_once('.') else { return (name, None, None) };
    if let Some((stem, suffix)) = rest.rsplit_once('.') {
        let lower = suffix.to_ascii_lowercase();
        let is_role = lower == "plate"
            || lower == "vehicle"
            || (lower.len() > 4 && lower.starts_with("face") && lower[4..].bytes().all(|b| b.is_ascii_digit()));
        if is_role && !stem.is_empty() {
            return (stem, Some(suffix), Some(extension));
        }
    }
    (rest, None, Some(extension))
}

/// The stem of a file name: the name without its extension and role suffix. Files with the same
/// stem belong to one capture.
pub fn stem(name: &str) -> &str {
    split_name(name).0
}

/// The role of a file by its name.
pub fn file_role(name: &str) -> FileRole {
    let (_, suffix, extension) = split_name(name);
    let Some(extension) = extension else { return FileRole::Unknown };
    let suffix = suffix.map(|s| s.to_ascii_lowercase());
    match extension.to_ascii_lowercase().as_str() {
        "json" if suffix.is_none() => FileRole::EngineJson,
        "jpg" | "jpeg" | "png" => match suffix.as_deref() {
            None => FileRole::Image(ImageRole::Overview),
            Some("plate") => FileRole::Image(ImageRole::PlateCrop),
            Some("vehicle") => FileRole::Image(ImageRole::VehicleCrop),
            Some(_) => FileRole::Image(ImageRole::Face),
        },
        _ => FileRole::Unknown,
    }
}

#[cfg(test)]
mod naming_tests {
    use super::*;

    #[test]
    fn pairing_rule_reads_names_from_the_right() {
        for (name, expected_stem, role) in [
            ("site-cam1-1700000000000.json", "site-cam1-1700000000000", FileRole::EngineJson),
            ("site-cam1-1700000000000.jpg", "site-cam1-1700000000000", FileRole::Image(ImageRole::Overview)),
            ("site-cam1-1700000000000.plate.jpg", "site-cam1-1700000000000", FileRole::Image(ImageRole::PlateCrop)),
            ("site-cam1-1700000000000.face12.JPG", "site-cam1-1700000000000", FileRole::Image(ImageRole::Face)),
            ("camera-4_26-11-01_17-56-54.018000.json", "camera-4_26-11-01_17-56-54.018000", FileRole::EngineJson),
            (
                "camera-4_26-11-01_17-56-54.018000.vehicle.png",
                "camera-4_26-11-01_17-56-54.018000",
                FileRole::Image(ImageRole::VehicleCrop),
            ),
            (
                "camera-4_26-11-01_17-56-54.018000.jpg",
                "camera-4_26-11-01_17-56-54.018000",
                FileRole::Image(ImageRole::Overview),
            ),
            ("notes.txt", "notes", FileRole::Unknown),
            ("README", "README", FileRole::Unknown),
            (".plate.jpg", ".plate", FileRole::Image(ImageRole::Overview)),
            ("x.face.jpg", "x.face", FileRole::Image(ImageRole::Overview)),
        ] {
            assert_eq!(stem(name), expected_stem, "{name}");
            assert_eq!(file_role(name), role, "{name}");
        }
    }
}

/// An image ready to seal.
pub struct PlannedImage {
    /// What it shows.
    pub role: ImageRole,
    /// JPEG or PNG.
    pub kind: PartKind,
    /// Stripped bytes.
    pub bytes: Zeroizing<Vec<u8>>,
    /// What was stripped.
    pub stripped: Vec<String>,
    /// Perceptual hashes of the stripped bytes ([`crate::fingerprint::image_hashes`]).
    pub pdq: Vec<PdqRecord>,
}

/// One capture to seal.
pub struct CapturePlan {
    /// When it was captured (unix ms).
    pub capture_time_ms: i64,
    /// When its inputs reached the inbox: the earliest modification time among them (unix ms).
    pub arrived_ms: i64,
    /// The metadata part, before image positions are filled in.
    pub metadata: CaptureMetadata,
    /// The images.
    pub images: Vec<PlannedImage>,
    /// The inbox files it consumes.
    pub inputs: Vec<ConsumedInput>,
}

impl CapturePlan {
    /// The quarantine reason, if this plan is a quarantine capture.
    pub fn quarantine_reason(&self) -> Option<&str> {
        self.metadata.quarantine.as_ref().map(|q| q.reason.as_str())
    }

    /// The class whose group carries the metadata part: plate when there is a read or a
    /// quarantine note (plate text and raw engine output live as long as plate reads), else
    /// overview when there is an overview image, else face when there is a face, else plate.
    pub fn metadata_class(&self) -> RetentionClass {
        if self.metadata.read.is_some() || self.metadata.quarantine.is_some() {
            RetentionClass::Plate
        } else if self.has_images_of(RetentionClass::Overview) {
            RetentionClass::Overview
        } else if self.has_images_of(RetentionClass::Face) {
            RetentionClass::Face
        } else {
            RetentionClass::Plate
        }
    }

    /// The classes the sealed capture has a group for, in group order (plate, overview, face).
    pub fn classes(&self) -> Vec<RetentionClass> {
        let metadata_class = self.metadata_class();
        [RetentionClass::Plate, RetentionClass::Overview, RetentionClass::Face]
            .into_iter()
            .filter(|&class| class == metadata_class || self.has_images_of(class))
            .collect()
    }

    fn has_images_of(&self, class: RetentionClass) -> bool {
        self.images.iter().any(|i| i.role.class() == class)
    }

    /// Whether the capture time can be trusted enough to destroy by: it agrees with when the
    /// inputs arrived within [`CLOCK_AGREEMENT_MS`], and is not before the lane was enrolled
    /// (`enrolled_ms`). A camera or engine whose clock reset (to 1970, say) or drifted by days
    /// produces captures that look past retention; they are held for an operator, never
    /// destroyed.
    pub fn time_is_credible(&self, enrolled_ms: i64) -> bool {
        self.capture_time_ms.abs_diff(self.arrived_ms) <= CLOCK_AGREEMENT_MS.unsigned_abs()
            && self.capture_time_ms >= enrolled_ms.saturating_sub(CLOCK_AGREEMENT_MS)
    }

    /// The classes of this capture that no epoch will ever cover, judged against `epochs`, a set
    /// the vault issued just now. The vault lists every live epoch back to the oldest capture it
    /// accepts, so a capture dated before the earliest listed epoch of a class (and before the
    /// set was issued) is past that class's retention, its epoch already shredded, or older than
    /// the vault takes: holding its plaintext would only wait forever. A class with no epoch at
    /// all in the set is never judged expired: that is a misconfigured site, whose captures
    /// must wait for an operator, not be destroyed. Nor is any class of a capture whose time is
    /// not credible ([`CapturePlan::time_is_credible`]).
    pub fn expired_classes(&self, site: &SiteName, epochs: &EpochSet, enrolled_ms: i64) -> Vec<RetentionClass> {
        if !self.time_is_credible(enrolled_ms) {
            return Vec::new();
        }
        let time = self.capture_time_ms;
        self.classes()
            .into_iter()
            .filter(|&class| {
                let earliest =
                    epochs.epochs.iter().filter(|e| &e.site == site && e.class == class).map(|e| e.not_before_ms).min();
                time < epochs.issued_at_ms && earliest.is_some_and(|earliest| time < earliest)
            })
            .collect()
    }

    /// Removes the images of `classes` from the plan (their bytes are zeroized as they drop),
    /// notes each one's role and size in the metadata's `expired_images`, so the vault's record
    /// says what the camera produced and the lane destroyed, and returns how many there were.
    /// The caller keeps the metadata class (see [`CapturePlan::expired_classes`]): a plan without
    /// it cannot be sealed.
    pub fn drop_images_of(&mut self, classes: &[RetentionClass]) -> usize {
        let (expired, kept): (Vec<_>, Vec<_>) =
            std::mem::take(&mut self.images).into_iter().partition(|image| classes.contains(&image.role.class()));
        self.images = kept;
        self.metadata.expired_images.extend(
            expired.iter().map(|image| ExpiredImageRecord { role: image.role, bytes: image.bytes.len() as u64 }),
        );
        expired.len()
    }
}

/// What the pass knows about pairing.
#[derive(Clone, Copy, Debug)]
pub struct PairingContext {
    /// Whether this lane has an ALPR engine (images alone are then unusual and flagged).
    pub expects_engine_output: bool,
}

/// Plans the captures for one group of files (same stem). Heartbeats produce nothing.
pub fn plan_group(files: &[InputFile], context: PairingContext) -> Vec<CapturePlan> {
    let mut plans = Vec::new();
    let mut engine: Option<(EngineOutput, &InputFile)> = None;
    let mut images = Vec::new();
    let mut consumed = Vec::new();
    let earliest = files.iter().map(|f| f.modified_ms).min().unwrap_or(0);

    for file in files {
        match file_role(&file.name) {
            FileRole::EngineJson => {
                if file.bytes.len() > MAX_JSON_FILE_BYTES {
                    plans.push(quarantine(file, "engine output over the size limit", earliest));
                    continue;
                }
                match input::parse_engine_output(&file.bytes) {
                    Ok(output) if output.heartbeat => consumed.push(file.consumed()),
                    Ok(output) if engine.is_none() => engine = Some((output, file)),
                    Ok(_) => plans.push(quarantine(file, "a second engine output for the same capture", earliest)),
                    Err(error) => plans.push(quarantine(file, &format!("engine output refused: {error}"), earliest)),
                }
            }
            FileRole::Image(role) => {
                if file.bytes.len() > MAX_IMAGE_FILE_BYTES {
                    plans.push(quarantine(file, "image over the size limit", earliest));
                    continue;
                }
                match prepare_image(&file.bytes, role) {
                    Ok(image) => {
                        images.push(image);
                        consumed.push(file.consumed());
                    }
                    Err(reason) => plans.push(quarantine(file, &reason, earliest)),
                }
            }
            FileRole::Unknown => plans.push(quarantine(file, "file name does not follow the pairing rule", earliest)),
        }
    }

    let mut metadata = empty_metadata();
    let mut capture_time_ms = earliest;
    if let Some((output, file)) = &engine {
        consumed.push(file.consumed());
        capture_time_ms = output.captured_at_ms.unwrap_or(earliest);
        let mut reads = output.reads.iter().map(read_record);
        metadata.read = reads.next();
        metadata.other_reads = reads.collect();
        metadata.engine = Some(EngineRecord {
            vendor: output.vendor.as_str().to_string(),
            raw_sha256: hex::encode(output.raw_sha256),
            camera_id: output.camera_id.clone(),
        });
        for embedded in &output.images {
            let role = match embedded.role {
                input::ImageRole::PlateCrop => ImageRole::PlateCrop,
                input::ImageRole::VehicleCrop => ImageRole::VehicleCrop,
                input::ImageRole::Overview => ImageRole::Overview,
            };
            match prepare_image(&embedded.jpeg, role) {
                Ok(image) => images.push(image),
                Err(reason) => {
                    // The JSON itself is kept in the capture's metadata hash; the bad embedded
                    // image is noted so the operator knows a part is missing.
                    metadata.quarantine.get_or_insert(QuarantineRecord {
                        reason: format!("an embedded {} image was refused: {reason}", role.as_str()),
                        file_name: file.name.clone(),
                        raw_sha256: hex::encode(output.raw_sha256),
                        raw_bytes: file.bytes.len() as u64,
                        raw_base64: None,
                    });
                }
            }
        }
        if images.is_empty() && metadata.quarantine.is_none() {
            metadata.quarantine = Some(QuarantineRecord {
                reason: "engine output arrived without its image".into(),
                file_name: file.name.clone(),
                raw_sha256: hex::encode(output.raw_sha256),
                raw_bytes: file.bytes.len() as u64,
                raw_base64: None,
            });
        }
    } else if !images.is_empty() && context.expects_engine_output {
        let first = files.iter().find(|f| matches!(file_role(&f.name), FileRole::Image(_)));
        let name = first.map(|f| f.name.clone()).unwrap_or_default();
        metadata.quarantine = Some(QuarantineRecord {
            reason: "image arrived without engine output".into(),
            file_name: name,
            raw_sha256: String::new(),
            raw_bytes: 0,
            raw_base64: None,
        });
    }

    if engine.is_some() || !images.is_empty() {
        plans.push(CapturePlan { capture_time_ms, arrived_ms: earliest, metadata, images, inputs: consumed });
    } else if !consumed.is_empty() {
        // Only heartbeats: consumed, nothing to seal.
        plans.push(CapturePlan {
            capture_time_ms,
            arrived_ms: earliest,
            metadata: empty_metadata(),
            images: Vec::new(),
            inputs: consumed,
        });
    }
    plans
}

fn empty_metadata() -> CaptureMetadata {
    CaptureMetadata {
        version: METADATA_VERSION,
        read: None,
        other_reads: Vec::new(),
        engine: None,
        images: Vec::new(),
        quarantine: None,
        expired_images: Vec::new(),
    }
}

fn read_record(read: &PlateRead) -> PlateReadRecord {
    let mut vehicle = Vec::new();
    if let Some(attributes) = &read.vehicle {
        for (name, value) in [
            ("color", &attributes.color),
            ("make", &attributes.make),
            ("make_model", &attributes.make_model),
            ("body_type", &attributes.body_type),
            ("year", &attributes.year),
        ] {
            if let Some(value) = value {
                vehicle.push((name.to_string(), value.clone()));
            }
        }
    }
    PlateReadRecord {
        plate: read.plate.clone(),
        confidence: read.confidence,
        region: read.region.clone(),
        candidates: read
            .candidates
            .iter()
            .map(|c| CandidateRecord { plate: c.plate.clone(), confidence: c.confidence })
            .collect(),
        bbox: read.bbox.map(|b| [b.x.max(0) as u32, b.y.max(0) as u32, b.width, b.height]),
        vehicle,
    }
}

fn prepare_image(bytes: &[u8], role: ImageRole) -> Result<PlannedImage, String> {
    let stripped = strip::strip_metadata(bytes).map_err(|e| format!("not a usable image: {e}"))?;
    let kind = match stripped.kind {
        strip::ImageKind::Jpeg => PartKind::Jpeg,
        strip::ImageKind::Png => PartKind::Png,
    };
    Ok(PlannedImage {
        role,
        kind,
        stripped: stripped.removed.iter().map(|s| s.to_string()).collect(),
        pdq: crate::fingerprint::image_hashes(&stripped.bytes),
        bytes: Zeroizing::new(stripped.bytes),
    })
}

fn quarantine(file: &InputFile, reason: &str, capture_time_ms: i64) -> CapturePlan {
    let raw_base64 = (file.bytes.len() <= MAX_QUARANTINE_RAW_BYTES)
        .then(|| base64::engine::general_purpose::STANDARD.encode(&file.bytes[..]));
    let mut metadata = empty_metadata();
    metadata.quarantine = Some(QuarantineRecord {
        reason: reason.to_string(),
        file_name: file.name.clone(),
        raw_sha256: hex::encode(Sha256::digest(&file.bytes[..])),
        raw_bytes: file.bytes.len() as u64,
        raw_base64,
    });
    CapturePlan {
        capture_time_ms,
        arrived_ms: capture_time_ms,
        metadata,
        images: Vec::new(),
        inputs: vec![file.consumed()],
    }
}

/// Why a plan could not be sealed now.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SealPlanError {
    /// No published epoch covers this class at the capture time; fetch a newer set and retry.
    #[error("no epoch key for {class} at {time_ms}")]
    NoEpoch {
        /// The class.
        class: &'static str,
        /// The capture time.
        time_ms: i64,
    },
    /// Sealing failed.
    #[error("sealing failed: {0}")]
    Seal(#[from] custodia_seal::SealError),
}

/// Who is sealing.
pub struct Sealer<'a> {
    /// Device id.
    pub device_id: DeviceId,
    /// Site.
    pub site: &'a SiteName,
    /// Lane.
    pub lane: &'a LaneName,
    /// Device key.
    pub key: &'a DeviceSigningKey,
}

/// Seals a plan. Groups come in a fixed order (plate, overview, face); the metadata part is the
/// first part of the group of [`CapturePlan::metadata_class`].
pub fn seal_plan(
    plan: &CapturePlan,
    sequence: u64,
    sealer: &Sealer<'_>,
    epochs: &EpochSet,
    rng: &mut (impl RngCore + CryptoRng),
) -> Result<Vec<u8>, SealPlanError> {
    let metadata_class = plan.metadata_class();
    let classes = plan.classes();

    // Lay out parts and fill in where each image lands.
    let mut metadata = plan.metadata.clone();
    let mut layout: Vec<Vec<(PartKind, Option<usize>)>> = Vec::new();
    for (group_index, &class) in classes.iter().enumerate() {
        let mut parts = Vec::new();
        if class == metadata_class {
            parts.push((PartKind::Metadata, None));
        }
        for (image_index, image) in plan.images.iter().enumerate() {
            if image.role.class() == class {
                metadata.images.push(ImageRecord {
                    group: group_index as u8,
                    part: parts.len() as u8,
                    role: image.role,
                    bytes: image.bytes.len() as u64,
                    sha256: hex::encode(Sha256::digest(&image.bytes[..])),
                    stripped: image.stripped.clone(),
                    pdq: image.pdq.clone(),
                });
                parts.push((image.kind, Some(image_index)));
            }
        }
        layout.push(parts);
    }
    let metadata_bytes = Zeroizing::new(metadata.to_vec());

    let mut announcements = Vec::with_capacity(classes.len());
    for &class in &classes {
        let epoch = epochs
            .find(sealer.site, class, plan.capture_time_ms)
            .ok_or(SealPlanError::NoEpoch { class: class.as_str(), time_ms: plan.capture_time_ms })?;
        announcements.push(epoch);
    }
    let groups: Vec<GroupToSeal<'_>> = classes
        .iter()
        .zip(&layout)
        .zip(&announcements)
        .map(|((&class, parts), epoch)| GroupToSeal {
            class,
            epoch_id: epoch.epoch_id,
            epoch_key: &epoch.public_key,
            parts: parts
                .iter()
                .map(|(kind, image)| PartToSeal {
                    kind: *kind,
                    plaintext: match image {
                        Some(i) => &plan.images[*i].bytes[..],
                        None => &metadata_bytes[..],
                    },
                })
                .collect(),
        })
        .collect();
    let header = CaptureHeader {
        device_id: sealer.device_id,
        site: sealer.site.clone(),
        lane: sealer.lane.clone(),
        capture_time_ms: plan.capture_time_ms,
        sequence,
    };
    Ok(custodia_seal::seal(&header, &groups, sealer.key, rng)?)
}
