//! Sealed captures: how a lane device encrypts and signs every capture before its first write to
//! disk, so that only the vault, holding the epoch private keys, can read it.
//!
//! Implements the sealed-capture format v1 (`docs/formats/sealed-capture.md`) and the signed
//! epoch set (`docs/formats/epoch-set.md`, module [`epochs`]). A capture is a plaintext header,
//! then the AES-256-GCM ciphertexts of its parts, then an Ed25519 device signature over
//! everything before it. Parts are grouped by retention class; each group's fresh data key is
//! wrapped with RFC 9180 HPKE (base mode, DHKEM(P-256, HKDF-SHA256) / HKDF-SHA256 / AES-256-GCM)
//! to that class's current epoch public key. HPKE is implemented here on RustCrypto primitives,
//! with the P-256 scalar multiplications in AWS-LC ([`hpke`], [`EpochSecretKey`]), so the
//! recipient's Diffie-Hellman step can run in an HSM through [`Decapsulator`]; it is tested
//! against the RFC 9180 test vectors.
//!
//! What it does **not** do: no I/O, no clock, no RNG of its own (all passed in); no key storage
//! (a keystore implements [`Decapsulator`]); no policy about which device, epoch or time is
//! acceptable — the vault decides that from the verified header. Parsing checks structure and
//! bounds only; trust nothing in a capture before [`SealedCapture::verify_signature`].
//!
//! ```
//! use custodia_seal::*;
//! use rand_core::OsRng;
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let device = DeviceSigningKey::generate(&mut OsRng);
//! let epoch = EpochSecretKey::generate(&mut OsRng); // held by the vault's keystore
//! let epoch_pk = epoch.public_key(); // published in a signed epoch set
//!
//! let header = CaptureHeader {
//!     device_id: "00112233445566778899aabbccddeeff".parse()?,
//!     site: SiteName::new("anzalduas")?,
//!     lane: LaneName::new("lane-07")?,
//!     capture_time_ms: 1_700_000_000_000,
//!     sequence: 42,
//! };
//! let groups = [GroupToSeal {
//!     class: RetentionClass::Plate,
//!     epoch_id: EpochId([7; 16]),
//!     epoch_key: &epoch_pk,
//!     parts: vec![
//!         PartToSeal { kind: PartKind::Metadata, plaintext: br#"{"plate":"ABC123"}"# },
//!         PartToSeal { kind: PartKind::Jpeg, plaintext: b"\xff\xd8...jpeg..." },
//!     ],
//! }];
//! let sealed = seal(&header, &groups, &device, &mut OsRng)?;
//!
//! // In the vault:
//! let capture = SealedCapture::parse(&sealed)?;
//! capture.verify_signature(&device.verifying_key())?;
//! let (g, p) = capture.metadata_part().expect("has metadata");
//! let key = capture.open_data_key(g, &epoch)?;
//! assert_eq!(&capture.open_part(g, p, &key)?[..], br#"{"plate":"ABC123"}"#);
//! # Ok(())
//! # }
//! ```

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod capture;
pub mod epochs;
mod error;
pub mod hpke;
mod ids;
mod keys;
pub mod metadata;
#[cfg(feature = "test-support")]
pub mod test_capture;

pub use capture::{
    CaptureHeader, DATA_KEY_INFO, DataKey, FORMAT_VERSION, GroupToSeal, MAGIC, MAX_CAPTURE_BYTES, MAX_GROUPS,
    MAX_PART_BYTES, MAX_PART_PLAINTEXT_BYTES, MAX_PARTS_PER_GROUP, PartToSeal, SIGNATURE_CONTEXT, SIGNATURE_LEN,
    SUITE_P256_SHA256_AES256GCM, SealedCapture, SealedGroup, SealedPart, WRAPPED_KEY_LEN, WrappedDataKey,
    data_key_binding, seal, unwrap_data_key, wrap_data_key,
};
pub use error::{DecapError, EpochSetError, KeyError, OpenError, ParseError, SealError, VerifyError};
pub use hpke::derive_key_pair;
pub use ids::{DeviceId, EpochId, LaneName, MAX_NAME_LEN, PartKind, RetentionClass, SiteName};
pub use keys::{
    Decapsulator, DeviceSigningKey, DeviceVerifyingKey, EpochPublicKey, EpochSecretKey, P256_POINT_LEN, SharedSecretX,
    VaultSigningKey, VaultVerifyingKey,
};
