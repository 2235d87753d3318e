//! The lane agent's loops: watch the inbox and seal, and upload the outbox.
//!
//! [`Lane::seal_pass`] reads every group of inbox files that is ready (see [`LaneConfig`]'s
//! `settle_ms` and `pair_grace_ms`), plans and seals its captures, and commits them to the outbox in
//! one batched, crash-safe step. [`Lane::upload_pass`] sends every pending capture to the vault,
//! deleting each only on the vault's acknowledgement, moving permanent refusals aside, and
//! backing off while the vault is unreachable. [`Lane::run`] alternates both until shut down.
//!
//! [`LaneConfig`]: crate::config::LaneConfig

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use custodia_seal::epochs::{EpochSet, SignedEpochSet};
use serde::Serialize;
use zeroize::Zeroizing;

use crate::LaneError;
use crate::assemble::{self, InputFile, PairingContext, SealPlanError, Sealer, file_role, stem};
use crate::config::{LaneDir, LaneIdentity};
use crate::outbox::{Outbox, Staged, delete_inputs, pending_in, write_durably};

/// The media type of a sealed capture upload.
pub const SEALED_CAPTURE_MEDIA_TYPE: &str = "application/vnd.custodia.sealed-capture";

/// Most groups sealed in one pass (bounds memory: each may hold a few MB of plaintext).
const MAX_GROUPS_PER_PASS: usize = 64;

/// Counters an operator reads from `state/status.json`.
#[derive(Clone, Debug, Default, Serialize)]
pub struct LaneStatus {
    /// Captures sealed since start.
    pub sealed: u64,
    /// Captures the vault acknowledged since start.
    pub uploaded: u64,
    /// Acknowledged as already stored (retries after a lost answer).
    pub duplicates: u64,
    /// Captures the vault refused for good (kept in `outbox/rejected/`).
    pub rejected: u64,
    /// Inputs sealed as quarantine captures since start.
    pub quarantined: u64,
    /// Captures waiting in the outbox.
    pub backlog: u64,
    /// The last error the uploader saw, if the last attempt failed.
    pub last_upload_error: Option<String>,
    /// Recent quarantine entries: reason and file name.
    pub recent_quarantine: Vec<(String, String)>,
    /// Captures waiting in the inbox, unsealed, because no published epoch covers their time yet
    /// (a camera clock ahead of the vault's publishing horizon or far behind, or the vault
    /// unreachable with no cached set). Each is looked at again after [`HOLD_RECHECK`], then
    /// less often. For one held only because no set could be fetched, the lane retries the fetch
    /// every pass its backoff allows (250 ms doubling to 30 s), and the first success releases it
    /// into that pass.
    pub held_without_epoch: u64,
    /// Captures destroyed unsealed since start: dated before every live epoch of the class that
    /// carries their metadata, so past retention (or older than the vault accepts).
    pub expired_unsealed: u64,
    /// Images dropped from captures that were sealed without them since start: their class's
    /// retention had passed before they reached the lane (a face older than its hours).
    pub expired_images_dropped: u64,
}

/// How long a capture held for want of an epoch waits before the lane first looks at it again,
/// so held captures neither starve newer ones of a pass's [`MAX_GROUPS_PER_PASS`] nor cost a
/// fetch of the epoch set every pass. The wait doubles at each look, up to [`HOLD_RECHECK_MAX`].
pub const HOLD_RECHECK: Duration = Duration::from_secs(60);

/// The longest wait between looks at a held capture.
pub const HOLD_RECHECK_MAX: Duration = Duration::from_secs(30 * 60);

/// What became of one planned capture in a seal pass.
enum SealOutcome {
    /// Sealed under this sequence number, after dropping this many expired images.
    Sealed { sequence: u64, sealed: Vec<u8>, dropped_images: usize },
    /// No epoch in a set the vault issued this pass covers it (it is early, or its clock is
    /// wrong): its inputs stay in the inbox.
    Held(String),
    /// No epoch set could be had to judge it by (the vault unreachable): its inputs stay in the
    /// inbox until a set can be fetched.
    Unjudged(String),
    /// No epoch ever will cover its metadata: its inputs are destroyed unsealed.
    Expired(String),
}

