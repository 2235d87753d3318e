//! C2SP tlog-tiles: the stored hashes cut into tiles of height 8 (256 hashes wide), their
//! paths, entry bundles, and a [`HashReader`] that authenticates tiles against a trusted
//! checkpoint before using them (like Go's `tlog.TileHashReader`).

use crate::hash::{HASH_SIZE, Hash, node_hash};
use crate::tree::{HashReader, ReadError, frontier_indexes, split_stored_hash_index, stored_hash_index};
use std::collections::HashMap;
use thiserror::Error;

/// Tile height: each tile covers 8 levels of the tree (C2SP tlog-tiles fixes this).
pub const TILE_HEIGHT: u32 = 8;
/// Hashes (or entries) in a full tile.
pub const TILE_WIDTH: u16 = 1 << TILE_HEIGHT;
/// Highest tile level a path may name (C2SP: 0..=63).
pub const MAX_TILE_LEVEL: u8 = 63;
/// Longest tile path accepted: `tile/entries/` plus seven `xNNN/` groups for a `u64` index plus
/// `.p/255` fits in well under this; anything longer is rejected before it is split.
pub const MAX_TILE_PATH_LEN: usize = 96;
/// Largest entry a bundle can carry (its length prefix is a big-endian `u16`).
pub const MAX_ENTRY_SIZE: usize = u16::MAX as usize;
/// Largest entry bundle: 256 entries of the largest size with their prefixes.
pub const MAX_ENTRY_BUNDLE_SIZE: usize = TILE_WIDTH as usize * (2 + MAX_ENTRY_SIZE);

/// Building, parsing or authenticating a tile, a tile path or an entry bundle.
#[derive(Debug, Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum TileError {
    /// A tile path is not in the C2SP form.
    #[error("invalid tile path {path:?}: {reason}")]
    InvalidPath {
        /// The path (truncated to [`MAX_TILE_PATH_LEN`]).
        path: String,
        /// Which rule it broke.
        reason: &'static str,
    },
    /// Tile coordinates out of range (level > 63, width 0 or > 256).
    #[error("invalid tile level {level} index {n} width {width}")]
    InvalidTile {
        /// Level.
        level: u8,
        /// Index within the level.
        n: u64,
        /// Width.
        width: u16,
    },
    /// Tile data has the wrong length for the tile's width.
    #[error("tile {tile}: {got} bytes, expected {expected}")]
    WrongSize {
        /// Tile path.
        tile: String,
        /// Bytes present.
        got: usize,
        /// Bytes required.
        expected: usize,
    },
    /// A stored hash was looked for in a tile that does not hold it.
    #[error("stored hash {index} is in tile {actual}, not {tile}")]
    WrongTile {
        /// Stored-hash index.
        index: u64,
        /// Tile that was given.
        tile: String,
        /// Tile that holds the index.
        actual: String,
    },
    /// The right-edge tiles do not hash to the trusted root: at least one of them is wrong.
    #[error("tiles do not match the root hash of tree size {tree_size}")]
    RootMismatch {
        /// Trusted tree size.
        tree_size: u64,
    },
    /// A full tile does not hash to the hash its (authenticated) parent tile holds for it.
    #[error("tile {tile} does not match its parent tile {parent}")]
    ParentMismatch {
        /// The tile that failed.
        tile: String,
        /// Its authenticated parent.
        parent: String,
    },
    /// The tile reader returned a different number of tiles than asked for.
    #[error("tile reader returned {got} tiles for {wanted}")]
    ShortRead {
        /// Tiles asked for.
        wanted: usize,
        /// Tiles returned.
        got: usize,
    },
    /// An entry bundle is cut short or has bytes after its last entry.
    #[error("entry bundle: {reason} at entry {entry}")]
    MalformedBundle {
        /// Entry position in the bundle where parsing failed.
        entry: usize,
        /// What was wrong.
        reason: &'static str,
    },
    /// An entry bundle holds a different number of entries than its width says.
    #[error("entry bundle has {got} entries, expected {expected}")]
    BundleCount {
        /// Entries found.
        got: usize,
        /// Width of the bundle's tile.
        expected: usize,
    },
    /// An entry or bundle is larger than the format can carry.
    #[error("{what} of {len} bytes exceeds the limit of {max}")]
    TooLarge {
        /// What was too large.
        what: &'static str,
        /// Its size.
        len: usize,
        /// The limit.
        max: usize,
    },
}

