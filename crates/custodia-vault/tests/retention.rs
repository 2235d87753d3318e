//! Retention by crypto-shredding: what a run destroys and deletes and when, what reseals keep,
//! what an interrupted run leaves, and the "USB copy": a raw copy of a blob and of the whole
//! vault folder, taken before retention, opens with nothing the vault has afterwards.
//!
//! Every capture here is sealed the way a lane seals one (plate group with the metadata part and
//! the plate crop, overview group, face group) and ingested through `Vault::ingest`; every
//! "can it be opened" check decrypts the real parts and compares them with what was sealed.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use custodia_seal::epochs::SignedEpochSet;
use custodia_seal::metadata::{CaptureMetadata, ImageRecord, ImageRole, METADATA_VERSION, PdqRecord};
use custodia_seal::test_capture::{TestCapture, TestImage};
use custodia_seal::{
    CaptureHeader, DeviceId, DeviceSigningKey, EpochId, GroupToSeal, LaneName, PartKind, PartToSeal, RetentionClass,
    SealedCapture, SiteName, VaultVerifyingKey,
};
use custodia_store::file_keystore::FileKeystore;
use custodia_store::index::{Index, RecordId};
use custodia_store::{KeyName, Keystore, KeystoreError};
use custodia_tlog::{NoteVerifier, SignedCheckpoint, Verifiers};
use custodia_vault::audit::event::{Action, Event};
use custodia_vault::audit::{Actor, LogFault};
use custodia_vault::clock::ManualClock;
use custodia_vault::config::{DAY_MS, HOUR_MS};
use custodia_vault::retention::RetentionRules;
use custodia_vault::{IngestError, MasterKey, Vault, VaultConfig, VaultError};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

const NOW: i64 = 1_780_000_000_000; // 2026-05-28
const SITE: &str = "anzalduas";
const PLATE: &str = "XQA1234";
const PLATE_CROP: &[u8] = b"plate crop bytes";
const FACE: &[u8] = b"occupant face bytes";

const GROUP_PLATE: u8 = 0;
const GROUP_OVERVIEW: u8 = 1;
const GROUP_FACE: u8 = 2;

struct Fixture {
    _root: tempfile::TempDir,
    dir: PathBuf,
    master: PathBuf,
    vault: Vault,
    keystore: Arc<FileKeystore>,
    clock: ManualClock,
    device_id: DeviceId,
    device_key: DeviceSigningKey,
    rng: ChaCha20Rng,
}

/// A vault whose keystore master key file lives OUTSIDE the vault folder (`inside = false`),
/// or inside it (`inside = true`, the embedded default).
async fn fixture_with(inside: bool) -> Fixture {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("vault");
    let master_dir = root.path().join("elsewhere");
    std::fs::create_dir_all(&master_dir).unwrap();
    let master = master_dir.join("master.key");
    let mut rng = ChaCha20Rng::seed_from_u64(7);
    let config = VaultConfig { sites: vec![SITE.into()], ..VaultConfig::default() };
    let how = if inside { MasterKey::KeyFile } else { MasterKey::KeyFileAt(master.clone()) };
    Vault::init(&dir, &config, how, &mut rng).unwrap();
    let clock = ManualClock::new(NOW);
    let (vault, keystore) = open(&dir, &clock);
    vault.ensure_epochs(NOW - 2 * DAY_MS, NOW + 2 * DAY_MS).unwrap();
    let device_key = DeviceSigningKey::generate(&mut rng);
    let device = vault.enroll_device(SITE, "lane-1", &device_key.verifying_key()).unwrap();
    Fixture { _root: root, dir, master, vault, keystore, clock, device_id: device.id, device_key, rng }
}

async fn fixture() -> Fixture {
    fixture_with(false).await
}

/// Opens the vault folder with a keystore handle the test keeps (the same one the vault uses).
fn open(dir: &Path, clock: &ManualClock) -> (Vault, Arc<FileKeystore>) {
    let config: VaultConfig = serde_json::from_slice(&std::fs::read(dir.join("vault.json")).unwrap()).unwrap();
    let keystore = Arc::new(FileKeystore::open(&dir.join("keystore"), None).unwrap());
    let vault = Vault::assemble(
        dir,
        config,
        Arc::new(clock.clone()),
        Box::new(ChaCha20Rng::seed_from_u64(8)),
        Arc::clone(&keystore) as Arc<dyn Keystore>,
    )
    .unwrap();
    (vault, keystore)
}

/// "Restart": drop the vault (it holds the log's lock) and open its folder again.
fn reopen(f: Fixture) -> Fixture {
    let Fixture { _root, dir, master, vault, keystore, clock, device_id, device_key, rng } = f;
    drop(vault);
    drop(keystore);
    let (vault, keystore) = open(&dir, &clock);
    Fixture { _root, dir, master, vault, keystore, clock, device_id, device_key, rng }
}

fn pdq(seed: u8) -> Vec<PdqRecord> {
    vec![PdqRecord {
        pipeline: "pdq-fast-v1".into(),
        variant: "full".into(),
        hash: hex::encode([seed; 32]),
        quality: 90,
    }]
}

