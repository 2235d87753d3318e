//! The fast append path: the sequencer keeps only the tree's frontier (one hash per 1 bit of
//! the size) and computes every new stored hash without reading storage.

use crate::hash::{Hash, leaf_hash, node_hash};
use crate::tree::{
    HashReader, MAX_TREE_SIZE, ProofError, ReadError, frontier_indexes, root_from_frontier, stored_hash_count,
};

/// An in-memory appender over a tree's frontier.
///
/// Each appended record yields its stored hashes in storage order (the leaf hash first, then
/// the root of each subtree the record completes), exactly what
/// [`crate::stored_hashes_for_record`] would return, but with no storage reads. Keep one per
/// log, in the single sequencer, and write the returned hashes durably before publishing a
/// checkpoint of [`Appender::root`].
#[derive(Clone, Debug, Default)]
pub struct Appender {
    size: u64,
    /// Roots of the complete subtrees of the tree, largest first.
    frontier: Vec<Hash>,
}

impl Appender {
    /// An appender for the empty tree.
    pub fn new() -> Appender {
        Appender::default()
    }

    /// Resumes from a known frontier (largest subtree first, one hash per 1 bit of `size`).
    pub fn from_frontier(size: u64, frontier: Vec<Hash>) -> Result<Appender, ProofError> {
        if size > MAX_TREE_SIZE {
            return Err(ProofError::InvalidInput { what: "tree too large", tree_size: size, n: size });
        }
        let want = size.count_ones() as usize;
        if frontier.len() != want {
            return Err(ProofError::WrongLength { expected: want, got: frontier.len() });
        }
        Ok(Appender { size, frontier })
    }

    /// Resumes from storage: reads the `popcount(size)` frontier hashes.
    pub fn from_reader(size: u64, reader: &impl HashReader) -> Result<Appender, ProofError> {
        if size > MAX_TREE_SIZE {
            return Err(ProofError::InvalidInput { what: "tree too large", tree_size: size, n: size });
        }
        let idx = frontier_indexes(size);
        let frontier = if idx.is_empty() { Vec::new() } else { reader.read_hashes(&idx)? };
        Appender::from_frontier(size, frontier)
    }

    /// Number of records appended so far (the tree size).
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The frontier: roots of the complete subtrees, largest first.
    pub fn frontier(&self) -> &[Hash] {
        &self.frontier
    }

    /// Root hash of the current tree.
    pub fn root(&self) -> Hash {
        root_from_frontier(&self.frontier)
    }

    /// Stored-hash index at which the next hash pushed by an append will live.
    pub fn next_stored_index(&self) -> u64 {
        stored_hash_count(self.size)
    }

    /// Appends one record by its leaf hash, pushing its stored hashes onto `out`.
    /// Returns the record's index.
    pub fn append_leaf_hash(&mut self, leaf: Hash, out: &mut Vec<Hash>) -> u64 {
        let n = self.size;
        // Invariant documented on MAX_TREE_SIZE: a log never gets near 2^62 records.
        assert!(n < MAX_TREE_SIZE, "tree full");
        let mut h = leaf;
        out.push(h);
        for _ in 0..n.trailing_ones() {
            // Invariant: one frontier entry per 1 bit of n, so a trailing 1 has an entry.
            let left = self.frontier.pop().expect("frontier matches size");
            h = node_hash(&left, &h);
            out.push(h);
        }
        self.frontier.push(h);
        self.size = n + 1;
        n
    }

    /// Appends one record by its contents. Returns the record's index.
    pub fn append(&mut self, data: &[u8], out: &mut Vec<Hash>) -> u64 {
        self.append_leaf_hash(leaf_hash(data), out)
    }

    /// Appends many records; returns the index of the first. `out` grows by
    /// `stored_hash_count(new size) - stored_hash_count(old size)` hashes.
    pub fn append_batch<I, D>(&mut self, entries: I, out: &mut Vec<Hash>) -> u64
    where
        I: IntoIterator<Item = D>,
        D: AsRef<[u8]>,
    {
        let first = self.size;
        for e in entries {
            self.append(e.as_ref(), out);
        }
        first
    }
}

/// All stored hashes of a tree in one `Vec`, indexed by stored-hash index.
///
/// The embedded store for tests, benches and small logs, and the reference the tile code is
/// checked against. 10 million records take about 640 MB.
#[derive(Clone, Debug, Default)]
pub struct MemoryHashStore {
    hashes: Vec<Hash>,
    appender: Appender,
}

impl MemoryHashStore {
    /// An empty tree.
    pub fn new() -> MemoryHashStore {
        MemoryHashStore::default()
    }

    /// An empty tree with room for `records` records without reallocating.
    pub fn with_capacity(records: u64) -> MemoryHashStore {
        let cap = usize::try_from(stored_hash_count(records)).unwrap_or(0);
        MemoryHashStore { hashes: Vec::with_capacity(cap), appender: Appender::new() }
    }

    /// Appends a record; returns its index.
    pub fn append(&mut self, data: &[u8]) -> u64 {
        self.appender.append(data, &mut self.hashes)
    }

    /// Appends a record by leaf hash; returns its index.
    pub fn append_leaf_hash(&mut self, leaf: Hash) -> u64 {
        self.appender.append_leaf_hash(leaf, &mut self.hashes)
    }

    /// Number of records.
    pub fn tree_size(&self) -> u64 {
        self.appender.size()
    }

    /// Current root.
    pub fn root(&self) -> Hash {
        self.appender.root()
    }

    /// All stored hashes, by stored-hash index.
    pub fn hashes(&self) -> &[Hash] {
        &self.hashes
    }
}

impl HashReader for MemoryHashStore {
    fn read_hashes(&self, indexes: &[u64]) -> Result<Vec<Hash>, ReadError> {
        indexes
            .iter()
            .map(|&i| {
                usize::try_from(i)
                    .ok()
                    .and_then(|u| self.hashes.get(u).copied())
                    .ok_or(ReadError::NotFound { index: i })
            })
            .collect()
    }
}

impl HashReader for [Hash] {
    fn read_hashes(&self, indexes: &[u64]) -> Result<Vec<Hash>, ReadError> {
        indexes
            .iter()
            .map(|&i| {
                usize::try_from(i).ok().and_then(|u| self.get(u).copied()).ok_or(ReadError::NotFound { index: i })
            })
            .collect()
    }
}

impl HashReader for Vec<Hash> {
    fn read_hashes(&self, indexes: &[u64]) -> Result<Vec<Hash>, ReadError> {
        self.as_slice().read_hashes(indexes)
    }
}
