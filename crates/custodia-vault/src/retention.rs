//! Retention by crypto-shredding (DESIGN.md R7): when a key epoch's retention is over its private
//! key is destroyed, and with it every copy of every capture part sealed to it, wherever that
//! copy is. Then the blobs and index rows that can no longer be opened are deleted.
//!
//! # Rules
//!
//! [`RetentionRules`] says how long each class is kept after its epoch *ends*: faces 12 h (CBP's
//! rule for US citizens' photos), plate reads, crops and overviews 30 days; a face hand-off
//! (non-citizen, stated legal basis) may extend a face to 14 days. The vault takes them from its
//! policy ([`Vault::retention_rules`]), whose named jurisdiction profiles cap every class and
//! never lengthen one. An epoch
//! (site, class, `[not_before, not_after)`) expires at `not_after + rules.for_class(class)`; an
//! extension epoch (see below) at its `not_after`.
//!
//! # A run ([`Vault::run_retention`])
//!
//! 1. For each expired epoch whose key is not destroyed: count its records, then, under the log
//!    lock, append a `shredded {epoch, records}` event durably, destroy the key and mark the
//!    epoch row destroyed. The event is first, so a key is never destroyed without its event;
//!    if the process dies after the event, the log's reconcile destroys the key on the next
//!    open (`reconcile_locked`), so an event never stands without its effect.
//! 2. For each blind-index month `blind/YYYY-MM` whose end plus the longest plate/overview
//!    retention has passed: `blind-key-shredded {month, entries}`, destroy the key, delete the
//!    month's blind-index rows (same ordering and recovery).
//! 3. [`Keystore::seal_destructions`](custodia_store::Keystore::seal_destructions) once if
//!    anything was destroyed (the file keystore moves to a fresh master key, so a copy of the
//!    keystore taken earlier no longer opens with any key the vault has).
//! 4. Clean-up, idempotent and resumable: for every destroyed epoch that still has rows, delete
//!    its group and reseal rows; a group left with no way to open it loses its perceptual
//!    hashes; a record left with none loses its record and blind-index rows in the same
//!    transaction, and its blob key goes to a purge queue; then the queued blobs are deleted
//!    and their queue entries removed. An interrupted run leaves rows under a destroyed epoch
//!    or queue entries, and the next run finishes them.
//!
//! # Re-sealing ([`Vault::reseal_group`])
//!
//! Legal hold and hand-off re-wrap one group's data key (HPKE, same binding as in the capture)
//! to an *extension epoch*: one P-256 key per (site, class, expiry day), named
//! `extend/<class>/<day end ms>/<hex site>`, with an epochs row and an `epoch-created` event, so
//! ordinary retention shreds it at the end of that day. The blob is never modified (its device
//! signature keeps verifying). A record's blob is deleted only when no group has either its
//! original epoch key or a live reseal. [`Vault::group_data_key`] is the one place that knows
//! which of the two opens a group.
//!
//! What it is not: a scheduler (`custodia serve` runs it every minute; `custodia retention run`
//! runs it once), or a policy engine (who may place a hold is the caller's decision; the stated
//! basis is logged).

use std::sync::Mutex;
use std::time::{Duration, Instant};

use custodia_seal::{
    DataKey, EpochId, EpochPublicKey, RetentionClass, SealedCapture, WrappedDataKey, data_key_binding, unwrap_data_key,
    wrap_data_key,
};
use custodia_store::index::{EXTENSION_PREFIX, EpochRow, RecordId, ResealRow};
use custodia_store::{KeyName, KeyState, KeystoreError};
use futures::{StreamExt, TryStreamExt};
use serde::Serialize;

use crate::audit::vault::event_text as text;
use crate::audit::{Action, Actor, Text};
use crate::civil::civil_date;
use crate::config::{DAY_MS, HOUR_MS};
use crate::{Vault, VaultError};

/// Group and reseal rows deleted per index transaction during clean-up.
const PURGE_BATCH: usize = 10_000;
/// Blobs taken from the purge queue per round.
const BLOB_BATCH: usize = 16_384;
/// Blob deletes in flight at once (local unlinks and S3 DELETEs alike are latency-bound).
const BLOB_DELETES_IN_FLIGHT: usize = 64;

