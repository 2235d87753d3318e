//! `FileKeystore::seal_destructions`: master key rotation makes a destruction final against a copy
//! of the keystore folder taken before it, never loses a surviving key, and is finished by `open`
//! after a crash at any step.
//!
//! The byte layouts these tests read on their own (key file header, master key id, associated
//! data) are the ones `docs/keystore.md` specifies; the tests decode them independently of the
//! crate, so a divergence between the documentation and the code fails here.

use std::path::{Path, PathBuf};

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use custodia_seal::{
    DataKey, DeviceId, EpochPublicKey, WrappedDataKey, data_key_binding, unwrap_data_key, wrap_data_key,
};
use custodia_store::file_keystore::{Argon2Params, FileKeystore, MasterKeySource, RotationStep};
use custodia_store::{KeyName, KeyState, Keystore, KeystoreError};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use sha2::{Digest, Sha256};

/// Cheap Argon2 parameters for tests; production defaults are 64 MiB, t=3.
const FAST: Argon2Params = Argon2Params { m_kib: 256, t: 1, p: 1 };
const PASSPHRASE: &[u8] = b"correct horse battery staple";

fn rng(seed: u64) -> ChaCha20Rng {
    ChaCha20Rng::seed_from_u64(seed)
}

fn name(text: &str) -> KeyName {
    KeyName::new(text).unwrap()
}

/// One epoch key's public half and a data key wrapped to it, as a capture would carry.
struct Epoch {
    name: KeyName,
    public: EpochPublicKey,
    data_key: DataKey,
    wrapped: WrappedDataKey,
    binding: [u8; 25],
}

/// What the keystore held before anything happened: enough to check every key still works.
struct Contents {
    epochs: Vec<Epoch>,
    secrets: Vec<(KeyName, [u8; 32])>,
    signing: (KeyName, [u8; 32]),
}

impl Contents {
    /// The epoch key the tests destroy.
    fn victim(&self) -> &Epoch {
        &self.epochs[0]
    }

    /// The epoch key whose destruction "crashes" after its tombstone.
    fn half_destroyed(&self) -> &Epoch {
        &self.epochs[1]
    }
}

fn populate(store: &FileKeystore, epochs: usize) -> Contents {
    let mut r = rng(7);
    let epochs = (0..epochs)
        .map(|i| {
            let name = name(&format!("epoch/face/{}/a{}", 3_600_000 * (i + 1), i % 3));
            let public = store.generate_epoch_key(&name, &mut r).unwrap();
            let data_key = DataKey::generate(&mut r);
            let binding = data_key_binding(&DeviceId([i as u8; 16]), i as u64, 0);
            let wrapped = wrap_data_key(&data_key, &public, &binding, &mut r);
            Epoch { name, public, data_key, wrapped, binding }
        })
        .collect();
    let secrets = ["blind/2026-10", "blind/2026-11"]
        .into_iter()
        .map(|text| (name(text), *store.secret(&name(text), &mut r).unwrap()))
        .collect();
    let signing_name = name("vault/epoch-signing");
    let signing_public = store.ensure_signing_key(&signing_name, &mut r).unwrap();
    Contents { epochs, secrets, signing: (signing_name, signing_public) }
}

/// Every key but the destroyed ones opens and does its job, with the values it had.
fn assert_survivors_work(store: &FileKeystore, contents: &Contents, destroyed: &[&KeyName]) {
    for epoch in &contents.epochs {
        if destroyed.contains(&&epoch.name) {
            assert_eq!(store.state(&epoch.name).unwrap(), KeyState::Destroyed, "{:?}", epoch.name);
            assert!(matches!(store.epoch_decapsulator(&epoch.name), Err(KeystoreError::Destroyed(_))));
            continue;
        }
        let decapsulator = store.epoch_decapsulator(&epoch.name).unwrap();
        assert_eq!(decapsulator.public_key(), epoch.public);
        let opened = unwrap_data_key(&epoch.wrapped, &*decapsulator, &epoch.binding).unwrap();
        assert_eq!(opened, epoch.data_key, "{:?}", epoch.name);
        // And a fresh wrap round-trips too.
        let fresh = DataKey::generate(&mut rng(99));
        let wrapped = wrap_data_key(&fresh, &epoch.public, b"binding", &mut rng(100));
        assert_eq!(unwrap_data_key(&wrapped, &*decapsulator, b"binding").unwrap(), fresh);
    }
    for (secret_name, value) in &contents.secrets {
        // An RNG that would make a different secret: the stored one must come back.
        assert_eq!(*store.secret(secret_name, &mut rng(12345)).unwrap(), *value);
    }
    let (signing_name, public) = &contents.signing;
    assert_eq!(store.ensure_signing_key(signing_name, &mut rng(54321)).unwrap(), *public);
    let signature = store.sign(signing_name, b"epoch set").unwrap();
    let key = ed25519_dalek::VerifyingKey::from_bytes(public).unwrap();
    key.verify_strict(b"epoch set", &ed25519_dalek::Signature::from_bytes(&signature)).unwrap();
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

fn all_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(all_files(&path));
        } else {
            out.push(path);
        }
    }
    out
}

