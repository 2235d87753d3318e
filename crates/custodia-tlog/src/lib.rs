//! Transparency-log math for Custodia's audit log: everything an outside auditor needs to
//! check the log offline with nothing but the log's public key.
//!
//! It implements RFC 6962 Merkle-tree hashing with inclusion ("record") and consistency
//! ("tree") proofs over the stored-hash layout of Go's `golang.org/x/mod/sumdb/tlog`;
//! [C2SP tlog-tiles](https://c2sp.org/tlog-tiles) tiles, paths and entry bundles;
//! [C2SP tlog-checkpoint](https://c2sp.org/tlog-checkpoint) checkpoints;
//! [C2SP signed-note](https://c2sp.org/signed-note) Ed25519 notes with Go-compatible key
//! strings; [C2SP tlog-cosignature](https://c2sp.org/tlog-cosignature) `cosignature/v1`
//! witness cosignatures; [C2SP tlog-proof](https://c2sp.org/tlog-proof) files; and whole-log
//! audits with fork detection.
//!
//! It is transport-agnostic: there is no HTTP, no file or object-store access, no clock, no
//! RNG of its own and no async. Storage comes in through [`HashReader`], [`TileReader`] and
//! [`TileSource`]; times (cosignature timestamps) and randomness (key generation) are passed
//! in. It does not decide policy either: which witnesses make a quorum, how old a checkpoint
//! may be, or what an entry means are the caller's business. It does not implement ML-DSA
//! cosignatures, ECDSA note keys, or the tlog-witness protocol.
//!
//! ```
//! use custodia_tlog::{
//!     Checkpoint, KeyName, MemoryHashStore, NoteSigner, SignedCheckpoint, TlogProof, Verifiers,
//!     prove_record,
//! };
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! // The sequencer appends events and keeps every stored hash.
//! let mut log = MemoryHashStore::new();
//! for event in [&b"ingested lane-7/42"[..], b"accessed lane-7/42 case 2026-118", b"exported x9"] {
//!     log.append(event);
//! }
//!
//! // It signs a checkpoint with the log key (an HSM or key file in production).
//! let origin = "custodia.example/audit";
//! let key = ed25519_dalek::SigningKey::from_bytes(&[7; 32]);
//! let signer = NoteSigner::from_signing_key(KeyName::new(origin)?, key);
//! let checkpoint = Checkpoint::new(origin, log.tree_size(), log.root())?;
//! let signed = signer.sign(&checkpoint.to_text())?;
//!
//! // A tlog-proof file for event 1 is self-contained...
//! let proof = TlogProof {
//!     extra: None,
//!     index: 1,
//!     proof: prove_record(log.tree_size(), 1, &log)?,
//!     checkpoint: signed.clone(),
//! };
//! let file = proof.to_text();
//!
//! // ...and an auditor holding only the verifier key checks it offline.
//! let vkey = signer.verifier().to_vkey();
//! let log_key = custodia_tlog::NoteVerifier::from_vkey(&vkey)?;
//! let trusted: Verifiers = [log_key.clone()].into_iter().collect();
//! let ok = TlogProof::parse(file.as_bytes())?.verify(
//!     b"accessed lane-7/42 case 2026-118", origin, &log_key, &trusted)?;
//! assert_eq!(ok.checkpoint.size(), 3);
//! assert!(SignedCheckpoint::open(signed.as_bytes(), origin, &log_key, &trusted).is_ok());
//! # Ok(()) }
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod append;
mod checkpoint;
mod hash;
mod note;
mod proof_file;
mod tile;
mod tree;
mod verify;

pub use append::{Appender, MemoryHashStore};
pub use checkpoint::{
    Checkpoint, CheckpointError, MAX_CHECKPOINT_EXTENSIONS, MAX_CHECKPOINT_SIZE, MAX_CHECKPOINT_TREE_SIZE,
    OpenCheckpointError, SignedCheckpoint,
};
pub use hash::{EMPTY_TREE_HASH, HASH_SIZE, Hash, leaf_hash, node_hash};
pub use note::{
    CosignatureSigner, KeyName, MAX_KEY_NAME_LEN, MAX_NOTE_SIGNATURES, MAX_NOTE_SIZE, Note, NoteError, NoteSignature,
    NoteSigner, NoteVerifier, SignatureType, Verifiers, add_signature_lines, key_id, open_note,
};
pub use proof_file::{
    MAX_EXTRA_SIZE, MAX_PROOF_FILE_SIZE, MAX_PROOF_HASHES, TLOG_PROOF_HEADER, TlogProof, TlogProofError,
};
pub use tile::{
    EntryTile, MAX_ENTRY_BUNDLE_SIZE, MAX_ENTRY_SIZE, MAX_TILE_LEVEL, MAX_TILE_PATH_LEN, TILE_HEIGHT, TILE_WIDTH, Tile,
    TileError, TileHashReader, TilePath, TileReader, format_entry_bundle, hash_from_tile, new_tiles,
    parse_entry_bundle, parse_tile_path, read_tile_data, stored_hashes_from_tile, tile_for_index,
};
pub use tree::{
    HashReader, MAX_TREE_SIZE, ProofError, ReadError, RecordProof, TreeProof, check_record, check_tree,
    frontier_indexes, prove_record, prove_tree, record_proof_len, root_from_frontier, split_stored_hash_index,
    stored_hash_count, stored_hash_index, stored_hashes_for_record, stored_hashes_for_record_hash, tree_hash,
};
pub use verify::{
    PROGRESS_INTERVAL, TileSource, VerifyError, check_consistency, detect_fork, verify_entries, verify_hash_store,
    verify_tiled_log,
};

/// The Ed25519 implementation this crate's key types wrap, re-exported so callers can build
/// keys from HSM- or file-held bytes.
pub use ed25519_dalek;
