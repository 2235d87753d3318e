//! Signed epoch sets: sign, JSON round trip, verification failures, lookup.

use custodia_seal::epochs::*;
use custodia_seal::{EpochId, EpochSecretKey, RetentionClass, SiteName};
use proptest::prelude::*;
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

const HOUR: i64 = 3_600_000;

fn set(rng: &mut ChaCha20Rng) -> EpochSet {
    let site = SiteName::new("anzalduas").unwrap();
    let mut epochs = Vec::new();
    for h in 0..3 {
        let pk = EpochSecretKey::generate(rng).public_key();
        epochs.push(EpochAnnouncement::new(site.clone(), RetentionClass::Face, h * HOUR, (h + 1) * HOUR, pk));
    }
    let pk = EpochSecretKey::generate(rng).public_key();
    epochs.push(EpochAnnouncement::new(site, RetentionClass::Plate, 0, 24 * HOUR, pk));
    EpochSet { issued_at_ms: -5, epochs }
}

#[test]
fn sign_json_verify_round_trip() {
    let mut rng = ChaCha20Rng::seed_from_u64(1);
    let vault = VaultSigningKey::generate(&mut rng);
    let s = set(&mut rng);
    let signed = s.sign(&vault).unwrap();
    let json = signed.to_json();
    let back = SignedEpochSet::from_json(&json).unwrap();
    assert_eq!(back, signed);
    assert_eq!(back.verify(&vault.verifying_key()).unwrap(), s);
    // The JSON carries what the spec says.
    let v: serde_json::Value = serde_json::from_slice(&json).unwrap();
    assert_eq!(v["format"], "custodia-epoch-set/v1");
    assert_eq!(v["epochs"][0]["class"], "face");
    assert_eq!(v["epochs"][0]["epoch_id"], s.epochs[0].epoch_id.to_string());
    assert_eq!(v["signature"].as_str().unwrap().len(), 88);
}

#[test]
fn wrong_vault_key_and_tampering_are_refused() {
    let mut rng = ChaCha20Rng::seed_from_u64(2);
    let vault = VaultSigningKey::generate(&mut rng);
    let vk = vault.verifying_key();
    let s = set(&mut rng);
    let signed = s.sign(&vault).unwrap();
    let other = VaultSigningKey::generate(&mut rng).verifying_key();
    assert_eq!(signed.verify(&other).unwrap_err(), EpochSetError::BadSignature);

    let json: serde_json::Value = serde_json::from_slice(&signed.to_json()).unwrap();
    let tamper = |f: &dyn Fn(&mut serde_json::Value)| {
        let mut j = json.clone();
        f(&mut j);
        let bytes = serde_json::to_vec(&j).unwrap();
        match SignedEpochSet::from_json(&bytes) {
            Err(e) => e,
            Ok(s) => s.verify(&vk).unwrap_err(),
        }
    };
    assert_eq!(tamper(&|j| j["issued_at_ms"] = 7.into()), EpochSetError::BadSignature);
    assert_eq!(tamper(&|j| j["epochs"][1]["not_after_ms"] = (9 * HOUR).into()), EpochSetError::BadSignature);
    assert_eq!(tamper(&|j| j["epochs"][3]["class"] = "overview".into()), EpochSetError::BadSignature);
    assert_eq!(tamper(&|j| j["epochs"][0]["site"] = "elsewhere".into()), EpochSetError::BadSignature);
    let pk2 = json["epochs"][1]["public_key"].clone();
    assert_eq!(tamper(&|j| j["epochs"][0]["public_key"] = pk2.clone()), EpochSetError::BadSignature);
    assert_eq!(
        tamper(&|j| {
            j["epochs"].as_array_mut().unwrap().swap(0, 1);
        }),
        EpochSetError::BadSignature
    );
    assert_eq!(
        tamper(&|j| {
            j["epochs"].as_array_mut().unwrap().pop();
        }),
        EpochSetError::BadSignature
    );
    assert!(matches!(tamper(&|j| j["epochs"][0]["site"] = "bad site".into()), EpochSetError::Json(_)));
    assert!(matches!(tamper(&|j| j["format"] = "x".into()), EpochSetError::Json(_)));
    assert!(matches!(tamper(&|j| j["extra"] = 1.into()), EpochSetError::Json(_)));
    assert!(matches!(tamper(&|j| j["signature"] = "AAAA".into()), EpochSetError::Json(_)));
}

#[test]
fn verifier_rederives_epoch_ids() {
    let mut rng = ChaCha20Rng::seed_from_u64(3);
    let vault = VaultSigningKey::generate(&mut rng);
    let mut s = set(&mut rng);
    // A vault bug (or a forger with the vault key) that lists a wrong id is caught by both sides.
    s.epochs[2].epoch_id = EpochId([9; 16]);
    assert_eq!(s.sign(&vault).unwrap_err(), EpochSetError::EpochIdMismatch(EpochId([9; 16])));
    let mut s = set(&mut rng);
    s.epochs.push(s.epochs[0].clone());
    assert!(matches!(s.sign(&vault).unwrap_err(), EpochSetError::DuplicateEpoch(_)));
    let mut s = set(&mut rng);
    let pk = s.epochs[0].public_key.clone();
    s.epochs.push(EpochAnnouncement::new(SiteName::new("x").unwrap(), RetentionClass::Face, 5, 5, pk));
    assert!(matches!(s.sign(&vault).unwrap_err(), EpochSetError::BadInterval(_)));
}

