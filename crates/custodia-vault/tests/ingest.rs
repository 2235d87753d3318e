//! Vault ingest: what it accepts, what it refuses and why, and that nothing accepted changes.

use std::sync::Arc;

use bytes::Bytes;
use custodia_seal::epochs::SignedEpochSet;
use custodia_seal::metadata::{CaptureMetadata, ImageRole, METADATA_VERSION};
use custodia_seal::test_capture::TestCapture;
use custodia_seal::{
    CaptureHeader, DeviceId, DeviceSigningKey, GroupToSeal, LaneName, PartKind, PartToSeal, RetentionClass, SiteName,
    VaultVerifyingKey,
};
use custodia_vault::clock::ManualClock;
use custodia_vault::config::{DAY_MS, HOUR_MS};
use custodia_vault::{IngestError, MasterKey, Vault, VaultConfig};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

const NOW: i64 = 1_780_000_000_000;
const SITE: &str = "anzalduas";
const PLATE: &str = "XQA1234";

struct Fixture {
    _dir: tempfile::TempDir,
    vault: Vault,
    clock: ManualClock,
    device_id: DeviceId,
    device_key: DeviceSigningKey,
    rng: ChaCha20Rng,
}

async fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let mut rng = ChaCha20Rng::seed_from_u64(7);
    let config = VaultConfig { sites: vec![SITE.into()], ..VaultConfig::default() };
    Vault::init(dir.path(), &config, MasterKey::KeyFile, &mut rng).unwrap();
    let clock = ManualClock::new(NOW);
    let vault =
        Vault::open(dir.path(), Arc::new(clock.clone()), Box::new(ChaCha20Rng::seed_from_u64(8)), None).unwrap();
    vault.ensure_epochs(NOW - 2 * DAY_MS, NOW + 2 * DAY_MS).unwrap();
    let device_key = DeviceSigningKey::generate(&mut rng);
    let device = vault.enroll_device(SITE, "lane-1", &device_key.verifying_key()).unwrap();
    Fixture { _dir: dir, vault, clock, device_id: device.id, device_key, rng }
}

fn epochs(f: &Fixture) -> custodia_seal::epochs::EpochSet {
    let json = f.vault.signed_epoch_set().unwrap();
    let key = VaultVerifyingKey::from_bytes(&f.vault.epoch_signing_public_key().unwrap()).unwrap();
    SignedEpochSet::from_json(&json).unwrap().verify(&key).unwrap()
}

/// A capture as the lane writes it: a plate read, a plate crop and `overview`, both described in
/// the metadata part.
fn lane_capture(device_id: DeviceId, sequence: u64, time_ms: i64, overview: &[u8]) -> TestCapture<'_> {
    TestCapture::new(device_id, SITE, "lane-1", time_ms, sequence)
        .plate(PLATE, 0.93)
        .image(ImageRole::PlateCrop, b"plate crop bytes")
        .image(ImageRole::Overview, overview)
}

fn seal(f: &mut Fixture, capture: &TestCapture<'_>) -> Vec<u8> {
    let set = epochs(f);
    capture.seal(&set, &f.device_key, &mut f.rng)
}

#[tokio::test]
async fn refuses_metadata_that_does_not_describe_every_image_part() {
    let mut f = fixture().await;
    let overview = [0xAB; 2000];
    let mut capture = lane_capture(f.device_id, 1, NOW - HOUR_MS, &overview);
    capture.images[0].described = false;
    let body = seal(&mut f, &capture);
    let receipt = f.vault.ingest(Bytes::from(body.clone())).await;
    // The metadata describes only the overview; the plate crop part is undescribed → refused.
    assert!(matches!(receipt, Err(IngestError::MetadataInvalid(_))), "{receipt:?}");
    assert_eq!(f.vault.record_count().unwrap(), 0);
}

/// A capture whose metadata describes every image part, as the lane writes it.
fn good_capture(f: &mut Fixture, sequence: u64) -> Vec<u8> {
    good_capture_at(f, sequence, NOW - HOUR_MS, vec![0xAB; 2000])
}

