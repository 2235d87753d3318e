//! The Merkle tree over stored hashes, in the storage layout of Go's
//! `golang.org/x/mod/sumdb/tlog`: every hash of every complete subtree is stored once, in the
//! order it becomes known, so the hashes of record `n` are appended right after those of
//! record `n - 1`.

use crate::hash::{EMPTY_TREE_HASH, Hash, leaf_hash, node_hash};
use thiserror::Error;

/// Largest tree size the index arithmetic supports. Stored-hash indexes are below `2 * n`,
/// so `2^62` keeps every computation inside `u64` with room to spare.
pub const MAX_TREE_SIZE: u64 = 1 << 62;

/// Failure of a [`HashReader`] or [`crate::TileReader`]: the storage behind the tree.
#[derive(Debug, Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum ReadError {
    /// A stored hash that should exist is not in storage.
    #[error("stored hash {index} not found")]
    NotFound {
        /// Stored-hash index that was asked for.
        index: u64,
    },
    /// An index beyond the tree the reader is bound to.
    #[error("stored hash {index} is outside a tree of size {tree_size}")]
    OutsideTree {
        /// Stored-hash index that was asked for.
        index: u64,
        /// Size of the tree the reader serves.
        tree_size: u64,
    },
    /// A tile could not be read or did not authenticate.
    #[error(transparent)]
    Tile(#[from] crate::tile::TileError),
    /// The storage backend failed; the message comes from it.
    #[error("storage: {0}")]
    Backend(String),
}

/// Random access to stored hashes by stored-hash index (see [`stored_hash_index`]).
pub trait HashReader {
    /// Returns the hashes at `indexes`, in the same order. Indexes are sorted ascending
    /// when this crate calls it, which lets tile-backed readers batch.
    fn read_hashes(&self, indexes: &[u64]) -> Result<Vec<Hash>, ReadError>;
}

impl<R: HashReader + ?Sized> HashReader for &R {
    fn read_hashes(&self, indexes: &[u64]) -> Result<Vec<Hash>, ReadError> {
        (**self).read_hashes(indexes)
    }
}

/// Proving or checking an inclusion or consistency proof, or hashing a tree.
#[derive(Debug, Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum ProofError {
    /// The sizes or index do not describe a valid question (e.g. `n >= t` for inclusion).
    #[error("invalid proof request: {what} (tree size {tree_size}, n {n})")]
    InvalidInput {
        /// Which rule was broken.
        what: &'static str,
        /// Tree size asked about.
        tree_size: u64,
        /// Record index or older tree size asked about.
        n: u64,
    },
    /// The proof has the wrong number of hashes for these sizes.
    #[error("proof has {got} hashes, expected {expected}")]
    WrongLength {
        /// Hashes the sizes call for.
        expected: usize,
        /// Hashes present.
        got: usize,
    },
    /// The inclusion proof does not lead from the record to the tree root.
    #[error("inclusion proof for record {n} does not match the root of tree size {tree_size}")]
    InclusionMismatch {
        /// Record index.
        n: u64,
        /// Tree size.
        tree_size: u64,
    },
    /// The consistency proof does not show tree `n` to be a prefix of tree `tree_size`.
    #[error("consistency proof from size {n} to size {tree_size} does not match the roots")]
    ConsistencyMismatch {
        /// Older tree size.
        n: u64,
        /// Newer tree size.
        tree_size: u64,
    },
    /// The hash reader returned a different number of hashes than asked for.
    #[error("hash reader returned {got} hashes for {wanted} indexes")]
    ShortRead {
        /// Hashes asked for.
        wanted: usize,
        /// Hashes returned.
        got: usize,
    },
    /// The hash reader failed.
    #[error(transparent)]
    Read(#[from] ReadError),
}

/// An inclusion ("record") proof: sibling hashes from the leaf's sibling up to the root's child
/// (RFC 6962 §2.1.1 audit path order).
pub type RecordProof = Vec<Hash>;

