//! The keystore conformance suite: what every [`Keystore`] backend must do, written once and
//! mounted once per backend with [`mount_conformance!`] (tests/keystore.rs for the file keystore,
//! tests/keystore_softhsm.rs for PKCS#11).
//!
//! The checks use outside truth where there is one: decapsulation is exercised through
//! `custodia_seal`'s HPKE (RFC 9180) data-key wrap, and cross-checked against a software P-256
//! Diffie-Hellman (RustCrypto `p256`); signatures are verified with `ed25519-dalek`.

use custodia_seal::{
    CaptureHeader, DataKey, Decapsulator, DeviceId, DeviceSigningKey, EpochId, EpochSecretKey, GroupToSeal, LaneName,
    OpenError, PartKind, PartToSeal, RetentionClass, SealedCapture, SiteName, seal, unwrap_data_key, wrap_data_key,
};
use custodia_store::{KeyName, KeyState, Keystore, KeystoreError};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

/// One backend under test. Each check gets a fresh fixture with its own tag, so backends whose
/// storage is shared between checks (one SoftHSM token per test process) keep their names apart.
pub trait Fixture {
    /// Opens the keystore: the first call may create its storage, every later call reopens the
    /// same storage (a "fresh process" view).
    fn open(&self) -> Box<dyn Keystore>;

    /// A key name unique to this fixture.
    fn name(&self, suffix: &str) -> KeyName;
}

fn rng(seed: u64) -> ChaCha20Rng {
    ChaCha20Rng::seed_from_u64(seed)
}

const BINDING: &[u8] = b"device 0001, sequence 7, group 0";

/// generate → public key → HPKE wrap to it → unwrap through the keystore's decapsulator.
pub fn epoch_key_round_trips(f: &dyn Fixture) {
    let ks = f.open();
    let name = f.name("epoch/plate/1");
    assert_eq!(ks.state(&name).unwrap(), KeyState::Absent);
    let public = ks.generate_epoch_key(&name, &mut rng(1)).unwrap();
    assert_eq!(ks.state(&name).unwrap(), KeyState::Present);
    let dec = ks.epoch_decapsulator(&name).unwrap();
    assert_eq!(dec.public_key(), public);

    let key = DataKey::generate(&mut rng(2));
    let wrapped = wrap_data_key(&key, &public, BINDING, &mut rng(3));
    assert_eq!(unwrap_data_key(&wrapped, &*dec, BINDING).unwrap(), key);
    // The binding is authenticated.
    assert_eq!(unwrap_data_key(&wrapped, &*dec, b"another binding").unwrap_err(), OpenError::DecryptionFailed);

    // A second epoch key is a different key: it cannot open the first one's wrap.
    let other = f.name("epoch/plate/2");
    let other_public = ks.generate_epoch_key(&other, &mut rng(4)).unwrap();
    assert_ne!(other_public, public);
    let other_dec = ks.epoch_decapsulator(&other).unwrap();
    assert_eq!(unwrap_data_key(&wrapped, &*other_dec, BINDING).unwrap_err(), OpenError::DecryptionFailed);
}

/// A real sealed capture (two retention groups, as a lane seals it) opens through the keystore's
/// decapsulators; destroying the face epoch shreds the face group and leaves the plate group.
pub fn sealed_capture_opens_and_shreds_by_group(f: &dyn Fixture) {
    let ks = f.open();
    let face = f.name("epoch/anzalduas/face/1700000000000");
    let plate = f.name("epoch/anzalduas/plate/1699920000000");
    let face_public = ks.generate_epoch_key(&face, &mut rng(40)).unwrap();
    let plate_public = ks.generate_epoch_key(&plate, &mut rng(41)).unwrap();
    let device = DeviceSigningKey::generate(&mut rng(42));
    let header = CaptureHeader {
        device_id: DeviceId([0x11; 16]),
        site: SiteName::new("anzalduas").unwrap(),
        lane: LaneName::new("lane-07").unwrap(),
        capture_time_ms: 1_700_000_000_123,
        sequence: 99,
    };
    let groups = vec![
        GroupToSeal {
            class: RetentionClass::Plate,
            epoch_id: EpochId([1; 16]),
            epoch_key: &plate_public,
            parts: vec![
                PartToSeal { kind: PartKind::Metadata, plaintext: b"{\"plate\":\"ABC123\"}" },
                PartToSeal { kind: PartKind::Jpeg, plaintext: b"plate crop bytes" },
            ],
        },
        GroupToSeal {
            class: RetentionClass::Face,
            epoch_id: EpochId([2; 16]),
            epoch_key: &face_public,
            parts: vec![PartToSeal { kind: PartKind::Jpeg, plaintext: b"face bytes" }],
        },
    ];
    let bytes = seal(&header, &groups, &device, &mut rng(43)).unwrap();
    let capture = SealedCapture::parse(&bytes).unwrap();
    capture.verify_signature(&device.verifying_key()).unwrap();

    let plate_dec = ks.epoch_decapsulator(&plate).unwrap();
    let face_dec = ks.epoch_decapsulator(&face).unwrap();
    let plate_key = capture.open_data_key(0, &*plate_dec).unwrap();
    assert_eq!(&capture.open_part(0, 0, &plate_key).unwrap()[..], b"{\"plate\":\"ABC123\"}");
    assert_eq!(&capture.open_part(0, 1, &plate_key).unwrap()[..], b"plate crop bytes");
    let face_key = capture.open_data_key(1, &*face_dec).unwrap();
    assert_eq!(&capture.open_part(1, 0, &face_key).unwrap()[..], b"face bytes");
    // Each group opens only with its own epoch key.
    assert_eq!(capture.open_data_key(1, &*plate_dec).unwrap_err(), OpenError::DecryptionFailed);
    drop((plate_dec, face_dec));

    ks.destroy(&face).unwrap();
    assert!(matches!(ks.epoch_decapsulator(&face), Err(KeystoreError::Destroyed(_))));
    let plate_dec = ks.epoch_decapsulator(&plate).unwrap();
    let plate_key = capture.open_data_key(0, &*plate_dec).unwrap();
    assert_eq!(&capture.open_part(0, 1, &plate_key).unwrap()[..], b"plate crop bytes");
}

