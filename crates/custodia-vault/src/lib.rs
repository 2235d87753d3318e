//! Custodia's vault: the use cases behind `custodia serve`.
//!
//! This issue's slice holds device enrolment, key epochs and capture ingest:
//!
//! - [`Vault::init`] / [`Vault::open`]: a vault folder with its settings (`vault.json`), its
//!   encrypted keystore, its SQLite index and its blob folder.
//! - Devices: [`Vault::enroll_device`], [`Vault::revoke_device`], [`Vault::devices`].
//! - Epochs: [`Vault::ensure_epochs`] creates one P-256 key pair per (site, retention class,
//!   period) inside the keystore; [`Vault::signed_epoch_set`] publishes the public halves,
//!   signed, for lanes to seal to.
//! - [`Vault::ingest`]: verify a sealed capture, open its metadata part only, index it through
//!   the blind plate index, store the blob as received, and acknowledge once durable.
//! - [`audit`]: the audit log. Every action above appends its event durably *before* its effect
//!   is visible (fail closed); signed checkpoints, tiles and proofs for auditors.
//!
//! What it is not: an HTTP server (that is `custodia-server`, which only maps requests onto these
//! calls), a lane, or a policy engine. It never writes a plaintext image or plate: the metadata
//! part is opened in memory, blind-indexed, and dropped.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use custodia_vault::{Vault, clock::SystemClock};
//! let vault = Vault::open(std::path::Path::new("custodia-demo/vault"), std::sync::Arc::new(SystemClock),
//!                         Box::new(rand_core::OsRng), None)?;
//! println!("{} records", vault.record_count()?);
//! # Ok(()) }
//! ```

#![forbid(unsafe_code)]

pub mod access;
pub mod audit;
pub mod civil;
pub mod clock;
pub mod config;
mod devices;
mod epochs;
pub mod ingest;
pub mod leak;
pub mod retention;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use custodia_store::blobs::BlobStore;
use custodia_store::file_keystore::{FileKeystore, MasterKeySource};
use custodia_store::index::Index;
use custodia_store::{Keystore, KeystoreError};
use rand_core::CryptoRngCore;
use tokio::sync::mpsc;

pub use clock::Clock;
pub use config::VaultConfig;
pub use custodia_policy as policy;
pub use custodia_store::index::RecordId;
pub use epochs::EPOCH_SIGNING_KEY;
pub use ingest::{CommitterStats, IngestError, Receipt};

/// A random-number generator the vault can hold across threads.
pub type SharedRng = Box<dyn CryptoRngCore + Send>;

/// How a new vault's keystore master key is kept.
pub enum MasterKey<'a> {
    /// A generated key file at `<vault>/keystore/master.key`, mode 0600 (the embedded default).
    KeyFile,
    /// A generated key file at this path (keep it off the vault's disk).
    KeyFileAt(PathBuf),
    /// A passphrase, stretched with Argon2id.
    Passphrase(&'a [u8], custodia_store::file_keystore::Argon2Params),
}

