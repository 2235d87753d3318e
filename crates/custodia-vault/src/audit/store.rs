//! The durable log file: `<vault>/log/entries.ctl`, a sequence of batch frames.
//!
//! ```text
//! frame = "CTL1" | first: u64 BE | count: u32 BE | hashes: u32 BE
//!       | count × (len: u16 BE | entry bytes)
//!       | hashes × 32-byte stored hash            (the stored hashes the batch adds, in order)
//!       | SHA-256 of everything above in the frame
//! ```
//!
//! One batch is one frame, written with one `write` and made durable with one `fdatasync`.
//! On open every frame is read back: its checksum, its position (`first` must equal the number
//! of entries before it) and its stored hashes (recomputed from its entries) must all agree. A
//! frame that fails and reaches the end of the file is a torn tail from a crash mid-write: it was
//! never acknowledged, so it is cut off (and the cut is made durable). A bad frame followed by
//! more data is not a torn write but damage to durable history: the log refuses to open.
//!
//! Beside it, rebuilt at every open in unnamed temporary files ([`super::positions`]): each
//! frame's position (where its entries and its hash block start), the byte offset of every
//! [`OFFSET_STRIDE`]-th entry, and a copy of every stored hash at tree level [`CACHED_LEVEL`] or
//! above, so an inclusion proof reads only its few lowest hashes from the log's frames. An entry
//! between two remembered offsets is found by one read of the run of entries before it and a
//! walk along their length prefixes. These positions were kept in memory before (about 7 bytes
//! an entry); in a vault taking captures around the clock that was memory growing with every
//! capture, so memory now holds only a mark every 128 frames.

use std::fs::{File, OpenOptions};
use std::io::{BufReader, Read};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use super::positions::{FrameInfo, Positions};
use custodia_tlog::{
    Appender, HASH_SIZE, Hash, HashReader, MAX_ENTRY_SIZE, ReadError, TILE_HEIGHT, TILE_WIDTH, TilePath,
    format_entry_bundle, read_tile_data, stored_hash_count,
};
use sha2::{Digest as _, Sha256};

/// Frame magic and version.
const MAGIC: &[u8; 4] = b"CTL1";
const FRAME_HEADER: usize = 4 + 8 + 4 + 4;
/// Stored hashes at this tree level and above are also kept in memory.
pub const CACHED_LEVEL: u32 = 4;

/// Every this many entries (by index) the byte offset is kept in memory; see the module doc.
pub const OFFSET_STRIDE: u64 = 64;

/// Most entries in one frame: bounds what a damaged header can make the reader allocate.
pub const MAX_FRAME_ENTRIES: usize = 1 << 20;

/// Log storage failures.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LogError {
    /// Reading or writing the log file failed.
    #[error("audit log {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// Durable history is damaged: a bad frame that is not the file's tail.
    #[error("audit log {path} is damaged at byte {offset} (frame of entry {entry}): {reason}")]
    Corrupt {
        /// The file.
        path: String,
        /// Where the bad frame starts.
        offset: u64,
        /// The first entry index the frame should hold.
        entry: u64,
        /// What failed.
        reason: &'static str,
    },
    /// An entry larger than a C2SP entry bundle can carry.
    #[error("audit entry of {0} bytes is over the {MAX_ENTRY_SIZE}-byte limit")]
    EntryTooLarge(usize),
    /// A batch larger than [`MAX_FRAME_ENTRIES`].
    #[error("audit batch of {0} entries is too large")]
    BatchTooLarge(usize),
    /// Signing or formatting a checkpoint, tile or proof failed.
    #[error("audit log: {0}")]
    Signing(String),
    /// A request path that is not a C2SP tile or entry-bundle path.
    #[error("not a tile path: {0}")]
    BadTilePath(String),
    /// The log refused a write earlier (or a test injected a failure) and stays read-only.
    #[error("audit log is not writable: {0}")]
    Unavailable(String),
}

/// What opening the log found at its tail.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TornTail {
    /// Where the cut was made.
    pub offset: u64,
    /// How many bytes were dropped.
    pub dropped_bytes: u64,
}

/// The append-only log file with its position index and tree frontier.
pub struct LogFile {
    path: PathBuf,
    file: File,
    len: u64,
    positions: Positions,
    appender: Appender,
    torn: Option<TornTail>,
}

