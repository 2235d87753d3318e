//! Exact Hamming range search over PDQ hashes.
//!
//! - [`BruteForce`]: a linear scan with a popcount over four `u64`s per stored hash. It is
//!   the test oracle, and fast enough for small sets.
//! - [`MultiIndex`]: multi-index hashing (Norouzi et al.) with 16 slots of 16 bits. If two
//!   hashes are within distance r ≤ 31 then, by pigeonhole over 16 slots, at least one slot
//!   differs by at most 1 bit (16 slots × 2 bits = 32 > 31). So a query probes, in each
//!   slot, the exact 16-bit value and its 16 one-bit neighbours (17 × 16 = 272 buckets),
//!   then verifies candidates on all 256 bits. Results are exact, not approximate. A radius
//!   over [`MultiIndex::MAX_MIH_RADIUS`] falls back to a full scan (still exact).
//!
//! Each slot's table is a compressed sparse row layout (65,537 offsets plus one `u32` row
//! number per stored hash), not a `HashMap<u16, Vec<_>>`: 10,000,000 hashes take about
//! 32 B (hash) + 8 B (id) + 16 × 4 B (postings) ≈ 104 B each, ~1.04 GB, with no per-bucket
//! allocation. Inserts go to a short unsorted tail (scanned at query time) that is folded
//! into the tables when it grows past [`MultiIndex::TAIL_MAX`].
//!
//! Results are `(id, distance)` sorted by distance, then id.

use crate::PdqHash;

/// Hashes as four `u64` words, the unit every distance here is computed on.
type Words = [u64; 4];

#[inline(always)]
fn dist(a: &Words, b: &Words) -> u32 {
    (a[0] ^ b[0]).count_ones() + (a[1] ^ b[1]).count_ones() + (a[2] ^ b[2]).count_ones() + (a[3] ^ b[3]).count_ones()
}

/// The 16-bit slot `s` of a hash in word form (slot 0 = the first four hex digits).
#[inline(always)]
fn slot_of(w: &Words, s: usize) -> u16 {
    (w[s / 4] >> (48 - 16 * (s % 4))) as u16
}

/// True if some slot before `s` is within one bit: then that slot reports the pair, and
/// slot `s` must not report it again.
#[inline(always)]
fn found_earlier(a: &Words, b: &Words, s: usize) -> bool {
    (0..s).any(|t| (slot_of(a, t) ^ slot_of(b, t)).count_ones() <= 1)
}

fn sort_results(v: &mut [(u64, u32)]) {
    v.sort_unstable_by_key(|&(id, d)| (d, id));
}

mod scan {
    //! The linear-scan kernel, with runtime CPU-feature dispatch.
    //!
    //! The crate is built for baseline x86-64, where `count_ones` is a dozen shifts and
    //! masks. With the `popcnt` instruction (and AVX2, which lets LLVM vectorise the
    //! popcounts with a nibble lookup) the scan is several times faster (see
    //! `benches/index.rs`, `brute_force_*`). Using it needs `unsafe`: calling a
    //! `#[target_feature]` function is only sound once the feature is known present.
    #![allow(unsafe_code)]

    use super::{Words, dist};

    fn generic(stored: &[Words], q: &Words, radius: u32, base: usize, out: &mut Vec<(usize, u32)>) {
        for (i, w) in stored.iter().enumerate() {
            let d = dist(w, q);
            if d <= radius {
                out.push((base + i, d));
            }
        }
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "popcnt,avx2")]
    fn avx2(stored: &[Words], q: &Words, radius: u32, base: usize, out: &mut Vec<(usize, u32)>) {
        // Distances in blocks of 8 so the popcount loop has no branch and vectorises.
        let mut chunks = stored.chunks_exact(8);
        let mut b = base;
        for c in &mut chunks {
            let mut d = [0u32; 8];
            for (dd, w) in d.iter_mut().zip(c) {
                *dd = dist(w, q);
            }
            for (k, &dd) in d.iter().enumerate() {
                if dd <= radius {
                    out.push((b + k, dd));
                }
            }
            b += 8;
        }
        generic(chunks.remainder(), q, radius, b, out);
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "popcnt")]
    fn popcnt(stored: &[Words], q: &Words, radius: u32, base: usize, out: &mut Vec<(usize, u32)>) {
        generic(stored, q, radius, base, out)
    }

    /// Append `(row, distance)` for every `stored[row]` within `radius` of `q`.
    pub(super) fn range(stored: &[Words], q: &Words, radius: u32, out: &mut Vec<(usize, u32)>) {
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("popcnt") {
                // SAFETY: both features the function is compiled for were detected above.
                return unsafe { avx2(stored, q, radius, 0, out) };
            }
            if std::arch::is_x86_feature_detected!("popcnt") {
                // SAFETY: the `popcnt` feature was detected above.
                return unsafe { popcnt(stored, q, radius, 0, out) };
            }
        }
        generic(stored, q, radius, 0, out)
    }

    /// The portable kernel alone, for benchmarks and tests of the dispatch.
    pub(super) fn range_portable(stored: &[Words], q: &Words, radius: u32, out: &mut Vec<(usize, u32)>) {
        generic(stored, q, radius, 0, out)
    }
}