/// A capture as the lane seals it: plate group (metadata + crop), overview group, face group.
fn capture(f: &mut Fixture, sequence: u64, time_ms: i64) -> Vec<u8> {
    let json = f.vault.signed_epoch_set().unwrap();
    let key = VaultVerifyingKey::from_bytes(&f.vault.epoch_signing_public_key().unwrap()).unwrap();
    let set = SignedEpochSet::from_json(&json).unwrap().verify(&key).unwrap();
    let overview = [0xAB; 2000];
    let image = |role, bytes, seed| TestImage { pdq: pdq(seed), ..TestImage::new(role, bytes) };
    let mut capture = TestCapture::new(f.device_id, SITE, "lane-1", time_ms, sequence).plate(PLATE, 0.93);
    capture.images = vec![
        image(ImageRole::PlateCrop, PLATE_CROP, 1),
        image(ImageRole::Overview, &overview, 2),
        image(ImageRole::Face, FACE, 3),
    ];
    capture.seal(&set, &f.device_key, &mut f.rng)
}

/// Ingests `n` captures at `time_ms` from sequence `first`; returns (id, sealed bytes) each.
async fn ingest(f: &mut Fixture, first: u64, n: u64, time_ms: i64) -> Vec<(RecordId, Vec<u8>)> {
    let mut out = Vec::new();
    for sequence in first..first + n {
        let body = capture(f, sequence, time_ms);
        let receipt = f.vault.ingest(Bytes::from(body.clone())).await.unwrap();
        assert!(!receipt.duplicate);
        out.push((receipt.record_id.parse().unwrap(), body));
    }
    out
}

fn epoch_of(body: &[u8], group: u8) -> EpochId {
    SealedCapture::parse(body).unwrap().groups()[group as usize].epoch_id()
}

/// The plaintext of part `part` of `group`, opened through the vault's `group_data_key`.
async fn read_part(f: &Fixture, id: &RecordId, body: &[u8], group: u8, part: usize) -> Result<Vec<u8>, VaultError> {
    let key = f.vault.group_data_key(id, group).await?;
    let capture = SealedCapture::parse(body).unwrap();
    Ok(capture.open_part(group as usize, part, &key).expect("a data key the vault hands out opens its part").to_vec())
}

fn hour_end(t: i64) -> i64 {
    (t.div_euclid(HOUR_MS) + 1) * HOUR_MS
}

fn day_end(t: i64) -> i64 {
    (t.div_euclid(DAY_MS) + 1) * DAY_MS
}

fn events(vault: &Vault) -> Vec<Event> {
    let log = vault.audit_log();
    (0..log.size()).map(|i| Event::parse(&log.entry(i).unwrap()).unwrap()).collect()
}

/// (epoch, records) of every `shredded` event, in log order.
fn shredded_events(vault: &Vault) -> Vec<(String, u64)> {
    events(vault)
        .into_iter()
        .filter_map(|e| match e.action {
            Action::Shredded { epoch, records } => Some((epoch.as_str().to_string(), records)),
            _ => None,
        })
        .collect()
}

fn shredded_count(vault: &Vault, epoch: &EpochId) -> usize {
    shredded_events(vault).iter().filter(|(e, _)| *e == epoch.to_string()).count()
}

fn index(f: &Fixture) -> Index {
    Index::open(&f.dir.join("index.sqlite3")).unwrap()
}

fn pdq_rows(f: &Fixture, id: &RecordId) -> Vec<u8> {
    let index = index(f);
    let mut ids = Vec::new();
    index.for_each_pdq_since(0, |pid, _, _| ids.push(pid)).unwrap();
    let mut groups: Vec<u8> =
        index.pdq_rows(&ids).unwrap().into_iter().filter(|r| r.record == *id).map(|r| r.entry.group).collect();
    groups.sort();
    groups
}

fn blob_files(dir: &Path) -> usize {
    fn walk(p: &Path, n: &mut usize) {
        for e in std::fs::read_dir(p).unwrap() {
            let e = e.unwrap();
            if e.file_type().unwrap().is_dir() {
                walk(&e.path(), n);
            } else if e.path().extension().is_some_and(|x| x == "cap") {
                *n += 1;
            }
        }
    }
    let mut n = 0;
    walk(&dir.join("blobs"), &mut n);
    n
}

fn key_name_of(f: &Fixture, epoch: &EpochId) -> KeyName {
    KeyName::new(index(f).epoch(epoch).unwrap().unwrap().key_name).unwrap()
}

/// The whole log verifies against its signed checkpoint with the published key alone.
fn assert_log_verifies(vault: &Vault) {
    let text = vault.publish_checkpoint().unwrap().text;
    let key = NoteVerifier::from_vkey(&vault.log_verifier_key()).unwrap();
    let known: Verifiers = [key.clone()].into_iter().collect();
    let cp = SignedCheckpoint::open(text.as_bytes(), vault.audit_log().origin(), &key, &known).unwrap();
    assert_eq!(cp.checkpoint.size(), vault.audit_log().size());
    let entries: Vec<Vec<u8>> = (0..cp.checkpoint.size()).map(|i| vault.audit_log().entry(i).unwrap()).collect();
    custodia_tlog::verify_entries(&entries, &cp.checkpoint, |_, _| {}).unwrap();
}

fn system() -> Actor {
    Actor::system()
}