fn key_file(root: &Path, key: &KeyName) -> PathBuf {
    root.join("keys").join(format!("{}.key", key.as_str()))
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut text = path.as_os_str().to_owned();
    text.push(suffix);
    PathBuf::from(text)
}

/// The master key id as docs/keystore.md defines it.
fn master_id(master: &[u8]) -> [u8; 8] {
    let digest = Sha256::new().chain_update(b"custodia keystore master key id v2\0").chain_update(master).finalize();
    digest[..8].try_into().unwrap()
}

/// Opens a format-2 key file by the documented layout, outside the crate:
/// `"cks2" || kind || master id(8) || nonce(12) || AES-256-GCM(secret)`, associated data
/// `"custodia keystore v2 key\0" || header(13) || name`.
fn open_key_file_by_the_book(master: &[u8], key: &KeyName, file: &[u8]) -> Option<Vec<u8>> {
    assert_eq!(file.len(), 73, "a format-2 key file is 73 bytes");
    assert_eq!(&file[..4], b"cks2");
    let (header, rest) = file.split_at(13);
    let (nonce, sealed) = rest.split_at(12);
    let mut aad = b"custodia keystore v2 key\0".to_vec();
    aad.extend_from_slice(header);
    aad.extend_from_slice(key.as_str().as_bytes());
    let cipher = Aes256Gcm::new_from_slice(master).unwrap();
    let nonce: [u8; 12] = nonce.try_into().unwrap();
    cipher.decrypt(&Nonce::from(nonce), Payload { msg: sealed, aad: &aad }).ok()
}

fn manifest(root: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(root.join("keystore.json")).unwrap()).unwrap()
}

/// A key-file keystore whose master lives OUTSIDE the keystore folder, as recommended.
struct KeyFileVault {
    dir: tempfile::TempDir,
    root: PathBuf,
    master: PathBuf,
    usb: PathBuf,
}

fn key_file_vault() -> (KeyFileVault, FileKeystore) {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("vault/keystore");
    let master = dir.path().join("etc/master.key");
    let usb = dir.path().join("usb/keystore");
    let store = FileKeystore::create(&root, MasterKeySource::KeyFile(master.clone()), &mut rng(1)).unwrap();
    (KeyFileVault { dir, root, master, usb }, store)
}

