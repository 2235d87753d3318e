//! The vault side of the audit log: logging each action before its effect, reconciling the last
//! frame after a crash or failed effect, the ingest committer's log step, checkpoints and proofs.
//! See the module doc of [`crate::audit`] for the ordering argument.

use std::sync::Arc;

use custodia_seal::{DeviceId, EpochId, RetentionClass};
use custodia_store::index::{DeviceRow, DeviceStatus, EpochRow, InsertOutcome, NewRecord, RecordId};
use custodia_tlog::TlogProof;

use super::event::text;
use super::{Action, AuditLog, Event, LogError, LogFault, LogState, Published};
use crate::{Vault, VaultError};

fn ev_err(e: super::EventError) -> VaultError {
    VaultError::Invalid { what: "audit event", reason: e.to_string() }
}

/// An event field's text, refused as an invalid audit event if it breaks [`super::Text`]'s rules.
pub(crate) fn event_text(s: impl Into<String>) -> Result<super::Text, VaultError> {
    text(s).map_err(ev_err)
}

/// The vault acting on its own behalf (admin CLI actions, epoch maintenance).
pub(crate) fn system_event(time_ms: i64, action: Action) -> Result<Event, VaultError> {
    Actor::system().event(time_ms, action)
}

/// Who performs an action, as its audit event names them: a principal in one of its roles,
/// with the purpose code and case number the action is made under when it needs them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Actor {
    /// Principal id (`officer-7`), or `vault` for the vault itself.
    pub principal: String,
    /// The role acted in (`officer`, `supervisor`, `admin`, ..., `system`).
    pub role: String,
    /// Purpose code, when the action needs one.
    pub purpose: Option<String>,
    /// Case number, when there is one.
    pub case: Option<String>,
}

impl Actor {
    /// The vault acting on its own behalf (scheduled retention, epoch maintenance, CLI admin).
    pub fn system() -> Self {
        Self { principal: "vault".into(), role: "system".into(), purpose: None, case: None }
    }

    /// The audit event of `action` performed by this actor at `time_ms`.
    pub fn event(&self, time_ms: i64, action: Action) -> Result<Event, VaultError> {
        let opt = |v: &Option<String>| v.as_deref().map(text).transpose().map_err(ev_err);
        Ok(Event {
            time_ms,
            principal: text(&self.principal).map_err(ev_err)?,
            role: text(&self.role).map_err(ev_err)?,
            purpose: opt(&self.purpose)?,
            case: opt(&self.case)?,
            action,
        })
    }
}

/// A search by blind value, by the vault's own operator (the principal-bearing API comes with
/// the policy crate). The query is recorded as SHA-256 of the blind value: linkable between
/// searches for the same plate in the same month, but not reversible to the plate.
pub(crate) fn searched_event(time_ms: i64, blind: &[u8; 16], results: usize) -> Result<Event, VaultError> {
    use sha2::Digest as _;
    let query: [u8; 32] = sha2::Sha256::digest(blind).into();
    system_event(time_ms, Action::Searched { query, results: results as u64 })
}

/// The `ingested` event of a record about to be stored.
pub(crate) fn ingested_event(r: &NewRecord) -> Result<Event, VaultError> {
    Ok(Event {
        time_ms: r.ingested_at_ms,
        principal: text(format!("device:{}", r.id.device)).map_err(ev_err)?,
        role: text("lane").map_err(ev_err)?,
        purpose: None,
        case: None,
        action: Action::Ingested {
            record: text(r.id.to_string()).map_err(ev_err)?,
            digest: r.content_digest,
            site: text(&r.site).map_err(ev_err)?,
            lane: text(&r.lane).map_err(ev_err)?,
            capture_time_ms: r.capture_time_ms,
            device: text(r.id.device.to_string()).map_err(ev_err)?,
            epochs: r.groups.iter().map(|g| text(g.epoch.to_string())).collect::<Result<_, _>>().map_err(ev_err)?,
        },
    })
}

impl Vault {
    /// The audit log.
    pub fn audit_log(&self) -> &AuditLog {
        &self.inner.log
    }

    /// Appends `events` durably, then runs `effect`, holding the log's lock throughout, so the
    /// effect is never visible before its events are durable (see [`crate::audit`]).
    pub(crate) fn logged<R>(
        &self,
        events: &[Event],
        effect: impl FnOnce() -> Result<R, VaultError>,
    ) -> Result<R, VaultError> {
        let mut state = self.inner.log.lock();
        self.append_locked(&mut state, events)?;
        if self.inner.log.take_fault(LogFault::FailAfterAppend) {
            return Err(LogError::Unavailable("injected failure after append".into()).into());
        }
        let r = effect()?;
        state.needs_reconcile = false;
        Ok(r)
    }

