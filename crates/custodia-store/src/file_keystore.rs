//! The encrypted file keystore: the embedded default behind [`Keystore`].
//!
//! Layout of its folder (format version 2; see `docs/keystore.md` for the byte layouts):
//!
//! ```text
//! keystore.json            version, how the master key is obtained, its generation and id, a check
//!                          value, and (passphrase mode) the data master key wrapped by Argon2id
//! master.key               (key-file mode) 32 random bytes, mode 0600; better kept OUTSIDE this folder
//! master.key.next          (key-file mode, only during a master key rotation) the next master key
//! keys/<name>.key          one file per key: "cks2" || kind || master id || nonce || AES-256-GCM
//! keys/<name>.destroyed    tombstone left when a key is destroyed
//! ```
//!
//! **Master keys.** In key-file mode the master key is the 32 bytes of a generated 0600 file. In
//! passphrase mode Argon2id (RFC 9106) stretches the passphrase into a *key-encryption key* that
//! wraps a random *data master key*, stored only wrapped, in `keystore.json`; the data master key
//! seals the key files. Each key file names (in its header, bound into the AEAD associated data
//! with its name and kind) the id of the master that sealed it: the first 8 bytes of
//! SHA-256(domain || master). One file per key makes destruction local: the file is overwritten
//! with zeros, synced and unlinked, and a tombstone records that the name may never be reused.
//!
//! **Making destruction final against copies** ([`Keystore::seal_destructions`]). A copy of the
//! folder taken before a destruction still holds the destroyed key's sealed file. Rotation
//! generates a fresh master, re-seals every surviving key file under it and destroys the old one,
//! in four durable steps that [`FileKeystore::open`] resumes after a crash (it never loses a key):
//! write the next master (key file `<master>.next`, or `next_data_master` in `keystore.json`);
//! re-seal each key file (temporary file, fsync, rename, then fsync each folder); point
//! `keystore.json` at the new master; overwrite the old master file with zeros and rename
//! `<master>.next` over it. What that buys against a copy taken before the rotation depends on
//! where the master lives:
//!
//! - key-file mode, master file kept **off** the keystore folder: the copy holds no master key, and
//!   the only one the vault still has is the new one, which opens none of the copy's files.
//!   Destruction is final against the copy.
//! - key-file mode, master file **inside** the copied folder: the copy carries its own old master
//!   key and opens by itself. Nothing the vault does afterwards can help.
//! - passphrase mode: the copy's key files are sealed under an old data master key, which exists
//!   only in the copy's `keystore.json`, wrapped under the passphrase's Argon2id key. The vault
//!   keeps that Argon2id key in memory (rotation must wrap the next data master key without asking
//!   for the passphrase), and the passphrase does not change. So the copy stays unopenable only to
//!   an attacker who **lacks the passphrase**; one who has the copy **and** the passphrase opens it,
//!   destroyed keys included, rotation or not. What rotation does give in this mode: no key the
//!   vault holds opens the copy's key files directly; only the copy's own `keystore.json`, opened
//!   with the passphrase, does.
//!
//! What it is not: protection against a thief who copies the folder *with* its master key file,
//! nor against flash or copy-on-write storage that keeps old blocks after an overwrite or rename
//! (destroyed keys, replaced key files and old wrapped masters are unrecoverable through the
//! filesystem; forensic recovery of raw blocks is out of scope, which the HSM backend answers).
//! One process opens a keystore at a time; one master key file serves one keystore (never point
//! a restored copy at the live master file while a rotation is pending).
//!
//! ```no_run
//! use custodia_store::file_keystore::{FileKeystore, MasterKeySource};
//! use custodia_store::{KeyName, Keystore};
//! let mut rng = rand_core::OsRng;
//! let store = FileKeystore::create(
//!     std::path::Path::new("vault/keys"),
//!     MasterKeySource::KeyFile("/etc/custodia/master.key".into()),
//!     &mut rng,
//! )?;
//! let name = KeyName::new("epoch/face/1700000000000/616e7a")?;
//! store.generate_epoch_key(&name, &mut rng)?;
//! store.destroy(&name)?;
//! store.seal_destructions(&mut rng)?; // a copy of vault/keys taken before now no longer opens
//! # Ok::<(), custodia_store::KeystoreError>(())
//! ```

use std::collections::{BTreeSet, HashMap};
use std::ffi::OsString;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use custodia_seal::{EpochPublicKey, EpochSecretKey};
use ed25519_dalek::{Signer, SigningKey};
use rand_core::CryptoRngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::keystore::{KeyName, KeyState, Keystore, KeystoreError, SharedDecapsulator};