/// A hash tile: hashes `n*256 .. n*256+width` of tree level `8*level`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Tile {
    /// Tile level (tree level / 8).
    pub level: u8,
    /// Index of the tile within its level.
    pub n: u64,
    /// Number of hashes, 1..=256; 256 is a full tile.
    pub width: u16,
}

/// An entry bundle (`tile/entries/...`): entries `n*256 .. n*256+width`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EntryTile {
    /// Index of the bundle.
    pub n: u64,
    /// Number of entries, 1..=256; 256 is a full bundle.
    pub width: u16,
}

/// A parsed tile path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TilePath {
    /// `tile/<L>/<N>[.p/<W>]`
    Hash(Tile),
    /// `tile/entries/<N>[.p/<W>]`
    Entries(EntryTile),
}

fn n_path(n: u64) -> String {
    let mut s = format!("{:03}", n % 1000);
    let mut m = n / 1000;
    while m > 0 {
        s = format!("x{:03}/{s}", m % 1000);
        m /= 1000;
    }
    s
}

fn width_suffix(width: u16) -> String {
    if width == TILE_WIDTH { String::new() } else { format!(".p/{width}") }
}

impl Tile {
    /// A checked tile.
    pub fn new(level: u8, n: u64, width: u16) -> Result<Tile, TileError> {
        let t = Tile { level, n, width };
        t.check()?;
        Ok(t)
    }

    fn check(&self) -> Result<(), TileError> {
        if self.level > MAX_TILE_LEVEL || self.width == 0 || self.width > TILE_WIDTH {
            return Err(TileError::InvalidTile { level: self.level, n: self.n, width: self.width });
        }
        Ok(())
    }

    /// The C2SP path, `tile/<L>/<N>[.p/<W>]`.
    pub fn path(&self) -> String {
        format!("tile/{}/{}{}", self.level, n_path(self.n), width_suffix(self.width))
    }

    /// The `k`th ancestor tile (`k == 0` is this tile) as it exists in a tree of `tree_size`
    /// records, or `None` if the tree has no such tile.
    pub fn parent(&self, k: u8, tree_size: u64) -> Option<Tile> {
        let level = self.level.checked_add(k)?;
        let shift = u32::from(k) * TILE_HEIGHT;
        let n = if shift >= 64 { 0 } else { self.n >> shift };
        let level_shift = u32::from(level) * TILE_HEIGHT;
        let max = if level_shift >= 64 { 0 } else { tree_size >> level_shift };
        let start = n.checked_mul(u64::from(TILE_WIDTH))?;
        if start >= max {
            return None;
        }
        let width = (max - start).min(u64::from(TILE_WIDTH)) as u16;
        Some(Tile { level, n, width })
    }
}

impl EntryTile {
    /// The C2SP path, `tile/entries/<N>[.p/<W>]`.
    pub fn path(&self) -> String {
        format!("tile/entries/{}{}", n_path(self.n), width_suffix(self.width))
    }

    /// The entry bundles of a tree of `tree_size` records, in order.
    pub fn all_for(tree_size: u64) -> impl Iterator<Item = EntryTile> {
        let w = u64::from(TILE_WIDTH);
        (0..tree_size.div_ceil(w)).map(move |n| EntryTile { n, width: (tree_size - n * w).min(w) as u16 })
    }
}

