//! Capture ingest: verify, open the metadata part only, index, store, acknowledge when durable.
//!
//! The checks run in the order that spends the least on a bad request: size, structure, device,
//! signature, idempotency, epochs, then the one decapsulation and AEAD open of the metadata part.
//! A checked capture has its blob written and then joins the current batch; the committer syncs
//! them with one `syncfs`, appends one `ingested` audit event per new record to the log (one
//! fsync), inserts all index rows in one SQLite transaction (one fsync), and only then answers
//! every request in the batch. Nothing is acknowledged that a crash could lose, and no record is
//! visible before its event is durable (see [`crate::audit`] for recovery between the steps).
//! Then a task beside it drops the batch's blobs from the kernel's page cache: they are rarely read
//! back.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use custodia_seal::metadata::CaptureMetadata;
use custodia_seal::{PartKind, SealedCapture};
use custodia_store::index::{BlindPlate, DeviceStatus, InsertOutcome, NewRecord, RecordGroup, RecordId};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use tokio::sync::{mpsc, oneshot};

use crate::Vault;
use crate::civil::{date_label, month_label};

/// Largest sealed capture accepted, in bytes (the HTTP layer refuses larger bodies before reading
/// them). Three images of a few MB each plus headers.
pub const MAX_CAPTURE_BYTES: usize = custodia_seal::MAX_CAPTURE_BYTES;

/// What the vault answers to an accepted capture.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Receipt {
    /// The record's id, `<device>-<sequence>`.
    pub record_id: String,
    /// True when this capture was already stored (a retried upload).
    pub duplicate: bool,
}

/// Why a capture was refused. Each variant is one precise reason an operator can act on; none
/// carries plate text or image content.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IngestError {
    /// The body is larger than [`MAX_CAPTURE_BYTES`].
    #[error("capture is {0} bytes, over the {MAX_CAPTURE_BYTES}-byte limit")]
    TooLarge(usize),
    /// The body is not a well-formed sealed capture v1.
    #[error("not a well-formed sealed capture: {0}")]
    Malformed(String),
    /// The device id in the header is not enrolled.
    #[error("device {0} is not enrolled")]
    UnknownDevice(String),
    /// The device was revoked.
    #[error("device {0} is revoked")]
    RevokedDevice(String),
    /// The device signature does not verify with the enrolled key.
    #[error("the device signature does not verify")]
    BadSignature,
    /// The header names another site or lane than the device was enrolled for.
    #[error("device {device} is enrolled for {expected}, capture says {got}")]
    WrongPlace {
        /// The device.
        device: String,
        /// `site/lane` it was enrolled for.
        expected: String,
        /// `site/lane` the capture names.
        got: String,
    },
    /// The capture time is older than the vault accepts or ahead of its clock.
    #[error("capture time {capture_ms} is outside the accepted window ({reason})")]
    CaptureTime {
        /// The capture time (unix ms).
        capture_ms: i64,
        /// "older than N days" or "ahead of the vault clock".
        reason: String,
    },
    /// A group names an epoch the vault does not have.
    #[error("group {group} is sealed to unknown epoch {epoch}")]
    UnknownEpoch {
        /// Group index.
        group: usize,
        /// Epoch id.
        epoch: String,
    },
    /// A group's epoch is for another site or class, or does not cover the capture time.
    #[error("group {group}: epoch {epoch} does not cover this capture ({reason})")]
    EpochMismatch {
        /// Group index.
        group: usize,
        /// Epoch id.
        epoch: String,
        /// What does not match.
        reason: &'static str,
    },
    /// A group's epoch key has been destroyed (its retention period is over).
    #[error("group {group}: epoch {epoch} has been shredded")]
    EpochShredded {
        /// Group index.
        group: usize,
        /// Epoch id.
        epoch: String,
    },
    /// The device already stored other content under this sequence number.
    #[error(
        "sequence {sequence} of device {device} is already stored with different content (replay or forked device)"
    )]
    SequenceConflict {
        /// The device.
        device: String,
        /// The sequence number.
        sequence: u64,
    },
    /// The capture has no metadata part.
    #[error("capture has no metadata part")]
    NoMetadata,
    /// The metadata part does not open with the epoch key. Deliberately says no more.
    #[error("the metadata part cannot be opened")]
    MetadataUnopenable,
    /// The metadata part opened but is not valid, or disagrees with the header.
    #[error("metadata part is invalid: {0}")]
    MetadataInvalid(String),
    /// The vault could not make the capture durable (disk full, I/O error). Intake is stopped
    /// for this capture; nothing was acknowledged; the lane keeps it and retries.
    #[error("storage unavailable: {0}")]
    Storage(String),
    /// The vault is shutting down.
    #[error("the vault is shutting down")]
    ShuttingDown,
}

