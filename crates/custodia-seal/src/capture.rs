//! The sealed-capture v1 format: [`seal`] on the lane, [`SealedCapture`] in the vault.
//! Byte layout: `docs/formats/sealed-capture.md`.

use std::fmt;
use std::ops::Range;

use aes_gcm::aead::{AeadInPlace, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce};
use rand_core::{CryptoRng, RngCore};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use crate::error::{OpenError, ParseError, SealError, VerifyError};
use crate::hpke::{self, ENC_LEN, TAG_LEN};
use crate::ids::{DeviceId, EpochId, LaneName, PartKind, RetentionClass, SiteName};
use crate::keys::{Decapsulator, DeviceSigningKey, DeviceVerifyingKey, EpochPublicKey};

/// The first 8 bytes of every sealed capture.
pub const MAGIC: [u8; 8] = *b"CSTDSEAL";
/// The format version this crate writes and reads.
pub const FORMAT_VERSION: u8 = 1;
/// Suite 0x0001: DHKEM(P-256, HKDF-SHA256) / HKDF-SHA256 / AES-256-GCM.
pub const SUITE_P256_SHA256_AES256GCM: u16 = 0x0001;

/// At most one group per retention class, and there are three classes; one spare value keeps
/// room for a fourth class without a format change.
pub const MAX_GROUPS: usize = 4;
/// A lane capture carries a handful of images per class (plate crop, a few face crops, an
/// overview); 8 leaves room without letting a header grow large.
pub const MAX_PARTS_PER_GROUP: usize = 8;
/// Largest part plaintext: 8 MiB holds a full-resolution lane JPEG or PNG with margin.
pub const MAX_PART_PLAINTEXT_BYTES: usize = 8 * 1024 * 1024;
/// Largest part ciphertext on the wire: plaintext limit plus the 16-byte GCM tag.
pub const MAX_PART_BYTES: usize = MAX_PART_PLAINTEXT_BYTES + TAG_LEN;
/// Largest sealed capture, checked before anything else. A real capture is 50 KB to 2 MB; 32 MiB
/// bounds what the vault reads into memory per upload.
pub const MAX_CAPTURE_BYTES: usize = 32 * 1024 * 1024;
/// Length of the device signature at the end of the capture.
pub const SIGNATURE_LEN: usize = 64;
/// Length of an HPKE-wrapped data key: the 32-byte key plus the 16-byte tag.
pub const WRAPPED_KEY_LEN: usize = 32 + TAG_LEN;

/// HPKE `info` for wrapping a data key, in captures and in re-wraps alike.
pub const DATA_KEY_INFO: &[u8] = b"custodia/sealed-capture/v1/data-key";
/// Prefix of the message the device signs: `SIGNATURE_CONTEXT || SHA-256(header || ciphertexts)`.
pub const SIGNATURE_CONTEXT: &[u8] = b"custodia/sealed-capture/v1/signature";

/// Fixed header bytes before the site name: magic, version, suite, device id.
const FIXED_PREFIX_LEN: usize = 8 + 1 + 2 + 16;
/// Bytes of one group descriptor before its part list.
const GROUP_FIXED_LEN: usize = 1 + 16 + ENC_LEN + WRAPPED_KEY_LEN + 1;
/// Bytes of one part descriptor.
const PART_DESC_LEN: usize = 1 + 4;

/// A fresh 32-byte AES-256-GCM key for the parts of one group. Zeroized on drop; no `Debug`
/// beyond a redacted one; compared in constant time.
pub struct DataKey(Zeroizing<[u8; 32]>);

impl DataKey {
    /// A fresh random data key.
    pub fn generate(rng: &mut (impl RngCore + CryptoRng)) -> Self {
        let mut k = Zeroizing::new([0u8; 32]);
        rng.fill_bytes(k.as_mut());
        Self(k)
    }

    fn from_slice(b: &[u8]) -> Option<Self> {
        let arr: [u8; 32] = b.try_into().ok()?;
        Some(Self(Zeroizing::new(arr)))
    }
}

impl PartialEq for DataKey {
    fn eq(&self, other: &Self) -> bool {
        self.0[..].ct_eq(&other.0[..]).into()
    }
}

