//! Shredding one epoch of N records (default 1,000,000), through the vault's own retention run,
//! printed beside the disk's own delete rate measured in the same run (harness = false).
//!
//! Set-up: a real vault folder (file keystore with its master key file outside the folder, the
//! audit log, the SQLite index, the local blob store). N records, each with one plate group in
//! the same daily epoch and one blind-index row, are inserted straight through
//! `Index::insert_records` in batches of 50,000, and N small blobs are written through the
//! vault's `BlobStore` under the vault's own key layout (captures/<site>/<date>/<device>/...).
//! The same number of same-sized plain files, in the same folder shape, is written to a sibling
//! folder on the same file system. Both are synced before anything is timed.
//!
//! Figures, one line each:
//! - key destruction: the run's key phase (count the epoch's records, log `shredded` durably,
//!   destroy the key, mark the epoch, `seal_destructions` = master key rotation); goal <= 1 s;
//! - index clean-up: deleting the epoch's group, blind-index and record rows (queued blobs);
//! - blob deletion rate through the retention path (purge queue, `BlobStore::delete`, 64 in
//!   flight, queue entries removed per 16,384);
//! - the disk's own unlink rate for the plain files, single-threaded (a tenth of them) and with
//!   32 threads (the rest), and the ratio of the vault's rate to the better of the two.
//!
//! `cargo bench -p custodia-vault --bench shred` (CUSTODIA_SHRED_RECORDS=20000 for the quick
//! run; CUSTODIA_BENCH_DIR=<folder> to measure another disk than the temp folder's).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use custodia_seal::{DeviceId, RetentionClass};
use custodia_store::blobs::BlobStore;
use custodia_store::index::{BlindPlate, Index, NewRecord, RecordGroup, RecordId};
use custodia_vault::audit::Actor;
use custodia_vault::civil::date_label;
use custodia_vault::clock::ManualClock;
use custodia_vault::config::DAY_MS;
use custodia_vault::retention::RetentionRules;
use custodia_vault::{MasterKey, Vault, VaultConfig};
use rand_chacha::ChaCha20Rng;
use rand_core::{RngCore, SeedableRng};

const NOW: i64 = 1_780_000_000_000;
const SITE: &str = "anzalduas";
/// Bytes per blob: a small sealed capture's order of magnitude would be KB; the delete cost of a
/// file does not depend on its size below one block, so the smallest realistic block is used.
const BLOB_BYTES: usize = 512;
const DEVICES: u64 = 4;
const INSERT_BATCH: usize = 50_000;

fn blob_key(device: &DeviceId, sequence: u64, capture_ms: i64) -> String {
    format!("captures/{SITE}/{}/{device}/{sequence:020}-{:016x}.cap", date_label(capture_ms), sequence)
}

fn main() {
    let n: u64 = std::env::var("CUSTODIA_SHRED_RECORDS").ok().and_then(|v| v.parse().ok()).unwrap_or(1_000_000);
    let base = std::env::var_os("CUSTODIA_BENCH_DIR").map(PathBuf::from).unwrap_or_else(std::env::temp_dir);
    let root = tempfile::tempdir_in(&base).expect("bench folder");
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    runtime.block_on(run(n, root.path()));
}

