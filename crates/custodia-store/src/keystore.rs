//! The keystore: where the vault's private keys live, and the only place they can be used.
//!
//! Three kinds of key live here, each under a [`KeyName`]:
//!
//! - **epoch keys** (P-256): one per (site, retention class, period). Captures are sealed to their
//!   public halves; the private half is only ever used through [`Decapsulator`], so that an HSM
//!   backend can keep it inside the token. Destroying an epoch key *is* the deletion of every
//!   capture part sealed to it (crypto-shredding).
//! - **secrets** (32 random bytes): the per-month keys of the blind plate index (HMAC-SHA256).
//! - **signing keys** (Ed25519): the key that signs published epoch sets.
//!
//! What this module is not: it does not decide *which* epochs exist or when they expire (that is
//! the vault), and it stores nothing but keys.

use std::fmt;
use std::sync::Arc;

use custodia_seal::{Decapsulator, EpochPublicKey};
use rand_core::CryptoRngCore;
use zeroize::Zeroizing;

/// Longest key name accepted, in bytes. Names are paths of short segments; 200 leaves room for
/// `epoch/<site:64>/<class>/<unix ms>` with margin.
pub const MAX_KEY_NAME_LEN: usize = 200;

/// The name of a key in a keystore: `/`-separated segments of `[a-z0-9._-]`, none empty, none
/// starting with a dot. Valid by construction, so backends can map it to a path or a PKCS#11
/// label without escaping.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyName(String);

impl KeyName {
    /// Checks `name` and wraps it.
    pub fn new(name: impl Into<String>) -> Result<Self, KeystoreError> {
        let name = name.into();
        let ok = !name.is_empty()
            && name.len() <= MAX_KEY_NAME_LEN
            && name.split('/').all(|segment| {
                !segment.is_empty()
                    && !segment.starts_with('.')
                    && segment
                        .bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'-'))
            });
        if ok { Ok(Self(name)) } else { Err(KeystoreError::BadKeyName) }
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for KeyName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for KeyName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyName({})", self.0)
    }
}

/// Whether a name holds a usable key, never held one, or held one that was destroyed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyState {
    /// The key exists and can be used.
    Present,
    /// No key was ever stored under this name.
    Absent,
    /// A key was stored under this name and has been destroyed; it can never be created again.
    Destroyed,
}

/// An epoch private key, usable only for decapsulation.
pub type SharedDecapsulator = Arc<dyn Decapsulator + Send + Sync>;

/// The operations the vault needs from wherever its private keys are kept.
///
/// Every method that uses a key takes its name; no method returns an epoch private key or a
/// signing key. (Blind-index secrets are returned because HMAC over millions of plates per
/// search is not a job for a token round-trip; they are zeroized when dropped.)
pub trait Keystore: Send + Sync {
    /// Generates a new P-256 epoch key pair under `name` and returns its public key.
    /// Refuses a name that is present or was ever destroyed.
    fn generate_epoch_key(&self, name: &KeyName, rng: &mut dyn CryptoRngCore) -> Result<EpochPublicKey, KeystoreError>;

    /// A handle that performs the HPKE decapsulation's Diffie-Hellman with the key `name`.
    fn epoch_decapsulator(&self, name: &KeyName) -> Result<SharedDecapsulator, KeystoreError>;

    /// The 32-byte secret under `name`, generated first if absent. Refuses a destroyed name.
    fn secret(&self, name: &KeyName, rng: &mut dyn CryptoRngCore) -> Result<Zeroizing<[u8; 32]>, KeystoreError>;

    /// Generates an Ed25519 signing key under `name` if absent; returns its public key.
    fn ensure_signing_key(&self, name: &KeyName, rng: &mut dyn CryptoRngCore) -> Result<[u8; 32], KeystoreError>;

    /// Signs `message` with the Ed25519 key `name`.
    fn sign(&self, name: &KeyName, message: &[u8]) -> Result<[u8; 64], KeystoreError>;

    /// Destroys the key `name` for good. Destroying a destroyed key succeeds (retention runs
    /// resume after a crash); destroying an absent key fails.
    fn destroy(&self, name: &KeyName) -> Result<(), KeystoreError>;

    /// Whether `name` is present, absent or destroyed.
    fn state(&self, name: &KeyName) -> Result<KeyState, KeystoreError>;

    /// Makes the destructions done so far final against copies of the keystore taken before
    /// them. A token needs nothing (its keys never left it); the file keystore re-encrypts every
    /// surviving key under a fresh master key and destroys the old one, so a key file copied to
    /// a USB drive last week no longer opens with any master key the vault has. Retention calls
    /// this once after each run that destroyed keys.
    fn seal_destructions(&self, rng: &mut dyn CryptoRngCore) -> Result<(), KeystoreError> {
        let _ = rng;
        Ok(())
    }
}

/// Keystore failures.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeystoreError {
    /// A key name with characters outside `[a-z0-9._-/]`, an empty segment, or too long.
    #[error("bad key name: use /-separated segments of a-z 0-9 . _ -")]
    BadKeyName,
    /// No key under this name.
    #[error("no key named {0}")]
    NotFound(String),
    /// The key under this name was destroyed.
    #[error("key {0} was destroyed")]
    Destroyed(String),
    /// A key already exists (or existed) under this name.
    #[error("a key named {0} already exists or existed")]
    AlreadyExists(String),
    /// The key under this name is of another kind than asked for.
    #[error("key {0} is not of the kind asked for")]
    WrongKind(String),
    /// The passphrase or master key does not open this keystore.
    #[error("the keystore cannot be opened with this passphrase or master key")]
    WrongMasterKey,
    /// A key file failed its integrity check: it was altered, or belongs to another keystore.
    #[error("key file for {0} failed its integrity check")]
    Corrupt(String),
    /// The keystore folder does not hold a keystore, or holds one of another version.
    #[error("not a custodia keystore: {0}")]
    NotAKeystore(String),
    /// A keystore already exists where one was to be created.
    #[error("a keystore already exists at {0}")]
    KeystoreExists(String),
    /// Reading or writing the key files failed.
    #[error("keystore I/O error on {path}: {source}")]
    Io {
        /// The file or folder.
        path: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
}
