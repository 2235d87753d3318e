//! Intake on a bad storage day (issue 6, part 2): a real vault over a fault-injecting blob store
//! (`custodia_store::faulty`), fed real sealed captures.
//!
//! For each fault: intake refuses with `IngestError::Storage` while it lasts and says why; nothing
//! refused is half-stored (no index row, no `ingested` event, no blob file); what was accepted
//! before still reads back and the audit log still verifies; once the fault clears the same
//! uploads (the lane's retries) are accepted and stored exactly once.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use custodia_seal::epochs::SignedEpochSet;
use custodia_seal::metadata::ImageRole;
use custodia_seal::test_capture::TestCapture;
use custodia_seal::{DeviceId, DeviceSigningKey, SealedCapture, VaultVerifyingKey};
use custodia_store::blobs::{BlobStore, Fault, Faults};
use custodia_store::file_keystore::FileKeystore;
use custodia_tlog::{NoteVerifier, SignedCheckpoint, Verifiers};
use custodia_vault::audit::event::{Action, Event};
use custodia_vault::clock::ManualClock;
use custodia_vault::config::{DAY_MS, HOUR_MS};
use custodia_vault::{IngestError, MasterKey, Receipt, Vault, VaultConfig};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

const NOW: i64 = 1_780_000_000_000;
const SITE: &str = "anzalduas";

struct Fixture {
    dir: tempfile::TempDir,
    vault: Vault,
    faults: Faults,
    device_id: DeviceId,
    device_key: DeviceSigningKey,
    rng: ChaCha20Rng,
}

/// A vault whose blob folder sits behind the fault switch, opened the way `Vault::open` opens a
/// file-keystore vault, with one enrolled lane device.
async fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let mut rng = ChaCha20Rng::seed_from_u64(7);
    let config = VaultConfig { sites: vec![SITE.into()], ..VaultConfig::default() };
    Vault::init(dir.path(), &config, MasterKey::KeyFile, &mut rng).unwrap();
    let faults = Faults::new();
    let keystore = Arc::new(FileKeystore::open(&dir.path().join("keystore"), None).unwrap());
    let blobs = BlobStore::local_with_faults(&dir.path().join("blobs"), faults.clone()).unwrap();
    let vault = Vault::assemble_with_blobs(
        dir.path(),
        config,
        Arc::new(ManualClock::new(NOW)),
        Box::new(ChaCha20Rng::seed_from_u64(8)),
        keystore,
        blobs,
    )
    .unwrap();
    vault.ensure_epochs(NOW - 2 * DAY_MS, NOW + 2 * DAY_MS).unwrap();
    let device_key = DeviceSigningKey::generate(&mut rng);
    let device = vault.enroll_device(SITE, "lane-1", &device_key.verifying_key()).unwrap();
    Fixture { dir, vault, faults, device_id: device.id, device_key, rng }
}

/// A sealed capture as the lane writes it: a plate read, a plate crop and an overview, each image
/// described in the metadata part.
fn capture(f: &mut Fixture, sequence: u64) -> Bytes {
    let json = f.vault.signed_epoch_set().unwrap();
    let key = VaultVerifyingKey::from_bytes(&f.vault.epoch_signing_public_key().unwrap()).unwrap();
    let set = SignedEpochSet::from_json(&json).unwrap().verify(&key).unwrap();
    let time_ms = NOW - HOUR_MS + sequence as i64 * 1000;
    let plate = format!("FLT{sequence:04}");
    let overview = vec![sequence as u8; 4000];
    let sealed = TestCapture::new(f.device_id, SITE, "lane-1", time_ms, sequence)
        .plate(&plate, 0.9)
        .image(ImageRole::PlateCrop, b"plate crop bytes")
        .image(ImageRole::Overview, &overview)
        .seal(&set, &f.device_key, &mut f.rng);
    Bytes::from(sealed)
}

fn captures(f: &mut Fixture, sequences: std::ops::Range<u64>) -> Vec<Bytes> {
    sequences.map(|s| capture(f, s)).collect()
}