/// How long each retention class is kept after its epoch ends, in milliseconds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct RetentionRules {
    /// Occupant faces. Default 12 h (CBP: photos of US citizens are deleted within 12 hours).
    pub face_ms: i64,
    /// The longest a face may be kept through a hand-off reseal (`hand-off:<basis>`), counted
    /// from its epoch's end. Default 14 days. A legal hold is not bounded by it.
    pub face_handoff_ms: i64,
    /// Plate reads and plate crops. Default 30 days.
    pub plate_ms: i64,
    /// Vehicle overviews and vehicle crops. Default 30 days.
    pub overview_ms: i64,
}

impl Default for RetentionRules {
    fn default() -> Self {
        Self { face_ms: 12 * HOUR_MS, face_handoff_ms: 14 * DAY_MS, plate_ms: 30 * DAY_MS, overview_ms: 30 * DAY_MS }
    }
}

impl RetentionRules {
    /// How long `class` is kept after its epoch ends.
    pub fn for_class(&self, class: RetentionClass) -> i64 {
        match class {
            RetentionClass::Face => self.face_ms,
            RetentionClass::Plate => self.plate_ms,
            RetentionClass::Overview => self.overview_ms,
        }
    }

    /// The longest plate or overview retention: a blind-index month key is kept this long
    /// after the month ends.
    pub fn longest_plate_ms(&self) -> i64 {
        self.plate_ms.max(self.overview_ms)
    }

    /// Refuses negative periods, naming the field.
    pub fn check(&self) -> Result<(), String> {
        for (name, v) in [
            ("face_ms", self.face_ms),
            ("face_handoff_ms", self.face_handoff_ms),
            ("plate_ms", self.plate_ms),
            ("overview_ms", self.overview_ms),
        ] {
            if v < 0 {
                return Err(format!("{name}: {v} must not be negative"));
            }
        }
        Ok(())
    }

    /// When `epoch`'s key expires under these rules: `not_after + retention of its class`, or
    /// `not_after` for an extension epoch (its period already is the extension).
    pub fn expires_at(&self, epoch: &EpochRow) -> i64 {
        if is_extension(epoch) {
            epoch.not_after_ms
        } else {
            epoch.not_after_ms.saturating_add(self.for_class(epoch.class))
        }
    }
}

/// Whether an epoch is an extension epoch (holds only re-sealed data keys).
pub fn is_extension(epoch: &EpochRow) -> bool {
    epoch.key_name.starts_with(EXTENSION_PREFIX)
}

/// One epoch shredded by a run.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ShreddedEpoch {
    /// Epoch id.
    pub epoch: String,
    /// Its site.
    pub site: String,
    /// Its class.
    pub class: String,
    /// Whether it was an extension epoch.
    pub extension: bool,
    /// Records that had a group (or reseal) under it, as logged.
    pub records: u64,
    /// Seconds spent counting its records.
    pub count_seconds: f64,
    /// Seconds from appending its `shredded` event to its key destroyed and its row marked.
    pub destroy_seconds: f64,
}

/// What one retention run did.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct RetentionReport {
    /// Epochs whose keys this run destroyed (one `shredded` event each).
    pub shredded: Vec<ShreddedEpoch>,
    /// Blind-index months whose keys this run destroyed (one `blind-key-shredded` each).
    pub blind_months: Vec<String>,
    /// Blind-index rows deleted with those keys.
    pub blind_entries: u64,
    /// Records whose rows were deleted (this run's shreds and any interrupted earlier run's).
    pub records_deleted: u64,
    /// Perceptual-hash rows deleted.
    pub pdq_rows_deleted: u64,
    /// Blobs deleted.
    pub blobs_deleted: u64,
    /// Seconds spent counting, logging and destroying keys, sealing included (steps 1–3).
    pub key_seconds: f64,
    /// Of which in `Keystore::seal_destructions` (the file keystore's master key rotation).
    pub seal_seconds: f64,
    /// Seconds spent deleting index rows.
    pub index_seconds: f64,
    /// Seconds spent deleting blobs.
    pub blob_seconds: f64,
    /// Seconds for the whole run.
    pub seconds: f64,
}

impl RetentionReport {
    /// Number of epochs shredded.
    pub fn epochs_shredded(&self) -> usize {
        self.shredded.len()
    }
}

/// One epoch as `retention status` shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct EpochSummary {
    /// Epoch id.
    pub epoch: String,
    /// Site.
    pub site: String,
    /// Class.
    pub class: String,
    /// Whether it is an extension epoch.
    pub extension: bool,
    /// End of its period (unix ms).
    pub not_after_ms: i64,
    /// When its key expires under the rules (unix ms).
    pub expires_at_ms: i64,
    /// Records with a group or reseal under it.
    pub records: u64,
}