impl Eq for DataKey {}

impl fmt::Debug for DataKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DataKey(<redacted>)")
    }
}

/// The HPKE binding (`aad`) of a capture group's wrapped data key:
/// `device_id (16) || sequence (u64 BE) || group_index (u8)`, 25 bytes.
///
/// It deliberately leaves out the rest of the header so the vault can re-wrap a data key to a
/// longer-lived epoch ([`wrap_data_key`]) with this same binding and open it the same way.
pub fn data_key_binding(device_id: &DeviceId, sequence: u64, group_index: u8) -> [u8; 25] {
    let mut b = [0u8; 25];
    b[..16].copy_from_slice(&device_id.0);
    b[16..24].copy_from_slice(&sequence.to_be_bytes());
    b[24] = group_index;
    b
}

/// A data key wrapped to an epoch public key with HPKE base mode (single-shot seal of the 32-byte
/// key, `info` = [`DATA_KEY_INFO`], `aad` = the caller's binding).
#[derive(Clone, PartialEq, Eq)]
pub struct WrappedDataKey {
    enc: [u8; ENC_LEN],
    ciphertext: [u8; WRAPPED_KEY_LEN],
}

impl WrappedDataKey {
    /// Length of [`WrappedDataKey::to_bytes`]: suite (2) + enc (65) + ciphertext (48).
    pub const ENCODED_LEN: usize = 2 + ENC_LEN + WRAPPED_KEY_LEN;

    /// `suite u16 BE (0x0001) || enc (65) || ciphertext (48)`, 115 bytes.
    pub fn to_bytes(&self) -> [u8; Self::ENCODED_LEN] {
        let mut out = [0u8; Self::ENCODED_LEN];
        out[..2].copy_from_slice(&SUITE_P256_SHA256_AES256GCM.to_be_bytes());
        out[2..2 + ENC_LEN].copy_from_slice(&self.enc);
        out[2 + ENC_LEN..].copy_from_slice(&self.ciphertext);
        out
    }

    /// Parses [`WrappedDataKey::to_bytes`]: exact length, suite 0x0001, `enc` starting 0x04.
    pub fn from_bytes(b: &[u8]) -> Result<Self, ParseError> {
        if b.len() < Self::ENCODED_LEN {
            return Err(ParseError::Truncated);
        }
        if b.len() > Self::ENCODED_LEN {
            return Err(ParseError::TrailingBytes);
        }
        let suite = u16::from_be_bytes([b[0], b[1]]);
        if suite != SUITE_P256_SHA256_AES256GCM {
            return Err(ParseError::UnsupportedSuite(suite));
        }
        if b[2] != 0x04 {
            return Err(ParseError::BadEncapsulatedKey);
        }
        let mut w = Self { enc: [0; ENC_LEN], ciphertext: [0; WRAPPED_KEY_LEN] };
        w.enc.copy_from_slice(&b[2..2 + ENC_LEN]);
        w.ciphertext.copy_from_slice(&b[2 + ENC_LEN..]);
        Ok(w)
    }

    /// The HPKE `enc` (ephemeral public key, uncompressed SEC1).
    pub fn enc(&self) -> &[u8; ENC_LEN] {
        &self.enc
    }

    /// The HPKE ciphertext of the data key.
    pub fn ciphertext(&self) -> &[u8; WRAPPED_KEY_LEN] {
        &self.ciphertext
    }
}

impl fmt::Debug for WrappedDataKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "WrappedDataKey({})", hex::encode(self.to_bytes()))
    }
}

/// Wraps `key` to the epoch key `to`, bound to `binding` (for a capture group's key use
/// [`data_key_binding`]). The ephemeral key comes from `rng`.
pub fn wrap_data_key(
    key: &DataKey,
    to: &EpochPublicKey,
    binding: &[u8],
    rng: &mut (impl RngCore + CryptoRng),
) -> WrappedDataKey {
    let (enc, ct) = hpke::seal_base(to, DATA_KEY_INFO, binding, key.0.as_ref(), rng);
    let mut ciphertext = [0u8; WRAPPED_KEY_LEN];
    // Invariant: HPKE seal of 32 bytes is 48 bytes.
    ciphertext.copy_from_slice(&ct);
    WrappedDataKey { enc, ciphertext }
}