#[tokio::test]
async fn faces_are_gone_after_12_hours_while_plates_and_overviews_stay() {
    let mut f = fixture().await;
    let t = NOW - HOUR_MS;
    let records = ingest(&mut f, 1, 3, t).await;
    let (id, body) = &records[0];
    let face_epoch = epoch_of(body, GROUP_FACE);
    let rules = RetentionRules::default();

    // One millisecond before the face epoch's end + 12 h: nothing of ours goes.
    f.clock.set(hour_end(t) + 12 * HOUR_MS - 1);
    f.vault.run_retention(&rules, &system()).await.unwrap();
    assert_eq!(shredded_count(&f.vault, &face_epoch), 0);
    assert_eq!(read_part(&f, id, body, GROUP_FACE, 0).await.unwrap(), FACE);

    f.clock.set(hour_end(t) + 12 * HOUR_MS);
    let report = f.vault.run_retention(&rules, &system()).await.unwrap();
    let ours: Vec<_> = report.shredded.iter().filter(|s| s.epoch == face_epoch.to_string()).collect();
    assert_eq!(ours.len(), 1);
    assert_eq!((ours[0].class.as_str(), ours[0].records), ("face", 3));
    assert_eq!(
        shredded_events(&f.vault).iter().filter(|(e, _)| *e == face_epoch.to_string()).collect::<Vec<_>>(),
        vec![&(face_epoch.to_string(), 3)]
    );
    // No plate or overview epoch of ours went; no record or blob went.
    assert!(report.shredded.iter().all(|s| s.class == "face"), "{report:?}");
    assert_eq!((report.records_deleted, report.blobs_deleted), (0, 0));
    assert_eq!(f.vault.record_count().unwrap(), 3);
    assert_eq!(blob_files(&f.dir), 3);

    for (id, body) in &records {
        // The face key is destroyed: the vault says so, distinctly.
        assert!(matches!(f.vault.group_data_key(id, GROUP_FACE).await, Err(VaultError::Shredded(_))));
        // Plates and overviews still open, to the bytes that were sealed.
        assert_eq!(read_part(&f, id, body, GROUP_PLATE, 1).await.unwrap(), PLATE_CROP);
        assert_eq!(read_part(&f, id, body, GROUP_OVERVIEW, 0).await.unwrap(), vec![0xAB; 2000]);
        // The face's perceptual hash went with it; the others stay.
        assert_eq!(pdq_rows(&f, id), vec![GROUP_PLATE, GROUP_OVERVIEW]);
    }
    assert_eq!(f.keystore.state(&key_name_of(&f, &face_epoch)).unwrap(), custodia_store::KeyState::Destroyed);
    // A second run shreds nothing twice.
    f.vault.run_retention(&rules, &system()).await.unwrap();
    assert_eq!(shredded_count(&f.vault, &face_epoch), 1);
    assert_log_verifies(&f.vault);
}

#[tokio::test]
async fn a_30_day_run_deletes_blobs_and_rows_and_logs_one_shredded_per_epoch_with_its_count() {
    let mut f = fixture().await;
    let t1 = NOW - HOUR_MS;
    let t2 = NOW - DAY_MS - HOUR_MS; // the day before: other epochs
    let day1 = ingest(&mut f, 1, 5, t1).await;
    let day2 = ingest(&mut f, 6, 2, t2).await;
    assert_eq!(blob_files(&f.dir), 7);
    assert_eq!(f.vault.records_by_plate(PLATE, t1).unwrap().len(), 7);
    assert_eq!(index(&f).plate_months().unwrap(), ["2026-05"]);
    let rules = RetentionRules::default();

    f.clock.set(day_end(t1) + 30 * DAY_MS);
    let report = f.vault.run_retention(&rules, &system()).await.unwrap();
    assert_eq!((report.records_deleted, report.blobs_deleted), (7, 7));
    assert_eq!(f.vault.record_count().unwrap(), 0);
    assert_eq!(blob_files(&f.dir), 0);
    assert!(f.vault.record_blob_keys().unwrap().is_empty());
    let index = index(&f);
    let mut all = Vec::new();
    index.for_each_pdq_since(0, |id, _, _| all.push(id)).unwrap();
    assert!(all.is_empty(), "perceptual hashes left: {}", all.len());
    assert_eq!(index.purge_queue_len().unwrap(), 0);
    assert!(index.destroyed_epochs_with_rows().unwrap().is_empty());
    // The records' blind-index rows went with them, before their month's key.
    assert!(index.plate_months().unwrap().is_empty());

    // Exactly one `shredded` per epoch, each with the records it held.
    let logged = shredded_events(&f.vault);
    let mut ids: Vec<&String> = logged.iter().map(|(e, _)| e).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), logged.len(), "an epoch was logged twice");
    for (records, n) in [(&day1, 5), (&day2, 2)] {
        for group in [GROUP_PLATE, GROUP_OVERVIEW, GROUP_FACE] {
            let epoch = epoch_of(&records[0].1, group).to_string();
            assert_eq!(logged.iter().filter(|(e, _)| *e == epoch).collect::<Vec<_>>(), vec![&(epoch.clone(), n)]);
        }
    }
    // Every epoch the log says was shredded has its key destroyed, and the report matches.
    for (epoch, _) in &logged {
        let e: EpochId = epoch.parse().unwrap();
        assert!(matches!(f.keystore.epoch_decapsulator(&key_name_of(&f, &e)), Err(KeystoreError::Destroyed(_))));
    }
    // The 1st run in the test's life logged every shred so far (this is the only run).
    assert_eq!(report.shredded.len(), logged.len());

    // The blind-index month key goes when the month's end + 30 days has passed: not yet.
    assert!(report.blind_months.is_empty());
    f.clock.set(NOW + 40 * DAY_MS); // 2026-07-07: May 31 + 30 days is behind us
    let report = f.vault.run_retention(&rules, &system()).await.unwrap();
    assert_eq!(report.blind_months, vec!["2026-05".to_string()]);
    assert!(events(&f.vault).iter().any(|e| matches!(&e.action,
        Action::BlindKeyShredded { month, .. } if month.as_str() == "2026-05")));
    // A search in that month can no longer even be computed: the key is gone.
    assert!(f.vault.records_by_plate(PLATE, t1).is_err());
    assert_eq!(f.keystore.state(&KeyName::new("blind/2026-05").unwrap()).unwrap(), custodia_store::KeyState::Destroyed);
    // The run after that finds nothing to do.
    let again = f.vault.run_retention(&rules, &system()).await.unwrap();
    assert!(again.shredded.is_empty() && again.blind_months.is_empty() && again.blobs_deleted == 0);
    assert_log_verifies(&f.vault);
}

