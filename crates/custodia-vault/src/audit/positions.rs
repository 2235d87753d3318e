//! Where the log file's frames, entries and upper tree hashes lie, kept in unnamed temporary
//! files rather than in memory.
//!
//! [`LogFile`](super::store::LogFile) must find, for any entry or stored hash, the bytes to read.
//! Held in memory, those positions grew with every entry: a frame record per batch, an offset
//! every [`OFFSET_STRIDE`](super::store::OFFSET_STRIDE) entries and every stored hash at tree level
//! [`CACHED_LEVEL`](super::store::CACHED_LEVEL) or above, about 7 bytes an entry in a vault
//! committing a dozen captures a batch. Here each is an array of fixed-size records in an unnamed
//! temporary file, written a whole page at a time. The upper hashes are grouped in blocks of
//! [`BLOCK_LEVELS`] levels, so that an inclusion proof, which needs one hash of every level,
//! reads one block for four levels. Memory keeps a mark every [`FRAMES_PER_MARK`] frames (16
//! bytes per 128 batches), the last frame, each file's unfinished page and block, and a cache of
//! at most [`CACHE_SLOTS`] whole pages of the smaller files, which reads fill (proofs and tiles;
//! nothing on the ingest path reads): bounded, whatever the log's size. Finding a frame is one
//! binary search over the marks and one page.
//!
//! The files are never synced and vanish with the process: the log rebuilds them from its own
//! frames at every open. A file that cannot be made, or a write to it that fails (the temporary
//! folder is full), leaves its records in memory to be retried, so a position is never lost:
//! it is only held in memory while the disk refuses. Written pages never change, so the cache
//! needs no invalidation.
//!
//! What it is not: durable, or a copy of anything the log file does not already hold.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Mutex;

use custodia_tlog::{HASH_SIZE, Hash};

/// Records in one page of the frame and offset files: the unit of writing, reading and caching.
pub const PAGE_RECORDS: u64 = 128;

/// Frames between two in-memory marks: one page of frame records.
pub const FRAMES_PER_MARK: u64 = PAGE_RECORDS;

/// Tree levels one upper block spans. A block holds, for one node at level `L + BLOCK_LEVELS`
/// (`L` a multiple of it above [`CACHED_LEVEL`](super::store::CACHED_LEVEL)), every hash below
/// it down to level `L`: all of an inclusion proof's hashes at levels `L..L + BLOCK_LEVELS` lie
/// in one block, so a proof over a 10M-entry log reads one block where it read one hash from
/// each of four files.
pub const BLOCK_LEVELS: usize = 4;

/// Hashes in one block: `2^BLOCK_LEVELS + … + 2` (30).
const BLOCK_HASHES: usize = (1 << (BLOCK_LEVELS + 1)) - 2;

/// Blocks in one page of an upper file (3.75 KB).
const BLOCK_PAGE_RECORDS: u64 = 4;

/// Pages the read cache holds at most (at most 4.6 KB each: 9.4 MB).
pub const CACHE_SLOTS: usize = 2048;

/// Only files of at most this size are cached: their pages are each read often (the upper
/// tree levels that every proof touches). In a larger file random reads would only evict each
/// other, so they read just the records asked for.
const CACHED_FILE_BYTES: u64 = 4 << 20;

/// Pending record bytes above which a push hands whole pages to the file.
const FLUSH_AT: usize = 64 * 1024;

/// One frame of the log file: where its entries and stored hashes are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameInfo {
    /// Index of its first entry.
    pub first_entry: u64,
    /// Byte offset of its first entry (the length prefix).
    pub entries_offset: u64,
    /// Stored-hash index of its first stored hash.
    pub first_stored: u64,
    /// Byte offset of its hash block, which is also where its last entry ends.
    pub hash_offset: u64,
    /// How many stored hashes it holds.
    pub hashes: u32,
}

const FRAME_RECORD: usize = 8 * 4 + 4;

impl FrameInfo {
    fn encode(&self) -> [u8; FRAME_RECORD] {
        let mut out = [0u8; FRAME_RECORD];
        out[0..8].copy_from_slice(&self.first_entry.to_le_bytes());
        out[8..16].copy_from_slice(&self.entries_offset.to_le_bytes());
        out[16..24].copy_from_slice(&self.first_stored.to_le_bytes());
        out[24..32].copy_from_slice(&self.hash_offset.to_le_bytes());
        out[32..36].copy_from_slice(&self.hashes.to_le_bytes());
        out
    }