fn good_capture_at(f: &mut Fixture, sequence: u64, time_ms: i64, overview: Vec<u8>) -> Vec<u8> {
    seal(f, &lane_capture(f.device_id, sequence, time_ms, &overview))
}

#[tokio::test]
async fn stores_once_answers_retries_and_keeps_no_plate_text() {
    let mut f = fixture().await;
    let body = good_capture(&mut f, 1);
    let first = f.vault.ingest(Bytes::from(body.clone())).await.unwrap();
    assert!(!first.duplicate);
    assert_eq!(first.record_id, format!("{}-1", f.device_id));
    let again = f.vault.ingest(Bytes::from(body.clone())).await.unwrap();
    assert!(again.duplicate);
    assert_eq!(again.record_id, first.record_id);
    assert_eq!(f.vault.record_count().unwrap(), 1);

    let keys = f.vault.record_blob_keys().unwrap();
    assert_eq!(keys.len(), 1);
    assert_eq!(f.vault.sealed_blob(&keys[0].1).await.unwrap(), Bytes::from(body));

    // Found through the blind index, in the capture's month only.
    let found = f.vault.records_by_plate(PLATE, NOW - HOUR_MS).unwrap();
    assert_eq!(found.len(), 1);
    assert!(f.vault.records_by_plate("XQA1235", NOW - HOUR_MS).unwrap().is_empty());

    // No plaintext plate anywhere in the vault folder.
    assert_no_bytes_under(f.vault.dir(), PLATE.as_bytes());
}

#[tokio::test]
async fn committer_stats_count_the_batches_and_captures_it_made_durable() {
    let mut f = fixture().await;
    let opened = f.vault.committer_stats();
    assert_eq!((opened.batches, opened.captures), (0, 0));

    let body = Bytes::from(good_capture(&mut f, 1));
    f.vault.ingest(body.clone()).await.unwrap();
    let one = f.vault.committer_stats();
    assert_eq!((one.batches, one.captures), (1, 1));
    assert!(one.syncing > std::time::Duration::ZERO && one.recording > std::time::Duration::ZERO);

    // A retry of a stored capture is answered from the index, before the committer.
    assert!(f.vault.ingest(body).await.unwrap().duplicate);
    assert_eq!(f.vault.committer_stats(), one);

    let bodies: Vec<Bytes> = (2..22).map(|i| Bytes::from(good_capture(&mut f, i))).collect();
    let tasks: Vec<_> = bodies
        .into_iter()
        .map(|body| {
            let vault = f.vault.clone();
            tokio::spawn(async move { vault.ingest(body).await })
        })
        .collect();
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    let burst = f.vault.committer_stats().since(&one);
    assert_eq!(burst.captures, 20);
    assert!((1..=20).contains(&burst.batches), "{burst:?}");
    assert!(burst.mean_batch() >= 1.0);
    assert_eq!(f.vault.record_count().unwrap(), 21);
}

fn assert_no_bytes_under(dir: &std::path::Path, needle: &[u8]) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        if entry.file_type().unwrap().is_dir() {
            assert_no_bytes_under(&entry.path(), needle);
        } else {
            let bytes = std::fs::read(entry.path()).unwrap();
            assert!(
                !bytes.windows(needle.len()).any(|w| w == needle),
                "{} holds the plaintext",
                entry.path().display()
            );
        }
    }
}

#[tokio::test]
async fn many_concurrent_captures_are_each_stored_exactly_once() {
    let mut f = fixture().await;
    let bodies: Vec<Vec<u8>> = (0..200).map(|i| good_capture(&mut f, i)).collect();
    let mut tasks = Vec::new();
    for body in bodies.iter().chain(bodies.iter().take(50)) {
        let vault = f.vault.clone();
        let body = Bytes::from(body.clone());
        tasks.push(tokio::spawn(async move { vault.ingest(body).await }));
    }
    let mut duplicates = 0;
    for task in tasks {
        duplicates += usize::from(task.await.unwrap().unwrap().duplicate);
    }
    assert_eq!(duplicates, 50);
    assert_eq!(f.vault.record_count().unwrap(), 200);
    let mut stored = 0;
    for (_, key) in f.vault.record_blob_keys().unwrap() {
        f.vault.sealed_blob(&key).await.unwrap();
        stored += 1;
    }
    assert_eq!(stored, 200);
}