async fn run(n: u64, root: &Path) {
    println!("shred benchmark: one epoch of {n} records, {BLOB_BYTES}-byte blobs, in {}", root.display());
    let dir = root.join("vault");
    let mut rng = ChaCha20Rng::seed_from_u64(1);
    let config = VaultConfig { sites: vec![SITE.into()], ..VaultConfig::default() };
    Vault::init(&dir, &config, MasterKey::KeyFileAt(root.join("master.key")), &mut rng).expect("init");
    let clock = ManualClock::new(NOW);
    let vault =
        Vault::open(&dir, Arc::new(clock.clone()), Box::new(ChaCha20Rng::seed_from_u64(2)), None).expect("open");
    vault.ensure_epochs(NOW, NOW + 1).expect("epochs");

    // Rows, straight into the index.
    let index = Index::open(&dir.join("index.sqlite3")).expect("index");
    let day = NOW.div_euclid(DAY_MS) * DAY_MS;
    let plate = index.epoch_at(SITE, RetentionClass::Plate, day).expect("epoch").expect("plate epoch");
    let devices: Vec<DeviceId> = (0..DEVICES)
        .map(|_| {
            let mut id = [0u8; 16];
            rng.fill_bytes(&mut id);
            DeviceId(id)
        })
        .collect();
    let record = |i: u64| {
        let device = devices[(i % DEVICES) as usize];
        let sequence = i / DEVICES;
        let capture_ms = NOW - 1000 - (i as i64 % 60_000);
        let mut blind = [0u8; 16];
        blind[..8].copy_from_slice(&i.to_be_bytes());
        NewRecord {
            id: RecordId { device, sequence },
            content_digest: [7; 32],
            site: SITE.into(),
            lane: "lane-1".into(),
            capture_time_ms: capture_ms,
            blob_key: blob_key(&device, sequence, capture_ms),
            size: BLOB_BYTES as u64,
            ingested_at_ms: NOW,
            groups: vec![RecordGroup { index: 0, class: RetentionClass::Plate, epoch: plate.id }],
            plates: vec![BlindPlate { month: "2026-05".into(), blind, rank: 0 }],
            image_roles: vec!["plate-crop".into()],
            quarantine_reason: None,
            pdq: vec![],
        }
    };
    let started = Instant::now();
    let mut i = 0;
    while i < n {
        let batch: Vec<NewRecord> = (i..(i + INSERT_BATCH as u64).min(n)).map(record).collect();
        index.insert_records(&batch).expect("insert");
        i += batch.len() as u64;
    }
    println!("{:<58} {:>12.1} s", "set-up: index rows inserted", started.elapsed().as_secs_f64());

    // Blobs through the vault's blob store, and plain files of the same size and shape beside.
    let started = Instant::now();
    let blobs = BlobStore::local(&dir.join("blobs")).expect("blob store");
    let body = Bytes::from(vec![0xA5u8; BLOB_BYTES]);
    let keys: Vec<String> = (0..n).map(|i| record(i).blob_key).collect();
    for chunk in keys.chunks(4096) {
        let puts = chunk.iter().map(|key| {
            let (blobs, body, key) = (blobs.clone(), body.clone(), key.clone());
            async move { blobs.put_new(&key, body).await }
        });
        futures::future::try_join_all(puts).await.expect("put");
    }
    blobs.sync().await.expect("sync");
    let plain = root.join("plain");
    let plain_paths: Vec<PathBuf> = keys.iter().map(|k| plain.join(k)).collect();
    for p in &plain_paths {
        let parent = p.parent().expect("has a folder");
        if !parent.exists() {
            std::fs::create_dir_all(parent).expect("plain folder");
        }
        std::fs::write(p, &body).expect("plain file");
    }
    sync_filesystem(root);
    println!("{:<58} {:>12.1} s", "set-up: blobs and plain files written and synced", started.elapsed().as_secs_f64());

    // The retention run, as `custodia retention run` makes it.
    clock.set(plate.not_after_ms + RetentionRules::default().plate_ms);
    let report = vault.run_retention(&RetentionRules::default(), &Actor::system()).await.expect("retention");
    assert_eq!(report.records_deleted, n, "every record deleted");
    assert_eq!(report.blobs_deleted, n, "every blob deleted");
    assert!(report.shredded.iter().any(|s| s.epoch == plate.id.to_string() && s.records == n));
    let big = report.shredded.iter().find(|s| s.epoch == plate.id.to_string()).expect("plate epoch shredded");
    println!(
        "{:<58} {:>12.3} s   (goal <= 1 s: count {:.3} s + log, destroy, mark {:.3} s)",
        "key destruction of the N-record epoch",
        big.count_seconds + big.destroy_seconds,
        big.count_seconds,
        big.destroy_seconds
    );
    println!(
        "{:<58} {:>12.3} s   ({} epochs, then one seal)",
        "key phase of the whole run",
        report.key_seconds,
        report.shredded.len()
    );
    println!(
        "{:<58} {:>12.3} s   (every surviving key re-sealed under a fresh master)",
        "  of which seal_destructions (master key rotation)", report.seal_seconds
    );
    for e in &report.shredded {
        println!(
            "{:<58} {:>12.3} s   (count {:.3} s + log, destroy, mark {:.3} s)",
            format!("  {} epoch, {} records", e.class, e.records),
            e.count_seconds + e.destroy_seconds,
            e.count_seconds,
            e.destroy_seconds
        );
    }
    println!(
        "{:<58} {:>12.0} records/s ({:.1} s)",
        "index clean-up (group, blind-index, record rows)",
        n as f64 / report.index_seconds,
        report.index_seconds
    );
    let vault_rate = n as f64 / report.blob_seconds;
    println!("{:<58} {:>12.0} blobs/s ({:.1} s)", "blob deletion through retention", vault_rate, report.blob_seconds);

    // The disk's own delete rate on the same file system, same run.
    // One thread on a tenth of the files (a single-threaded unlink loop is slow on journalled
    // file systems; a tenth is plenty to measure it), 32 threads on the rest.
    let tenth = (plain_paths.len() / 10).max(1);
    let started = Instant::now();
    for p in &plain_paths[..tenth] {
        std::fs::remove_file(p).expect("unlink");
    }
    let single = tenth as f64 / started.elapsed().as_secs_f64();
    let rest = &plain_paths[tenth..];
    let started = Instant::now();
    std::thread::scope(|s| {
        for chunk in rest.chunks(rest.len().div_ceil(32).max(1)) {
            s.spawn(move || {
                for p in chunk {
                    std::fs::remove_file(p).expect("unlink");
                }
            });
        }
    });
    let parallel = rest.len() as f64 / started.elapsed().as_secs_f64();
    println!("{:<58} {:>12.0} files/s", "disk's own unlink rate, 1 thread (a tenth of the plain files)", single);
    println!("{:<58} {:>12.0} files/s", "disk's own unlink rate, 32 threads (the rest)", parallel);
    println!(
        "{:<58} {:>12.2}",
        "ratio: retention blob deletion / best plain unlink",
        vault_rate / single.max(parallel)
    );
}

/// Flushes the file system the bench writes to (`sync -f`, the syncfs(2) that `BlobStore::sync`
/// makes for the blobs), so neither side's deletes race its own write-back.
fn sync_filesystem(root: &Path) {
    let status = std::process::Command::new("sync").arg("-f").arg(root).status().expect("run sync");
    assert!(status.success(), "sync -f failed");
}