/// What the committer has done: how many batches it made durable, and where their time went.
/// A diagnostic for operators and the ingest bench; nothing decides anything by it.
///
/// With many captures arriving, the committer is always busy by design (it takes whatever queued
/// while it worked as its next batch), so a busy committer does not by itself mean it is the
/// limit; the mean batch and the two times say what one batch cost.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CommitterStats {
    /// Batches taken, including refused ones.
    pub batches: u64,
    /// Captures in those batches.
    pub captures: u64,
    /// Time spent making batches' blobs durable (one `syncfs` each on a local folder).
    pub syncing: Duration,
    /// Time spent appending batches' `ingested` events and inserting their index rows.
    pub recording: Duration,
}

impl CommitterStats {
    /// What happened between `earlier` and `self`, two snapshots of the same vault.
    pub fn since(&self, earlier: &CommitterStats) -> CommitterStats {
        CommitterStats {
            batches: self.batches.saturating_sub(earlier.batches),
            captures: self.captures.saturating_sub(earlier.captures),
            syncing: self.syncing.saturating_sub(earlier.syncing),
            recording: self.recording.saturating_sub(earlier.recording),
        }
    }

    /// Captures per batch, on average (0 with no batch).
    pub fn mean_batch(&self) -> f64 {
        if self.batches == 0 { 0.0 } else { self.captures as f64 / self.batches as f64 }
    }
}

/// The live counters behind [`CommitterStats`]; only the committer adds to them.
#[derive(Default)]
pub(crate) struct CommitterCounters {
    batches: AtomicU64,
    captures: AtomicU64,
    syncing_ns: AtomicU64,
    recording_ns: AtomicU64,
}

impl CommitterCounters {
    fn add(&self, captures: usize, syncing: Duration, recording: Duration) {
        let nanos = |d: Duration| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        self.batches.fetch_add(1, Ordering::Relaxed);
        self.captures.fetch_add(captures as u64, Ordering::Relaxed);
        self.syncing_ns.fetch_add(nanos(syncing), Ordering::Relaxed);
        self.recording_ns.fetch_add(nanos(recording), Ordering::Relaxed);
    }

    pub(crate) fn snapshot(&self) -> CommitterStats {
        CommitterStats {
            batches: self.batches.load(Ordering::Relaxed),
            captures: self.captures.load(Ordering::Relaxed),
            syncing: Duration::from_nanos(self.syncing_ns.load(Ordering::Relaxed)),
            recording: Duration::from_nanos(self.recording_ns.load(Ordering::Relaxed)),
        }
    }
}

/// A checked capture, its blob written but not yet synced, waiting for the committer.
pub(crate) struct Pending {
    pub record: NewRecord,
    pub bytes: Bytes,
    pub reply: oneshot::Sender<Result<Receipt, IngestError>>,
}

impl Vault {
    /// Ingests one sealed capture: returns its receipt once it is durable.
    pub async fn ingest(&self, body: Bytes) -> Result<Receipt, IngestError> {
        let record = match self.check_capture(&body)? {
            Checked::New(record) => *record,
            Checked::AlreadyStored(id) => {
                return Ok(Receipt { record_id: id.to_string(), duplicate: true });
            }
        };
        // Written now, synced by the committer: writing overlaps with other captures' checks and
        // with the previous batch's sync instead of waiting for the batch. Unsynced or refused
        // blobs are harmless: keys carry the content digest, so nothing accepted is overwritten,
        // and a retry finds its blob already there.
        self.inner.blobs.put_new(&record.blob_key, body.clone()).await.map_err(storage)?;
        let (reply, answer) = oneshot::channel();
        self.inner
            .committer
            .send(Pending { record, bytes: body, reply })
            .await
            .map_err(|_| IngestError::ShuttingDown)?;
        answer.await.map_err(|_| IngestError::ShuttingDown)?
    }

