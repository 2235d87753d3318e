//! Master key rotation (`FileKeystore::seal_destructions`) over a keystore of 2,000 keys, next to
//! the storage floor measured in the same run: the same per-file work (write 73 bytes to a
//! temporary, fsync, rename; one fsync per folder) with no cryptography and no reads.
//!
//! The folders live under cargo's target tmpdir (a real disk, not tmpfs), so fsync costs what it
//! costs on this machine. Run with `cargo bench -p custodia-store --bench rotation`.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use custodia_store::file_keystore::{FileKeystore, MasterKeySource};
use custodia_store::{KeyName, Keystore};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

const KEYS: usize = 2_000;
const SITES: usize = 5;

/// 2,000 keys spread as the vault makes them: hourly face and daily plate epochs for five sites,
/// plus a few blind-index secrets.
fn names() -> Vec<(KeyName, bool)> {
    (0..KEYS)
        .map(|i| {
            if i % 100 == 99 {
                (KeyName::new(format!("blind/2026-{:02}/s{}", i / 100 % 12 + 1, i)).unwrap(), false)
            } else {
                let class = if i % 3 == 0 { "plate" } else { "face" };
                let text = format!("epoch/site-{}/{class}/{}", i % SITES, 1_700_000_000_000u64 + 3_600_000 * i as u64);
                (KeyName::new(text).unwrap(), true)
            }
        })
        .collect()
}

/// The same number of 73-byte files in the same folders, written as rotation writes them.
fn floor(files: &[PathBuf]) {
    let mut folders = std::collections::BTreeSet::new();
    for path in files {
        let tmp = path.with_extension("key.reseal");
        let mut file = OpenOptions::new().write(true).create(true).truncate(true).open(&tmp).unwrap();
        file.write_all(&[0x5a; 73]).unwrap();
        file.sync_all().unwrap();
        fs::rename(&tmp, path).unwrap();
        folders.insert(path.parent().unwrap().to_path_buf());
    }
    for folder in folders {
        File::open(folder).unwrap().sync_all().unwrap();
    }
}

fn bench(c: &mut Criterion) {
    let base = Path::new(env!("CARGO_TARGET_TMPDIR"));
    fs::create_dir_all(base).unwrap();
    let dir = tempfile::tempdir_in(base).unwrap();
    let mut rng = ChaCha20Rng::seed_from_u64(1);
    let store = FileKeystore::create(
        &dir.path().join("keystore"),
        MasterKeySource::KeyFile(dir.path().join("etc/master.key")),
        &mut rng,
    )
    .unwrap();
    for (name, epoch) in names() {
        if epoch {
            store.generate_epoch_key(&name, &mut rng).unwrap();
        } else {
            store.secret(&name, &mut rng).unwrap();
        }
    }
    let floor_files: Vec<PathBuf> =
        names().iter().map(|(name, _)| dir.path().join("floor").join(format!("{}.key", name.as_str()))).collect();
    for path in &floor_files {
        fs::create_dir_all(path.parent().unwrap()).unwrap();
    }

    let mut group = c.benchmark_group("rotation_2000_keys");
    group.sample_size(10).measurement_time(Duration::from_secs(20)).throughput(Throughput::Elements(KEYS as u64));
    group.bench_function("seal_destructions", |b| b.iter(|| store.seal_destructions(&mut rng).unwrap()));
    group.bench_function("storage_floor", |b| b.iter(|| floor(&floor_files)));
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