/// A consistency ("tree") proof between two tree sizes (RFC 6962 §2.1.2 order).
pub type TreeProof = Vec<Hash>;

/// Index in the stored-hash sequence of the `n`th hash at `level` (level 0 = leaves).
///
/// Level `L`'s `n`th hash is written right after level `L+1`'s `2n+1`th hash.
pub fn stored_hash_index(level: u32, n: u64) -> u64 {
    // The hash is written when the subtree's last record, (n+1)·2^level − 1, is appended: right
    // after that record's leaf hash, `level` places on. Record m's leaf hash is written at
    // m + m/2 + m/4 + … = 2m − popcount(m) (each completed level adds m/2^k hashes before it).
    // Closed form rather than a loop per bit: proofs and appends call this for every hash.
    let last = ((n + 1) << level) - 1;
    2 * last - u64::from(last.count_ones()) + u64::from(level)
}

/// Inverse of [`stored_hash_index`]: the `(level, n)` stored at `index`.
pub fn split_stored_hash_index(index: u64) -> (u32, u64) {
    // stored_hash_index(0, n) < 2n, so the record that wrote `index` is in
    // [index/2, index/2 + log2(index)].
    let mut n = index / 2;
    let mut index_n = stored_hash_index(0, n);
    debug_assert!(index_n <= index);
    loop {
        // Record n+1 starts after record n's 1 + trailing_ones(n) hashes.
        let x = index_n + 1 + u64::from((n + 1).trailing_zeros());
        if x > index {
            break;
        }
        n += 1;
        index_n = x;
    }
    let level = (index - index_n) as u32;
    (level, n >> level)
}

/// Number of stored hashes in a tree of `n` records.
pub fn stored_hash_count(n: u64) -> u64 {
    if n == 0 {
        return 0;
    }
    // The hashes up to the last leaf, plus those of the subtrees that leaf completes.
    stored_hash_index(0, n - 1) + 1 + u64::from((n - 1).trailing_ones())
}

/// The stored hashes to append when record `n` (with contents `data`) is added, in order.
/// Reads the roots of the complete subtrees the record closes from `reader`.
pub fn stored_hashes_for_record(n: u64, data: &[u8], reader: &impl HashReader) -> Result<Vec<Hash>, ProofError> {
    stored_hashes_for_record_hash(n, leaf_hash(data), reader)
}

/// Like [`stored_hashes_for_record`], for a record whose leaf hash is already known.
pub fn stored_hashes_for_record_hash(n: u64, h: Hash, reader: &impl HashReader) -> Result<Vec<Hash>, ProofError> {
    if n >= MAX_TREE_SIZE {
        return Err(ProofError::InvalidInput { what: "record index too large", tree_size: n, n });
    }
    // Each trailing 1 bit of n completes a subtree, consuming the sibling subtree's root.
    let m = n.trailing_ones() as usize;
    let mut indexes = vec![0u64; m];
    for i in 0..m {
        indexes[m - 1 - i] = stored_hash_index(i as u32, (n >> i) - 1);
    }
    let old = read_exact(reader, &indexes)?;
    let mut hashes = Vec::with_capacity(m + 1);
    let mut h = h;
    hashes.push(h);
    for i in 0..m {
        h = node_hash(&old[m - 1 - i], &h);
        hashes.push(h);
    }
    Ok(hashes)
}

fn read_exact(reader: &impl HashReader, indexes: &[u64]) -> Result<Vec<Hash>, ProofError> {
    if indexes.is_empty() {
        return Ok(Vec::new());
    }
    let got = reader.read_hashes(indexes)?;
    if got.len() != indexes.len() {
        return Err(ProofError::ShortRead { wanted: indexes.len(), got: got.len() });
    }
    Ok(got)
}