/// Unwraps a data key with the epoch private key behind `dec`. Every cryptographic failure (wrong
/// epoch key, wrong binding, altered bytes) is [`OpenError::DecryptionFailed`].
pub fn unwrap_data_key(
    wrapped: &WrappedDataKey,
    dec: &(impl Decapsulator + ?Sized),
    binding: &[u8],
) -> Result<DataKey, OpenError> {
    let pt = hpke::open_base(&wrapped.enc, dec, DATA_KEY_INFO, binding, &wrapped.ciphertext)?;
    DataKey::from_slice(&pt).ok_or(OpenError::DecryptionFailed)
}

/// The plaintext header fields of a capture.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CaptureHeader {
    /// The device that captured and signed.
    pub device_id: DeviceId,
    /// The site (port of entry).
    pub site: SiteName,
    /// The lane within the site.
    pub lane: LaneName,
    /// Capture time, Unix milliseconds (any `i64`; the vault judges plausibility).
    pub capture_time_ms: i64,
    /// The device's capture sequence number. `(device_id, sequence)` is the record id.
    pub sequence: u64,
}

/// One part to seal.
#[derive(Clone, Copy, Debug)]
pub struct PartToSeal<'a> {
    /// What the part is.
    pub kind: PartKind,
    /// Its plaintext, at most [`MAX_PART_PLAINTEXT_BYTES`].
    pub plaintext: &'a [u8],
}

/// One retention-class group to seal: its parts are encrypted under a fresh data key wrapped to
/// `epoch_key`.
#[derive(Clone, Debug)]
pub struct GroupToSeal<'a> {
    /// The group's retention class (distinct within a capture).
    pub class: RetentionClass,
    /// The epoch whose public key is `epoch_key`; recorded in the header so the vault can find
    /// the private key.
    pub epoch_id: EpochId,
    /// The epoch public key, from a verified epoch set.
    pub epoch_key: &'a EpochPublicKey,
    /// 1 to [`MAX_PARTS_PER_GROUP`] parts, in order.
    pub parts: Vec<PartToSeal<'a>>,
}

fn part_nonce(part_index: u8) -> [u8; 12] {
    let mut n = [0u8; 12];
    n[11] = part_index;
    n
}

fn part_aad(header_hash: &[u8; 32], group_index: u8, part_index: u8) -> [u8; 34] {
    let mut a = [0u8; 34];
    a[..32].copy_from_slice(header_hash);
    a[32] = group_index;
    a[33] = part_index;
    a
}

fn signed_message(body_digest: &[u8; 32]) -> Vec<u8> {
    [SIGNATURE_CONTEXT, &body_digest[..]].concat()
}

