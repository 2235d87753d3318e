//! Auditing a whole log: recompute it from its entries and compare with a checkpoint (and,
//! for a tiled log, with every served hash tile); check a newer checkpoint against an older
//! one; detect forks.

use crate::append::Appender;
use crate::checkpoint::Checkpoint;
use crate::hash::{EMPTY_TREE_HASH, HASH_SIZE, Hash};
use crate::tile::{EntryTile, TILE_HEIGHT, TILE_WIDTH, Tile, TileError, parse_entry_bundle};
use crate::tree::{HashReader, ProofError, ReadError, check_tree, stored_hash_index, tree_hash};
use thiserror::Error;

/// Progress is reported after this many entries (and once at the end).
pub const PROGRESS_INTERVAL: u64 = 1 << 16;

/// A failed audit, naming what failed and where.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum VerifyError {
    /// The log has a different number of entries than the checkpoint says.
    #[error("log has {got} entries, checkpoint says {expected}")]
    EntryCount {
        /// Checkpoint tree size.
        expected: u64,
        /// Entries found (stops counting one past `expected`).
        got: u64,
    },
    /// The entries hash to a different root than the checkpoint's.
    #[error("entries of tree size {tree_size} hash to {computed}, checkpoint says {expected}")]
    RootMismatch {
        /// Tree size.
        tree_size: u64,
        /// Root in the checkpoint.
        expected: Hash,
        /// Root recomputed from the entries.
        computed: Hash,
    },
    /// A served hash tile differs from the hashes recomputed from the entries.
    #[error("tile {tile}: hash {n} of tree level {level} (stored hash {stored_index}) differs from the entries")]
    TileMismatch {
        /// Tile path.
        tile: String,
        /// Tree level of the differing hash (8 × tile level).
        level: u32,
        /// Index of the differing hash within its level; at level 0, the entry index.
        n: u64,
        /// Its stored-hash index.
        stored_index: u64,
    },
    /// A stored hash in the log's own storage differs from the one recomputed from the entries.
    #[error("stored hash {stored_index} (level {level}, index {n}) differs from the entries")]
    StoredHashMismatch {
        /// Stored-hash index.
        stored_index: u64,
        /// Tree level.
        level: u32,
        /// Index within the level; at level 0, the entry index.
        n: u64,
    },
    /// A tile or entry bundle could not be read or parsed.
    #[error("{path}: {source}")]
    Tile {
        /// Tile or bundle path.
        path: String,
        /// What went wrong.
        source: TileError,
    },
    /// Reading a tile or bundle failed.
    #[error("{path}: {source}")]
    Read {
        /// Tile or bundle path.
        path: String,
        /// Storage error.
        source: ReadError,
    },
    /// Two checkpoints of different logs were compared.
    #[error("origins differ: {a:?} and {b:?}")]
    OriginMismatch {
        /// First origin.
        a: String,
        /// Second origin.
        b: String,
    },
    /// Fork: two checkpoints of the same size with different roots.
    #[error("fork at tree size {tree_size}: roots {a} and {b}")]
    Fork {
        /// The common size.
        tree_size: u64,
        /// One root.
        a: Hash,
        /// The other root.
        b: Hash,
    },
    /// Fork: the smaller tree is not a prefix of the larger one.
    #[error("tree {old_size} ({old_root}) is not a prefix of tree {new_size} ({new_root}){}",
        .prefix_root.map(|h| format!("; the larger tree's first {old_size} entries hash to {h}")).unwrap_or_default())]
    NotPrefix {
        /// Smaller tree size.
        old_size: u64,
        /// Smaller tree root.
        old_root: Hash,
        /// Larger tree size.
        new_size: u64,
        /// Larger tree root.
        new_root: Hash,
        /// What the larger tree's prefix of `old_size` entries hashes to, when the larger
        /// tree's hashes were available.
        prefix_root: Option<Hash>,
    },
    /// The newer checkpoint is smaller than the older one: the log rolled back.
    #[error("tree shrank from {old_size} to {new_size}")]
    Shrunk {
        /// Older size.
        old_size: u64,
        /// Newer size.
        new_size: u64,
    },
    /// A proof could not be computed or checked.
    #[error(transparent)]
    Proof(#[from] ProofError),
}

/// Recomputes the tree from all `entries`, in order, and compares it with `checkpoint`.
/// `progress(done, total)` is called every [`PROGRESS_INTERVAL`] entries and at the end.
/// Memory use is the frontier only (64 hashes at most).
pub fn verify_entries<I, D>(
    entries: I,
    checkpoint: &Checkpoint,
    mut progress: impl FnMut(u64, u64),
) -> Result<(), VerifyError>
where
    I: IntoIterator<Item = D>,
    D: AsRef<[u8]>,
{
    let total = checkpoint.size();
    let mut app = Appender::new();
    let mut out = Vec::with_capacity(64);
    for e in entries {
        if app.size() == total {
            return Err(VerifyError::EntryCount { expected: total, got: total + 1 });
        }
        out.clear();
        app.append(e.as_ref(), &mut out);
        if app.size().is_multiple_of(PROGRESS_INTERVAL) {
            progress(app.size(), total);
        }
    }
    progress(app.size(), total);
    if app.size() != total {
        return Err(VerifyError::EntryCount { expected: total, got: app.size() });
    }
    let computed = app.root();
    if computed != checkpoint.hash() {
        return Err(VerifyError::RootMismatch { tree_size: total, expected: checkpoint.hash(), computed });
    }
    Ok(())
}