/// The format this build writes. Version 1 (before master key rotation: no master ids, the
/// Argon2id output sealed the key files directly) is still read, and becomes version 2 at the
/// first rotation.
const VERSION: u32 = 2;
const VERSION_1: u32 = 1;
const CHECK_PLAINTEXT: &[u8] = b"custodia keystore v1 check";
const CHECK_AAD: &[u8] = b"check";
/// Domain of a master key id, so the id is not a hash anything else computes over the key.
const MASTER_ID_DOMAIN: &[u8] = b"custodia keystore master key id v2\0";
/// Associated data of a data master key wrapped by the passphrase's Argon2id key.
const DATA_MASTER_AAD: &[u8] = b"custodia keystore v2 data master key";
const KEY_AAD_V1: &[u8] = b"custodia keystore v1 key\0";
const KEY_AAD_V2: &[u8] = b"custodia keystore v2 key\0";
/// First bytes of a version-2 key file.
const KEY_FILE_MAGIC: &[u8; 4] = b"cks2";
/// Version-2 key file header: magic, kind, id of the sealing master.
const KEY_HEADER_LEN: usize = 4 + 1 + MASTER_ID_LEN;
const MASTER_ID_LEN: usize = 8;
const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;
/// A version-1 key file: nonce || AES-GCM(32-byte secret).
const V1_KEY_FILE_LEN: usize = NONCE_LEN + 32 + TAG_LEN;
/// A version-2 key file: header || nonce || AES-GCM(32-byte secret).
const V2_KEY_FILE_LEN: usize = KEY_HEADER_LEN + NONCE_LEN + 32 + TAG_LEN;
/// Largest key file we read: a version-2 file with slack. Anything larger is not ours.
const MAX_KEY_FILE_LEN: u64 = 256;
/// Largest `keystore.json` we read.
const MAX_MANIFEST_LEN: u64 = 64 * 1024;
/// Suffix of a key file being re-sealed during rotation (never a key file or tombstone name).
const RESEAL_TMP_EXTENSION: &str = "key.reseal";

/// How the master key is obtained.
pub enum MasterKeySource<'a> {
    /// A 32-byte key file created by [`FileKeystore::create`] (mode 0600). Keep it outside the
    /// keystore folder: a copy of the folder that includes it opens by itself, rotation or not.
    KeyFile(PathBuf),
    /// A passphrase stretched with Argon2id into the key that wraps a random data master key.
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

/// Where a master key rotation stops, for crash tests: each value leaves the files exactly as a
/// crash right after that point would. Not part of the stable API.
#[doc(hidden)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RotationStep {
    /// The next master key is durably written (`<master>.next`, or `next_data_master`).
    NextMasterWritten,
    /// This many key files have been re-sealed under the next master (folders synced).
    Resealed(usize),
    /// `keystore.json` names the new master; the old master file is still intact.
    ManifestUpdated,
    /// (key-file mode) The old master file is overwritten with zeros, `.next` not yet renamed.
    OldMasterZeroed,
    /// The whole rotation.
    Done,
}

#[derive(Clone, Serialize, Deserialize)]
struct Manifest {
    version: u32,
    master: ManifestMaster,
    /// How many rotations this keystore has been through (0 for version 1).
    #[serde(default)]
    generation: u64,
    /// hex(master id) of the master that seals the key files (absent in version 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    master_id: Option<String>,
    /// hex(nonce || AES-GCM(master, CHECK_PLAINTEXT)): tells a wrong passphrase from a corrupt file.
    check: String,
    /// Passphrase mode: hex(nonce || AES-GCM(Argon2id key, data master key)). Absent in version 1,
    /// where the Argon2id output itself sealed the key files.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    data_master: Option<String>,
    /// Passphrase mode, during a rotation only: the next data master key, wrapped the same way.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    next_data_master: Option<String>,
}

#[derive(Clone, Serialize, Deserialize)]
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

impl KeyKind {
    const ALL: [KeyKind; 3] = [KeyKind::EpochP256, KeyKind::Secret, KeyKind::Ed25519];

    fn from_byte(byte: u8) -> Option<Self> {
        Self::ALL.into_iter().find(|kind| *kind as u8 == byte)
    }
}

/// A decrypted key held in memory while the keystore is open.
#[derive(Clone)]
enum Loaded {
    Epoch(Arc<EpochSecretKey>),
    Secret(Zeroizing<[u8; 32]>),
    Signing(Arc<SigningKey>),
}

/// A master key ready to use: its id and its cipher (which zeroizes its key schedule on drop).
/// Never `Debug`.
struct MasterKey {
    id: [u8; MASTER_ID_LEN],
    cipher: Aes256Gcm,
}

impl MasterKey {
    fn new(bytes: &[u8; 32]) -> Self {
        let digest = Sha256::new().chain_update(MASTER_ID_DOMAIN).chain_update(bytes).finalize();
        let mut id = [0u8; MASTER_ID_LEN];
        id.copy_from_slice(&digest[..MASTER_ID_LEN]);
        Self { id, cipher: Aes256Gcm::new_from_slice(bytes).expect("32-byte key") }
    }

