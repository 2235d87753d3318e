//! RFC 9180 HPKE, base mode only, for the one suite the sealed-capture format uses:
//! DHKEM(P-256, HKDF-SHA256) / HKDF-SHA256 / AES-256-GCM (kem 0x0010, kdf 0x0001, aead 0x0002).
//!
//! Built directly on RustCrypto `p256` (keys and points), `hkdf`, `sha2` and `aes-gcm`, with the
//! scalar multiplications in AWS-LC (see [`EpochSecretKey`]), rather than on the `hpke` crate, so
//! that the recipient's Diffie-Hellman step goes through [`Decapsulator`] and can run inside an
//! HSM. Checked against the CFRG test vectors for this suite (see `testdata/`).
//!
//! Not provided: PSK, Auth and AuthPSK modes; other suites; streaming contexts beyond what the
//! single-shot API and the tests need.

use aes_gcm::aead::{AeadInPlace, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce};
use hkdf::{Hkdf, HkdfExtract};
use rand_core::{CryptoRng, RngCore};
use sha2::Sha256;
use zeroize::Zeroizing;

use crate::error::OpenError;
use crate::keys::{Decapsulator, EpochPublicKey, EpochSecretKey, P256_POINT_LEN};

/// RFC 9180 KEM id of DHKEM(P-256, HKDF-SHA256).
pub const KEM_ID: u16 = 0x0010;
/// RFC 9180 KDF id of HKDF-SHA256.
pub const KDF_ID: u16 = 0x0001;
/// RFC 9180 AEAD id of AES-256-GCM.
pub const AEAD_ID: u16 = 0x0002;

/// Length of `enc`, the serialized ephemeral public key (`Nenc`).
pub const ENC_LEN: usize = P256_POINT_LEN;
/// Length of the AEAD tag (`Nt`); a sealed message is this much longer than its plaintext.
pub const TAG_LEN: usize = 16;

const NK: usize = 32;
const NN: usize = 12;
const NH: usize = 32;

const KEM_SUITE_ID: [u8; 5] = [b'K', b'E', b'M', (KEM_ID >> 8) as u8, KEM_ID as u8];
const HPKE_SUITE_ID: [u8; 10] = [
    b'H',
    b'P',
    b'K',
    b'E',
    (KEM_ID >> 8) as u8,
    KEM_ID as u8,
    (KDF_ID >> 8) as u8,
    KDF_ID as u8,
    (AEAD_ID >> 8) as u8,
    AEAD_ID as u8,
];
const MODE_BASE: u8 = 0x00;

/// `LabeledExtract(salt, label, ikm)` of RFC 9180 section 4.
fn labeled_extract(suite_id: &[u8], salt: &[u8], label: &[u8], ikm: &[u8]) -> Zeroizing<[u8; NH]> {
    let mut ex = HkdfExtract::<Sha256>::new(Some(salt));
    ex.input_ikm(b"HPKE-v1");
    ex.input_ikm(suite_id);
    ex.input_ikm(label);
    ex.input_ikm(ikm);
    let (prk, _) = ex.finalize();
    let mut out = Zeroizing::new([0u8; NH]);
    out.copy_from_slice(&prk);
    out
}

/// `LabeledExpand(prk, label, info, L)` of RFC 9180 section 4, with `L = out.len()`.
fn labeled_expand(suite_id: &[u8], prk: &[u8; NH], label: &[u8], info: &[u8], out: &mut [u8]) {
    // Invariant: a 32-byte PRK is a valid HKDF-SHA256 PRK.
    let hk = Hkdf::<Sha256>::from_prk(prk).expect("PRK is HashLen bytes");
    // Invariant: every L used in this suite (at most 32) is far below 255 * HashLen, and L fits
    // the two-byte length prefix.
    let len = u16::try_from(out.len()).expect("L fits in two bytes").to_be_bytes();
    hk.expand_multi_info(&[&len, b"HPKE-v1", suite_id, label, info], out).expect("L <= 255 * HashLen");
}

/// `DeriveKeyPair(ikm)` of RFC 9180 section 7.1.3 for DHKEM(P-256): deterministic key
/// generation, used by the RFC's test vectors and available for tests. Production keys come
/// from [`EpochSecretKey::generate`].
pub fn derive_key_pair(ikm: &[u8]) -> EpochSecretKey {
    let dkp_prk = labeled_extract(&KEM_SUITE_ID, b"", b"dkp_prk", ikm);
    for counter in 0u8..=255 {
        let mut bytes = Zeroizing::new([0u8; 32]);
        labeled_expand(&KEM_SUITE_ID, &dkp_prk, b"candidate", &[counter], bytes.as_mut());
        // bitmask is 0xff for P-256, so no masking. from_bytes refuses 0 and >= order, exactly
        // the RFC's rejection condition.
        if let Ok(sk) = p256::SecretKey::from_bytes((&*bytes).into()) {
            return EpochSecretKey::from_inner(sk);
        }
    }
    // Invariant: each candidate is rejected with probability < 2^-32, so 256 rejections in a row
    // (probability < 2^-8192) do not happen.
    unreachable!("DeriveKeyPair found no valid scalar in 256 candidates")
}