/// `(k, log2 k)` for the largest power of two `k` strictly less than `n` (`n >= 2`).
fn maxpow2(n: u64) -> (u64, u32) {
    debug_assert!(n >= 2);
    let l = 63 - (n - 1).leading_zeros();
    (1 << l, l)
}

/// Appends the stored-hash indexes of the complete subtrees covering `[lo, hi)`, largest first.
pub(crate) fn sub_tree_index(mut lo: u64, hi: u64, need: &mut Vec<u64>) {
    while lo < hi {
        let (k, level) = maxpow2(hi - lo + 1);
        debug_assert_eq!(lo & (k - 1), 0);
        need.push(stored_hash_index(level, lo >> level));
        lo += k;
    }
}

/// Hash of `[lo, hi)` from the hashes listed by [`sub_tree_index`]; returns the rest.
fn sub_tree_hash(mut lo: u64, hi: u64, hashes: &[Hash]) -> (Hash, &[Hash]) {
    let mut num_tree = 0;
    while lo < hi {
        let (k, _) = maxpow2(hi - lo + 1);
        num_tree += 1;
        lo += k;
    }
    let mut h = hashes[num_tree - 1];
    for i in (0..num_tree - 1).rev() {
        h = node_hash(&hashes[i], &h);
    }
    (h, &hashes[num_tree..])
}

/// Root hash of the tree of the first `n` records. `n == 0` gives [`EMPTY_TREE_HASH`].
pub fn tree_hash(n: u64, reader: &impl HashReader) -> Result<Hash, ProofError> {
    if n == 0 {
        return Ok(EMPTY_TREE_HASH);
    }
    if n > MAX_TREE_SIZE {
        return Err(ProofError::InvalidInput { what: "tree too large", tree_size: n, n });
    }
    let mut idx = Vec::with_capacity(64);
    sub_tree_index(0, n, &mut idx);
    let hashes = read_exact(reader, &idx)?;
    Ok(sub_tree_hash(0, n, &hashes).0)
}

/// Root of a tree given its frontier: the roots of its complete subtrees, largest first
/// (what [`frontier_indexes`] names).
pub fn root_from_frontier(frontier: &[Hash]) -> Hash {
    match frontier.split_last() {
        None => EMPTY_TREE_HASH,
        Some((last, rest)) => rest.iter().rev().fold(*last, |acc, h| node_hash(h, &acc)),
    }
}

/// Stored-hash indexes of the frontier of a tree of size `n`: one complete subtree per 1 bit
/// of `n`, largest first.
pub fn frontier_indexes(n: u64) -> Vec<u64> {
    let mut idx = Vec::with_capacity(n.count_ones() as usize);
    sub_tree_index(0, n, &mut idx);
    idx
}

fn leaf_proof_index(lo: u64, hi: u64, n: u64, need: &mut Vec<u64>) {
    debug_assert!(lo <= n && n < hi);
    if lo + 1 == hi {
        return;
    }
    let (k, _) = maxpow2(hi - lo);
    if n < lo + k {
        leaf_proof_index(lo, lo + k, n, need);
        sub_tree_index(lo + k, hi, need);
    } else {
        sub_tree_index(lo, lo + k, need);
        leaf_proof_index(lo + k, hi, n, need);
    }
}

fn leaf_proof<'a>(lo: u64, hi: u64, n: u64, hashes: &'a [Hash], p: &mut RecordProof) -> &'a [Hash] {
    if lo + 1 == hi {
        return hashes;
    }
    let (k, _) = maxpow2(hi - lo);
    let (th, rest) = if n < lo + k {
        let rest = leaf_proof(lo, lo + k, n, hashes, p);
        sub_tree_hash(lo + k, hi, rest)
    } else {
        let (th, rest) = sub_tree_hash(lo, lo + k, hashes);
        (th, leaf_proof(lo + k, hi, n, rest, p))
    };
    p.push(th);
    rest
}

