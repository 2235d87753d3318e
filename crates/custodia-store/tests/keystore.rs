//! The file keystore: the conformance suite every backend passes (tests/conformance), then what
//! is particular to files: opening, wrong master keys, tampering, and destruction on disk.

mod conformance;

use std::path::PathBuf;

use custodia_store::file_keystore::{Argon2Params, FileKeystore, MasterKeySource};
use custodia_store::{KeyName, KeyState, Keystore, KeystoreError};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

/// A file keystore in its own temporary folder, with a key-file master key (no Argon2 cost).
struct FileFixture {
    dir: tempfile::TempDir,
}

impl FileFixture {
    fn root(&self) -> PathBuf {
        self.dir.path().join("ks")
    }
}

impl conformance::Fixture for FileFixture {
    fn open(&self) -> Box<dyn Keystore> {
        if self.root().join("keystore.json").exists() {
            Box::new(FileKeystore::open(&self.root(), None).unwrap())
        } else {
            let master = MasterKeySource::KeyFile(self.dir.path().join("master.key"));
            Box::new(FileKeystore::create(&self.root(), master, &mut rng()).unwrap())
        }
    }

    fn name(&self, suffix: &str) -> KeyName {
        KeyName::new(suffix).unwrap()
    }
}

conformance::mount_conformance!(|_tag: &str| Some(FileFixture { dir: tempfile::tempdir().unwrap() }));

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
        let store =
            FileKeystore::create(dir.path(), MasterKeySource::Passphrase(b"correct horse", FAST), &mut rng()).unwrap();
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
    let store =
        FileKeystore::create(&dir.path().join("ks"), MasterKeySource::KeyFile(master.clone()), &mut rng()).unwrap();
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
fn destruction_removes_the_key_file_and_leaves_a_tombstone() {
    // The backend-independent half of destruction is in the conformance suite; this is the disk.
    let dir = tempfile::tempdir().unwrap();
    let store = FileKeystore::create(dir.path(), MasterKeySource::Passphrase(b"pw", FAST), &mut rng()).unwrap();
    let name = KeyName::new("epoch/face/3600000/aa").unwrap();
    store.generate_epoch_key(&name, &mut rng()).unwrap();
    let file = dir.path().join("keys/epoch/face/3600000/aa.key");
    let tombstone = dir.path().join("keys/epoch/face/3600000/aa.destroyed");
    assert!(file.exists() && !tombstone.exists());
    store.destroy(&name).unwrap();
    assert_eq!(store.state(&name).unwrap(), KeyState::Destroyed);
    assert!(!file.exists());
    assert!(tombstone.exists());
}
