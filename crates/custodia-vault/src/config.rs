//! The vault's settings, with their defaults and why.

use custodia_seal::RetentionClass;
use serde::{Deserialize, Serialize};

/// One hour in milliseconds.
pub const HOUR_MS: i64 = 3_600_000;
/// One day in milliseconds.
pub const DAY_MS: i64 = 24 * HOUR_MS;

/// Vault settings. Stored as `vault.json` in the vault folder by `custodia init`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct VaultConfig {
    /// The sites this vault serves; epochs are created for each.
    pub sites: Vec<String>,
    /// Length of a face epoch. Default 1 h: faces are kept 12 h by default, and an hourly key
    /// lets retention delete within the hour.
    pub face_epoch_ms: i64,
    /// Length of a plate epoch. Default 1 day.
    pub plate_epoch_ms: i64,
    /// Length of an overview epoch. Default 1 day.
    pub overview_epoch_ms: i64,
    /// How far ahead epoch public keys are published. Default 48 h (lanes may be offline for a
    /// day or two and must still be able to seal).
    pub publish_ahead_ms: i64,
    /// The oldest capture accepted, relative to now. Default 7 days: a lane's outbox may hold
    /// captures through an outage that long. The demo raises it to replay 45 days.
    pub max_capture_age_ms: i64,
    /// How far in the future a capture time may be. Default 5 minutes of clock skew.
    pub max_clock_skew_ms: i64,
    /// Most records in one durable batch. Default 512.
    pub max_batch_records: usize,
    /// Most bytes in one durable batch. Default 128 MiB.
    pub max_batch_bytes: usize,
    /// Where the vault's private keys live. Default: the encrypted file keystore in
    /// `<vault>/keystore`.
    #[serde(default)]
    pub keystore: KeystoreSetting,
}

/// Which keystore backend holds the vault's private keys.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum KeystoreSetting {
    /// The encrypted file keystore in `<vault>/keystore` (Argon2id passphrase or a 0600 key file).
    #[default]
    File,
    /// A PKCS#11 token (an HSM; SoftHSM2 in tests): epoch keys, blind-index secrets and signing
    /// keys are made and used inside it. The user PIN is given when the vault is opened.
    Pkcs11 {
        /// Path of the PKCS#11 module (e.g. `/usr/lib/softhsm/libsofthsm2.so`).
        module: String,
        /// Label of the token holding the keys.
        token_label: String,
    },
}

impl Default for VaultConfig {
    fn default() -> Self {
        Self {
            sites: Vec::new(),
            face_epoch_ms: HOUR_MS,
            plate_epoch_ms: DAY_MS,
            overview_epoch_ms: DAY_MS,
            publish_ahead_ms: 48 * HOUR_MS,
            max_capture_age_ms: 7 * DAY_MS,
            max_clock_skew_ms: 5 * 60 * 1000,
            max_batch_records: 512,
            max_batch_bytes: 128 * 1024 * 1024,
            keystore: KeystoreSetting::File,
        }
    }
}

impl VaultConfig {
    /// The epoch length for a retention class.
    pub fn epoch_length_ms(&self, class: RetentionClass) -> i64 {
        match class {
            RetentionClass::Face => self.face_epoch_ms,
            RetentionClass::Plate => self.plate_epoch_ms,
            RetentionClass::Overview => self.overview_epoch_ms,
        }
    }

    /// Refuses settings that cannot work, naming the field.
    pub fn check(&self) -> Result<(), String> {
        for site in &self.sites {
            custodia_seal::SiteName::new(site.clone())
                .map_err(|_| format!("sites: {site:?} is not a valid site name"))?;
        }
        for (name, value) in [
            ("face_epoch_ms", self.face_epoch_ms),
            ("plate_epoch_ms", self.plate_epoch_ms),
            ("overview_epoch_ms", self.overview_epoch_ms),
        ] {
            if value < 60_000 || DAY_MS % value != 0 && value % DAY_MS != 0 {
                return Err(format!("{name}: {value} must be at least a minute and divide a day or be whole days"));
            }
        }
        if self.publish_ahead_ms < 0 || self.max_capture_age_ms < 0 || self.max_clock_skew_ms < 0 {
            return Err("publish_ahead_ms, max_capture_age_ms and max_clock_skew_ms must not be negative".into());
        }
        if self.max_batch_records == 0 || self.max_batch_bytes == 0 {
            return Err("max_batch_records and max_batch_bytes must be positive".into());
        }
        Ok(())
    }
}