/// A running lane.
pub struct Lane {
    dir: LaneDir,
    identity: LaneIdentity,
    outbox: Outbox,
    epochs: Option<EpochSet>,
    http: reqwest::Client,
    rng: rand_core::OsRng,
    /// When each stem was first seen and last changed.
    seen: BTreeMap<String, (Instant, u64)>,
    /// Stems held for want of an epoch, and when to look at each again.
    held: BTreeMap<String, Hold>,
    /// When the lane was enrolled: no credible capture predates it.
    enrolled_ms: i64,
    status: LaneStatus,
    /// When the uploader may try the vault again after a failed upload.
    upload_retry: Retry,
    /// When the lane may try to fetch the epoch set again after a failed fetch.
    set_retry: Retry,
    /// Set by the operator (or the demo) when the lane has no ALPR engine.
    pub expects_engine_output: bool,
}

impl Lane {
    /// Opens the lane folder, recovering any interrupted pass.
    pub fn open(dir: LaneDir) -> Result<Self, LaneError> {
        let identity = dir.load()?;
        let enrolled_ms = dir.enrolled_ms()?;
        let outbox = Outbox::open(&dir.outbox(), &dir.inbox(), &dir.state())?;
        let http = reqwest::Client::builder()
            .no_proxy()
            // The vault shows maintainers which software each lane runs (device health).
            .user_agent(concat!("custodia-lane/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(60))
            .build()
            .map_err(|e| LaneError::Config(format!("HTTP client: {e}")))?;
        let mut lane = Self {
            dir,
            identity,
            outbox,
            epochs: None,
            http,
            rng: rand_core::OsRng,
            seen: BTreeMap::new(),
            held: BTreeMap::new(),
            enrolled_ms,
            status: LaneStatus::default(),
            upload_retry: Retry::default(),
            set_retry: Retry::default(),
            expects_engine_output: true,
        };
        lane.epochs = lane.load_cached_epochs();
        lane.status.backlog = lane.outbox.pending()?.len() as u64;
        Ok(lane)
    }

    /// The lane's counters.
    pub fn status(&self) -> &LaneStatus {
        &self.status
    }

    fn epochs_cache_path(&self) -> PathBuf {
        self.dir.state().join("epochs.json")
    }

    fn load_cached_epochs(&self) -> Option<EpochSet> {
        let json = fs::read(self.epochs_cache_path()).ok()?;
        let signed = SignedEpochSet::from_json(&json).ok()?;
        // Re-verified on every load: the cache is on the lane's disk and is trusted no more than
        // the network.
        signed.verify(&self.identity.vault_key).ok()
    }

    /// Fetches the vault's epoch set, verifies it with the pinned key, and caches it.
    pub async fn refresh_epochs(&mut self) -> Result<(), LaneError> {
        let url = format!("{}/v1/epochs", self.identity.config.vault_url.trim_end_matches('/'));
        let response = self.http.get(&url).send().await.map_err(|e| LaneError::Vault(format!("GET {url}: {e}")))?;
        if !response.status().is_success() {
            return Err(LaneError::Vault(format!("GET {url}: HTTP {}", response.status())));
        }
        let json = response.bytes().await.map_err(|e| LaneError::Vault(format!("GET {url}: {e}")))?;
        let signed = SignedEpochSet::from_json(&json).map_err(|e| LaneError::EpochSet(e.to_string()))?;
        let set = signed.verify(&self.identity.vault_key).map_err(|e| LaneError::EpochSet(e.to_string()))?;
        if self.epochs.as_ref().is_some_and(|current| current.issued_at_ms > set.issued_at_ms) {
            return Err(LaneError::EpochSet("the vault sent an older epoch set than the one cached".into()));
        }
        write_durably(&self.epochs_cache_path(), &json)?;
        self.epochs = Some(set);
        Ok(())
    }

    /// Groups in the inbox that are ready to seal, by stem.
    fn ready_groups(&mut self) -> Result<Vec<(String, Vec<PathBuf>)>, LaneError> {
        let inbox = self.dir.inbox();
        let mut groups: BTreeMap<String, Vec<PathBuf>> = BTreeMap::new();
        let mut fingerprints: BTreeMap<String, u64> = BTreeMap::new();
        for entry in fs::read_dir(&inbox).map_err(|e| LaneError::io(&inbox, e))? {
            let entry = entry.map_err(|e| LaneError::io(&inbox, e))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            // Cameras write `.name.tmp` or `name.part` and rename when complete.
            if name.starts_with('.') || name.ends_with(".tmp") || name.ends_with(".part") {
                continue;
            }
            let Ok(meta) = entry.metadata() else { continue };
            if !meta.is_file() {
                continue;
            }
            let changed =
                meta.modified().ok().and_then(|t| t.duration_since(UNIX_EPOCH).ok()).map_or(0, |d| d.as_nanos() as u64);
            let key = stem(&name).to_string();
            let fingerprint = fingerprints.entry(key.clone()).or_default();
            *fingerprint = fingerprint.wrapping_mul(31).wrapping_add(changed ^ meta.len());
            groups.entry(key).or_default().push(entry.path());
        }
        let now = Instant::now();
        let settle = Duration::from_millis(self.identity.config.settle_ms);
        let grace = Duration::from_millis(self.identity.config.pair_grace_ms);
        self.seen.retain(|stem, _| groups.contains_key(stem));
        self.held.retain(|stem, _| groups.contains_key(stem));
        self.status.held_without_epoch = self.held.len() as u64;
        let mut ready = Vec::new();
        for (stem, paths) in groups {
            let fingerprint = fingerprints[&stem];
            let entry = self.seen.entry(stem.clone()).or_insert((now, fingerprint));
            if entry.1 != fingerprint {
                *entry = (now, fingerprint);
                // New or rewritten files: the group is judged afresh.
                self.held.remove(&stem);
            }
            if self.held.get(&stem).is_some_and(|hold| now < hold.look_again) {
                continue;
            }
            let quiet = now.duration_since(entry.0);
            let has_json = paths.iter().any(|p| {
                matches!(
                    file_role(&p.file_name().unwrap_or_default().to_string_lossy()),
                    assemble::FileRole::EngineJson
                )
            });
            let has_image = paths.iter().any(|p| {
                matches!(file_role(&p.file_name().unwrap_or_default().to_string_lossy()), assemble::FileRole::Image(_))
            });
            let paired = has_json && (has_image || !self.expects_engine_output);
            let alone_ok = !self.expects_engine_output && has_image;
            if (quiet >= settle && (paired || alone_ok)) || quiet >= grace.max(settle) {
                ready.push((stem, paths));
            }
            if ready.len() >= MAX_GROUPS_PER_PASS {
                break;
            }
        }
        Ok(ready)
    }

    /// Seals every ready group. Returns how many captures were sealed.
    ///
    /// A capture no published epoch covers is held in the inbox and looked at again after
    /// [`HOLD_RECHECK`]; one that no epoch ever will cover (see [`CapturePlan::expired_classes`])
    /// is destroyed unsealed, or sealed without the images whose retention has passed.
    ///
    /// [`CapturePlan::expired_classes`]: crate::assemble::CapturePlan::expired_classes
    pub async fn seal_pass(&mut self) -> Result<usize, LaneError> {
        let mut epochs = PassEpochs::default();
        if self.held.values().any(|hold| !hold.judged) {
            // Captures held only because no set could be fetched are not waiting for anything
            // about themselves: try the vault on the retry schedule, so that they are sealed
            // soon after it answers again, not after their hold or the next capture's arrival.
            // A successful fetch releases them into this pass.
            let _ = self.refresh_once(&mut epochs).await;
        }
        let ready = self.ready_groups()?;
        if ready.is_empty() {
            return Ok(0);
        }
        let mut staged = Vec::new();
        for (group_stem, paths) in ready {
            let mut files = Vec::with_capacity(paths.len());
            for path in &paths {
                let meta = fs::metadata(path).map_err(|e| LaneError::io(path, e))?;
                let modified_ms = meta
                    .modified()
                    .ok()
                    .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
                    .map_or(0, |d| d.as_millis() as i64);
                // Bound before reading: a file far over every limit is read only up to the limit
                // plus one byte, enough for the planner to refuse it by size.
                let bytes = read_bounded(path, assemble::MAX_JSON_FILE_BYTES.max(assemble::MAX_IMAGE_FILE_BYTES) + 1)?;
                let name = path.file_name().unwrap_or_default().to_string_lossy().into_owned();
                files.push(InputFile { name, bytes, modified_ms });
            }
            let context = PairingContext { expects_engine_output: self.expects_engine_output };
            for plan in assemble::plan_group(&files, context) {
                let nothing_to_seal = plan.images.is_empty()
                    && plan.metadata.read.is_none()
                    && plan.metadata.engine.is_none()
                    && plan.metadata.quarantine.is_none();
                if nothing_to_seal {
                    // Heartbeats: consumed without a capture.
                    delete_inputs(&self.dir.inbox(), &plan.inputs)?;
                    continue;
                }
                let quarantine = plan.quarantine_reason().map(str::to_string);
                let file = plan.metadata.quarantine.as_ref().map(|q| q.file_name.clone()).unwrap_or_default();
                let inputs = plan.inputs.clone();
                let (sequence, sealed) = match self.seal_with_epochs(plan, &mut epochs).await? {
                    SealOutcome::Sealed { sequence, sealed, dropped_images } => {
                        if dropped_images > 0 {
                            tracing::warn!(stem = %group_stem, dropped_images, "images past their retention dropped before sealing");
                            self.status.expired_images_dropped += dropped_images as u64;
                        }
                        (sequence, sealed)
                    }
                    SealOutcome::Held(reason) => {
                        let hold = Hold::judged(self.held.get(&group_stem));
                        tracing::warn!(stem = %group_stem, %reason, wait_s = hold.wait.as_secs(), "no epoch key; holding the capture in the inbox");
                        self.held.insert(group_stem.clone(), hold);
                        continue;
                    }
                    SealOutcome::Unjudged(reason) => {
                        let hold = Hold::unjudged();
                        tracing::warn!(stem = %group_stem, %reason, wait_s = hold.wait.as_secs(), "no epoch set; holding the capture in the inbox");
                        self.held.insert(group_stem.clone(), hold);
                        continue;
                    }
                    SealOutcome::Expired(reason) => {
                        tracing::warn!(stem = %group_stem, %reason, "capture past retention; destroyed unsealed");
                        delete_inputs(&self.dir.inbox(), &inputs)?;
                        self.status.expired_unsealed += 1;
                        continue;
                    }
                };
                if let Some(reason) = quarantine {
                    self.status.quarantined += 1;
                    self.status.recent_quarantine.push((reason, file));
                    let excess = self.status.recent_quarantine.len().saturating_sub(100);
                    self.status.recent_quarantine.drain(..excess);
                }
                staged.push(Staged { sequence, sealed, inputs });
            }
        }
        self.status.held_without_epoch = self.held.len() as u64;
        let count = staged.len();
        self.outbox.commit(staged)?;
        self.status.sealed += count as u64;
        self.status.backlog += count as u64;
        Ok(count)
    }

    /// Seals one plan with the cached epoch set, fetching a fresh one (at most once a pass) when
    /// the cached set has no epoch for it, and judging with that fresh set whether the capture is
    /// only early or past its retention.
    async fn seal_with_epochs(
        &mut self,
        mut plan: assemble::CapturePlan,
        pass: &mut PassEpochs,
    ) -> Result<SealOutcome, LaneError> {
        if self.epochs.is_none()
            && let Err(reason) = self.refresh_once(pass).await
        {
            return Ok(SealOutcome::Unjudged(reason));
        }
        let missing = loop {
            match self.seal_now(&plan)? {
                Ok(sealed) => return Ok(sealed_with(sealed, 0)),
                Err(missing) if !pass.refreshed => {
                    tracing::info!(%missing, "no cached epoch covers this capture; refreshing");
                    if let Err(reason) = self.refresh_once(pass).await {
                        return Ok(SealOutcome::Unjudged(format!("{missing}; {reason}")));
                    }
                }
                Err(missing) => break missing,
            }
        };
        // `pass.refreshed`: the set was issued by the vault during this pass.
        let epochs = self.epochs.as_ref().expect("epochs are loaded");
        let expired = plan.expired_classes(&self.identity.site, epochs, self.enrolled_ms);
        if expired.is_empty() {
            if !plan.time_is_credible(self.enrolled_ms) {
                return Ok(SealOutcome::Held(format!(
                    "{missing}; its time {} is over an hour from its arrival {} or before the lane's enrolment: \
                     a camera or engine clock is wrong",
                    plan.capture_time_ms, plan.arrived_ms
                )));
            }
            return Ok(SealOutcome::Held(missing));
        }
        let classes: Vec<&str> = expired.iter().map(|c| c.as_str()).collect();
        if expired.contains(&plan.metadata_class()) {
            return Ok(SealOutcome::Expired(format!(
                "dated {}, before every live {} epoch",
                plan.capture_time_ms,
                classes.join(", ")
            )));
        }
        let dropped_images = plan.drop_images_of(&expired);
        match self.seal_now(&plan)? {
            Ok(sealed) => Ok(sealed_with(sealed, dropped_images)),
            Err(missing) => Ok(SealOutcome::Held(missing)),
        }
    }

    /// Seals `plan` with the cached epoch set under a newly reserved sequence number; the inner
    /// error names the class no epoch covers.
    fn seal_now(&mut self, plan: &assemble::CapturePlan) -> Result<Result<(u64, Vec<u8>), String>, LaneError> {
        let epochs = self.epochs.as_ref().expect("epochs are loaded");
        let sealer = Sealer {
            device_id: self.identity.device_id,
            site: &self.identity.site,
            lane: &self.identity.lane,
            key: &self.identity.signing_key,
        };
        // Checked before a sequence number is reserved, so a held capture uses none.
        for class in plan.classes() {
            if epochs.find(&self.identity.site, class, plan.capture_time_ms).is_none() {
                return Ok(Err(format!("no {} epoch published for {}", class.as_str(), plan.capture_time_ms)));
            }
        }
        // Reserved before sealing because the header carries it; a capture that then cannot be
        // sealed leaves a gap, which is harmless (reuse is what must never happen).
        let sequence = self.outbox.next_sequence()?;
        match assemble::seal_plan(plan, sequence, &sealer, epochs, &mut self.rng) {
            Ok(sealed) => Ok(Ok((sequence, sealed))),
            Err(SealPlanError::NoEpoch { class, time_ms }) => {
                Ok(Err(format!("no {class} epoch published for {time_ms}")))
            }
            Err(other) => Err(LaneError::Seal(other.to_string())),
        }
    }

    /// Fetches the epoch set unless this pass already tried or the last failed fetch's backoff
    /// has not ended; the error says why there is none.
    async fn refresh_once(&mut self, pass: &mut PassEpochs) -> Result<(), String> {
        if pass.tried {
            return if pass.refreshed { Ok(()) } else { Err("the epoch set could not be fetched this pass".into()) };
        }
        pass.tried = true;
        if let Some(wait) = self.set_retry.wait_left() {
            return Err(format!("cannot fetch epoch keys: the last try failed; next in {} ms", wait.as_millis()));
        }
        match self.refresh_epochs().await {
            Ok(()) => {
                pass.refreshed = true;
                self.set_retry.succeeded();
                // The vault answers again: captures held only for want of a set are looked at
                // in this pass, not after their wait.
                self.held.retain(|_, hold| hold.judged);
                Ok(())
            }
            Err(e) => {
                self.set_retry.failed(&mut self.rng);
                Err(format!("cannot fetch epoch keys: {e}"))
            }
        }
    }

    /// Uploads pending captures (if the backoff allows). Returns how many were acknowledged.
    pub async fn upload_pass(&mut self) -> Result<usize, LaneError> {
        if self.upload_retry.wait_left().is_some() {
            return Ok(0);
        }
        let pending = pending_in(&self.dir.outbox())?;
        self.status.backlog = pending.len() as u64;
        if pending.is_empty() {
            return Ok(0);
        }
        let url = format!("{}/v1/captures", self.identity.config.vault_url.trim_end_matches('/'));
        let mut acknowledged = 0;
        for chunk in pending.chunks(self.identity.config.upload_concurrency) {
            let attempts = chunk.iter().map(|(_, path)| upload_one(&self.http, &url, path.clone()));
            let results = futures::future::join_all(attempts).await;
            let mut transient = None;
            for ((_, path), result) in chunk.iter().zip(results) {
                match result {
                    UploadOutcome::Stored { duplicate } => {
                        fs::remove_file(path).map_err(|e| LaneError::io(path, e))?;
                        acknowledged += 1;
                        self.status.uploaded += 1;
                        if duplicate {
                            self.status.duplicates += 1;
                        }
                    }
                    UploadOutcome::Refused { status, problem } => {
                        let target = self.dir.rejected().join(path.file_name().unwrap_or_default());
                        fs::rename(path, &target).map_err(|e| LaneError::io(&target, e))?;
                        let mut note = target.as_os_str().to_owned();
                        note.push(".problem.json");
                        write_durably(Path::new(&note), problem.as_bytes())?;
                        tracing::error!(%status, capture = %target.display(), "vault refused a capture for good");
                        self.status.rejected += 1;
                    }
                    UploadOutcome::Transient { reason, retry_after } => {
                        // The longest wait any answer of the batch asked for.
                        let asked = transient.take().and_then(|(_, asked)| asked).max(retry_after);
                        transient = Some((reason, asked));
                    }
                }
            }
            if let Some((reason, retry_after)) = transient {
                self.upload_retry.failed_at_least(retry_after, &mut self.rng);
                self.status.last_upload_error = Some(reason);
                break;
            }
            self.upload_retry.succeeded();
            self.status.last_upload_error = None;
        }
        if acknowledged > 0 {
            crate::outbox::sync_dir(&self.dir.outbox())?;
            // The vault answers: a fetch of the epoch set that failed in the outage need not wait
            // out its backoff.
            self.set_retry.succeeded();
        }
        self.status.backlog = pending_in(&self.dir.outbox())?.len() as u64;
        Ok(acknowledged)
    }

    /// Writes `state/status.json`.
    pub fn write_status(&self) -> Result<(), LaneError> {
        let json = serde_json::to_vec_pretty(&self.status).expect("status serialises");
        let path = self.dir.state().join("status.json");
        fs::write(&path, json).map_err(|e| LaneError::io(&path, e))
    }

    /// Seals and uploads until `stop` is set; then finishes the pass in hand and returns.
    pub async fn run(&mut self, stop: Arc<AtomicBool>, poll: Duration) -> Result<(), LaneError> {
        let mut last_status = Instant::now();
        while !stop.load(Ordering::SeqCst) {
            let sealed = self.seal_pass().await?;
            let uploaded = self.upload_pass().await?;
            if last_status.elapsed() >= Duration::from_secs(1) {
                self.write_status()?;
                last_status = Instant::now();
            }
            if sealed == 0 && uploaded == 0 {
                tokio::time::sleep(poll).await;
            }
        }
        self.write_status()
    }

    /// Whether nothing is waiting: inbox empty and outbox empty.
    pub fn is_idle(&self) -> Result<bool, LaneError> {
        let inbox_empty =
            fs::read_dir(self.dir.inbox()).map_err(|e| LaneError::io(&self.dir.inbox(), e))?.next().is_none();
        Ok(inbox_empty && pending_in(&self.dir.outbox())?.is_empty())
    }
}

/// A capture held in the inbox for want of an epoch.
#[derive(Clone, Copy, Debug)]
struct Hold {
    /// Passes skip the capture until then, unless its files change.
    look_again: Instant,
    /// The wait that ended at `look_again`.
    wait: Duration,
    /// Judged against a set the vault issued (the capture is early, or its clock is wrong),
    /// rather than held because no set could be fetched.
    judged: bool,
}

impl Hold {
    /// A hold after judging against a fresh set. Each look re-plans the group (perceptual hashes
    /// included), so a capture judged early again waits twice as long, up to
    /// [`HOLD_RECHECK_MAX`].
    fn judged(previous: Option<&Hold>) -> Self {
        let wait = previous.filter(|p| p.judged).map_or(HOLD_RECHECK, |p| (p.wait * 2).min(HOLD_RECHECK_MAX));
        Self { look_again: Instant::now() + wait, wait, judged: true }
    }

    /// A hold for want of a set: the wait does not grow, since nothing was learnt about the
    /// capture, and a later successful fetch releases it at once.
    fn unjudged() -> Self {
        Self { look_again: Instant::now() + HOLD_RECHECK, wait: HOLD_RECHECK, judged: false }
    }
}

/// Backoff between tries of a vault call that failed: 250 ms doubling to 30 s, with jitter so
/// that many lanes coming back after an outage do not arrive in step. A busy vault's
/// `Retry-After` lengthens the wait to what it asked, up to the same 30 s: captures wait safely
/// sealed in the outbox, but a lane should not go quiet for longer on one answer's say-so.
#[derive(Debug)]
struct Retry {
    /// The backoff after the last failure; zero after a success.
    wait: Duration,
    /// No try before then.
    next_at: Instant,
}

impl Default for Retry {
    fn default() -> Self {
        Self { wait: Duration::ZERO, next_at: Instant::now() }
    }
}

impl Retry {
    const FIRST: Duration = Duration::from_millis(250);
    const MAX: Duration = Duration::from_secs(30);

    /// How long until the next try is allowed, if it is not yet.
    fn wait_left(&self) -> Option<Duration> {
        Some(self.next_at.saturating_duration_since(Instant::now())).filter(|left| !left.is_zero())
    }

    fn failed(&mut self, rng: &mut impl rand_core::RngCore) {
        self.failed_at_least(None, rng);
    }

    /// [`Retry::failed`], waiting at least `asked` (a `Retry-After`), within [`Retry::MAX`].
    fn failed_at_least(&mut self, asked: Option<Duration>, rng: &mut impl rand_core::RngCore) {
        self.wait = (self.wait * 2).max(asked.unwrap_or_default()).clamp(Self::FIRST, Self::MAX);
        let jitter = Duration::from_millis(u64::from(rng.next_u32()) % 250);
        self.next_at = Instant::now() + self.wait + jitter;
    }

    fn succeeded(&mut self) {
        *self = Self::default();
    }
}

/// Whether a seal pass has fetched the epoch set: at most one fetch a pass, however many
/// captures miss an epoch.
#[derive(Default)]
struct PassEpochs {
    tried: bool,
    refreshed: bool,
}

fn sealed_with((sequence, sealed): (u64, Vec<u8>), dropped_images: usize) -> SealOutcome {
    SealOutcome::Sealed { sequence, sealed, dropped_images }
}

fn read_bounded(path: &Path, limit: usize) -> Result<Zeroizing<Vec<u8>>, LaneError> {
    use std::io::Read;
    let file = fs::File::open(path).map_err(|e| LaneError::io(path, e))?;
    let mut bytes = Zeroizing::new(Vec::new());
    file.take(limit as u64).read_to_end(&mut bytes).map_err(|e| LaneError::io(path, e))?;
    Ok(bytes)
}

enum UploadOutcome {
    Stored {
        duplicate: bool,
    },
    Refused {
        status: u16,
        problem: String,
    },
    /// Worth trying again later; `retry_after` is how long the vault asked lanes to wait.
    Transient {
        reason: String,
        retry_after: Option<Duration>,
    },
}

impl UploadOutcome {
    fn transient(reason: String) -> Self {
        Self::Transient { reason, retry_after: None }
    }
}

/// A `Retry-After` in delta-seconds, as the vault sends it (`503 intake-busy`). The HTTP-date
/// form is not read: the lane's own backoff applies instead.
fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let secs = headers.get(reqwest::header::RETRY_AFTER)?.to_str().ok()?.trim().parse::<u64>().ok()?;
    Some(Duration::from_secs(secs))
}

async fn upload_one(http: &reqwest::Client, url: &str, path: PathBuf) -> UploadOutcome {
    let body = match tokio::fs::read(&path).await {
        Ok(body) => body,
        Err(e) => return UploadOutcome::transient(format!("reading {}: {e}", path.display())),
    };
    let response =
        http.post(url).header(reqwest::header::CONTENT_TYPE, SEALED_CAPTURE_MEDIA_TYPE).body(body).send().await;
    let response = match response {
        Ok(response) => response,
        Err(e) => return UploadOutcome::transient(format!("POST {url}: {e}")),
    };
    let status = response.status().as_u16();
    let asked_to_wait = retry_after(response.headers());
    let text = response.text().await.unwrap_or_default();
    match status {
        200 => UploadOutcome::Stored { duplicate: true },
        201 => UploadOutcome::Stored { duplicate: false },
        // The vault could not store it now, or the request never reached it whole: try again.
        408 | 429 | 500..=599 => {
            UploadOutcome::Transient { reason: format!("HTTP {status}: {text}"), retry_after: asked_to_wait }
        }
        _ => UploadOutcome::Refused { status, problem: text },
    }
}

/// Milliseconds since the Unix epoch, for log lines.
pub fn unix_ms_now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn judged_holds_back_off_and_unjudged_ones_do_not() {
        let first = Hold::judged(None);
        assert_eq!(first.wait, HOLD_RECHECK);
        let second = Hold::judged(Some(&first));
        assert_eq!(second.wait, HOLD_RECHECK * 2);
        let mut wait = second;
        for _ in 0..20 {
            wait = Hold::judged(Some(&wait));
        }
        assert_eq!(wait.wait, HOLD_RECHECK_MAX);

        // The vault unreachable: the wait is flat, since an unjudged hold does not build on the
        // one before it.
        let unjudged = Hold::unjudged();
        assert_eq!(unjudged.wait, HOLD_RECHECK);
        assert!(!unjudged.judged);
        // Judged after holds that taught nothing: the back-off starts from the beginning.
        assert_eq!(Hold::judged(Some(&unjudged)).wait, HOLD_RECHECK);
        assert_eq!(Hold::judged(Some(&wait)).wait, HOLD_RECHECK_MAX);
    }