/// Seals a capture: validates the shape, makes a fresh data key per group, wraps it to the
/// group's epoch key, encrypts every part, and signs the whole with the device key.
///
/// The lane calls this before its first write to disk; it holds no key that opens the result.
pub fn seal(
    header: &CaptureHeader,
    groups: &[GroupToSeal<'_>],
    device: &DeviceSigningKey,
    rng: &mut (impl RngCore + CryptoRng),
) -> Result<Vec<u8>, SealError> {
    // Validate everything before any crypto or allocation sized by the input.
    if groups.is_empty() || groups.len() > MAX_GROUPS {
        return Err(SealError::GroupCount(groups.len()));
    }
    let mut header_len = FIXED_PREFIX_LEN + 1 + header.site.as_str().len() + 1 + header.lane.as_str().len() + 8 + 8 + 1;
    let mut body_len = 0usize;
    let mut metadata_parts = 0;
    for (gi, g) in groups.iter().enumerate() {
        if g.parts.is_empty() || g.parts.len() > MAX_PARTS_PER_GROUP {
            return Err(SealError::PartCount { group: gi, count: g.parts.len() });
        }
        if groups[..gi].iter().any(|o| o.class == g.class) {
            return Err(SealError::DuplicateClass(g.class));
        }
        header_len += GROUP_FIXED_LEN + PART_DESC_LEN * g.parts.len();
        for (pi, p) in g.parts.iter().enumerate() {
            if p.plaintext.len() > MAX_PART_PLAINTEXT_BYTES {
                return Err(SealError::PartTooLarge { group: gi, part: pi });
            }
            if p.kind == PartKind::Metadata {
                metadata_parts += 1;
            }
            body_len += p.plaintext.len() + TAG_LEN;
        }
    }
    if metadata_parts > 1 {
        return Err(SealError::TooManyMetadataParts);
    }
    // Cannot overflow: at most 32 parts of at most 8 MiB each.
    let total = header_len + body_len + SIGNATURE_LEN;
    if total > MAX_CAPTURE_BYTES {
        return Err(SealError::CaptureTooLarge);
    }

    let keys: Vec<DataKey> = groups.iter().map(|_| DataKey::generate(rng)).collect();

    let mut out = Vec::with_capacity(total);
    out.extend_from_slice(&MAGIC);
    out.push(FORMAT_VERSION);
    out.extend_from_slice(&SUITE_P256_SHA256_AES256GCM.to_be_bytes());
    out.extend_from_slice(&header.device_id.0);
    push_name(&mut out, header.site.as_str());
    push_name(&mut out, header.lane.as_str());
    out.extend_from_slice(&header.capture_time_ms.to_be_bytes());
    out.extend_from_slice(&header.sequence.to_be_bytes());
    out.push(groups.len() as u8);
    for (gi, (g, key)) in groups.iter().zip(&keys).enumerate() {
        let binding = data_key_binding(&header.device_id, header.sequence, gi as u8);
        let wrapped = wrap_data_key(key, g.epoch_key, &binding, rng);
        out.push(g.class.as_u8());
        out.extend_from_slice(&g.epoch_id.0);
        out.extend_from_slice(&wrapped.enc);
        out.extend_from_slice(&wrapped.ciphertext);
        out.push(g.parts.len() as u8);
        for p in &g.parts {
            out.push(p.kind.as_u8());
            // Bounded by MAX_PART_BYTES < 2^32 above.
            out.extend_from_slice(&((p.plaintext.len() + TAG_LEN) as u32).to_be_bytes());
        }
    }
    debug_assert_eq!(out.len(), header_len);
    let header_hash: [u8; 32] = Sha256::digest(&out).into();

    for (gi, (g, key)) in groups.iter().zip(&keys).enumerate() {
        let cipher = Aes256Gcm::new((&*key.0).into());
        for (pi, p) in g.parts.iter().enumerate() {
            let start = out.len();
            out.extend_from_slice(p.plaintext);
            let aad = part_aad(&header_hash, gi as u8, pi as u8);
            // Invariant: parts are at most 8 MiB, far inside AES-GCM's 2^36-byte limit.
            let tag = cipher
                .encrypt_in_place_detached(&Nonce::from(part_nonce(pi as u8)), &aad, &mut out[start..])
                .expect("part within AES-GCM limits");
            out.extend_from_slice(&tag);
        }
    }

    let body_digest: [u8; 32] = Sha256::digest(&out).into();
    let sig = device.sign_raw(&signed_message(&body_digest));
    out.extend_from_slice(&sig);
    debug_assert_eq!(out.len(), total);
    Ok(out)
}

fn push_name(out: &mut Vec<u8>, s: &str) {
    // SiteName/LaneName guarantee 1..=64 bytes.
    out.push(s.len() as u8);
    out.extend_from_slice(s.as_bytes());
}

/// One part of a parsed capture: its kind and where its ciphertext lies in the capture bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SealedPart {
    kind: PartKind,
    range: Range<usize>,
}

impl SealedPart {
    /// What the part holds.
    pub fn kind(&self) -> PartKind {
        self.kind
    }

    /// Byte range of the part's ciphertext (including its 16-byte tag) within the capture.
    pub fn ciphertext_range(&self) -> Range<usize> {
        self.range.clone()
    }

    /// Ciphertext length, including the tag.
    pub fn ciphertext_len(&self) -> usize {
        self.range.len()
    }