    fn seal(&self, msg: &[u8], aad: &[u8], rng: &mut dyn CryptoRngCore) -> Vec<u8> {
        seal_with(&self.cipher, msg, aad, rng)
    }

    fn seal_check(&self, rng: &mut dyn CryptoRngCore) -> String {
        hex::encode(self.seal(CHECK_PLAINTEXT, CHECK_AAD, rng))
    }

    /// Whether this is the master `manifest` names: its id (version 2) and its check value.
    fn opens(&self, manifest: &Manifest) -> Result<bool, KeystoreError> {
        if manifest.master_id.as_ref().is_some_and(|id| *id != hex::encode(self.id)) {
            return Ok(false);
        }
        let check =
            hex::decode(&manifest.check).map_err(|_| KeystoreError::NotAKeystore("check value is not hex".into()))?;
        Ok(open_with(&self.cipher, &check, CHECK_AAD).is_some_and(|opened| *opened == *CHECK_PLAINTEXT))
    }
}

/// The key-file mode's master file and where its successor waits during a rotation.
struct MasterFiles {
    current: PathBuf,
    next: PathBuf,
}

impl MasterFiles {
    fn new(current: &Path) -> Self {
        let mut next = OsString::from(current.as_os_str());
        next.push(".next");
        Self { current: current.to_path_buf(), next: PathBuf::from(next) }
    }
}

/// What the open keystore knows about its master; replaced whole by a rotation.
struct MasterState {
    manifest: Manifest,
    master: MasterKey,
    /// The next master while a rotation is under way (or failed part-way in this process): key
    /// files already re-sealed under it are opened with it.
    pending: Option<MasterKey>,
    /// Passphrase mode: the Argon2id key that wraps data master keys. Held for the keystore's
    /// lifetime so that rotation needs no passphrase; this is why a copy plus the passphrase
    /// still opens (module documentation).
    kek: Option<Aes256Gcm>,
}

/// The encrypted file keystore. Cheap to share behind an `Arc`; all methods take `&self`.
pub struct FileKeystore {
    root: PathBuf,
    /// Readers: every key operation. Writer: a master key rotation, which rewrites every file.
    state: RwLock<MasterState>,
    cache: Mutex<HashMap<KeyName, Loaded>>,
}