    #[test]
    fn retries_back_off_from_a_quarter_second_to_half_a_minute_and_reset_on_success() {
        let mut rng = rand_core::OsRng;
        let mut retry = Retry::default();
        assert_eq!(retry.wait_left(), None, "a first try is never delayed");
        let mut waits = Vec::new();
        for _ in 0..10 {
            retry.failed(&mut rng);
            waits.push(retry.wait);
            let left = retry.wait_left().expect("a failure delays the next try");
            assert!(left <= retry.wait + Duration::from_millis(250), "{left:?} exceeds the wait plus jitter");
        }
        let millis: Vec<u128> = waits.iter().map(Duration::as_millis).collect();
        assert_eq!(millis, [250, 500, 1_000, 2_000, 4_000, 8_000, 16_000, 30_000, 30_000, 30_000]);
        retry.succeeded();
        assert_eq!(retry.wait_left(), None);
        retry.failed(&mut rng);
        assert_eq!(retry.wait, Retry::FIRST, "a success starts the backoff over");
    }

    #[test]
    fn a_vault_asking_for_a_longer_wait_gets_it_up_to_the_backoff_limit() {
        let mut rng = rand_core::OsRng;
        let mut retry = Retry::default();
        retry.failed_at_least(Some(Duration::from_secs(1)), &mut rng);
        assert_eq!(retry.wait, Duration::from_secs(1));
        let left = retry.wait_left().expect("a busy answer delays the next try");
        assert!(left > Duration::from_millis(900), "{left:?}");
        // The doubling goes on from the wait the vault asked for.
        retry.failed(&mut rng);
        assert_eq!(retry.wait, Duration::from_secs(2));
        // Shorter than the backoff already reached: the backoff stands.
        retry.failed_at_least(Some(Duration::from_secs(1)), &mut rng);
        assert_eq!(retry.wait, Duration::from_secs(4));
        // Longer than the limit: the limit.
        retry.failed_at_least(Some(Duration::from_secs(3_600)), &mut rng);
        assert_eq!(retry.wait, Retry::MAX);
    }