#[test]
fn key_file_rotation_makes_a_destroyed_key_unopenable_from_an_earlier_copy() {
    let (vault, store) = key_file_vault();
    let contents = populate(&store, 6);
    let victim = contents.victim();
    copy_dir(&vault.root, &vault.usb); // last week's USB copy: the folder, not the master key
    store.destroy(&victim.name).unwrap();

    // The threat is real: before rotation the copy opens with the vault's master key and still
    // holds the destroyed key.
    {
        let from_copy = FileKeystore::open(&vault.usb, None).unwrap();
        let decapsulator = from_copy.epoch_decapsulator(&victim.name).unwrap();
        assert_eq!(unwrap_data_key(&victim.wrapped, &*decapsulator, &victim.binding).unwrap(), victim.data_key);
    }
    let old_master = std::fs::read(&vault.master).unwrap();
    let copied_victim_file = std::fs::read(key_file(&vault.usb, &victim.name)).unwrap();
    assert!(open_key_file_by_the_book(&old_master, &victim.name, &copied_victim_file).is_some());
    assert_eq!(store.master_generation(), 0);

    store.seal_destructions(&mut rng(2)).unwrap();

    // (a) The live keystore keeps every surviving key, in memory and from disk.
    assert_eq!(store.master_generation(), 1);
    assert_survivors_work(&store, &contents, &[&victim.name]);
    let reopened = FileKeystore::open(&vault.root, None).unwrap();
    assert_eq!(reopened.master_generation(), 1);
    assert_survivors_work(&reopened, &contents, &[&victim.name]);
    // New keys go under the new master and survive a reopen.
    let late = name("epoch/plate/86400000/b0");
    let late_public = reopened.generate_epoch_key(&late, &mut rng(3)).unwrap();
    let new_master = std::fs::read(&vault.master).unwrap();
    let late_file = std::fs::read(key_file(&vault.root, &late)).unwrap();
    assert_eq!(late_file[5..13], master_id(&new_master));
    assert_eq!(
        FileKeystore::open(&vault.root, None).unwrap().epoch_decapsulator(&late).unwrap().public_key(),
        late_public
    );

    // (b) The copy no longer opens with the master key the vault has…
    assert!(matches!(FileKeystore::open(&vault.usb, None), Err(KeystoreError::WrongMasterKey)));
    // …the copy's sealed file of the destroyed key does not open under it, by the book…
    assert!(open_key_file_by_the_book(&new_master, &victim.name, &copied_victim_file).is_none());
    // …nor when planted back into the live keystore in place of its tombstone.
    let live_victim = key_file(&vault.root, &victim.name);
    std::fs::write(&live_victim, &copied_victim_file).unwrap();
    std::fs::remove_file(with_suffix(&live_victim.with_extension(""), ".destroyed")).unwrap();
    let planted = FileKeystore::open(&vault.root, None).unwrap();
    assert_eq!(planted.state(&victim.name).unwrap(), KeyState::Present);
    assert!(matches!(planted.epoch_decapsulator(&victim.name), Err(KeystoreError::Corrupt(_))));
    // Every other file of the copy fails under the new master too.
    for epoch in &contents.epochs {
        let copied = std::fs::read(key_file(&vault.usb, &epoch.name)).unwrap();
        assert!(open_key_file_by_the_book(&new_master, &epoch.name, &copied).is_none());
    }

    // (c) The old master key bytes are gone from the master file, and from every file the vault
    // keeps (the copy never held them); no rotation leftovers remain.
    assert_ne!(new_master, old_master);
    assert_eq!(new_master.len(), 32);
    assert!(!with_suffix(&vault.master, ".next").exists());
    assert!(!with_suffix(&vault.master, ".next.tmp").exists());
    let everything = all_files(vault.dir.path());
    assert!(everything.len() > 10);
    for file in everything {
        let bytes = std::fs::read(&file).unwrap();
        assert!(!bytes.windows(32).any(|w| w == old_master.as_slice()), "old master in {}", file.display());
    }
}

#[test]
fn rotation_re_seals_every_key_file_and_names_the_new_master() {
    let (vault, store) = key_file_vault();
    let contents = populate(&store, 4);
    let old_master = std::fs::read(&vault.master).unwrap();
    let old_manifest = manifest(&vault.root);
    assert_eq!(old_manifest["version"], 2);
    assert_eq!(old_manifest["master_id"], hex::encode(master_id(&old_master)));
    store.seal_destructions(&mut rng(2)).unwrap();
    let new_master = std::fs::read(&vault.master).unwrap();
    let new_manifest = manifest(&vault.root);
    assert_eq!(new_manifest["generation"], 1);
    assert_eq!(new_manifest["master_id"], hex::encode(master_id(&new_master)));
    // Seven keys: four epochs, two secrets, one signing key; each opens by the book under the new
    // master to the same secret the old master sealed, with its kind in the header.
    let key_files: Vec<_> =
        all_files(&vault.root.join("keys")).into_iter().filter(|p| p.extension().is_some_and(|e| e == "key")).collect();
    assert_eq!(key_files.len(), 7);
    for epoch in &contents.epochs {
        let file = std::fs::read(key_file(&vault.root, &epoch.name)).unwrap();
        assert_eq!(file[4], 1, "kind byte of an epoch key");
        assert_eq!(file[5..13], master_id(&new_master));
        let secret = open_key_file_by_the_book(&new_master, &epoch.name, &file).unwrap();
        let scalar: [u8; 32] = secret.try_into().unwrap();
        assert_eq!(custodia_seal::EpochSecretKey::from_bytes(&scalar).unwrap().public_key(), epoch.public);
    }
    // A second rotation works the same way.
    store.seal_destructions(&mut rng(3)).unwrap();
    assert_eq!(manifest(&vault.root)["generation"], 2);
    assert_survivors_work(&FileKeystore::open(&vault.root, None).unwrap(), &contents, &[]);
}