/// Where retention stands.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RetentionStatus {
    /// The vault's clock.
    pub now_ms: i64,
    /// Expired epochs whose keys are not yet destroyed (the next run shreds them).
    pub expired: Vec<EpochSummary>,
    /// The next epoch to expire after now.
    pub next: Option<EpochSummary>,
    /// Epochs whose keys are present (published ahead, current, or within retention).
    pub live_epochs: usize,
    /// Destroyed epochs whose rows are still to be cleaned up.
    pub cleanup_epochs: usize,
    /// Blobs waiting to be deleted.
    pub purge_queue: u64,
    /// Records stored.
    pub records: u64,
    /// Re-sealed groups (legal holds and hand-offs, live or awaiting clean-up).
    pub reseals: u64,
}

/// What a reseal's basis says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Basis {
    LegalHold,
    HandOff,
}

fn parse_basis(basis: &str) -> Result<(Basis, Text), VaultError> {
    let invalid = |reason: String| VaultError::Invalid { what: "reseal basis", reason };
    let (kind, rest) = if let Some(rest) = basis.strip_prefix("legal-hold:") {
        (Basis::LegalHold, rest)
    } else if let Some(rest) = basis.strip_prefix("hand-off:") {
        (Basis::HandOff, rest)
    } else {
        return Err(invalid("state it as `legal-hold:<case>` or `hand-off:<legal basis>`".into()));
    };
    if rest.trim().is_empty() {
        return Err(invalid("the case or legal basis after the prefix is empty".into()));
    }
    let text = Text::new(basis).map_err(|e| invalid(format!("not loggable text: {e}")))?;
    Ok((kind, text))
}

fn key_name(name: &str) -> Result<KeyName, VaultError> {
    Ok(KeyName::new(name)?)
}

/// Keystore name of the extension epoch for (`site`, `class`) ending at `day_end_ms`.
pub(crate) fn extension_key_name(site: &str, class: RetentionClass, day_end_ms: i64) -> Result<KeyName, VaultError> {
    key_name(&format!("{EXTENSION_PREFIX}{}/{day_end_ms}/{}", class.as_str(), hex::encode(site)))
}

/// Keystore name of a blind-index month key (as `Vault::blind_key` names it).
fn blind_key_name(month: &str) -> Result<KeyName, VaultError> {
    key_name(&format!("blind/{month}"))
}

/// Unix ms of the first instant of (`year`, `month`) in UTC.
fn month_start_ms(year: i64, month: u32) -> i64 {
    // Howard Hinnant's days-from-civil (public domain), the inverse of `civil::civil_date`.
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = i64::from(month);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    (era * 146_097 + doe - 719_468) * DAY_MS
}

/// (year, month) of a `YYYY-MM` label.
fn parse_month(label: &str) -> Option<(i64, u32)> {
    let (y, m) = label.split_once('-')?;
    let (year, month) = (y.parse().ok()?, m.parse().ok()?);
    (y.len() == 4 && m.len() == 2 && (1..=12).contains(&month)).then_some((year, month))
}

fn next_month(year: i64, month: u32) -> (i64, u32) {
    if month == 12 { (year + 1, 1) } else { (year, month + 1) }
}

/// Serialises creation of extension epochs (two holds on the same day would otherwise race to
/// generate the same key name).
static EXTENSION_LOCK: Mutex<()> = Mutex::new(());

impl Vault {
    /// Runs retention once: shreds every expired epoch and blind-index month, then deletes
    /// what can no longer be opened (see the module doc for the order and what a crash leaves).
    /// `actor` is [`Actor::system`] for scheduled runs.
    pub async fn run_retention(&self, rules: &RetentionRules, actor: &Actor) -> Result<RetentionReport, VaultError> {
        rules.check().map_err(|reason| VaultError::Invalid { what: "retention rules", reason })?;
        let started = Instant::now();
        let (vault, r, a) = (self.clone(), rules.clone(), actor.clone());
        let mut report = tokio::task::spawn_blocking(move || vault.shred_expired(&r, &a))
            .await
            .expect("retention key task does not panic")?;
        report.key_seconds = started.elapsed().as_secs_f64();

        let index_started = Instant::now();
        let vault = self.clone();
        let (records, pdq) = tokio::task::spawn_blocking(move || vault.purge_destroyed_rows())
            .await
            .expect("retention index task does not panic")?;
        report.records_deleted = records;
        report.pdq_rows_deleted = pdq;
        report.index_seconds = index_started.elapsed().as_secs_f64();

        let blob_started = Instant::now();
        report.blobs_deleted = self.delete_purged_blobs().await?;
        report.blob_seconds = blob_started.elapsed().as_secs_f64();
        report.seconds = started.elapsed().as_secs_f64();
        if !report.shredded.is_empty() || !report.blind_months.is_empty() || report.blobs_deleted > 0 {
            tracing::info!(
                epochs = report.shredded.len(),
                months = report.blind_months.len(),
                records = report.records_deleted,
                blobs = report.blobs_deleted,
                "retention run"
            );
        }
        Ok(report)
    }