/// The upper-level hashes an append produced for one record (leaf first, then each subtree it
/// completes, one level up each): `(level - CACHED_LEVEL, hash)`.
fn upper_hashes(hashes: &[Hash]) -> impl Iterator<Item = (usize, &Hash)> {
    hashes.iter().enumerate().skip(CACHED_LEVEL as usize).map(|(level, h)| (level - CACHED_LEVEL as usize, h))
}

impl LogFile {
    /// Opens (or creates) the log file at `path`, checking every frame and cutting a torn tail.
    pub fn open(path: &Path) -> Result<LogFile, LogError> {
        Self::open_mode(path, true)
    }

    /// Opens the log file for reading only (auditors, `custodia audit`): checks every frame like
    /// [`LogFile::open`] but leaves a torn tail in place (it is simply not read).
    pub fn open_read_only(path: &Path) -> Result<LogFile, LogError> {
        Self::open_mode(path, false)
    }

    fn open_mode(path: &Path, write: bool) -> Result<LogFile, LogError> {
        let io = |source| LogError::Io { path: path.display().to_string(), source };
        let created = write && !path.exists();
        let file = OpenOptions::new().read(true).write(write).create(write).truncate(false).open(path).map_err(io)?;
        if created {
            file.sync_all().map_err(io)?;
            if let Some(dir) = path.parent() {
                File::open(dir).and_then(|d| d.sync_all()).map_err(io)?;
            }
        }
        if write {
            // One sequencer per log: a second process appending would interleave frames.
            // A handle being dropped in this process (a background task finishing its tick) may
            // hold it for a moment, so wait up to two seconds before giving up.
            let mut tries = 0;
            loop {
                match file.try_lock() {
                    Ok(()) => break,
                    Err(std::fs::TryLockError::WouldBlock) if tries < 40 => {
                        tries += 1;
                        std::thread::sleep(std::time::Duration::from_millis(50));
                    }
                    Err(std::fs::TryLockError::WouldBlock) => {
                        return Err(LogError::Unavailable(format!(
                            "{} is in use by another process (is `custodia serve` running on this vault?)",
                            path.display()
                        )));
                    }
                    Err(std::fs::TryLockError::Error(e)) => return Err(io(e)),
                }
            }
        }
        let file_len = file.metadata().map_err(io)?.len();
        let positions = Positions::new(path.parent().unwrap_or(Path::new(".")));
        let mut log =
            LogFile { path: path.to_path_buf(), file, len: 0, positions, appender: Appender::new(), torn: None };
        let mut reader = BufReader::with_capacity(1 << 20, log.file.try_clone().map_err(io)?);
        let mut buf = Vec::new();
        let mut hashes_out = Vec::new();
        loop {
            let offset = log.len;
            if offset == file_len {
                break;
            }
            match log.read_frame(&mut reader, &mut buf, &mut hashes_out, file_len - offset) {
                Ok(()) => {}
                Err((reason, reaches_end)) => {
                    if !reaches_end {
                        return Err(LogError::Corrupt {
                            path: path.display().to_string(),
                            offset,
                            entry: log.appender.size(),
                            reason,
                        });
                    }
                    if write {
                        log.file.set_len(offset).map_err(io)?;
                        log.file.sync_all().map_err(io)?;
                    }
                    log.torn = Some(TornTail { offset, dropped_bytes: file_len - offset });
                    break;
                }
            }
        }
        // Records a full temporary folder refuses stay in memory; see `positions`.
        let _ = log.positions.flush();
        Ok(log)
    }

