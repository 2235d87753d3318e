//! The encrypted file keystore: the embedded default behind [`Keystore`].
//!
//! Layout of its folder:
//!
//! ```text
//! keystore.json            version, how the master key is obtained, a check value
//! master.key               (key-file mode only) 32 random bytes, mode 0600
//! keys/<name>.key          one file per key: nonce(12) || AES-256-GCM(master, kind || secret)
//! keys/<name>.destroyed    tombstone left when a key is destroyed
//! ```
//!
//! The master key comes either from a passphrase through Argon2id (RFC 9106) or from a generated
//! key file. Each key file's associated data is its name and kind, so files cannot be swapped
//! between names. One file per key makes destruction local: the file is overwritten with zeros,
//! synced and unlinked, and a tombstone records that the name may never be reused.
//!
//! What it is not: protection against a thief who copies the folder *with* `master.key` (use a
//! passphrase, keep the key file elsewhere, or use the HSM backend), nor against flash storage
//! that keeps old blocks after an overwrite (destroyed keys are unrecoverable through the
//! filesystem; forensic recovery of raw flash is out of scope, which the HSM backend answers).

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use custodia_seal::{EpochPublicKey, EpochSecretKey};
use ed25519_dalek::{Signer, SigningKey};
use rand_core::CryptoRngCore;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::keystore::{KeyName, KeyState, Keystore, KeystoreError, SharedDecapsulator};

const VERSION: u32 = 1;
const CHECK_PLAINTEXT: &[u8] = b"custodia keystore v1 check";
/// Largest key file we read: nonce + kind + 32-byte secret + tag, with slack. Anything larger is
/// not ours.
const MAX_KEY_FILE_LEN: u64 = 256;

/// How the master key is obtained.
pub enum MasterKeySource<'a> {
    /// A 32-byte key file created by [`FileKeystore::create`] (mode 0600).
    KeyFile(PathBuf),
    /// A passphrase stretched with Argon2id.
    Passphrase(&'a [u8], Argon2Params),
}

/// Argon2id cost parameters, stored in `keystore.json` so the same passphrase opens it later.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Argon2Params {
    /// Memory in KiB. Default 65,536 (64 MiB), RFC 9106's second recommended option.
    pub m_kib: u32,
    /// Passes. Default 3.
    pub t: u32,
    /// Lanes. Default 1 (the vault has 2 cores and other work to do).
    pub p: u32,
}

impl Default for Argon2Params {
    fn default() -> Self {
        Self { m_kib: 65_536, t: 3, p: 1 }
    }
}

#[derive(Serialize, Deserialize)]
struct Manifest {
    version: u32,
    master: ManifestMaster,
    /// hex(nonce || AES-GCM(master, CHECK_PLAINTEXT)): tells a wrong passphrase from a corrupt file.
    check: String,
}

#[derive(Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
enum ManifestMaster {
    KeyFile { path: String },
    Argon2id { salt: String, params: Argon2Params },
}

#[derive(Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
enum KeyKind {
    EpochP256 = 1,
    Secret = 2,
    Ed25519 = 3,
}

/// A decrypted key held in memory while the keystore is open.
#[derive(Clone)]
enum Loaded {
    Epoch(Arc<EpochSecretKey>),
    Secret(Zeroizing<[u8; 32]>),
    Signing(Arc<SigningKey>),
}

/// The encrypted file keystore. Cheap to share behind an `Arc`; all methods take `&self`.
pub struct FileKeystore {
    root: PathBuf,
    cipher: Aes256Gcm,
    cache: Mutex<HashMap<KeyName, Loaded>>,
}

impl FileKeystore {
    /// Creates a new keystore in `root` (created if missing, refused if it already holds one).
    ///
    /// With [`MasterKeySource::KeyFile`], a fresh 32-byte master key is written to that path with
    /// mode 0600; with a passphrase, a random salt is stored and the master key derived.
    pub fn create(
        root: &Path,
        source: MasterKeySource<'_>,
        rng: &mut dyn CryptoRngCore,
    ) -> Result<Self, KeystoreError> {
        let manifest_path = root.join("keystore.json");
        if manifest_path.exists() {
            return Err(KeystoreError::KeystoreExists(root.display().to_string()));
        }
        create_dir_private(&root.join("keys"))?;
        let (master, manifest_master) = match source {
            MasterKeySource::KeyFile(path) => {
                let mut key = Zeroizing::new([0u8; 32]);
                rng.fill_bytes(key.as_mut());
                write_private_file(&path, key.as_ref())?;
                let shown = path.display().to_string();
                (key, ManifestMaster::KeyFile { path: shown })
            }
            MasterKeySource::Passphrase(passphrase, params) => {
                let mut salt = [0u8; 16];
                rng.fill_bytes(&mut salt);
                let key = stretch(passphrase, &salt, params)?;
                (key, ManifestMaster::Argon2id { salt: hex::encode(salt), params })
            }
        };
        let cipher = Aes256Gcm::new_from_slice(master.as_ref()).expect("32-byte key");
        let mut nonce = [0u8; 12];
        rng.fill_bytes(&mut nonce);
        let sealed = cipher
            .encrypt(&Nonce::from(nonce), Payload { msg: CHECK_PLAINTEXT, aad: b"check" })
            .expect("AES-GCM encryption of a short message cannot fail");
        let mut check = nonce.to_vec();
        check.extend_from_slice(&sealed);
        let manifest = Manifest { version: VERSION, master: manifest_master, check: hex::encode(check) };
        let json = serde_json::to_vec_pretty(&manifest).expect("manifest serialises");
        write_durably(&manifest_path, &json)?;
        Ok(Self { root: root.to_path_buf(), cipher, cache: Mutex::new(HashMap::new()) })
    }