    /// Steps 1–3: log and destroy every expired key. Blocking.
    fn shred_expired(&self, rules: &RetentionRules, actor: &Actor) -> Result<RetentionReport, VaultError> {
        let index = &self.inner.index;
        let now = self.now_ms();
        let mut report = RetentionReport::default();
        for epoch in index.unshredded_epochs()? {
            if rules.expires_at(&epoch) > now {
                continue;
            }
            let started = Instant::now();
            let records = index.epoch_record_count(&epoch.id)?;
            let count_seconds = started.elapsed().as_secs_f64();
            let event = actor.event(now, Action::Shredded { epoch: text(epoch.id.to_string())?, records })?;
            let started = Instant::now();
            self.logged(&[event], || self.apply_shred(&epoch.id, now).map(|_| ()))?;
            report.shredded.push(ShreddedEpoch {
                epoch: epoch.id.to_string(),
                site: epoch.site.clone(),
                class: epoch.class.as_str().to_string(),
                extension: is_extension(&epoch),
                records,
                count_seconds,
                destroy_seconds: started.elapsed().as_secs_f64(),
            });
        }
        for month in self.blind_months_due(rules, now)? {
            let entries = index.month_plate_count(&month)?;
            let event = actor.event(now, Action::BlindKeyShredded { month: text(month.clone())?, entries })?;
            self.logged(&[event], || self.apply_blind_shred(&month).map(|_| ()))?;
            report.blind_entries += entries;
            report.blind_months.push(month);
        }
        if !report.shredded.is_empty() || !report.blind_months.is_empty() {
            let started = Instant::now();
            let mut rng = self.inner.rng.lock().expect("rng lock");
            self.inner.keystore.seal_destructions(rng.as_mut())?;
            report.seal_seconds = started.elapsed().as_secs_f64();
        }
        Ok(report)
    }

    /// Months whose blind-index key is present and due: the month's end plus the longest
    /// plate/overview retention has passed. Candidates are every month from the vault's first
    /// epoch to now: a capture is only accepted inside an epoch, so every month with rows is
    /// among them, and so is a month whose key a search made without rows. (Not a scan of the
    /// blind-index rows: that costs a second per million rows, every run.)
    fn blind_months_due(&self, rules: &RetentionRules, now: i64) -> Result<Vec<String>, VaultError> {
        let index = &self.inner.index;
        let mut months = std::collections::BTreeSet::new();
        if let Some(first) = index.earliest_epoch_start()? {
            let (mut y, mut m, _) = civil_date(first.min(now));
            let (end_y, end_m, _) = civil_date(now);
            while (y, m) <= (end_y, end_m) {
                months.insert(format!("{y:04}-{m:02}"));
                (y, m) = next_month(y, m);
            }
        }
        let mut due = Vec::new();
        for month in months {
            let Some((y, m)) = parse_month(&month) else { continue };
            let (ny, nm) = next_month(y, m);
            if month_start_ms(ny, nm).saturating_add(rules.longest_plate_ms()) > now {
                continue;
            }
            if self.inner.keystore.state(&blind_key_name(&month)?)? == KeyState::Present {
                due.push(month);
            }
        }
        Ok(due)
    }