/// Vault failures outside ingest.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum VaultError {
    /// The keystore failed.
    #[error(transparent)]
    Keystore(#[from] KeystoreError),
    /// The index failed.
    #[error(transparent)]
    Index(#[from] custodia_store::index::IndexError),
    /// The blob store failed.
    #[error(transparent)]
    Blobs(#[from] custodia_store::blobs::BlobError),
    /// `vault.json` is missing, unreadable or invalid.
    #[error("vault settings {path}: {reason}")]
    Config {
        /// The file.
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// A vault already exists in the folder given to `init`.
    #[error("a vault already exists at {0}")]
    AlreadyExists(String),
    /// A site, lane or other name was not valid.
    #[error("invalid {what}: {reason}")]
    Invalid {
        /// Which value.
        what: &'static str,
        /// Why.
        reason: String,
    },
    /// No such device.
    #[error("no device {0}")]
    NoSuchDevice(String),
    /// The audit log could not be written or read: the action did not happen.
    #[error(transparent)]
    Log(#[from] audit::LogError),
    /// The access database failed.
    #[error(transparent)]
    Access(#[from] custodia_store::access::AccessError),
    /// Every key that could open this data has been destroyed by retention: it is gone.
    #[error("shredded: {0}")]
    Shredded(String),
    /// File I/O on the vault folder failed.
    #[error("{path}: {source}")]
    Io {
        /// The path.
        path: String,
        /// The error.
        #[source]
        source: std::io::Error,
    },
}

/// The vault. Cheap to clone; clones share everything.
#[derive(Clone)]
pub struct Vault {
    inner: Arc<Inner>,
}

pub(crate) struct Inner {
    dir: PathBuf,
    config: VaultConfig,
    clock: Arc<dyn Clock>,
    rng: Mutex<SharedRng>,
    keystore: Arc<dyn Keystore>,
    index: Arc<Index>,
    blobs: BlobStore,
    committer: mpsc::Sender<ingest::Pending>,
    /// What the committer has done since open (see [`Vault::committer_stats`]).
    committed: ingest::CommitterCounters,
    log: Arc<audit::AuditLog>,
    pdq: leak::PdqIndexes,
    access: custodia_store::access::AccessStore,
    /// Group commit of concurrent reads' `accessed` events.
    reads: access::ReadBatcher,
    /// The software each device last uploaded with (its User-Agent) and when: device health.
    agents: Mutex<std::collections::HashMap<custodia_seal::DeviceId, (String, i64)>>,
    /// The policy in force and its text; replaced whole by [`Vault::set_policy`].
    policy: std::sync::RwLock<(Arc<custodia_policy::Policy>, String)>,
}

impl Drop for Inner {
    /// On shutdown (the last handle dropped), sign a checkpoint of everything logged since the
    /// last one, so the published tree head covers every acknowledged action.
    fn drop(&mut self) {
        if let Err(error) = self.log.publish(self.keystore.as_ref()) {
            tracing::error!(%error, "signing the final audit checkpoint failed");
        }
    }
}

impl Vault {
    /// Creates a new vault in `dir` with these settings. Does not start it; call [`Vault::open`].
    pub fn init(
        dir: &Path,
        config: &VaultConfig,
        master: MasterKey<'_>,
        rng: &mut dyn CryptoRngCore,
    ) -> Result<(), VaultError> {
        Self::prepare_folder(dir, config)?;
        let keystore_dir = dir.join("keystore");
        let source = match master {
            MasterKey::KeyFile => MasterKeySource::KeyFile(keystore_dir.join("master.key")),
            MasterKey::KeyFileAt(path) => MasterKeySource::KeyFile(path),
            MasterKey::Passphrase(passphrase, params) => MasterKeySource::Passphrase(passphrase, params),
        };
        let keystore = FileKeystore::create(&keystore_dir, source, rng)?;
        Self::init_in(dir, config, &keystore, rng)
    }

    /// Creates a new vault in `dir` whose keys live in `keystore` (a PKCS#11 token; `config.keystore`
    /// says how to reach it again at [`Vault::open`]).
    pub fn init_with_keystore(
        dir: &Path,
        config: &VaultConfig,
        keystore: &dyn Keystore,
        rng: &mut dyn CryptoRngCore,
    ) -> Result<(), VaultError> {
        Self::prepare_folder(dir, config)?;
        Self::init_in(dir, config, keystore, rng)
    }

    /// Checks the settings and that `dir` holds no vault yet, and creates the folder.
    fn prepare_folder(dir: &Path, config: &VaultConfig) -> Result<(), VaultError> {
        config.check().map_err(|reason| VaultError::Config { path: "vault.json".into(), reason })?;
        if dir.join("vault.json").exists() {
            return Err(VaultError::AlreadyExists(dir.display().to_string()));
        }
        std::fs::create_dir_all(dir).map_err(|source| io(dir, source))
    }

    fn init_in(
        dir: &Path,
        config: &VaultConfig,
        keystore: &dyn Keystore,
        rng: &mut dyn CryptoRngCore,
    ) -> Result<(), VaultError> {
        let settings = dir.join("vault.json");
        keystore.ensure_signing_key(&epochs::signing_key_name(), rng)?;
        keystore.ensure_signing_key(&audit::signing_key_name(), rng)?;
        Index::open(&dir.join("index.sqlite3"))?;
        BlobStore::local(&dir.join("blobs"))?;
        let json = serde_json::to_vec_pretty(config).expect("settings serialise");
        std::fs::write(&settings, json).map_err(|source| io(&settings, source))?;
        Ok(())
    }

    /// Opens a vault folder and starts its committer on the current tokio runtime.
    /// `passphrase` is the file keystore's passphrase (none for a key-file keystore), or the
    /// user PIN when `vault.json` puts the keys in a PKCS#11 token.
    pub fn open(
        dir: &Path,
        clock: Arc<dyn Clock>,
        rng: SharedRng,
        passphrase: Option<&[u8]>,
    ) -> Result<Self, VaultError> {
        let settings = dir.join("vault.json");
        let json = std::fs::read(&settings).map_err(|e| VaultError::Config {
            path: settings.display().to_string(),
            reason: format!("{e} (is this a vault folder? create one with `custodia init`)"),
        })?;
        let config: VaultConfig = serde_json::from_slice(&json)
            .map_err(|e| VaultError::Config { path: settings.display().to_string(), reason: e.to_string() })?;
        config.check().map_err(|reason| VaultError::Config { path: settings.display().to_string(), reason })?;
        let keystore: Arc<dyn Keystore> = match &config.keystore {
            config::KeystoreSetting::File => Arc::new(FileKeystore::open(&dir.join("keystore"), passphrase)?),
            config::KeystoreSetting::Pkcs11 { module, token_label } => {
                let pin = passphrase.ok_or_else(|| VaultError::Config {
                    path: settings.display().to_string(),
                    reason: "this vault's keys are in a PKCS#11 token: give its user PIN".into(),
                })?;
                let pin = zeroize::Zeroizing::new(
                    String::from_utf8(pin.to_vec())
                        .map_err(|_| VaultError::Invalid { what: "PIN", reason: "not UTF-8".into() })?,
                );
                Arc::new(custodia_store::Pkcs11Keystore::open(Path::new(module), token_label, pin)?)
            }
        };
        Self::assemble(dir, config, clock, rng, keystore)
    }

    /// Opens a vault folder with another keystore backend (an HSM).
    pub fn assemble(
        dir: &Path,
        config: VaultConfig,
        clock: Arc<dyn Clock>,
        rng: SharedRng,
        keystore: Arc<dyn Keystore>,
    ) -> Result<Self, VaultError> {
        let blobs = BlobStore::local(&dir.join("blobs"))?;
        Self::assemble_with_blobs(dir, config, clock, rng, keystore, blobs)
    }

    /// [`Vault::assemble`] over a given blob store instead of `<dir>/blobs`: the seam through which
    /// storage-fault tests put a fault-injecting store
    /// (`custodia_store::blobs::BlobStore::local_with_faults`) under a real vault.
    #[doc(hidden)]
    pub fn assemble_with_blobs(
        dir: &Path,
        config: VaultConfig,
        clock: Arc<dyn Clock>,
        rng: SharedRng,
        keystore: Arc<dyn Keystore>,
        blobs: BlobStore,
    ) -> Result<Self, VaultError> {
        let index = Arc::new(Index::open(&dir.join("index.sqlite3"))?);
        let mut rng = rng;
        // Vaults made before the audit log have no log key yet.
        let log_public_key = keystore.ensure_signing_key(&audit::signing_key_name(), rng.as_mut())?;
        let log =
            Arc::new(audit::AuditLog::open(&dir.join("log"), &audit::default_origin(&config.sites), log_public_key)?);
        // Bounded: when the disk is slow, handlers wait here instead of piling up memory.
        let pdq = leak::PdqIndexes::default();
        let (committer, queue) = mpsc::channel(config.max_batch_records * 2);
        let access = custodia_store::access::AccessStore::open(&dir.join("access.sqlite3"))?;
        let (policy, policy_text) = access::load_policy(dir)?;
        let inner = Arc::new(Inner {
            dir: dir.to_path_buf(),
            config,
            clock,
            rng: Mutex::new(rng),
            keystore,
            index,
            blobs,
            committer,
            committed: ingest::CommitterCounters::default(),
            log,
            pdq,
            access,
            reads: access::ReadBatcher::default(),
            agents: Mutex::new(std::collections::HashMap::new()),
            policy: std::sync::RwLock::new((Arc::new(policy), policy_text)),
        });
        let vault = Self { inner };
        // A crash may have left the last logged batch without its effects: settle that before
        // anything else happens.
        {
            let mut state = vault.inner.log.lock();
            vault.reconcile_locked(&mut state)?;
        }
        vault.log_policy_if_new()?;
        vault.publish_checkpoint()?;
        tokio::spawn(ingest::run_committer(Arc::downgrade(&vault.inner), queue));
        tokio::spawn(audit::vault::run_checkpointer(Arc::downgrade(&vault.inner)));
        // Staging files of blob writes a crash cut short (custodia_store::blobs): removed in the
        // background, waiting only for this process's writes in flight.
        let blobs = vault.inner.blobs.clone();
        tokio::spawn(async move {
            match blobs.remove_abandoned_staging().await {
                Ok(0) => {}
                Ok(removed) => tracing::info!(removed, "removed staging files of blob writes a crash cut short"),
                Err(error) => tracing::warn!(%error, "could not remove staging files a crash left"),
            }
        });
        Ok(vault)
    }

    /// The vault's folder.
    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    /// The vault's settings.
    pub fn config(&self) -> &VaultConfig {
        &self.inner.config
    }

    /// The vault's clock.
    pub fn now_ms(&self) -> i64 {
        self.inner.clock.now_ms()
    }

    /// What intake's committer has done since this vault was opened: batches, captures, and the
    /// time spent making blobs durable and recording them. Take two and subtract
    /// ([`CommitterStats::since`]) to see one stretch of load.
    pub fn committer_stats(&self) -> CommitterStats {
        self.inner.committed.snapshot()
    }

    /// How many records are stored.
    pub fn record_count(&self) -> Result<u64, VaultError> {
        Ok(self.inner.index.record_count()?)
    }

    /// The stored record with this id.
    pub fn record(
        &self,
        id: &custodia_store::index::RecordId,
    ) -> Result<Option<custodia_store::index::RecordRow>, VaultError> {
        Ok(self.inner.index.record(id)?)
    }

    /// Every record id with its blob key (consistency checks, tests).
    pub fn record_blob_keys(&self) -> Result<Vec<(custodia_store::index::RecordId, String)>, VaultError> {
        Ok(self.inner.index.record_blob_keys()?)
    }

    /// The sealed blob stored for a record, exactly as received.
    pub async fn sealed_blob(&self, blob_key: &str) -> Result<bytes::Bytes, VaultError> {
        Ok(self.inner.blobs.get(blob_key).await?)
    }

    /// Record ids whose plate read or candidates match `plate` (normalised: A–Z, 0–9) in the
    /// month of `month_of_ms`. The plate is blinded in memory and never stored. The search is
    /// logged (a `searched` event with a digest of the blind value, never the plate) before its
    /// result is returned; if the log cannot be written, no result is returned.
    pub fn records_by_plate(
        &self,
        plate: &str,
        month_of_ms: i64,
    ) -> Result<Vec<custodia_store::index::RecordId>, VaultError> {
        let month = civil::month_label(month_of_ms);
        let key = self
            .blind_key(&month)
            .map_err(|e| VaultError::Invalid { what: "blind-index key", reason: e.to_string() })?;
        let blind = custodia_store::index::MonthBlind { blind: ingest::blind_value(&key, plate), month };
        let found = self.inner.index.records_by_blind_plate(&blind)?;
        self.log_events(&[audit::vault::searched_event(self.now_ms(), &blind.blind, found.len())?])?;
        Ok(found)
    }
}

fn io(path: &Path, source: std::io::Error) -> VaultError {
    VaultError::Io { path: path.display().to_string(), source }
}