    /// Opens an existing keystore. For a key-file keystore pass `None` to use the path recorded
    /// at creation, or the passphrase for an Argon2id one.
    pub fn open(root: &Path, passphrase: Option<&[u8]>) -> Result<Self, KeystoreError> {
        let manifest_path = root.join("keystore.json");
        let json = read_bounded(&manifest_path, 64 * 1024)?;
        let manifest: Manifest = serde_json::from_slice(&json)
            .map_err(|e| KeystoreError::NotAKeystore(format!("{}: {e}", manifest_path.display())))?;
        if manifest.version != VERSION {
            return Err(KeystoreError::NotAKeystore(format!(
                "{}: version {} (this build reads {VERSION})",
                manifest_path.display(),
                manifest.version
            )));
        }
        let master = match (&manifest.master, passphrase) {
            (ManifestMaster::KeyFile { path }, _) => {
                let bytes = Zeroizing::new(read_bounded(Path::new(path), 64)?);
                let key: [u8; 32] =
                    bytes.as_slice().try_into().map_err(|_| KeystoreError::WrongMasterKey)?;
                Zeroizing::new(key)
            }
            (ManifestMaster::Argon2id { salt, params }, Some(passphrase)) => {
                let salt = hex::decode(salt)
                    .map_err(|_| KeystoreError::NotAKeystore("salt is not hex".into()))?;
                stretch(passphrase, &salt, *params)?
            }
            (ManifestMaster::Argon2id { .. }, None) => return Err(KeystoreError::WrongMasterKey),
        };
        let cipher = Aes256Gcm::new_from_slice(master.as_ref()).expect("32-byte key");
        let check = hex::decode(&manifest.check)
            .map_err(|_| KeystoreError::NotAKeystore("check value is not hex".into()))?;
        if check.len() < 12 {
            return Err(KeystoreError::NotAKeystore("check value too short".into()));
        }
        let (nonce, sealed) = check.split_at(12);
        let opened = cipher
            .decrypt(&nonce_of(nonce), Payload { msg: sealed, aad: b"check" })
            .map_err(|_| KeystoreError::WrongMasterKey)?;
        if opened != CHECK_PLAINTEXT {
            return Err(KeystoreError::WrongMasterKey);
        }
        Ok(Self { root: root.to_path_buf(), cipher, cache: Mutex::new(HashMap::new()) })
    }

    fn key_path(&self, name: &KeyName) -> PathBuf {
        self.root.join("keys").join(format!("{}.key", name.as_str()))
    }

    fn tombstone_path(&self, name: &KeyName) -> PathBuf {
        self.root.join("keys").join(format!("{}.destroyed", name.as_str()))
    }

    fn aad(name: &KeyName, kind: KeyKind) -> Vec<u8> {
        let mut aad = b"custodia keystore v1 key\0".to_vec();
        aad.push(kind as u8);
        aad.extend_from_slice(name.as_str().as_bytes());
        aad
    }

    fn store_new(
        &self,
        name: &KeyName,
        kind: KeyKind,
        secret: &[u8; 32],
        rng: &mut dyn CryptoRngCore,
    ) -> Result<(), KeystoreError> {
        if self.state(name)? != KeyState::Absent {
            return Err(KeystoreError::AlreadyExists(name.to_string()));
        }
        let mut nonce = [0u8; 12];
        rng.fill_bytes(&mut nonce);
        let sealed = self
            .cipher
            .encrypt(&Nonce::from(nonce), Payload { msg: secret, aad: &Self::aad(name, kind) })
            .expect("AES-GCM encryption of 32 bytes cannot fail");
        let mut file = nonce.to_vec();
        file.extend_from_slice(&sealed);
        let path = self.key_path(name);
        if let Some(parent) = path.parent() {
            create_dir_private(parent)?;
        }
        write_durably(&path, &file)
    }