    /// Appends events that have no effect of their own to wait for (reads, searches, scans).
    pub fn log_events(&self, events: &[Event]) -> Result<u64, VaultError> {
        let mut state = self.inner.log.lock();
        let first = self.append_locked(&mut state, events)?;
        state.needs_reconcile = false;
        Ok(first)
    }

    fn append_locked(&self, state: &mut LogState, events: &[Event]) -> Result<u64, VaultError> {
        if state.needs_reconcile {
            self.reconcile_locked(state)?;
        }
        if self.inner.log.take_fault(LogFault::FailAppend) {
            return Err(LogError::Unavailable("injected append failure".into()).into());
        }
        let bytes: Vec<Vec<u8>> = events.iter().map(Event::to_bytes).collect();
        let first = state.file.append(&bytes)?;
        state.needs_reconcile = true;
        Ok(first)
    }

    /// Re-applies any effect of the last frame that is missing. Idempotent.
    pub(crate) fn reconcile_locked(&self, state: &mut LogState) -> Result<(), VaultError> {
        let (first, entries) = state.file.last_frame()?;
        let index = &self.inner.index;
        let mut repaired = 0usize;
        let mut destroyed = false;
        for (k, bytes) in entries.iter().enumerate() {
            let event = Event::parse(bytes).map_err(|e| VaultError::Invalid {
                what: "audit log entry",
                reason: format!("entry {}: {e}", first + k as u64),
            })?;
            let bad = |reason: String| VaultError::Invalid { what: "audit log entry", reason };
            match &event.action {
                Action::Ingested { record, digest, site, capture_time_ms, .. } => {
                    let id: RecordId = record.as_str().parse().map_err(|_| bad(format!("record id {record}")))?;
                    if index.record(&id)?.is_some() {
                        continue;
                    }
                    let key = crate::ingest::blob_key(site.as_str(), *capture_time_ms, &id, digest);
                    let path = self.inner.dir.join("blobs").join(&key);
                    let body = std::fs::read(&path)
                        .map_err(|source| VaultError::Io { path: path.display().to_string(), source })?;
                    let recovered = self.check_capture_for_recovery(&body);
                    if let Some(mut row) = recovered.map_err(|e| bad(format!("re-checking {record}: {e}")))? {
                        row.ingested_at_ms = event.time_ms;
                        index.insert_records(&[row])?;
                        repaired += 1;
                    }
                }
                Action::DeviceEnrolled { device, site, lane, public_key } => {
                    let id: DeviceId = device.as_str().parse().map_err(|_| bad(format!("device id {device}")))?;
                    if index.device(&id)?.is_none() {
                        index.insert_device(&DeviceRow {
                            id,
                            site: site.to_string(),
                            lane: lane.to_string(),
                            public_key: *public_key,
                            status: DeviceStatus::Active,
                            enrolled_at_ms: event.time_ms,
                            revoked_at_ms: None,
                        })?;
                        repaired += 1;
                    }
                }
                Action::DeviceRevoked { device } => {
                    let id: DeviceId = device.as_str().parse().map_err(|_| bad(format!("device id {device}")))?;
                    if index.device(&id)?.is_some_and(|d| d.status == DeviceStatus::Active) {
                        index.revoke_device(&id, event.time_ms)?;
                        repaired += 1;
                    }
                }
                Action::EpochCreated { epoch, site, class, not_before_ms, not_after_ms, public_key } => {
                    let id: EpochId = epoch.as_str().parse().map_err(|_| bad(format!("epoch id {epoch}")))?;
                    if index.epoch(&id)?.is_none() {
                        let class: RetentionClass =
                            class.as_str().parse().map_err(|_| bad(format!("class {class}")))?;
                        // A period's epoch is named by its start; an extension epoch (reseals)
                        // by its end: the one whose key matches the event's public key is it.
                        let regular = crate::epochs::epoch_key_name(site.as_str(), class, *not_before_ms)?;
                        let extension = crate::retention::extension_key_name(site.as_str(), class, *not_after_ms)?;
                        let matches = |name: &custodia_store::KeyName| {
                            self.inner
                                .keystore
                                .epoch_decapsulator(name)
                                .is_ok_and(|d| d.public_key().to_sec1_bytes().as_slice() == public_key.as_slice())
                        };
                        let key_name = if !matches(&regular) && matches(&extension) { extension } else { regular };
                        index.insert_epoch(&EpochRow {
                            id,
                            site: site.to_string(),
                            class,
                            not_before_ms: *not_before_ms,
                            not_after_ms: *not_after_ms,
                            public_key: public_key.clone(),
                            key_name: key_name.as_str().to_string(),
                            destroyed_at_ms: None,
                        })?;
                        repaired += 1;
                    }
                }
                // Retention: the key destruction (and row clean-up of a month) a crash after the
                // event left undone. The rest of a shred's clean-up is the next run's.
                Action::Shredded { epoch, .. } => {
                    let id: EpochId = epoch.as_str().parse().map_err(|_| bad(format!("epoch id {epoch}")))?;
                    if self.apply_shred(&id, event.time_ms)? {
                        repaired += 1;
                        destroyed = true;
                    }
                }
                Action::BlindKeyShredded { month, .. } => {
                    let changed = self.apply_blind_shred(month.as_str())?;
                    if changed {
                        repaired += 1;
                        destroyed = true;
                    }
                }
                Action::Resealed { record, class, to_epoch, .. } => {
                    let changed =
                        self.reapply_reseal(record.as_str(), class.as_str(), to_epoch.as_str(), event.time_ms)?;
                    if changed {
                        repaired += 1;
                    }
                }
                // Events with no index effect of their own.
                _ => {}
            }
        }
        if destroyed {
            self.seal_after_reconcile()?;
        }
        if repaired > 0 {
            tracing::warn!(repaired, "audit log: re-applied effects of the last logged batch after a failure");
        }
        state.needs_reconcile = false;
        Ok(())
    }