impl FileKeystore {
    /// Creates a new keystore in `root` (created if missing, refused if it already holds one).
    ///
    /// With [`MasterKeySource::KeyFile`], a fresh 32-byte master key is written to that path with
    /// mode 0600; with a passphrase, a random salt and a random data master key are made and the
    /// data master key is stored wrapped under the Argon2id key.
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
        let mut bytes = Zeroizing::new([0u8; 32]);
        rng.fill_bytes(bytes.as_mut());
        let master = MasterKey::new(&bytes);
        let (manifest_master, kek, data_master) = match source {
            MasterKeySource::KeyFile(path) => {
                write_private_file(&path, bytes.as_ref())?;
                (ManifestMaster::KeyFile { path: path.display().to_string() }, None, None)
            }
            MasterKeySource::Passphrase(passphrase, params) => {
                let mut salt = [0u8; 16];
                rng.fill_bytes(&mut salt);
                let kek = kek_cipher(&stretch(passphrase, &salt, params)?);
                let wrapped = hex::encode(seal_with(&kek, bytes.as_ref(), DATA_MASTER_AAD, rng));
                (ManifestMaster::Argon2id { salt: hex::encode(salt), params }, Some(kek), Some(wrapped))
            }
        };
        let manifest = Manifest {
            version: VERSION,
            master: manifest_master,
            generation: 0,
            master_id: Some(hex::encode(master.id)),
            check: master.seal_check(rng),
            data_master,
            next_data_master: None,
        };
        write_manifest(root, &manifest)?;
        Ok(Self::from_state(root, MasterState { manifest, master, pending: None, kek }))
    }

    /// Opens an existing keystore. For a key-file keystore pass `None` to use the path recorded
    /// at creation, or the passphrase for an Argon2id one.
    ///
    /// If a master key rotation was interrupted, this finishes it before returning (drawing the
    /// new nonces from the operating system; [`FileKeystore::open_with_rng`] takes them from the
    /// caller). A folder whose master key is not at hand fails with
    /// [`KeystoreError::WrongMasterKey`] and is left untouched.
    pub fn open(root: &Path, passphrase: Option<&[u8]>) -> Result<Self, KeystoreError> {
        Self::open_with_rng(root, passphrase, &mut rand_core::OsRng)
    }

    /// [`FileKeystore::open`], with the RNG that supplies nonces if an interrupted rotation must
    /// be finished.
    pub fn open_with_rng(
        root: &Path,
        passphrase: Option<&[u8]>,
        rng: &mut dyn CryptoRngCore,
    ) -> Result<Self, KeystoreError> {
        let manifest = read_manifest(root)?;
        let (master, kek, pending) = match &manifest.master {
            ManifestMaster::KeyFile { path } => {
                let files = MasterFiles::new(Path::new(path));
                let current = read_master_file(&files.current)?;
                let next = match read_master_file(&files.next) {
                    Ok(next) => Some(next),
                    Err(KeystoreError::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => None,
                    Err(other) => return Err(other),
                };
                if current.opens(&manifest)? {
                    // No rotation, or one stopped before `keystore.json` moved on: finish it.
                    (current, None, next)
                } else if let Some(next) = next.filter(|next| next.opens(&manifest).unwrap_or(false)) {
                    // Stopped after `keystore.json` moved on: only the old master remains to go.
                    retire_old_master_file(&files, false)?;
                    (next, None, None)
                } else {
                    return Err(KeystoreError::WrongMasterKey);
                }
            }
            ManifestMaster::Argon2id { salt, params } => {
                let passphrase = passphrase.ok_or(KeystoreError::WrongMasterKey)?;
                let salt = hex::decode(salt).map_err(|_| KeystoreError::NotAKeystore("salt is not hex".into()))?;
                let stretched = stretch(passphrase, &salt, *params)?;
                let kek = kek_cipher(&stretched);
                let current = match &manifest.data_master {
                    Some(wrapped) => unwrap_data_master(&kek, wrapped)?,
                    None => MasterKey::new(&stretched),
                };
                if !current.opens(&manifest)? {
                    return Err(KeystoreError::WrongMasterKey);
                }
                let next = match &manifest.next_data_master {
                    Some(wrapped) => Some(unwrap_data_master(&kek, wrapped)?),
                    None => None,
                };
                (current, Some(kek), next)
            }
        };
        let resume = pending.is_some();
        let store = Self::from_state(root, MasterState { manifest, master, pending, kek });
        if resume {
            let mut state = store.state.write().expect("keystore state lock");
            store.finish_rotation(&mut state, RotationStep::Done, rng)?;
        }
        Ok(store)
    }

    fn from_state(root: &Path, state: MasterState) -> Self {
        Self { root: root.to_path_buf(), state: RwLock::new(state), cache: Mutex::new(HashMap::new()) }
    }

    /// How many master key rotations this keystore has been through.
    pub fn master_generation(&self) -> u64 {
        self.state.read().expect("keystore state lock").manifest.generation
    }

    /// Rotates the master key, stopping where `stop` says as if the process had crashed there:
    /// the files are left exactly as that crash would leave them. Opening the folder again
    /// finishes the rotation; this handle stays usable too, and its next rotation finishes the
    /// stopped one first. With [`RotationStep::Done`] this is [`Keystore::seal_destructions`].
    /// For crash tests only.
    #[doc(hidden)]
    pub fn rotate_master_key_until(
        &self,
        stop: RotationStep,
        rng: &mut dyn CryptoRngCore,
    ) -> Result<(), KeystoreError> {
        let mut state = self.state.write().expect("keystore state lock");
        if state.pending.is_none() {
            let next = self.begin_rotation(&mut state, rng)?;
            state.pending = Some(next);
        }
        if stop == RotationStep::NextMasterWritten {
            return Ok(());
        }
        self.finish_rotation(&mut state, stop, rng)
    }

    /// Step 1: makes the next master key and writes it durably, or picks up the one an
    /// interrupted rotation left (files may already be sealed under it).
    fn begin_rotation(&self, state: &mut MasterState, rng: &mut dyn CryptoRngCore) -> Result<MasterKey, KeystoreError> {
        match &state.manifest.master {
            ManifestMaster::KeyFile { path } => {
                let files = MasterFiles::new(Path::new(path));
                if files.next.exists() {
                    let next = read_master_file(&files.next)?;
                    if next.id != state.master.id {
                        return Ok(next);
                    }
                    // The last rotation failed in step 4, after its master became current:
                    // finish that, then start afresh (reusing it would rotate to the same key).
                    retire_old_master_file(&files, false)?;
                }
                let mut bytes = Zeroizing::new([0u8; 32]);
                rng.fill_bytes(bytes.as_mut());
                write_master_file(&files.next, &bytes)?;
                Ok(MasterKey::new(&bytes))
            }
            ManifestMaster::Argon2id { .. } => {
                let kek = state.kek.as_ref().expect("passphrase keystores hold their Argon2id key");
                if let Some(wrapped) = &state.manifest.next_data_master {
                    return unwrap_data_master(kek, wrapped);
                }
                let mut bytes = Zeroizing::new([0u8; 32]);
                rng.fill_bytes(bytes.as_mut());
                let mut manifest = state.manifest.clone();
                manifest.version = VERSION;
                manifest.next_data_master = Some(hex::encode(seal_with(kek, bytes.as_ref(), DATA_MASTER_AAD, rng)));
                write_manifest(&self.root, &manifest)?;
                state.manifest = manifest;
                Ok(MasterKey::new(&bytes))
            }
        }
    }

    /// Steps 2 to 4: re-seals every key file not yet under the pending master, points
    /// `keystore.json` at it, and destroys the old master. Every step is idempotent, so a crash
    /// (or an error) anywhere is finished by running this again with the same pending master.
    fn finish_rotation(
        &self,
        state: &mut MasterState,
        stop: RotationStep,
        rng: &mut dyn CryptoRngCore,
    ) -> Result<(), KeystoreError> {
        // Step 2. Renames are made durable folder by folder, all before step 3.
        let mut folders = BTreeSet::new();
        let mut resealed = 0usize;
        let next = state.pending.as_ref().expect("a rotation under way has its next master");
        for (name, path) in self.key_files()? {
            if stop == RotationStep::Resealed(resealed) {
                return sync_folders(&folders);
            }
            if self.tombstone_path(&name).exists() {
                // A destruction that crashed before its unlink: finish it, never re-seal it.
                shred_file(&path)?;
                continue;
            }
            let file = read_bounded(&path, MAX_KEY_FILE_LEN)?;
            if matches!(parse_key_file(&file), Some(KeyFile::V2 { master_id, .. }) if master_id == next.id) {
                continue;
            }
            let (kind, secret) = open_key_file(&state.master, &name, &file, None)
                .ok_or_else(|| KeystoreError::Corrupt(name.to_string()))?;
            let sealed = seal_key_file(next, &name, kind, &secret, rng);
            let tmp = path.with_extension(RESEAL_TMP_EXTENSION);
            write_synced(&tmp, &sealed)?;
            fs::rename(&tmp, &path).map_err(|e| io_err(&path, e))?;
            folders.insert(path.parent().unwrap_or(Path::new(".")).to_path_buf());
            resealed += 1;
        }
        sync_folders(&folders)?;
        if let RotationStep::Resealed(_) = stop {
            return Ok(());
        }

        // Step 3.
        let mut manifest = state.manifest.clone();
        manifest.version = VERSION;
        manifest.generation += 1;
        manifest.master_id = Some(hex::encode(next.id));
        manifest.check = next.seal_check(rng);
        let next = state.pending.take().expect("checked above");
        if manifest.next_data_master.is_some() {
            manifest.data_master = manifest.next_data_master.take();
        }
        write_manifest(&self.root, &manifest)?;
        state.manifest = manifest;
        state.master = next;
        if stop == RotationStep::ManifestUpdated {
            return Ok(());
        }

        // Step 4. In passphrase mode the old data master key existed only inside the
        // `keystore.json` that step 3 replaced.
        if let ManifestMaster::KeyFile { path } = &state.manifest.master {
            retire_old_master_file(&MasterFiles::new(Path::new(path)), stop == RotationStep::OldMasterZeroed)?;
        }
        Ok(())
    }

    /// Every `keys/**/<name>.key` whose path spells a valid key name. Other files (temporaries,
    /// tombstones, strays) are not keys and are left alone.
    fn key_files(&self) -> Result<Vec<(KeyName, PathBuf)>, KeystoreError> {
        let keys = self.root.join("keys");
        let mut found = Vec::new();
        let mut folders = vec![keys.clone()];
        while let Some(folder) = folders.pop() {
            let entries = match fs::read_dir(&folder) {
                Ok(entries) => entries,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound && folder == keys => continue,
                Err(e) => return Err(io_err(&folder, e)),
            };
            for entry in entries {
                let entry = entry.map_err(|e| io_err(&folder, e))?;
                let path = entry.path();
                let file_type = entry.file_type().map_err(|e| io_err(&path, e))?;
                if file_type.is_dir() {
                    folders.push(path);
                    continue;
                }
                let Ok(relative) = path.strip_prefix(&keys) else { continue };
                let Some(relative) = relative.to_str() else { continue };
                let Some(stem) = relative.strip_suffix(".key") else { continue };
                let stem = stem.replace(std::path::MAIN_SEPARATOR, "/");
                if let Ok(name) = KeyName::new(stem) {
                    found.push((name, path));
                }
            }
        }
        found.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(found)
    }

    fn key_path(&self, name: &KeyName) -> PathBuf {
        self.root.join("keys").join(format!("{}.key", name.as_str()))
    }

    fn tombstone_path(&self, name: &KeyName) -> PathBuf {
        self.root.join("keys").join(format!("{}.destroyed", name.as_str()))
    }

    fn store_new(
        &self,
        name: &KeyName,
        kind: KeyKind,
        secret: &[u8; 32],
        rng: &mut dyn CryptoRngCore,
    ) -> Result<(), KeystoreError> {
        let state = self.state.read().expect("keystore state lock");
        if self.state(name)? != KeyState::Absent {
            return Err(KeystoreError::AlreadyExists(name.to_string()));
        }
        let file = seal_key_file(&state.master, name, kind, secret, rng);
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
        let state = self.state.read().expect("keystore state lock");
        let path = self.key_path(name);
        let file = match read_bounded(&path, MAX_KEY_FILE_LEN) {
            Ok(file) => file,
            Err(KeystoreError::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
                return Err(if self.tombstone_path(name).exists() {
                    KeystoreError::Destroyed(name.to_string())
                } else {
                    KeystoreError::NotFound(name.to_string())
                });
            }
            Err(other) => return Err(other),
        };
        if let Some(KeyFile::V2 { kind: found, .. }) = parse_key_file(&file)
            && found != kind as u8
        {
            return Err(KeystoreError::WrongKind(name.to_string()));
        }
        // A file of another kind, under another master or altered fails here; one variant for all.
        let master = match (&state.pending, parse_key_file(&file)) {
            (Some(pending), Some(KeyFile::V2 { master_id, .. })) if master_id == pending.id => pending,
            _ => &state.master,
        };
        let (_, secret) =
            open_key_file(master, name, &file, Some(kind)).ok_or_else(|| KeystoreError::Corrupt(name.to_string()))?;
        let loaded = match kind {
            KeyKind::EpochP256 => Loaded::Epoch(Arc::new(
                EpochSecretKey::from_bytes(&secret).map_err(|_| KeystoreError::Corrupt(name.to_string()))?,
            )),
            KeyKind::Secret => Loaded::Secret(secret),
            KeyKind::Ed25519 => Loaded::Signing(Arc::new(SigningKey::from_bytes(&secret))),
        };
        self.cache.lock().expect("keystore cache lock").insert(name.clone(), loaded.clone());
        Ok(loaded)
    }
}