    fn load(&self, name: &KeyName, kind: KeyKind) -> Result<Loaded, KeystoreError> {
        if let Some(found) = self.cache.lock().expect("keystore cache lock").get(name) {
            return Ok(found.clone());
        }
        let path = self.key_path(name);
        let file = match read_bounded(&path, MAX_KEY_FILE_LEN) {
            Ok(file) => file,
            Err(KeystoreError::Io { source, .. })
                if source.kind() == std::io::ErrorKind::NotFound =>
            {
                return Err(if self.tombstone_path(name).exists() {
                    KeystoreError::Destroyed(name.to_string())
                } else {
                    KeystoreError::NotFound(name.to_string())
                });
            }
            Err(other) => return Err(other),
        };
        if file.len() < 12 {
            return Err(KeystoreError::Corrupt(name.to_string()));
        }
        let (nonce, sealed) = file.split_at(12);
        let secret = Zeroizing::new(
            self.cipher
                .decrypt(&nonce_of(nonce), Payload { msg: sealed, aad: &Self::aad(name, kind) })
                // A file of another kind fails here too; that is what we want to refuse.
                .map_err(|_| KeystoreError::Corrupt(name.to_string()))?,
        );
        let bytes: &[u8; 32] =
            secret.as_slice().try_into().map_err(|_| KeystoreError::Corrupt(name.to_string()))?;
        let loaded = match kind {
            KeyKind::EpochP256 => Loaded::Epoch(Arc::new(
                EpochSecretKey::from_bytes(bytes).map_err(|_| KeystoreError::Corrupt(name.to_string()))?,
            )),
            KeyKind::Secret => Loaded::Secret(Zeroizing::new(*bytes)),
            KeyKind::Ed25519 => Loaded::Signing(Arc::new(SigningKey::from_bytes(bytes))),
        };
        self.cache.lock().expect("keystore cache lock").insert(name.clone(), loaded.clone());
        Ok(loaded)
    }
}

impl Keystore for FileKeystore {
    fn generate_epoch_key(
        &self,
        name: &KeyName,
        rng: &mut dyn CryptoRngCore,
    ) -> Result<EpochPublicKey, KeystoreError> {
        let secret = EpochSecretKey::generate(&mut RngAdapter(rng));
        self.store_new(name, KeyKind::EpochP256, &secret.to_bytes(), rng)?;
        Ok(secret.public_key())
    }

    fn epoch_decapsulator(&self, name: &KeyName) -> Result<SharedDecapsulator, KeystoreError> {
        match self.load(name, KeyKind::EpochP256)? {
            Loaded::Epoch(key) => Ok(key),
            _ => Err(KeystoreError::WrongKind(name.to_string())),
        }
    }

    fn secret(
        &self,
        name: &KeyName,
        rng: &mut dyn CryptoRngCore,
    ) -> Result<Zeroizing<[u8; 32]>, KeystoreError> {
        match self.load(name, KeyKind::Secret) {
            Ok(Loaded::Secret(secret)) => Ok(secret),
            Ok(_) => Err(KeystoreError::WrongKind(name.to_string())),
            Err(KeystoreError::NotFound(_)) => {
                let mut secret = Zeroizing::new([0u8; 32]);
                rng.fill_bytes(secret.as_mut());
                self.store_new(name, KeyKind::Secret, &secret, rng)?;
                Ok(secret)
            }
            Err(other) => Err(other),
        }
    }

    fn ensure_signing_key(
        &self,
        name: &KeyName,
        rng: &mut dyn CryptoRngCore,
    ) -> Result<[u8; 32], KeystoreError> {
        match self.load(name, KeyKind::Ed25519) {
            Ok(Loaded::Signing(key)) => Ok(key.verifying_key().to_bytes()),
            Ok(_) => Err(KeystoreError::WrongKind(name.to_string())),
            Err(KeystoreError::NotFound(_)) => {
                let mut seed = Zeroizing::new([0u8; 32]);
                rng.fill_bytes(seed.as_mut());
                self.store_new(name, KeyKind::Ed25519, &seed, rng)?;
                Ok(SigningKey::from_bytes(&seed).verifying_key().to_bytes())
            }
            Err(other) => Err(other),
        }
    }

    fn sign(&self, name: &KeyName, message: &[u8]) -> Result<[u8; 64], KeystoreError> {
        match self.load(name, KeyKind::Ed25519)? {
            Loaded::Signing(key) => Ok(key.sign(message).to_bytes()),
            _ => Err(KeystoreError::WrongKind(name.to_string())),
        }
    }