    /// Plaintext length (ciphertext length minus the tag).
    pub fn plaintext_len(&self) -> usize {
        self.range.len() - TAG_LEN
    }
}

/// One retention-class group of a parsed capture.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SealedGroup {
    class: RetentionClass,
    epoch_id: EpochId,
    wrapped: WrappedDataKey,
    parts: Vec<SealedPart>,
}

impl SealedGroup {
    /// The group's retention class.
    pub fn class(&self) -> RetentionClass {
        self.class
    }

    /// The epoch whose private key opens the group's data key.
    pub fn epoch_id(&self) -> EpochId {
        self.epoch_id
    }

    /// The HPKE `enc` of the wrapped data key.
    pub fn enc(&self) -> &[u8; ENC_LEN] {
        &self.wrapped.enc
    }

    /// The wrapped data key as a [`WrappedDataKey`]; it opens with [`unwrap_data_key`] and
    /// [`data_key_binding`]`(device_id, sequence, group_index)`.
    pub fn wrapped_data_key(&self) -> &WrappedDataKey {
        &self.wrapped
    }

    /// The parts, in order.
    pub fn parts(&self) -> &[SealedPart] {
        &self.parts
    }
}

/// A parsed sealed capture, borrowing the bytes it was parsed from.
///
/// Parsing checks structure and bounds only. Call [`SealedCapture::verify_signature`] before
/// trusting anything in it.
#[derive(Clone, Debug)]
pub struct SealedCapture<'a> {
    bytes: &'a [u8],
    header_len: usize,
    header: CaptureHeader,
    groups: Vec<SealedGroup>,
    metadata: Option<(usize, usize)>,
    header_hash: [u8; 32],
}

struct Reader<'a> {
    b: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], ParseError> {
        let end = self.pos.checked_add(n).ok_or(ParseError::Truncated)?;
        let s = self.b.get(self.pos..end).ok_or(ParseError::Truncated)?;
        self.pos = end;
        Ok(s)
    }
    fn u8(&mut self) -> Result<u8, ParseError> {
        Ok(self.take(1)?[0])
    }
    fn array<const N: usize>(&mut self) -> Result<[u8; N], ParseError> {
        // Invariant: take(N) returns exactly N bytes.
        Ok(self.take(N)?.try_into().expect("N bytes"))
    }
}