/// Parses a C2SP tile path (hash tile or entry bundle), strictly: no leading zeros, canonical
/// `x` groups, `.p/<W>` only for `1 <= W <= 255`.
pub fn parse_tile_path(path: &str) -> Result<TilePath, TileError> {
    let bad = |reason| TileError::InvalidPath { path: path.chars().take(MAX_TILE_PATH_LEN).collect(), reason };
    if path.len() > MAX_TILE_PATH_LEN {
        return Err(bad("too long"));
    }
    let rest = path.strip_prefix("tile/").ok_or_else(|| bad("must start with tile/"))?;
    let (lvl, rest) = rest.split_once('/').ok_or_else(|| bad("missing index"))?;
    let level = if lvl == "entries" {
        None
    } else {
        Some(parse_small_decimal(lvl, u64::from(MAX_TILE_LEVEL)).ok_or_else(|| bad("bad level"))? as u8)
    };
    let (npart, width) = match rest.split_once(".p/") {
        Some((np, w)) => {
            let w = parse_small_decimal(w, u64::from(TILE_WIDTH) - 1).ok_or_else(|| bad("bad width"))?;
            if w == 0 {
                return Err(bad("bad width"));
            }
            (np, w as u16)
        }
        None => (rest, TILE_WIDTH),
    };
    let groups: Vec<&str> = npart.split('/').collect();
    let mut n: u64 = 0;
    for (i, g) in groups.iter().enumerate() {
        let digits = if i + 1 < groups.len() {
            g.strip_prefix('x').ok_or_else(|| bad("index group must start with x"))?
        } else {
            g
        };
        if digits.len() != 3 || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad("index group must be 3 digits"));
        }
        let d: u64 = digits.parse().map_err(|_| bad("index group must be 3 digits"))?;
        n = n.checked_mul(1000).and_then(|n| n.checked_add(d)).ok_or_else(|| bad("index overflows"))?;
    }
    // Rejects x000/ prefixes and other non-canonical spellings of the same index.
    if n_path(n) != npart {
        return Err(bad("non-canonical index"));
    }
    Ok(match level {
        Some(level) => TilePath::Hash(Tile { level, n, width }),
        None => TilePath::Entries(EntryTile { n, width }),
    })
}

/// Decimal with no leading zeros, at most `max`.
fn parse_small_decimal(s: &str, max: u64) -> Option<u64> {
    if s.is_empty() || s.len() > 3 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if s.len() > 1 && s.starts_with('0') {
        return None;
    }
    let v: u64 = s.parse().ok()?;
    (v <= max).then_some(v)
}

/// The smallest tile holding stored hash `index`, and the byte range of the data that
/// determines it.
pub fn tile_for_index(index: u64) -> (Tile, usize, usize) {
    let (level, n) = split_stored_hash_index(index);
    let tl = level / TILE_HEIGHT;
    let lin = level - tl * TILE_HEIGHT; // level within the tile
    let tn = (n << lin) >> TILE_HEIGHT;
    let nin = n - ((tn << TILE_HEIGHT) >> lin); // n within the tile at that level
    let width = ((nin + 1) << lin) as u16;
    let start = ((nin << lin) as usize) * HASH_SIZE;
    let end = (((nin + 1) << lin) as usize) * HASH_SIZE;
    (Tile { level: tl as u8, n: tn, width }, start, end)
}

/// Hash of a power-of-two run of hashes in tile data.
fn tile_hash(data: &[u8]) -> Hash {
    if data.len() == HASH_SIZE {
        let mut h = [0u8; HASH_SIZE];
        h.copy_from_slice(data);
        return Hash(h);
    }
    let half = data.len() / 2;
    node_hash(&tile_hash(&data[..half]), &tile_hash(&data[half..]))
}

