//! The outbox: sealed captures kept on the lane until the vault acknowledges them.
//!
//! Crash safety comes from the order of durable steps, each batched over every capture of a pass:
//!
//! 1. each sealed capture is written as `<seq>.sealed` and its input list as `<seq>.inputs`
//!    (temporary file, fsync, rename), then the outbox folder is synced once;
//! 2. the plaintext inputs are deleted and the inbox folder is synced once;
//! 3. each `<seq>.sealed` is renamed to `<seq>.cap`, which the uploader sends, and `<seq>.inputs`
//!    is removed; the outbox folder is synced once.
//!
//! A crash before step 1 completes leaves the inputs, which are sealed again (any partial files
//! are removed at start). A crash after it leaves a `<seq>.sealed` whose recorded inputs
//! [`Outbox::recover`] deletes before finishing step 3, so an input is never sealed twice and never
//! lost. A capture file is deleted only after the vault's acknowledgement.
//!
//! Sequence numbers are reserved in blocks, durably, before use: after a crash the lane skips
//! the rest of the block rather than ever reusing a number (a reused number with other content
//! is what the vault treats as a replay or a forked device).

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::LaneError;

/// How many sequence numbers one durable reservation covers.
const SEQUENCE_BLOCK: u64 = 1000;

/// An input file consumed by a capture.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct ConsumedInput {
    /// Its file name in the inbox.
    pub name: String,
    /// Hex SHA-256 of its content when it was sealed: a file replaced since is not deleted.
    pub sha256: String,
}

/// A sealed capture ready to be staged.
pub struct Staged {
    /// Its sequence number.
    pub sequence: u64,
    /// The sealed capture.
    pub sealed: Vec<u8>,
    /// The inputs it consumed.
    pub inputs: Vec<ConsumedInput>,
}

/// The outbox folder and the sequence reservation.
pub struct Outbox {
    dir: PathBuf,
    inbox: PathBuf,
    reservation_file: PathBuf,
    next: u64,
    reserved_until: u64,
}

impl Outbox {
    /// Opens the outbox, recovering from any interrupted pass.
    pub fn open(dir: &Path, inbox: &Path, state: &Path) -> Result<Self, LaneError> {
        let reservation_file = state.join("sequence");
        let reserved_until = match fs::read_to_string(&reservation_file) {
            Ok(text) => text
                .trim()
                .parse::<u64>()
                .map_err(|_| LaneError::Config(format!("{} is not a number", reservation_file.display())))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
            Err(e) => return Err(LaneError::io(&reservation_file, e)),
        };
        let mut outbox = Self {
            dir: dir.to_path_buf(),
            inbox: inbox.to_path_buf(),
            reservation_file,
            // Everything below the last reservation may have been used before a crash.
            next: reserved_until,
            reserved_until,
        };
        outbox.recover()?;
        Ok(outbox)
    }

    /// The next sequence number, reserving a new block durably when the current one runs out.
    pub fn next_sequence(&mut self) -> Result<u64, LaneError> {
        if self.next >= self.reserved_until {
            let until = self.next + SEQUENCE_BLOCK;
            write_durably(&self.reservation_file, until.to_string().as_bytes())?;
            self.reserved_until = until;
        }
        let sequence = self.next;
        self.next += 1;
        Ok(sequence)
    }

    /// Stages a pass's captures and consumes their inputs (steps 1–3 of the module doc).
    pub fn commit(&mut self, staged: Vec<Staged>) -> Result<(), LaneError> {
        if staged.is_empty() {
            return Ok(());
        }
        for capture in &staged {
            write_synced(&self.sealed_path(capture.sequence), &capture.sealed)?;
            let inputs = serde_json::to_vec(&capture.inputs).expect("input list serialises");
            write_synced(&self.inputs_path(capture.sequence), &inputs)?;
        }
        sync_dir(&self.dir)?;
        for capture in &staged {
            delete_inputs(&self.inbox, &capture.inputs)?;
        }
        sync_dir(&self.inbox)?;
        for capture in &staged {
            self.publish(capture.sequence)?;
        }
        sync_dir(&self.dir)
    }

