//! Where the log file's frames, entries and upper tree hashes lie, kept in unnamed temporary
//! files rather than in memory.
//!
//! [`LogFile`](super::store::LogFile) must find, for any entry or stored hash, the bytes to read.
//! Held in memory, those positions grew with every entry: a frame record per batch, an offset
//! every [`OFFSET_STRIDE`](super::store::OFFSET_STRIDE) entries and every stored hash at tree level
//! [`CACHED_LEVEL`](super::store::CACHED_LEVEL) or above, about 7 bytes an entry in a vault
//! committing a dozen captures a batch. Here each is an array of fixed-size records in an unnamed
//! temporary file, written a whole page of [`PAGE_RECORDS`] records at a time. Memory keeps a mark
//! every [`FRAMES_PER_MARK`] frames (16 bytes per 128 batches), the last frame, each file's
//! unfinished page, and a cache of at most [`CACHE_SLOTS`] whole pages of the smaller files, which
//! reads fill (proofs and tiles; nothing on the ingest path reads): bounded, whatever the log's
//! size. Finding a frame is
//! one binary search over the marks and one page.
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

/// Records in one page: the unit of writing, reading and caching.
pub const PAGE_RECORDS: u64 = 128;

/// Frames between two in-memory marks: one page of frame records.
pub const FRAMES_PER_MARK: u64 = PAGE_RECORDS;

/// Pages the read cache holds at most (at most 36 × 128 bytes each: 9.4 MB).
pub const CACHE_SLOTS: usize = 2048;

/// Only files of at most this many pages are cached: their pages are each read often (the upper
/// tree levels that every proof touches). In a larger file random reads would only evict each
/// other, so they read just the records asked for.
const CACHED_FILE_PAGES: u64 = 256;

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
    fn new(id: u32, dir: &Path, record: usize) -> RecordFile {
        RecordFile { id, file: None, dir: dir.to_path_buf(), record, written: 0, pending: Vec::new() }
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
        let page_bytes = PAGE_RECORDS as usize * self.record;
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
        debug_assert!(first + count <= self.len());
        let size = self.record as u64;
        let mut out = vec![0u8; (count * size) as usize];
        let from_file = count.min(self.written.saturating_sub(first));
        if let Some(file) = self.file.as_ref().filter(|_| from_file > 0) {
            let mut at = first;
            while at < first + from_file {
                let page = at / PAGE_RECORDS;
                let end = ((page + 1) * PAGE_RECORDS).min(first + from_file);
                let (from, to) = (((at - page * PAGE_RECORDS) * size) as usize, ((end - page * PAGE_RECORDS) * size) as usize);
                let dest = &mut out[((at - first) * size) as usize..((end - first) * size) as usize];
                let guard = cache.lock().expect("page cache lock");
                let slot = guard.slot(self.id, page);
                match &guard.slots[slot] {
                    Some(hit) if hit.file == self.id && hit.page == page => dest.copy_from_slice(&hit.bytes[from..to]),
                    _ if self.written / PAGE_RECORDS > CACHED_FILE_PAGES => {
                        drop(guard);
                        file.read_exact_at(dest, at * size)?;
                    }
                    _ => {
                        drop(guard);
                        let mut bytes = vec![0u8; PAGE_RECORDS as usize * self.record].into_boxed_slice();
                        file.read_exact_at(&mut bytes, page * PAGE_RECORDS * size)?;
                        dest.copy_from_slice(&bytes[from..to]);
                        cache.lock().expect("page cache lock").slots[slot] = Some(CachedPage { file: self.id, page, bytes });
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
        Ok(out)
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
    /// `upper[l]` record `n`: stored hash `n` of tree level `CACHED_LEVEL + l`.
    upper: Vec<RecordFile>,
    dir: std::path::PathBuf,
    cache: Mutex<PageCache>,
}

impl Positions {
    /// An empty index whose files live in `dir` (or the system temporary folder).
    pub fn new(dir: &Path) -> Positions {
        Positions {
            frames: RecordFile::new(0, dir, FRAME_RECORD),
            marks: Vec::new(),
            last: None,
            strides: RecordFile::new(1, dir, 8),
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
        while self.upper.len() <= l {
            let id = 2 + self.upper.len() as u32;
            self.upper.push(RecordFile::new(id, &self.dir, HASH_SIZE));
        }
        self.upper[l].push(&hash.0);
    }

    /// Hands every whole pending page to its file (the end of an append or of opening). On
    /// failure the records stay in memory, correct, and the next flush tries again.
    pub fn flush(&mut self) -> io::Result<()> {
        self.frames.flush()?;
        self.strides.flush()?;
        self.upper.iter_mut().try_for_each(RecordFile::flush)
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
        let frames: Vec<FrameInfo> = bytes.chunks_exact(FRAME_RECORD).map(FrameInfo::decode).collect();
        let key_of = |f: &FrameInfo| key(f.first_entry, f.first_stored);
        let at = frames.partition_point(|f| key_of(f) <= index) - 1;
        let next = frames.get(at + 1).map(key_of).or_else(|| self.marks.get(block + 1).map(|&(e, s)| key(e, s)));
        Ok(Some((frames[at], next)))
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

    /// Stored hash `n` of tree level `CACHED_LEVEL + l`, if recorded.
    pub fn upper_hash(&self, l: usize, n: u64) -> io::Result<Option<Hash>> {
        match self.upper.get(l) {
            Some(level) if n < level.len() => {
                let bytes = level.read(n, 1, &self.cache)?;
                Ok(Some(Hash(bytes[..HASH_SIZE].try_into().expect("32 bytes"))))
            }
            _ => Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(i: u64) -> FrameInfo {
        FrameInfo { first_entry: i * 3, entries_offset: i * 1000 + 20, first_stored: i * 7, hash_offset: i * 1000 + 900, hashes: 7 }
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
    fn strides_and_upper_hashes_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let mut p = Positions::new(dir.path());
        for k in 0..10_000u64 {
            p.push_stride_offset(k * 4096 + 1);
            p.push_upper((k % 3) as usize, &Hash([k as u8; 32]));
        }
        p.flush().unwrap();
        p.push_stride_offset(99);
        assert_eq!(p.stride_count(), 10_001);
        assert_eq!(p.stride_offset(0).unwrap(), 1);
        assert_eq!(p.stride_offset(9_999).unwrap(), 9_999 * 4096 + 1);
        assert_eq!(p.stride_offset(10_000).unwrap(), 99);
        assert_eq!(p.upper_hash(1, 0).unwrap(), Some(Hash([1; 32])));
        assert_eq!(p.upper_hash(2, 3).unwrap(), Some(Hash([11; 32])));
        assert_eq!(p.upper_hash(0, 3_334).unwrap(), None);
        assert_eq!(p.upper_hash(5, 0).unwrap(), None);
    }
}