/// Inclusion proof that record `n` is in the tree of size `t`.
pub fn prove_record(t: u64, n: u64, reader: &impl HashReader) -> Result<RecordProof, ProofError> {
    if n >= t || t > MAX_TREE_SIZE {
        return Err(ProofError::InvalidInput { what: "need n < t <= MAX_TREE_SIZE", tree_size: t, n });
    }
    let mut idx = Vec::with_capacity(128);
    leaf_proof_index(0, t, n, &mut idx);
    if idx.is_empty() {
        return Ok(Vec::new());
    }
    let hashes = read_exact(reader, &idx)?;
    let mut p = Vec::with_capacity(64);
    let rest = leaf_proof(0, t, n, &hashes, &mut p);
    debug_assert!(rest.is_empty());
    Ok(p)
}

/// Number of hashes in an inclusion proof for record `n` of a tree of size `t` (`n < t`).
pub fn record_proof_len(t: u64, n: u64) -> usize {
    let (mut lo, mut hi, mut len) = (0u64, t, 0usize);
    while lo + 1 < hi {
        let (k, _) = maxpow2(hi - lo);
        if n < lo + k {
            hi = lo + k;
        } else {
            lo += k;
        }
        len += 1;
    }
    len
}

/// Checks that `p` proves record hash `h` is record `n` of the tree of size `t` with root `th`.
pub fn check_record(p: &[Hash], t: u64, th: Hash, n: u64, h: Hash) -> Result<(), ProofError> {
    if n >= t || t > MAX_TREE_SIZE {
        return Err(ProofError::InvalidInput { what: "need n < t <= MAX_TREE_SIZE", tree_size: t, n });
    }
    let expected = record_proof_len(t, n);
    if p.len() != expected {
        return Err(ProofError::WrongLength { expected, got: p.len() });
    }
    let got = run_record_proof(p, 0, t, n, h);
    if got == th { Ok(()) } else { Err(ProofError::InclusionMismatch { n, tree_size: t }) }
}

fn run_record_proof(p: &[Hash], lo: u64, hi: u64, n: u64, leaf: Hash) -> Hash {
    if lo + 1 == hi {
        return leaf;
    }
    // Invariant: the length was checked against record_proof_len, so p is non-empty here.
    let (last, rest) = p.split_last().expect("length checked");
    let (k, _) = maxpow2(hi - lo);
    if n < lo + k {
        node_hash(&run_record_proof(rest, lo, lo + k, n, leaf), last)
    } else {
        node_hash(last, &run_record_proof(rest, lo + k, hi, n, leaf))
    }
}

fn tree_proof_index(lo: u64, hi: u64, n: u64, need: &mut Vec<u64>) {
    debug_assert!(lo < n && n <= hi);
    if n == hi {
        if lo != 0 {
            sub_tree_index(lo, hi, need);
        }
        return;
    }
    let (k, _) = maxpow2(hi - lo);
    if n <= lo + k {
        tree_proof_index(lo, lo + k, n, need);
        sub_tree_index(lo + k, hi, need);
    } else {
        sub_tree_index(lo, lo + k, need);
        tree_proof_index(lo + k, hi, n, need);
    }
}

fn tree_proof<'a>(lo: u64, hi: u64, n: u64, hashes: &'a [Hash], p: &mut TreeProof) -> &'a [Hash] {
    if n == hi {
        if lo == 0 {
            // This subtree is exactly the old tree; the verifier knows its hash.
            return hashes;
        }
        let (th, rest) = sub_tree_hash(lo, hi, hashes);
        p.push(th);
        return rest;
    }
    let (k, _) = maxpow2(hi - lo);
    let (th, rest) = if n <= lo + k {
        let rest = tree_proof(lo, lo + k, n, hashes, p);
        sub_tree_hash(lo + k, hi, rest)
    } else {
        let (th, rest) = sub_tree_hash(lo, lo + k, hashes);
        (th, tree_proof(lo + k, hi, n, rest, p))
    };
    p.push(th);
    rest
}

