//! C2SP signed-note with Ed25519 (type `0x01`) signatures, and C2SP tlog-cosignature
//! `cosignature/v1` (type `0x04`) timestamped Ed25519 witness cosignatures.
//!
//! Key strings are byte-for-byte those of Go's `golang.org/x/mod/sumdb/note`:
//! verifier keys `name+hexkeyid+base64(type||public key)` and signer keys
//! `PRIVATE+KEY+name+hexkeyid+base64(type||seed)`.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use ed25519_dalek::{Signer as _, SigningKey, Verifier as _, VerifyingKey};
use rand_core::CryptoRngCore;
use sha2::{Digest, Sha256};
use std::fmt;
use thiserror::Error;
use zeroize::Zeroizing;

/// Largest signed note accepted, checked before anything else. A checkpoint with 16
/// signatures is under 2 KiB; 64 KiB leaves room for post-quantum cosignatures (C2SP asks
/// verifiers to accept at least 16 signatures of up to ~5 kB).
pub const MAX_NOTE_SIZE: usize = 64 * 1024;
/// Most signature lines accepted in one note (Go's limit; C2SP asks for at least 16).
pub const MAX_NOTE_SIGNATURES: usize = 100;
/// Longest key name accepted.
pub const MAX_KEY_NAME_LEN: usize = 256;

/// The signature-type byte that prefixes a public key in a key ID computation and a vkey.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SignatureType {
    /// `0x01`: Ed25519 over the note text (signed-note).
    Ed25519,
    /// `0x04`: timestamped Ed25519 cosignature (tlog-cosignature `cosignature/v1`).
    CosignatureV1,
}

impl SignatureType {
    /// The identifier byte.
    pub fn byte(self) -> u8 {
        match self {
            SignatureType::Ed25519 => 0x01,
            SignatureType::CosignatureV1 => 0x04,
        }
    }

    fn from_byte(b: u8) -> Option<SignatureType> {
        match b {
            0x01 => Some(SignatureType::Ed25519),
            0x04 => Some(SignatureType::CosignatureV1),
            _ => None,
        }
    }
}