    /// Reads one frame at `self.len`. On failure says why and whether the frame runs to the end
    /// of the file (a torn tail) or not (damage).
    fn read_frame(
        &mut self,
        reader: &mut impl Read,
        buf: &mut Vec<u8>,
        hashes_out: &mut Vec<Hash>,
        remaining: u64,
    ) -> Result<(), (&'static str, bool)> {
        let mut header = [0u8; FRAME_HEADER];
        if remaining < FRAME_HEADER as u64 {
            return Err(("truncated frame header", true));
        }
        reader.read_exact(&mut header).map_err(|_| ("read failed", true))?;
        if &header[..4] != MAGIC {
            return Err(("bad frame magic", false));
        }
        let first = u64::from_be_bytes(header[4..12].try_into().expect("8 bytes"));
        let count = u32::from_be_bytes(header[12..16].try_into().expect("4 bytes")) as usize;
        let nhashes = u32::from_be_bytes(header[16..20].try_into().expect("4 bytes")) as usize;
        if count == 0 || count > MAX_FRAME_ENTRIES || nhashes > 2 * count + 64 {
            return Err(("bad frame counts", false));
        }
        if first != self.appender.size() {
            return Err(("frame is out of sequence", false));
        }
        // Entries, read one length at a time (each bounded by u16), never past the file's end.
        buf.clear();
        buf.extend_from_slice(&header);
        let mut offsets = Vec::with_capacity(count);
        let mut left = remaining - FRAME_HEADER as u64;
        for _ in 0..count {
            if left < 2 {
                return Err(("truncated entry", true));
            }
            let at = buf.len();
            buf.extend_from_slice(&[0, 0]);
            reader.read_exact(&mut buf[at..at + 2]).map_err(|_| ("read failed", true))?;
            let len = u16::from_be_bytes([buf[at], buf[at + 1]]) as u64;
            left -= 2;
            if left < len {
                return Err(("truncated entry", true));
            }
            offsets.push(self.len + at as u64);
            buf.resize(at + 2 + len as usize, 0);
            reader.read_exact(&mut buf[at + 2..]).map_err(|_| ("read failed", true))?;
            left -= len;
        }
        let tail = (nhashes * HASH_SIZE + 32) as u64;
        if left < tail {
            return Err(("truncated hashes or checksum", true));
        }
        let hash_at = buf.len();
        buf.resize(hash_at + tail as usize, 0);
        reader.read_exact(&mut buf[hash_at..]).map_err(|_| ("read failed", true))?;
        let reaches_end = left == tail;
        let body_end = buf.len() - 32;
        if Sha256::digest(&buf[..body_end])[..] != buf[body_end..] {
            return Err(("frame checksum mismatch", reaches_end));
        }
        // Recompute the stored hashes from the entries; they must be the ones written.
        let first_stored = self.appender.next_stored_index();
        hashes_out.clear();
        let mut appender = self.appender.clone();
        let mut upper = Vec::new();
        for &off in &offsets {
            let at = (off - self.len) as usize;
            let len = u16::from_be_bytes([buf[at], buf[at + 1]]) as usize;
            let from = hashes_out.len();
            appender.append(&buf[at + 2..at + 2 + len], hashes_out);
            upper.extend(upper_hashes(&hashes_out[from..]).map(|(l, h)| (l, *h)));
        }
        if hashes_out.len() != nhashes
            || hashes_out.iter().zip(buf[hash_at..body_end].chunks_exact(HASH_SIZE)).any(|(h, s)| h.0 != s)
        {
            return Err(("stored hashes differ from the entries", false));
        }
        self.appender = appender;
        self.remember_frame(first, &offsets, first_stored, self.len + hash_at as u64, nhashes, &upper);
        self.len += buf.len() as u64;
        Ok(())
    }

    /// Records a frame just read or written: its position, the offsets of its entries whose
    /// index is a multiple of [`OFFSET_STRIDE`], and its stored hashes at [`CACHED_LEVEL`] and
    /// above (`(level - CACHED_LEVEL, hash)` in order).
    fn remember_frame(
        &mut self,
        first: u64,
        offsets: &[u64],
        first_stored: u64,
        hash_offset: u64,
        hashes: usize,
        upper: &[(usize, Hash)],
    ) {
        for (n, &offset) in offsets.iter().enumerate() {
            if (first + n as u64).is_multiple_of(OFFSET_STRIDE) {
                self.positions.push_stride_offset(offset);
            }
        }
        for (l, h) in upper {
            self.positions.push_upper(*l, h);
        }
        self.positions.push_frame(FrameInfo {
            first_entry: first,
            entries_offset: offsets[0],
            first_stored,
            hash_offset,
            // Bounded by the frame checks (at most 2 × MAX_FRAME_ENTRIES + 64).
            hashes: hashes as u32,
        });
    }