/// Exact linear scan: the oracle the other index is tested against.
#[derive(Clone, Debug, Default)]
pub struct BruteForce {
    ids: Vec<u64>,
    words: Vec<Words>,
}

impl BruteForce {
    /// An empty set.
    pub fn new() -> BruteForce {
        BruteForce::default()
    }

    /// Add one hash under `id` (ids need not be unique; each insert is its own entry).
    pub fn insert(&mut self, id: u64, hash: &PdqHash) {
        self.ids.push(id);
        self.words.push(hash.words());
    }

    /// Number of stored hashes.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// True if nothing is stored.
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// Every stored `(id, distance)` with distance ≤ `radius`, by distance then id.
    pub fn query(&self, hash: &PdqHash, radius: u32) -> Vec<(u64, u32)> {
        let mut rows = Vec::new();
        scan::range(&self.words, &hash.words(), radius, &mut rows);
        let mut out: Vec<(u64, u32)> = rows.into_iter().map(|(r, d)| (self.ids[r], d)).collect();
        sort_results(&mut out);
        out
    }

    /// [`BruteForce::query`] with the portable popcount only (no CPU-feature dispatch), so
    /// the benchmark can show what the dispatch buys.
    pub fn query_portable(&self, hash: &PdqHash, radius: u32) -> Vec<(u64, u32)> {
        let mut rows = Vec::new();
        scan::range_portable(&self.words, &hash.words(), radius, &mut rows);
        let mut out: Vec<(u64, u32)> = rows.into_iter().map(|(r, d)| (self.ids[r], d)).collect();
        sort_results(&mut out);
        out
    }
}

/// One slot's table: rows of stored hashes grouped by the slot's 16-bit value.
#[derive(Clone, Debug)]
struct SlotTable {
    /// `offsets[v]..offsets[v + 1]` indexes `rows` for slot value `v`.
    offsets: Vec<u32>,
    rows: Vec<u32>,
}

impl SlotTable {
    fn build(words: &[Words], s: usize) -> SlotTable {
        let mut offsets = vec![0u32; 65_537];
        for w in words {
            offsets[usize::from(slot_of(w, s)) + 1] += 1;
        }
        for v in 0..65_536 {
            offsets[v + 1] += offsets[v];
        }
        let mut next = offsets.clone();
        let mut rows = vec![0u32; words.len()];
        for (r, w) in words.iter().enumerate() {
            let v = usize::from(slot_of(w, s));
            // Row numbers fit u32: MultiIndex::insert refuses more than u32::MAX rows.
            rows[next[v] as usize] = r as u32;
            next[v] += 1;
        }
        SlotTable { offsets, rows }
    }

    #[inline]
    fn bucket(&self, v: u16) -> &[u32] {
        let v = usize::from(v);
        &self.rows[self.offsets[v] as usize..self.offsets[v + 1] as usize]
    }
}

/// The 17 probe values for one slot value: itself and its 16 one-bit neighbours.
#[inline]
fn probes(v: u16) -> impl Iterator<Item = u16> {
    std::iter::once(v).chain((0..16).map(move |b| v ^ (1 << b)))
}

/// Multi-index hashing over 16 slots of 16 bits; exact for every radius.
#[derive(Clone, Debug, Default)]
pub struct MultiIndex {
    ids: Vec<u64>,
    words: Vec<Words>,
    /// Rows `0..built` are in `tables`; rows `built..` are the unsorted tail.
    built: usize,
    tables: Vec<SlotTable>,
}