    fn decode(record: &[u8]) -> FrameInfo {
        let u64_at = |at: usize| u64::from_le_bytes(record[at..at + 8].try_into().expect("8 bytes"));
        FrameInfo {
            first_entry: u64_at(0),
            entries_offset: u64_at(8),
            first_stored: u64_at(16),
            hash_offset: u64_at(24),
            hashes: u32::from_le_bytes(record[32..36].try_into().expect("4 bytes")),
        }
    }
}

/// An append-only array of fixed-size records in an unnamed temporary file, with the records
/// not yet written held in memory.
struct RecordFile {
    /// Its key in the page cache.
    id: u32,
    /// `None` until a temporary file could be made.
    file: Option<File>,
    dir: std::path::PathBuf,
    record: usize,
    /// Records in one page: the unit of writing, reading and caching.
    page_records: u64,
    /// Records in the file: always whole pages.
    written: u64,
    /// Records after those, not yet in the file.
    pending: Vec<u8>,
}

/// A direct-mapped cache of whole written pages, keyed by (file, page).
struct PageCache {
    slots: Vec<Option<CachedPage>>,
}

struct CachedPage {
    file: u32,
    page: u64,
    bytes: Box<[u8]>,
}

impl PageCache {
    fn slot(&self, file: u32, page: u64) -> usize {
        // Fibonacci hashing spreads neighbouring pages and levels over the slots.
        let key = (u64::from(file) << 48) ^ page;
        (key.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 40) as usize % CACHE_SLOTS
    }
}

impl RecordFile {
    fn new(id: u32, dir: &Path, record: usize, page_records: u64) -> RecordFile {
        RecordFile { id, file: None, dir: dir.to_path_buf(), record, page_records, written: 0, pending: Vec::new() }
    }

    fn len(&self) -> u64 {
        self.written + (self.pending.len() / self.record) as u64
    }

    fn push(&mut self, bytes: &[u8]) {
        debug_assert_eq!(bytes.len(), self.record);
        self.pending.extend_from_slice(bytes);
        if self.pending.len() >= FLUSH_AT {
            // On failure the records stay pending and the next push or flush tries again.
            let _ = self.flush();
        }
    }

    /// Writes the whole pages among the pending records.
    fn flush(&mut self) -> io::Result<()> {
        let page_bytes = self.page_records as usize * self.record;
        let whole = self.pending.len() / page_bytes * page_bytes;
        if whole == 0 {
            return Ok(());
        }
        let file = match &mut self.file {
            Some(file) => file,
            // Beside the log when its folder is writable; an auditor reading a copy on
            // read-only media gets the system temporary folder.
            none => none.insert(tempfile::tempfile_in(&self.dir).or_else(|_| tempfile::tempfile())?),
        };
        file.write_all_at(&self.pending[..whole], self.written * self.record as u64)?;
        self.written += (whole / self.record) as u64;
        self.pending.drain(..whole);
        Ok(())
    }

    /// Records `first..first + count` (which must exist) as bytes: written pages through the
    /// cache, the rest from memory.
    fn read(&self, first: u64, count: u64, cache: &Mutex<PageCache>) -> io::Result<Vec<u8>> {
        let mut out = vec![0u8; count as usize * self.record];
        self.read_into(first, &mut out, cache)?;
        Ok(out)
    }