/// `ExtractAndExpand(dh, kem_context)` of DHKEM.
fn extract_and_expand(dh: &[u8; 32], kem_context: &[u8]) -> Zeroizing<[u8; 32]> {
    let eae_prk = labeled_extract(&KEM_SUITE_ID, b"", b"eae_prk", dh);
    let mut ss = Zeroizing::new([0u8; 32]);
    labeled_expand(&KEM_SUITE_ID, &eae_prk, b"shared_secret", kem_context, ss.as_mut());
    ss
}

fn kem_context(enc: &[u8; ENC_LEN], pk_r: &EpochPublicKey) -> [u8; 2 * ENC_LEN] {
    let mut ctx = [0u8; 2 * ENC_LEN];
    ctx[..ENC_LEN].copy_from_slice(enc);
    ctx[ENC_LEN..].copy_from_slice(&pk_r.to_sec1_bytes());
    ctx
}

/// DHKEM `Encap(pkR)` with a given ephemeral key (random in production, derived in the vectors).
pub(crate) fn encap_with(pk_r: &EpochPublicKey, sk_e: &EpochSecretKey) -> ([u8; ENC_LEN], Zeroizing<[u8; 32]>) {
    let enc = sk_e.public_key().to_sec1_bytes();
    let dh = sk_e.dh(pk_r);
    let ss = extract_and_expand(&dh, &kem_context(&enc, pk_r));
    (enc, ss)
}

/// DHKEM `Decap(enc, skR)`, the DH step delegated to `dec`.
pub(crate) fn decap(enc: &[u8; ENC_LEN], dec: &(impl Decapsulator + ?Sized)) -> Result<Zeroizing<[u8; 32]>, OpenError> {
    let pk_e = EpochPublicKey::from_sec1_bytes(enc).map_err(|_| OpenError::DecryptionFailed)?;
    let dh = dec.diffie_hellman(&pk_e)?;
    Ok(extract_and_expand(&dh, &kem_context(enc, &dec.public_key())))
}

/// An HPKE encryption context (RFC 9180 section 5.2): key, base nonce, exporter secret and the
/// sequence number.
pub(crate) struct Context {
    key: Zeroizing<[u8; NK]>,
    base_nonce: [u8; NN],
    exporter_secret: Zeroizing<[u8; NH]>,
    seq: u64,
}

/// `KeySchedule(mode_base, shared_secret, info, "", "")`.
pub(crate) fn key_schedule_base(shared_secret: &[u8; 32], info: &[u8]) -> Context {
    let psk_id_hash = labeled_extract(&HPKE_SUITE_ID, b"", b"psk_id_hash", b"");
    let info_hash = labeled_extract(&HPKE_SUITE_ID, b"", b"info_hash", info);
    let mut ksc = [0u8; 1 + 2 * NH];
    ksc[0] = MODE_BASE;
    ksc[1..1 + NH].copy_from_slice(psk_id_hash.as_ref());
    ksc[1 + NH..].copy_from_slice(info_hash.as_ref());
    let secret = labeled_extract(&HPKE_SUITE_ID, shared_secret, b"secret", b"");
    let mut ctx = Context {
        key: Zeroizing::new([0u8; NK]),
        base_nonce: [0u8; NN],
        exporter_secret: Zeroizing::new([0u8; NH]),
        seq: 0,
    };
    labeled_expand(&HPKE_SUITE_ID, &secret, b"key", &ksc, ctx.key.as_mut());
    labeled_expand(&HPKE_SUITE_ID, &secret, b"base_nonce", &ksc, &mut ctx.base_nonce);
    labeled_expand(&HPKE_SUITE_ID, &secret, b"exp", &ksc, ctx.exporter_secret.as_mut());
    ctx
}

impl Context {
    fn nonce(&self) -> [u8; NN] {
        let mut n = self.base_nonce;
        for (b, s) in n[NN - 8..].iter_mut().zip(self.seq.to_be_bytes()) {
            *b ^= s;
        }
        n
    }

    fn cipher(&self) -> Aes256Gcm {
        Aes256Gcm::new((&*self.key).into())
    }

    fn advance(&mut self) {
        // A context here seals a handful of messages; u64 exhaustion is unreachable, and
        // saturating would reuse a nonce, so treat it as the invariant violation it is.
        self.seq = self.seq.checked_add(1).expect("HPKE sequence number exhausted");
    }