#[tokio::test]
async fn refuses_each_bad_capture_with_its_reason_and_changes_nothing() {
    let mut f = fixture().await;
    let accepted = good_capture(&mut f, 1);
    f.vault.ingest(Bytes::from(accepted.clone())).await.unwrap();

    // Same sequence, other content: a replay or a forked device.
    let fork = good_capture_at(&mut f, 1, NOW - HOUR_MS, vec![0xCD; 2000]);
    assert!(matches!(f.vault.ingest(Bytes::from(fork)).await, Err(IngestError::SequenceConflict { sequence: 1, .. })));

    // Truncated and corrupted.
    let truncated = accepted[..accepted.len() - 10].to_vec();
    assert!(matches!(f.vault.ingest(Bytes::from(truncated)).await, Err(IngestError::Malformed(_))));
    let mut flipped = good_capture(&mut f, 2);
    let middle = flipped.len() / 2;
    flipped[middle] ^= 0x40;
    assert!(matches!(f.vault.ingest(Bytes::from(flipped)).await, Err(IngestError::BadSignature)));

    // Signed by a key that is not the enrolled one.
    let real_key = std::mem::replace(&mut f.device_key, DeviceSigningKey::generate(&mut f.rng));
    let forged = good_capture(&mut f, 3);
    assert!(matches!(f.vault.ingest(Bytes::from(forged)).await, Err(IngestError::BadSignature)));
    f.device_key = real_key;

    // A device id that was never enrolled.
    let real_id = std::mem::replace(&mut f.device_id, DeviceId([9; 16]));
    let stranger = good_capture(&mut f, 4);
    assert!(matches!(f.vault.ingest(Bytes::from(stranger)).await, Err(IngestError::UnknownDevice(_))));
    f.device_id = real_id;

    // A lane the device is not enrolled for.
    let overview = [0xAB; 2000];
    let mut capture = lane_capture(f.device_id, 5, NOW - HOUR_MS, &overview);
    capture.lane = "lane-9";
    let elsewhere = seal(&mut f, &capture);
    assert!(matches!(f.vault.ingest(Bytes::from(elsewhere)).await, Err(IngestError::WrongPlace { .. })));

    // No metadata part.
    let mut capture = lane_capture(f.device_id, 6, NOW - HOUR_MS, &overview);
    capture.with_metadata = false;
    let blind = seal(&mut f, &capture);
    assert!(matches!(f.vault.ingest(Bytes::from(blind)).await, Err(IngestError::NoMetadata)));

    // Capture times outside the window.
    let old = good_capture_at(&mut f, 7, NOW - 2 * DAY_MS + HOUR_MS, vec![1; 10]);
    f.clock.set(NOW + 7 * DAY_MS);
    assert!(matches!(f.vault.ingest(Bytes::from(old)).await, Err(IngestError::CaptureTime { .. })));
    f.clock.set(NOW);
    let ahead = good_capture_at(&mut f, 8, NOW + HOUR_MS, vec![1; 10]);
    assert!(matches!(f.vault.ingest(Bytes::from(ahead)).await, Err(IngestError::CaptureTime { .. })));

    // Too large, before anything is parsed.
    let huge = vec![0u8; custodia_vault::ingest::MAX_CAPTURE_BYTES + 1];
    assert!(matches!(f.vault.ingest(Bytes::from(huge)).await, Err(IngestError::TooLarge(_))));

    // A revoked device.
    f.vault.revoke_device(&f.device_id).unwrap();
    let late = good_capture(&mut f, 9);
    assert!(matches!(f.vault.ingest(Bytes::from(late)).await, Err(IngestError::RevokedDevice(_))));

    // Nothing accepted was lost or changed.
    assert_eq!(f.vault.record_count().unwrap(), 1);
    let keys = f.vault.record_blob_keys().unwrap();
    assert_eq!(f.vault.sealed_blob(&keys[0].1).await.unwrap(), Bytes::from(accepted));
}

