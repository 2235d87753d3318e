//! Signed sets of epoch public keys: the vault publishes them ahead of time, lanes verify them
//! with the vault's key before sealing to any epoch key in them. Byte layout of the signed,
//! canonical encoding: `docs/formats/epoch-set.md`.
//!
//! The JSON form is transport only: the signature covers the canonical binary encoding, and a
//! verifier rebuilds that encoding from the JSON fields and re-derives every epoch id.

use std::collections::HashSet;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

pub use crate::error::EpochSetError;
pub use crate::keys::{VaultSigningKey, VaultVerifyingKey};

use crate::ids::{EpochId, RetentionClass, SiteName};
use crate::keys::{EpochPublicKey, P256_POINT_LEN};

/// Most epochs in one set. Hourly face epochs for a month ahead plus daily plate and overview
/// epochs is about 780 per site; 16384 covers 20 sites with room.
pub const MAX_EPOCHS_PER_SET: usize = 16384;
/// Largest JSON epoch set accepted by [`SignedEpochSet::from_json`], checked before parsing. One
/// epoch is about 330 bytes of JSON, so 16384 epochs fit in 8 MiB.
pub const MAX_EPOCH_SET_JSON_BYTES: usize = 8 * 1024 * 1024;
/// The first 8 bytes of the canonical encoding.
pub const EPOCH_SET_MAGIC: [u8; 8] = *b"CSTDEPOC";
/// Version byte of the canonical encoding.
pub const EPOCH_SET_VERSION: u8 = 1;
/// Prefix of the message the vault signs: `EPOCH_SET_SIGNATURE_CONTEXT || SHA-256(canonical)`.
pub const EPOCH_SET_SIGNATURE_CONTEXT: &[u8] = b"custodia/epoch-set/v1/signature";
/// Domain string hashed first in [`EpochId::derive`].
pub const EPOCH_ID_CONTEXT: &[u8] = b"custodia/epoch-id/v1";
/// The `format` field of the JSON form.
pub const EPOCH_SET_JSON_FORMAT: &str = "custodia-epoch-set/v1";

const HEADER_LEN: usize = 8 + 1 + 8 + 2;
const MAX_EPOCH_ENCODED_LEN: usize = 16 + 1 + crate::ids::MAX_NAME_LEN + 1 + 8 + 8 + P256_POINT_LEN;
/// Largest canonical encoding.
pub const MAX_CANONICAL_BYTES: usize = HEADER_LEN + MAX_EPOCHS_PER_SET * MAX_EPOCH_ENCODED_LEN;

impl EpochId {
    /// The epoch id of an announcement: the first 16 bytes of
    /// `SHA-256(EPOCH_ID_CONTEXT || len(site) u8 || site || class u8 || not_before_ms i64 BE ||
    /// not_after_ms i64 BE || public_key (65, uncompressed SEC1))`.
    pub fn derive(
        site: &SiteName,
        class: RetentionClass,
        not_before_ms: i64,
        not_after_ms: i64,
        public_key: &EpochPublicKey,
    ) -> EpochId {
        let mut h = Sha256::new();
        h.update(EPOCH_ID_CONTEXT);
        h.update([site.as_str().len() as u8]);
        h.update(site.as_str().as_bytes());
        h.update([class.as_u8()]);
        h.update(not_before_ms.to_be_bytes());
        h.update(not_after_ms.to_be_bytes());
        h.update(public_key.to_sec1_bytes());
        let d = h.finalize();
        let mut id = [0u8; 16];
        id.copy_from_slice(&d[..16]);
        EpochId(id)
    }
}

/// One epoch: a public key for one site and retention class, valid for captures taken in
/// `[not_before_ms, not_after_ms)` (Unix milliseconds).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EpochAnnouncement {
    /// [`EpochId::derive`] of the other fields.
    pub epoch_id: EpochId,
    /// The site whose lanes seal to this key.
    pub site: SiteName,
    /// The retention class sealed to this key.
    pub class: RetentionClass,
    /// First capture time (inclusive) this key is for.
    pub not_before_ms: i64,
    /// End of the interval (exclusive).
    pub not_after_ms: i64,
    /// The epoch public key.
    pub public_key: EpochPublicKey,
}