/// Every crash point, in order, with what the folder must look like right after it.
fn crash_points(key_files: usize) -> Vec<RotationStep> {
    vec![
        RotationStep::NextMasterWritten,
        RotationStep::Resealed(0),
        RotationStep::Resealed(1),
        RotationStep::Resealed(key_files / 2),
        RotationStep::Resealed(key_files - 1),
        RotationStep::Resealed(key_files),
        RotationStep::ManifestUpdated,
        RotationStep::OldMasterZeroed,
        RotationStep::Done,
    ]
}

#[test]
fn a_key_file_rotation_interrupted_at_any_step_is_finished_by_open() {
    // 8 epoch keys, 2 secrets, 1 signing key; one destroyed, one half-destroyed: 10 files to re-seal.
    const RESEALABLE: usize = 9;
    for stop in crash_points(RESEALABLE) {
        let (vault, store) = key_file_vault();
        let contents = populate(&store, 8);
        let (victim, half) = (contents.victim(), contents.half_destroyed());
        copy_dir(&vault.root, &vault.usb);
        store.destroy(&victim.name).unwrap();
        // A destruction that crashed after its tombstone, before the overwrite and unlink.
        let half_file = key_file(&vault.root, &half.name);
        std::fs::write(with_suffix(&half_file.with_extension(""), ".destroyed"), b"").unwrap();
        let old_master = std::fs::read(&vault.master).unwrap();

        store.rotate_master_key_until(stop, &mut rng(2)).unwrap();
        drop(store);

        // The folder is in the state the crash point names.
        let next = with_suffix(&vault.master, ".next");
        let generation = manifest(&vault.root)["generation"].as_u64().unwrap();
        match stop {
            RotationStep::Done => {
                assert!(!next.exists());
                assert_eq!(generation, 1);
            }
            RotationStep::ManifestUpdated | RotationStep::OldMasterZeroed => {
                assert!(next.exists());
                assert_eq!(generation, 1);
                let current = std::fs::read(&vault.master).unwrap();
                if stop == RotationStep::OldMasterZeroed {
                    assert_eq!(current, [0u8; 32]);
                } else {
                    assert_eq!(current, old_master);
                }
            }
            RotationStep::NextMasterWritten | RotationStep::Resealed(_) => {
                assert!(next.exists());
                assert_eq!(generation, 0);
                // Mixed generations: exactly `n` files already name the next master.
                let next_id = master_id(&std::fs::read(&next).unwrap());
                let under_next = contents
                    .epochs
                    .iter()
                    .map(|e| &e.name)
                    .chain(contents.secrets.iter().map(|(n, _)| n))
                    .chain([&contents.signing.0])
                    .filter_map(|n| std::fs::read(key_file(&vault.root, n)).ok())
                    .filter(|file| file[5..13] == next_id)
                    .count();
                let expected = if let RotationStep::Resealed(n) = stop { n } else { 0 };
                assert_eq!(under_next, expected, "{stop:?}");
            }
        }
        #[cfg(unix)]
        if next.exists() {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(std::fs::metadata(&next).unwrap().permissions().mode() & 0o777, 0o600);
        }

        // Open finishes the rotation: consistent and complete, no key lost, none resurrected.
        let reopened = FileKeystore::open_with_rng(&vault.root, None, &mut rng(3)).unwrap();
        assert_eq!(reopened.master_generation(), 1, "{stop:?}");
        assert_survivors_work(&reopened, &contents, &[&victim.name, &half.name]);
        assert!(!half_file.exists(), "{stop:?}: the half-done destruction is finished, not re-sealed");
        assert!(!next.exists(), "{stop:?}");
        let new_master = std::fs::read(&vault.master).unwrap();
        assert_ne!(new_master, old_master, "{stop:?}");
        assert_eq!(manifest(&vault.root)["master_id"], hex::encode(master_id(&new_master)));
        assert!(matches!(FileKeystore::open(&vault.usb, None), Err(KeystoreError::WrongMasterKey)), "{stop:?}");
        for epoch in &contents.epochs {
            let copied = std::fs::read(key_file(&vault.usb, &epoch.name)).unwrap();
            assert!(open_key_file_by_the_book(&new_master, &epoch.name, &copied).is_none());
        }
        // And it opens again, unchanged, and rotates again.
        drop(reopened);
        let again = FileKeystore::open(&vault.root, None).unwrap();
        assert_eq!(again.master_generation(), 1);
        again.seal_destructions(&mut rng(4)).unwrap();
        assert_survivors_work(&FileKeystore::open(&vault.root, None).unwrap(), &contents, &[&victim.name, &half.name]);
    }
}