/// Stored hash `index`, computed from tile data `data` of `tile`.
pub fn hash_from_tile(tile: &Tile, data: &[u8], index: u64) -> Result<Hash, TileError> {
    tile.check()?;
    let want = usize::from(tile.width) * HASH_SIZE;
    if data.len() < want {
        return Err(TileError::WrongSize { tile: tile.path(), got: data.len(), expected: want });
    }
    let (t1, start, end) = tile_for_index(index);
    if tile.level != t1.level || tile.n != t1.n || tile.width < t1.width {
        return Err(TileError::WrongTile { index, tile: tile.path(), actual: t1.path() });
    }
    Ok(tile_hash(&data[start..end]))
}

/// The tile's data from stored hashes: its `width` hashes of level `8*level`, concatenated.
pub fn read_tile_data(tile: &Tile, reader: &impl HashReader) -> Result<Vec<u8>, ReadError> {
    tile.check()?;
    let start = tile.n << TILE_HEIGHT;
    let level = u32::from(tile.level) * TILE_HEIGHT;
    let idx: Vec<u64> = (0..u64::from(tile.width)).map(|i| stored_hash_index(level, start + i)).collect();
    let hashes = reader.read_hashes(&idx)?;
    if hashes.len() != idx.len() {
        return Err(TileError::ShortRead { wanted: idx.len(), got: hashes.len() }.into());
    }
    let mut out = Vec::with_capacity(hashes.len() * HASH_SIZE);
    for h in &hashes {
        out.extend_from_slice(&h.0);
    }
    Ok(out)
}

/// Back from tile data to stored hashes: every `(index, hash)` the tile determines, i.e. the
/// roots of the complete subtrees inside it at tree levels `8*level .. 8*level+7`.
pub fn stored_hashes_from_tile(tile: &Tile, data: &[u8]) -> Result<Vec<(u64, Hash)>, TileError> {
    tile.check()?;
    let want = usize::from(tile.width) * HASH_SIZE;
    if data.len() != want {
        return Err(TileError::WrongSize { tile: tile.path(), got: data.len(), expected: want });
    }
    let base = u32::from(tile.level) * TILE_HEIGHT;
    let mut row: Vec<Hash> = data.chunks_exact(HASH_SIZE).map(|c| Hash(c.try_into().expect("32"))).collect();
    let mut out = Vec::with_capacity(row.len() * 2);
    for l in 0..TILE_HEIGHT {
        let first = (tile.n << TILE_HEIGHT) >> l;
        for (j, h) in row.iter().enumerate() {
            out.push((stored_hash_index(base + l, first + j as u64), *h));
        }
        row = row.chunks_exact(2).map(|p| node_hash(&p[0], &p[1])).collect();
        if row.is_empty() {
            break;
        }
    }
    out.sort_unstable_by_key(|(i, _)| *i);
    Ok(out)
}

/// The tiles that change when a tree grows from `old_size` to `new_size` records: every tile
/// that is new or wider, at its new width.
pub fn new_tiles(old_size: u64, new_size: u64) -> Vec<Tile> {
    let mut tiles = Vec::new();
    let w = u64::from(TILE_WIDTH);
    let mut level = 0u32;
    while level * TILE_HEIGHT < 64 && new_size >> (level * TILE_HEIGHT) > 0 {
        let old_n = old_size >> (level * TILE_HEIGHT);
        let new_n = new_size >> (level * TILE_HEIGHT);
        level += 1;
        if old_n == new_n {
            continue;
        }
        for n in (old_n / w)..(new_n / w) {
            tiles.push(Tile { level: (level - 1) as u8, n, width: TILE_WIDTH });
        }
        let n = new_n / w;
        let rem = new_n - n * w;
        if rem > 0 {
            tiles.push(Tile { level: (level - 1) as u8, n, width: rem as u16 });
        }
    }
    tiles
}