impl EpochAnnouncement {
    /// An announcement with its id derived from the fields.
    pub fn new(
        site: SiteName,
        class: RetentionClass,
        not_before_ms: i64,
        not_after_ms: i64,
        public_key: EpochPublicKey,
    ) -> Self {
        let epoch_id = EpochId::derive(&site, class, not_before_ms, not_after_ms, &public_key);
        Self { epoch_id, site, class, not_before_ms, not_after_ms, public_key }
    }

    /// Whether a capture at `time_ms` falls in this epoch's interval.
    pub fn covers(&self, time_ms: i64) -> bool {
        self.not_before_ms <= time_ms && time_ms < self.not_after_ms
    }
}

/// A set of epoch announcements issued at one time.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EpochSet {
    /// When the vault issued the set (Unix milliseconds). Lanes prefer the newest verified set.
    pub issued_at_ms: i64,
    /// The epochs, in the order the vault listed them (the signature covers the order).
    pub epochs: Vec<EpochAnnouncement>,
}

impl EpochSet {
    /// The epoch for `site` and `class` whose interval covers `time_ms`. If several overlap, the
    /// one with the latest `not_before_ms` (the most recent rotation) wins; on a tie, the first
    /// listed.
    pub fn find(&self, site: &SiteName, class: RetentionClass, time_ms: i64) -> Option<&EpochAnnouncement> {
        let mut best: Option<&EpochAnnouncement> = None;
        for e in &self.epochs {
            if &e.site == site
                && e.class == class
                && e.covers(time_ms)
                && best.is_none_or(|b| e.not_before_ms > b.not_before_ms)
            {
                best = Some(e);
            }
        }
        best
    }

    /// Checks what a verifier checks besides the signature: count, intervals, ids, uniqueness.
    fn check(&self) -> Result<(), EpochSetError> {
        if self.epochs.len() > MAX_EPOCHS_PER_SET {
            return Err(EpochSetError::TooManyEpochs);
        }
        let mut seen = HashSet::with_capacity(self.epochs.len());
        for e in &self.epochs {
            if e.not_before_ms >= e.not_after_ms {
                return Err(EpochSetError::BadInterval(e.epoch_id));
            }
            let derived = EpochId::derive(&e.site, e.class, e.not_before_ms, e.not_after_ms, &e.public_key);
            if derived != e.epoch_id {
                return Err(EpochSetError::EpochIdMismatch(e.epoch_id));
            }
            if !seen.insert(e.epoch_id) {
                return Err(EpochSetError::DuplicateEpoch(e.epoch_id));
            }
        }
        Ok(())
    }

    /// The canonical binary encoding that the signature covers (see `docs/formats/epoch-set.md`).
    ///
    /// # Panics
    /// If the set has more than [`MAX_EPOCHS_PER_SET`] epochs (use [`EpochSet::sign`], which
    /// refuses such sets).
    pub fn to_canonical_bytes(&self) -> Vec<u8> {
        assert!(self.epochs.len() <= MAX_EPOCHS_PER_SET, "too many epochs for one set");
        let mut out = Vec::with_capacity(HEADER_LEN + self.epochs.len() * MAX_EPOCH_ENCODED_LEN);
        out.extend_from_slice(&EPOCH_SET_MAGIC);
        out.push(EPOCH_SET_VERSION);
        out.extend_from_slice(&self.issued_at_ms.to_be_bytes());
        out.extend_from_slice(&(self.epochs.len() as u16).to_be_bytes());
        for e in &self.epochs {
            out.extend_from_slice(&e.epoch_id.0);
            out.push(e.site.as_str().len() as u8);
            out.extend_from_slice(e.site.as_str().as_bytes());
            out.push(e.class.as_u8());
            out.extend_from_slice(&e.not_before_ms.to_be_bytes());
            out.extend_from_slice(&e.not_after_ms.to_be_bytes());
            out.extend_from_slice(&e.public_key.to_sec1_bytes());
        }
        out
    }

