//! A witness (C2SP tlog-witness `add-checkpoint`, C2SP tlog-cosignature `cosignature/v1`):
//! the process an oversight body runs so that a vault cannot show two histories.
//!
//! The vault sends `old <size>`, a consistency proof from that size, and its new signed
//! checkpoint. The witness checks the log's signature, that `old` is the size it last cosigned
//! (else it answers with that size, HTTP 409, so the vault can retry), that the proof shows the
//! new tree extends the one it cosigned, records the new checkpoint durably, and only then
//! returns its cosignature line. A vault that forked its log (two checkpoints of one size with
//! different roots, or a larger tree that does not contain the cosigned one) gets no
//! cosignature, and the refusal says which.
//!
//! Push model: `custodia serve --witness URL` sends each new checkpoint to each witness and
//! publishes the cosignatures it gets back in `/log/checkpoint`. What this is not: a gossip
//! network, or a policy of how many witnesses an auditor requires (`--witness` on the auditor's
//! side). Time comes in as a parameter; the state file is the only storage.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use custodia_tlog::{
    Checkpoint, CosignatureSigner, Hash, NoteVerifier, SignedCheckpoint, Verifiers, check_consistency,
};

/// Largest request accepted: a checkpoint note plus 64 proof hashes and the `old` line.
pub const MAX_ADD_CHECKPOINT_SIZE: usize = custodia_tlog::MAX_NOTE_SIZE + 64 * 45 + 32;

/// Why a witness refused a checkpoint.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WitnessError {
    /// The request is not an add-checkpoint body.
    #[error("malformed request: {0}")]
    Malformed(&'static str),
    /// The checkpoint does not verify under the log key this witness follows.
    #[error("checkpoint not signed by the log this witness follows: {0}")]
    NotSigned(String),
    /// `old` is not the size this witness last cosigned: retry from `known_size`.
    #[error("this witness last cosigned size {known_size}, not {claimed}")]
    Conflict {
        /// The size the witness knows.
        known_size: u64,
        /// The size the request claimed.
        claimed: u64,
    },
    /// The new checkpoint does not extend the cosigned one: a fork or a rollback.
    #[error("refused: {0}")]
    Inconsistent(#[from] custodia_tlog::VerifyError),
    /// Reading or writing the witness's state failed.
    #[error("witness state {path}: {reason}")]
    State {
        /// The file.
        path: String,
        /// What failed.
        reason: String,
    },
}

/// A witness for one log.
pub struct Witness {
    signer: CosignatureSigner,
    log_key: NoteVerifier,
    state: PathBuf,
    lock: Mutex<()>,
}

/// Formats an add-checkpoint request body.
pub fn add_checkpoint_body(old_size: u64, proof: &[Hash], checkpoint: &str) -> String {
    let mut s = format!("old {old_size}\n");
    for h in proof {
        s.push_str(&h.to_base64());
        s.push('\n');
    }
    s.push('\n');
    s.push_str(checkpoint);
    s
}

/// Parses an add-checkpoint request body: `(old size, proof, checkpoint note)`.
pub fn parse_add_checkpoint(body: &[u8]) -> Result<(u64, Vec<Hash>, &str), WitnessError> {
    if body.len() > MAX_ADD_CHECKPOINT_SIZE {
        return Err(WitnessError::Malformed("too large"));
    }
    let s = std::str::from_utf8(body).map_err(|_| WitnessError::Malformed("not UTF-8"))?;
    let (first, mut rest) = s.split_once('\n').ok_or(WitnessError::Malformed("no old line"))?;
    let old = first
        .strip_prefix("old ")
        .filter(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) && (n.len() == 1 || !n.starts_with('0')))
        .and_then(|n| n.parse().ok())
        .ok_or(WitnessError::Malformed("bad old line"))?;
    let mut proof = Vec::new();
    loop {
        let (line, r) = rest.split_once('\n').ok_or(WitnessError::Malformed("no blank line before the checkpoint"))?;
        rest = r;
        if line.is_empty() {
            break;
        }
        if proof.len() == 64 {
            return Err(WitnessError::Malformed("proof too long"));
        }
        proof.push(Hash::from_base64(line).ok_or(WitnessError::Malformed("bad proof hash"))?);
    }
    Ok((old, proof, rest))
}

impl Witness {
    /// A witness signing with `signer`, following the log whose key is `log_key`, keeping the
    /// last cosigned checkpoint in `state`.
    pub fn new(signer: CosignatureSigner, log_key: NoteVerifier, state: &Path) -> Witness {
        Witness { signer, log_key, state: state.to_path_buf(), lock: Mutex::new(()) }
    }

    /// This witness's verifier key.
    pub fn verifier_key(&self) -> String {
        self.signer.verifier().to_vkey()
    }

    fn known(&self) -> Result<Verifiers, WitnessError> {
        Ok([self.log_key.clone()].into_iter().collect())
    }

    /// The last checkpoint this witness cosigned, if any.
    pub fn last(&self) -> Result<Option<Checkpoint>, WitnessError> {
        let state_err = |reason: String| WitnessError::State { path: self.state.display().to_string(), reason };
        match std::fs::read(&self.state) {
            Ok(bytes) => {
                let cp = SignedCheckpoint::open(&bytes, self.log_key.name().as_str(), &self.log_key, &self.known()?)
                    .map_err(|e| state_err(e.to_string()))?;
                Ok(Some(cp.checkpoint))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(state_err(e.to_string())),
        }
    }

    /// Handles one add-checkpoint request at time `now_secs`; returns the cosignature line.
    pub fn add_checkpoint(&self, body: &[u8], now_secs: u64) -> Result<String, WitnessError> {
        let (old_size, proof, note) = parse_add_checkpoint(body)?;
        let _one_at_a_time = self.lock.lock().unwrap_or_else(|p| p.into_inner());
        let new = SignedCheckpoint::open(note.as_bytes(), self.log_key.name().as_str(), &self.log_key, &self.known()?)
            .map_err(|e| WitnessError::NotSigned(e.to_string()))?
            .checkpoint;
        let last = self.last()?;
        let known_size = last.as_ref().map_or(0, Checkpoint::size);
        if old_size != known_size {
            return Err(WitnessError::Conflict { known_size, claimed: old_size });
        }
        match &last {
            Some(old) => check_consistency(old, &new, &proof)?,
            None if proof.is_empty() => {}
            None => return Err(WitnessError::Malformed("a proof from size 0 must be empty")),
        }
        let line =
            self.signer.signature_line(&new.to_text(), now_secs).map_err(|e| WitnessError::NotSigned(e.to_string()))?;
        if last.as_ref().is_none_or(|old| old.size() != new.size()) {
            super::write_durably(&self.state, note.as_bytes())
                .map_err(|e| WitnessError::State { path: self.state.display().to_string(), reason: e.to_string() })?;
        }
        Ok(line)
    }
}