#[test]
fn a_rotation_stopped_part_way_is_finished_by_the_same_handle_with_a_fresh_master() {
    // A rotation that fails in a running process (an I/O error) leaves the handle working; the
    // next seal_destructions finishes it and still moves to a master never used before.
    for stop in crash_points(6) {
        let (vault, store) = key_file_vault();
        let contents = populate(&store, 5);
        let victim = contents.victim();
        copy_dir(&vault.root, &vault.usb);
        store.destroy(&victim.name).unwrap();
        let old_master = std::fs::read(&vault.master).unwrap();
        store.rotate_master_key_until(stop, &mut rng(2)).unwrap();
        let stopped_next = std::fs::read(with_suffix(&vault.master, ".next")).ok();
        assert_survivors_work(&store, &contents, &[&victim.name]);
        store.seal_destructions(&mut rng(3)).unwrap();
        assert_survivors_work(&store, &contents, &[&victim.name]);
        let master = std::fs::read(&vault.master).unwrap();
        assert_ne!(master, old_master, "{stop:?}");
        if matches!(stop, RotationStep::ManifestUpdated | RotationStep::OldMasterZeroed) {
            // That rotation had completed its switch; this one must not reuse its key.
            assert_ne!(Some(&master), stopped_next.as_ref(), "{stop:?}");
            assert_eq!(store.master_generation(), 2, "{stop:?}");
        }
        assert!(!with_suffix(&vault.master, ".next").exists());
        assert!(matches!(FileKeystore::open(&vault.usb, None), Err(KeystoreError::WrongMasterKey)));
        assert_survivors_work(&FileKeystore::open(&vault.root, None).unwrap(), &contents, &[&victim.name]);
    }
}

#[test]
fn a_key_file_under_an_unknown_master_stops_rotation_without_losing_keys() {
    // A key file under no master this keystore knows cannot be re-sealed: rotation refuses
    // (Corrupt, naming it) rather than skip it; the live handle keeps working meanwhile, with
    // files on both sides of the half-done rotation, and open finishes once the file is removed.
    let (vault, store) = key_file_vault();
    let contents = populate(&store, 3);
    // Sorted between the epoch keys, so rotation stops with files on both sides.
    let foreign = name("epoch/face/5000000/zz");
    let other = tempfile::tempdir().unwrap();
    let other_store = FileKeystore::create(other.path(), MasterKeySource::Passphrase(b"x", FAST), &mut rng(8)).unwrap();
    other_store.generate_epoch_key(&foreign, &mut rng(8)).unwrap();
    let planted = key_file(&vault.root, &foreign);
    std::fs::create_dir_all(planted.parent().unwrap()).unwrap();
    std::fs::copy(key_file(other.path(), &foreign), &planted).unwrap();
    assert!(matches!(store.seal_destructions(&mut rng(2)), Err(KeystoreError::Corrupt(n)) if n == foreign.as_str()));
    let next_id = master_id(&std::fs::read(with_suffix(&vault.master, ".next")).unwrap());
    let old_id = master_id(&std::fs::read(&vault.master).unwrap());
    let headers: Vec<[u8; 8]> = contents
        .epochs
        .iter()
        .map(|e| std::fs::read(key_file(&vault.root, &e.name)).unwrap()[5..13].try_into().unwrap())
        .collect();
    assert!(headers.contains(&next_id) && headers.contains(&old_id), "mixed generations");
    assert_survivors_work(&store, &contents, &[]);
    drop(store);
    // Open tries to finish and refuses the same way; nothing is lost meanwhile.
    assert!(matches!(FileKeystore::open(&vault.root, None), Err(KeystoreError::Corrupt(_))));
    std::fs::remove_file(key_file(&vault.root, &foreign)).unwrap();
    let store = FileKeystore::open(&vault.root, None).unwrap();
    assert_eq!(store.master_generation(), 1);
    assert_survivors_work(&store, &contents, &[]);
}