    fn destroy(&self, name: &KeyName) -> Result<(), KeystoreError> {
        let path = self.key_path(name);
        let tombstone = self.tombstone_path(name);
        self.cache.lock().expect("keystore cache lock").remove(name);
        if !path.exists() {
            return if tombstone.exists() {
                Ok(())
            } else {
                Err(KeystoreError::NotFound(name.to_string()))
            };
        }
        // Tombstone first: a crash after it and before the unlink leaves a key that `state`
        // reports destroyed and that the next destroy finishes off.
        write_durably(&tombstone, b"")?;
        let len = fs::metadata(&path).map_err(|e| io_err(&path, e))?.len();
        let mut file = OpenOptions::new().write(true).open(&path).map_err(|e| io_err(&path, e))?;
        file.write_all(&vec![0u8; len as usize]).map_err(|e| io_err(&path, e))?;
        file.sync_all().map_err(|e| io_err(&path, e))?;
        drop(file);
        fs::remove_file(&path).map_err(|e| io_err(&path, e))?;
        sync_parent(&path)
    }

    fn state(&self, name: &KeyName) -> Result<KeyState, KeystoreError> {
        if self.tombstone_path(name).exists() {
            Ok(KeyState::Destroyed)
        } else if self.key_path(name).exists() {
            Ok(KeyState::Present)
        } else {
            Ok(KeyState::Absent)
        }
    }
}

/// `EpochSecretKey::generate` wants a sized RNG; this lends it our trait object.
struct RngAdapter<'a>(&'a mut dyn CryptoRngCore);

impl rand_core::RngCore for RngAdapter<'_> {
    fn next_u32(&mut self) -> u32 {
        self.0.next_u32()
    }
    fn next_u64(&mut self) -> u64 {
        self.0.next_u64()
    }
    fn fill_bytes(&mut self, dest: &mut [u8]) {
        self.0.fill_bytes(dest)
    }
    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rand_core::Error> {
        self.0.try_fill_bytes(dest)
    }
}

impl rand_core::CryptoRng for RngAdapter<'_> {}

fn stretch(
    passphrase: &[u8],
    salt: &[u8],
    params: Argon2Params,
) -> Result<Zeroizing<[u8; 32]>, KeystoreError> {
    let argon_params = argon2::Params::new(params.m_kib, params.t, params.p, Some(32))
        .map_err(|e| KeystoreError::NotAKeystore(format!("Argon2 parameters: {e}")))?;
    let argon = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, argon_params);
    let mut key = Zeroizing::new([0u8; 32]);
    argon
        .hash_password_into(passphrase, salt, key.as_mut())
        .map_err(|e| KeystoreError::NotAKeystore(format!("Argon2: {e}")))?;
    Ok(key)
}

fn nonce_of(bytes: &[u8]) -> Nonce<aes_gcm::aead::consts::U12> {
    let array: [u8; 12] = bytes.try_into().expect("callers split off exactly 12 bytes");
    Nonce::from(array)
}

fn io_err(path: &Path, source: std::io::Error) -> KeystoreError {
    KeystoreError::Io { path: path.display().to_string(), source }
}

fn read_bounded(path: &Path, max: u64) -> Result<Vec<u8>, KeystoreError> {
    let len = fs::metadata(path).map_err(|e| io_err(path, e))?.len();
    if len > max {
        return Err(KeystoreError::Corrupt(path.display().to_string()));
    }
    fs::read(path).map_err(|e| io_err(path, e))
}

fn create_dir_private(dir: &Path) -> Result<(), KeystoreError> {
    fs::create_dir_all(dir).map_err(|e| io_err(dir, e))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(dir, fs::Permissions::from_mode(0o700)).map_err(|e| io_err(dir, e))?;
    }
    Ok(())
}

fn write_private_file(path: &Path, bytes: &[u8]) -> Result<(), KeystoreError> {
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).map_err(|e| io_err(parent, e))?;
    }
    let mut file = options.open(path).map_err(|e| io_err(path, e))?;
    file.write_all(bytes).map_err(|e| io_err(path, e))?;
    file.sync_all().map_err(|e| io_err(path, e))?;
    sync_parent(path)
}

/// Writes through a temporary file, syncs it, renames it into place and syncs the folder, so a
/// crash leaves either the old file or the new one.
pub(crate) fn write_durably(path: &Path, bytes: &[u8]) -> Result<(), KeystoreError> {
    let tmp = path.with_extension("tmp");
    {
        let mut options = OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let mut file = options.open(&tmp).map_err(|e| io_err(&tmp, e))?;
        file.write_all(bytes).map_err(|e| io_err(&tmp, e))?;
        file.sync_all().map_err(|e| io_err(&tmp, e))?;
    }
    fs::rename(&tmp, path).map_err(|e| io_err(path, e))?;
    sync_parent(path)
}

fn sync_parent(path: &Path) -> Result<(), KeystoreError> {
    let parent = path.parent().unwrap_or(Path::new("."));
    File::open(parent).and_then(|dir| dir.sync_all()).map_err(|e| io_err(parent, e))
}