    /// All checks, and the metadata open, for one capture. Pure CPU and index reads.
    fn check_capture(&self, body: &[u8]) -> Result<Checked, IngestError> {
        self.check_capture_with(body, true)
    }

    /// Re-checks a stored blob whose `ingested` event is logged but whose row is missing
    /// (audit-log recovery). The capture-time window is not applied: it was when it arrived.
    pub(crate) fn check_capture_for_recovery(&self, body: &[u8]) -> Result<Option<NewRecord>, IngestError> {
        match self.check_capture_with(body, false)? {
            Checked::New(record) => Ok(Some(*record)),
            Checked::AlreadyStored(_) => Ok(None),
        }
    }

    fn check_capture_with(&self, body: &[u8], time_window: bool) -> Result<Checked, IngestError> {
        if body.len() > MAX_CAPTURE_BYTES {
            return Err(IngestError::TooLarge(body.len()));
        }
        let capture = SealedCapture::parse(body).map_err(|e| IngestError::Malformed(e.to_string()))?;
        let header = capture.header();
        let device_id = header.device_id;
        let id = RecordId { device: device_id, sequence: header.sequence };
        // Every row the checks below need, in one read (checked in the same order as before).
        let epoch_ids: Vec<_> = capture.groups().iter().map(|g| g.epoch_id()).collect();
        let context = self.inner.index.capture_context(&device_id, &id, &epoch_ids).map_err(storage)?;
        let device = context.device.ok_or_else(|| IngestError::UnknownDevice(device_id.to_string()))?;
        if device.status == DeviceStatus::Revoked {
            return Err(IngestError::RevokedDevice(device_id.to_string()));
        }
        let key = custodia_seal::DeviceVerifyingKey::from_bytes(&device.public_key)
            .map_err(|_| storage("enrolled device key is invalid"))?;
        let digest = capture.verify_signature_with_digest(&key).map_err(|_| IngestError::BadSignature)?;
        let (site, lane) = (header.site.as_str(), header.lane.as_str());
        if device.site != site || device.lane != lane {
            return Err(IngestError::WrongPlace {
                device: device_id.to_string(),
                expected: format!("{}/{}", device.site, device.lane),
                got: format!("{site}/{lane}"),
            });
        }

        if let Some(stored) = context.record {
            return if stored.content_digest == digest {
                Ok(Checked::AlreadyStored(id))
            } else {
                Err(IngestError::SequenceConflict { device: device_id.to_string(), sequence: id.sequence })
            };
        }

        let now = self.inner.clock.now_ms();
        let capture_ms = header.capture_time_ms;
        let config = &self.inner.config;
        if time_window && capture_ms > now + config.max_clock_skew_ms {
            return Err(IngestError::CaptureTime { capture_ms, reason: "ahead of the vault clock".into() });
        }
        if time_window && capture_ms < now - config.max_capture_age_ms {
            return Err(IngestError::CaptureTime {
                capture_ms,
                reason: format!("older than {} days", config.max_capture_age_ms / crate::config::DAY_MS),
            });
        }

        let mut groups = Vec::with_capacity(capture.groups().len());
        let mut metadata_epoch_key = None;
        let metadata_at = capture.metadata_part().ok_or(IngestError::NoMetadata)?;
        for ((index, group), epoch) in capture.groups().iter().enumerate().zip(context.epochs) {
            let epoch_name = group.epoch_id().to_string();
            let epoch = epoch.ok_or_else(|| IngestError::UnknownEpoch { group: index, epoch: epoch_name.clone() })?;
            let mismatch = |reason| IngestError::EpochMismatch { group: index, epoch: epoch_name.clone(), reason };
            // Extension epochs hold re-sealed data keys for holds and hand-offs; their public keys
            // are in the public log, but nothing a lane captures may be sealed to them.
            if epoch.key_name.starts_with(custodia_store::index::EXTENSION_PREFIX) {
                return Err(mismatch("epoch is a retention extension, not a capture epoch"));
            }
            if epoch.site != site {
                return Err(mismatch("epoch is for another site"));
            }
            if epoch.class != group.class() {
                return Err(mismatch("epoch is for another retention class"));
            }
            if capture_ms < epoch.not_before_ms || capture_ms >= epoch.not_after_ms {
                return Err(mismatch("capture time is outside the epoch's period"));
            }
            if epoch.destroyed_at_ms.is_some() {
                return Err(IngestError::EpochShredded { group: index, epoch: epoch_name });
            }
            if index == metadata_at.0 {
                metadata_epoch_key = Some(epoch.key_name.clone());
            }
            groups.push(RecordGroup { index: index as u8, class: group.class(), epoch: group.epoch_id() });
        }

        // The one decapsulation: open the metadata part, derive what the index needs, forget the
        // data key (it is zeroized on drop).
        let key_name = custodia_store::KeyName::new(metadata_epoch_key.expect("metadata group was visited"))
            .map_err(|_| storage("epoch key name is invalid"))?;
        let decapsulator = self.inner.keystore.epoch_decapsulator(&key_name).map_err(|e| match e {
            custodia_store::KeystoreError::Destroyed(_) => IngestError::EpochShredded {
                group: metadata_at.0,
                epoch: capture.groups()[metadata_at.0].epoch_id().to_string(),
            },
            other => storage(other),
        })?;
        let data_key =
            capture.open_data_key(metadata_at.0, decapsulator.as_ref()).map_err(|_| IngestError::MetadataUnopenable)?;
        let plaintext =
            capture.open_part(metadata_at.0, metadata_at.1, &data_key).map_err(|_| IngestError::MetadataUnopenable)?;
        drop(data_key);
        let metadata =
            CaptureMetadata::from_slice(&plaintext).map_err(|e| IngestError::MetadataInvalid(e.to_string()))?;
        let image_roles = check_images_against_header(&capture, &metadata)?;
        let plates = self.blind_plates(&metadata, capture_ms)?;
        drop(plaintext);

        let blob_key = blob_key(site, capture_ms, &id, &digest);
        Ok(Checked::New(Box::new(NewRecord {
            id,
            content_digest: digest,
            site: site.to_string(),
            lane: lane.to_string(),
            capture_time_ms: capture_ms,
            blob_key,
            size: body.len() as u64,
            ingested_at_ms: now,
            groups,
            plates,
            image_roles,
            quarantine_reason: metadata.quarantine.as_ref().map(|q| q.reason.clone()),
            pdq: pdq_entries(&metadata)?,
        })))
    }