    /// Parses the canonical encoding (structure only: lengths, names, classes, points, no
    /// trailing bytes). Ids and intervals are checked by [`SignedEpochSet::verify`].
    pub fn from_canonical_bytes(b: &[u8]) -> Result<Self, EpochSetError> {
        if b.len() > MAX_CANONICAL_BYTES {
            return Err(EpochSetError::TooLarge);
        }
        let mut pos = 0usize;
        let mut take = |n: usize| -> Result<&[u8], EpochSetError> {
            let s = b.get(pos..pos + n).ok_or(EpochSetError::Malformed)?;
            pos += n;
            Ok(s)
        };
        if take(8)? != EPOCH_SET_MAGIC || take(1)?[0] != EPOCH_SET_VERSION {
            return Err(EpochSetError::Malformed);
        }
        let issued_at_ms = i64::from_be_bytes(arr(take(8)?));
        let count = u16::from_be_bytes(arr(take(2)?)) as usize;
        if count > MAX_EPOCHS_PER_SET {
            return Err(EpochSetError::TooManyEpochs);
        }
        let mut epochs = Vec::with_capacity(count);
        for _ in 0..count {
            let epoch_id = EpochId(arr(take(16)?));
            let site_len = take(1)?[0] as usize;
            let site = SiteName::from_wire(take(site_len)?).ok_or(EpochSetError::Malformed)?;
            let class = RetentionClass::from_u8(take(1)?[0]).ok_or(EpochSetError::Malformed)?;
            let not_before_ms = i64::from_be_bytes(arr(take(8)?));
            let not_after_ms = i64::from_be_bytes(arr(take(8)?));
            let public_key =
                EpochPublicKey::from_sec1_bytes(take(P256_POINT_LEN)?).map_err(|_| EpochSetError::Malformed)?;
            epochs.push(EpochAnnouncement { epoch_id, site, class, not_before_ms, not_after_ms, public_key });
        }
        if pos != b.len() {
            return Err(EpochSetError::Malformed);
        }
        Ok(Self { issued_at_ms, epochs })
    }

    /// The exact message a vault signature over this set covers, for a signer that keeps its
    /// key elsewhere (a keystore or an HSM). Refuses a set that [`EpochSet::sign`] would refuse.
    pub fn signing_message(&self) -> Result<Vec<u8>, EpochSetError> {
        self.check()?;
        Ok(signed_message(&self.to_canonical_bytes()))
    }

    /// Pairs the set with a signature made over [`EpochSet::signing_message`] elsewhere. Nothing
    /// is trusted until [`SignedEpochSet::verify`].
    pub fn with_signature(self, signature: [u8; 64]) -> SignedEpochSet {
        SignedEpochSet { set: self, signature }
    }

    /// Signs the set with the vault key. Refuses a set that a verifier would refuse (too many
    /// epochs, an id not derived from its fields, an empty interval, a duplicate id).
    pub fn sign(&self, key: &VaultSigningKey) -> Result<SignedEpochSet, EpochSetError> {
        self.check()?;
        let signature = key.sign_raw(&signed_message(&self.to_canonical_bytes()));
        Ok(SignedEpochSet { set: self.clone(), signature })
    }
}

fn arr<const N: usize>(s: &[u8]) -> [u8; N] {
    // Invariant: callers pass take(N), which is exactly N bytes.
    s.try_into().expect("N bytes")
}

fn signed_message(canonical: &[u8]) -> Vec<u8> {
    [EPOCH_SET_SIGNATURE_CONTEXT, &Sha256::digest(canonical)[..]].concat()
}

