//! Key types: Ed25519 signing keys for devices and the vault, P-256 key pairs for key epochs, and
//! the [`Decapsulator`] trait through which every decapsulation's Diffie-Hellman step runs.

use std::fmt;
use std::str::FromStr;

use ed25519_dalek::Signer;
use p256::elliptic_curve::sec1::ToEncodedPoint;
use rand_core::{CryptoRng, RngCore};
use zeroize::Zeroizing;

use crate::error::{DecapError, KeyError};

/// The x-coordinate of a P-256 Diffie-Hellman shared point: the `DH()` output of RFC 9180
/// DHKEM(P-256). Zeroized on drop.
pub type SharedSecretX = Zeroizing<[u8; 32]>;

/// Length of an uncompressed SEC1 P-256 point (`0x04 || x || y`).
pub const P256_POINT_LEN: usize = 65;

/// Holds an epoch private key and performs the Diffie-Hellman step of HPKE decapsulation with it.
///
/// The rest of decapsulation (the KEM's key derivation, the key schedule, the AEAD) runs in this
/// crate on the returned x-coordinate, so a PKCS#11 token can implement this trait with
/// `CKM_ECDH1_DERIVE` (`CKD_NULL`, returning the raw x-coordinate) and never reveal the key.
pub trait Decapsulator {
    /// The public key that belongs to the private key. It enters the KEM context, so a
    /// decapsulator that answers with the wrong public key fails to open anything.
    fn public_key(&self) -> EpochPublicKey;

    /// `DH(sk, peer)`: the x-coordinate of `sk * peer`. `peer` is already validated (on the
    /// curve, not the identity).
    fn diffie_hellman(&self, peer: &EpochPublicKey) -> Result<SharedSecretX, DecapError>;
}

/// A P-256 public key of a key epoch, the HPKE recipient key (`pkR`).
#[derive(Clone, PartialEq, Eq)]
pub struct EpochPublicKey(p256::PublicKey);

impl EpochPublicKey {
    /// Parses an uncompressed SEC1 point (65 bytes, first byte 0x04) and checks it lies on the
    /// curve. Compressed points are refused so that each key has exactly one encoding.
    pub fn from_sec1_bytes(bytes: &[u8]) -> Result<Self, KeyError> {
        if bytes.len() != P256_POINT_LEN || bytes[0] != 0x04 {
            return Err(KeyError::InvalidKey);
        }
        p256::PublicKey::from_sec1_bytes(bytes).map(Self).map_err(|_| KeyError::InvalidKey)
    }

    /// The uncompressed SEC1 encoding (`SerializePublicKey` of RFC 9180 DHKEM(P-256)).
    pub fn to_sec1_bytes(&self) -> [u8; P256_POINT_LEN] {
        let ep = self.0.to_encoded_point(false);
        let mut out = [0u8; P256_POINT_LEN];
        // Invariant: an uncompressed encoding of a non-identity point is always 65 bytes.
        out.copy_from_slice(ep.as_bytes());
        out
    }
}

impl std::hash::Hash for EpochPublicKey {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.to_sec1_bytes().hash(state)
    }
}

impl fmt::Display for EpochPublicKey {
    /// 130 lowercase hex digits of the uncompressed point.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.to_sec1_bytes()))
    }
}

impl fmt::Debug for EpochPublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "EpochPublicKey({self})")
    }
}

impl FromStr for EpochPublicKey {
    type Err = KeyError;
    fn from_str(s: &str) -> Result<Self, KeyError> {
        if s.len() != 2 * P256_POINT_LEN || s.bytes().any(|b| b.is_ascii_uppercase()) {
            return Err(KeyError::BadHex);
        }
        let mut b = [0u8; P256_POINT_LEN];
        hex::decode_to_slice(s, &mut b).map_err(|_| KeyError::BadHex)?;
        Self::from_sec1_bytes(&b)
    }
}