    /// Fills `out` (a whole number of records) with the records from `first` on.
    fn read_into(&self, first: u64, out: &mut [u8], cache: &Mutex<PageCache>) -> io::Result<()> {
        let size = self.record as u64;
        let count = out.len() as u64 / size;
        debug_assert!(first + count <= self.len());
        let per_page = self.page_records;
        let from_file = count.min(self.written.saturating_sub(first));
        let file = self.file.as_ref().filter(|_| from_file > 0);
        if let Some(file) = file.filter(|_| self.written * size > CACHED_FILE_BYTES) {
            // Not cached: the written records asked for, in one read.
            file.read_exact_at(&mut out[..(from_file * size) as usize], first * size)?;
        } else if let Some(file) = file {
            let mut at = first;
            while at < first + from_file {
                let page = at / per_page;
                let end = ((page + 1) * per_page).min(first + from_file);
                let (from, to) = (((at - page * per_page) * size) as usize, ((end - page * per_page) * size) as usize);
                let dest = &mut out[((at - first) * size) as usize..((end - first) * size) as usize];
                let guard = cache.lock().expect("page cache lock");
                let slot = guard.slot(self.id, page);
                match &guard.slots[slot] {
                    Some(hit) if hit.file == self.id && hit.page == page => dest.copy_from_slice(&hit.bytes[from..to]),
                    _ => {
                        drop(guard);
                        let mut bytes = vec![0u8; per_page as usize * self.record].into_boxed_slice();
                        file.read_exact_at(&mut bytes, page * per_page * size)?;
                        dest.copy_from_slice(&bytes[from..to]);
                        cache.lock().expect("page cache lock").slots[slot] =
                            Some(CachedPage { file: self.id, page, bytes });
                    }
                }
                at = end;
            }
        }
        if from_file < count {
            let start = ((first + from_file - self.written) * size) as usize;
            let rest = &mut out[(from_file * size) as usize..];
            let len = rest.len();
            rest.copy_from_slice(&self.pending[start..start + len]);
        }
        Ok(())
    }
}

/// The stored hashes of levels `CACHED_LEVEL + g × BLOCK_LEVELS` up to `BLOCK_LEVELS` levels
/// higher, as blocks (see [`BLOCK_LEVELS`]): whole blocks in a record file, the block still
/// filling in memory.
struct UpperGroup {
    blocks: RecordFile,
    /// Block number `blocks.len()`, filling as its hashes complete.
    open: Box<[u8; BLOCK_HASHES * HASH_SIZE]>,
    open_filled: usize,
    /// Hashes recorded so far at each of the group's levels.
    counts: [u64; BLOCK_LEVELS],
}

/// Where hash `n` of the `k`-th level of a group lies: its block, and its place in the block.
/// A block lists its levels bottom up, each level's hashes in order.
fn place_in_block(k: usize, n: u64) -> (u64, usize) {
    let width_shift = BLOCK_LEVELS - k;
    // Hashes of levels below k in one block: 2^B + … + 2^(B-k+1).
    let before = (1usize << (BLOCK_LEVELS + 1)) - (1usize << (width_shift + 1));
    (n >> width_shift, before + (n & ((1 << width_shift) - 1)) as usize)
}

impl UpperGroup {
    fn new(id: u32, dir: &Path) -> UpperGroup {
        UpperGroup {
            blocks: RecordFile::new(id, dir, BLOCK_HASHES * HASH_SIZE, BLOCK_PAGE_RECORDS),
            open: Box::new([0; BLOCK_HASHES * HASH_SIZE]),
            open_filled: 0,
            counts: [0; BLOCK_LEVELS],
        }
    }

    fn push(&mut self, k: usize, hash: &Hash) {
        let (block, at) = place_in_block(k, self.counts[k]);
        // Hashes complete in tree order: every hash of a block before any of the next block.
        debug_assert_eq!(block, self.blocks.len(), "level {k} hash {} out of block order", self.counts[k]);
        self.open[at * HASH_SIZE..(at + 1) * HASH_SIZE].copy_from_slice(&hash.0);
        self.counts[k] += 1;
        self.open_filled += 1;
        if self.open_filled == BLOCK_HASHES {
            self.blocks.push(&self.open[..]);
            self.open_filled = 0;
        }
    }
}

/// The position index of one open log file; see the module doc.
pub struct Positions {
    frames: RecordFile,
    /// `(first_entry, first_stored)` of frames `0, FRAMES_PER_MARK, 2 × FRAMES_PER_MARK, …`.
    marks: Vec<(u64, u64)>,
    last: Option<FrameInfo>,
    /// Record `k`: byte offset of entry `k × OFFSET_STRIDE`.
    strides: RecordFile,
    /// `upper[g]`: the stored hashes of levels `CACHED_LEVEL + g × BLOCK_LEVELS` and the
    /// `BLOCK_LEVELS - 1` above it.
    upper: Vec<UpperGroup>,
    dir: std::path::PathBuf,
    cache: Mutex<PageCache>,
}