#[tokio::test]
async fn a_face_hand_off_keeps_a_face_to_14_days_refuses_15_and_ends_with_its_extension() {
    let mut f = fixture().await;
    let t = NOW - HOUR_MS;
    let records = ingest(&mut f, 1, 2, t).await;
    let (held, body) = &records[0];
    let (other, other_body) = &records[1];
    let face_end = hour_end(t);
    let handoff = "hand-off:8 USC 1357 non-citizen referral";

    // Refused: 15 days, an empty or unstated basis, a plain word.
    for (until, basis) in [
        (face_end + 15 * DAY_MS, handoff),
        (face_end + DAY_MS, "hand-off:"),
        (face_end + DAY_MS, ""),
        (face_end + DAY_MS, "because"),
    ] {
        let refused = f.vault.reseal_group(held, RetentionClass::Face, until, basis, &system()).await;
        assert!(matches!(refused, Err(VaultError::Invalid { .. })), "{basis:?} {until}: {refused:?}");
    }
    // The 14-day limit follows the rules passed in.
    let short = RetentionRules { face_handoff_ms: 2 * DAY_MS, ..RetentionRules::default() };
    assert!(
        f.vault
            .reseal_group_under(&short, held, RetentionClass::Face, face_end + 3 * DAY_MS, handoff, &system())
            .await
            .is_err()
    );
    assert!(!events(&f.vault).iter().any(|e| e.action.kind() == "resealed"));

    let officer =
        Actor { principal: "officer-7".into(), role: "officer".into(), purpose: Some("referral".into()), case: None };
    let until = face_end + 14 * DAY_MS;
    f.vault.reseal_group(held, RetentionClass::Face, until, handoff, &officer).await.unwrap();
    let resealed: Vec<Event> = events(&f.vault).into_iter().filter(|e| e.action.kind() == "resealed").collect();
    assert_eq!(resealed.len(), 1);
    assert_eq!(resealed[0].principal.as_str(), "officer-7");
    let Action::Resealed { record, class, from_epoch, to_epoch, until_ms, basis } = &resealed[0].action else {
        unreachable!()
    };
    assert_eq!(
        (record.as_str(), class.as_str(), *until_ms, basis.as_str()),
        (held.to_string().as_str(), "face", until, handoff)
    );
    assert_eq!(from_epoch.as_str(), epoch_of(body, GROUP_FACE).to_string());
    let extension: EpochId = to_epoch.as_str().parse().unwrap();
    let ext_row = index(&f).epoch(&extension).unwrap().unwrap();
    assert_eq!(ext_row.not_after_ms, day_end(until - 1));
    assert!(ext_row.key_name.starts_with("extend/face/"));
    // Its creation is logged, and lanes never see it as a seal target.
    assert!(events(&f.vault).iter().any(|e| matches!(&e.action,
        Action::EpochCreated { epoch, .. } if epoch.as_str() == extension.to_string())));
    let set = f.vault.signed_epoch_set().unwrap();
    assert!(!String::from_utf8(set).unwrap().contains(&extension.to_string()));
    // And a capture sealed to it anyway (its public key is in the public log) is refused.
    let ext_key = custodia_seal::EpochPublicKey::from_sec1_bytes(&ext_row.public_key).unwrap();
    let metadata = CaptureMetadata {
        version: METADATA_VERSION,
        read: None,
        other_reads: vec![],
        engine: None,
        images: vec![ImageRecord {
            group: 0,
            part: 1,
            role: ImageRole::Face,
            bytes: FACE.len() as u64,
            sha256: String::new(),
            stripped: vec![],
            pdq: pdq(9),
        }],
        quarantine: None,
        expired_images: Vec::new(),
    }
    .to_vec();
    let groups = [GroupToSeal {
        class: RetentionClass::Face,
        epoch_id: extension,
        epoch_key: &ext_key,
        parts: vec![
            PartToSeal { kind: PartKind::Metadata, plaintext: &metadata },
            PartToSeal { kind: PartKind::Jpeg, plaintext: FACE },
        ],
    }];
    let header = CaptureHeader {
        device_id: f.device_id,
        site: SiteName::new(SITE).unwrap(),
        lane: LaneName::new("lane-1").unwrap(),
        capture_time_ms: ext_row.not_before_ms + 1,
        sequence: 9_000,
    };
    let forged = custodia_seal::seal(&header, &groups, &f.device_key, &mut f.rng).unwrap();
    let refused = f.vault.ingest(Bytes::from(forged)).await;
    assert!(matches!(refused, Err(IngestError::EpochMismatch { .. })), "{refused:?}");

    // 12 h on: the face epoch is shredded; the held face still opens, the other does not.
    f.clock.set(face_end + 12 * HOUR_MS);
    f.vault.run_retention(&RetentionRules::default(), &system()).await.unwrap();
    assert_eq!(shredded_count(&f.vault, &epoch_of(body, GROUP_FACE)), 1);
    assert_eq!(read_part(&f, held, body, GROUP_FACE, 0).await.unwrap(), FACE);
    assert!(matches!(read_part(&f, other, other_body, GROUP_FACE, 0).await, Err(VaultError::Shredded(_))));
    assert_eq!(pdq_rows(&f, held), vec![GROUP_PLATE, GROUP_OVERVIEW, GROUP_FACE]);
    assert_eq!(pdq_rows(&f, other), vec![GROUP_PLATE, GROUP_OVERVIEW]);
    // The stored blob is untouched: same bytes, device signature still verifies.
    let row = f.vault.record(held).unwrap().unwrap();
    let stored = f.vault.sealed_blob(&row.blob_key).await.unwrap();
    assert_eq!(&stored[..], &body[..]);
    SealedCapture::parse(&stored).unwrap().verify_signature(&f.device_key.verifying_key()).unwrap();

    // Until the extension's day ends it stays; then ordinary retention shreds the extension.
    f.clock.set(ext_row.not_after_ms - 1);
    f.vault.run_retention(&RetentionRules::default(), &system()).await.unwrap();
    assert_eq!(read_part(&f, held, body, GROUP_FACE, 0).await.unwrap(), FACE);
    f.clock.set(ext_row.not_after_ms);
    let report = f.vault.run_retention(&RetentionRules::default(), &system()).await.unwrap();
    let ext: Vec<_> = report.shredded.iter().filter(|s| s.epoch == extension.to_string()).collect();
    assert_eq!((ext.len(), ext[0].records, ext[0].extension), (1, 1, true));
    assert!(matches!(read_part(&f, held, body, GROUP_FACE, 0).await, Err(VaultError::Shredded(_))));
    assert_eq!(pdq_rows(&f, held), vec![GROUP_PLATE, GROUP_OVERVIEW]);
    // The plate (30 days) is still there.
    assert_eq!(read_part(&f, held, body, GROUP_PLATE, 1).await.unwrap(), PLATE_CROP);
    assert_log_verifies(&f.vault);
}