/// Uploads every body at once, as concurrent requests, and returns the answers in order.
async fn upload_all(vault: &Vault, bodies: &[Bytes]) -> Vec<Result<Receipt, IngestError>> {
    let tasks: Vec<_> = bodies
        .iter()
        .map(|body| {
            let (vault, body) = (vault.clone(), body.clone());
            tokio::spawn(async move { vault.ingest(body).await })
        })
        .collect();
    let mut answers = Vec::new();
    for task in tasks {
        answers.push(task.await.unwrap());
    }
    answers
}

fn assert_storage_refusal(answer: &Result<Receipt, IngestError>, why: &str) {
    match answer {
        Err(IngestError::Storage(reason)) => assert!(reason.contains(why), "refusal does not say {why:?}: {reason}"),
        other => panic!("expected a storage refusal, got {other:?}"),
    }
}

/// `ingested` events in the log, by record id.
fn ingested_events(vault: &Vault) -> BTreeMap<String, usize> {
    let log = vault.audit_log();
    let mut found = BTreeMap::new();
    for i in 0..log.size() {
        if let Action::Ingested { record, .. } = Event::parse(&log.entry(i).unwrap()).unwrap().action {
            *found.entry(record.as_str().to_string()).or_default() += 1;
        }
    }
    found
}

/// The sealed-capture files in the blob folder (refused or orphaned blobs would show up here).
fn blob_files(dir: &std::path::Path) -> usize {
    let mut count = 0;
    let mut stack = vec![dir.join("blobs")];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(dir).unwrap() {
            let entry = entry.unwrap();
            if entry.file_type().unwrap().is_dir() {
                stack.push(entry.path());
            } else if entry.path().extension().is_some_and(|e| e == "cap") {
                count += 1;
            }
        }
    }
    count
}

/// The vault holds exactly the captures of `sequences`, each once: one index row, one blob file
/// that is the capture its row names, one `ingested` event; and the log verifies under its
/// published key.
async fn assert_holds_exactly(f: &Fixture, sequences: &[u64]) {
    let vault = &f.vault;
    assert_eq!(vault.record_count().unwrap(), sequences.len() as u64, "index rows");
    let rows = vault.record_blob_keys().unwrap();
    let mut stored: Vec<u64> = rows.iter().map(|(id, _)| id.sequence).collect();
    stored.sort();
    assert_eq!(stored, sequences, "the stored records are exactly the acknowledged ones");
    for (id, key) in &rows {
        let blob = vault.sealed_blob(key).await.unwrap();
        let parsed = SealedCapture::parse(&blob).unwrap();
        assert_eq!(parsed.header().sequence, id.sequence);
        assert_eq!(vault.record(id).unwrap().unwrap().content_digest, parsed.content_digest());
    }
    assert_eq!(blob_files(f.dir.path()), sequences.len(), "a blob without its row (a half-stored capture)");
    let events = ingested_events(vault);
    let expected: BTreeMap<String, usize> = rows.iter().map(|(id, _)| (id.to_string(), 1)).collect();
    assert_eq!(events, expected, "one `ingested` event per stored record and none for a refused one");

    let text = vault.publish_checkpoint().unwrap().text;
    let key = NoteVerifier::from_vkey(&vault.log_verifier_key()).unwrap();
    let known: Verifiers = [key.clone()].into_iter().collect();
    let checkpoint = SignedCheckpoint::open(text.as_bytes(), vault.audit_log().origin(), &key, &known).unwrap();
    assert_eq!(checkpoint.checkpoint.size(), vault.audit_log().size());
    let entries: Vec<Vec<u8>> =
        (0..checkpoint.checkpoint.size()).map(|i| vault.audit_log().entry(i).unwrap()).collect();
    custodia_tlog::verify_entries(&entries, &checkpoint.checkpoint, |_, _| {}).unwrap();
}

fn accepted(answers: &[Result<Receipt, IngestError>]) -> usize {
    answers.iter().filter(|a| matches!(a, Ok(r) if !r.duplicate)).count()
}