    /// The effect of a `shredded` event: destroy the epoch's key and mark its row. Idempotent;
    /// returns whether anything was left to do. Also run by the log's reconcile.
    pub(crate) fn apply_shred(&self, epoch: &EpochId, at_ms: i64) -> Result<bool, VaultError> {
        let index = &self.inner.index;
        let Some(row) = index.epoch(epoch)? else {
            return Err(VaultError::Invalid { what: "shredded epoch", reason: format!("no epoch {epoch}") });
        };
        let name = key_name(&row.key_name)?;
        let mut changed = false;
        if self.inner.keystore.state(&name)? != KeyState::Destroyed {
            match self.inner.keystore.destroy(&name) {
                Ok(()) => changed = true,
                // A key that is not there at all is as gone as a destroyed one.
                Err(KeystoreError::NotFound(_)) => {
                    tracing::warn!(key = %name, "shredding an epoch whose key was missing");
                }
                Err(e) => return Err(e.into()),
            }
        }
        if row.destroyed_at_ms.is_none() {
            index.mark_epoch_destroyed(epoch, at_ms)?;
            changed = true;
        }
        Ok(changed)
    }

    /// The effect of a `blind-key-shredded` event: destroy the month key, delete the month's
    /// blind-index rows. Idempotent; returns whether anything was left to do.
    pub(crate) fn apply_blind_shred(&self, month: &str) -> Result<bool, VaultError> {
        let name = blind_key_name(month)?;
        let mut changed = false;
        if self.inner.keystore.state(&name)? == KeyState::Present {
            self.inner.keystore.destroy(&name)?;
            changed = true;
        }
        changed |= self.inner.index.delete_month_plates(month)? > 0;
        Ok(changed)
    }

    /// The effect of a `resealed` event whose wrapped key was never stored (a crash between the
    /// event and the row): wrap the group's data key to the event's extension epoch again.
    /// Idempotent; returns whether anything was left to do. Run by the log's reconcile, which
    /// only has the local blob folder (as for `ingested`).
    pub(crate) fn reapply_reseal(
        &self,
        record: &str,
        class: &str,
        to_epoch: &str,
        at_ms: i64,
    ) -> Result<bool, VaultError> {
        let bad = |reason: String| VaultError::Invalid { what: "resealed event", reason };
        let id: RecordId = record.parse().map_err(|_| bad(format!("record id {record}")))?;
        let class: RetentionClass = class.parse().map_err(|_| bad(format!("class {class}")))?;
        let to: EpochId = to_epoch.parse().map_err(|_| bad(format!("epoch id {to_epoch}")))?;
        let index = &self.inner.index;
        let (Some(row), Some(extension)) = (index.record(&id)?, index.epoch(&to)?) else {
            // Shredded since, or never stored: nothing to hold.
            return Ok(false);
        };
        if extension.destroyed_at_ms.is_some() {
            return Ok(false);
        }
        let path = self.inner.dir.join("blobs").join(&row.blob_key);
        let blob =
            std::fs::read(&path).map_err(|source| VaultError::Io { path: path.display().to_string(), source })?;
        let capture = SealedCapture::parse(&blob).map_err(|e| bad(format!("stored blob of {id}: {e}")))?;
        let public_key =
            EpochPublicKey::from_sec1_bytes(&extension.public_key).map_err(|e| bad(format!("extension key: {e}")))?;
        let mut changed = false;
        for group in (0..capture.groups().len()).filter(|&g| capture.groups()[g].class() == class) {
            let group = group as u8;
            if index.reseals(&id, group)?.iter().any(|r| r.epoch == to) {
                continue;
            }
            let (data_key, _) = self.open_group(&id, &capture, group)?;
            let binding = data_key_binding(&id.device, id.sequence, group);
            let wrapped = {
                let mut rng = self.inner.rng.lock().expect("rng lock");
                wrap_data_key(&data_key, &public_key, &binding, &mut rng.as_mut())
            };
            index.insert_reseal(&ResealRow {
                record: id,
                group,
                epoch: to,
                wrapped: wrapped.to_bytes().to_vec(),
                resealed_at_ms: at_ms,
            })?;
            changed = true;
        }
        Ok(changed)
    }

    /// Called by the log's reconcile after it re-applied destructions: make them final against
    /// earlier keystore copies, as a run does.
    pub(crate) fn seal_after_reconcile(&self) -> Result<(), VaultError> {
        let mut rng = self.inner.rng.lock().expect("rng lock");
        Ok(self.inner.keystore.seal_destructions(rng.as_mut())?)
    }