/// A P-256 private key of a key epoch, held in the file keystore. Zeroized on drop; no `Debug`
/// beyond a redacted one.
///
/// The public key is computed once at construction: every decapsulation needs it for the KEM
/// context, and a P-256 scalar multiplication per open would double the cost of opening.
///
/// The scalar multiplications (the public key, `DH`) run in AWS-LC through `aws-lc-rs`: its
/// P-256 is about 3 times faster for `DH` and 9 times for the public key than RustCrypto
/// `p256`'s, which a lane pays three times per capture and the vault once (measured in
/// docs/formats/sealed-capture.md §6). `p256` still parses, validates and encodes keys. AWS-LC
/// keeps its copy of the scalar in memory it wipes when the key is freed.
#[derive(Clone)]
pub struct EpochSecretKey {
    sk: p256::SecretKey,
    agreement: std::sync::Arc<aws_lc_rs::agreement::PrivateKey>,
    pk: EpochPublicKey,
}

impl EpochSecretKey {
    /// A fresh random key.
    pub fn generate(rng: &mut (impl RngCore + CryptoRng)) -> Self {
        Self::from_inner(p256::SecretKey::random(rng))
    }

    /// Parses a 32-byte big-endian scalar; refuses 0 and values >= the group order.
    pub fn from_bytes(bytes: &[u8; 32]) -> Result<Self, KeyError> {
        p256::SecretKey::from_bytes(bytes.into()).map(Self::from_inner).map_err(|_| KeyError::InvalidKey)
    }

    /// The 32-byte big-endian scalar.
    pub fn to_bytes(&self) -> Zeroizing<[u8; 32]> {
        let fb = Zeroizing::new(self.sk.to_bytes());
        let mut out = Zeroizing::new([0u8; 32]);
        out.copy_from_slice(&fb[..]);
        out
    }

    /// The matching public key.
    pub fn public_key(&self) -> EpochPublicKey {
        self.pk.clone()
    }

    pub(crate) fn from_inner(sk: p256::SecretKey) -> Self {
        let scalar = Zeroizing::new(sk.to_bytes());
        // Invariant: `sk` is a valid P-256 scalar (p256 refuses 0 and values >= the order), which
        // is all AWS-LC checks, and the public key of a valid scalar is a valid point.
        let agreement =
            aws_lc_rs::agreement::PrivateKey::from_private_key(&aws_lc_rs::agreement::ECDH_P256, &scalar[..])
                .expect("a valid P-256 scalar loads into AWS-LC");
        let public = agreement.compute_public_key().expect("a valid P-256 scalar has a public key");
        let pk = EpochPublicKey::from_sec1_bytes(public.as_ref())
            .expect("AWS-LC encodes a P-256 public key as an uncompressed point");
        Self { sk, agreement: std::sync::Arc::new(agreement), pk }
    }
}

impl fmt::Debug for EpochSecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("EpochSecretKey(<redacted>)")
    }
}

impl Decapsulator for EpochSecretKey {
    fn public_key(&self) -> EpochPublicKey {
        EpochSecretKey::public_key(self)
    }

    fn diffie_hellman(&self, peer: &EpochPublicKey) -> Result<SharedSecretX, DecapError> {
        Ok(self.dh(peer))
    }
}

impl EpochSecretKey {
    /// `DH(sk, pk)` of RFC 9180 DHKEM(P-256): the x-coordinate of the shared point. The point
    /// cannot be the identity: the scalar is non-zero, the peer point is not the identity, and
    /// P-256 has prime order.
    pub(crate) fn dh(&self, peer: &EpochPublicKey) -> SharedSecretX {
        let peer = aws_lc_rs::agreement::UnparsedPublicKey::new(&aws_lc_rs::agreement::ECDH_P256, peer.to_sec1_bytes());
        let mut out = Zeroizing::new([0u8; 32]);
        // Invariant: `peer` was validated on the curve when it was parsed, so AWS-LC's own check
        // passes and agreement cannot fail.
        aws_lc_rs::agreement::agree(&self.agreement, peer, (), |x| {
            out.copy_from_slice(x);
            Ok(())
        })
        .expect("a validated P-256 point agrees with a valid scalar");
        out
    }
}

