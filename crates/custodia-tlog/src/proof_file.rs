//! C2SP tlog-proof files: a self-contained, offline-verifiable proof that one entry is in the
//! log, carrying the index, the inclusion proof and the signed checkpoint.

use crate::checkpoint::{OpenCheckpointError, SignedCheckpoint, parse_decimal};
use crate::hash::{Hash, leaf_hash};
use crate::note::{MAX_NOTE_SIZE, NoteVerifier, Verifiers};
use crate::tree::{ProofError, RecordProof, check_record};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use thiserror::Error;

/// First line of every tlog-proof file.
pub const TLOG_PROOF_HEADER: &str = "c2sp.org/tlog-proof@v1";
/// Most hashes in an inclusion proof (a tree below 2^64 needs at most 64).
pub const MAX_PROOF_HASHES: usize = 64;
/// Largest `extra` payload accepted, decoded.
pub const MAX_EXTRA_SIZE: usize = 4096;
/// Largest proof file: header, extra, index and hashes plus a maximal signed note.
pub const MAX_PROOF_FILE_SIZE: usize = MAX_NOTE_SIZE + 2 * MAX_EXTRA_SIZE + MAX_PROOF_HASHES * 45 + 64;

/// Parsing or verifying a tlog-proof file.
#[derive(Debug, Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum TlogProofError {
    /// Larger than [`MAX_PROOF_FILE_SIZE`].
    #[error("proof file of {len} bytes exceeds {max}")]
    TooLarge {
        /// Length.
        len: usize,
        /// Limit.
        max: usize,
    },
    /// Not in tlog-proof form.
    #[error("malformed tlog-proof: {0}")]
    Malformed(&'static str),
    /// The embedded checkpoint did not open.
    #[error(transparent)]
    Checkpoint(#[from] OpenCheckpointError),
    /// The index is not below the checkpoint's tree size.
    #[error("index {index} is not in a tree of size {tree_size}")]
    IndexOutOfRange {
        /// Index in the proof.
        index: u64,
        /// Checkpoint tree size.
        tree_size: u64,
    },
    /// The inclusion proof does not lead from the entry to the checkpoint's root.
    #[error(transparent)]
    Proof(#[from] ProofError),
}

/// A parsed tlog-proof file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlogProof {
    /// Optional opaque, unauthenticated extra data.
    pub extra: Option<Vec<u8>>,
    /// Zero-based entry index.
    pub index: u64,
    /// Inclusion proof, leaf sibling first.
    pub proof: RecordProof,
    /// The signed checkpoint, verbatim.
    pub checkpoint: String,
}

impl TlogProof {
    /// Parses a proof file strictly (canonical base64, no leading zeros, size bounded first).
    pub fn parse(bytes: &[u8]) -> Result<TlogProof, TlogProofError> {
        if bytes.len() > MAX_PROOF_FILE_SIZE {
            return Err(TlogProofError::TooLarge { len: bytes.len(), max: MAX_PROOF_FILE_SIZE });
        }
        let s = std::str::from_utf8(bytes).map_err(|_| TlogProofError::Malformed("not UTF-8"))?;
        let rest = s
            .strip_prefix(TLOG_PROOF_HEADER)
            .and_then(|r| r.strip_prefix('\n'))
            .ok_or(TlogProofError::Malformed("missing header line"))?;
        let (mut line, mut rest) = rest.split_once('\n').ok_or(TlogProofError::Malformed("truncated"))?;
        let mut extra = None;
        if let Some(b64) = line.strip_prefix("extra ") {
            if b64.len() > MAX_EXTRA_SIZE.div_ceil(3) * 4 {
                return Err(TlogProofError::Malformed("extra too large"));
            }
            let e = STANDARD.decode(b64).map_err(|_| TlogProofError::Malformed("extra is not base64"))?;
            if STANDARD.encode(&e) != b64 {
                return Err(TlogProofError::Malformed("extra is not canonical base64"));
            }
            extra = Some(e);
            (line, rest) = rest.split_once('\n').ok_or(TlogProofError::Malformed("truncated"))?;
        }
        let index =
            line.strip_prefix("index ").and_then(parse_decimal).ok_or(TlogProofError::Malformed("bad index line"))?;
        let mut proof = Vec::new();
        loop {
            let (l, r) =
                rest.split_once('\n').ok_or(TlogProofError::Malformed("missing blank line before checkpoint"))?;
            rest = r;
            if l.is_empty() {
                break;
            }
            if proof.len() == MAX_PROOF_HASHES {
                return Err(TlogProofError::Malformed("too many proof hashes"));
            }
            proof.push(Hash::from_base64(l).ok_or(TlogProofError::Malformed("bad proof hash"))?);
        }
        if rest.is_empty() {
            return Err(TlogProofError::Malformed("missing checkpoint"));
        }
        Ok(TlogProof { extra, index, proof, checkpoint: rest.to_owned() })
    }

    /// The file text.
    pub fn to_text(&self) -> String {
        let mut s = format!("{TLOG_PROOF_HEADER}\n");
        if let Some(e) = &self.extra {
            s.push_str(&format!("extra {}\n", STANDARD.encode(e)));
        }
        s.push_str(&format!("index {}\n", self.index));
        for h in &self.proof {
            s.push_str(&h.to_base64());
            s.push('\n');
        }
        s.push('\n');
        s.push_str(&self.checkpoint);
        s
    }

    /// Verifies that `entry` is entry `index` of the log `origin` as of the embedded
    /// checkpoint, which must be signed by `log_key` (in `verifiers`, with any witness keys).
    pub fn verify(
        &self,
        entry: &[u8],
        origin: &str,
        log_key: &NoteVerifier,
        verifiers: &Verifiers,
    ) -> Result<SignedCheckpoint, TlogProofError> {
        self.verify_leaf_hash(leaf_hash(entry), origin, log_key, verifiers)
    }

    /// Like [`TlogProof::verify`], given the entry's leaf hash.
    pub fn verify_leaf_hash(
        &self,
        leaf: Hash,
        origin: &str,
        log_key: &NoteVerifier,
        verifiers: &Verifiers,
    ) -> Result<SignedCheckpoint, TlogProofError> {
        let sc = SignedCheckpoint::open(self.checkpoint.as_bytes(), origin, log_key, verifiers)?;
        let size = sc.checkpoint.size();
        if self.index >= size {
            return Err(TlogProofError::IndexOutOfRange { index: self.index, tree_size: size });
        }
        check_record(&self.proof, size, sc.checkpoint.hash(), self.index, leaf)?;
        Ok(sc)
    }
}