    /// `ContextS.Seal(aad, pt)`.
    pub(crate) fn seal(&mut self, aad: &[u8], pt: &[u8]) -> Vec<u8> {
        let mut buf = Vec::with_capacity(pt.len() + TAG_LEN);
        buf.extend_from_slice(pt);
        // Invariant: AES-GCM only fails for plaintexts over 2^36 bytes; callers bound parts far
        // below that.
        let tag = self
            .cipher()
            .encrypt_in_place_detached(&Nonce::from(self.nonce()), aad, &mut buf)
            .expect("plaintext within AES-GCM limits");
        buf.extend_from_slice(&tag);
        self.advance();
        buf
    }

    /// `ContextR.Open(aad, ct)`.
    pub(crate) fn open(&mut self, aad: &[u8], ct: &[u8]) -> Result<Zeroizing<Vec<u8>>, OpenError> {
        let pt = aead_open(&self.key, &self.nonce(), aad, ct)?;
        self.advance();
        Ok(pt)
    }

    /// `Context.Export(exporter_context, L)` with `L = out.len()` (at most 255 * 32).
    #[cfg(test)]
    pub(crate) fn export(&self, exporter_context: &[u8], out: &mut [u8]) {
        labeled_expand(&HPKE_SUITE_ID, &self.exporter_secret, b"sec", exporter_context, out);
    }
}

/// AES-256-GCM open into a zeroizing buffer. Any failure is [`OpenError::DecryptionFailed`].
pub(crate) fn aead_open(
    key: &[u8; 32],
    nonce: &[u8; 12],
    aad: &[u8],
    ct: &[u8],
) -> Result<Zeroizing<Vec<u8>>, OpenError> {
    let body_len = ct.len().checked_sub(TAG_LEN).ok_or(OpenError::DecryptionFailed)?;
    let (body, tag) = ct.split_at(body_len);
    let mut buf = Zeroizing::new(body.to_vec());
    Aes256Gcm::new(key.into())
        .decrypt_in_place_detached(&Nonce::from(*nonce), aad, buf.as_mut_slice(), tag.into())
        .map_err(|_| OpenError::DecryptionFailed)?;
    Ok(buf)
}

/// Single-shot `SealBase(pkR, info, aad, pt)`: a fresh ephemeral key from `rng`, returns
/// `(enc, ciphertext)`; the ciphertext is `pt.len() + 16` bytes.
pub fn seal_base(
    pk_r: &EpochPublicKey,
    info: &[u8],
    aad: &[u8],
    pt: &[u8],
    rng: &mut (impl RngCore + CryptoRng),
) -> ([u8; ENC_LEN], Vec<u8>) {
    let sk_e = EpochSecretKey::generate(rng);
    seal_base_with(pk_r, &sk_e, info, aad, pt)
}

pub(crate) fn seal_base_with(
    pk_r: &EpochPublicKey,
    sk_e: &EpochSecretKey,
    info: &[u8],
    aad: &[u8],
    pt: &[u8],
) -> ([u8; ENC_LEN], Vec<u8>) {
    let (enc, ss) = encap_with(pk_r, sk_e);
    let mut ctx = key_schedule_base(&ss, info);
    (enc, ctx.seal(aad, pt))
}

/// Single-shot `OpenBase(enc, skR, info, aad, ct)` with the DH step done by `dec`.
pub fn open_base(
    enc: &[u8; ENC_LEN],
    dec: &(impl Decapsulator + ?Sized),
    info: &[u8],
    aad: &[u8],
    ct: &[u8],
) -> Result<Zeroizing<Vec<u8>>, OpenError> {
    let ss = decap(enc, dec)?;
    key_schedule_base(&ss, info).open(aad, ct)
}

#[cfg(test)]
mod tests {
    //! RFC 9180 test vectors (CFRG `test-vectors.json` at commit 5f503c5, the RFC's final set;
    //! mode 0, kem 0x0010, kdf 0x0001, aead 0x0002), kept in
    //! `testdata/rfc9180-p256-sha256-aes256gcm.json`.

    use super::*;
    use serde::Deserialize;

    #[derive(Deserialize)]
    struct Encryption {
        aad: String,
        ct: String,
        nonce: String,
        pt: String,
    }

    #[derive(Deserialize)]
    struct Export {
        exporter_context: String,
        #[serde(rename = "L")]
        length: usize,
        exported_value: String,
    }

    #[derive(Deserialize)]
    struct Vector {
        mode: u8,
        kem_id: u16,
        kdf_id: u16,
        aead_id: u16,
        info: String,
        #[serde(rename = "ikmR")]
        ikm_r: String,
        #[serde(rename = "ikmE")]
        ikm_e: String,
        #[serde(rename = "skRm")]
        sk_rm: String,
        #[serde(rename = "skEm")]
        sk_em: String,
        #[serde(rename = "pkRm")]
        pk_rm: String,
        #[serde(rename = "pkEm")]
        pk_em: String,
        enc: String,
        shared_secret: String,
        key_schedule_context: String,
        secret: String,
        key: String,
        base_nonce: String,
        exporter_secret: String,
        encryptions: Vec<Encryption>,
        exports: Vec<Export>,
    }