/// Signing, opening or parsing a note or a key.
#[derive(Debug, Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum NoteError {
    /// The note is larger than [`MAX_NOTE_SIZE`].
    #[error("note of {len} bytes exceeds {max}")]
    TooLarge {
        /// Length.
        len: usize,
        /// Limit.
        max: usize,
    },
    /// More than [`MAX_NOTE_SIGNATURES`] signature lines.
    #[error("note has more than {max} signatures")]
    TooManySignatures {
        /// Limit.
        max: usize,
    },
    /// The note or a signature line is not in signed-note form.
    #[error("malformed note: {0}")]
    Malformed(&'static str),
    /// A key name is empty, too long, or has a space or `+`.
    #[error("invalid key name")]
    InvalidKeyName,
    /// A verifier or signer key string could not be parsed.
    #[error("invalid key: {0}")]
    InvalidKey(&'static str),
    /// A signature by a known key did not verify; the whole note is rejected.
    #[error("invalid signature for key {name}+{key_id:08x}")]
    InvalidSignature {
        /// Key name.
        name: String,
        /// Key ID.
        key_id: u32,
    },
    /// No signature from a known key: the note's text must not be trusted.
    #[error("note has no signature from a known key ({unverified} unknown signatures)")]
    Unverified {
        /// Number of signatures from unknown keys.
        unverified: usize,
    },
    /// A cosignature timestamp above `2^63 - 1`.
    #[error("timestamp out of range")]
    InvalidTimestamp,
}

/// A validated key name: non-empty, at most [`MAX_KEY_NAME_LEN`] bytes, no Unicode space,
/// no `+`, no control character.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct KeyName(String);

impl KeyName {
    /// Validates a key name.
    pub fn new(name: &str) -> Result<KeyName, NoteError> {
        if name.is_empty()
            || name.len() > MAX_KEY_NAME_LEN
            || name.chars().any(|c| c.is_whitespace() || c == '+' || c.is_control())
        {
            return Err(NoteError::InvalidKeyName);
        }
        Ok(KeyName(name.to_owned()))
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for KeyName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// `SHA-256(name || "\n" || type || public key)[:4]` as a big-endian `u32`.
pub fn key_id(name: &KeyName, sig_type: SignatureType, public_key: &[u8; 32]) -> u32 {
    let mut h = Sha256::new();
    h.update(name.0.as_bytes());
    h.update([b'\n', sig_type.byte()]);
    h.update(public_key);
    let d = h.finalize();
    u32::from_be_bytes([d[0], d[1], d[2], d[3]])
}

fn parse_key_id(s: &str) -> Result<u32, NoteError> {
    if s.len() != 8 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(NoteError::InvalidKey("key id must be 8 hex digits"));
    }
    u32::from_str_radix(s, 16).map_err(|_| NoteError::InvalidKey("key id must be 8 hex digits"))
}

/// Decodes `base64(type || 32 bytes)`.
fn parse_typed_key(s: &str) -> Result<(SignatureType, [u8; 32]), NoteError> {
    if s.len() != 44 {
        return Err(NoteError::InvalidKey("key must be base64 of 33 bytes"));
    }
    // Zeroized: for signer keys this buffer holds the seed.
    let mut buf = Zeroizing::new([0u8; 33]);
    let n = STANDARD.decode_slice(s, &mut *buf).map_err(|_| NoteError::InvalidKey("bad base64"))?;
    if n != 33 {
        return Err(NoteError::InvalidKey("key must be base64 of 33 bytes"));
    }
    let t = SignatureType::from_byte(buf[0]).ok_or(NoteError::InvalidKey("unknown signature type"))?;
    let mut k = [0u8; 32];
    k.copy_from_slice(&buf[1..]);
    Ok((t, k))
}

fn typed_key_b64(t: SignatureType, key: &[u8; 32]) -> String {
    let mut buf = [0u8; 33];
    buf[0] = t.byte();
    buf[1..].copy_from_slice(key);
    STANDARD.encode(buf)
}

/// A public key that verifies note signatures or cosignatures.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NoteVerifier {
    name: KeyName,
    key_id: u32,
    sig_type: SignatureType,
    key: VerifyingKey,
}

impl NoteVerifier {
    /// A verifier from a name and an Ed25519 public key.
    pub fn new(name: KeyName, sig_type: SignatureType, key: VerifyingKey) -> NoteVerifier {
        let key_id = key_id(&name, sig_type, key.as_bytes());
        NoteVerifier { name, key_id, sig_type, key }
    }

    /// Parses a verifier key string, `name+hexkeyid+base64(type||public key)`, checking that
    /// the key ID matches the name and key.
    pub fn from_vkey(vkey: &str) -> Result<NoteVerifier, NoteError> {
        if vkey.len() > MAX_KEY_NAME_LEN + 64 {
            return Err(NoteError::InvalidKey("too long"));
        }
        let mut parts = vkey.splitn(3, '+');
        let name = KeyName::new(parts.next().unwrap_or(""))?;
        let id = parse_key_id(parts.next().ok_or(NoteError::InvalidKey("missing key id"))?)?;
        let (t, raw) = parse_typed_key(parts.next().ok_or(NoteError::InvalidKey("missing key"))?)?;
        let key = VerifyingKey::from_bytes(&raw).map_err(|_| NoteError::InvalidKey("not an Ed25519 point"))?;
        let v = NoteVerifier::new(name, t, key);
        if v.key_id != id {
            return Err(NoteError::InvalidKey("key id does not match name and key"));
        }
        Ok(v)
    }

    /// The verifier key string, as Go's `note` package formats it.
    pub fn to_vkey(&self) -> String {
        format!("{}+{:08x}+{}", self.name, self.key_id, typed_key_b64(self.sig_type, self.key.as_bytes()))
    }

    /// Key name.
    pub fn name(&self) -> &KeyName {
        &self.name
    }

    /// Key ID.
    pub fn key_id(&self) -> u32 {
        self.key_id
    }

    /// Signature type.
    pub fn signature_type(&self) -> SignatureType {
        self.sig_type
    }

    /// The Ed25519 public key.
    pub fn public_key(&self) -> &VerifyingKey {
        &self.key
    }

    /// Verifies `sig` (the bytes after the key ID) over note `text`. Returns the cosignature
    /// timestamp for cosignatures, `None` for plain signatures, or an error.
    fn verify(&self, text: &str, sig: &[u8]) -> Result<Option<u64>, ()> {
        match self.sig_type {
            SignatureType::Ed25519 => {
                let s = ed25519_dalek::Signature::from_slice(sig).map_err(|_| ())?;
                self.key.verify(text.as_bytes(), &s).map_err(|_| ())?;
                Ok(None)
            }
            SignatureType::CosignatureV1 => {
                if sig.len() != 8 + 64 {
                    return Err(());
                }
                let ts = u64::from_be_bytes(sig[..8].try_into().map_err(|_| ())?);
                if ts > i64::MAX as u64 {
                    return Err(());
                }
                let s = ed25519_dalek::Signature::from_slice(&sig[8..]).map_err(|_| ())?;
                self.key.verify(&cosigned_message(text, ts), &s).map_err(|_| ())?;
                Ok(Some(ts))
            }
        }
    }
}

fn cosigned_message(text: &str, timestamp: u64) -> Vec<u8> {
    format!("cosignature/v1\ntime {timestamp}\n{text}").into_bytes()
}

/// Checks the note-text rules shared by signing and opening.
fn check_text(text: &str) -> Result<(), NoteError> {
    if text.len() > MAX_NOTE_SIZE {
        return Err(NoteError::TooLarge { len: text.len(), max: MAX_NOTE_SIZE });
    }
    if text.is_empty() || !text.ends_with('\n') {
        return Err(NoteError::Malformed("text must end with a newline"));
    }
    if text.chars().any(|c| c < ' ' && c != '\n') {
        return Err(NoteError::Malformed("control character"));
    }
    Ok(())
}

fn signature_line(name: &KeyName, id: u32, sig: &[u8]) -> String {
    let mut raw = Vec::with_capacity(4 + sig.len());
    raw.extend_from_slice(&id.to_be_bytes());
    raw.extend_from_slice(sig);
    format!("— {} {}\n", name, STANDARD.encode(raw))
}

macro_rules! secret_key_type {
    ($ty:ident, $sig_type:expr, $doc:literal) => {
        #[doc = $doc]
        ///
        /// The private key is zeroized on drop; `Debug` shows only the name and key ID.
        pub struct $ty {
            name: KeyName,
            key_id: u32,
            key: SigningKey,
        }

        impl $ty {
            /// Generates a new key with `rng`.
            pub fn generate(name: &str, rng: &mut impl CryptoRngCore) -> Result<$ty, NoteError> {
                Ok($ty::from_signing_key(KeyName::new(name)?, SigningKey::generate(rng)))
            }

            /// Wraps an existing Ed25519 key.
            pub fn from_signing_key(name: KeyName, key: SigningKey) -> $ty {
                let key_id = key_id(&name, $sig_type, key.verifying_key().as_bytes());
                $ty { name, key_id, key }
            }

            /// Parses `PRIVATE+KEY+name+hexkeyid+base64(type||seed)`, checking the key ID.
            pub fn from_skey(skey: &str) -> Result<$ty, NoteError> {
                if skey.len() > MAX_KEY_NAME_LEN + 80 {
                    return Err(NoteError::InvalidKey("too long"));
                }
                let rest = skey.strip_prefix("PRIVATE+KEY+").ok_or(NoteError::InvalidKey("missing PRIVATE+KEY+"))?;
                let mut parts = rest.splitn(3, '+');
                let name = KeyName::new(parts.next().unwrap_or(""))?;
                let id = parse_key_id(parts.next().ok_or(NoteError::InvalidKey("missing key id"))?)?;
                let (t, seed) = parse_typed_key(parts.next().ok_or(NoteError::InvalidKey("missing key"))?)?;
                let seed = Zeroizing::new(seed);
                if t != $sig_type {
                    return Err(NoteError::InvalidKey("wrong signature type"));
                }
                let s = $ty::from_signing_key(name, SigningKey::from_bytes(&seed));
                if s.key_id != id {
                    return Err(NoteError::InvalidKey("key id does not match name and key"));
                }
                Ok(s)
            }

            /// The signer key string. Secret: store it as you would the key.
            pub fn to_skey(&self) -> Zeroizing<String> {
                let seed = Zeroizing::new(self.key.to_bytes());
                let mut buf = Zeroizing::new([0u8; 33]);
                buf[0] = $sig_type.byte();
                buf[1..].copy_from_slice(&*seed);
                let prefix = format!("PRIVATE+KEY+{}+{:08x}+", self.name, self.key_id);
                // Reserve first so encoding never reallocates and leaves a copy behind.
                let mut out = Zeroizing::new(String::with_capacity(prefix.len() + 44));
                out.push_str(&prefix);
                STANDARD.encode_string(&*buf, &mut out);
                out
            }

            /// The matching verifier.
            pub fn verifier(&self) -> NoteVerifier {
                NoteVerifier::new(self.name.clone(), $sig_type, self.key.verifying_key())
            }

            /// Key name.
            pub fn name(&self) -> &KeyName {
                &self.name
            }

            /// Key ID.
            pub fn key_id(&self) -> u32 {
                self.key_id
            }
        }

        impl fmt::Debug for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!(stringify!($ty), "({}+{:08x})"), self.name, self.key_id)
            }
        }
    };
}