#[tokio::test]
async fn a_legal_hold_keeps_the_held_group_and_its_blob_past_retention_and_then_lets_it_go() {
    let mut f = fixture().await;
    let t = NOW - HOUR_MS;
    let records = ingest(&mut f, 1, 3, t).await;
    let (held, body) = &records[0];
    let supervisor = Actor {
        principal: "sup-1".into(),
        role: "supervisor".into(),
        purpose: None,
        case: Some("case-2019-0531".into()),
    };
    let hold_until = NOW + 90 * DAY_MS;
    f.vault
        .reseal_group(held, RetentionClass::Plate, hold_until, "legal-hold:case-2019-0531", &supervisor)
        .await
        .unwrap();
    // A legal hold is not bounded by the 14-day face hand-off limit.
    let face_hold = hour_end(t) + 60 * DAY_MS;
    f.vault
        .reseal_group(held, RetentionClass::Face, face_hold, "legal-hold:case-2019-0531", &supervisor)
        .await
        .unwrap();
    // Re-sealing is idempotent per extension day: the same hold again adds no second key.
    f.vault
        .reseal_group(held, RetentionClass::Plate, hold_until, "legal-hold:case-2019-0531", &supervisor)
        .await
        .unwrap();
    assert_eq!(index(&f).reseals(held, GROUP_PLATE).unwrap().len(), 1);

    f.clock.set(day_end(t) + 30 * DAY_MS);
    let report = f.vault.run_retention(&RetentionRules::default(), &system()).await.unwrap();
    assert_eq!((report.records_deleted, report.blobs_deleted), (2, 2));
    assert_eq!(f.vault.record_count().unwrap(), 1);
    assert_eq!(blob_files(&f.dir), 1);
    // Its plate group (metadata and crop) and face still open; its overview does not.
    assert_eq!(read_part(&f, held, body, GROUP_PLATE, 1).await.unwrap(), PLATE_CROP);
    let metadata = CaptureMetadata::from_slice(&read_part(&f, held, body, GROUP_PLATE, 0).await.unwrap()).unwrap();
    assert_eq!(metadata.read.unwrap().plate, PLATE);
    assert_eq!(read_part(&f, held, body, GROUP_FACE, 0).await.unwrap(), FACE);
    assert!(matches!(f.vault.group_data_key(held, GROUP_OVERVIEW).await, Err(VaultError::Shredded(_))));
    assert_eq!(pdq_rows(&f, held), vec![GROUP_PLATE, GROUP_FACE]);

    // The face hold ends first, then the plate hold; with it the record and its blob go.
    f.clock.set(day_end(face_hold - 1));
    f.vault.run_retention(&RetentionRules::default(), &system()).await.unwrap();
    assert!(matches!(f.vault.group_data_key(held, GROUP_FACE).await, Err(VaultError::Shredded(_))));
    assert_eq!(f.vault.record_count().unwrap(), 1);
    f.clock.set(day_end(hold_until - 1));
    let report = f.vault.run_retention(&RetentionRules::default(), &system()).await.unwrap();
    assert_eq!((report.records_deleted, report.blobs_deleted), (1, 1));
    assert_eq!(f.vault.record_count().unwrap(), 0);
    assert_eq!(blob_files(&f.dir), 0);
    assert_eq!(index(&f).reseal_count().unwrap(), 0);
    assert!(f.vault.group_data_key(held, GROUP_PLATE).await.is_err());
    assert_log_verifies(&f.vault);
}

