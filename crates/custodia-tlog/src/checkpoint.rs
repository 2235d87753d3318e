//! C2SP tlog-checkpoint note text: origin, decimal tree size, base64 root hash, optional
//! extension lines.

use crate::hash::Hash;
use thiserror::Error;

/// Largest checkpoint text accepted, before any parsing. A checkpoint is three short lines;
/// extension lines are discouraged by the spec. Kept below [`crate::MAX_NOTE_SIZE`].
pub const MAX_CHECKPOINT_SIZE: usize = 8 * 1024;
/// Most extension lines accepted.
pub const MAX_CHECKPOINT_EXTENSIONS: usize = 16;
/// Largest tree size a checkpoint may state (`2^63 - 1`, Go's limit).
pub const MAX_CHECKPOINT_TREE_SIZE: u64 = i64::MAX as u64;

/// Parsing or building a checkpoint.
#[derive(Debug, Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum CheckpointError {
    /// Text longer than [`MAX_CHECKPOINT_SIZE`].
    #[error("checkpoint of {len} bytes exceeds {max}")]
    TooLarge {
        /// Length.
        len: usize,
        /// Limit.
        max: usize,
    },
    /// Does not end in a newline, has fewer than three lines, an empty line, or control
    /// characters.
    #[error("malformed checkpoint: {0}")]
    Malformed(&'static str),
    /// The origin line is empty or contains characters a note forbids.
    #[error("invalid origin line")]
    InvalidOrigin,
    /// The size line is not a decimal without leading zeros, or exceeds 2^63-1.
    #[error("invalid tree size line")]
    InvalidSize,
    /// The root hash is not canonical padded base64 of 32 bytes.
    #[error("invalid root hash line")]
    InvalidHash,
    /// Too many extension lines, or an extension line is empty.
    #[error("invalid extension lines")]
    InvalidExtension,
}

/// A checkpoint body: what a log signs about one tree head.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Checkpoint {
    origin: String,
    size: u64,
    hash: Hash,
    extensions: Vec<String>,
}

fn check_line(s: &str) -> bool {
    !s.is_empty() && !s.chars().any(|c| c < ' ')
}

impl Checkpoint {
    /// A checkpoint with no extension lines.
    pub fn new(origin: &str, size: u64, hash: Hash) -> Result<Checkpoint, CheckpointError> {
        Checkpoint::with_extensions(origin, size, hash, Vec::new())
    }

    /// A checkpoint with extension lines (each non-empty, no newline).
    pub fn with_extensions(
        origin: &str,
        size: u64,
        hash: Hash,
        extensions: Vec<String>,
    ) -> Result<Checkpoint, CheckpointError> {
        if !check_line(origin) {
            return Err(CheckpointError::InvalidOrigin);
        }
        if size > MAX_CHECKPOINT_TREE_SIZE {
            return Err(CheckpointError::InvalidSize);
        }
        if extensions.len() > MAX_CHECKPOINT_EXTENSIONS || !extensions.iter().all(|e| check_line(e)) {
            return Err(CheckpointError::InvalidExtension);
        }
        let cp = Checkpoint { origin: origin.to_owned(), size, hash, extensions };
        let len = cp.to_text().len();
        if len > MAX_CHECKPOINT_SIZE {
            return Err(CheckpointError::TooLarge { len, max: MAX_CHECKPOINT_SIZE });
        }
        Ok(cp)
    }