    /// Finishes any interrupted pass and removes partial files.
    pub fn recover(&mut self) -> Result<(), LaneError> {
        let mut finished = false;
        for entry in fs::read_dir(&self.dir).map_err(|e| LaneError::io(&self.dir, e))? {
            let entry = entry.map_err(|e| LaneError::io(&self.dir, e))?;
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.ends_with(".tmp") {
                fs::remove_file(&path).map_err(|e| LaneError::io(&path, e))?;
                finished = true;
            } else if let Some(sequence) = name.strip_suffix(".sealed").and_then(|s| s.parse::<u64>().ok()) {
                let inputs_path = self.inputs_path(sequence);
                if let Ok(json) = fs::read(&inputs_path) {
                    let inputs: Vec<ConsumedInput> = serde_json::from_slice(&json)
                        .map_err(|e| LaneError::Config(format!("{}: {e}", inputs_path.display())))?;
                    delete_inputs(&self.inbox, &inputs)?;
                    sync_dir(&self.inbox)?;
                }
                self.publish(sequence)?;
                finished = true;
            }
        }
        if finished {
            sync_dir(&self.dir)?;
        }
        Ok(())
    }

    fn publish(&self, sequence: u64) -> Result<(), LaneError> {
        let sealed = self.sealed_path(sequence);
        let cap = self.capture_path(sequence);
        fs::rename(&sealed, &cap).map_err(|e| LaneError::io(&cap, e))?;
        let inputs = self.inputs_path(sequence);
        match fs::remove_file(&inputs) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(LaneError::io(&inputs, e)),
        }
    }

    /// Sealed captures waiting for upload, in sequence order.
    pub fn pending(&self) -> Result<Vec<(u64, PathBuf)>, LaneError> {
        pending_in(&self.dir)
    }

    fn sealed_path(&self, sequence: u64) -> PathBuf {
        self.dir.join(format!("{sequence:020}.sealed"))
    }
    fn inputs_path(&self, sequence: u64) -> PathBuf {
        self.dir.join(format!("{sequence:020}.inputs"))
    }
    fn capture_path(&self, sequence: u64) -> PathBuf {
        self.dir.join(format!("{sequence:020}.cap"))
    }
}

/// The `<seq>.cap` files in an outbox folder, in sequence order.
pub fn pending_in(dir: &Path) -> Result<Vec<(u64, PathBuf)>, LaneError> {
    let mut found = Vec::new();
    for entry in fs::read_dir(dir).map_err(|e| LaneError::io(dir, e))? {
        let entry = entry.map_err(|e| LaneError::io(dir, e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if let Some(sequence) = name.strip_suffix(".cap").and_then(|s| s.parse::<u64>().ok()) {
            found.push((sequence, entry.path()));
        }
    }
    found.sort();
    Ok(found)
}

/// Deletes each input whose content is still what was consumed (a file since replaced under the
/// same name is new input and stays).
pub(crate) fn delete_inputs(inbox: &Path, inputs: &[ConsumedInput]) -> Result<(), LaneError> {
    for input in inputs {
        let path = inbox.join(&input.name);
        // Zeroizing: the input may be a plaintext image.
        match fs::read(&path).map(zeroize::Zeroizing::new) {
            Ok(bytes) if hex::encode(Sha256::digest(&bytes[..])) == input.sha256 => {
                fs::remove_file(&path).map_err(|e| LaneError::io(&path, e))?;
            }
            // Replaced by a new file of the same name since it was sealed: that one is new input.
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(LaneError::io(&path, e)),
        }
    }
    Ok(())
}

fn write_synced(path: &Path, bytes: &[u8]) -> Result<(), LaneError> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let mut file =
        OpenOptions::new().write(true).create(true).truncate(true).open(&tmp).map_err(|e| LaneError::io(&tmp, e))?;
    file.write_all(bytes).map_err(|e| LaneError::io(&tmp, e))?;
    file.sync_data().map_err(|e| LaneError::io(&tmp, e))?;
    fs::rename(&tmp, path).map_err(|e| LaneError::io(path, e))
}

/// Writes a file so that a crash leaves the old content or the new, never a mix.
pub fn write_durably(path: &Path, bytes: &[u8]) -> Result<(), LaneError> {
    write_synced(path, bytes)?;
    sync_dir(path.parent().unwrap_or(Path::new(".")))
}

pub(crate) fn sync_dir(dir: &Path) -> Result<(), LaneError> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(|e| LaneError::io(dir, e))
}