/// Serialises entries as a C2SP entry bundle: each entry as a big-endian `u16` length then
/// its bytes.
pub fn format_entry_bundle<D: AsRef<[u8]>>(entries: &[D]) -> Result<Vec<u8>, TileError> {
    if entries.len() > usize::from(TILE_WIDTH) {
        return Err(TileError::TooLarge {
            what: "bundle entry count",
            len: entries.len(),
            max: usize::from(TILE_WIDTH),
        });
    }
    let mut total = 0usize;
    for e in entries {
        let len = e.as_ref().len();
        if len > MAX_ENTRY_SIZE {
            return Err(TileError::TooLarge { what: "entry", len, max: MAX_ENTRY_SIZE });
        }
        total += 2 + len;
    }
    let mut out = Vec::with_capacity(total);
    for e in entries {
        let e = e.as_ref();
        out.extend_from_slice(&(e.len() as u16).to_be_bytes());
        out.extend_from_slice(e);
    }
    Ok(out)
}

/// Parses an entry bundle that must hold exactly `width` entries; returns slices into `data`.
pub fn parse_entry_bundle(data: &[u8], width: u16) -> Result<Vec<&[u8]>, TileError> {
    if data.len() > MAX_ENTRY_BUNDLE_SIZE {
        return Err(TileError::TooLarge { what: "entry bundle", len: data.len(), max: MAX_ENTRY_BUNDLE_SIZE });
    }
    if width == 0 || width > TILE_WIDTH {
        return Err(TileError::InvalidTile { level: 0, n: 0, width });
    }
    let mut out = Vec::with_capacity(usize::from(width));
    let mut rest = data;
    while !rest.is_empty() {
        if out.len() == usize::from(width) {
            return Err(TileError::MalformedBundle { entry: out.len(), reason: "bytes after the last entry" });
        }
        if rest.len() < 2 {
            return Err(TileError::MalformedBundle { entry: out.len(), reason: "truncated length" });
        }
        let len = usize::from(u16::from_be_bytes([rest[0], rest[1]]));
        rest = &rest[2..];
        if rest.len() < len {
            return Err(TileError::MalformedBundle { entry: out.len(), reason: "truncated entry" });
        }
        out.push(&rest[..len]);
        rest = &rest[len..];
    }
    if out.len() != usize::from(width) {
        return Err(TileError::BundleCount { got: out.len(), expected: usize::from(width) });
    }
    Ok(out)
}

/// Fetches hash tiles from wherever they are served or stored.
pub trait TileReader {
    /// Returns the data of each tile (exactly `32 * width` bytes), in order.
    fn read_tiles(&self, tiles: &[Tile]) -> Result<Vec<Vec<u8>>, ReadError>;

    /// Called with tiles after they authenticated, so a reader may cache them. Default: nothing.
    fn save_tiles(&self, _tiles: &[Tile], _data: &[Vec<u8>]) {}
}

impl<R: TileReader + ?Sized> TileReader for &R {
    fn read_tiles(&self, tiles: &[Tile]) -> Result<Vec<Vec<u8>>, ReadError> {
        (**self).read_tiles(tiles)
    }
    fn save_tiles(&self, tiles: &[Tile], data: &[Vec<u8>]) {
        (**self).save_tiles(tiles, data)
    }
}

/// A [`HashReader`] over untrusted tiles that returns only hashes it has authenticated
/// against a trusted `(tree_size, root)` (from a verified checkpoint).
///
/// Every call fetches the right-edge tiles, checks they hash to the root, then checks each
/// other tile it needs against its already-authenticated parent. Unlike Go's
/// `tlog.TileHashReader` (x/mod v0.7.0 `tile.go`), which starts the parent check at
/// `len(stx)` and so skips child tiles when several right-edge hashes share a tile, every
/// tile after the right-edge set is checked here.
pub struct TileHashReader<R> {
    tree_size: u64,
    root: Hash,
    reader: R,
}

impl<R: TileReader> TileHashReader<R> {
    /// Binds tiles to a trusted tree.
    pub fn new(tree_size: u64, root: Hash, reader: R) -> TileHashReader<R> {
        TileHashReader { tree_size, root, reader }
    }

    /// The trusted tree size.
    pub fn tree_size(&self) -> u64 {
        self.tree_size
    }
}