#[tokio::test]
async fn refuses_an_epoch_from_another_vault_and_a_period_that_does_not_cover_the_capture() {
    let mut f = fixture().await;
    let set = epochs(&f);
    let site = SiteName::new(SITE).unwrap();
    let time = NOW - HOUR_MS;
    let plate = set.find(&site, RetentionClass::Plate, time).unwrap();
    let next_day = set.find(&site, RetentionClass::Plate, time + DAY_MS).unwrap();
    let metadata = CaptureMetadata {
        version: METADATA_VERSION,
        read: None,
        other_reads: vec![],
        engine: None,
        images: vec![],
        quarantine: None,
        expired_images: Vec::new(),
    }
    .to_vec();
    let header = CaptureHeader {
        device_id: f.device_id,
        site: site.clone(),
        lane: LaneName::new("lane-1").unwrap(),
        capture_time_ms: time,
        sequence: 1,
    };
    // Sealed to the next day's epoch: exists, but does not cover the capture time.
    let groups = [GroupToSeal {
        class: RetentionClass::Plate,
        epoch_id: next_day.epoch_id,
        epoch_key: &next_day.public_key,
        parts: vec![PartToSeal { kind: PartKind::Metadata, plaintext: &metadata }],
    }];
    let body = custodia_seal::seal(&header, &groups, &f.device_key, &mut f.rng).unwrap();
    assert!(matches!(f.vault.ingest(Bytes::from(body)).await, Err(IngestError::EpochMismatch { .. })));

    // An epoch id the vault never made, with a key it does not hold.
    let foreign = custodia_seal::EpochSecretKey::generate(&mut f.rng).public_key();
    let groups = [GroupToSeal {
        class: RetentionClass::Plate,
        epoch_id: custodia_seal::EpochId([3; 16]),
        epoch_key: &foreign,
        parts: vec![PartToSeal { kind: PartKind::Metadata, plaintext: &metadata }],
    }];
    let body = custodia_seal::seal(&header, &groups, &f.device_key, &mut f.rng).unwrap();
    assert!(matches!(f.vault.ingest(Bytes::from(body)).await, Err(IngestError::UnknownEpoch { .. })));

    // The right epoch id with another key: the metadata cannot be opened.
    let groups = [GroupToSeal {
        class: RetentionClass::Plate,
        epoch_id: plate.epoch_id,
        epoch_key: &foreign,
        parts: vec![PartToSeal { kind: PartKind::Metadata, plaintext: &metadata }],
    }];
    let body = custodia_seal::seal(&header, &groups, &f.device_key, &mut f.rng).unwrap();
    assert!(matches!(f.vault.ingest(Bytes::from(body)).await, Err(IngestError::MetadataUnopenable)));
    assert_eq!(f.vault.record_count().unwrap(), 0);
}

#[tokio::test]
async fn epoch_sets_verify_under_the_vault_key_only_and_cover_the_window() {
    let f = fixture().await;
    let set = epochs(&f);
    let site = SiteName::new(SITE).unwrap();
    // Hourly faces and daily plates across the four days ensured.
    for hour in -47..47 {
        assert!(set.find(&site, RetentionClass::Face, NOW + hour * HOUR_MS).is_some(), "face hour {hour}");
    }
    assert!(set.find(&site, RetentionClass::Overview, NOW + DAY_MS).is_some());
    let json = f.vault.signed_epoch_set().unwrap();
    let other = custodia_seal::VaultSigningKey::generate(&mut ChaCha20Rng::seed_from_u64(1)).verifying_key();
    assert!(SignedEpochSet::from_json(&json).unwrap().verify(&other).is_err());
}