    /// Blind-index values for the read and its candidates under the capture month's key.
    fn blind_plates(&self, metadata: &CaptureMetadata, capture_ms: i64) -> Result<Vec<BlindPlate>, IngestError> {
        let reads: Vec<_> = metadata.read.iter().chain(&metadata.other_reads).collect();
        if reads.is_empty() {
            return Ok(Vec::new());
        }
        let month = month_label(capture_ms);
        let key = self.blind_key(&month)?;
        let plates = reads.iter().flat_map(|read| {
            std::iter::once(read.plate.as_str()).chain(read.candidates.iter().map(|c| c.plate.as_str()))
        });
        let mut seen = std::collections::HashSet::new();
        Ok(plates
            .enumerate()
            .filter(|(_, plate)| seen.insert(*plate))
            .take(u8::MAX as usize)
            .map(|(rank, plate)| BlindPlate { month: month.clone(), blind: blind_value(&key, plate), rank: rank as u8 })
            .collect())
    }

    pub(crate) fn blind_key(&self, month: &str) -> Result<zeroize::Zeroizing<[u8; 32]>, IngestError> {
        let name = custodia_store::KeyName::new(format!("blind/{month}")).map_err(storage)?;
        let mut rng = self.inner.rng.lock().expect("rng lock");
        self.inner.keystore.secret(&name, rng.as_mut()).map_err(storage)
    }
}

/// Where the sealed blob of a record is stored: everything in the key is in its `ingested`
/// audit event, so recovery can find the blob from the event.
pub(crate) fn blob_key(site: &str, capture_ms: i64, id: &RecordId, digest: &[u8; 32]) -> String {
    format!(
        "captures/{site}/{}/{}/{:020}-{}.cap",
        date_label(capture_ms),
        id.device,
        id.sequence,
        hex::encode(&digest[..8])
    )
}

