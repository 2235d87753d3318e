//! Audit-log figures for BENCHMARKS.md (harness = false: prints a table).
//!
//! 1. Durable append rate: real `ingested` events (canonical encoding included), appended to
//!    the vault's log file in batches with one `fdatasync` per batch, printed beside the raw
//!    SHA-256 leaf-hashing rate of the same events measured in the same run.
//! 2. Full verification of a 10,000,000-entry log: `verify_tiled_log` over a tile mirror held in
//!    memory (every entry bundle parsed, every leaf and node recomputed, every tile compared,
//!    root checked), and the same through the vault folder's log file (positioned reads).
//! 3. Inclusion-proof generation over the 10M-entry log file, random indexes.
//!
//! `cargo bench -p custodia-vault --bench audit_log` (CUSTODIA_BENCH_ENTRIES=1000000 for a
//! shorter run).

use std::collections::HashMap;
use std::hint::black_box;
use std::time::Instant;

use custodia_tlog::{
    Checkpoint, EntryTile, ReadError, Tile, TileSource, format_entry_bundle, leaf_hash, new_tiles, prove_record,
    read_tile_data, verify_tiled_log,
};
use custodia_vault::audit::LogFile;
use custodia_vault::audit::event::{Action, Event, Text};
use rand::{Rng, SeedableRng};

fn event(i: u64) -> Vec<u8> {
    let t = |s: String| Text::new(s).expect("valid text");
    let device = format!("{:032x}", 0x4583_8d73_5283_0457_d119_3355_29b2_87d2u128 ^ u128::from(i % 64));
    Event {
        time_ms: 1_780_000_000_000 + i as i64,
        principal: t(format!("device:{device}")),
        role: t("lane".into()),
        purpose: None,
        case: None,
        action: Action::Ingested {
            record: t(format!("{device}-{i}")),
            digest: *leaf_hash(&i.to_be_bytes()).as_bytes(),
            site: t("anzalduas".into()),
            lane: t(format!("lane-{}", i % 4)),
            capture_time_ms: 1_780_000_000_000 + i as i64 - 5000,
            device: t(device.clone()),
            epochs: vec![t(format!("{:032x}", i / 3600)), t(format!("{:032x}", i / 86400 + 7))],
        },
    }
    .to_bytes()
}

struct Mirror(HashMap<String, Vec<u8>>);

impl TileSource for Mirror {
    fn read_tile(&self, tile: &Tile) -> Result<Vec<u8>, ReadError> {
        self.0.get(&tile.path()).cloned().ok_or(ReadError::Backend(tile.path()))
    }
    fn read_entry_bundle(&self, b: &EntryTile) -> Result<Vec<u8>, ReadError> {
        self.0.get(&b.path()).cloned().ok_or(ReadError::Backend(b.path()))
    }
}

struct FileSource<'a>(&'a LogFile);