secret_key_type!(NoteSigner, SignatureType::Ed25519, "An Ed25519 note signing key (the log's key).");
secret_key_type!(
    CosignatureSigner,
    SignatureType::CosignatureV1,
    "A witness's `cosignature/v1` key. Its `PRIVATE+KEY` string uses type byte `0x04` (Go's note package has no cosigner keys)."
);

impl NoteSigner {
    /// The signature line `— name base64(keyid||sig)\n` for `text`.
    pub fn signature_line(&self, text: &str) -> Result<String, NoteError> {
        check_text(text)?;
        let sig = self.key.sign(text.as_bytes());
        Ok(signature_line(&self.name, self.key_id, &sig.to_bytes()))
    }

    /// The signed note: `text`, a blank line, this key's signature line.
    pub fn sign(&self, text: &str) -> Result<String, NoteError> {
        let line = self.signature_line(text)?;
        Ok(format!("{text}\n{line}"))
    }
}

impl CosignatureSigner {
    /// The cosignature line for checkpoint note `text` at `timestamp` (POSIX seconds, passed
    /// in: this crate has no clock).
    pub fn signature_line(&self, text: &str, timestamp: u64) -> Result<String, NoteError> {
        check_text(text)?;
        if timestamp > i64::MAX as u64 {
            return Err(NoteError::InvalidTimestamp);
        }
        let sig = self.key.sign(&cosigned_message(text, timestamp));
        let mut raw = Vec::with_capacity(72);
        raw.extend_from_slice(&timestamp.to_be_bytes());
        raw.extend_from_slice(&sig.to_bytes());
        Ok(signature_line(&self.name, self.key_id, &raw))
    }
}