#[tokio::test]
async fn an_interrupted_run_resumes_with_every_key_and_its_event_in_agreement() {
    let mut f = fixture().await;
    let t = NOW - HOUR_MS;
    let records = ingest(&mut f, 1, 4, t).await;
    let body = records[0].1.clone();
    let rules = RetentionRules::default();
    f.clock.set(day_end(t) + 30 * DAY_MS);
    let expired: Vec<EpochId> =
        f.vault.retention_status(&rules).unwrap().expired.iter().map(|e| e.epoch.parse().unwrap()).collect();
    assert!(expired.len() > 3, "{expired:?}");

    // The log refuses the first event: nothing is destroyed and nothing is logged.
    let before = f.vault.audit_log().size();
    f.vault.audit_log().inject_fault(LogFault::FailAppend);
    assert!(f.vault.run_retention(&rules, &system()).await.is_err());
    assert_eq!(f.vault.audit_log().size(), before);
    for e in &expired {
        assert_eq!(f.keystore.state(&key_name_of(&f, e)).unwrap(), custodia_store::KeyState::Present);
    }

    // The first event is durable, then the process "dies" before destroying its key.
    f.vault.audit_log().inject_fault(LogFault::FailAfterAppend);
    assert!(f.vault.run_retention(&rules, &system()).await.is_err());
    let logged = shredded_events(&f.vault);
    assert_eq!(logged.len(), 1);
    let first: EpochId = logged[0].0.parse().unwrap();
    assert_eq!(f.keystore.state(&key_name_of(&f, &first)).unwrap(), custodia_store::KeyState::Present);

    // Restart: reconcile destroys the key its last event names, before anything else happens.
    f = reopen(f);
    assert_eq!(f.keystore.state(&key_name_of(&f, &first)).unwrap(), custodia_store::KeyState::Destroyed);
    assert!(index(&f).epoch(&first).unwrap().unwrap().destroyed_at_ms.is_some());

    // The next run finishes the rest, without logging the first epoch again.
    let report = f.vault.run_retention(&rules, &system()).await.unwrap();
    assert!(report.shredded.iter().all(|s| s.epoch != first.to_string()));
    assert_eq!((report.records_deleted, report.blobs_deleted), (4, 4));
    let logged = shredded_events(&f.vault);
    // Key and event agree for every epoch: logged once iff destroyed.
    for e in index(&f).unshredded_epochs().unwrap() {
        assert_eq!(shredded_count(&f.vault, &e.id), 0, "live epoch {} has a shredded event", e.id);
    }
    for e in &expired {
        assert_eq!(shredded_count(&f.vault, e), 1, "{e}");
        assert_eq!(f.keystore.state(&key_name_of(&f, e)).unwrap(), custodia_store::KeyState::Destroyed);
    }
    assert_eq!(logged.len(), expired.len());
    assert!(logged.contains(&(epoch_of(&body, GROUP_PLATE).to_string(), 4)));
    assert_eq!(f.vault.record_count().unwrap(), 0);
    assert_eq!(blob_files(&f.dir), 0);
    assert_log_verifies(&f.vault);
}

#[tokio::test]
async fn a_run_interrupted_between_rows_and_blobs_is_finished_by_the_next() {
    let mut f = fixture().await;
    let t = NOW - HOUR_MS;
    let records = ingest(&mut f, 1, 3, t).await;
    f.clock.set(day_end(t) + 30 * DAY_MS);
    // One blob cannot be deleted (a directory stands where its file was): the run stops after
    // the keys are destroyed and the rows deleted, with the blobs still queued.
    let key = f.vault.record(&records[1].0).unwrap().unwrap().blob_key;
    let path = f.dir.join("blobs").join(&key);
    std::fs::remove_file(&path).unwrap();
    std::fs::create_dir(&path).unwrap();
    std::fs::write(path.join("stuck"), b"x").unwrap();
    assert!(f.vault.run_retention(&RetentionRules::default(), &system()).await.is_err());
    let logged = shredded_events(&f.vault);
    assert!(!logged.is_empty());
    assert_eq!(f.vault.record_count().unwrap(), 0);
    assert_eq!(index(&f).purge_queue_len().unwrap(), 3);
    assert!(f.vault.retention_status(&RetentionRules::default()).unwrap().purge_queue == 3);

    // The obstacle goes; the next run deletes what is queued and logs nothing again.
    std::fs::remove_dir_all(&path).unwrap();
    let report = f.vault.run_retention(&RetentionRules::default(), &system()).await.unwrap();
    assert!(report.shredded.is_empty());
    assert_eq!(report.blobs_deleted, 3);
    assert_eq!(shredded_events(&f.vault), logged);
    assert_eq!((blob_files(&f.dir), index(&f).purge_queue_len().unwrap()), (0, 0));
    assert_log_verifies(&f.vault);
}