impl Positions {
    /// An empty index whose files live in `dir` (or the system temporary folder).
    pub fn new(dir: &Path) -> Positions {
        Positions {
            frames: RecordFile::new(0, dir, FRAME_RECORD, PAGE_RECORDS),
            marks: Vec::new(),
            last: None,
            strides: RecordFile::new(1, dir, 8, PAGE_RECORDS),
            upper: Vec::new(),
            dir: dir.to_path_buf(),
            cache: Mutex::new(PageCache { slots: (0..CACHE_SLOTS).map(|_| None).collect() }),
        }
    }

    /// Records the next frame.
    pub fn push_frame(&mut self, frame: FrameInfo) {
        if self.frames.len().is_multiple_of(FRAMES_PER_MARK) {
            self.marks.push((frame.first_entry, frame.first_stored));
        }
        self.frames.push(&frame.encode());
        self.last = Some(frame);
    }

    /// Records the byte offset of the next entry whose index is a multiple of the stride.
    pub fn push_stride_offset(&mut self, offset: u64) {
        self.strides.push(&offset.to_le_bytes());
    }

    /// Records the next stored hash of tree level `CACHED_LEVEL + l`.
    pub fn push_upper(&mut self, l: usize, hash: &Hash) {
        let (g, k) = (l / BLOCK_LEVELS, l % BLOCK_LEVELS);
        while self.upper.len() <= g {
            let id = 2 + self.upper.len() as u32;
            self.upper.push(UpperGroup::new(id, &self.dir));
        }
        self.upper[g].push(k, hash);
    }

    /// Hands every whole pending page to its file (the end of an append or of opening). On
    /// failure the records stay in memory, correct, and the next flush tries again.
    pub fn flush(&mut self) -> io::Result<()> {
        self.frames.flush()?;
        self.strides.flush()?;
        self.upper.iter_mut().try_for_each(|g| g.blocks.flush())
    }

    /// How many stride offsets are recorded.
    #[cfg(test)]
    pub fn stride_count(&self) -> u64 {
        self.strides.len()
    }

    /// The last frame, if any.
    pub fn last_frame(&self) -> Option<&FrameInfo> {
        self.last.as_ref()
    }

    /// The frame whose `key` range holds `index` (`key` is the frame's first entry or first
    /// stored hash, both ascending), and the key of the frame after it if there is one.
    fn frame_by(&self, index: u64, key: impl Fn(u64, u64) -> u64) -> io::Result<Option<(FrameInfo, Option<u64>)>> {
        let Some(block) = self.marks.partition_point(|&(e, s)| key(e, s) <= index).checked_sub(1) else {
            return Ok(None);
        };
        let first = block as u64 * FRAMES_PER_MARK;
        let count = FRAMES_PER_MARK.min(self.frames.len() - first);
        let bytes = self.frames.read(first, count, &self.cache)?;
        // Search the records where they lie: decoding only the keys, then the one frame.
        let key_at = |i: usize| {
            let record = &bytes[i * FRAME_RECORD..];
            let u64_at = |at: usize| u64::from_le_bytes(record[at..at + 8].try_into().expect("8 bytes"));
            key(u64_at(0), u64_at(16))
        };
        let (mut low, mut high) = (0, count as usize);
        while low < high {
            let mid = (low + high) / 2;
            if key_at(mid) <= index { low = mid + 1 } else { high = mid }
        }
        let at = low - 1;
        let next = if at + 1 < count as usize {
            Some(key_at(at + 1))
        } else {
            self.marks.get(block + 1).map(|&(e, s)| key(e, s))
        };
        Ok(Some((FrameInfo::decode(&bytes[at * FRAME_RECORD..(at + 1) * FRAME_RECORD]), next)))
    }

    /// The frame holding entry `index` (which must be below the log's size), and the first
    /// entry of the frame after it, if any.
    pub fn frame_of_entry(&self, index: u64) -> io::Result<(FrameInfo, Option<u64>)> {
        let found = self.frame_by(index, |entry, _| entry)?;
        Ok(found.expect("a log with entries has a first frame at entry 0"))
    }