/// The set of keys a reader trusts.
#[derive(Clone, Debug, Default)]
pub struct Verifiers {
    list: Vec<NoteVerifier>,
}

impl Verifiers {
    /// An empty set.
    pub fn new() -> Verifiers {
        Verifiers::default()
    }

    /// Adds a key.
    pub fn push(&mut self, v: NoteVerifier) {
        self.list.push(v);
    }

    /// The key with this name and ID, if known.
    pub fn get(&self, name: &str, key_id: u32) -> Option<&NoteVerifier> {
        self.list.iter().find(|v| v.key_id == key_id && v.name.0 == name)
    }
}

impl FromIterator<NoteVerifier> for Verifiers {
    fn from_iter<I: IntoIterator<Item = NoteVerifier>>(iter: I) -> Verifiers {
        Verifiers { list: iter.into_iter().collect() }
    }
}

/// One signature line of an opened note.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NoteSignature {
    /// Key name.
    pub name: String,
    /// Key ID.
    pub key_id: u32,
    /// The base64 text of the line (key ID and signature).
    pub base64: String,
    /// The cosignature timestamp, for verified `cosignature/v1` signatures.
    pub timestamp: Option<u64>,
}

/// An opened note: its text and which signatures verified.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Note {
    text: String,
    verified: Vec<NoteSignature>,
    unverified: Vec<NoteSignature>,
}

impl Note {
    /// The note text (ending in a newline).
    pub fn text(&self) -> &str {
        &self.text
    }

    /// Signatures from known keys, all verified.
    pub fn verified_signatures(&self) -> &[NoteSignature] {
        &self.verified
    }

    /// Signatures from keys not in the verifier set: ignored, as C2SP signed-note requires.
    pub fn unverified_signatures(&self) -> &[NoteSignature] {
        &self.unverified
    }

    /// Whether `v` signed the note (and its signature verified).
    pub fn is_signed_by(&self, v: &NoteVerifier) -> bool {
        self.verified.iter().any(|s| s.key_id == v.key_id && s.name == v.name.0)
    }
}