    /// The committer's step for a batch whose blobs are durable: log one `ingested` event per
    /// record that will be newly inserted, durably, then insert the rows. Runs on a blocking
    /// thread.
    pub(crate) fn commit_logged(&self, records: &[NewRecord]) -> Result<Vec<InsertOutcome>, VaultError> {
        let mut state = self.inner.log.lock();
        if state.needs_reconcile {
            self.reconcile_locked(&mut state)?;
        }
        // The committer is the only writer of records and holds the log lock, so what the index
        // says now is what the insert will find. Within the batch, the first of an id wins.
        let ids: Vec<_> = records.iter().map(|r| r.id).collect();
        let stored = self.inner.index.stored_records(&ids)?;
        let mut seen = std::collections::HashSet::new();
        let mut events = Vec::new();
        let mut expect_new = Vec::with_capacity(records.len());
        for (r, stored) in records.iter().zip(stored) {
            let new = seen.insert(r.id) && !stored;
            if new {
                events.push(ingested_event(r)?);
            }
            expect_new.push(new);
        }
        self.append_locked(&mut state, &events)?;
        if self.inner.log.take_fault(LogFault::FailAfterAppend) {
            return Err(LogError::Unavailable("injected failure after append".into()).into());
        }
        let outcomes = self.inner.index.insert_records(records)?;
        for (outcome, new) in outcomes.iter().zip(&expect_new) {
            if (*outcome == InsertOutcome::Inserted) != *new {
                // Cannot happen while the committer is the only record writer; if it does, the
                // reconcile on the next append settles the log and the index again.
                return Err(LogError::Unavailable("index outcome differs from what was logged".into()).into());
            }
        }
        state.needs_reconcile = false;
        Ok(outcomes)
    }

    /// Signs a checkpoint of the current tree if it grew, and returns the latest.
    pub fn publish_checkpoint(&self) -> Result<Published, VaultError> {
        Ok(self.inner.log.publish(self.inner.keystore.as_ref())?)
    }

    /// A C2SP tlog-proof for log entry `index`.
    pub fn prove_entry(&self, index: u64) -> Result<TlogProof, VaultError> {
        Ok(self.inner.log.prove(index, self.inner.keystore.as_ref())?)
    }

    /// The `ingested` entry of `record`: its index, its bytes and a tlog-proof.
    pub fn prove_record(&self, record: &RecordId) -> Result<Option<(u64, Vec<u8>, TlogProof)>, VaultError> {
        let Some(index) = self.inner.log.find_ingested(&record.to_string())? else { return Ok(None) };
        let entry = self.inner.log.entry(index)?;
        Ok(Some((index, entry, self.prove_entry(index)?)))
    }

    /// The log's verifier key (`name+id+base64`), for auditors' `--key`.
    pub fn log_verifier_key(&self) -> String {
        self.inner.log.verifier_key()
    }
}

/// Signs a checkpoint every [`super::CHECKPOINT_INTERVAL`] while the log grows.
pub(crate) async fn run_checkpointer(vault: std::sync::Weak<crate::Inner>) {
    loop {
        tokio::time::sleep(super::CHECKPOINT_INTERVAL).await;
        let Some(inner) = vault.upgrade() else { break };
        let v = Vault { inner: Arc::clone(&inner) };
        drop(inner);
        match tokio::task::spawn_blocking(move || v.publish_checkpoint()).await {
            Ok(Ok(_)) => {}
            Ok(Err(error)) => tracing::error!(%error, "signing an audit checkpoint failed"),
            Err(error) => tracing::error!(%error, "audit checkpoint task failed"),
        }
    }
}
