//! The audit log wired into the vault: every action logged before its effect, fail closed,
//! crash recovery of the last batch, torn tails, and checkpoints an auditor can verify with the
//! published key only (checked with custodia-tlog's verifier, which is itself checked against Go's
//! x/mod sumdb in tests/go-tlog-verify).

use std::sync::Arc;

use bytes::Bytes;
use custodia_seal::epochs::SignedEpochSet;
use custodia_seal::metadata::ImageRole;
use custodia_seal::test_capture::TestCapture;
use custodia_seal::{DeviceId, DeviceSigningKey, VaultVerifyingKey};
use custodia_tlog::{NoteVerifier, SignedCheckpoint, Verifiers};
use custodia_vault::audit::event::{Action, Event, EventError, Text};
use custodia_vault::audit::{LogFault, LogFile};
use custodia_vault::clock::ManualClock;
use custodia_vault::config::{DAY_MS, HOUR_MS};
use custodia_vault::{IngestError, MasterKey, Vault, VaultConfig};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

const NOW: i64 = 1_780_000_000_000;
const SITE: &str = "anzalduas";
const PLATE: &str = "XQA1234";

struct Fixture {
    dir: tempfile::TempDir,
    vault: Vault,
    device_id: DeviceId,
    device_key: DeviceSigningKey,
    rng: ChaCha20Rng,
}

fn open(dir: &std::path::Path) -> Vault {
    Vault::open(dir, Arc::new(ManualClock::new(NOW)), Box::new(ChaCha20Rng::seed_from_u64(8)), None).unwrap()
}

async fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let mut rng = ChaCha20Rng::seed_from_u64(7);
    let config = VaultConfig { sites: vec![SITE.into()], ..VaultConfig::default() };
    Vault::init(dir.path(), &config, MasterKey::KeyFile, &mut rng).unwrap();
    let vault = open(dir.path());
    vault.ensure_epochs(NOW - 2 * DAY_MS, NOW + 2 * DAY_MS).unwrap();
    let device_key = DeviceSigningKey::generate(&mut rng);
    let device = vault.enroll_device(SITE, "lane-1", &device_key.verifying_key()).unwrap();
    Fixture { dir, vault, device_id: device.id, device_key, rng }
}

fn capture(f: &mut Fixture, sequence: u64) -> Vec<u8> {
    let json = f.vault.signed_epoch_set().unwrap();
    let key = VaultVerifyingKey::from_bytes(&f.vault.epoch_signing_public_key().unwrap()).unwrap();
    let set = SignedEpochSet::from_json(&json).unwrap().verify(&key).unwrap();
    TestCapture::new(f.device_id, SITE, "lane-1", NOW - HOUR_MS, sequence)
        .plate(PLATE, 0.93)
        .image(ImageRole::PlateCrop, b"plate crop bytes")
        .image(ImageRole::Overview, &[0xAB; 2000])
        .seal(&set, &f.device_key, &mut f.rng)
}

fn events(vault: &Vault) -> Vec<Event> {
    let log = vault.audit_log();
    (0..log.size()).map(|i| Event::parse(&log.entry(i).unwrap()).unwrap()).collect()
}

fn ingested_for(vault: &Vault, record: &str) -> usize {
    events(vault)
        .iter()
        .filter(|e| matches!(&e.action, Action::Ingested { record: r, .. } if r.as_str() == record))
        .count()
}

/// Opens the published checkpoint with only the verifier key string, as an auditor would.
fn open_checkpoint(vault: &Vault) -> SignedCheckpoint {
    let text = vault.publish_checkpoint().unwrap().text;
    let key = NoteVerifier::from_vkey(&vault.log_verifier_key()).unwrap();
    let known: Verifiers = [key.clone()].into_iter().collect();
    SignedCheckpoint::open(text.as_bytes(), vault.audit_log().origin(), &key, &known).unwrap()
}