    /// Where entry `index` (which must be below the size) lies: in which frame, and in which
    /// run, the entries from the nearest remembered offset at or before it within that frame up
    /// to the next remembered offset in the frame or the frame's end.
    fn locate(&self, index: u64) -> Result<Run, LogError> {
        let io = |source| LogError::Io { path: self.path.display().to_string(), source };
        let (f, next_frame) = self.positions.frame_of_entry(index).map_err(io)?;
        let frame_end_entry = next_frame.unwrap_or(self.size());
        let stride = index / OFFSET_STRIDE;
        let (first, start) = if stride * OFFSET_STRIDE >= f.first_entry {
            (stride * OFFSET_STRIDE, self.positions.stride_offset(stride).map_err(io)?)
        } else {
            (f.first_entry, f.entries_offset)
        };
        let next = (stride + 1) * OFFSET_STRIDE;
        let end =
            if next < frame_end_entry { self.positions.stride_offset(stride + 1).map_err(io)? } else { f.hash_offset };
        Ok(Run { frame_end_entry, first, start, end })
    }

    /// Appends `entries` as one frame and makes it durable (one `fdatasync`). Returns the index
    /// of the first. On failure nothing is appended (a partial write is cut back).
    pub fn append<D: AsRef<[u8]>>(&mut self, entries: &[D]) -> Result<u64, LogError> {
        if entries.is_empty() {
            return Ok(self.appender.size());
        }
        if entries.len() > MAX_FRAME_ENTRIES {
            return Err(LogError::BatchTooLarge(entries.len()));
        }
        let first = self.appender.size();
        let first_stored = self.appender.next_stored_index();
        let mut appender = self.appender.clone();
        let mut hashes = Vec::with_capacity(entries.len() * 2 + 64);
        let mut upper = Vec::new();
        let mut size = FRAME_HEADER + 32;
        for e in entries {
            let e = e.as_ref();
            if e.len() > MAX_ENTRY_SIZE {
                return Err(LogError::EntryTooLarge(e.len()));
            }
            size += 2 + e.len();
            let at = hashes.len();
            appender.append(e, &mut hashes);
            upper.extend(upper_hashes(&hashes[at..]).map(|(l, h)| (l, *h)));
        }
        size += hashes.len() * HASH_SIZE;
        let mut frame = Vec::with_capacity(size);
        frame.extend_from_slice(MAGIC);
        frame.extend_from_slice(&first.to_be_bytes());
        frame.extend_from_slice(&(entries.len() as u32).to_be_bytes());
        frame.extend_from_slice(&(hashes.len() as u32).to_be_bytes());
        let mut offsets = Vec::with_capacity(entries.len());
        for e in entries {
            let e = e.as_ref();
            offsets.push(self.len + frame.len() as u64);
            frame.extend_from_slice(&(e.len() as u16).to_be_bytes());
            frame.extend_from_slice(e);
        }
        let hash_at = frame.len();
        for h in &hashes {
            frame.extend_from_slice(&h.0);
        }
        let sum = Sha256::digest(&frame);
        frame.extend_from_slice(&sum);
        let io = |source| LogError::Io { path: self.path.display().to_string(), source };
        let written = self.file.write_all_at(&frame, self.len).and_then(|()| self.file.sync_data());
        if let Err(e) = written {
            // Best effort: cut the partial frame so the next append starts clean. If this fails
            // too, open() will find and cut the torn tail.
            let _ = self.file.set_len(self.len);
            return Err(io(e));
        }
        self.remember_frame(first, &offsets, first_stored, self.len + hash_at as u64, hashes.len(), &upper);
        self.len += frame.len() as u64;
        self.appender = appender;
        // Records the temporary files refuse stay in memory and are retried; see `positions`.
        let _ = self.positions.flush();
        Ok(first)
    }

    /// Number of entries (the tree size).
    pub fn size(&self) -> u64 {
        self.appender.size()
    }

    /// Root of the whole tree.
    pub fn root(&self) -> Hash {
        self.appender.root()
    }

    /// What `open` cut off, if anything.
    pub fn torn_tail(&self) -> Option<&TornTail> {
        self.torn.as_ref()
    }