    /// Step 4a: delete the rows under every destroyed epoch that still has some. Blocking.
    /// Returns (records deleted, perceptual-hash rows deleted).
    fn purge_destroyed_rows(&self) -> Result<(u64, u64), VaultError> {
        let index = &self.inner.index;
        let (mut records, mut pdq) = (0u64, 0u64);
        for epoch in index.destroyed_epochs_with_rows()? {
            loop {
                let batch = index.purge_epoch_batch(&epoch.id, PURGE_BATCH)?;
                records += batch.records as u64;
                pdq += batch.pdq_rows as u64;
                if batch.handles == 0 {
                    break;
                }
            }
        }
        Ok((records, pdq))
    }

    /// Step 4b: delete the blobs in the purge queue, then their queue entries.
    async fn delete_purged_blobs(&self) -> Result<u64, VaultError> {
        let mut deleted = 0u64;
        loop {
            let vault = self.clone();
            let queue = tokio::task::spawn_blocking(move || vault.inner.index.purge_queue(BLOB_BATCH))
                .await
                .expect("purge queue read does not panic")?;
            if queue.is_empty() {
                return Ok(deleted);
            }
            // Owned futures: a stream of borrowing closures makes the whole run's future
            // not `Send` for every lifetime, which a spawned task needs.
            let deletes: Vec<_> = queue
                .iter()
                .map(|(_, key)| {
                    let (blobs, key) = (self.inner.blobs.clone(), key.clone());
                    async move { blobs.delete(&key).await }
                })
                .collect();
            futures::stream::iter(deletes).buffer_unordered(BLOB_DELETES_IN_FLIGHT).try_collect::<Vec<()>>().await?;
            deleted += queue.len() as u64;
            let ids: Vec<RecordId> = queue.into_iter().map(|(id, _)| id).collect();
            let vault = self.clone();
            tokio::task::spawn_blocking(move || vault.inner.index.purge_done(&ids))
                .await
                .expect("purge queue update does not panic")?;
        }
    }

    /// Where retention stands under `rules`: what the next run would shred, what expires next.
    pub fn retention_status(&self, rules: &RetentionRules) -> Result<RetentionStatus, VaultError> {
        let index = &self.inner.index;
        let now = self.now_ms();
        let summary = |e: &EpochRow| -> Result<EpochSummary, VaultError> {
            Ok(EpochSummary {
                epoch: e.id.to_string(),
                site: e.site.clone(),
                class: e.class.as_str().to_string(),
                extension: is_extension(e),
                not_after_ms: e.not_after_ms,
                expires_at_ms: rules.expires_at(e),
                records: index.epoch_record_count(&e.id)?,
            })
        };
        let live = index.unshredded_epochs()?;
        let mut expired = Vec::new();
        let mut next: Option<&EpochRow> = None;
        for e in &live {
            if rules.expires_at(e) <= now {
                expired.push(summary(e)?);
            } else if next.is_none_or(|n| rules.expires_at(e) < rules.expires_at(n)) {
                next = Some(e);
            }
        }
        Ok(RetentionStatus {
            now_ms: now,
            next: next.map(summary).transpose()?,
            live_epochs: live.len() - expired.len(),
            expired,
            cleanup_epochs: index.destroyed_epochs_with_rows()?.len(),
            purge_queue: index.purge_queue_len()?,
            records: index.record_count()?,
            reseals: index.reseal_count()?,
        })
    }

    /// [`Vault::reseal_group_under`] with the hand-off limit of the policy in force.
    pub async fn reseal_group(
        &self,
        record: &RecordId,
        class: RetentionClass,
        until_ms: i64,
        basis: &str,
        actor: &Actor,
    ) -> Result<(), VaultError> {
        self.reseal_group_under(&self.retention_rules(), record, class, until_ms, basis, actor).await
    }