/// The blind-index value of a normalised plate under a month key.
pub fn blind_value(key: &[u8; 32], plate: &str) -> [u8; 16] {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(b"custodia/blind-plate/v1\0");
    mac.update(plate.as_bytes());
    let full = mac.finalize().into_bytes();
    full[..16].try_into().expect("HMAC-SHA256 is 32 bytes")
}

/// The perceptual hashes the lane put in the metadata part, parsed for the index. A hash that
/// is not 64 hex digits, a quality over 100 or an unknown pipeline name refuses the capture: the
/// lane signed it, so it is a lane bug to surface, not data to guess at.
fn pdq_entries(metadata: &CaptureMetadata) -> Result<Vec<custodia_store::index::PdqEntry>, IngestError> {
    let mut out = Vec::new();
    for image in &metadata.images {
        for p in &image.pdq {
            let bad = |what: &str| IngestError::MetadataInvalid(format!("perceptual hash: {what}"));
            let pipeline: custodia_pdq::Pipeline = p.pipeline.parse().map_err(|_| bad("unknown pipeline"))?;
            let hash: custodia_pdq::PdqHash = p.hash.parse().map_err(|_| bad("not 64 hex digits"))?;
            let quality = u8::try_from(p.quality).ok().filter(|q| *q <= 100).ok_or_else(|| bad("quality over 100"))?;
            if p.variant.is_empty() || p.variant.len() > 32 {
                return Err(bad("variant name"));
            }
            out.push(custodia_store::index::PdqEntry {
                group: image.group,
                part: image.part,
                role: image.role.as_str().to_string(),
                pipeline: pipeline.name().to_string(),
                variant: p.variant.clone(),
                hash: hash.0,
                quality,
            });
        }
    }
    Ok(out)
}

/// The metadata must describe exactly the image parts the signed header lists.
fn check_images_against_header(
    capture: &SealedCapture<'_>,
    metadata: &CaptureMetadata,
) -> Result<Vec<String>, IngestError> {
    let mut described = std::collections::HashSet::new();
    for image in &metadata.images {
        let group = capture.groups().get(image.group as usize).ok_or_else(|| {
            IngestError::MetadataInvalid(format!("image names group {} which does not exist", image.group))
        })?;
        let part = group.parts().get(image.part as usize).ok_or_else(|| {
            IngestError::MetadataInvalid(format!(
                "image names part {}/{} which does not exist",
                image.group, image.part
            ))
        })?;
        if !matches!(part.kind(), PartKind::Jpeg | PartKind::Png) {
            return Err(IngestError::MetadataInvalid(format!(
                "part {}/{} is not an image part",
                image.group, image.part
            )));
        }
        if group.class() != image.role.class() {
            return Err(IngestError::MetadataInvalid(format!(
                "a {} image is in a {} group",
                image.role.as_str(),
                group.class().as_str()
            )));
        }
        if !described.insert((image.group, image.part)) {
            return Err(IngestError::MetadataInvalid(format!(
                "part {}/{} is described twice",
                image.group, image.part
            )));
        }
    }
    let image_parts = capture
        .groups()
        .iter()
        .map(|g| g.parts().iter().filter(|p| matches!(p.kind(), PartKind::Jpeg | PartKind::Png)).count())
        .sum::<usize>();
    if image_parts != described.len() {
        return Err(IngestError::MetadataInvalid(format!(
            "header has {image_parts} image parts, metadata describes {}",
            described.len()
        )));
    }
    Ok(metadata.images.iter().map(|i| i.role.as_str().to_string()).collect())
}

enum Checked {
    New(Box<NewRecord>),
    AlreadyStored(RecordId),
}

fn storage(error: impl std::fmt::Display) -> IngestError {
    IngestError::Storage(error.to_string())
}