/// Consistency proof that the tree of size `n` is a prefix of the tree of size `t`.
/// `n == t` gives an empty proof.
pub fn prove_tree(t: u64, n: u64, reader: &impl HashReader) -> Result<TreeProof, ProofError> {
    if n < 1 || n > t || t > MAX_TREE_SIZE {
        return Err(ProofError::InvalidInput { what: "need 1 <= n <= t <= MAX_TREE_SIZE", tree_size: t, n });
    }
    let mut idx = Vec::with_capacity(128);
    tree_proof_index(0, t, n, &mut idx);
    if idx.is_empty() {
        return Ok(Vec::new());
    }
    let hashes = read_exact(reader, &idx)?;
    let mut p = Vec::with_capacity(64);
    let rest = tree_proof(0, t, n, &hashes, &mut p);
    debug_assert!(rest.is_empty());
    Ok(p)
}

/// Checks that `p` proves the tree of size `n` with root `h` is a prefix of the tree of size `t`
/// with root `th`.
pub fn check_tree(p: &[Hash], t: u64, th: Hash, n: u64, h: Hash) -> Result<(), ProofError> {
    if n < 1 || n > t || t > MAX_TREE_SIZE {
        return Err(ProofError::InvalidInput { what: "need 1 <= n <= t <= MAX_TREE_SIZE", tree_size: t, n });
    }
    let mismatch = ProofError::ConsistencyMismatch { n, tree_size: t };
    let (h2, th2) = run_tree_proof(p, 0, t, n, h).ok_or(mismatch)?;
    if th2 == th && h2 == h { Ok(()) } else { Err(ProofError::ConsistencyMismatch { n, tree_size: t }) }
}

/// Returns (old hash, new hash) as recomputed from the proof, or None on a length mismatch.
fn run_tree_proof(p: &[Hash], lo: u64, hi: u64, n: u64, old: Hash) -> Option<(Hash, Hash)> {
    if n == hi {
        if lo == 0 {
            return p.is_empty().then_some((old, old));
        }
        return (p.len() == 1).then(|| (p[0], p[0]));
    }
    let (last, rest) = p.split_last()?;
    let (k, _) = maxpow2(hi - lo);
    if n <= lo + k {
        let (oh, th) = run_tree_proof(rest, lo, lo + k, n, old)?;
        Some((oh, node_hash(&th, last)))
    } else {
        let (oh, th) = run_tree_proof(rest, lo + k, hi, n, old)?;
        Some((node_hash(last, &oh), node_hash(last, &th)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_hash_index_matches_its_definition() {
        // The definition the closed form must equal: level L's n'th hash follows level L-1's
        // (2n+1)'th, and record m's leaf hash sits at m + m/2 + m/4 + ….
        fn by_definition(level: u32, n: u64) -> u64 {
            let mut m = n;
            for _ in 0..level {
                m = 2 * m + 1;
            }
            let (mut i, mut rest) = (0u64, m);
            while rest > 0 {
                i += rest;
                rest >>= 1;
            }
            i + u64::from(level)
        }
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        for level in 0..40 {
            for n in (0..300).chain((0..300).map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x % (1 << (44 - level))
            })) {
                assert_eq!(stored_hash_index(level, n), by_definition(level, n), "level {level} n {n}");
            }
        }
    }

    #[test]
    fn stored_hash_index_round_trips() {
        for index in 0..20_000u64 {
            let (level, n) = split_stored_hash_index(index);
            assert_eq!(stored_hash_index(level, n), index, "index {index}");
        }
    }

    #[test]
    fn maxpow2_is_strictly_less() {
        assert_eq!(maxpow2(2), (1, 0));
        assert_eq!(maxpow2(3), (2, 1));
        assert_eq!(maxpow2(4), (2, 1));
        assert_eq!(maxpow2(5), (4, 2));
        assert_eq!(maxpow2(1 << 40), (1 << 39, 39));
    }
}