    fn h(s: &str) -> Vec<u8> {
        hex::decode(s).unwrap()
    }

    fn vectors() -> Vec<Vector> {
        let text = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/testdata/rfc9180-p256-sha256-aes256gcm.json"));
        let v: Vec<Vector> = serde_json::from_str(text).unwrap();
        assert!(!v.is_empty());
        v
    }

    #[test]
    fn rfc9180_vectors() {
        for v in vectors() {
            assert_eq!((v.mode, v.kem_id, v.kdf_id, v.aead_id), (0, KEM_ID, KDF_ID, AEAD_ID));
            let info = h(&v.info);

            // DeriveKeyPair from the seeds gives the published keys.
            let sk_r = derive_key_pair(&h(&v.ikm_r));
            let sk_e = derive_key_pair(&h(&v.ikm_e));
            assert_eq!(sk_r.to_bytes().to_vec(), h(&v.sk_rm));
            assert_eq!(sk_e.to_bytes().to_vec(), h(&v.sk_em));
            assert_eq!(sk_r.public_key().to_sec1_bytes().to_vec(), h(&v.pk_rm));
            assert_eq!(sk_e.public_key().to_sec1_bytes().to_vec(), h(&v.pk_em));

            // Encap on the sender side, Decap on the receiver side.
            let pk_r = EpochPublicKey::from_sec1_bytes(&h(&v.pk_rm)).unwrap();
            let (enc, ss) = encap_with(&pk_r, &sk_e);
            assert_eq!(enc.to_vec(), h(&v.enc));
            assert_eq!(ss.to_vec(), h(&v.shared_secret));
            let ss_r = decap(&enc, &sk_r).unwrap();
            assert_eq!(ss_r.to_vec(), h(&v.shared_secret));

            // Key schedule.
            let psk_id_hash = labeled_extract(&HPKE_SUITE_ID, b"", b"psk_id_hash", b"");
            let info_hash = labeled_extract(&HPKE_SUITE_ID, b"", b"info_hash", &info);
            let ksc = [&[MODE_BASE][..], &psk_id_hash[..], &info_hash[..]].concat();
            assert_eq!(ksc, h(&v.key_schedule_context));
            let secret = labeled_extract(&HPKE_SUITE_ID, &ss[..], b"secret", b"");
            assert_eq!(secret.to_vec(), h(&v.secret));
            let mut s_ctx = key_schedule_base(&ss, &info);
            let mut r_ctx = key_schedule_base(&ss_r, &info);
            assert_eq!(s_ctx.key.to_vec(), h(&v.key));
            assert_eq!(s_ctx.base_nonce.to_vec(), h(&v.base_nonce));
            assert_eq!(s_ctx.exporter_secret.to_vec(), h(&v.exporter_secret));

            // Every encryption, in sequence order (0..=256), both directions.
            assert!(v.encryptions.len() > 256);
            for (i, e) in v.encryptions.iter().enumerate() {
                assert_eq!(s_ctx.seq, i as u64);
                assert_eq!(s_ctx.nonce().to_vec(), h(&e.nonce), "nonce {i}");
                let ct = s_ctx.seal(&h(&e.aad), &h(&e.pt));
                assert_eq!(ct, h(&e.ct), "ciphertext {i}");
                let pt = r_ctx.open(&h(&e.aad), &ct).unwrap();
                assert_eq!(pt.to_vec(), h(&e.pt));
            }

            // Exports.
            assert!(!v.exports.is_empty());
            for x in &v.exports {
                let mut out = vec![0u8; x.length];
                r_ctx.export(&h(&x.exporter_context), &mut out);
                assert_eq!(out, h(&x.exported_value));
            }

            // Single-shot API: first encryption of the vector.
            let e0 = &v.encryptions[0];
            let (enc1, ct1) = seal_base_with(&pk_r, &sk_e, &info, &h(&e0.aad), &h(&e0.pt));
            assert_eq!(enc1.to_vec(), h(&v.enc));
            assert_eq!(ct1, h(&e0.ct));
            let pt = open_base(&enc1, &sk_r, &info, &h(&e0.aad), &ct1).unwrap();
            assert_eq!(pt.to_vec(), h(&e0.pt));
            let mut bad = ct1.clone();
            bad[0] ^= 1;
            assert_eq!(open_base(&enc1, &sk_r, &info, &h(&e0.aad), &bad).unwrap_err(), OpenError::DecryptionFailed);
        }
    }
}