impl TileSource for FileSource<'_> {
    fn read_tile(&self, tile: &Tile) -> Result<Vec<u8>, ReadError> {
        read_tile_data(tile, self.0)
    }
    fn read_entry_bundle(&self, b: &EntryTile) -> Result<Vec<u8>, ReadError> {
        self.0
            .tile(custodia_tlog::TilePath::Entries(*b))
            .map_err(|e| ReadError::Backend(e.to_string()))?
            .ok_or(ReadError::Backend(b.path()))
    }
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return; // `cargo bench --no-run` style probes
    }
    let total: u64 = std::env::var("CUSTODIA_BENCH_ENTRIES").ok().and_then(|s| s.parse().ok()).unwrap_or(10_000_000);
    let dir = tempfile::tempdir_in(
        std::env::var("CUSTODIA_BENCH_DIR").unwrap_or_else(|_| env!("CARGO_TARGET_TMPDIR").into()),
    )
    .expect("temp dir");
    let sample: Vec<Vec<u8>> = (0..100_000).map(event).collect();
    let avg = sample.iter().map(Vec::len).sum::<usize>() / sample.len();
    println!("audit log benchmark: {total} entries, ingested events of {avg} bytes on average");

    // Raw SHA-256 leaf hashing of the same events, same run.
    let start = Instant::now();
    let mut rounds = 0;
    while start.elapsed().as_secs_f64() < 1.0 {
        for e in &sample {
            black_box(leaf_hash(black_box(e)));
        }
        rounds += 1;
    }
    let hash_rate = (rounds * sample.len()) as f64 / start.elapsed().as_secs_f64();
    println!("{:<58} {:>12.0} events/s", "raw SHA-256 leaf hashing (no I/O, no tree)", hash_rate);

    // Durable appends with batching: encode + append + one fdatasync per batch.
    for batch in [256u64, 1024, 4096] {
        let path = dir.path().join(format!("append-{batch}.ctl"));
        let mut log = LogFile::open(&path).expect("open");
        let n = 400_000u64;
        let start = Instant::now();
        let mut i = 0;
        while i < n {
            let events: Vec<Vec<u8>> = (i..i + batch).map(event).collect();
            log.append(&events).expect("append");
            i += batch;
        }
        let rate = n as f64 / start.elapsed().as_secs_f64();
        println!(
            "{:<58} {:>12.0} events/s  ({:.2} of hashing; {:.0} fsyncs/s)",
            format!("durable append, {batch} events per fdatasync"),
            rate,
            rate / hash_rate,
            rate / batch as f64
        );
        drop(log);
        std::fs::remove_file(&path).expect("rm");
    }

    // A log of `total` entries in the vault's file format.
    let path = dir.path().join("big.ctl");
    let start = Instant::now();
    {
        let mut log = LogFile::open(&path).expect("open");
        let mut i = 0;
        while i < total {
            let to = (i + 8192).min(total);
            let events: Vec<Vec<u8>> = (i..to).map(event).collect();
            log.append(&events).expect("append");
            i = to;
        }
    }
    let build = start.elapsed().as_secs_f64();
    let start = Instant::now();
    let log = LogFile::open_read_only(&path).expect("reopen");
    println!(
        "{:<58} {:>12.1} s  ({:.0} events/s; reopen with full frame check {:.1} s, {:.1} GB)",
        format!("built a {total}-entry log file, 8192 per fdatasync"),
        build,
        total as f64 / build,
        start.elapsed().as_secs_f64(),
        std::fs::metadata(&path).expect("stat").len() as f64 / 1e9
    );
    let checkpoint = Checkpoint::new("custodia/bench", log.size(), log.root()).expect("checkpoint");

    // Full verification from a tile mirror in memory.
    let mut mirror = HashMap::new();
    for t in new_tiles(0, total) {
        mirror.insert(t.path(), read_tile_data(&t, &log).expect("tile"));
    }
    for b in EntryTile::all_for(total) {
        let from = b.n * 256;
        let entries: Vec<Vec<u8>> = (from..from + u64::from(b.width)).map(event).collect();
        mirror.insert(b.path(), format_entry_bundle(&entries).expect("bundle"));
    }
    let mirror = Mirror(mirror);
    let start = Instant::now();
    verify_tiled_log(&checkpoint, &mirror, |_, _| {}).expect("verifies");
    let t = start.elapsed().as_secs_f64();
    println!(
        "{:<58} {:>12.1} s  ({:.0} entries/s; goal <= 20 s for 10M)",
        format!("full verification of {total} entries, tile mirror"),
        t,
        total as f64 / t
    );
    drop(mirror);

    let start = Instant::now();
    verify_tiled_log(&checkpoint, &FileSource(&log), |_, _| {}).expect("verifies");
    let t = start.elapsed().as_secs_f64();
    println!(
        "{:<58} {:>12.1} s  ({:.0} entries/s)",
        format!("full verification of {total} entries, vault log file"),
        t,
        total as f64 / t
    );

    // Inclusion proofs over the log file, random indexes.
    let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(9);
    let n = 200_000;
    let start = Instant::now();
    for _ in 0..n {
        let i = rng.gen_range(0..total);
        black_box(prove_record(total, i, &log).expect("proof"));
    }
    let rate = n as f64 / start.elapsed().as_secs_f64();
    println!(
        "{:<58} {:>12.0} proofs/s  (goal >= 100,000)",
        format!("inclusion proofs over the {total}-entry log file"),
        rate
    );
}