impl<'a> SealedCapture<'a> {
    /// Parses a sealed capture v1. Checks, in order and before allocating anything sized by the
    /// input: total length <= [`MAX_CAPTURE_BYTES`], magic, version, suite, names, group count,
    /// classes, part counts, kinds, part lengths, at most one metadata part, and that header,
    /// ciphertexts and the 64-byte signature add up to exactly the input length.
    pub fn parse(bytes: &'a [u8]) -> Result<Self, ParseError> {
        if bytes.len() > MAX_CAPTURE_BYTES {
            return Err(ParseError::TooLarge);
        }
        let mut r = Reader { b: bytes, pos: 0 };
        if r.take(8)? != MAGIC {
            return Err(ParseError::BadMagic);
        }
        let version = r.u8()?;
        if version != FORMAT_VERSION {
            return Err(ParseError::UnsupportedVersion(version));
        }
        let suite = u16::from_be_bytes(r.array()?);
        if suite != SUITE_P256_SHA256_AES256GCM {
            return Err(ParseError::UnsupportedSuite(suite));
        }
        let device_id = DeviceId(r.array()?);
        let site_len = r.u8()? as usize;
        let site = SiteName::from_wire(r.take(site_len)?).ok_or(ParseError::BadName)?;
        let lane_len = r.u8()? as usize;
        let lane = LaneName::from_wire(r.take(lane_len)?).ok_or(ParseError::BadName)?;
        let capture_time_ms = i64::from_be_bytes(r.array()?);
        let sequence = u64::from_be_bytes(r.array()?);
        let group_count = r.u8()?;
        if group_count == 0 || group_count as usize > MAX_GROUPS {
            return Err(ParseError::GroupCount(group_count));
        }

        let mut groups = Vec::with_capacity(group_count as usize);
        let mut metadata = None;
        // Part lengths are summed in u64: at most 32 parts of < 2^32 each cannot overflow.
        let mut body_len: u64 = 0;
        for gi in 0..group_count as usize {
            let class_byte = r.u8()?;
            let class = RetentionClass::from_u8(class_byte).ok_or(ParseError::UnknownClass(class_byte))?;
            if groups.iter().any(|g: &SealedGroup| g.class == class) {
                return Err(ParseError::DuplicateClass);
            }
            let epoch_id = EpochId(r.array()?);
            let enc: [u8; ENC_LEN] = r.array()?;
            if enc[0] != 0x04 {
                return Err(ParseError::BadEncapsulatedKey);
            }
            let ciphertext: [u8; WRAPPED_KEY_LEN] = r.array()?;
            let part_count = r.u8()?;
            if part_count == 0 || part_count as usize > MAX_PARTS_PER_GROUP {
                return Err(ParseError::PartCount(part_count));
            }
            let mut parts = Vec::with_capacity(part_count as usize);
            for pi in 0..part_count as usize {
                let kind_byte = r.u8()?;
                let kind = PartKind::from_u8(kind_byte).ok_or(ParseError::UnknownPartKind(kind_byte))?;
                let len = u32::from_be_bytes(r.array()?);
                if (len as usize) < TAG_LEN || len as usize > MAX_PART_BYTES {
                    return Err(ParseError::PartLength(len));
                }
                if kind == PartKind::Metadata {
                    if metadata.is_some() {
                        return Err(ParseError::TooManyMetadataParts);
                    }
                    metadata = Some((gi, pi));
                }
                body_len += u64::from(len);
                // Placed at their offsets once the header length is known.
                parts.push(SealedPart { kind, range: 0..len as usize });
            }
            groups.push(SealedGroup { class, epoch_id, wrapped: WrappedDataKey { enc, ciphertext }, parts });
        }
        let header_len = r.pos;
        let expected = header_len as u64 + body_len + SIGNATURE_LEN as u64;
        if (bytes.len() as u64) < expected {
            return Err(ParseError::Truncated);
        }
        if bytes.len() as u64 > expected {
            return Err(ParseError::TrailingBytes);
        }
        let mut pos = header_len;
        for p in groups.iter_mut().flat_map(|g| g.parts.iter_mut()) {
            let end = pos + p.range.len();
            p.range = pos..end;
            pos = end;
        }
        let header_hash = Sha256::digest(&bytes[..header_len]).into();
        Ok(Self {
            bytes,
            header_len,
            header: CaptureHeader { device_id, site, lane, capture_time_ms, sequence },
            groups,
            metadata,
            header_hash,
        })
    }

    /// The plaintext header fields. Unauthenticated until [`Self::verify_signature`] succeeds.
    pub fn header(&self) -> &CaptureHeader {
        &self.header
    }

    /// The groups, in wire order.
    pub fn groups(&self) -> &[SealedGroup] {
        &self.groups
    }

    /// `(group index, part index)` of the metadata part, if the capture has one.
    pub fn metadata_part(&self) -> Option<(usize, usize)> {
        self.metadata
    }