#[tokio::test]
async fn a_capture_for_an_expired_but_unshredded_epoch_is_stored_and_goes_at_the_next_run() {
    let mut f = fixture().await;
    let t = NOW - HOUR_MS;
    // 13 hours after the face epoch ended: its retention is over, but no run has shredded it.
    f.clock.set(hour_end(t) + 13 * HOUR_MS);
    let late = ingest(&mut f, 1, 1, t).await;
    let face_epoch = epoch_of(&late[0].1, GROUP_FACE);
    let later = capture(&mut f, 2, t); // sealed now, sent after the run
    // The next run shreds it with the late record counted.
    f.vault.run_retention(&RetentionRules::default(), &system()).await.unwrap();
    assert!(shredded_events(&f.vault).contains(&(face_epoch.to_string(), 1)));
    assert!(matches!(f.vault.group_data_key(&late[0].0, GROUP_FACE).await, Err(VaultError::Shredded(_))));
    // After the shred the epoch takes nothing more (and lanes are no longer offered it).
    let refused = f.vault.ingest(Bytes::from(later)).await;
    assert!(matches!(refused, Err(IngestError::EpochShredded { .. })), "{refused:?}");
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), &target).unwrap();
        }
    }
}

/// Before retention: one raw blob and the whole vault folder copied (the 2018 USB drive).
struct UsbCopy {
    blob: Vec<u8>,
    folder: tempfile::TempDir,
}

async fn copy_then_shred(f: &mut Fixture) -> (UsbCopy, RecordId) {
    let t = NOW - HOUR_MS;
    let records = ingest(f, 1, 3, t).await;
    let (id, _) = records[0];
    let row = f.vault.record(&id).unwrap().unwrap();
    let blob = f.vault.sealed_blob(&row.blob_key).await.unwrap().to_vec();
    let folder = tempfile::tempdir().unwrap();
    copy_dir(&f.dir, folder.path());
    // Sanity: before retention the copied blob opens with the vault's keys.
    assert_eq!(read_part(f, &id, &blob, GROUP_FACE, 0).await.unwrap(), FACE);
    f.clock.set(day_end(t) + 30 * DAY_MS);
    let report = f.vault.run_retention(&RetentionRules::default(), &system()).await.unwrap();
    assert_eq!(report.blobs_deleted, 3);
    (UsbCopy { blob, folder }, id)
}

#[tokio::test]
async fn usb_copy_of_a_blob_and_of_the_vault_folder_cannot_be_opened_by_anything_the_vault_has() {
    let mut f = fixture().await;
    let (copy, id) = copy_then_shred(&mut f).await;
    let capture = SealedCapture::parse(&copy.blob).unwrap();
    assert!(copy.folder.path().join("blobs").exists());

    // 1. The live vault's keystore refuses every name the copied blob is sealed to.
    for g in capture.groups() {
        let name = key_name_of(&f, &g.epoch_id());
        assert!(matches!(f.keystore.epoch_decapsulator(&name), Err(KeystoreError::Destroyed(_))), "{name:?}");
    }
    // 2. The vault itself: the record is gone, and nothing opens its groups.
    assert!(f.vault.record(&id).unwrap().is_none());
    for g in 0..3u8 {
        assert!(f.vault.group_data_key(&id, g).await.is_err());
    }
    // 3. Every epoch key the vault still holds, tried on every group of the copied blob: none
    // opens (there are such keys: the plate and overview epochs published ahead).
    let held = index(&f).unshredded_epochs().unwrap();
    assert!(!held.is_empty());
    let mut tried = 0;
    for e in &held {
        let dec = f.keystore.epoch_decapsulator(&KeyName::new(&e.key_name).unwrap()).unwrap();
        for g in 0..capture.groups().len() {
            assert!(capture.open_data_key(g, dec.as_ref()).is_err());
            tried += 1;
        }
    }
    assert_eq!(tried, held.len() * 3);
    // 4. The copied folder's own index and blob store are just as useless to the live vault:
    // its epochs' keys are the destroyed ones.
    let copied_index = Index::open(&copy.folder.path().join("index.sqlite3")).unwrap();
    for (cid, _) in copied_index.record_blob_keys().unwrap() {
        assert_eq!(cid.device, f.device_id);
    }
}

