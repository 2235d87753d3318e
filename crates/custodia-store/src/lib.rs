//! Custodia's storage tier: where the vault keeps keys, its index and the sealed captures.
//!
//! - [`keystore`]: the [`Keystore`] trait every key backend implements, and
//!   [`file_keystore::FileKeystore`], the encrypted-file default (Argon2id passphrase or a 0600
//!   key file), and [`pkcs11_keystore::Pkcs11Keystore`], the same trait over an HSM (PKCS#11).
//! - [`index`]: the SQLite index of devices, key epochs and records. Plates only as blind-index
//!   values; no images; nothing that is personal data in plaintext.
//! - [`access`]: principals, token hashes, grants, break-glass requests and read counts
//!   (`access.sqlite3`); no record data.
//! - [`blobs`]: sealed captures as received, through `object_store` (local directory by default),
//!   with one `syncfs` per batch for durable acknowledgement.
//!
//! What this crate is not: it makes no decisions. Which device may submit, which epoch covers a
//! capture, who may read a record: those are the vault's and the policy's. This crate stores and
//! fetches, durably.
//!
//! ```no_run
//! use custodia_store::index::Index;
//! let index = Index::open(std::path::Path::new("vault/index.sqlite3"))?;
//! println!("{} records", index.record_count()?);
//! # Ok::<(), custodia_store::index::IndexError>(())
//! ```

#![forbid(unsafe_code)]

pub mod access;
pub mod blobs;
pub mod faulty;
pub mod file_keystore;
pub mod index;
pub mod keystore;
pub mod pkcs11_keystore;

pub use keystore::{KeyName, KeyState, Keystore, KeystoreError};
pub use pkcs11_keystore::Pkcs11Keystore;