impl MultiIndex {
    /// Largest radius answered through the slot tables; larger radii scan everything.
    pub const MAX_MIH_RADIUS: u32 = 31;

    /// Inserts kept in the unsorted tail before the tables are rebuilt. Scanning a tail this
    /// long costs ~0.1 ms per query; each rebuild is O(stored), so bulk loads (a vault
    /// opening its index) should use [`MultiIndex::from_entries`], not 10 M single inserts.
    pub const TAIL_MAX: usize = 1 << 16;

    /// Most rows one index holds (row numbers are stored as `u32`).
    pub const MAX_ROWS: usize = u32::MAX as usize;

    /// An empty index.
    pub fn new() -> MultiIndex {
        MultiIndex::default()
    }

    /// Build from many entries at once (one table build, no tail).
    pub fn from_entries(entries: impl IntoIterator<Item = (u64, PdqHash)>) -> MultiIndex {
        let mut m = MultiIndex::new();
        for (id, h) in entries {
            if m.ids.len() >= Self::MAX_ROWS {
                break;
            }
            m.ids.push(id);
            m.words.push(h.words());
        }
        m.rebuild();
        m
    }

    /// Number of stored hashes.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// True if nothing is stored.
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// Add one hash under `id`. Returns `false` (and stores nothing) once the index holds
    /// [`MultiIndex::MAX_ROWS`] hashes.
    pub fn insert(&mut self, id: u64, hash: &PdqHash) -> bool {
        if self.ids.len() >= Self::MAX_ROWS {
            return false;
        }
        self.ids.push(id);
        self.words.push(hash.words());
        if self.ids.len() - self.built > Self::TAIL_MAX {
            self.rebuild();
        }
        true
    }

    /// Fold the tail into the slot tables now (queries are correct either way).
    pub fn rebuild(&mut self) {
        self.tables = (0..16).map(|s| SlotTable::build(&self.words, s)).collect();
        self.built = self.words.len();
    }

    /// Every stored `(id, distance)` within `radius` of `hash`, by distance then id.
    pub fn query(&self, hash: &PdqHash, radius: u32) -> Vec<(u64, u32)> {
        let q = hash.words();
        let mut out = Vec::new();
        if radius > Self::MAX_MIH_RADIUS {
            let mut rows = Vec::new();
            scan::range(&self.words, &q, radius, &mut rows);
            out.extend(rows.into_iter().map(|(r, d)| (self.ids[r], d)));
        } else {
            self.probe_tables(&q, radius, |r, d| out.push((self.ids[r], d)));
            self.scan_tail(&q, radius, |r, d| out.push((self.ids[r], d)));
        }
        sort_results(&mut out);
        out
    }

    fn probe_tables(&self, q: &Words, radius: u32, mut hit: impl FnMut(usize, u32)) {
        if self.built == 0 {
            return;
        }
        for (s, table) in self.tables.iter().enumerate() {
            for v in probes(slot_of(q, s)) {
                for &r in table.bucket(v) {
                    let w = &self.words[r as usize];
                    let d = dist(w, q);
                    if d <= radius && !found_earlier(w, q, s) {
                        hit(r as usize, d);
                    }
                }
            }
        }
    }

    fn scan_tail(&self, q: &Words, radius: u32, mut hit: impl FnMut(usize, u32)) {
        let mut rows = Vec::new();
        scan::range(&self.words[self.built..], q, radius, &mut rows);
        for (r, d) in rows {
            hit(self.built + r, d);
        }
    }

    /// Range-join a batch of query hashes (a whole dump, typically eight dihedral variants
    /// per image) against the index. Returns `(query index, id, distance)` sorted by query
    /// index, distance, id — the same set as calling [`MultiIndex::query`] per query.
    ///
    /// Runs on every core the machine offers ([`MultiIndex::batch_join_threads`] to choose).
    pub fn batch_join(&self, queries: &[PdqHash], radius: u32) -> Vec<(usize, u64, u32)> {
        let threads = std::thread::available_parallelism().map_or(1, usize::from);
        self.batch_join_threads(queries, radius, threads)
    }