impl<R: TileReader> HashReader for TileHashReader<R> {
    fn read_hashes(&self, indexes: &[u64]) -> Result<Vec<Hash>, ReadError> {
        let n = self.tree_size;
        let limit = stored_hash_index(0, n);
        if let Some(&x) = indexes.iter().find(|&&x| x >= limit) {
            return Err(ReadError::OutsideTree { index: x, tree_size: n });
        }
        if indexes.is_empty() {
            return Ok(Vec::new());
        }
        let mut order: HashMap<Tile, usize> = HashMap::new();
        let mut tiles: Vec<Tile> = Vec::new();
        let stx = frontier_indexes(n);
        let mut stx_order = Vec::with_capacity(stx.len());
        for &x in &stx {
            let t = tile_for_index(x).0.parent(0, n).ok_or(ReadError::OutsideTree { index: x, tree_size: n })?;
            let j = *order.entry(t).or_insert_with(|| {
                tiles.push(t);
                tiles.len() - 1
            });
            stx_order.push(j);
        }
        // Tiles from here on are full tiles whose parents come earlier in `tiles`.
        let authenticated_by_root = tiles.len();

        let mut index_order = Vec::with_capacity(indexes.len());
        for &x in indexes {
            let t = tile_for_index(x).0;
            let mut k = 0u8;
            let found = loop {
                let p = t.parent(k, n).ok_or(ReadError::OutsideTree { index: x, tree_size: n })?;
                if let Some(&j) = order.get(&p) {
                    break j;
                }
                k += 1;
                if u32::from(k) * TILE_HEIGHT >= 64 {
                    return Err(ReadError::OutsideTree { index: x, tree_size: n });
                }
            };
            if k == 0 {
                index_order.push(found);
                continue;
            }
            for kk in (0..k).rev() {
                // Invariant: an ancestor exists at k, so all tiles below it exist and are full.
                let p = t.parent(kk, n).ok_or(ReadError::OutsideTree { index: x, tree_size: n })?;
                order.insert(p, tiles.len());
                tiles.push(p);
            }
            index_order.push(tiles.len() - 1);
        }

        let data = self.reader.read_tiles(&tiles)?;
        if data.len() != tiles.len() {
            return Err(TileError::ShortRead { wanted: tiles.len(), got: data.len() }.into());
        }
        for (t, d) in tiles.iter().zip(&data) {
            let expected = usize::from(t.width) * HASH_SIZE;
            if d.len() != expected {
                return Err(TileError::WrongSize { tile: t.path(), got: d.len(), expected }.into());
            }
        }

        let last = stx.len() - 1;
        let mut th = hash_from_tile(&tiles[stx_order[last]], &data[stx_order[last]], stx[last])?;
        for i in (0..last).rev() {
            let h = hash_from_tile(&tiles[stx_order[i]], &data[stx_order[i]], stx[i])?;
            th = node_hash(&h, &th);
        }
        if th != self.root {
            return Err(TileError::RootMismatch { tree_size: n }.into());
        }
        for i in authenticated_by_root..tiles.len() {
            let t = tiles[i];
            let p = t.parent(1, n).ok_or(ReadError::OutsideTree { index: 0, tree_size: n })?;
            let j = *order.get(&p).ok_or(TileError::ParentMismatch { tile: t.path(), parent: p.path() })?;
            debug_assert!(j < i);
            let want = hash_from_tile(&p, &data[j], stored_hash_index(u32::from(p.level) * TILE_HEIGHT, t.n))?;
            if want != tile_hash(&data[i]) {
                return Err(TileError::ParentMismatch { tile: t.path(), parent: p.path() }.into());
            }
        }
        self.reader.save_tiles(&tiles, &data);
        indexes
            .iter()
            .zip(&index_order)
            .map(|(&x, &j)| hash_from_tile(&tiles[j], &data[j], x).map_err(ReadError::from))
            .collect()
    }
}