fn passphrase_vault() -> (tempfile::TempDir, PathBuf, PathBuf, FileKeystore) {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("vault/keystore");
    let usb = dir.path().join("usb/keystore");
    let store = FileKeystore::create(&root, MasterKeySource::Passphrase(PASSPHRASE, FAST), &mut rng(1)).unwrap();
    (dir, root, usb, store)
}

#[test]
fn passphrase_rotation_re_seals_under_a_new_data_master_key() {
    let (_dir, root, usb, store) = passphrase_vault();
    let contents = populate(&store, 5);
    let victim = contents.victim();
    copy_dir(&root, &usb); // in this mode the whole keystore is the folder
    store.destroy(&victim.name).unwrap();
    let before = manifest(&root);
    store.seal_destructions(&mut rng(2)).unwrap();
    let after = manifest(&root);

    // The salt (and so the Argon2id key) stays; the wrapped data master key and its id change.
    assert_eq!(after["master"], before["master"]);
    assert_ne!(after["data_master"], before["data_master"]);
    assert_ne!(after["master_id"], before["master_id"]);
    assert_eq!(after["generation"], 1);
    assert!(after.get("next_data_master").is_none());

    // (a) Live and reopened keystores keep every survivor.
    assert_survivors_work(&store, &contents, &[&victim.name]);
    let reopened = FileKeystore::open(&root, Some(PASSPHRASE)).unwrap();
    assert_survivors_work(&reopened, &contents, &[&victim.name]);
    assert!(matches!(FileKeystore::open(&root, Some(b"wrong")), Err(KeystoreError::WrongMasterKey)));

    // The copy's sealed key file does not open under the data master key the vault now has.
    let copied_victim_file = std::fs::read(key_file(&usb, &victim.name)).unwrap();
    let live_victim = key_file(&root, &victim.name);
    std::fs::write(&live_victim, &copied_victim_file).unwrap();
    std::fs::remove_file(with_suffix(&live_victim.with_extension(""), ".destroyed")).unwrap();
    let planted = FileKeystore::open(&root, Some(PASSPHRASE)).unwrap();
    assert!(matches!(planted.epoch_decapsulator(&victim.name), Err(KeystoreError::Corrupt(_))));
    // Without the passphrase the copy opens with nothing.
    assert!(matches!(FileKeystore::open(&usb, None), Err(KeystoreError::WrongMasterKey)));
    assert!(matches!(FileKeystore::open(&usb, Some(b"guess")), Err(KeystoreError::WrongMasterKey)));
}

/// DOCUMENTED LIMITATION (module doc, docs/keystore.md): in passphrase mode the copy's own
/// `keystore.json` carries the old data master key wrapped under the passphrase, so whoever holds
/// the copy AND the passphrase opens the copy, destroyed key included, rotation or not.
#[test]
fn documented_limitation_copy_plus_passphrase_still_opens_destroyed_keys() {
    let (_dir, root, usb, store) = passphrase_vault();
    let contents = populate(&store, 3);
    let victim = contents.victim();
    copy_dir(&root, &usb);
    store.destroy(&victim.name).unwrap();
    store.seal_destructions(&mut rng(2)).unwrap();
    assert!(matches!(store.epoch_decapsulator(&victim.name), Err(KeystoreError::Destroyed(_))));

    let from_copy = FileKeystore::open(&usb, Some(PASSPHRASE)).unwrap();
    let decapsulator = from_copy.epoch_decapsulator(&victim.name).unwrap();
    assert_eq!(unwrap_data_key(&victim.wrapped, &*decapsulator, &victim.binding).unwrap(), victim.data_key);
}