    /// The path of the file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Entry `index`. One positioned read of the run of at most [`OFFSET_STRIDE`] entries that
    /// holds it; to read many, [`LogFile::entries`] reads each frame's share once.
    pub fn entry(&self, index: u64) -> Result<Vec<u8>, LogError> {
        let io = |source| LogError::Io { path: self.path.display().to_string(), source };
        if index >= self.size() {
            return Err(io(std::io::Error::new(std::io::ErrorKind::NotFound, "no such entry")));
        }
        let run = self.locate(index)?;
        let mut entries = self.read_entries(run.start, run.end)?;
        for _ in run.first..index {
            entries.next().ok_or_else(|| self.lengths_disagree())?;
        }
        entries.next().map(<[u8]>::to_vec).ok_or_else(|| self.lengths_disagree())
    }

    /// The entries stored back to back in bytes `start..end`, as slices of one read.
    fn read_entries(&self, start: u64, end: u64) -> Result<RunEntries, LogError> {
        let io = |source| LogError::Io { path: self.path.display().to_string(), source };
        let mut buf = vec![0u8; (end - start) as usize];
        self.file.read_exact_at(&mut buf, start).map_err(io)?;
        Ok(RunEntries { buf, at: 0 })
    }

    fn lengths_disagree(&self) -> LogError {
        LogError::Io {
            path: self.path.display().to_string(),
            source: std::io::Error::new(std::io::ErrorKind::InvalidData, "entry lengths do not match the frame"),
        }
    }

    /// Entries `from..to` in order.
    ///
    /// Entries of one frame lie back to back in the file, so each frame's share of the range is
    /// one positioned read (an entry bundle is usually one or two reads, not 512).
    pub fn entries(&self, from: u64, to: u64) -> Result<Vec<Vec<u8>>, LogError> {
        let to = to.min(self.size());
        let mut out = Vec::with_capacity(to.saturating_sub(from) as usize);
        let mut i = from;
        while i < to {
            // One read per frame's share of the range: from the run holding entry i to the end
            // of the run holding the share's last entry (the frame's end when the share runs
            // to it).
            let run = self.locate(i)?;
            let end_entry = to.min(run.frame_end_entry);
            let end = self.locate(end_entry - 1)?.end;
            let mut entries = self.read_entries(run.start, end)?;
            for _ in run.first..i {
                entries.next().ok_or_else(|| self.lengths_disagree())?;
            }
            for _ in i..end_entry {
                out.push(entries.next().ok_or_else(|| self.lengths_disagree())?.to_vec());
            }
            // A frame read to its end must hold exactly its entries.
            if end_entry == run.frame_end_entry && !entries.is_empty() {
                return Err(self.lengths_disagree());
            }
            i = end_entry;
        }
        Ok(out)
    }

    /// The bytes of a C2SP hash tile or entry bundle, if this tree is large enough to hold it.
    pub fn tile(&self, path: TilePath) -> Result<Option<Vec<u8>>, LogError> {
        let size = self.size();
        match path {
            TilePath::Hash(t) => {
                let shift = u32::from(t.level) * TILE_HEIGHT;
                let level_size = if shift >= 64 { 0 } else { size >> shift };
                let end = t.n.checked_mul(u64::from(TILE_WIDTH)).and_then(|s| s.checked_add(u64::from(t.width)));
                if end.is_none_or(|e| e > level_size) {
                    return Ok(None);
                }
                let data = read_tile_data(&t, self).map_err(|e| LogError::Signing(format!("reading tile: {e}")))?;
                Ok(Some(data))
            }
            TilePath::Entries(b) => {
                let from = b.n.checked_mul(u64::from(TILE_WIDTH));
                let Some(to) = from.and_then(|f| f.checked_add(u64::from(b.width))) else { return Ok(None) };
                if to > size {
                    return Ok(None);
                }
                let entries = self.entries(to - u64::from(b.width), to)?;
                Ok(Some(format_entry_bundle(&entries).map_err(|e| LogError::Signing(e.to_string()))?))
            }
        }
    }

    /// Entries of the last frame (what the last batch appended), with the first's index.
    pub fn last_frame(&self) -> Result<(u64, Vec<Vec<u8>>), LogError> {
        match self.positions.last_frame() {
            None => Ok((0, Vec::new())),
            Some(f) => Ok((f.first_entry, self.entries(f.first_entry, self.size())?)),
        }
    }