#[test]
fn epoch_id_derivation_is_pinned() {
    // Pin the derivation so an accidental change to the id encoding is caught. Key from
    // DeriveKeyPair on a fixed seed; the expected id is SHA-256 over the documented fields,
    // computed independently here.
    use sha2::{Digest, Sha256};
    let pk = custodia_seal::derive_key_pair(b"custodia epoch id test vector").public_key();
    let site = SiteName::new("anzalduas").unwrap();
    let id = EpochId::derive(&site, RetentionClass::Plate, 1_700_000_000_000, 1_700_086_400_000, &pk);
    let mut m = Vec::new();
    m.extend_from_slice(b"custodia/epoch-id/v1");
    m.push(9);
    m.extend_from_slice(b"anzalduas");
    m.push(2);
    m.extend_from_slice(&1_700_000_000_000i64.to_be_bytes());
    m.extend_from_slice(&1_700_086_400_000i64.to_be_bytes());
    m.extend_from_slice(&pk.to_sec1_bytes());
    assert_eq!(&id.0[..], &Sha256::digest(&m)[..16]);
}

#[test]
fn find_picks_covering_epoch() {
    let mut rng = ChaCha20Rng::seed_from_u64(4);
    let s = set(&mut rng);
    let site = SiteName::new("anzalduas").unwrap();
    assert_eq!(s.find(&site, RetentionClass::Face, 0).unwrap().epoch_id, s.epochs[0].epoch_id);
    assert_eq!(s.find(&site, RetentionClass::Face, HOUR - 1).unwrap().epoch_id, s.epochs[0].epoch_id);
    assert_eq!(s.find(&site, RetentionClass::Face, HOUR).unwrap().epoch_id, s.epochs[1].epoch_id);
    assert!(s.find(&site, RetentionClass::Face, 3 * HOUR).is_none());
    assert!(s.find(&site, RetentionClass::Face, -1).is_none());
    assert!(s.find(&site, RetentionClass::Overview, 0).is_none());
    assert!(s.find(&SiteName::new("other").unwrap(), RetentionClass::Plate, 0).is_none());
    // Overlap: the later rotation wins.
    let mut s2 = s.clone();
    let pk = EpochSecretKey::generate(&mut rng).public_key();
    s2.epochs.push(EpochAnnouncement::new(site.clone(), RetentionClass::Plate, HOUR, 48 * HOUR, pk));
    assert_eq!(s2.find(&site, RetentionClass::Plate, 2 * HOUR).unwrap().epoch_id, s2.epochs[4].epoch_id);
    assert_eq!(s2.find(&site, RetentionClass::Plate, 0).unwrap().epoch_id, s2.epochs[3].epoch_id);
}

#[test]
fn canonical_bounds() {
    assert_eq!(EpochSet::from_canonical_bytes(b"").unwrap_err(), EpochSetError::Malformed);
    let mut b = Vec::new();
    b.extend_from_slice(b"CSTDEPOC");
    b.push(1);
    b.extend_from_slice(&0i64.to_be_bytes());
    b.extend_from_slice(&u16::MAX.to_be_bytes());
    assert_eq!(EpochSet::from_canonical_bytes(&b).unwrap_err(), EpochSetError::TooManyEpochs);
    let big = vec![b' '; MAX_EPOCH_SET_JSON_BYTES + 1];
    assert_eq!(SignedEpochSet::from_json(&big).unwrap_err(), EpochSetError::TooLarge);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    #[test]
    fn encode_parse_round_trip(
        seed in any::<u64>(),
        issued in any::<i64>(),
        specs in proptest::collection::vec(("[A-Za-z0-9._-]{1,64}", 1u8..=3, any::<i64>(), 1i64..1_000_000), 0..12),
    ) {
        let mut rng = ChaCha20Rng::seed_from_u64(seed);
        let vault = VaultSigningKey::generate(&mut rng);
        let epochs: Vec<_> = specs.into_iter().map(|(site, c, nb, dur)| {
            let nb = nb.min(i64::MAX - dur);
            EpochAnnouncement::new(
                SiteName::new(site).unwrap(),
                RetentionClass::from_u8(c).unwrap(),
                nb,
                nb + dur,
                EpochSecretKey::generate(&mut rng).public_key(),
            )
        }).collect();
        let s = EpochSet { issued_at_ms: issued, epochs };
        let canon = s.to_canonical_bytes();
        prop_assert_eq!(&EpochSet::from_canonical_bytes(&canon).unwrap(), &s);
        for n in 0..canon.len() {
            prop_assert!(EpochSet::from_canonical_bytes(&canon[..n]).is_err());
        }
        let signed = s.sign(&vault).unwrap();
        let back = SignedEpochSet::from_json(&signed.to_json()).unwrap();
        prop_assert_eq!(back.verify(&vault.verifying_key()).unwrap(), s);
    }
}