/// The keystore's `DH()` equals a software P-256 Diffie-Hellman computed from the other side:
/// `DH(sk_store, pk_eph) == DH(sk_eph, pk_store)`, with `p256` computing the right-hand side.
pub fn diffie_hellman_agrees_with_software_p256(f: &dyn Fixture) {
    let ks = f.open();
    let name = f.name("epoch/face/1");
    let public = ks.generate_epoch_key(&name, &mut rng(5)).unwrap();
    let dec = ks.epoch_decapsulator(&name).unwrap();
    for seed in 0..4 {
        let ephemeral = EpochSecretKey::generate(&mut rng(100 + seed));
        let from_store = dec.diffie_hellman(&ephemeral.public_key()).unwrap();
        let from_software = ephemeral.diffie_hellman(&public).unwrap();
        assert_eq!(*from_store, *from_software, "ephemeral seed {seed}");
    }
}

/// A new keystore over the same storage sees the same epoch key and can still decapsulate.
pub fn epoch_key_survives_reopen(f: &dyn Fixture) {
    let name = f.name("epoch/overview/1");
    let (public, wrapped, key) = {
        let ks = f.open();
        let public = ks.generate_epoch_key(&name, &mut rng(6)).unwrap();
        let key = DataKey::generate(&mut rng(7));
        let wrapped = wrap_data_key(&key, &public, BINDING, &mut rng(8));
        (public, wrapped, key)
    };
    let ks = f.open();
    assert_eq!(ks.state(&name).unwrap(), KeyState::Present);
    let dec = ks.epoch_decapsulator(&name).unwrap();
    assert_eq!(dec.public_key(), public);
    assert_eq!(unwrap_data_key(&wrapped, &*dec, BINDING).unwrap(), key);
    // A name is generated once.
    assert!(matches!(ks.generate_epoch_key(&name, &mut rng(9)), Err(KeystoreError::AlreadyExists(_))));
}

/// A secret is created on first use, then stable across calls and reopening; names differ.
pub fn secret_is_stable_across_reopen(f: &dyn Fixture) {
    let name = f.name("blind/2026-11");
    let secret = {
        let ks = f.open();
        assert_eq!(ks.state(&name).unwrap(), KeyState::Absent);
        let secret = ks.secret(&name, &mut rng(10)).unwrap();
        assert_eq!(ks.state(&name).unwrap(), KeyState::Present);
        assert_eq!(*ks.secret(&name, &mut rng(11)).unwrap(), *secret);
        secret
    };
    assert_ne!(*secret, [0u8; 32]);
    let ks = f.open();
    assert_eq!(*ks.secret(&name, &mut rng(12)).unwrap(), *secret);
    let other = ks.secret(&f.name("blind/2026-12"), &mut rng(32)).unwrap();
    assert_ne!(*other, *secret);
}

