//! A lane device's folder: its identity, its settings, and the folders cameras and the uploader use.
//!
//! ```text
//! lane.json        settings and identity (device id, site, lane, vault URL, pinned vault key)
//! device.key       the device's Ed25519 signing key, mode 0600
//! inbox/           cameras and ALPR engines drop files here (plaintext, short-lived)
//! outbox/          sealed captures waiting for the vault's acknowledgement
//! outbox/rejected/ sealed captures the vault refused for good, with the reason beside them
//! state/           sequence reservation, cached epoch set, status
//! ```

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use custodia_seal::{DeviceId, DeviceSigningKey, LaneName, SiteName, VaultVerifyingKey};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::LaneError;

/// A lane's settings, as stored in `lane.json`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct LaneConfig {
    /// The device id the vault assigned at enrolment (hex).
    pub device_id: String,
    /// The site.
    pub site: String,
    /// The lane.
    pub lane: String,
    /// The vault's base URL, e.g. `http://127.0.0.1:8443`.
    pub vault_url: String,
    /// The vault's epoch-set signing key (hex Ed25519), pinned at enrolment: an epoch set that
    /// does not verify under it is never used.
    pub vault_epoch_key: String,
    /// How long a group of input files must be unchanged before it is processed, once its engine
    /// JSON is there. Default 300 ms: cameras write a frame in well under that.
    #[serde(default = "default_settle_ms")]
    pub settle_ms: u64,
    /// How long an image waits for its engine JSON (or the reverse) before it is sealed alone.
    /// Default 15 s: Rekor Scout sends `alpr_group` up to ~10 s after the frames.
    #[serde(default = "default_pair_grace_ms")]
    pub pair_grace_ms: u64,
    /// Uploads in flight at once. Default 4.
    #[serde(default = "default_upload_concurrency")]
    pub upload_concurrency: usize,
}

fn default_settle_ms() -> u64 {
    300
}
fn default_pair_grace_ms() -> u64 {
    15_000
}
fn default_upload_concurrency() -> usize {
    4
}

/// A checked, loaded lane identity.
pub struct LaneIdentity {
    /// The settings.
    pub config: LaneConfig,
    /// Parsed device id.
    pub device_id: DeviceId,
    /// Parsed site.
    pub site: SiteName,
    /// Parsed lane.
    pub lane: LaneName,
    /// The pinned vault key.
    pub vault_key: VaultVerifyingKey,
    /// The device signing key.
    pub signing_key: DeviceSigningKey,
}

/// The paths of a lane folder.
#[derive(Clone, Debug)]
pub struct LaneDir {
    root: PathBuf,
}

impl LaneDir {
    /// The lane folder at `root`.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// Its root.
    pub fn root(&self) -> &Path {
        &self.root
    }
    /// Where cameras drop files.
    pub fn inbox(&self) -> PathBuf {
        self.root.join("inbox")
    }
    /// Sealed captures awaiting acknowledgement.
    pub fn outbox(&self) -> PathBuf {
        self.root.join("outbox")
    }
    /// Sealed captures the vault refused.
    pub fn rejected(&self) -> PathBuf {
        self.root.join("outbox").join("rejected")
    }
    /// Lane state.
    pub fn state(&self) -> PathBuf {
        self.root.join("state")
    }

    /// When the lane was enrolled (unix ms): the time `device.key` was written, which happens
    /// once, at enrolment ([`LaneDir::create`] never overwrites it).
    pub fn enrolled_ms(&self) -> Result<i64, LaneError> {
        let key_path = self.root.join("device.key");
        let modified = fs::metadata(&key_path).and_then(|m| m.modified()).map_err(|e| LaneError::io(&key_path, e))?;
        Ok(modified.duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64))
    }

    /// Creates a lane folder with a new identity. Refuses a folder that already has one.
    pub fn create(&self, config: &LaneConfig, signing_key: &DeviceSigningKey) -> Result<(), LaneError> {
        let settings = self.root.join("lane.json");
        if settings.exists() {
            return Err(LaneError::Config(format!("{} already holds a lane identity", self.root.display())));
        }
        for dir in [self.inbox(), self.outbox(), self.rejected(), self.state()] {
            fs::create_dir_all(&dir).map_err(|e| LaneError::io(&dir, e))?;
        }
        let key_path = self.root.join("device.key");
        let mut options = OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let mut file = options.open(&key_path).map_err(|e| LaneError::io(&key_path, e))?;
        file.write_all(signing_key.to_bytes().as_ref()).map_err(|e| LaneError::io(&key_path, e))?;
        file.sync_all().map_err(|e| LaneError::io(&key_path, e))?;
        let json = serde_json::to_vec_pretty(config).expect("lane settings serialise");
        crate::outbox::write_durably(&settings, &json)
    }

    /// Loads and checks the lane identity.
    pub fn load(&self) -> Result<LaneIdentity, LaneError> {
        let settings = self.root.join("lane.json");
        let json = fs::read(&settings).map_err(|e| {
            LaneError::Config(format!("{}: {e} (enrol the device first: `custodia device enroll`)", settings.display()))
        })?;
        let config: LaneConfig =
            serde_json::from_slice(&json).map_err(|e| LaneError::Config(format!("{}: {e}", settings.display())))?;
        let bad = |what: &str| LaneError::Config(format!("{}: {what} is invalid", settings.display()));
        let device_id: DeviceId = config.device_id.parse().map_err(|_| bad("device_id"))?;
        let site = SiteName::new(config.site.clone()).map_err(|_| bad("site"))?;
        let lane = LaneName::new(config.lane.clone()).map_err(|_| bad("lane"))?;
        let vault_key: VaultVerifyingKey = config.vault_epoch_key.parse().map_err(|_| bad("vault_epoch_key"))?;
        if config.upload_concurrency == 0 || config.upload_concurrency > 64 {
            return Err(bad("upload_concurrency (1..=64)"));
        }
        let key_path = self.root.join("device.key");
        let bytes = Zeroizing::new(fs::read(&key_path).map_err(|e| LaneError::io(&key_path, e))?);
        let seed: &[u8; 32] = bytes
            .as_slice()
            .try_into()
            .map_err(|_| LaneError::Config(format!("{} is not a 32-byte key", key_path.display())))?;
        let signing_key = DeviceSigningKey::from_bytes(seed);
        for dir in [self.inbox(), self.outbox(), self.rejected(), self.state()] {
            fs::create_dir_all(&dir).map_err(|e| LaneError::io(&dir, e))?;
        }
        Ok(LaneIdentity { config, device_id, site, lane, vault_key, signing_key })
    }
}