/// The shared scenario for faults that refuse every write: accept a few, fail the rest while the
/// fault lasts, retry them after it clears.
async fn refuses_while_faulty_then_resumes(fault: Fault, why: &str) -> Fixture {
    let mut f = fixture().await;
    let before = captures(&mut f, 1..4);
    let during = captures(&mut f, 4..10);
    assert_eq!(accepted(&upload_all(&f.vault, &before).await), 3);

    f.faults.set(fault);
    for answer in upload_all(&f.vault, &during).await {
        assert_storage_refusal(&answer, why);
    }
    // A second round of retries while the fault lasts is refused the same way.
    for answer in upload_all(&f.vault, &during[..2]).await {
        assert_storage_refusal(&answer, why);
    }
    assert!(f.faults.injected() >= 8, "the fault was reached: {}", f.faults.injected());
    // A retry of an accepted capture is answered from the index, blob store or not.
    let again = f.vault.ingest(before[0].clone()).await.unwrap();
    assert!(again.duplicate);
    f.faults.clear();
    assert_holds_exactly(&f, &[1, 2, 3]).await;

    // The lane retries: each is stored now, once; a second retry is a duplicate.
    let answers = upload_all(&f.vault, &during).await;
    assert_eq!(accepted(&answers), during.len(), "{answers:?}");
    let answers = upload_all(&f.vault, &during).await;
    assert!(answers.iter().all(|a| matches!(a, Ok(r) if r.duplicate)), "{answers:?}");
    assert_holds_exactly(&f, &(1..10).collect::<Vec<_>>()).await;
    f
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_stops_intake_with_enospc_and_loses_nothing_then_intake_resumes() {
    let f = refuses_while_faulty_then_resumes(Fault::DiskFull, "No space left on device").await;
    // Reads were never affected by the full disk.
    assert_eq!(f.vault.record_count().unwrap(), 9);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_io_error_stops_intake_and_reads_then_both_resume() {
    let mut f = fixture().await;
    let body = capture(&mut f, 1);
    f.vault.ingest(body).await.unwrap();
    let (_, key) = f.vault.record_blob_keys().unwrap().pop().unwrap();
    f.faults.set(Fault::IoError);
    // A failing device fails reads too, with a storage error, not a wrong answer.
    assert!(f.vault.sealed_blob(&key).await.is_err());
    f.faults.clear();
    assert!(f.vault.sealed_blob(&key).await.is_ok());
    drop(f);

    refuses_while_faulty_then_resumes(Fault::IoError, "Input/output error").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_disk_that_fills_mid_batch_acknowledges_some_refuses_the_rest_and_duplicates_none() {
    let mut f = fixture().await;
    let before = captures(&mut f, 1..3);
    let batch = captures(&mut f, 3..13);
    assert_eq!(accepted(&upload_all(&f.vault, &before).await), 2);

    // Room for four more blobs: four of the ten concurrent uploads are stored, six refused.
    f.faults.set(Fault::FailAfter(4));
    let answers = upload_all(&f.vault, &batch).await;
    let stored: Vec<u64> = (3..13).zip(&answers).filter(|(_, a)| a.is_ok()).map(|(s, _)| s).collect();
    assert_eq!(stored.len(), 4, "{answers:?}");
    for answer in answers.iter().filter(|a| a.is_err()) {
        assert_storage_refusal(answer, "No space left on device");
    }
    f.faults.clear();
    let mut held: Vec<u64> = vec![1, 2];
    held.extend(&stored);
    assert_holds_exactly(&f, &held).await;

    // The lane retries the whole batch: the four acknowledged ones come back as duplicates, the
    // six refused ones are stored now, and nothing is stored twice.
    let answers = upload_all(&f.vault, &batch).await;
    for (sequence, answer) in (3..13).zip(&answers) {
        let receipt = answer.as_ref().unwrap();
        assert_eq!(receipt.duplicate, stored.contains(&sequence), "sequence {sequence}: {receipt:?}");
    }
    assert_holds_exactly(&f, &(1..13).collect::<Vec<_>>()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_storage_slows_intake_but_every_concurrent_upload_is_stored_once() {
    let mut f = fixture().await;
    let bodies = captures(&mut f, 1..13);
    f.faults.set(Fault::Slow(Duration::from_millis(200)));
    // Each capture twice at once: a lane that timed out on slow storage retries while its first
    // request is still being written. Both are acknowledged; one of them stores the record.
    let answers = upload_all(&f.vault, &[bodies.clone(), bodies.clone()].concat()).await;
    assert!(answers.iter().all(|a| a.is_ok()), "{answers:?}");
    assert_eq!(accepted(&answers), bodies.len(), "{answers:?}");
    let answers = upload_all(&f.vault, &bodies).await;
    assert!(answers.iter().all(|a| matches!(a, Ok(r) if r.duplicate)), "{answers:?}");
    // Reads through slow storage are correct too (assert_holds_exactly reads every blob).
    assert_holds_exactly(&f, &(1..13).collect::<Vec<_>>()).await;
    f.faults.clear();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_sync_refuses_its_batch_indexes_and_logs_nothing_then_the_retries_are_stored_once() {
    // Writes succeed but the flush fails (a device that reports lost write-back only at syncfs):
    // nothing in the batch may be acknowledged, indexed or logged, since its bytes may be gone.
    let mut f = fixture().await;
    let before = captures(&mut f, 1..4);
    let during = captures(&mut f, 4..10);
    assert_eq!(accepted(&upload_all(&f.vault, &before).await), 3);

    f.faults.set(Fault::SyncFails);
    let stats_before = f.vault.committer_stats();
    for answer in upload_all(&f.vault, &during).await {
        assert_storage_refusal(&answer, "Input/output error");
    }
    assert!(f.faults.injected() >= 1, "the sync fault was reached");
    // The refused batches are counted, with their captures, as the committer's work.
    let refused = f.vault.committer_stats().since(&stats_before);
    assert_eq!(refused.captures, during.len() as u64, "{refused:?}");
    assert!(refused.batches >= 1 && refused.recording.is_zero(), "{refused:?}");
    assert_eq!(f.vault.record_count().unwrap(), 3, "no row for a capture whose sync failed");
    assert_eq!(ingested_events(&f.vault).len(), 3, "no `ingested` event for a capture whose sync failed");
    // Their blob files may still be there, unsynced and unnamed by any row; the lane's retry
    // compares and keeps or rewrites them, and the retry's own sync makes them durable.
    f.faults.clear();
    let answers = upload_all(&f.vault, &during).await;
    assert_eq!(accepted(&answers), during.len(), "{answers:?}");
    assert_holds_exactly(&f, &(1..10).collect::<Vec<_>>()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn staging_files_of_writes_a_crash_cut_short_are_removed_when_the_vault_opens() {
    // A vault killed inside a blob write leaves its staging file `<key>#<n>`: after the link
    // (the blob is there too) or while writing (only a partial staging file). Neither has a row,
    // and no later write reuses the name; the next open removes them.
    let mut f = fixture().await;
    let bodies = captures(&mut f, 1..4);
    assert_eq!(accepted(&upload_all(&f.vault, &bodies).await), 3);
    let (_, stored_key) = f.vault.record_blob_keys().unwrap().into_iter().next().unwrap();
    let blobs = f.dir.path().join("blobs");
    let linked = blobs.join(format!("{stored_key}#1"));
    std::fs::hard_link(blobs.join(&stored_key), &linked).unwrap();
    let partial =
        blobs.join(format!("captures/{SITE}/2026-05-28/{}/00000000000000000009-0011223344556677.cap#1", f.device_id));
    std::fs::create_dir_all(partial.parent().unwrap()).unwrap();
    std::fs::write(&partial, &bodies[0][..100]).unwrap();

    let Fixture { dir, vault, .. } = f;
    drop(vault);
    let vault = Vault::open(dir.path(), Arc::new(ManualClock::new(NOW)), Box::new(ChaCha20Rng::seed_from_u64(9)), None)
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while linked.exists() || partial.exists() {
        assert!(std::time::Instant::now() < deadline, "staging files still there 10 s after open");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(vault.record_count().unwrap(), 3);
    for (id, key) in vault.record_blob_keys().unwrap() {
        let blob = vault.sealed_blob(&key).await.unwrap();
        assert_eq!(SealedCapture::parse(&blob).unwrap().header().sequence, id.sequence, "blob {key} is whole");
    }
    assert_eq!(blob_files(dir.path()), 3, "only the three stored blobs are left");
}
