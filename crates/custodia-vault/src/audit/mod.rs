//! The vault's audit log: every action's event, durable before the action takes effect, in an
//! RFC 6962 Merkle log with signed C2SP checkpoints that an outside auditor checks with nothing
//! but the log's public key.
//!
//! - [`event`]: the versioned, canonical event schema (`docs/formats/audit-event.md`).
//! - [`store`]: the log file in `<vault>/log/`: batch frames, one `fdatasync` each, torn tails
//!   cut on open.
//! - [`AuditLog`]: the sequencer around it: appends, signs checkpoints with the keystore key
//!   [`LOG_SIGNING_KEY`] (C2SP signed-note, Ed25519), serves tiles, entry bundles and proofs.
//!
//! # Fail closed, and what a crash leaves
//!
//! Every action goes through one lock, in this order: (1) append the action's events and make
//! them durable; (2) apply the effect (index rows; for ingest the blobs were written and synced
//! before step 1); (3) only then answer the caller. If step 1 fails, nothing happens and the
//! caller gets a storage error. If step 2 fails or the process dies between 1 and 2, the log
//! names an effect that did not happen; because the lock is held from 1 to 2, that can only be
//! the *last frame* of the log. So on open, and before the next append after a failed step 2,
//! the vault **reconciles** the last frame: every event in it whose effect is missing is
//! re-applied from the event and durable state (an `ingested` record is rebuilt by re-running
//! the ingest checks on its stored blob, found by the key its event determines; a device or
//! epoch row from the event itself). Until that succeeds the log takes no appends, so no other
//! action can happen either. After recovery, every stored record has its `ingested` event and
//! every `ingested` event has its record; nothing was acknowledged that is not both.
//!
//! What it is not: a policy engine (which events an action needs is the caller's), a witness
//! (`custodia witness`), or an auditor's tool (`custodia audit`, built on [`custodia_tlog`]).

pub mod event;
pub(crate) mod positions;
pub mod store;
pub(crate) mod vault;
pub mod witness;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use base64::Engine as _;
use custodia_store::Keystore;
use custodia_tlog::{
    Checkpoint, EntryTile, KeyName as NoteKeyName, NoteVerifier, SignatureType, TilePath, TlogProof, key_id,
    prove_record, prove_tree,
};

pub use event::{Action, Event, EventError, Text};
pub use store::{LogError, LogFile, TornTail};
pub use vault::Actor;

/// Keystore name of the Ed25519 key that signs checkpoints.
pub const LOG_SIGNING_KEY: &str = "log/signing";

/// How often a new checkpoint is signed while entries arrive.
pub const CHECKPOINT_INTERVAL: std::time::Duration = std::time::Duration::from_secs(1);

/// Name of the log file inside `<vault>/log/`.
pub const LOG_FILE: &str = "entries.ctl";
/// Name of the latest signed checkpoint inside `<vault>/log/` (with any witness cosignatures).
pub const CHECKPOINT_FILE: &str = "checkpoint";
/// Name of the file holding the log's origin line.
pub const ORIGIN_FILE: &str = "origin";

pub(crate) fn signing_key_name() -> custodia_store::KeyName {
    custodia_store::KeyName::new(LOG_SIGNING_KEY).expect("constant key name is valid")
}

/// The default origin for a vault serving `sites`: `custodia/<site>,<site>...`.
pub fn default_origin(sites: &[String]) -> String {
    format!("custodia/{}", if sites.is_empty() { "vault".to_string() } else { sites.join(",") })
}

/// A failure injected by tests into the next append (fault injection, as azul's test backend).
#[doc(hidden)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum LogFault {
    /// No fault.
    None = 0,
    /// The next append fails before anything is written.
    FailAppend = 1,
    /// The next append is durable, then the action's effect fails (as if the process died).
    FailAfterAppend = 2,
}

/// The mutable part, behind the sequencer lock.
pub(crate) struct LogState {
    pub file: LogFile,
    /// Set while the last frame's effects may be missing (open, or a failed effect).
    pub needs_reconcile: bool,
}

/// The latest published checkpoint.
#[derive(Clone, Debug)]
pub struct Published {
    /// Tree size it covers.
    pub size: u64,
    /// The signed note, with any cosignature lines.
    pub text: String,
}

/// The audit log of one vault.
pub struct AuditLog {
    dir: PathBuf,
    origin: String,
    verifier: NoteVerifier,
    state: Mutex<LogState>,
    published: Mutex<Option<Published>>,
    fault: AtomicU8,
}