/// The committer: takes checked captures in batches and makes each batch durable.
pub(crate) async fn run_committer(vault: std::sync::Weak<crate::Inner>, mut queue: mpsc::Receiver<Pending>) {
    // Dropping a batch's blobs from the page cache takes ~0.1 ms a blob: it runs beside the next
    // batch instead of in front of it, at most a few batches behind.
    let Some(blobs) = vault.upgrade().map(|inner| inner.blobs.clone()) else { return };
    let (release, mut to_release) = mpsc::channel::<Vec<String>>(4);
    tokio::spawn(async move {
        while let Some(keys) = to_release.recv().await {
            blobs.release_cached(keys).await;
        }
    });
    while let Some(first) = queue.recv().await {
        let Some(inner) = vault.upgrade() else { break };
        let mut batch = vec![first];
        let mut bytes = batch[0].bytes.len();
        // Whatever queued while the previous batch was committing joins this one: that is the
        // group commit. No extra waiting, so a lone capture is not delayed.
        while batch.len() < inner.config.max_batch_records && bytes < inner.config.max_batch_bytes {
            match queue.try_recv() {
                Ok(next) => {
                    bytes += next.bytes.len();
                    batch.push(next);
                }
                Err(_) => break,
            }
        }
        commit_batch(&inner, batch, &release).await;
    }
}

async fn commit_batch(inner: &std::sync::Arc<crate::Inner>, batch: Vec<Pending>, release: &mpsc::Sender<Vec<String>>) {
    let blobs = &inner.blobs;
    let started = Instant::now();
    // Every blob of the batch was written by its request before it was queued; one syncfs makes
    // them all durable.
    let synced = blobs.sync().await;
    let syncing = started.elapsed();
    if let Err(error) = synced {
        inner.committed.add(batch.len(), syncing, Duration::ZERO);
        tracing::error!(%error, "syncing a capture batch failed; refusing the batch");
        return fail_all(batch.into_iter().map(|p| p.reply), IngestError::Storage(error.to_string()));
    }
    // The records go to the blocking task and come back, rather than being cloned: a lane's
    // capture carries some 60 strings (its hashes' names, its blind-index months).
    let (records, replies): (Vec<NewRecord>, Vec<_>) = batch.into_iter().map(|p| (p.record, p.reply)).unzip();
    // The audit step: `ingested` events durable first, then the index rows (crate::audit).
    let vault = crate::Vault { inner: std::sync::Arc::clone(inner) };
    let recording_started = Instant::now();
    let (records, outcome) = tokio::task::spawn_blocking(move || {
        let outcome = vault.commit_logged(&records);
        (records, outcome)
    })
    .await
    .expect("index insert task does not panic");
    inner.committed.add(records.len(), syncing, recording_started.elapsed());
    let outcomes = match outcome {
        Ok(outcomes) => outcomes,
        Err(error) => {
            tracing::error!(%error, "committing a capture batch to the index failed; refusing the batch");
            return fail_all(replies, IngestError::Storage(error.to_string()));
        }
    };
    crate::leak::after_commit(inner);
    let durable_keys: Vec<String> = records.iter().map(|r| r.blob_key.clone()).collect();
    for ((record, reply), outcome) in records.into_iter().zip(replies).zip(outcomes) {
        let id = record.id;
        let answer = match outcome {
            InsertOutcome::Inserted => Ok(Receipt { record_id: id.to_string(), duplicate: false }),
            InsertOutcome::Duplicate => Ok(Receipt { record_id: id.to_string(), duplicate: true }),
            InsertOutcome::Conflict => {
                // Its blob key carries its own digest, so the stored record's blob is untouched;
                // this one's blob is an orphan and goes.
                if let Err(error) = blobs.delete(&record.blob_key).await {
                    tracing::warn!(%error, key = %record.blob_key, "could not delete a refused blob");
                }
                Err(IngestError::SequenceConflict { device: id.device.to_string(), sequence: id.sequence })
            }
        };
        let _ = reply.send(answer);
    }
    // Answered; now their pages can leave the page cache (`BlobStore::release_cached`), beside
    // the next batch. A refused conflict's blob is already gone and is skipped.
    let _ = release.send(durable_keys).await;
}

fn fail_all(replies: impl IntoIterator<Item = oneshot::Sender<Result<Receipt, IngestError>>>, error: IngestError) {
    let message = error.to_string();
    for reply in replies {
        let _ = reply.send(Err(IngestError::Storage(message.clone())));
    }
}