/// The signing key is made once; its signatures verify under the returned public key with
/// ed25519-dalek (strict), are deterministic (RFC 8032), and survive reopening.
pub fn signing_key_signs_verifiably(f: &dyn Fixture) {
    let name = f.name("vault/epoch-signing");
    let public = {
        let ks = f.open();
        assert_eq!(ks.state(&name).unwrap(), KeyState::Absent);
        let public = ks.ensure_signing_key(&name, &mut rng(13)).unwrap();
        assert_eq!(ks.state(&name).unwrap(), KeyState::Present);
        assert_eq!(ks.ensure_signing_key(&name, &mut rng(14)).unwrap(), public);
        public
    };
    let ks = f.open();
    assert_eq!(ks.ensure_signing_key(&name, &mut rng(15)).unwrap(), public);
    let key = ed25519_dalek::VerifyingKey::from_bytes(&public).unwrap();
    for message in [&b""[..], b"message", &[0xa5; 1000][..]] {
        let signature = ks.sign(&name, message).unwrap();
        key.verify_strict(message, &ed25519_dalek::Signature::from_bytes(&signature)).unwrap();
        assert_eq!(ks.sign(&name, message).unwrap(), signature, "Ed25519 is deterministic");
    }
    let signature = ks.sign(&name, b"message").unwrap();
    assert!(key.verify_strict(b"massage", &ed25519_dalek::Signature::from_bytes(&signature)).is_err());
    assert!(matches!(ks.sign(&f.name("vault/never-made"), b"m"), Err(KeystoreError::NotFound(_))));
}

/// Destruction is final: the key cannot be used, regenerated or re-made as another kind, in
/// this keystore or a reopened one; destroying again succeeds.
pub fn destroy_is_final(f: &dyn Fixture) {
    let ks = f.open();
    let name = f.name("epoch/face/3600000");
    ks.generate_epoch_key(&name, &mut rng(16)).unwrap();
    assert_eq!(ks.state(&name).unwrap(), KeyState::Present);

    ks.destroy(&name).unwrap();
    assert_eq!(ks.state(&name).unwrap(), KeyState::Destroyed);
    assert!(matches!(ks.epoch_decapsulator(&name), Err(KeystoreError::Destroyed(_))));
    assert!(matches!(ks.generate_epoch_key(&name, &mut rng(16)), Err(KeystoreError::AlreadyExists(_))));
    assert!(matches!(ks.secret(&name, &mut rng(19)), Err(KeystoreError::Destroyed(_))));
    assert!(matches!(ks.ensure_signing_key(&name, &mut rng(19)), Err(KeystoreError::Destroyed(_))));
    assert!(matches!(ks.sign(&name, b"m"), Err(KeystoreError::Destroyed(_))));
    // A retention run that crashed after destroying resumes: destroying again succeeds.
    ks.destroy(&name).unwrap();
    assert_eq!(ks.state(&name).unwrap(), KeyState::Destroyed);
    drop(ks);

    let ks = f.open();
    assert_eq!(ks.state(&name).unwrap(), KeyState::Destroyed);
    assert!(matches!(ks.epoch_decapsulator(&name), Err(KeystoreError::Destroyed(_))));
    assert!(matches!(ks.generate_epoch_key(&name, &mut rng(20)), Err(KeystoreError::AlreadyExists(_))));
    ks.destroy(&name).unwrap();
}

/// Secrets and signing keys are destroyed the same way, and destroying one name leaves its
/// neighbours alone.
pub fn destroy_covers_every_kind(f: &dyn Fixture) {
    let ks = f.open();
    let secret_name = f.name("blind/2026-01");
    let signing_name = f.name("vault/old-signing");
    let neighbour = f.name("blind/2026-02");
    let kept = ks.secret(&neighbour, &mut rng(21)).unwrap();
    ks.secret(&secret_name, &mut rng(22)).unwrap();
    ks.ensure_signing_key(&signing_name, &mut rng(23)).unwrap();

    ks.destroy(&secret_name).unwrap();
    ks.destroy(&signing_name).unwrap();
    assert_eq!(ks.state(&secret_name).unwrap(), KeyState::Destroyed);
    assert_eq!(ks.state(&signing_name).unwrap(), KeyState::Destroyed);
    // A destroyed secret is not silently re-created on the next use.
    assert!(matches!(ks.secret(&secret_name, &mut rng(22)), Err(KeystoreError::Destroyed(_))));
    assert!(matches!(ks.sign(&signing_name, b"m"), Err(KeystoreError::Destroyed(_))));
    assert!(matches!(ks.ensure_signing_key(&signing_name, &mut rng(23)), Err(KeystoreError::Destroyed(_))));
    assert_eq!(ks.state(&neighbour).unwrap(), KeyState::Present);
    assert_eq!(*ks.secret(&neighbour, &mut rng(24)).unwrap(), *kept);
}

