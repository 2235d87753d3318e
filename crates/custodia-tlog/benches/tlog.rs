//! Throughput of the audit log's kernels. Figures are for the machine the bench runs on.
//! Goals: at least 100,000 durable appends/s (the hashing must be far faster), at least
//! 100,000 inclusion proofs/s over 10 million entries, and a full recompute of 10 million
//! entries within 20 s.

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use custodia_tlog::{Appender, Checkpoint, MemoryHashStore, leaf_hash, prove_record, verify_entries};
use std::hint::black_box;
use std::sync::OnceLock;

const ENTRY_LEN: usize = 200;
const BIG: u64 = 10_000_000;

fn entry(i: u64) -> [u8; ENTRY_LEN] {
    let mut e = [0x5au8; ENTRY_LEN];
    e[..8].copy_from_slice(&i.to_be_bytes());
    e
}

fn big_store() -> &'static MemoryHashStore {
    static STORE: OnceLock<MemoryHashStore> = OnceLock::new();
    STORE.get_or_init(|| {
        let mut s = MemoryHashStore::with_capacity(BIG);
        for i in 0..BIG {
            s.append(&entry(i));
        }
        s
    })
}

fn hashing(c: &mut Criterion) {
    let mut g = c.benchmark_group("leaf_hash");
    let entries: Vec<_> = (0..1000).map(entry).collect();
    g.throughput(Throughput::Elements(entries.len() as u64));
    g.bench_function("sha256_200B_x1000", |b| {
        b.iter(|| {
            for e in &entries {
                black_box(leaf_hash(black_box(e)));
            }
        })
    });
    g.finish();
}

fn append(c: &mut Criterion) {
    let mut g = c.benchmark_group("append");
    let entries: Vec<_> = (0..10_000).map(entry).collect();
    g.throughput(Throughput::Elements(entries.len() as u64));
    g.bench_function("appender_200B_x10000", |b| {
        b.iter_batched(
            || (Appender::new(), Vec::with_capacity(2 * entries.len())),
            |(mut app, mut out)| {
                app.append_batch(&entries, &mut out);
                black_box((app.root(), out.len()))
            },
            BatchSize::SmallInput,
        )
    });
    // The same work in a second RFC 6962 implementation (ct-merkle keeps leaves and all nodes).
    g.bench_function("ct_merkle_push_200B_x10000", |b| {
        b.iter_batched(
            ct_merkle::mem_backed_tree::MemoryBackedTree::<sha2::Sha256, [u8; ENTRY_LEN]>::new,
            |mut t| {
                for e in &entries {
                    t.push(*e);
                }
                black_box(t.root())
            },
            BatchSize::SmallInput,
        )
    });
    g.finish();
}

fn proofs(c: &mut Criterion) {
    let store = big_store();
    let t = store.tree_size();
    let mut g = c.benchmark_group("prove_record_10M");
    g.throughput(Throughput::Elements(1000));
    g.bench_function("x1000", |b| {
        let mut k = 0x9e37_79b9_7f4a_7c15u64;
        b.iter(|| {
            for _ in 0..1000 {
                k = k.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                black_box(prove_record(t, k % t, store).expect("in range"));
            }
        })
    });
    g.finish();
}

fn full_verify(c: &mut Criterion) {
    let root = big_store().root();
    let cp = Checkpoint::new("bench.example/log", BIG, root).expect("valid");
    let mut g = c.benchmark_group("verify_entries_10M");
    g.sample_size(10);
    g.throughput(Throughput::Elements(BIG));
    g.bench_function("recompute_root", |b| {
        b.iter(|| verify_entries((0..BIG).map(entry), &cp, |_, _| {}).expect("root matches"))
    });
    g.finish();
}

criterion_group!(benches, hashing, append, proofs, full_verify);
criterion_main!(benches);