impl AuditLog {
    /// Opens `<vault>/log` (creating it, with `origin` when it has none yet), cutting a torn
    /// tail. `public_key` is the log signing key's public half.
    pub fn open(dir: &Path, origin: &str, public_key: [u8; 32]) -> Result<AuditLog, LogError> {
        let io = |path: &Path, source| LogError::Io { path: path.display().to_string(), source };
        std::fs::create_dir_all(dir).map_err(|e| io(dir, e))?;
        let origin_path = dir.join(ORIGIN_FILE);
        let origin = match std::fs::read_to_string(&origin_path) {
            Ok(s) => s.trim_end().to_string(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                write_durably(&origin_path, format!("{origin}\n").as_bytes())?;
                origin.to_string()
            }
            Err(e) => return Err(io(&origin_path, e)),
        };
        let name = NoteKeyName::new(&origin).map_err(|e| LogError::Signing(format!("origin {origin:?}: {e}")))?;
        let key = custodia_tlog::ed25519_dalek::VerifyingKey::from_bytes(&public_key)
            .map_err(|_| LogError::Signing("log public key is invalid".into()))?;
        let verifier = NoteVerifier::new(name, SignatureType::Ed25519, key);
        let file = LogFile::open(&dir.join(LOG_FILE))?;
        if let Some(t) = file.torn_tail() {
            tracing::warn!(offset = t.offset, dropped = t.dropped_bytes, "audit log: cut a torn tail left by a crash");
        }
        let published = std::fs::read_to_string(dir.join(CHECKPOINT_FILE)).ok().and_then(|text| {
            let body = text.split_once("\n\n")?.0;
            let size = Checkpoint::parse(&format!("{body}\n")).ok()?.size();
            Some(Published { size, text })
        });
        Ok(AuditLog {
            dir: dir.to_path_buf(),
            origin,
            verifier,
            state: Mutex::new(LogState { file, needs_reconcile: true }),
            published: Mutex::new(published),
            fault: AtomicU8::new(LogFault::None as u8),
        })
    }

    /// The origin line of this log's checkpoints.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// The verifier key, in the Go/C2SP `name+id+base64` form auditors pass with `--key`.
    pub fn verifier_key(&self) -> String {
        self.verifier.to_vkey()
    }

    /// The verifier.
    pub fn verifier(&self) -> &NoteVerifier {
        &self.verifier
    }

    /// The folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, LogState> {
        // A panic while holding the lock leaves needs_reconcile set, which is the safe state.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    #[doc(hidden)]
    pub fn inject_fault(&self, fault: LogFault) {
        self.fault.store(fault as u8, Ordering::SeqCst);
    }

    /// True (and cleared) if `fault` is the injected one.
    pub(crate) fn take_fault(&self, fault: LogFault) -> bool {
        self.fault.compare_exchange(fault as u8, LogFault::None as u8, Ordering::SeqCst, Ordering::SeqCst).is_ok()
    }

    /// Number of durable entries.
    pub fn size(&self) -> u64 {
        self.lock().file.size()
    }

    /// Entry `index`.
    pub fn entry(&self, index: u64) -> Result<Vec<u8>, LogError> {
        self.lock().file.entry(index)
    }

    /// Signs a checkpoint of the current tree, if it grew since the last one (or none exists),
    /// writes it to `<vault>/log/checkpoint` durably, and returns the latest.
    pub fn publish(&self, keystore: &dyn Keystore) -> Result<Published, LogError> {
        let mut published = self.published.lock().unwrap_or_else(|p| p.into_inner());
        let (size, root) = {
            let state = self.lock();
            (state.file.size(), state.file.root())
        };
        if let Some(p) = published.as_ref().filter(|p| p.size == size) {
            return Ok(p.clone());
        }
        let checkpoint = Checkpoint::new(&self.origin, size, root).map_err(|e| LogError::Signing(e.to_string()))?;
        let text = checkpoint.to_text();
        let signature =
            keystore.sign(&signing_key_name(), text.as_bytes()).map_err(|e| LogError::Signing(e.to_string()))?;
        let mut raw = Vec::with_capacity(68);
        raw.extend_from_slice(&self.verifier.key_id().to_be_bytes());
        raw.extend_from_slice(&signature);
        let note = format!("{text}\n— {} {}\n", self.origin, base64::engine::general_purpose::STANDARD.encode(raw));
        write_durably(&self.dir.join(CHECKPOINT_FILE), note.as_bytes())?;
        let p = Published { size, text: note };
        *published = Some(p.clone());
        Ok(p)
    }