macro_rules! ed25519_pair {
    ($(#[$sdoc:meta])* $sk:ident, $(#[$vdoc:meta])* $vk:ident) => {
        $(#[$sdoc])*
        #[derive(Clone)]
        pub struct $sk(ed25519_dalek::SigningKey);

        impl $sk {
            /// A fresh random key.
            pub fn generate(rng: &mut (impl RngCore + CryptoRng)) -> Self {
                Self(ed25519_dalek::SigningKey::generate(rng))
            }

            /// From the 32-byte Ed25519 seed.
            pub fn from_bytes(seed: &[u8; 32]) -> Self {
                Self(ed25519_dalek::SigningKey::from_bytes(seed))
            }

            /// The 32-byte Ed25519 seed.
            pub fn to_bytes(&self) -> Zeroizing<[u8; 32]> {
                Zeroizing::new(self.0.to_bytes())
            }

            /// The matching public key.
            pub fn verifying_key(&self) -> $vk {
                $vk(self.0.verifying_key())
            }

            pub(crate) fn sign_raw(&self, msg: &[u8]) -> [u8; 64] {
                self.0.sign(msg).to_bytes()
            }
        }

        impl fmt::Debug for $sk {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(concat!(stringify!($sk), "(<redacted>)"))
            }
        }

        $(#[$vdoc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash)]
        pub struct $vk(ed25519_dalek::VerifyingKey);

        impl $vk {
            /// Parses a 32-byte Ed25519 public key; refuses non-points and small-order points.
            pub fn from_bytes(bytes: &[u8; 32]) -> Result<Self, KeyError> {
                let k = ed25519_dalek::VerifyingKey::from_bytes(bytes)
                    .map_err(|_| KeyError::InvalidKey)?;
                if k.is_weak() {
                    return Err(KeyError::InvalidKey);
                }
                Ok(Self(k))
            }

            /// The 32-byte encoding.
            pub fn to_bytes(&self) -> [u8; 32] {
                self.0.to_bytes()
            }

            /// Strict Ed25519 verification (RFC 8032 with canonical `S`, no small-order `R` or
            /// key), so a signature has one valid encoding.
            pub(crate) fn verify_raw(&self, msg: &[u8], sig: &[u8; 64]) -> bool {
                let sig = ed25519_dalek::Signature::from_bytes(sig);
                self.0.verify_strict(msg, &sig).is_ok()
            }
        }

        impl fmt::Display for $vk {
            /// 64 lowercase hex digits.
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&hex::encode(self.0.as_bytes()))
            }
        }

        impl fmt::Debug for $vk {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!(stringify!($vk), "({})"), self)
            }
        }

        impl FromStr for $vk {
            type Err = KeyError;
            /// Exactly 64 lowercase hex digits.
            fn from_str(s: &str) -> Result<Self, KeyError> {
                if s.len() != 64 || s.bytes().any(|b| b.is_ascii_uppercase()) {
                    return Err(KeyError::BadHex);
                }
                let mut b = [0u8; 32];
                hex::decode_to_slice(s, &mut b).map_err(|_| KeyError::BadHex)?;
                Self::from_bytes(&b)
            }
        }
    };
}

ed25519_pair!(
    /// A lane device's Ed25519 signing key. Zeroized on drop; `Debug` is redacted.
    DeviceSigningKey,
    /// A lane device's Ed25519 public key, registered with the vault at enrolment.
    DeviceVerifyingKey
);
ed25519_pair!(
    /// The vault's Ed25519 key for signing epoch sets. Zeroized on drop; `Debug` is redacted.
    VaultSigningKey,
    /// The vault's Ed25519 public key, configured on every lane to verify epoch sets.
    VaultVerifyingKey
);