    /// The frame whose hash block holds stored hash `index` (of a level below [`CACHED_LEVEL`]).
    fn frame_of_low_hash(&self, index: u64) -> Result<FrameInfo, ReadError> {
        let found = self.positions.frame_of_stored_hash(index).map_err(|e| ReadError::Backend(e.to_string()))?;
        found.filter(|f| index - f.first_stored < u64::from(f.hashes)).ok_or(ReadError::NotFound { index })
    }
}

/// Where an entry lies; see [`LogFile::locate`].
struct Run {
    /// One past the last entry of the frame holding it.
    frame_end_entry: u64,
    /// The run's first entry and its byte offset.
    first: u64,
    start: u64,
    /// Where the run ends (a remembered offset, or the frame's hash block).
    end: u64,
}

/// The entries of one positioned read, walked along their length prefixes. A length prefix
/// that runs past the read ends the walk (`next` gives `None`), as does the end of the read.
struct RunEntries {
    buf: Vec<u8>,
    at: usize,
}

impl RunEntries {
    fn next(&mut self) -> Option<&[u8]> {
        let (len, tail) = self.buf[self.at..].split_first_chunk::<2>()?;
        let len = usize::from(u16::from_be_bytes(*len));
        tail.get(..len)?;
        self.at += 2 + len;
        Some(&self.buf[self.at - len..self.at])
    }

    /// True when every byte of the read was walked.
    fn is_empty(&self) -> bool {
        self.at == self.buf.len()
    }
}