    /// Parses a checkpoint note text (the signed part of the note, ending in a newline).
    pub fn parse(text: &str) -> Result<Checkpoint, CheckpointError> {
        if text.len() > MAX_CHECKPOINT_SIZE {
            return Err(CheckpointError::TooLarge { len: text.len(), max: MAX_CHECKPOINT_SIZE });
        }
        let body = text.strip_suffix('\n').ok_or(CheckpointError::Malformed("must end with a newline"))?;
        if body.chars().any(|c| c < ' ' && c != '\n') {
            return Err(CheckpointError::Malformed("control character"));
        }
        let mut lines = body.split('\n');
        let origin = lines.next().filter(|l| !l.is_empty()).ok_or(CheckpointError::InvalidOrigin)?;
        let size_line = lines.next().ok_or(CheckpointError::Malformed("fewer than three lines"))?;
        let hash_line = lines.next().ok_or(CheckpointError::Malformed("fewer than three lines"))?;
        let size = parse_decimal(size_line).ok_or(CheckpointError::InvalidSize)?;
        if size > MAX_CHECKPOINT_TREE_SIZE {
            return Err(CheckpointError::InvalidSize);
        }
        let hash = Hash::from_base64(hash_line).ok_or(CheckpointError::InvalidHash)?;
        let mut extensions = Vec::new();
        for l in lines {
            if l.is_empty() || extensions.len() == MAX_CHECKPOINT_EXTENSIONS {
                return Err(CheckpointError::InvalidExtension);
            }
            extensions.push(l.to_owned());
        }
        Ok(Checkpoint { origin: origin.to_owned(), size, hash, extensions })
    }

    /// The note text: `origin\nsize\nbase64(hash)\n[ext\n...]`.
    pub fn to_text(&self) -> String {
        let mut s = format!("{}\n{}\n{}\n", self.origin, self.size, self.hash.to_base64());
        for e in &self.extensions {
            s.push_str(e);
            s.push('\n');
        }
        s
    }

    /// The origin line: the log's identity.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// Tree size.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Root hash.
    pub fn hash(&self) -> Hash {
        self.hash
    }

    /// Extension lines.
    pub fn extensions(&self) -> &[String] {
        &self.extensions
    }
}

/// ASCII decimal, no sign, no leading zeros (except "0"), fits in u64.
pub(crate) fn parse_decimal(s: &str) -> Option<u64> {
    if s.is_empty() || s.len() > 20 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if s.len() > 1 && s.starts_with('0') {
        return None;
    }
    s.parse().ok()
}

/// A checkpoint whose note verified against trusted keys and whose origin is the expected one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignedCheckpoint {
    /// The parsed checkpoint.
    pub checkpoint: Checkpoint,
    /// The opened note: which keys signed, cosignature timestamps.
    pub note: crate::note::Note,
}

/// Opening a signed checkpoint.
#[derive(Debug, Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum OpenCheckpointError {
    /// The note did not open (form, size, or no verified signature).
    #[error(transparent)]
    Note(#[from] crate::note::NoteError),
    /// The note text is not a valid checkpoint.
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    /// The checkpoint names a different log.
    #[error("checkpoint origin {got:?}, expected {expected:?}")]
    OriginMismatch {
        /// Origin the caller trusts.
        expected: String,
        /// Origin in the checkpoint.
        got: String,
    },
    /// The key named by the origin did not sign it (only other known keys did).
    #[error("checkpoint not signed by the log key {0}")]
    NotSignedByLog(String),
}

impl SignedCheckpoint {
    /// Opens `msg` with `verifiers`, parses the checkpoint, and checks that its origin is
    /// `origin` and that `log_key` (the log's own key, which must be in `verifiers`) signed it.
    /// Witness cosignatures that verified are listed in `note`.
    pub fn open(
        msg: &[u8],
        origin: &str,
        log_key: &crate::note::NoteVerifier,
        verifiers: &crate::note::Verifiers,
    ) -> Result<SignedCheckpoint, OpenCheckpointError> {
        let note = crate::note::open_note(msg, verifiers)?;
        let checkpoint = Checkpoint::parse(note.text())?;
        if checkpoint.origin() != origin {
            return Err(OpenCheckpointError::OriginMismatch {
                expected: origin.to_owned(),
                got: checkpoint.origin().to_owned(),
            });
        }
        if !note.is_signed_by(log_key) {
            return Err(OpenCheckpointError::NotSignedByLog(log_key.to_vkey()));
        }
        Ok(SignedCheckpoint { checkpoint, note })
    }
}