    /// One HTTP exchange on loopback: answers the first request with `response` and returns
    /// the URL to send it to.
    fn answer_once(response: String) -> String {
        use std::io::{Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind loopback");
        let url = format!("http://{}/v1/captures", listener.local_addr().expect("address"));
        std::thread::spawn(move || {
            let (mut conn, _) = listener.accept().expect("accept");
            // Read the request head; the answer does not wait for the body, as a busy vault's
            // does not.
            let mut head = Vec::new();
            let mut byte = [0u8; 1];
            while !head.ends_with(b"\r\n\r\n") && conn.read(&mut byte).is_ok_and(|n| n == 1) {
                head.push(byte[0]);
            }
            let _ = conn.write_all(response.as_bytes());
        });
        url
    }

    #[tokio::test]
    async fn a_busy_answer_is_transient_and_carries_its_retry_after() {
        let dir = tempfile::tempdir().expect("temp dir");
        let capture = dir.path().join("capture");
        std::fs::write(&capture, b"sealed bytes").expect("write");
        let http = reqwest::Client::new();
        let problem = r#"{"type":"https://custodia.invalid/problems/intake-busy","status":503}"#;
        let busy = format!(
            "HTTP/1.1 503 Service Unavailable\r\nretry-after: 7\r\ncontent-type: application/problem+json\r\n\
                 content-length: {}\r\nconnection: close\r\n\r\n{problem}",
            problem.len()
        );
        match upload_one(&http, &answer_once(busy), capture.clone()).await {
            UploadOutcome::Transient { reason, retry_after } => {
                assert_eq!(retry_after, Some(Duration::from_secs(7)));
                assert!(reason.starts_with("HTTP 503"), "{reason}");
            }
            _ => panic!("a 503 is worth retrying"),
        }
        // The HTTP-date form is not read: the lane's own backoff applies.
        let dated = "HTTP/1.1 503 Service Unavailable\r\nretry-after: Wed, 21 Oct 2026 07:28:00 GMT\r\n\
                     content-length: 0\r\nconnection: close\r\n\r\n";
        match upload_one(&http, &answer_once(dated.to_owned()), capture).await {
            UploadOutcome::Transient { retry_after, .. } => assert_eq!(retry_after, None),
            _ => panic!("a 503 is worth retrying"),
        }
    }
}
