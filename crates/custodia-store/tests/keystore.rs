//! The file keystore: opening, wrong master keys, tampering, and destruction that sticks.
//!
//! (The same suite will run against the PKCS#11 backend when it lands.)

use custodia_store::file_keystore::{Argon2Params, FileKeystore, MasterKeySource};
use custodia_store::{KeyName, KeyState, Keystore, KeystoreError};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

/// Cheap Argon2 parameters for tests; production defaults are 64 MiB, t=3.
const FAST: Argon2Params = Argon2Params { m_kib: 256, t: 1, p: 1 };

fn rng() -> ChaCha20Rng {
    ChaCha20Rng::seed_from_u64(42)
}

#[test]
fn key_names_are_checked() {
    for good in ["epoch/face/1700000000000/616e7a", "blind/2026-11", "vault/epoch-signing"] {
        KeyName::new(good).unwrap();
    }
    for bad in ["", "/x", "x/", "a//b", "../etc/passwd", "Upper", "a b", ".hidden", "x/.y", &"a".repeat(201)] {
        assert!(matches!(KeyName::new(bad), Err(KeystoreError::BadKeyName)), "{bad:?}");
    }
}

#[test]
fn passphrase_keystore_reopens_only_with_its_passphrase() {
    let dir = tempfile::tempdir().unwrap();
    let name = KeyName::new("epoch/plate/0/00").unwrap();
    let public = {
        let store = FileKeystore::create(dir.path(), MasterKeySource::Passphrase(b"correct horse", FAST), &mut rng()).unwrap();
        store.generate_epoch_key(&name, &mut rng()).unwrap()
    };
    assert!(matches!(FileKeystore::open(dir.path(), Some(b"wrong horse")), Err(KeystoreError::WrongMasterKey)));
    assert!(matches!(FileKeystore::open(dir.path(), None), Err(KeystoreError::WrongMasterKey)));
    let store = FileKeystore::open(dir.path(), Some(b"correct horse")).unwrap();
    assert_eq!(store.epoch_decapsulator(&name).unwrap().public_key(), public);
    assert!(matches!(
        FileKeystore::create(dir.path(), MasterKeySource::Passphrase(b"x", FAST), &mut rng()),
        Err(KeystoreError::KeystoreExists(_))
    ));
}

#[test]
fn key_file_keystore_is_private_and_keys_do_not_leave_it_in_plaintext() {
    let dir = tempfile::tempdir().unwrap();
    let master = dir.path().join("master.key");
    let store = FileKeystore::create(&dir.path().join("ks"), MasterKeySource::KeyFile(master.clone()), &mut rng()).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&master).unwrap().permissions().mode() & 0o777, 0o600);
    }
    let name = KeyName::new("blind/2026-11").unwrap();
    let secret = store.secret(&name, &mut rng()).unwrap();
    // Stable across calls and across reopening.
    assert_eq!(*store.secret(&name, &mut rng()).unwrap(), *secret);
    let reopened = FileKeystore::open(&dir.path().join("ks"), None).unwrap();
    assert_eq!(*reopened.secret(&name, &mut rng()).unwrap(), *secret);
    // The secret's bytes appear in no file.
    let file = std::fs::read(dir.path().join("ks/keys/blind/2026-11.key")).unwrap();
    assert!(!file.windows(32).any(|w| w == &secret[..]));
}

#[test]
fn a_tampered_or_swapped_key_file_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let store = FileKeystore::create(dir.path(), MasterKeySource::Passphrase(b"pw", FAST), &mut rng()).unwrap();
    let a = KeyName::new("epoch/face/1/aa").unwrap();
    let b = KeyName::new("epoch/face/2/aa").unwrap();
    store.generate_epoch_key(&a, &mut rng()).unwrap();
    store.generate_epoch_key(&b, &mut ChaCha20Rng::seed_from_u64(9)).unwrap();
    let path_a = dir.path().join("keys/epoch/face/1/aa.key");
    let path_b = dir.path().join("keys/epoch/face/2/aa.key");
    // Swap the files: each is bound to its name.
    let (bytes_a, bytes_b) = (std::fs::read(&path_a).unwrap(), std::fs::read(&path_b).unwrap());
    std::fs::write(&path_a, &bytes_b).unwrap();
    std::fs::write(&path_b, &bytes_a).unwrap();
    let fresh = FileKeystore::open(dir.path(), Some(b"pw")).unwrap();
    assert!(matches!(fresh.epoch_decapsulator(&a), Err(KeystoreError::Corrupt(_))));
    // Flip one bit.
    let mut flipped = bytes_a.clone();
    flipped[20] ^= 1;
    std::fs::write(&path_a, &flipped).unwrap();
    assert!(matches!(fresh.epoch_decapsulator(&a), Err(KeystoreError::Corrupt(_))));
    // A signing request against an epoch key is refused by kind.
    std::fs::write(&path_a, &bytes_a).unwrap();
    assert!(matches!(fresh.sign(&a, b"m"), Err(KeystoreError::Corrupt(_) | KeystoreError::WrongKind(_))));
}

#[test]
fn destruction_is_final_and_resumable() {
    let dir = tempfile::tempdir().unwrap();
    let store = FileKeystore::create(dir.path(), MasterKeySource::Passphrase(b"pw", FAST), &mut rng()).unwrap();
    let name = KeyName::new("epoch/face/3600000/aa").unwrap();
    store.generate_epoch_key(&name, &mut rng()).unwrap();
    let file = dir.path().join("keys/epoch/face/3600000/aa.key");
    let copy = std::fs::read(&file).unwrap();
    assert_eq!(store.state(&name).unwrap(), KeyState::Present);
    store.destroy(&name).unwrap();
    assert_eq!(store.state(&name).unwrap(), KeyState::Destroyed);
    assert!(!file.exists());
    assert!(matches!(store.epoch_decapsulator(&name), Err(KeystoreError::Destroyed(_))));
    // Destroying again succeeds (a retention run that crashed resumes); making it again does not.
    store.destroy(&name).unwrap();
    assert!(matches!(store.generate_epoch_key(&name, &mut rng()), Err(KeystoreError::AlreadyExists(_))));
    // A never-made key cannot be "destroyed".
    assert!(matches!(store.destroy(&KeyName::new("epoch/face/0/bb").unwrap()), Err(KeystoreError::NotFound(_))));
    // A fresh process sees the same.
    let reopened = FileKeystore::open(dir.path(), Some(b"pw")).unwrap();
    assert!(matches!(reopened.epoch_decapsulator(&name), Err(KeystoreError::Destroyed(_))));
    drop(copy);
}

#[test]
fn signing_keys_sign_verifiably() {
    let dir = tempfile::tempdir().unwrap();
    let store = FileKeystore::create(dir.path(), MasterKeySource::Passphrase(b"pw", FAST), &mut rng()).unwrap();
    let name = KeyName::new("vault/epoch-signing").unwrap();
    let public = store.ensure_signing_key(&name, &mut rng()).unwrap();
    assert_eq!(store.ensure_signing_key(&name, &mut ChaCha20Rng::seed_from_u64(1)).unwrap(), public);
    let signature = store.sign(&name, b"message").unwrap();
    let key = ed25519_dalek::VerifyingKey::from_bytes(&public).unwrap();
    key.verify_strict(b"message", &ed25519_dalek::Signature::from_bytes(&signature)).unwrap();
    assert!(key.verify_strict(b"massage", &ed25519_dalek::Signature::from_bytes(&signature)).is_err());
}
