//! The lane capture agent (`custodia lane run`): what runs on the lane device beside the cameras.
//!
//! Cameras drop images and ALPR engines drop their JSON into the lane's inbox. The agent pairs
//! them ([`assemble`]), parses the engine output verbatim ([`input`]: OpenALPR v1/v2, Rekor Scout
//! results and groups, Plate Recognizer snapshot and stream), strips every metadata segment from
//! the images without re-encoding ([`strip`]), seals each capture to the vault's published epoch
//! keys and signs it with the device key (`custodia-seal`), writes it to a crash-safe outbox
//! ([`outbox`]), deletes the plaintext, and uploads with retry and backoff ([`agent`]), deleting a
//! sealed capture only after the vault acknowledges it.
//!
//! What it is not: it holds no key that opens what it sealed (only the vault's *public* epoch
//! keys, in a set it verifies against the vault key pinned at enrolment), it keeps no plaintext
//! once a capture is sealed, and it does no ALPR itself.

#![forbid(unsafe_code)]

pub mod agent;
pub mod assemble;
pub mod config;
pub mod fingerprint;
pub mod input;
pub mod outbox;
pub mod strip;

use std::path::Path;

pub use agent::{Lane, LaneStatus};
pub use config::{LaneConfig, LaneDir};

/// Lane failures.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LaneError {
    /// The lane folder's settings or identity are missing or invalid.
    #[error("lane settings: {0}")]
    Config(String),
    /// File I/O on the lane folder failed.
    #[error("{path}: {source}")]
    Io {
        /// The path.
        path: String,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// The vault could not be reached or answered with an error.
    #[error("vault: {0}")]
    Vault(String),
    /// The vault's epoch set did not verify or parse.
    #[error("epoch set refused: {0}")]
    EpochSet(String),
    /// No epoch key covers a capture yet; it waits in the inbox.
    #[error("no epoch key: {0}")]
    NoEpoch(String),
    /// Sealing failed.
    #[error("sealing: {0}")]
    Seal(String),
}

impl LaneError {
    pub(crate) fn io(path: &Path, source: std::io::Error) -> Self {
        Self::Io { path: path.display().to_string(), source }
    }
}