#[test]
fn every_event_kind_round_trips_and_only_its_canonical_bytes_parse() {
    let t = |s: &str| Text::new(s).unwrap();
    let actions = vec![
        Action::Ingested {
            record: t("00ff-1"),
            digest: [7; 32],
            site: t(SITE),
            lane: t("lane-1"),
            capture_time_ms: -5,
            device: t("00ff"),
            epochs: vec![t("aa"), t("bb")],
        },
        Action::Accessed { record: t("00ff-1"), part: t("overview") },
        Action::Searched { query: [1; 32], results: 3 },
        Action::Exported { export: t("x9"), records: 12, manifest: [2; 32], recipient: t("dhs-oig") },
        Action::ExportApproved { export: t("x9"), requester: t("analyst-4") },
        Action::Granted { grantee: t("analyst-4"), grant_role: t("analyst"), scope: t("site:anzalduas") },
        Action::Revoked { grantee: t("analyst-4"), grant_role: t("analyst") },
        Action::DeviceEnrolled { device: t("00ff"), site: t(SITE), lane: t("lane-1"), public_key: [3; 32] },
        Action::DeviceRevoked { device: t("00ff") },
        Action::EpochCreated {
            epoch: t("ee"),
            site: t(SITE),
            class: t("plate"),
            not_before_ms: 0,
            not_after_ms: DAY_MS,
            public_key: vec![4; 65],
        },
        Action::Shredded { epoch: t("ee"), records: u64::MAX },
        Action::Scanned { scan: t("s1"), files: 100, matches: 2, report: [5; 32] },
        Action::PolicyChanged { policy: [6; 32], summary: t("faces kept 12 h") },
        Action::LoginFailed { claimed: t("admin"), reason: t("bad-token") },
        Action::Refused { request: t("read-image"), target: t("00ff-1"), reason: t("no-grant") },
        Action::PrincipalAdded { subject: t("officer-1"), roles: vec![t("officer"), t("supervisor")] },
        Action::PrincipalDisabled { subject: t("officer-1") },
        Action::TokenIssued { subject: t("officer-1"), token: t("tok-9f"), expires_at_ms: NOW + DAY_MS },
        Action::BreakGlassRequested { request: t("bg-1"), scope: t("record:00ff-1") },
        Action::BreakGlassApproved { request: t("bg-1"), requester: t("officer-1"), scope: t("record:00ff-1") },
        Action::BulkBlocked { subject: t("officer-1"), reads: 201, limit: 200 },
        Action::BulkCleared { subject: t("officer-1") },
        Action::Resealed {
            record: t("00ff-1"),
            class: t("face"),
            from_epoch: t("ee"),
            to_epoch: t("ff"),
            until_ms: NOW + 14 * DAY_MS,
            basis: t("hand-off:8 USC 1357"),
        },
        Action::BlindKeyShredded { month: t("2026-10"), entries: 4 },
    ];
    let mut kinds = std::collections::HashSet::new();
    for (i, action) in actions.into_iter().enumerate() {
        let event = Event {
            time_ms: NOW + i as i64,
            principal: t("analyst-4"),
            role: t("analyst"),
            purpose: (i % 2 == 0).then(|| t("investigation")),
            case: (i % 3 == 0).then(|| t("2026-118")),
            action,
        };
        kinds.insert(event.action.kind());
        let bytes = event.to_bytes();
        assert!(bytes.len() < 1024);
        assert_eq!(Event::parse(&bytes).unwrap(), event);
        // Flip every bit: each flip is refused or parses to a different event, never the same.
        for bit in 0..bytes.len() * 8 {
            let mut b = bytes.clone();
            b[bit / 8] ^= 1 << (bit % 8);
            if let Ok(other) = Event::parse(&b) {
                assert_ne!(other, event, "bit {bit} flipped and still the same event");
            }
        }
    }
    assert_eq!(kinds.len(), 24);
}