#[cfg(test)]
mod tests {
    use super::*;
    use rand_chacha::ChaCha20Rng;
    use rand_core::SeedableRng;

    #[test]
    fn epoch_key_round_trips() {
        let mut rng = ChaCha20Rng::seed_from_u64(1);
        let sk = EpochSecretKey::generate(&mut rng);
        let sk2 = EpochSecretKey::from_bytes(&sk.to_bytes()).unwrap();
        assert_eq!(sk.public_key(), sk2.public_key());
        let pk = sk.public_key();
        assert_eq!(EpochPublicKey::from_sec1_bytes(&pk.to_sec1_bytes()).unwrap(), pk);
        assert_eq!(pk.to_string().parse::<EpochPublicKey>().unwrap(), pk);
        assert!(EpochSecretKey::from_bytes(&[0; 32]).is_err());
        assert!(EpochSecretKey::from_bytes(&[0xff; 32]).is_err());
        let mut bad = pk.to_sec1_bytes();
        bad[64] ^= 1;
        assert!(EpochPublicKey::from_sec1_bytes(&bad).is_err());
        assert_eq!(format!("{sk:?}"), "EpochSecretKey(<redacted>)");
    }

    #[test]
    fn dh_agrees() {
        let mut rng = ChaCha20Rng::seed_from_u64(2);
        let a = EpochSecretKey::generate(&mut rng);
        let b = EpochSecretKey::generate(&mut rng);
        let ab = a.diffie_hellman(&b.public_key()).unwrap();
        let ba = b.diffie_hellman(&a.public_key()).unwrap();
        assert_eq!(*ab, *ba);
    }

    /// AWS-LC's public keys and DH outputs equal RustCrypto `p256`'s, an independent
    /// implementation, on keys spread over the scalar range (the RFC 9180 vectors pin one pair).
    #[test]
    fn aws_lc_agrees_with_rustcrypto_p256() {
        use p256::elliptic_curve::sec1::ToEncodedPoint;
        let mut rng = ChaCha20Rng::seed_from_u64(5);
        for _ in 0..64 {
            let a = p256::SecretKey::random(&mut rng);
            let b = p256::SecretKey::random(&mut rng);
            let ours = EpochSecretKey::from_inner(a.clone());
            let expected_pk = a.public_key().to_encoded_point(false);
            assert_eq!(&ours.public_key().to_sec1_bytes()[..], expected_pk.as_bytes());
            let peer = EpochPublicKey::from_sec1_bytes(b.public_key().to_encoded_point(false).as_bytes()).unwrap();
            let expected = p256::ecdh::diffie_hellman(a.to_nonzero_scalar(), b.public_key().as_affine());
            assert_eq!(&ours.dh(&peer)[..], &expected.raw_secret_bytes()[..]);
        }
    }

    #[test]
    fn ed25519_round_trips() {
        let mut rng = ChaCha20Rng::seed_from_u64(3);
        let sk = DeviceSigningKey::generate(&mut rng);
        let vk = sk.verifying_key();
        assert_eq!(DeviceSigningKey::from_bytes(&sk.to_bytes()).verifying_key(), vk);
        assert_eq!(DeviceVerifyingKey::from_bytes(&vk.to_bytes()).unwrap(), vk);
        assert_eq!(vk.to_string().parse::<DeviceVerifyingKey>().unwrap(), vk);
        // The identity point is small-order and must be refused.
        let mut id = [0u8; 32];
        id[0] = 1;
        assert!(DeviceVerifyingKey::from_bytes(&id).is_err());
        let sig = sk.sign_raw(b"m");
        assert!(vk.verify_raw(b"m", &sig));
        assert!(!vk.verify_raw(b"n", &sig));
    }
}