    /// [`MultiIndex::batch_join`] on at most `threads` threads (0 is taken as 1).
    ///
    /// Work is shared by slot value. Per slot, the queries are grouped by the 17 values they
    /// probe (a counting sort, linear in the batch); then each stored bucket is compared
    /// once against every query that probes it, the group laid out in columns so the
    /// distance kernel ([`group_kernel`]) computes eight distances per step with the widest
    /// popcount the CPU has. A bucket and its group stay in cache for the whole comparison:
    /// at 10,000,000 stored a bucket holds ~150 hashes and a group ~200 queries per 100,000
    /// dump images. Slots are divided among the threads; each slot reports only the pairs no
    /// earlier slot reports, so the union has no duplicates.
    pub fn batch_join_threads(&self, queries: &[PdqHash], radius: u32, threads: usize) -> Vec<(usize, u64, u32)> {
        let qw: Vec<Words> = queries.iter().map(PdqHash::words).collect();
        let mut out: Vec<(usize, u64, u32)> = Vec::new();
        if radius > Self::MAX_MIH_RADIUS {
            for (qi, q) in qw.iter().enumerate() {
                let mut rows = Vec::new();
                scan::range(&self.words, q, radius, &mut rows);
                out.extend(rows.into_iter().map(|(r, d)| (qi, self.ids[r], d)));
            }
        } else {
            if self.built > 0 && !qw.is_empty() {
                let threads = threads.clamp(1, self.tables.len());
                let per_thread: Vec<Vec<(usize, u64, u32)>> = std::thread::scope(|scope| {
                    let workers: Vec<_> = (0..threads)
                        .map(|t| {
                            let qw = &qw;
                            scope.spawn(move || {
                                let mut found = Vec::new();
                                let mut scratch = JoinScratch::default();
                                for s in (t..self.tables.len()).step_by(threads) {
                                    self.join_slot(s, qw, radius, &mut scratch, &mut found);
                                }
                                found
                            })
                        })
                        .collect();
                    workers.into_iter().map(|w| w.join().expect("a batch-join worker panicked")).collect()
                });
                out.extend(per_thread.into_iter().flatten());
            }
            for (qi, q) in qw.iter().enumerate() {
                self.scan_tail(q, radius, |r, d| out.push((qi, self.ids[r], d)));
            }
        }
        out.sort_unstable_by_key(|&(qi, id, d)| (qi, d, id));
        out
    }

    /// One slot of [`MultiIndex::batch_join_threads`]: every pair (query, stored row) whose
    /// slot `s` values are within one bit, within `radius` overall, and not reported by an
    /// earlier slot.
    fn join_slot(
        &self,
        s: usize,
        qw: &[Words],
        radius: u32,
        scratch: &mut JoinScratch,
        found: &mut Vec<(usize, u64, u32)>,
    ) {
        let table = &self.tables[s];
        // Counting sort of (probe value, query) pairs: probe_offsets[v]..probe_offsets[v + 1]
        // indexes probe_queries for value v, queries in ascending order.
        let JoinScratch { probe_offsets, probe_queries, group, hits } = scratch;
        probe_offsets.clear();
        probe_offsets.resize(65_537, 0);
        for q in qw {
            for v in probes(slot_of(q, s)) {
                probe_offsets[usize::from(v) + 1] += 1;
            }
        }
        for v in 0..65_536 {
            probe_offsets[v + 1] += probe_offsets[v];
        }
        let mut next = probe_offsets.clone();
        probe_queries.clear();
        probe_queries.resize(qw.len() * 17, 0);
        for (qi, q) in qw.iter().enumerate() {
            for v in probes(slot_of(q, s)) {
                let slot = &mut next[usize::from(v)];
                // Query indexes fit u32: a batch over u32::MAX queries would not fit memory
                // at 17 probes each, and batch_join's callers pass dumps of millions.
                probe_queries[*slot as usize] = qi as u32;
                *slot += 1;
            }
        }
        for v in 0..65_536usize {
            let bucket = table.bucket(v as u16);
            let askers = &probe_queries[probe_offsets[v] as usize..probe_offsets[v + 1] as usize];
            if bucket.is_empty() || askers.is_empty() {
                continue;
            }
            group.fill(askers.iter().map(|&qi| &qw[qi as usize]));
            hits.clear();
            group_kernel::compare(&self.words, bucket, group, radius, hits);
            for &(r, lane, d) in hits.iter() {
                let q = &qw[askers[lane as usize] as usize];
                let w = &self.words[r as usize];
                if !found_earlier(w, q, s) {
                    found.push((askers[lane as usize] as usize, self.ids[r as usize], d));
                }
            }
        }
    }
}

