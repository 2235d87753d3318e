//! Range queries at radius 31 against 1,000,000 and 10,000,000 random stored hashes, the
//! brute-force scan with and without CPU-feature dispatch, and a batch join of 10,000 images
//! × 8 dihedral variants. Stored hashes come from a fixed-seed xorshift so runs compare.

use std::hint::black_box;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use custodia_pdq::PdqHash;
use custodia_pdq::index::{BruteForce, MultiIndex};

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn hash(&mut self) -> PdqHash {
        PdqHash::from_words([self.next(), self.next(), self.next(), self.next()])
    }
}

fn stored(n: usize, seed: u64) -> Vec<(u64, PdqHash)> {
    let mut r = Rng(seed);
    (0..n as u64).map(|i| (i, r.hash())).collect()
}

/// `q` with `d` low bits flipped in a spread of slots (a near neighbour at distance d).
fn near(q: &PdqHash, d: usize, r: &mut Rng) -> PdqHash {
    let mut h = *q;
    let mut flipped = std::collections::BTreeSet::new();
    while flipped.len() < d {
        flipped.insert((r.next() % 256) as usize);
    }
    for k in flipped {
        h = h.flip_bit(k);
    }
    h
}

fn bench_queries(c: &mut Criterion) {
    for n in [1_000_000usize, 10_000_000] {
        let entries = stored(n, 0x5EED + n as u64);
        let index = MultiIndex::from_entries(entries.iter().copied());
        let mut r = Rng(42);
        // Half the queries have a planted neighbour at distance 20, half match nothing.
        let queries: Vec<PdqHash> = (0..256)
            .map(|i| if i % 2 == 0 { near(&entries[(r.next() % n as u64) as usize].1, 20, &mut r) } else { r.hash() })
            .collect();
        let mut g = c.benchmark_group(format!("query_r31_{n}"));
        g.throughput(Throughput::Elements(1));
        let mut i = 0;
        g.bench_function("multi_index", |b| {
            b.iter(|| {
                i = (i + 1) % queries.len();
                index.query(black_box(&queries[i]), 31)
            })
        });
        if n == 1_000_000 {
            let mut bf = BruteForce::new();
            for (id, h) in &entries {
                bf.insert(*id, h);
            }
            g.sample_size(20);
            g.bench_function("brute_force_dispatch", |b| b.iter(|| bf.query(black_box(&queries[1]), 31)));
            g.bench_function("brute_force_portable", |b| b.iter(|| bf.query_portable(black_box(&queries[1]), 31)));
        }
        g.finish();
    }
}

fn bench_join(c: &mut Criterion) {
    let n = 1_000_000usize;
    let entries = stored(n, 7);
    let index = MultiIndex::from_entries(entries.iter().copied());
    let mut r = Rng(99);
    // 10,000 dump images × 8 variants; 1 in 10 images is a near copy of a stored record.
    let queries: Vec<PdqHash> = (0..10_000)
        .flat_map(|i| {
            let base =
                if i % 10 == 0 { near(&entries[(r.next() % n as u64) as usize].1, 12, &mut r) } else { r.hash() };
            let mut rr = Rng(r.next());
            (0..8).map(move |v| if v == 0 { base } else { rr.hash() }).collect::<Vec<_>>()
        })
        .collect();
    let mut g = c.benchmark_group("batch_join_10k_x8_vs_1M");
    g.sample_size(10);
    g.throughput(Throughput::Elements(queries.len() as u64));
    g.bench_function("batch_join", |b| {
        b.iter_batched(|| (), |_| index.batch_join(black_box(&queries), 31), BatchSize::PerIteration)
    });
    g.bench_function("per_query", |b| {
        b.iter(|| queries.iter().map(|q| index.query(black_box(q), 31).len()).sum::<usize>())
    });
    g.finish();
}

criterion_group!(benches, bench_queries, bench_join);
criterion_main!(benches);