/// Stored hashes are compared in batches of this many per [`HashReader::read_hashes`] call.
const STORE_BATCH: usize = 4096;

/// Audits the log's own hash storage: recomputes every stored hash from `entries` and
/// compares it with `reader`, then compares the root with `checkpoint`. Storage corruption is
/// reported as [`VerifyError::StoredHashMismatch`] with its level and index.
pub fn verify_hash_store<I, D>(
    entries: I,
    checkpoint: &Checkpoint,
    reader: &impl HashReader,
    mut progress: impl FnMut(u64, u64),
) -> Result<(), VerifyError>
where
    I: IntoIterator<Item = D>,
    D: AsRef<[u8]>,
{
    let total = checkpoint.size();
    let mut app = Appender::new();
    let mut want: Vec<Hash> = Vec::with_capacity(STORE_BATCH + 64);
    let mut next_index = 0u64; // stored-hash index of want[0]
    let flush = |want: &mut Vec<Hash>, next_index: &mut u64| -> Result<(), VerifyError> {
        if want.is_empty() {
            return Ok(());
        }
        let idx: Vec<u64> = (*next_index..*next_index + want.len() as u64).collect();
        let got = reader.read_hashes(&idx).map_err(ProofError::from)?;
        if got.len() != idx.len() {
            return Err(ProofError::ShortRead { wanted: idx.len(), got: got.len() }.into());
        }
        if let Some(i) = got.iter().zip(want.iter()).position(|(g, w)| g != w) {
            let stored_index = idx[i];
            let (level, n) = crate::tree::split_stored_hash_index(stored_index);
            return Err(VerifyError::StoredHashMismatch { stored_index, level, n });
        }
        *next_index += want.len() as u64;
        want.clear();
        Ok(())
    };
    for e in entries {
        if app.size() == total {
            return Err(VerifyError::EntryCount { expected: total, got: total + 1 });
        }
        app.append(e.as_ref(), &mut want);
        if want.len() >= STORE_BATCH {
            flush(&mut want, &mut next_index)?;
        }
        if app.size().is_multiple_of(PROGRESS_INTERVAL) {
            progress(app.size(), total);
        }
    }
    flush(&mut want, &mut next_index)?;
    progress(app.size(), total);
    if app.size() != total {
        return Err(VerifyError::EntryCount { expected: total, got: app.size() });
    }
    let computed = app.root();
    if computed != checkpoint.hash() {
        return Err(VerifyError::RootMismatch { tree_size: total, expected: checkpoint.hash(), computed });
    }
    Ok(())
}

/// Where a tiled log (C2SP tlog-tiles) is read from: a directory, a bucket, an HTTP mirror.
pub trait TileSource {
    /// The data of one hash tile (`32 * width` bytes).
    fn read_tile(&self, tile: &Tile) -> Result<Vec<u8>, ReadError>;
    /// The data of one entry bundle.
    fn read_entry_bundle(&self, bundle: &EntryTile) -> Result<Vec<u8>, ReadError>;
}

/// Audits a whole tiled log against `checkpoint`: reads every entry bundle, recomputes every
/// stored hash, compares every hash tile the log serves for that size with the recomputed
/// one, and compares the root. The first difference is reported with its tile and index.
pub fn verify_tiled_log(
    checkpoint: &Checkpoint,
    source: &impl TileSource,
    mut progress: impl FnMut(u64, u64),
) -> Result<(), VerifyError> {
    let total = checkpoint.size();
    let mut app = Appender::new();
    let mut out = Vec::with_capacity(64);
    // Per tile level: recomputed hashes of the tile being filled, and that tile's index.
    let mut pending: Vec<Vec<Hash>> = Vec::new();
    let mut tile_n: Vec<u64> = Vec::new();
    for bundle in EntryTile::all_for(total) {
        let path = bundle.path();
        let data =
            source.read_entry_bundle(&bundle).map_err(|e| VerifyError::Read { path: path.clone(), source: e })?;
        let entries = parse_entry_bundle(&data, bundle.width).map_err(|e| VerifyError::Tile { path, source: e })?;
        for e in entries {
            out.clear();
            app.append(e, &mut out);
            for (lvl, h) in out.iter().enumerate().step_by(TILE_HEIGHT as usize) {
                let l = lvl / TILE_HEIGHT as usize;
                if pending.len() <= l {
                    pending.push(Vec::with_capacity(usize::from(TILE_WIDTH)));
                    tile_n.push(0);
                }
                pending[l].push(*h);
                if pending[l].len() == usize::from(TILE_WIDTH) {
                    let t = Tile { level: l as u8, n: tile_n[l], width: TILE_WIDTH };
                    compare_tile(source, &t, &pending[l])?;
                    pending[l].clear();
                    tile_n[l] += 1;
                }
            }
            if app.size().is_multiple_of(PROGRESS_INTERVAL) {
                progress(app.size(), total);
            }
        }
    }
    progress(app.size(), total);
    for (l, p) in pending.iter().enumerate() {
        if !p.is_empty() {
            let t = Tile { level: l as u8, n: tile_n[l], width: p.len() as u16 };
            compare_tile(source, &t, p)?;
        }
    }
    let computed = app.root();
    if computed != checkpoint.hash() {
        return Err(VerifyError::RootMismatch { tree_size: total, expected: checkpoint.hash(), computed });
    }
    Ok(())
}