/// An epoch set with the vault's signature, as published. Not trusted until
/// [`SignedEpochSet::verify`] returns the set.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignedEpochSet {
    set: EpochSet,
    signature: [u8; 64],
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct JsonEpoch {
    epoch_id: EpochId,
    site: SiteName,
    class: RetentionClass,
    not_before_ms: i64,
    not_after_ms: i64,
    /// 130 lowercase hex digits, uncompressed SEC1.
    public_key: String,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct JsonSet {
    format: String,
    issued_at_ms: i64,
    epochs: Vec<JsonEpoch>,
    /// Standard base64 (with padding) of the 64-byte Ed25519 signature.
    signature: String,
}

impl SignedEpochSet {
    /// The JSON form (UTF-8): `format`, `issued_at_ms`, `epochs` (each with `epoch_id`, `site`,
    /// `class`, `not_before_ms`, `not_after_ms`, `public_key` as hex) and `signature` (base64).
    pub fn to_json(&self) -> Vec<u8> {
        let j = JsonSet {
            format: EPOCH_SET_JSON_FORMAT.to_owned(),
            issued_at_ms: self.set.issued_at_ms,
            epochs: self
                .set
                .epochs
                .iter()
                .map(|e| JsonEpoch {
                    epoch_id: e.epoch_id,
                    site: e.site.clone(),
                    class: e.class,
                    not_before_ms: e.not_before_ms,
                    not_after_ms: e.not_after_ms,
                    public_key: e.public_key.to_string(),
                })
                .collect(),
            signature: BASE64.encode(self.signature),
        };
        // Invariant: these types always serialize.
        serde_json::to_vec_pretty(&j).expect("epoch set serializes")
    }

    /// Parses the JSON form (size checked first). Does not verify anything cryptographic.
    pub fn from_json(bytes: &[u8]) -> Result<Self, EpochSetError> {
        if bytes.len() > MAX_EPOCH_SET_JSON_BYTES {
            return Err(EpochSetError::TooLarge);
        }
        let j: JsonSet = serde_json::from_slice(bytes).map_err(|e| EpochSetError::Json(e.to_string()))?;
        if j.format != EPOCH_SET_JSON_FORMAT {
            return Err(EpochSetError::Json(format!("unknown format {:?}", j.format)));
        }
        if j.epochs.len() > MAX_EPOCHS_PER_SET {
            return Err(EpochSetError::TooManyEpochs);
        }
        let sig = BASE64.decode(&j.signature).map_err(|_| EpochSetError::Json("signature is not base64".into()))?;
        let signature: [u8; 64] =
            sig.try_into().map_err(|_| EpochSetError::Json("signature is not 64 bytes".into()))?;
        let mut epochs = Vec::with_capacity(j.epochs.len());
        for e in j.epochs {
            let public_key =
                e.public_key.parse().map_err(|_| EpochSetError::Json(format!("bad public_key for {}", e.epoch_id)))?;
            epochs.push(EpochAnnouncement {
                epoch_id: e.epoch_id,
                site: e.site,
                class: e.class,
                not_before_ms: e.not_before_ms,
                not_after_ms: e.not_after_ms,
                public_key,
            });
        }
        Ok(Self { set: EpochSet { issued_at_ms: j.issued_at_ms, epochs }, signature })
    }

    /// Verifies the vault signature over the canonical encoding rebuilt from the fields, and
    /// re-derives every epoch id, checks every interval and refuses duplicate ids. Returns the
    /// set only if all of that holds.
    pub fn verify(&self, key: &VaultVerifyingKey) -> Result<EpochSet, EpochSetError> {
        if self.set.epochs.len() > MAX_EPOCHS_PER_SET {
            return Err(EpochSetError::TooManyEpochs);
        }
        let msg = signed_message(&self.set.to_canonical_bytes());
        if !key.verify_raw(&msg, &self.signature) {
            return Err(EpochSetError::BadSignature);
        }
        self.set.check()?;
        Ok(self.set.clone())
    }

    /// The 64-byte Ed25519 signature.
    pub fn signature(&self) -> &[u8; 64] {
        &self.signature
    }
}
