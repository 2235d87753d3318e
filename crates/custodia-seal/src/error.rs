//! Error types, one per verb.

use thiserror::Error;

/// A key, identifier or name given as bytes or text is not valid.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum KeyError {
    /// Not the expected number of lowercase hex digits.
    #[error("not the expected lowercase hex encoding")]
    BadHex,
    /// The bytes are not a valid key of the expected type (for P-256: not an uncompressed point
    /// on the curve, or a scalar of zero or >= the group order; for Ed25519: not a point, or a
    /// small-order point).
    #[error("invalid key bytes")]
    InvalidKey,
    /// A site or lane name is empty, longer than 64 bytes, or has a byte outside `[A-Za-z0-9._-]`.
    #[error("a name must be 1 to 64 bytes of [A-Za-z0-9._-]")]
    BadName,
    /// Not one of `face`, `plate`, `overview`.
    #[error("unknown retention class")]
    UnknownClass,
}

/// [`seal`](crate::seal) refused its input. Nothing was encrypted or signed.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SealError {
    /// The number of groups is 0 or more than [`MAX_GROUPS`](crate::MAX_GROUPS).
    #[error("a capture needs 1 to {max} groups, got {0}", max = crate::MAX_GROUPS)]
    GroupCount(usize),
    /// A group has 0 parts or more than [`MAX_PARTS_PER_GROUP`](crate::MAX_PARTS_PER_GROUP).
    #[error("group {group} needs 1 to {max} parts, got {count}", max = crate::MAX_PARTS_PER_GROUP)]
    PartCount {
        /// Index of the offending group.
        group: usize,
        /// Its number of parts.
        count: usize,
    },
    /// Two groups have the same retention class.
    #[error("two groups have retention class {0}")]
    DuplicateClass(crate::RetentionClass),
    /// More than one part is [`PartKind::Metadata`](crate::PartKind::Metadata).
    #[error("a capture holds at most one metadata part")]
    TooManyMetadataParts,
    /// A part's plaintext is longer than [`MAX_PART_PLAINTEXT_BYTES`](crate::MAX_PART_PLAINTEXT_BYTES).
    #[error("part {part} of group {group} is longer than the part limit")]
    PartTooLarge {
        /// Index of the group.
        group: usize,
        /// Index of the part in the group.
        part: usize,
    },
    /// The sealed capture would be longer than [`MAX_CAPTURE_BYTES`](crate::MAX_CAPTURE_BYTES).
    #[error("the sealed capture would exceed the capture size limit")]
    CaptureTooLarge,
}

/// [`SealedCapture::parse`](crate::SealedCapture::parse) refused the bytes: they are not a
/// well-formed sealed capture v1 within the limits. Parsing checks structure and bounds only; it
/// says nothing about the signature or the ciphertexts.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ParseError {
    /// The input is longer than [`MAX_CAPTURE_BYTES`](crate::MAX_CAPTURE_BYTES).
    #[error("input is longer than the capture size limit")]
    TooLarge,
    /// The input ended inside the header, or is too short for the declared parts and signature.
    #[error("input is truncated")]
    Truncated,
    /// The input is longer than the header, the declared parts and the signature.
    #[error("input has trailing bytes")]
    TrailingBytes,
    /// The first 8 bytes are not `CSTDSEAL`.
    #[error("not a sealed capture (bad magic)")]
    BadMagic,
    /// A format version other than 1.
    #[error("unsupported format version {0}")]
    UnsupportedVersion(u8),
    /// A cipher suite other than 0x0001.
    #[error("unsupported cipher suite {0:#06x}")]
    UnsupportedSuite(u16),
    /// The site or lane name is not 1 to 64 bytes of `[A-Za-z0-9._-]`.
    #[error("invalid site or lane name")]
    BadName,
    /// The group count is 0 or more than [`MAX_GROUPS`](crate::MAX_GROUPS).
    #[error("invalid group count {0}")]
    GroupCount(u8),
    /// A part count is 0 or more than [`MAX_PARTS_PER_GROUP`](crate::MAX_PARTS_PER_GROUP).
    #[error("invalid part count {0}")]
    PartCount(u8),
    /// A retention class byte other than 1, 2, 3.
    #[error("unknown retention class {0}")]
    UnknownClass(u8),
    /// Two groups have the same retention class.
    #[error("duplicate retention class")]
    DuplicateClass,
    /// A part kind byte other than 0, 1, 2.
    #[error("unknown part kind {0}")]
    UnknownPartKind(u8),
    /// More than one metadata part.
    #[error("more than one metadata part")]
    TooManyMetadataParts,
    /// A part ciphertext length below 16 (the AEAD tag) or above
    /// [`MAX_PART_BYTES`](crate::MAX_PART_BYTES).
    #[error("invalid part length {0}")]
    PartLength(u32),
    /// An HPKE `enc` that is not an uncompressed SEC1 point (first byte 0x04).
    #[error("invalid encapsulated key")]
    BadEncapsulatedKey,
}

/// The device signature over a capture does not verify under the given key.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum VerifyError {
    /// The signature is not valid for this capture and this key. Deliberately one variant.
    #[error("device signature does not verify")]
    BadSignature,
}

/// The keystore could not do the Diffie-Hellman step of a decapsulation.
///
/// This is an operational failure of the key holder (file keystore, HSM), never a statement about
/// the ciphertext.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum DecapError {
    /// The key is not available (destroyed, not loaded, token absent).
    #[error("epoch key unavailable")]
    KeyUnavailable,
    /// The backend failed; the text is for operators' logs and must hold no secret.
    #[error("keystore backend failed: {0}")]
    Backend(String),
}

/// Opening a data key or a part failed.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum OpenError {
    /// Any cryptographic failure: wrong epoch key, corrupted or substituted `enc`, wrapped key,
    /// header or ciphertext, wrong binding. Deliberately one variant that does not say which.
    #[error("decryption failed")]
    DecryptionFailed,
    /// The group or part index does not exist in this capture (a caller bug, not an attack).
    #[error("no such group or part")]
    NoSuchPart,
    /// The keystore failed; see [`DecapError`].
    #[error(transparent)]
    Keystore(#[from] DecapError),
}

/// An epoch set could not be encoded, decoded or verified.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum EpochSetError {
    /// The JSON or binary input is longer than its limit
    /// ([`MAX_EPOCH_SET_JSON_BYTES`](crate::epochs::MAX_EPOCH_SET_JSON_BYTES) or the canonical
    /// encoding's bound).
    #[error("epoch set is too large")]
    TooLarge,
    /// More than [`MAX_EPOCHS_PER_SET`](crate::epochs::MAX_EPOCHS_PER_SET) epochs.
    #[error("too many epochs in one set")]
    TooManyEpochs,
    /// The JSON is malformed or a field is invalid; the text says where (it holds no secret).
    #[error("malformed epoch set JSON: {0}")]
    Json(String),
    /// The canonical binary encoding is malformed.
    #[error("malformed canonical epoch set encoding")]
    Malformed,
    /// An epoch's `not_before_ms` is not strictly before its `not_after_ms`.
    #[error("epoch {0} has an empty or inverted validity interval")]
    BadInterval(crate::EpochId),
    /// An epoch id is not the one derived from the announcement's fields.
    #[error("epoch id {0} does not match its announcement")]
    EpochIdMismatch(crate::EpochId),
    /// The same epoch id appears twice.
    #[error("epoch id {0} appears twice")]
    DuplicateEpoch(crate::EpochId),
    /// The vault signature does not verify.
    #[error("epoch set signature does not verify")]
    BadSignature,
}