#[test]
fn a_passphrase_rotation_interrupted_at_any_step_is_finished_by_open() {
    // 5 epoch keys, 2 secrets, 1 signing key; one destroyed, one half-destroyed: 6 to re-seal.
    const RESEALABLE: usize = 6;
    let steps = crash_points(RESEALABLE).into_iter().filter(|s| *s != RotationStep::OldMasterZeroed);
    for stop in steps {
        let (_dir, root, usb, store) = passphrase_vault();
        let contents = populate(&store, 5);
        let (victim, half) = (contents.victim(), contents.half_destroyed());
        copy_dir(&root, &usb);
        store.destroy(&victim.name).unwrap();
        let half_file = key_file(&root, &half.name);
        std::fs::write(with_suffix(&half_file.with_extension(""), ".destroyed"), b"").unwrap();
        let before = manifest(&root);

        store.rotate_master_key_until(stop, &mut rng(2)).unwrap();
        drop(store);
        let mid = manifest(&root);
        match stop {
            RotationStep::NextMasterWritten | RotationStep::Resealed(_) => {
                assert_eq!(mid["data_master"], before["data_master"], "{stop:?}");
                assert!(mid["next_data_master"].is_string(), "{stop:?}");
            }
            _ => {
                assert_ne!(mid["data_master"], before["data_master"], "{stop:?}");
                assert!(mid.get("next_data_master").is_none(), "{stop:?}");
            }
        }
        // Without the passphrase nothing can be finished, and nothing is touched.
        assert!(matches!(FileKeystore::open(&root, None), Err(KeystoreError::WrongMasterKey)));
        assert_eq!(manifest(&root), mid);

        let reopened = FileKeystore::open_with_rng(&root, Some(PASSPHRASE), &mut rng(3)).unwrap();
        assert_eq!(reopened.master_generation(), 1, "{stop:?}");
        assert_survivors_work(&reopened, &contents, &[&victim.name, &half.name]);
        assert!(!half_file.exists());
        let done = manifest(&root);
        assert!(done.get("next_data_master").is_none());
        assert_ne!(done["data_master"], before["data_master"]);
        // The copy's destroyed key does not open under the live data master key.
        let live_victim = key_file(&root, &victim.name);
        std::fs::copy(key_file(&usb, &victim.name), &live_victim).unwrap();
        std::fs::remove_file(with_suffix(&live_victim.with_extension(""), ".destroyed")).unwrap();
        drop(reopened);
        let planted = FileKeystore::open(&root, Some(PASSPHRASE)).unwrap();
        assert!(matches!(planted.epoch_decapsulator(&victim.name), Err(KeystoreError::Corrupt(_))), "{stop:?}");
    }
}

/// Writes a format-1 keystore exactly as the code before rotation did (crate history, commit
/// 6a987f7): `keystore.json` version 1, the master key sealing key files directly, key files
/// `nonce || AES-GCM(master, secret)` with associated data `"custodia keystore v1 key\0" || kind || name`.
fn write_version_1(
    root: &Path,
    master: &[u8; 32],
    manifest_master: serde_json::Value,
    keys: &[(&KeyName, u8, [u8; 32])],
) {
    let cipher = Aes256Gcm::new_from_slice(master).unwrap();
    let seal = |msg: &[u8], aad: &[u8], nonce: [u8; 12]| {
        let mut out = nonce.to_vec();
        out.extend(cipher.encrypt(&Nonce::from(nonce), Payload { msg, aad }).unwrap());
        out
    };
    std::fs::create_dir_all(root.join("keys")).unwrap();
    let check = seal(b"custodia keystore v1 check", b"check", [7; 12]);
    let json = serde_json::json!({ "version": 1, "master": manifest_master, "check": hex::encode(check) });
    std::fs::write(root.join("keystore.json"), serde_json::to_vec_pretty(&json).unwrap()).unwrap();
    for (i, (key, kind, secret)) in keys.iter().enumerate() {
        let mut aad = b"custodia keystore v1 key\0".to_vec();
        aad.push(*kind);
        aad.extend_from_slice(key.as_str().as_bytes());
        let path = key_file(root, key);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, seal(secret, &aad, [i as u8 + 1; 12])).unwrap();
    }
}