/// A name that never held a key cannot be destroyed, and stays absent.
pub fn destroy_absent_fails(f: &dyn Fixture) {
    let ks = f.open();
    let name = f.name("epoch/face/0");
    assert!(matches!(ks.destroy(&name), Err(KeystoreError::NotFound(_))));
    assert_eq!(ks.state(&name).unwrap(), KeyState::Absent);
    assert!(matches!(ks.epoch_decapsulator(&name), Err(KeystoreError::NotFound(_))));
    // And it can still be made afterwards.
    ks.generate_epoch_key(&name, &mut rng(25)).unwrap();
    assert_eq!(ks.state(&name).unwrap(), KeyState::Present);
}

/// Asking a name for a key of another kind is refused with `WrongKind`, and never turns it into
/// a key of the asked kind.
pub fn wrong_kind_is_refused(f: &dyn Fixture) {
    let ks = f.open();
    let epoch = f.name("epoch/plate/9");
    let secret = f.name("blind/2027-01");
    let signing = f.name("vault/signing");
    ks.generate_epoch_key(&epoch, &mut rng(26)).unwrap();
    ks.secret(&secret, &mut rng(27)).unwrap();
    ks.ensure_signing_key(&signing, &mut rng(28)).unwrap();

    let wrong = |result: Result<(), KeystoreError>, what: &str| match result {
        Err(KeystoreError::WrongKind(_)) => {}
        other => panic!("{what}: expected WrongKind, got {other:?}"),
    };
    wrong(ks.secret(&epoch, &mut rng(29)).map(drop), "secret(epoch)");
    wrong(ks.ensure_signing_key(&epoch, &mut rng(29)).map(drop), "ensure_signing_key(epoch)");
    wrong(ks.sign(&epoch, b"m").map(drop), "sign(epoch)");
    wrong(ks.epoch_decapsulator(&secret).map(drop), "epoch_decapsulator(secret)");
    wrong(ks.ensure_signing_key(&secret, &mut rng(29)).map(drop), "ensure_signing_key(secret)");
    wrong(ks.sign(&secret, b"m").map(drop), "sign(secret)");
    wrong(ks.epoch_decapsulator(&signing).map(drop), "epoch_decapsulator(signing)");
    wrong(ks.secret(&signing, &mut rng(29)).map(drop), "secret(signing)");
    for name in [&epoch, &secret, &signing] {
        assert!(matches!(ks.generate_epoch_key(name, &mut rng(30)), Err(KeystoreError::AlreadyExists(_))), "{name:?}");
        assert_eq!(ks.state(name).unwrap(), KeyState::Present);
    }
    // Every key still works as its own kind.
    ks.epoch_decapsulator(&epoch).unwrap();
    ks.secret(&secret, &mut rng(31)).unwrap();
    ks.sign(&signing, b"m").unwrap();
}

/// Mounts every check above as a `#[test]` for one backend. `$make` is a closure from a tag to
/// `Option<impl Fixture>`; `None` skips (the caller prints why).
macro_rules! mount_conformance {
    ($make:expr) => {
        mod conformance_suite {
            use super::*;

            fn run(tag: &str, check: fn(&dyn crate::conformance::Fixture)) {
                if let Some(fixture) = ($make)(tag) {
                    check(&fixture);
                }
            }

            #[test]
            fn epoch_key_round_trips() {
                run("round-trip", crate::conformance::epoch_key_round_trips);
            }
            #[test]
            fn sealed_capture_opens_and_shreds_by_group() {
                run("sealed-capture", crate::conformance::sealed_capture_opens_and_shreds_by_group);
            }
            #[test]
            fn diffie_hellman_agrees_with_software_p256() {
                run("dh-software", crate::conformance::diffie_hellman_agrees_with_software_p256);
            }
            #[test]
            fn epoch_key_survives_reopen() {
                run("epoch-reopen", crate::conformance::epoch_key_survives_reopen);
            }
            #[test]
            fn secret_is_stable_across_reopen() {
                run("secret-reopen", crate::conformance::secret_is_stable_across_reopen);
            }
            #[test]
            fn signing_key_signs_verifiably() {
                run("signing", crate::conformance::signing_key_signs_verifiably);
            }
            #[test]
            fn destroy_is_final() {
                run("destroy-final", crate::conformance::destroy_is_final);
            }
            #[test]
            fn destroy_covers_every_kind() {
                run("destroy-kinds", crate::conformance::destroy_covers_every_kind);
            }
            #[test]
            fn destroy_absent_fails() {
                run("destroy-absent", crate::conformance::destroy_absent_fails);
            }
            #[test]
            fn wrong_kind_is_refused() {
                run("wrong-kind", crate::conformance::wrong_kind_is_refused);
            }
        }
    };
}
pub(crate) use mount_conformance;