impl Keystore for FileKeystore {
    fn generate_epoch_key(&self, name: &KeyName, rng: &mut dyn CryptoRngCore) -> Result<EpochPublicKey, KeystoreError> {
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

    fn secret(&self, name: &KeyName, rng: &mut dyn CryptoRngCore) -> Result<Zeroizing<[u8; 32]>, KeystoreError> {
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

    fn ensure_signing_key(&self, name: &KeyName, rng: &mut dyn CryptoRngCore) -> Result<[u8; 32], KeystoreError> {
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
        // Shared with other key operations, exclusive with a rotation that rewrites key files.
        let _state = self.state.read().expect("keystore state lock");
        let path = self.key_path(name);
        let tombstone = self.tombstone_path(name);
        self.cache.lock().expect("keystore cache lock").remove(name);
        if !path.exists() {
            return if tombstone.exists() { Ok(()) } else { Err(KeystoreError::NotFound(name.to_string())) };
        }
        // Tombstone first: a crash after it and before the unlink leaves a key that `state`
        // reports destroyed and that the next destroy (or rotation) finishes off.
        write_durably(&tombstone, b"")?;
        shred_file(&path)
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

    /// Rotates the master key (module documentation): every surviving key file is re-sealed
    /// under a fresh master and the old master is destroyed. Costs one read, one write, one
    /// fsync and one rename per key file, and one fsync per key folder.
    fn seal_destructions(&self, rng: &mut dyn CryptoRngCore) -> Result<(), KeystoreError> {
        self.rotate_master_key_until(RotationStep::Done, rng)
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

/// A key file, split but not yet opened.
enum KeyFile<'a> {
    /// Format 1: `nonce(12) || AES-GCM(master, secret)`, associated data `v1 domain || kind || name`.
    V1 { nonce: &'a [u8], sealed: &'a [u8] },
    /// Format 2: `header(13) || nonce(12) || AES-GCM(master, secret)`, header
    /// `"cks2" || kind || master id`, associated data `v2 domain || header || name`.
    V2 { header: &'a [u8], kind: u8, master_id: [u8; MASTER_ID_LEN], nonce: &'a [u8], sealed: &'a [u8] },
}

fn parse_key_file(file: &[u8]) -> Option<KeyFile<'_>> {
    if file.len() == V2_KEY_FILE_LEN && file.starts_with(KEY_FILE_MAGIC) {
        let (header, rest) = file.split_at(KEY_HEADER_LEN);
        let (nonce, sealed) = rest.split_at(NONCE_LEN);
        let master_id = header[5..].try_into().expect("header ends with an 8-byte id");
        Some(KeyFile::V2 { header, kind: header[4], master_id, nonce, sealed })
    } else if file.len() == V1_KEY_FILE_LEN {
        let (nonce, sealed) = file.split_at(NONCE_LEN);
        Some(KeyFile::V1 { nonce, sealed })
    } else {
        None
    }
}

fn key_aad(domain: &[u8], binding: &[u8], name: &KeyName) -> Vec<u8> {
    let mut aad = domain.to_vec();
    aad.extend_from_slice(binding);
    aad.extend_from_slice(name.as_str().as_bytes());
    aad
}

fn seal_key_file(
    master: &MasterKey,
    name: &KeyName,
    kind: KeyKind,
    secret: &[u8; 32],
    rng: &mut dyn CryptoRngCore,
) -> Vec<u8> {
    let mut file = KEY_FILE_MAGIC.to_vec();
    file.push(kind as u8);
    file.extend_from_slice(&master.id);
    let aad = key_aad(KEY_AAD_V2, &file, name);
    let sealed = master.seal(secret, &aad, rng);
    file.extend_from_slice(&sealed);
    debug_assert_eq!(file.len(), V2_KEY_FILE_LEN);
    file
}

/// Opens a key file of either format with `master`; `None` for any failure (another master,
/// kind or name, an altered byte, a malformed file).
fn open_key_file(
    master: &MasterKey,
    name: &KeyName,
    file: &[u8],
    want: Option<KeyKind>,
) -> Option<(KeyKind, Zeroizing<[u8; 32]>)> {
    let to_secret = |plain: Zeroizing<Vec<u8>>| -> Option<Zeroizing<[u8; 32]>> {
        let bytes: [u8; 32] = plain.as_slice().try_into().ok()?;
        Some(Zeroizing::new(bytes))
    };
    match parse_key_file(file)? {
        KeyFile::V2 { header, kind, master_id, nonce, sealed } => {
            let kind = KeyKind::from_byte(kind)?;
            if master_id != master.id || want.is_some_and(|want| want != kind) {
                return None;
            }
            let plain = decrypt(&master.cipher, nonce, sealed, &key_aad(KEY_AAD_V2, header, name))?;
            Some((kind, to_secret(plain)?))
        }
        KeyFile::V1 { nonce, sealed } => {
            // No kind on file: the right one is the one whose associated data authenticates.
            let kinds = want.map_or(KeyKind::ALL.to_vec(), |want| vec![want]);
            kinds.into_iter().find_map(|kind| {
                let plain = decrypt(&master.cipher, nonce, sealed, &key_aad(KEY_AAD_V1, &[kind as u8], name))?;
                Some((kind, to_secret(plain)?))
            })
        }
    }
}

/// `nonce(12) || AES-GCM(msg)` with a fresh random nonce.
fn seal_with(cipher: &Aes256Gcm, msg: &[u8], aad: &[u8], rng: &mut dyn CryptoRngCore) -> Vec<u8> {
    let mut nonce = [0u8; NONCE_LEN];
    rng.fill_bytes(&mut nonce);
    let sealed = cipher
        .encrypt(&Nonce::from(nonce), Payload { msg, aad })
        .expect("AES-GCM encryption of a short message cannot fail");
    let mut out = nonce.to_vec();
    out.extend_from_slice(&sealed);
    out
}

/// Opens `nonce(12) || AES-GCM(msg)`.
fn open_with(cipher: &Aes256Gcm, data: &[u8], aad: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
    if data.len() < NONCE_LEN {
        return None;
    }
    let (nonce, sealed) = data.split_at(NONCE_LEN);
    decrypt(cipher, nonce, sealed, aad)
}

fn decrypt(cipher: &Aes256Gcm, nonce: &[u8], sealed: &[u8], aad: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
    cipher.decrypt(&nonce_of(nonce), Payload { msg: sealed, aad }).ok().map(Zeroizing::new)
}

fn kek_cipher(stretched: &Zeroizing<[u8; 32]>) -> Aes256Gcm {
    Aes256Gcm::new_from_slice(stretched.as_ref()).expect("32-byte key")
}

fn unwrap_data_master(kek: &Aes256Gcm, wrapped: &str) -> Result<MasterKey, KeystoreError> {
    let wrapped = hex::decode(wrapped).map_err(|_| KeystoreError::NotAKeystore("data master key is not hex".into()))?;
    // A wrong passphrase fails here, before the check value.
    let plain = open_with(kek, &wrapped, DATA_MASTER_AAD).ok_or(KeystoreError::WrongMasterKey)?;
    let bytes: Zeroizing<[u8; 32]> = Zeroizing::new(
        plain
            .as_slice()
            .try_into()
            .map_err(|_| KeystoreError::NotAKeystore("data master key is not 32 bytes".into()))?,
    );
    Ok(MasterKey::new(&bytes))
}

fn stretch(passphrase: &[u8], salt: &[u8], params: Argon2Params) -> Result<Zeroizing<[u8; 32]>, KeystoreError> {
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
    let array: [u8; NONCE_LEN] = bytes.try_into().expect("callers split off exactly 12 bytes");
    Nonce::from(array)
}

fn io_err(path: &Path, source: std::io::Error) -> KeystoreError {
    KeystoreError::Io { path: path.display().to_string(), source }
}

fn read_manifest(root: &Path) -> Result<Manifest, KeystoreError> {
    let path = root.join("keystore.json");
    let json = read_bounded(&path, MAX_MANIFEST_LEN)?;
    let manifest: Manifest =
        serde_json::from_slice(&json).map_err(|e| KeystoreError::NotAKeystore(format!("{}: {e}", path.display())))?;
    if manifest.version != VERSION && manifest.version != VERSION_1 {
        return Err(KeystoreError::NotAKeystore(format!(
            "{}: version {} (this build reads {VERSION_1} and {VERSION})",
            path.display(),
            manifest.version
        )));
    }
    if manifest.version == VERSION && manifest.master_id.is_none() && manifest.generation > 0 {
        return Err(KeystoreError::NotAKeystore(format!("{}: no master key id", path.display())));
    }
    Ok(manifest)
}

fn write_manifest(root: &Path, manifest: &Manifest) -> Result<(), KeystoreError> {
    let json = serde_json::to_vec_pretty(manifest).expect("manifest serialises");
    write_durably(&root.join("keystore.json"), &json)
}

/// Reads a 32-byte master key file. A file of another length is no master key.
fn read_master_file(path: &Path) -> Result<MasterKey, KeystoreError> {
    let bytes = Zeroizing::new(read_bounded(path, 64)?);
    let key: Zeroizing<[u8; 32]> =
        Zeroizing::new(bytes.as_slice().try_into().map_err(|_| KeystoreError::WrongMasterKey)?);
    Ok(MasterKey::new(&key))
}

/// Writes a master key file (0600) through a temporary, so it is either whole or absent.
fn write_master_file(path: &Path, key: &[u8; 32]) -> Result<(), KeystoreError> {
    let mut tmp = OsString::from(path.as_os_str());
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    write_synced(&tmp, key)?;
    fs::rename(&tmp, path).map_err(|e| io_err(path, e))?;
    sync_parent(path)
}

/// Step 4 of a rotation: overwrites the old master file with zeros in place and syncs it, then
/// (unless `stop_after_zeroing`, for crash tests) renames `.next` over it and syncs the folder.
/// Safe to repeat: the old master is no longer needed once `keystore.json` names the next one.
fn retire_old_master_file(files: &MasterFiles, stop_after_zeroing: bool) -> Result<(), KeystoreError> {
    overwrite_with_zeros(&files.current)?;
    if stop_after_zeroing {
        return Ok(());
    }
    fs::rename(&files.next, &files.current).map_err(|e| io_err(&files.current, e))?;
    sync_parent(&files.current)
}

fn overwrite_with_zeros(path: &Path) -> Result<(), KeystoreError> {
    let len = fs::metadata(path).map_err(|e| io_err(path, e))?.len();
    let mut file = OpenOptions::new().write(true).open(path).map_err(|e| io_err(path, e))?;
    std::io::copy(&mut std::io::Read::take(std::io::repeat(0), len), &mut file).map_err(|e| io_err(path, e))?;
    file.sync_all().map_err(|e| io_err(path, e))
}

/// Overwrites a key file with zeros, syncs it, unlinks it and syncs its folder.
fn shred_file(path: &Path) -> Result<(), KeystoreError> {
    overwrite_with_zeros(path)?;
    fs::remove_file(path).map_err(|e| io_err(path, e))?;
    sync_parent(path)
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

/// Creates or truncates `path` (mode 0600), writes `bytes` and syncs the file (not its folder).
fn write_synced(path: &Path, bytes: &[u8]) -> Result<(), KeystoreError> {
    let mut options = OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path).map_err(|e| io_err(path, e))?;
    file.write_all(bytes).map_err(|e| io_err(path, e))?;
    file.sync_all().map_err(|e| io_err(path, e))
}

/// Writes through a temporary file, syncs it, renames it into place and syncs the folder, so a
/// crash leaves either the old file or the new one.
pub(crate) fn write_durably(path: &Path, bytes: &[u8]) -> Result<(), KeystoreError> {
    let tmp = path.with_extension("tmp");
    write_synced(&tmp, bytes)?;
    fs::rename(&tmp, path).map_err(|e| io_err(path, e))?;
    sync_parent(path)
}

fn sync_parent(path: &Path) -> Result<(), KeystoreError> {
    let parent = path.parent().unwrap_or(Path::new("."));
    sync_folder(parent)
}

fn sync_folder(folder: &Path) -> Result<(), KeystoreError> {
    File::open(folder).and_then(|dir| dir.sync_all()).map_err(|e| io_err(folder, e))
}

fn sync_folders(folders: &BTreeSet<PathBuf>) -> Result<(), KeystoreError> {
    folders.iter().try_for_each(|folder| sync_folder(folder))
}