/// The other half of the guarantee: `seal_destructions` (called once by the run) moved the
/// surviving keys to a fresh master key and destroyed the old one, so the copied keystore folder
/// does not open with the master key file the vault has now, and none of its key files for the
/// shredded epochs opens the copied blob.
#[tokio::test]
async fn usb_copy_of_the_keystore_folder_does_not_open_with_the_vaults_current_master_key() {
    let mut f = fixture().await;
    let (copy, _) = copy_then_shred(&mut f).await;
    let capture = SealedCapture::parse(&copy.blob).unwrap();
    let copied_keystore = copy.folder.path().join("keystore");
    // The copy's manifest names the master key file outside the vault folder, which the vault
    // still has, rotated.
    assert!(!f.master.starts_with(&f.dir));
    // Its manifest names the vault's master key file, which now holds the new master.
    assert!(
        matches!(FileKeystore::open(&copied_keystore, None), Err(KeystoreError::WrongMasterKey)),
        "the copy opened"
    );
    // Even a keystore handle over the copied files with the vault's current master cannot open
    // them: put the copied key files under the live keystore folder's manifest, in a scratch
    // folder, and try each shredded name.
    let scratch = tempfile::tempdir().unwrap();
    copy_dir(&f.dir.join("keystore"), scratch.path());
    std::fs::remove_dir_all(scratch.path().join("keys")).unwrap();
    copy_dir(&copied_keystore.join("keys"), &scratch.path().join("keys"));
    let mixed = FileKeystore::open(scratch.path(), None).unwrap();
    for (gi, g) in capture.groups().iter().enumerate() {
        let name = key_name_of(&f, &g.epoch_id());
        match mixed.epoch_decapsulator(&name) {
            Err(_) => {}
            Ok(dec) => assert!(capture.open_data_key(gi, dec.as_ref()).is_err(), "the copy opened {name:?}"),
        }
    }
}

/// What does NOT hold, stated as a test so the docs can point at it: a vault whose master key
/// file sits inside the vault folder (`MasterKey::KeyFile`, the zero-set-up default) is copied
/// *with* its master key, and the copy opens the shredded captures. Retention cannot help; keep
/// the key file elsewhere (`--master-key-file`), use a passphrase, or an HSM.
#[tokio::test]
async fn a_copy_that_carries_its_own_master_key_file_does_open() {
    let mut f = fixture_with(true).await;
    let (copy, id) = copy_then_shred(&mut f).await;
    let copied_keystore = copy.folder.path().join("keystore");
    assert!(copied_keystore.join("master.key").exists());
    // The thief points the copied manifest at the copied key file (one edit).
    let manifest_path = copied_keystore.join("keystore.json");
    let mut manifest: serde_json::Value = serde_json::from_slice(&std::fs::read(&manifest_path).unwrap()).unwrap();
    manifest["master"]["path"] = serde_json::Value::String(copied_keystore.join("master.key").display().to_string());
    std::fs::write(&manifest_path, serde_json::to_vec(&manifest).unwrap()).unwrap();
    let copied = FileKeystore::open(&copied_keystore, None).unwrap();
    let capture = SealedCapture::parse(&copy.blob).unwrap();
    let face = &capture.groups()[GROUP_FACE as usize];
    let name = key_name_of(&f, &face.epoch_id());
    // The live vault has destroyed the key ...
    assert!(matches!(f.keystore.epoch_decapsulator(&name), Err(KeystoreError::Destroyed(_))));
    assert!(f.vault.group_data_key(&id, GROUP_FACE).await.is_err());
    // ... but the copy still holds it, under the master key it carries.
    let dec = copied.epoch_decapsulator(&name).unwrap();
    let key = capture.open_data_key(GROUP_FACE as usize, dec.as_ref()).unwrap();
    assert_eq!(&capture.open_part(GROUP_FACE as usize, 0, &key).unwrap()[..], FACE);
}

#[tokio::test]
async fn a_reseal_interrupted_after_its_events_is_completed_on_reopen() {
    let mut f = fixture().await;
    let t = NOW - HOUR_MS;
    let records = ingest(&mut f, 1, 2, t).await;
    let until = hour_end(t) + 10 * DAY_MS;
    let basis = "legal-hold:case-7";

    // 1. The extension epoch's `epoch-created` is durable, its row is not ("crash").
    f.vault.audit_log().inject_fault(LogFault::FailAfterAppend);
    assert!(f.vault.reseal_group(&records[0].0, RetentionClass::Face, until, basis, &system()).await.is_err());
    let created: Vec<String> = events(&f.vault)
        .iter()
        .filter_map(|e| match &e.action {
            Action::EpochCreated { epoch, .. } => Some(epoch.as_str().to_string()),
            _ => None,
        })
        .collect();
    let extension: EpochId = created.last().unwrap().parse().unwrap();
    assert!(index(&f).epoch(&extension).unwrap().is_none());
    f = reopen(f);
    // Reconcile wrote the row under the extension key's name (not a period epoch's).
    let row = index(&f).epoch(&extension).unwrap().unwrap();
    assert!(row.key_name.starts_with("extend/face/"), "{}", row.key_name);

    // 2. The `resealed` event is durable, the wrapped key is not stored ("crash").
    f.vault.audit_log().inject_fault(LogFault::FailAfterAppend);
    assert!(f.vault.reseal_group(&records[0].0, RetentionClass::Face, until, basis, &system()).await.is_err());
    assert!(index(&f).reseals(&records[0].0, GROUP_FACE).unwrap().is_empty());
    f = reopen(f);
    let reseals = index(&f).reseals(&records[0].0, GROUP_FACE).unwrap();
    assert_eq!(reseals.len(), 1);
    assert_eq!(reseals[0].epoch, extension, "the same extension epoch was reused");

    // The hold the log names is in effect: past the face's 12 h it still opens.
    f.clock.set(hour_end(t) + 12 * HOUR_MS);
    f.vault.run_retention(&RetentionRules::default(), &system()).await.unwrap();
    assert_eq!(read_part(&f, &records[0].0, &records[0].1, GROUP_FACE, 0).await.unwrap(), FACE);
    assert!(f.vault.group_data_key(&records[1].0, GROUP_FACE).await.is_err());
    assert_log_verifies(&f.vault);
}