    /// The whole capture as parsed.
    pub fn as_bytes(&self) -> &'a [u8] {
        self.bytes
    }

    /// The header bytes exactly as received (magic through the last part descriptor).
    pub fn header_bytes(&self) -> &'a [u8] {
        &self.bytes[..self.header_len]
    }

    /// Re-serialises the header from the parsed fields. Equal to [`Self::header_bytes`] for every
    /// capture that parses (the encoding is canonical); the fuzz target checks this.
    pub fn encode_header(&self) -> Vec<u8> {
        let h = &self.header;
        let mut out = Vec::with_capacity(self.header_len);
        out.extend_from_slice(&MAGIC);
        out.push(FORMAT_VERSION);
        out.extend_from_slice(&SUITE_P256_SHA256_AES256GCM.to_be_bytes());
        out.extend_from_slice(&h.device_id.0);
        push_name(&mut out, h.site.as_str());
        push_name(&mut out, h.lane.as_str());
        out.extend_from_slice(&h.capture_time_ms.to_be_bytes());
        out.extend_from_slice(&h.sequence.to_be_bytes());
        out.push(self.groups.len() as u8);
        for g in &self.groups {
            out.push(g.class.as_u8());
            out.extend_from_slice(&g.epoch_id.0);
            out.extend_from_slice(&g.wrapped.enc);
            out.extend_from_slice(&g.wrapped.ciphertext);
            out.push(g.parts.len() as u8);
            for p in &g.parts {
                out.push(p.kind.as_u8());
                out.extend_from_slice(&(p.range.len() as u32).to_be_bytes());
            }
        }
        out
    }

    /// SHA-256 of the header bytes (bound into every part's associated data).
    pub fn header_hash(&self) -> [u8; 32] {
        self.header_hash
    }

    /// The ciphertext (with tag) of part `part` of group `group`, or `None` if there is none.
    pub fn part_ciphertext(&self, group: usize, part: usize) -> Option<&'a [u8]> {
        let p = self.groups.get(group)?.parts.get(part)?;
        Some(&self.bytes[p.range.clone()])
    }

    /// The 64-byte device signature.
    pub fn signature(&self) -> &'a [u8; SIGNATURE_LEN] {
        // Invariant: parse guarantees the input ends with exactly SIGNATURE_LEN bytes.
        self.bytes[self.bytes.len() - SIGNATURE_LEN..].try_into().expect("64 bytes")
    }

    /// Verifies the device's Ed25519 signature over
    /// `SIGNATURE_CONTEXT || SHA-256(header || ciphertexts)` (strict verification).
    pub fn verify_signature(&self, key: &DeviceVerifyingKey) -> Result<(), VerifyError> {
        let body = &self.bytes[..self.bytes.len() - SIGNATURE_LEN];
        let digest: [u8; 32] = Sha256::digest(body).into();
        if key.verify_raw(&signed_message(&digest), self.signature()) { Ok(()) } else { Err(VerifyError::BadSignature) }
    }

    /// [`SealedCapture::verify_signature`] and [`SealedCapture::content_digest`] in one pass over
    /// the bytes (the vault's hot path: a capture is a quarter of a megabyte). Returns the
    /// content digest once the signature verifies.
    pub fn verify_signature_with_digest(&self, key: &DeviceVerifyingKey) -> Result<[u8; 32], VerifyError> {
        let body = &self.bytes[..self.bytes.len() - SIGNATURE_LEN];
        let mut hasher = Sha256::new();
        hasher.update(body);
        let body_digest: [u8; 32] = hasher.clone().finalize().into();
        if !key.verify_raw(&signed_message(&body_digest), self.signature()) {
            return Err(VerifyError::BadSignature);
        }
        hasher.update(self.signature());
        Ok(hasher.finalize().into())
    }

    /// SHA-256 of the whole capture, signature included: the idempotency key for a retried
    /// upload and the evidence for a device that signs two different captures with one sequence.
    pub fn content_digest(&self) -> [u8; 32] {
        Sha256::digest(self.bytes).into()
    }

    /// Opens group `group`'s data key with the epoch private key behind `dec`.
    pub fn open_data_key(&self, group: usize, dec: &(impl Decapsulator + ?Sized)) -> Result<DataKey, OpenError> {
        let g = self.groups.get(group).ok_or(OpenError::NoSuchPart)?;
        // Invariant: group indices are < MAX_GROUPS.
        let binding = data_key_binding(&self.header.device_id, self.header.sequence, group as u8);
        unwrap_data_key(&g.wrapped, dec, &binding)
    }

    /// Decrypts part `part` of group `group` with that group's data key.
    pub fn open_part(&self, group: usize, part: usize, key: &DataKey) -> Result<Zeroizing<Vec<u8>>, OpenError> {
        let ct = self.part_ciphertext(group, part).ok_or(OpenError::NoSuchPart)?;
        let aad = part_aad(&self.header_hash, group as u8, part as u8);
        hpke::aead_open(&key.0, &part_nonce(part as u8), &aad, ct)
    }
}