    /// Keeps the `class` group(s) of `record` readable until at least `until_ms` (rounded up
    /// to the end of that UTC day) by re-wrapping their data keys to an extension epoch.
    ///
    /// `basis` is `legal-hold:<case>` or `hand-off:<legal basis>`. A face hand-off may reach at
    /// most the face's epoch end + `rules.face_handoff_ms`; a legal hold is not bounded. Logs
    /// `resealed` (after `epoch-created` for a new extension epoch) before storing the re-wrapped
    /// key. The blob is not modified.
    pub async fn reseal_group_under(
        &self,
        rules: &RetentionRules,
        record: &RecordId,
        class: RetentionClass,
        until_ms: i64,
        basis: &str,
        actor: &Actor,
    ) -> Result<(), VaultError> {
        let (kind, basis_text) = parse_basis(basis)?;
        let now = self.now_ms();
        let invalid = |reason: String| VaultError::Invalid { what: "reseal", reason };
        if until_ms <= now {
            return Err(invalid(format!("until {until_ms} is not in the future (now {now})")));
        }
        let row = self.inner.index.record(record)?.ok_or_else(|| invalid(format!("no record {record} is stored")))?;
        let blob = self.inner.blobs.get(&row.blob_key).await?;
        let capture = SealedCapture::parse(&blob).map_err(|e| invalid(format!("stored blob of {record}: {e}")))?;
        let groups: Vec<u8> =
            (0..capture.groups().len()).filter(|&g| capture.groups()[g].class() == class).map(|g| g as u8).collect();
        if groups.is_empty() {
            return Err(invalid(format!("record {record} has no {} group", class.as_str())));
        }
        for &group in &groups {
            let original =
                self.inner.index.epoch(&capture.groups()[group as usize].epoch_id())?.ok_or_else(|| {
                    invalid(format!("group {group} of {record} names an epoch the vault does not have"))
                })?;
            if class == RetentionClass::Face && kind == Basis::HandOff {
                let limit = original.not_after_ms.saturating_add(rules.face_handoff_ms);
                if until_ms > limit {
                    return Err(invalid(format!(
                        "a face hand-off may keep a face at most {} h after its epoch ends (until {limit}); \
                         {until_ms} is later. Only a `legal-hold:<case>` may keep it longer",
                        rules.face_handoff_ms / HOUR_MS
                    )));
                }
            }
        }
        for group in groups {
            let (data_key, via) = self.open_group(record, &capture, group)?;
            let extension = self.extension_epoch(&row.site, class, until_ms)?;
            let public_key = EpochPublicKey::from_sec1_bytes(&extension.public_key)
                .map_err(|e| invalid(format!("extension epoch key: {e}")))?;
            let binding = data_key_binding(&record.device, record.sequence, group);
            let wrapped = {
                let mut rng = self.inner.rng.lock().expect("rng lock");
                wrap_data_key(&data_key, &public_key, &binding, &mut rng.as_mut())
            };
            drop(data_key);
            let event = actor.event(
                now,
                Action::Resealed {
                    record: text(record.to_string())?,
                    class: text(class.as_str())?,
                    from_epoch: text(via.to_string())?,
                    to_epoch: text(extension.id.to_string())?,
                    until_ms,
                    basis: basis_text.clone(),
                },
            )?;
            let reseal = ResealRow {
                record: *record,
                group,
                epoch: extension.id,
                wrapped: wrapped.to_bytes().to_vec(),
                resealed_at_ms: now,
            };
            self.logged(&[event], || Ok(self.inner.index.insert_reseal(&reseal)?))?;
        }
        Ok(())
    }

    /// The extension epoch for (`site`, `class`) covering `until_ms`, created (logged
    /// `epoch-created`) if it does not exist yet.
    fn extension_epoch(&self, site: &str, class: RetentionClass, until_ms: i64) -> Result<EpochRow, VaultError> {
        let _one_at_a_time = EXTENSION_LOCK.lock().unwrap_or_else(|p| p.into_inner());
        let day_end = until_ms.div_euclid(DAY_MS) * DAY_MS + if until_ms.rem_euclid(DAY_MS) == 0 { 0 } else { DAY_MS };
        let name = extension_key_name(site, class, day_end)?;
        if let Some(row) = self.inner.index.epoch_by_key_name(name.as_str())? {
            if row.destroyed_at_ms.is_some() {
                return Err(VaultError::Shredded(format!("extension epoch {} was already shredded", row.id)));
            }
            return Ok(row);
        }
        let already_shredded = || VaultError::Shredded(format!("extension key {name} was already shredded"));
        self.create_epoch_under(&name, site, class, (self.now_ms(), day_end), already_shredded)
    }

    /// The data key of group `group` of a stored record: through its original epoch key if that
    /// is still present, else through a live reseal. [`VaultError::Shredded`] when every key
    /// that could open it is destroyed. Fetches the blob; a caller that holds it already uses
    /// [`Vault::group_data_key_in`].
    pub async fn group_data_key(&self, record: &RecordId, group: u8) -> Result<DataKey, VaultError> {
        let row = self.inner.index.record(record)?.ok_or_else(|| VaultError::Invalid {
            what: "record",
            reason: format!("no record {record} is stored (never ingested, or shredded)"),
        })?;
        let blob = self.inner.blobs.get(&row.blob_key).await?;
        let capture = SealedCapture::parse(&blob)
            .map_err(|e| VaultError::Invalid { what: "stored capture", reason: e.to_string() })?;
        self.group_data_key_in(record, &capture, group)
    }