/// Opens a signed note: checks its form, verifies every signature by a key in `known`,
/// and returns the text only if at least one known key signed it.
///
/// Following C2SP signed-note and Go's `note.Open`: a signature line from an unknown key is
/// kept in [`Note::unverified_signatures`] but never trusted; a note with no verified
/// signature is rejected with [`NoteError::Unverified`]; a failing signature from a known key
/// rejects the whole note; a malformed signature line rejects the whole note.
pub fn open_note(msg: &[u8], known: &Verifiers) -> Result<Note, NoteError> {
    if msg.len() > MAX_NOTE_SIZE {
        return Err(NoteError::TooLarge { len: msg.len(), max: MAX_NOTE_SIZE });
    }
    let msg = std::str::from_utf8(msg).map_err(|_| NoteError::Malformed("not UTF-8"))?;
    if msg.chars().any(|c| c < ' ' && c != '\n') {
        return Err(NoteError::Malformed("control character"));
    }
    let split = msg.rfind("\n\n").ok_or(NoteError::Malformed("no signature block"))?;
    let (text, sigs) = (&msg[..split + 1], &msg[split + 2..]);
    if sigs.is_empty() || !sigs.ends_with('\n') {
        return Err(NoteError::Malformed("signature block must end with a newline"));
    }
    // Count before allocating anything per signature.
    if sigs.bytes().filter(|&b| b == b'\n').count() > MAX_NOTE_SIGNATURES {
        return Err(NoteError::TooManySignatures { max: MAX_NOTE_SIGNATURES });
    }
    let mut note = Note { text: text.to_owned(), verified: Vec::new(), unverified: Vec::new() };
    for line in sigs[..sigs.len() - 1].split('\n') {
        let rest = line.strip_prefix("— ").ok_or(NoteError::Malformed("signature line must start with an em dash"))?;
        let (name, b64) =
            rest.split_once(' ').ok_or(NoteError::Malformed("signature line needs a name and a signature"))?;
        if KeyName::new(name).is_err() || b64.is_empty() {
            return Err(NoteError::Malformed("bad signature line"));
        }
        let raw = STANDARD.decode(b64).map_err(|_| NoteError::Malformed("signature is not base64"))?;
        if raw.len() < 5 {
            return Err(NoteError::Malformed("signature too short"));
        }
        let key_id = u32::from_be_bytes([raw[0], raw[1], raw[2], raw[3]]);
        let mut sig = NoteSignature { name: name.to_owned(), key_id, base64: b64.to_owned(), timestamp: None };
        match known.get(name, key_id) {
            None => {
                if !note.unverified.contains(&sig) {
                    note.unverified.push(sig);
                }
            }
            Some(v) => {
                if note.verified.iter().any(|s| s.name == name && s.key_id == key_id) {
                    continue;
                }
                sig.timestamp = v
                    .verify(text, &raw[4..])
                    .map_err(|()| NoteError::InvalidSignature { name: name.to_owned(), key_id })?;
                note.verified.push(sig);
            }
        }
    }
    if note.verified.is_empty() {
        return Err(NoteError::Unverified { unverified: note.unverified.len() });
    }
    Ok(note)
}

/// Appends signature lines (e.g. witness cosignatures) to a signed note, after checking that
/// the note has a signature block and each line has the signature-line form.
pub fn add_signature_lines(signed_note: &str, lines: &[String]) -> Result<String, NoteError> {
    if !signed_note.contains("\n\n") || !signed_note.ends_with('\n') {
        return Err(NoteError::Malformed("not a signed note"));
    }
    let mut out = signed_note.to_owned();
    for l in lines {
        let body = l.strip_suffix('\n').ok_or(NoteError::Malformed("signature line must end with a newline"))?;
        let rest = body.strip_prefix("— ").ok_or(NoteError::Malformed("signature line must start with an em dash"))?;
        let (name, b64) = rest.split_once(' ').ok_or(NoteError::Malformed("bad signature line"))?;
        KeyName::new(name)?;
        if b64.is_empty() || b64.contains(' ') || b64.contains('\n') {
            return Err(NoteError::Malformed("bad signature line"));
        }
        out.push_str(l);
    }
    if out.len() > MAX_NOTE_SIZE {
        return Err(NoteError::TooLarge { len: out.len(), max: MAX_NOTE_SIZE });
    }
    Ok(out)
}