/// Buffers one batch-join thread reuses from slot to slot and bucket to bucket.
#[derive(Default)]
struct JoinScratch {
    probe_offsets: Vec<u32>,
    probe_queries: Vec<u32>,
    group: group_kernel::Columns,
    hits: Vec<(u32, u32, u32)>,
}

mod group_kernel {
    //! Distances from each hash of a stored bucket to a group of queries, the batch join's
    //! inner loop, with runtime CPU-feature dispatch.
    //!
    //! The group is stored in columns (word 0 of every query, then word 1, …), padded to a
    //! multiple of eight lanes, so eight distances are one straight-line block that LLVM
    //! turns into vector XORs and popcounts: `vpopcntq` on CPUs with AVX-512 VPOPCNTDQ, a
    //! nibble-table popcount under AVX2, scalar `popcnt` otherwise. As in `scan`, calling a
    //! `#[target_feature]` function is only sound once the feature is known present.
    #![allow(unsafe_code)]

    use super::Words;

    /// Lanes per step.
    const LANES: usize = 8;

    /// A group of query hashes in column form.
    #[derive(Default)]
    pub(super) struct Columns {
        words: [Vec<u64>; 4],
        len: usize,
    }

    impl Columns {
        /// Replace the group with `queries`, padding the columns to a whole number of steps.
        pub(super) fn fill<'a>(&mut self, queries: impl ExactSizeIterator<Item = &'a Words>) {
            self.len = queries.len();
            let padded = self.len.div_ceil(LANES) * LANES;
            for c in &mut self.words {
                c.clear();
                c.reserve(padded);
            }
            for q in queries {
                for (c, w) in self.words.iter_mut().zip(q) {
                    c.push(*w);
                }
            }
            for c in &mut self.words {
                // Padding lanes are never reported (lane < len is checked on every hit).
                c.resize(padded, 0);
            }
        }
    }

    /// How many rows ahead of the one being compared its stored hash is requested. A bucket's
    /// rows are scattered over the whole stored array (at 10,000,000 hashes, 320 MB), so
    /// each is a cache and TLB miss; the comparison of one row with a group of ~200 queries
    /// is too long for the CPU to reach the next row's load by itself, and without this the
    /// join spent ~80% of its time waiting on those loads.
    const PREFETCH_ROWS: usize = 16;

    #[inline(always)]
    fn prefetch(w: &Words) {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: a prefetch is a hint; it never faults and the pointer comes from a reference.
        unsafe {
            std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(w.as_ptr().cast::<i8>());
        }
        #[cfg(not(target_arch = "x86_64"))]
        let _ = w;
    }

    #[inline(always)]
    fn body(stored: &[Words], rows: &[u32], group: &Columns, radius: u32, out: &mut Vec<(u32, u32, u32)>) {
        let [c0, c1, c2, c3] = &group.words;
        let radius = u64::from(radius);
        for (i, &r) in rows.iter().enumerate() {
            if let Some(&ahead) = rows.get(i + PREFETCH_ROWS) {
                prefetch(&stored[ahead as usize]);
            }
            let w = &stored[r as usize];
            for (step, (((a, b), c), d)) in c0
                .chunks_exact(LANES)
                .zip(c1.chunks_exact(LANES))
                .zip(c2.chunks_exact(LANES))
                .zip(c3.chunks_exact(LANES))
                .enumerate()
            {
                let mut dist = [0u64; LANES];
                for k in 0..LANES {
                    dist[k] = u64::from((a[k] ^ w[0]).count_ones())
                        + u64::from((b[k] ^ w[1]).count_ones())
                        + u64::from((c[k] ^ w[2]).count_ones())
                        + u64::from((d[k] ^ w[3]).count_ones());
                }
                let mut any = false;
                for &x in &dist {
                    any |= x <= radius;
                }
                if any {
                    for (k, &x) in dist.iter().enumerate() {
                        let lane = step * LANES + k;
                        if x <= radius && lane < group.len {
                            // Distances are at most 256; lanes and rows fit u32 (callers').
                            out.push((r, lane as u32, x as u32));
                        }
                    }
                }
            }
        }
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f,avx512vl,avx512vpopcntdq,popcnt")]
    fn avx512(stored: &[Words], rows: &[u32], group: &Columns, radius: u32, out: &mut Vec<(u32, u32, u32)>) {
        body(stored, rows, group, radius, out)
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,popcnt")]
    fn avx2(stored: &[Words], rows: &[u32], group: &Columns, radius: u32, out: &mut Vec<(u32, u32, u32)>) {
        body(stored, rows, group, radius, out)
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "popcnt")]
    fn popcnt(stored: &[Words], rows: &[u32], group: &Columns, radius: u32, out: &mut Vec<(u32, u32, u32)>) {
        body(stored, rows, group, radius, out)
    }

    /// Append `(row, lane, distance)` for every stored row of `rows` and query lane of
    /// `group` within `radius`.
    pub(super) fn compare(
        stored: &[Words],
        rows: &[u32],
        group: &Columns,
        radius: u32,
        out: &mut Vec<(u32, u32, u32)>,
    ) {
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx512vpopcntdq")
                && std::arch::is_x86_feature_detected!("avx512f")
                && std::arch::is_x86_feature_detected!("avx512vl")
                && std::arch::is_x86_feature_detected!("popcnt")
            {
                // SAFETY: every feature the function is compiled for was detected above.
                return unsafe { avx512(stored, rows, group, radius, out) };
            }
            if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("popcnt") {
                // SAFETY: both features the function is compiled for were detected above.
                return unsafe { avx2(stored, rows, group, radius, out) };
            }
            if std::arch::is_x86_feature_detected!("popcnt") {
                // SAFETY: the `popcnt` feature was detected above.
                return unsafe { popcnt(stored, rows, group, radius, out) };
            }
        }
        body(stored, rows, group, radius, out)
    }

    /// The portable kernel alone, so tests can check the dispatched ones against it.
    #[cfg(test)]
    pub(super) fn compare_portable(
        stored: &[Words],
        rows: &[u32],
        group: &Columns,
        radius: u32,
        out: &mut Vec<(u32, u32, u32)>,
    ) {
        body(stored, rows, group, radius, out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slot_of_matches_text_order() {
        let h: PdqHash = "0123456789abcdef00112233445566778899aabbccddeeff0f1e2d3c4b5a6978".parse().unwrap();
        let w = h.words();
        for s in 0..16 {
            assert_eq!(slot_of(&w, s), h.slot(s), "slot {s}");
        }
        assert_eq!(h.slot(0), 0x0123);
        assert_eq!(h.slot(15), 0x6978);
    }

    #[test]
    fn group_kernel_dispatch_and_portable_agree() {
        let mut x = 0x1234_5678_9ABC_DEF1u64;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let stored: Vec<Words> = (0..300).map(|_| [next(), next(), next(), next()]).collect();
        // Queries near some stored rows so hits exist at small radii; 29 lanes leaves a
        // padded step whose padding must never be reported.
        let queries: Vec<Words> = (0..29)
            .map(|i| {
                let mut q = stored[i * 7];
                q[i % 4] ^= next() & next() & next();
                q
            })
            .collect();
        let mut group = group_kernel::Columns::default();
        group.fill(queries.iter());
        let rows: Vec<u32> = (0..300).collect();
        for radius in [0, 5, 31, 120, 256] {
            let (mut a, mut b) = (Vec::new(), Vec::new());
            group_kernel::compare(&stored, &rows, &group, radius, &mut a);
            group_kernel::compare_portable(&stored, &rows, &group, radius, &mut b);
            assert_eq!(a, b, "radius {radius}");
            let want: usize =
                rows.iter().map(|&r| queries.iter().filter(|q| dist(&stored[r as usize], q) <= radius).count()).sum();
            assert_eq!(a.len(), want, "radius {radius}");
        }
    }

    #[test]
    fn dispatch_and_portable_agree() {
        let words: Vec<Words> =
            (0..1000u64).map(|i| [i.wrapping_mul(0x9E37_79B9_7F4A_7C15), i << 7, !i, i.rotate_left(13)]).collect();
        let q = words[17];
        for radius in [0, 10, 64, 128, 256] {
            let (mut a, mut b) = (Vec::new(), Vec::new());
            scan::range(&words, &q, radius, &mut a);
            scan::range_portable(&words, &q, radius, &mut b);
            assert_eq!(a, b, "radius {radius}");
        }
    }
}