    /// [`Vault::group_data_key`] for a capture the caller has already fetched and parsed.
    pub fn group_data_key_in(
        &self,
        record: &RecordId,
        capture: &SealedCapture<'_>,
        group: u8,
    ) -> Result<DataKey, VaultError> {
        Ok(self.open_group(record, capture, group)?.0)
    }

    /// Opens a group's data key; also says which epoch opened it.
    fn open_group(
        &self,
        record: &RecordId,
        capture: &SealedCapture<'_>,
        group: u8,
    ) -> Result<(DataKey, EpochId), VaultError> {
        let header = capture.header();
        if header.device_id != record.device || header.sequence != record.sequence {
            return Err(VaultError::Invalid { what: "stored capture", reason: format!("it is not record {record}") });
        }
        let sealed = capture.groups().get(group as usize).ok_or_else(|| VaultError::Invalid {
            what: "group",
            reason: format!("record {record} has no group {group}"),
        })?;
        // One opaque failure: a present key that does not open its wrap means damage, and the
        // caller learns nothing about which check failed.
        let unopenable = || VaultError::Invalid { what: "stored capture", reason: "a data key does not open".into() };
        let keystore = &self.inner.keystore;
        if let Some(epoch) = self.inner.index.epoch(&sealed.epoch_id())?
            && epoch.destroyed_at_ms.is_none()
        {
            match keystore.epoch_decapsulator(&key_name(&epoch.key_name)?) {
                Ok(dec) => {
                    let key = capture.open_data_key(group as usize, dec.as_ref()).map_err(|_| unopenable())?;
                    return Ok((key, epoch.id));
                }
                Err(KeystoreError::Destroyed(_) | KeystoreError::NotFound(_)) => {}
                Err(e) => return Err(e.into()),
            }
        }
        let binding = data_key_binding(&record.device, record.sequence, group);
        for reseal in self.inner.index.reseals(record, group)? {
            let Some(epoch) = self.inner.index.epoch(&reseal.epoch)? else { continue };
            if epoch.destroyed_at_ms.is_some() {
                continue;
            }
            let dec = match keystore.epoch_decapsulator(&key_name(&epoch.key_name)?) {
                Ok(dec) => dec,
                Err(KeystoreError::Destroyed(_) | KeystoreError::NotFound(_)) => continue,
                Err(e) => return Err(e.into()),
            };
            let wrapped = WrappedDataKey::from_bytes(&reseal.wrapped).map_err(|_| unopenable())?;
            let key = unwrap_data_key(&wrapped, dec.as_ref(), &binding).map_err(|_| unopenable())?;
            return Ok((key, epoch.id));
        }
        Err(VaultError::Shredded(format!("group {group} of record {record}: every key that opened it is destroyed")))
    }
}

/// How often `custodia serve` runs retention.
pub const DEFAULT_RUN_EVERY: Duration = Duration::from_secs(60);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn month_starts_invert_civil_dates() {
        for (y, m) in [(1970, 1), (2019, 5), (2024, 2), (2024, 3), (1969, 12), (2100, 3)] {
            let start = month_start_ms(y, m);
            assert_eq!(civil_date(start), (y, m, 1));
            assert_eq!(civil_date(start - 1).1, if m == 1 { 12 } else { m - 1 });
        }
        assert_eq!(month_start_ms(2019, 5) + 30 * DAY_MS, 1_559_260_800_000);
    }

    #[test]
    fn the_default_rules_are_the_real_ones() {
        let d = RetentionRules::default();
        assert_eq!(
            (d.face_ms, d.face_handoff_ms, d.plate_ms, d.overview_ms),
            (43_200_000, 1_209_600_000, 2_592_000_000, 2_592_000_000)
        );
    }

    #[test]
    fn basis_must_name_hold_or_hand_off() {
        assert_eq!(parse_basis("legal-hold:case-2019-0531").unwrap().0, Basis::LegalHold);
        assert_eq!(parse_basis("hand-off:8 USC 1357").unwrap().0, Basis::HandOff);
        for bad in ["", "legal-hold:", "hand-off:  ", "because", "legal-hold:\"x\""] {
            assert!(parse_basis(bad).is_err(), "{bad:?}");
        }
    }
}