#[test]
fn a_version_1_keystore_still_opens_and_becomes_version_2_at_its_first_rotation() {
    let epoch_key = custodia_seal::EpochSecretKey::generate(&mut rng(5));
    let epoch_public = epoch_key.public_key();
    let (epoch_name, blind_name, signing_name) =
        (name("epoch/face/3600000/aa"), name("blind/2026-11"), name("vault/epoch-signing"));
    let keys =
        [(&epoch_name, 1u8, *epoch_key.to_bytes()), (&blind_name, 2, [0x42; 32]), (&signing_name, 3, [0x17; 32])];
    let signing_public = ed25519_dalek::SigningKey::from_bytes(&[0x17; 32]).verifying_key().to_bytes();
    let check = |store: &FileKeystore| {
        assert_eq!(store.epoch_decapsulator(&epoch_name).unwrap().public_key(), epoch_public);
        assert_eq!(*store.secret(&blind_name, &mut rng(9)).unwrap(), [0x42; 32]);
        assert_eq!(store.ensure_signing_key(&signing_name, &mut rng(9)).unwrap(), signing_public);
    };

    // Key-file mode.
    let dir = tempfile::tempdir().unwrap();
    let (root, master_path) = (dir.path().join("ks"), dir.path().join("master.key"));
    let master = [0x5a; 32];
    std::fs::write(&master_path, master).unwrap();
    write_version_1(
        &root,
        &master,
        serde_json::json!({ "kind": "key-file", "path": master_path.display().to_string() }),
        &keys,
    );
    let store = FileKeystore::open(&root, None).unwrap();
    check(&store);
    assert_eq!(store.master_generation(), 0);
    store.seal_destructions(&mut rng(2)).unwrap();
    let reopened = FileKeystore::open(&root, None).unwrap();
    check(&reopened);
    assert_eq!(manifest(&root)["version"], 2);
    assert_eq!(std::fs::read(key_file(&root, &blind_name)).unwrap()[..4], *b"cks2");
    assert_ne!(std::fs::read(&master_path).unwrap(), master);

    // Passphrase mode: the version-1 master was the Argon2id output itself; rotation replaces it
    // with a random data master key wrapped by that output.
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("ks");
    let salt = [3u8; 16];
    let mut stretched = [0u8; 32];
    argon2::Argon2::new(
        argon2::Algorithm::Argon2id,
        argon2::Version::V0x13,
        argon2::Params::new(FAST.m_kib, FAST.t, FAST.p, Some(32)).unwrap(),
    )
    .hash_password_into(PASSPHRASE, &salt, &mut stretched)
    .unwrap();
    let manifest_master = serde_json::json!({ "kind": "argon2id", "salt": hex::encode(salt), "params": { "m_kib": FAST.m_kib, "t": FAST.t, "p": FAST.p } });
    write_version_1(&root, &stretched, manifest_master, &keys);
    let store = FileKeystore::open(&root, Some(PASSPHRASE)).unwrap();
    check(&store);
    assert!(matches!(FileKeystore::open(&root, Some(b"nope")), Err(KeystoreError::WrongMasterKey)));
    store.rotate_master_key_until(RotationStep::Resealed(1), &mut rng(2)).unwrap();
    drop(store);
    let store = FileKeystore::open(&root, Some(PASSPHRASE)).unwrap();
    check(&store);
    let after = manifest(&root);
    assert_eq!(after["version"], 2);
    assert!(after["data_master"].is_string());
    let file = std::fs::read(key_file(&root, &blind_name)).unwrap();
    assert_eq!(file[..4], *b"cks2");
    // The Argon2id output no longer opens any key file.
    assert!(open_key_file_by_the_book(&stretched, &blind_name, &file).is_none());
}