impl HashReader for LogFile {
    fn read_hashes(&self, indexes: &[u64]) -> Result<Vec<Hash>, ReadError> {
        let limit = stored_hash_count(self.size());
        let backend = |e: std::io::Error| ReadError::Backend(e.to_string());
        let mut out = vec![Hash([0; HASH_SIZE]); indexes.len()];
        if let Some(&index) = indexes.iter().find(|&&index| index >= limit) {
            return Err(ReadError::NotFound { index });
        }
        // Each index's (level, n), worked out once: the level decides where the hash is read from.
        let split: Vec<(u32, u64)> =
            indexes.iter().map(|&index| custodia_tlog::split_stored_hash_index(index)).collect();
        // Upper hashes come from the position files, all in one call: a proof's hashes of
        // neighbouring levels share a block there.
        let (upper, upper_at): (Vec<(usize, u64)>, Vec<usize>) = split
            .iter()
            .enumerate()
            .filter(|(_, (level, _))| *level >= CACHED_LEVEL)
            .map(|(k, &(level, n))| (((level - CACHED_LEVEL) as usize, n), k))
            .unzip();
        let found = self.positions.upper_hashes(&upper).map_err(backend)?;
        for (found, &k) in found.into_iter().zip(&upper_at) {
            out[k] = found.ok_or(ReadError::NotFound { index: indexes[k] })?;
        }
        // Low-level hashes are read from the frames' hash blocks. Indexes come sorted, and a
        // proof's low-level hashes lie close together: each run of them in one frame is one
        // lookup and one read, of at most 8 KB (hashes far apart in one large frame are read
        // apart). A proof's runs are short: they go through a small buffer on the stack, and
        // only a longer run takes one from the heap.
        const MAX_RUN: u64 = 256;
        const SHORT_RUN: usize = 32;
        let mut short_buf = [0u8; SHORT_RUN * HASH_SIZE];
        let mut long_buf = Vec::new();
        let mut k = 0;
        while k < indexes.len() {
            let index = indexes[k];
            if split[k].0 >= CACHED_LEVEL {
                k += 1;
                continue;
            }
            let f = self.frame_of_low_hash(index)?;
            let frame_end = f.first_stored + u64::from(f.hashes);
            let mut run_end = k + 1;
            while run_end < indexes.len()
                && indexes[run_end] < frame_end.min(index + MAX_RUN)
                && split[run_end].0 < CACHED_LEVEL
            {
                run_end += 1;
            }
            let (first, last) = (index, indexes[run_end - 1]);
            let span_len = ((last - first + 1) as usize) * HASH_SIZE;
            let span = if span_len <= short_buf.len() {
                &mut short_buf[..span_len]
            } else {
                long_buf.resize(span_len, 0);
                &mut long_buf[..]
            };
            self.file
                .read_exact_at(span, f.hash_offset + (first - f.first_stored) * HASH_SIZE as u64)
                .map_err(|_| ReadError::NotFound { index })?;
            for (slot, &i) in out[k..run_end].iter_mut().zip(&indexes[k..run_end]) {
                let at = ((i - first) as usize) * HASH_SIZE;
                slot.0.copy_from_slice(&span[at..at + HASH_SIZE]);
            }
            k = run_end;
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Entry `i` of the test log: lengths vary (0 to 700 bytes) so runs differ in size.
    fn entry_bytes(i: u64) -> Vec<u8> {
        let len = (i * 37 % 701) as usize;
        (0..len).map(|k| (i as usize + k) as u8).collect()
    }

    /// Frames of sizes that start and end on and off the offset stride.
    const FRAMES: [u64; 9] = [1, 63, 64, 65, 130, 3, 200, 64, 1];

    fn check_reads(log: &LogFile, total: u64) {
        for i in 0..total {
            assert_eq!(log.entry(i).unwrap(), entry_bytes(i), "entry {i}");
        }
        assert!(log.entry(total).is_err());
        let bounds = [0, 1, 2, 63, 64, 65, 127, 128, 129, 191, 192, 193, 300, 320, 500, total - 1, total];
        for &from in &bounds {
            for &to in &bounds {
                let want: Vec<Vec<u8>> = (from..to.max(from)).map(entry_bytes).collect();
                assert_eq!(log.entries(from, to).unwrap(), want, "entries {from}..{to}");
            }
        }
    }

    #[test]
    fn entries_are_found_from_sparse_offsets_across_frames_and_after_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("entries.ctl");
        let total: u64 = FRAMES.iter().sum();
        {
            let mut log = LogFile::open(&path).unwrap();
            let mut next = 0;
            for n in FRAMES {
                let batch: Vec<Vec<u8>> = (next..next + n).map(entry_bytes).collect();
                assert_eq!(log.append(&batch).unwrap(), next);
                next += n;
            }
            assert_eq!(log.positions.stride_count(), total.div_ceil(OFFSET_STRIDE));
            check_reads(&log, total);
        }
        let log = LogFile::open_mode(&path, false).unwrap();
        assert_eq!(log.size(), total);
        check_reads(&log, total);
    }

    /// Hashes, proofs and entries read through the position files, across many more frames
    /// than one position mark covers, as appended and after reopening.
    #[test]
    fn proofs_and_entries_read_through_the_position_files_across_many_frames() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("entries.ctl");
        let sizes = [1u64, 2, 3, 17];
        let frames = 3 * super::super::positions::FRAMES_PER_MARK as usize + 40;
        let check = |log: &LogFile, total: u64| {
            let root = log.root();
            assert_eq!(custodia_tlog::tree_hash(total, log).unwrap(), root);
            for n in (0..total).step_by(41).chain([total - 1]) {
                let proof = custodia_tlog::prove_record(total, n, log).unwrap();
                let leaf = custodia_tlog::leaf_hash(&log.entry(n).unwrap());
                custodia_tlog::check_record(&proof, total, root, n, leaf).unwrap();
                assert_eq!(log.entry(n).unwrap(), entry_bytes(n));
            }
            let old = total / 3;
            let old_root = custodia_tlog::tree_hash(old, log).unwrap();
            let proof = custodia_tlog::prove_tree(total, old, log).unwrap();
            custodia_tlog::check_tree(&proof, total, root, old, old_root).unwrap();
            let (first, last) = log.last_frame().unwrap();
            assert_eq!(first + last.len() as u64, total);
        };
        let mut next = 0;
        {
            let mut log = LogFile::open(&path).unwrap();
            for k in 0..frames {
                let n = sizes[k % sizes.len()];
                let batch: Vec<Vec<u8>> = (next..next + n).map(entry_bytes).collect();
                log.append(&batch).unwrap();
                next += n;
            }
            check(&log, next);
        }
        check(&LogFile::open(&path).unwrap(), next);
        check(&LogFile::open_read_only(&path).unwrap(), next);
    }
}