fn compare_tile(source: &impl TileSource, t: &Tile, want: &[Hash]) -> Result<(), VerifyError> {
    let path = t.path();
    let data = source.read_tile(t).map_err(|e| VerifyError::Read { path: path.clone(), source: e })?;
    let expected = want.len() * HASH_SIZE;
    if data.len() != expected {
        return Err(VerifyError::Tile {
            path,
            source: TileError::WrongSize { tile: t.path(), got: data.len(), expected },
        });
    }
    for (i, (chunk, h)) in data.chunks_exact(HASH_SIZE).zip(want).enumerate() {
        if chunk != h.0 {
            let level = u32::from(t.level) * TILE_HEIGHT;
            let n = (t.n << TILE_HEIGHT) + i as u64;
            return Err(VerifyError::TileMismatch { tile: path, level, n, stored_index: stored_hash_index(level, n) });
        }
    }
    Ok(())
}

/// Checks that `new` extends `old` given a consistency proof from `old.size()` to
/// `new.size()`. Equal sizes need equal roots (and an empty proof). A smaller `new` is
/// [`VerifyError::Shrunk`]; a failing proof is [`VerifyError::NotPrefix`].
pub fn check_consistency(old: &Checkpoint, new: &Checkpoint, proof: &[Hash]) -> Result<(), VerifyError> {
    same_origin(old, new)?;
    if new.size() < old.size() {
        return Err(VerifyError::Shrunk { old_size: old.size(), new_size: new.size() });
    }
    if old.size() == new.size() {
        if old.hash() != new.hash() {
            return Err(VerifyError::Fork { tree_size: old.size(), a: old.hash(), b: new.hash() });
        }
        if !proof.is_empty() {
            return Err(ProofError::WrongLength { expected: 0, got: proof.len() }.into());
        }
        return Ok(());
    }
    if old.size() == 0 {
        return empty_root_ok(old, new);
    }
    match check_tree(proof, new.size(), new.hash(), old.size(), old.hash()) {
        Ok(()) => Ok(()),
        Err(ProofError::ConsistencyMismatch { .. }) | Err(ProofError::WrongLength { .. }) => {
            Err(not_prefix(old, new, None))
        }
        Err(e) => Err(e.into()),
    }
}

/// Fork detection with the larger tree's hashes at hand (its own store, or a
/// [`crate::TileHashReader`] bound to the larger checkpoint): checks that `larger_tree`
/// really has the larger checkpoint's root and that its prefix hashes to the smaller
/// checkpoint's root. Order of `a` and `b` does not matter.
pub fn detect_fork(a: &Checkpoint, b: &Checkpoint, larger_tree: &impl HashReader) -> Result<(), VerifyError> {
    same_origin(a, b)?;
    let (old, new) = if a.size() <= b.size() { (a, b) } else { (b, a) };
    if old.size() == new.size() {
        if old.hash() != new.hash() {
            return Err(VerifyError::Fork { tree_size: old.size(), a: a.hash(), b: b.hash() });
        }
        return Ok(());
    }
    let computed = tree_hash(new.size(), larger_tree)?;
    if computed != new.hash() {
        return Err(VerifyError::RootMismatch { tree_size: new.size(), expected: new.hash(), computed });
    }
    if old.size() == 0 {
        return empty_root_ok(old, new);
    }
    let prefix = tree_hash(old.size(), larger_tree)?;
    if prefix != old.hash() {
        return Err(not_prefix(old, new, Some(prefix)));
    }
    Ok(())
}

fn same_origin(a: &Checkpoint, b: &Checkpoint) -> Result<(), VerifyError> {
    if a.origin() != b.origin() {
        return Err(VerifyError::OriginMismatch { a: a.origin().to_owned(), b: b.origin().to_owned() });
    }
    Ok(())
}

fn empty_root_ok(old: &Checkpoint, new: &Checkpoint) -> Result<(), VerifyError> {
    if old.hash() == EMPTY_TREE_HASH { Ok(()) } else { Err(not_prefix(old, new, Some(EMPTY_TREE_HASH))) }
}

fn not_prefix(old: &Checkpoint, new: &Checkpoint, prefix_root: Option<Hash>) -> VerifyError {
    VerifyError::NotPrefix {
        old_size: old.size(),
        old_root: old.hash(),
        new_size: new.size(),
        new_root: new.hash(),
        prefix_root,
    }
}