    /// The latest published checkpoint, if any.
    pub fn latest(&self) -> Option<Published> {
        self.published.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Adds witness cosignature lines to the latest checkpoint (if it is still the one they
    /// cosigned) and rewrites the checkpoint file.
    pub fn add_cosignatures(&self, cosigned_size: u64, lines: &[String]) -> Result<(), LogError> {
        let mut published = self.published.lock().unwrap_or_else(|p| p.into_inner());
        let Some(p) = published.as_mut() else { return Ok(()) };
        if p.size != cosigned_size {
            return Ok(());
        }
        let text = custodia_tlog::add_signature_lines(&p.text, lines).map_err(|e| LogError::Signing(e.to_string()))?;
        write_durably(&self.dir.join(CHECKPOINT_FILE), text.as_bytes())?;
        p.text = text;
        Ok(())
    }

    /// The bytes served at a C2SP tile path (`tile/<L>/<N>[.p/<W>]` or
    /// `tile/entries/<N>[.p/<W>]`), if the durable tree is large enough to hold it.
    pub fn tile(&self, path: TilePath) -> Result<Option<Vec<u8>>, LogError> {
        self.lock().file.tile(path)
    }

    /// What `GET /log/<path>` serves for a path under `/log/` (`tile/...`): the bytes and whether
    /// they can never change (a full tile or bundle). `Ok(None)`: a valid path beyond the tree.
    pub fn serve_tile(&self, path: &str) -> Result<Option<(Vec<u8>, bool)>, LogError> {
        let parsed = custodia_tlog::parse_tile_path(path).map_err(|e| LogError::BadTilePath(e.to_string()))?;
        let full = match parsed {
            TilePath::Hash(t) => t.width == custodia_tlog::TILE_WIDTH,
            TilePath::Entries(b) => b.width == custodia_tlog::TILE_WIDTH,
        };
        Ok(self.tile(parsed)?.map(|data| (data, full)))
    }

    /// A C2SP tlog-proof for entry `index` against the latest checkpoint (signing a fresh one
    /// first if the latest does not cover the entry).
    pub fn prove(&self, index: u64, keystore: &dyn Keystore) -> Result<TlogProof, LogError> {
        let mut p = self.latest();
        if p.as_ref().is_none_or(|p| p.size <= index) {
            p = Some(self.publish(keystore)?);
        }
        let p = p.expect("set above");
        if index >= p.size {
            return Err(LogError::Unavailable(format!("entry {index} is not in the log (size {})", p.size)));
        }
        let state = self.lock();
        let proof = prove_record(p.size, index, &state.file).map_err(|e| LogError::Signing(e.to_string()))?;
        Ok(TlogProof { extra: None, index, proof, checkpoint: p.text })
    }

    /// A consistency proof from tree size `old` to `new` (both at most the durable size).
    pub fn prove_consistency(&self, old: u64, new: u64) -> Result<Vec<custodia_tlog::Hash>, LogError> {
        // From the empty tree, or to the same tree, the proof is empty (RFC 6962 / C2SP).
        if old == 0 || old == new {
            return Ok(Vec::new());
        }
        let state = self.lock();
        prove_tree(new, old, &state.file).map_err(|e| LogError::Signing(e.to_string()))
    }

    /// Index of the first `ingested` event for `record` (a linear scan).
    pub fn find_ingested(&self, record: &str) -> Result<Option<u64>, LogError> {
        let state = self.lock();
        let size = state.file.size();
        // In bundles: `entries` reads each frame's share once, where one `entry` call per index
        // would re-read a run of up to OFFSET_STRIDE entries each time.
        for from in (0..size).step_by(256) {
            for (k, e) in state.file.entries(from, size.min(from + 256))?.iter().enumerate() {
                if let Ok(Event { action: Action::Ingested { record: r, .. }, .. }) = Event::parse(e)
                    && r.as_str() == record
                {
                    return Ok(Some(from + k as u64));
                }
            }
        }
        Ok(None)
    }

    /// Every entry bundle of a tree of `size`, for mirrors (C2SP paths).
    pub fn entry_bundles(size: u64) -> impl Iterator<Item = EntryTile> {
        EntryTile::all_for(size)
    }
}

/// The C2SP `key_id` of a log key, re-exported for tools.
pub fn log_key_id(origin: &str, public_key: &[u8; 32]) -> Option<u32> {
    Some(key_id(&NoteKeyName::new(origin).ok()?, SignatureType::Ed25519, public_key))
}

/// Writes `path` atomically and durably: temp file, fsync, rename, fsync the folder.
pub(crate) fn write_durably(path: &Path, data: &[u8]) -> Result<(), LogError> {
    use std::io::Write;
    let io = |source| LogError::Io { path: path.display().to_string(), source };
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::File::create(&tmp).map_err(io)?;
    f.write_all(data).and_then(|()| f.sync_all()).map_err(io)?;
    std::fs::rename(&tmp, path).map_err(io)?;
    if let Some(dir) = path.parent() {
        std::fs::File::open(dir).and_then(|d| d.sync_all()).map_err(io)?;
    }
    Ok(())
}

/// Shared handle.
pub type SharedAuditLog = Arc<AuditLog>;