    /// The frame whose stored hashes start at or before `index`, if any.
    pub fn frame_of_stored_hash(&self, index: u64) -> io::Result<Option<FrameInfo>> {
        Ok(self.frame_by(index, |_, stored| stored)?.map(|(f, _)| f))
    }

    /// Byte offset of entry `k × OFFSET_STRIDE`.
    pub fn stride_offset(&self, k: u64) -> io::Result<u64> {
        let bytes = self.strides.read(k, 1, &self.cache)?;
        Ok(u64::from_le_bytes(bytes[..8].try_into().expect("8 bytes")))
    }

    /// Stored hashes `(l, n)`: hash `n` of tree level `CACHED_LEVEL + l`, each `None` if not
    /// recorded. Each block the requests fall in is read once, and neighbouring blocks of one
    /// group in one read: one read a group for a proof, a few for a tile's row.
    pub fn upper_hashes(&self, wanted: &[(usize, u64)]) -> io::Result<Vec<Option<Hash>>> {
        let mut out = vec![None; wanted.len()];
        // (group, block, place in the block, request) for every recorded hash asked for.
        let mut places: Vec<(usize, u64, usize, usize)> = Vec::with_capacity(wanted.len());
        for (request, &(l, n)) in wanted.iter().enumerate() {
            let (g, k) = (l / BLOCK_LEVELS, l % BLOCK_LEVELS);
            if self.upper.get(g).is_some_and(|group| n < group.counts[k]) {
                let (block, at) = place_in_block(k, n);
                places.push((g, block, at, request));
            }
        }
        places.sort_unstable();
        let block_bytes = BLOCK_HASHES * HASH_SIZE;
        let mut buf = Vec::new();
        let mut i = 0;
        while i < places.len() {
            let (g, first_block, _, _) = places[i];
            let group = &self.upper[g];
            let in_open_block = first_block == group.blocks.len();
            // The run of requests in consecutive blocks of this group, all written or pending;
            // the open block is read from memory on its own.
            let mut j = i + 1;
            while j < places.len()
                && !in_open_block
                && places[j].0 == g
                && places[j].1 <= places[j - 1].1 + 1
                && places[j].1 < group.blocks.len()
            {
                j += 1;
            }
            let last_block = places[j - 1].1;
            let bytes: &[u8] = if in_open_block {
                &group.open[..]
            } else {
                buf.resize(((last_block - first_block + 1) as usize) * block_bytes, 0);
                group.blocks.read_into(first_block, &mut buf, &self.cache)?;
                &buf
            };
            for &(_, block, at, request) in &places[i..j] {
                let from = ((block - first_block) as usize) * block_bytes + at * HASH_SIZE;
                out[request] = Some(Hash(bytes[from..from + HASH_SIZE].try_into().expect("32 bytes")));
            }
            i = j;
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::store::CACHED_LEVEL;

    fn frame(i: u64) -> FrameInfo {
        FrameInfo {
            first_entry: i * 3,
            entries_offset: i * 1000 + 20,
            first_stored: i * 7,
            hash_offset: i * 1000 + 900,
            hashes: 7,
        }
    }

    #[test]
    fn frames_are_found_by_entry_and_by_stored_hash_across_marks_file_and_pending() {
        let dir = tempfile::tempdir().unwrap();
        let mut p = Positions::new(dir.path());
        // Enough frames to span several marks and one forced write to the file, with the
        // last ones still pending.
        let n = FLUSH_AT as u64 / FRAME_RECORD as u64 + 3 * FRAMES_PER_MARK + 5;
        for i in 0..n {
            p.push_frame(frame(i));
        }
        assert!(p.frames.written > 0 && !p.frames.pending.is_empty());
        for check in 0..2 {
            for i in 0..n {
                for entry in i * 3..i * 3 + 3 {
                    let next = (i + 1 < n).then(|| (i + 1) * 3);
                    assert_eq!(p.frame_of_entry(entry).unwrap(), (frame(i), next), "entry {entry}, pass {check}");
                }
                assert_eq!(p.frame_of_stored_hash(i * 7 + 6).unwrap(), Some(frame(i)));
            }
            assert_eq!(p.last_frame(), Some(&frame(n - 1)));
            p.flush().unwrap();
            assert!(p.frames.pending.len() < (PAGE_RECORDS as usize) * FRAME_RECORD);
        }
    }

    #[test]
    fn strides_read_back_from_file_and_memory() {
        let dir = tempfile::tempdir().unwrap();
        let mut p = Positions::new(dir.path());
        for k in 0..10_000u64 {
            p.push_stride_offset(k * 4096 + 1);
        }
        p.flush().unwrap();
        p.push_stride_offset(99);
        assert_eq!(p.stride_count(), 10_001);
        assert_eq!(p.stride_offset(0).unwrap(), 1);
        assert_eq!(p.stride_offset(9_999).unwrap(), 9_999 * 4096 + 1);
        assert_eq!(p.stride_offset(10_000).unwrap(), 99);
    }

    /// A distinct hash for stored hash `n` of upper level `l`.
    fn upper(l: usize, n: u64) -> Hash {
        let mut h = [0u8; 32];
        h[..8].copy_from_slice(&n.to_le_bytes());
        h[8] = l as u8;
        Hash(h)
    }

    /// Pushes the upper hashes a tree of `from..to` more entries completes, in the order
    /// appends complete them, and returns how many each level then holds.
    fn grow(p: &mut Positions, from: u64, to: u64) -> Vec<u64> {
        for i in from..to {
            let mut l = 0;
            while (i + 1).is_multiple_of(1 << (CACHED_LEVEL + l as u32)) {
                p.push_upper(l, &upper(l, ((i + 1) >> (CACHED_LEVEL + l as u32)) - 1));
                l += 1;
            }
        }
        (0..12).map(|l| to >> (CACHED_LEVEL + l as u32)).collect()
    }

    #[test]
    fn upper_hashes_read_back_from_blocks_in_file_pending_and_open() {
        let dir = tempfile::tempdir().unwrap();
        let mut p = Positions::new(dir.path());
        // Enough entries that level 4's blocks overflow the pending buffer into the file, with a
        // block of every group still open at the end.
        let total = (1 << 22) + (1 << 20) + 3 * (1 << 16) + 5 * 16 + 7;
        let mut counts = grow(&mut p, 0, total / 2);
        for pass in 0..3 {
            // Every recorded hash of every level, asked for in one call in an unsorted order
            // (as a tile's row or proof mixes levels), then each on its own.
            let mut wanted: Vec<(usize, u64)> = counts
                .iter()
                .enumerate()
                .flat_map(|(l, &c)| (0..c).step_by(1 + (c / 3000) as usize).map(move |n| (l, n)))
                .collect();
            wanted.extend(counts.iter().enumerate().filter(|&(_, &c)| c > 0).map(|(l, &c)| (l, c - 1)));
            wanted.reverse();
            let got = p.upper_hashes(&wanted).unwrap();
            for (&(l, n), got) in wanted.iter().zip(&got) {
                assert_eq!(*got, Some(upper(l, n)), "level {l} hash {n}, pass {pass}");
            }
            for &(l, n) in wanted.iter().step_by(97) {
                assert_eq!(p.upper_hashes(&[(l, n)]).unwrap(), vec![Some(upper(l, n))], "level {l} hash {n}");
            }
            // Hashes not yet complete are not recorded.
            let missing: Vec<(usize, u64)> = counts.iter().enumerate().map(|(l, &c)| (l, c)).collect();
            assert!(p.upper_hashes(&missing).unwrap().iter().all(Option::is_none), "pass {pass}");
            match pass {
                0 => p.flush().unwrap(),
                1 => counts = grow(&mut p, total / 2, total),
                _ => {}
            }
        }
        assert!(p.upper[0].blocks.written > 0 && !p.upper[0].blocks.pending.is_empty() && p.upper[0].open_filled > 0);
    }

    #[test]
    fn places_in_a_block_cover_it_once() {
        let mut seen = [false; BLOCK_HASHES];
        for k in 0..BLOCK_LEVELS {
            for n in 0..(1u64 << (BLOCK_LEVELS - k)) {
                let (block, at) = place_in_block(k, n);
                assert_eq!(block, 0);
                assert!(!std::mem::replace(&mut seen[at], true), "level {k} hash {n} at {at} twice");
            }
            assert_eq!(place_in_block(k, 1 << (BLOCK_LEVELS - k)).0, 1);
        }
        assert!(seen.iter().all(|&s| s));
    }
}