#[test]
fn non_canonical_and_oversized_events_are_refused_with_their_reason() {
    let good = br#"{"v":1,"event":"device-revoked","time_ms":5,"principal":"vault","role":"system","purpose":null,"case":null,"device":"00ff"}"#;
    assert!(Event::parse(good).is_ok());
    let cases: Vec<(Vec<u8>, EventError)> = vec![
        (good.iter().map(|&c| if c == b':' { b' ' } else { c }).collect(), EventError::NotJson(String::new())),
        (
            String::from_utf8_lossy(good).replace(r#""time_ms":5"#, r#""time_ms":5.0"#).into(),
            EventError::Field { field: "time_ms", reason: "not an integer" },
        ),
        (
            String::from_utf8_lossy(good)
                .replace(r#"{"v":1,"event":"device-revoked""#, r#"{"event":"device-revoked","v":1"#)
                .into(),
            EventError::NotCanonical,
        ),
        (String::from_utf8_lossy(good).replace(r#","device""#, r#", "device""#).into(), EventError::NotCanonical),
        (
            String::from_utf8_lossy(good).replace(r#""device":"00ff"}"#, r#""device":"00ff","device":"00ff"}"#).into(),
            EventError::NotCanonical,
        ),
        (
            String::from_utf8_lossy(good)
                .replace(r#""device":"00ff"}"#, r#""device":"00ff","plate":"XQA1234"}"#)
                .into(),
            EventError::UnknownField("plate".into()),
        ),
        (String::from_utf8_lossy(good).replace(r#""v":1"#, r#""v":2"#).into(), EventError::Version(2)),
        (
            String::from_utf8_lossy(good).replace("device-revoked", "teleported").into(),
            EventError::UnknownKind("teleported".into()),
        ),
        (String::from_utf8_lossy(good).replace(r#""00ff""#, r#""00\u0066f""#).into(), EventError::NotCanonical),
        (String::from_utf8_lossy(good).replace(r#""00ff""#, r#""""#).into(), EventError::BadText(String::new())),
        (vec![b' '; 5000], EventError::TooLarge(5000)),
    ];
    for (bytes, want) in cases {
        let got = Event::parse(&bytes).unwrap_err();
        assert_eq!(
            std::mem::discriminant(&got),
            std::mem::discriminant(&want),
            "{}: {got}",
            String::from_utf8_lossy(&bytes[..bytes.len().min(80)])
        );
    }
}

#[tokio::test]
async fn ingest_enrol_and_epochs_are_logged_and_the_log_verifies_under_the_published_key() {
    let mut f = fixture().await;
    let body = capture(&mut f, 1);
    let receipt = f.vault.ingest(Bytes::from(body.clone())).await.unwrap();
    // A retry is not a second event.
    assert!(f.vault.ingest(Bytes::from(body)).await.unwrap().duplicate);
    let evs = events(&f.vault);
    let kinds: Vec<&str> = evs.iter().map(|e| e.action.kind()).collect();
    // Two days either side: 96 hourly face epochs plus the daily plate and overview ones.
    assert!(kinds.iter().filter(|k| **k == "epoch-created").count() >= 96 + 8);
    assert!(kinds.contains(&"device-enrolled"));
    assert_eq!(ingested_for(&f.vault, &receipt.record_id), 1);
    let Action::Ingested { digest, site, device, epochs, .. } =
        &evs.iter().find(|e| e.action.kind() == "ingested").unwrap().action
    else {
        unreachable!()
    };
    assert_eq!(site.as_str(), SITE);
    assert_eq!(device.as_str(), f.device_id.to_string());
    assert_eq!(epochs.len(), 2);
    let row = f.vault.record(&receipt.record_id.parse().unwrap()).unwrap().unwrap();
    assert_eq!(*digest, row.content_digest);

    // A search is logged with a digest, not the plate, and fails closed.
    assert_eq!(f.vault.records_by_plate(PLATE, NOW - HOUR_MS).unwrap().len(), 1);
    let Action::Searched { results, .. } = events(&f.vault).last().unwrap().action.clone() else {
        panic!("not logged")
    };
    assert_eq!(results, 1);
    f.vault.audit_log().inject_fault(LogFault::FailAppend);
    assert!(f.vault.records_by_plate(PLATE, NOW - HOUR_MS).is_err());

    // Revocation is logged too.
    f.vault.revoke_device(&f.device_id).unwrap();
    assert_eq!(events(&f.vault).last().unwrap().action.kind(), "device-revoked");

    // The checkpoint verifies under the verifier key alone, and the entries hash to its root.
    let cp = open_checkpoint(&f.vault);
    assert_eq!(cp.checkpoint.size(), f.vault.audit_log().size());
    let entries: Vec<Vec<u8>> = (0..cp.checkpoint.size()).map(|i| f.vault.audit_log().entry(i).unwrap()).collect();
    custodia_tlog::verify_entries(&entries, &cp.checkpoint, |_, _| {}).unwrap();

    // A tlog-proof for the record's event verifies offline.
    let (index, entry, proof) = f.vault.prove_record(&receipt.record_id.parse().unwrap()).unwrap().unwrap();
    let key = NoteVerifier::from_vkey(&f.vault.log_verifier_key()).unwrap();
    let known: Verifiers = [key.clone()].into_iter().collect();
    let parsed = custodia_tlog::TlogProof::parse(proof.to_text().as_bytes()).unwrap();
    assert_eq!(parsed.index, index);
    parsed.verify(&entry, f.vault.audit_log().origin(), &key, &known).unwrap();

    // Nothing retention must delete is in the log: no plate text anywhere in its file.
    let raw = std::fs::read(f.dir.path().join("log").join("entries.ctl")).unwrap();
    assert!(!raw.windows(PLATE.len()).any(|w| w == PLATE.as_bytes()));
}

#[tokio::test]
async fn when_the_log_cannot_be_written_nothing_is_stored_or_acknowledged() {
    let mut f = fixture().await;
    let size = f.vault.audit_log().size();
    let body = capture(&mut f, 1);
    f.vault.audit_log().inject_fault(LogFault::FailAppend);
    let refused = f.vault.ingest(Bytes::from(body.clone())).await;
    assert!(matches!(refused, Err(IngestError::Storage(_))), "{refused:?}");
    assert_eq!(f.vault.record_count().unwrap(), 0);
    assert_eq!(f.vault.audit_log().size(), size);
    // Device enrolment fails closed too.
    f.vault.audit_log().inject_fault(LogFault::FailAppend);
    let key = DeviceSigningKey::generate(&mut f.rng);
    assert!(f.vault.enroll_device(SITE, "lane-2", &key.verifying_key()).is_err());
    assert_eq!(f.vault.devices().unwrap().len(), 1);
    // The lane retries once the log is back: stored once, logged once.
    let receipt = f.vault.ingest(Bytes::from(body)).await.unwrap();
    assert!(!receipt.duplicate);
    assert_eq!(ingested_for(&f.vault, &receipt.record_id), 1);
}

#[tokio::test]
async fn a_crash_between_log_and_index_is_repaired_on_open_and_the_event_matches_a_stored_record() {
    let mut f = fixture().await;
    let body = capture(&mut f, 1);
    f.vault.audit_log().inject_fault(LogFault::FailAfterAppend);
    let refused = f.vault.ingest(Bytes::from(body.clone())).await;
    assert!(matches!(refused, Err(IngestError::Storage(_))), "{refused:?}");
    // The event is durable, the row is not there: exactly the state a crash would leave.
    let record = format!("{}-1", f.device_id);
    assert_eq!(ingested_for(&f.vault, &record), 1);
    assert_eq!(f.vault.record_count().unwrap(), 0);
    // "Restart": open the folder again. Recovery re-applies the last logged batch.
    let Fixture { dir, vault, .. } = f;
    drop(vault);
    let vault = open(dir.path());
    let f = Fixture { dir, vault, device_id: f.device_id, device_key: f.device_key, rng: f.rng };
    assert_eq!(f.vault.record_count().unwrap(), 1);
    assert!(f.vault.record(&record.parse().unwrap()).unwrap().is_some());
    // The lane's retry is a duplicate, and there is still exactly one event.
    assert!(f.vault.ingest(Bytes::from(body)).await.unwrap().duplicate);
    assert_eq!(ingested_for(&f.vault, &record), 1);
}

#[tokio::test]
async fn a_failed_effect_is_repaired_before_the_next_append_without_a_restart() {
    let mut f = fixture().await;
    let key = DeviceSigningKey::generate(&mut f.rng);
    f.vault.audit_log().inject_fault(LogFault::FailAfterAppend);
    assert!(f.vault.enroll_device(SITE, "lane-2", &key.verifying_key()).is_err());
    assert_eq!(f.vault.devices().unwrap().len(), 1);
    // The next action first settles the log: the enrolment the log names now exists.
    let body = capture(&mut f, 1);
    f.vault.ingest(Bytes::from(body)).await.unwrap();
    assert_eq!(f.vault.devices().unwrap().len(), 2);
}

#[tokio::test]
async fn a_torn_tail_is_cut_to_the_last_durable_batch_and_damage_inside_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("entries.ctl");
    let mut log = LogFile::open(&path).unwrap();
    for batch in 0..5u8 {
        let entries: Vec<Vec<u8>> = (0..10u8).map(|i| vec![batch, i]).collect();
        log.append(&entries).unwrap();
    }
    let (size, root) = (log.size(), log.root());
    drop(log);
    let durable = std::fs::read(&path).unwrap();

    // A crash mid-write: any prefix of a sixth frame is cut back to 50 entries.
    let mut grown = LogFile::open(&path).unwrap();
    grown.append(&[b"sixth".to_vec()]).unwrap();
    drop(grown);
    let full = std::fs::read(&path).unwrap();
    for cut in [durable.len() + 1, durable.len() + 20, full.len() - 1] {
        std::fs::write(&path, &full[..cut]).unwrap();
        let log = LogFile::open(&path).unwrap();
        assert_eq!((log.size(), log.root()), (size, root), "cut at {cut}");
        let torn = log.torn_tail().unwrap();
        assert_eq!(torn.offset, durable.len() as u64);
        assert_eq!(std::fs::read(&path).unwrap(), durable);
    }
    // A flipped bit in the last frame is also a torn tail (never acknowledged).
    let mut bad = full.clone();
    bad[full.len() - 40] ^= 1;
    std::fs::write(&path, &bad).unwrap();
    assert_eq!(LogFile::open(&path).unwrap().size(), size);

    // A flipped bit inside durable history is damage: refused, naming where.
    let mut bad = durable.clone();
    bad[30] ^= 1;
    std::fs::write(&path, &bad).unwrap();
    let err = LogFile::open(&path).err().expect("damage must be refused");
    let msg = err.to_string();
    assert!(msg.contains("byte 0") && msg.contains("entry 0"), "{msg}");
}

#[tokio::test]
async fn a_checkpoint_is_signed_within_a_second_while_entries_arrive() {
    let mut f = fixture().await;
    let before = f.vault.audit_log().latest().unwrap().size;
    let body = capture(&mut f, 1);
    f.vault.ingest(Bytes::from(body)).await.unwrap();
    let size = f.vault.audit_log().size();
    assert!(size > before);
    // The checkpointer ticks every second; allow scheduling slack on a loaded CI machine.
    let path = f.dir.path().join("log").join("checkpoint");
    let started = std::time::Instant::now();
    loop {
        let text = std::fs::read_to_string(&path).unwrap();
        if text.lines().nth(1) == Some(size.to_string().as_str()) {
            break;
        }
        assert!(started.elapsed().as_secs() < 3, "no checkpoint of size {size} after 3 s: {text}");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

#[test]
fn the_log_file_serves_the_same_hashes_tiles_and_proofs_as_the_reference_store() {
    use custodia_tlog::{HashReader, MemoryHashStore, prove_record, prove_tree, stored_hash_count};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("entries.ctl");
    let mut log = LogFile::open(&path).unwrap();
    let mut reference = MemoryHashStore::new();
    let mut next = 0u64;
    // Uneven batches, so frames end anywhere relative to tiles and cached levels.
    for batch in [1u64, 2, 255, 1, 1000, 17, 3000, 100, 4] {
        let entries: Vec<Vec<u8>> = (next..next + batch).map(|i| format!("entry {i}").into_bytes()).collect();
        for e in &entries {
            reference.append(e);
        }
        log.append(&entries).unwrap();
        next += batch;
    }
    for reopened in [false, true] {
        if reopened {
            drop(log);
            log = LogFile::open(&path).unwrap();
        }
        assert_eq!((log.size(), log.root()), (reference.tree_size(), reference.root()));
        let all: Vec<u64> = (0..stored_hash_count(log.size())).collect();
        assert_eq!(log.read_hashes(&all).unwrap(), reference.hashes());
        for n in [0, 1, 255, 256, 1000, 4379] {
            assert_eq!(prove_record(log.size(), n, &log).unwrap(), prove_record(log.size(), n, &reference).unwrap());
            assert_eq!(
                prove_tree(log.size(), n + 1, &log).unwrap(),
                prove_tree(log.size(), n + 1, &reference).unwrap()
            );
        }
        assert!(log.read_hashes(&[stored_hash_count(log.size())]).is_err());
        let want: Vec<Vec<u8>> = (0..next).map(|i| format!("entry {i}").into_bytes()).collect();
        assert_eq!(log.entries(0, next).unwrap(), want);
        for (a, b) in [(0, 1), (2, 3), (3, 258), (257, 1300), (1276, 4376), (4300, 4380)] {
            assert_eq!(log.entries(a, b).unwrap(), want[a as usize..b.min(next) as usize], "{a}..{b}");
        }
    }
}
