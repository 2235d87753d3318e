//! The 256-bit hash value, its text form and its distance.

use std::fmt;
use std::str::FromStr;

use crate::PdqError;

/// A 256-bit PDQ hash.
///
/// The bytes are in the reference's text order: `Display` prints them as 64 lower-case hex
/// digits exactly as `Hash256::format()` does (`w[15]` first), so the array is the hash as a
/// big-endian 256-bit integer. DCT coefficient (i, j) of the 16×16 block is bit `k = 16*i + j`
/// of that integer, i.e. bit `k % 8` of byte `31 - k / 8`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct PdqHash(pub [u8; 32]);

impl PdqHash {
    /// All bits clear: what the reference returns for images below 5×5 pixels.
    pub const ZERO: PdqHash = PdqHash([0; 32]);

    /// Number of differing bits.
    #[inline]
    pub fn hamming(&self, other: &PdqHash) -> u32 {
        let (a, b) = (self.words(), other.words());
        (a[0] ^ b[0]).count_ones()
            + (a[1] ^ b[1]).count_ones()
            + (a[2] ^ b[2]).count_ones()
            + (a[3] ^ b[3]).count_ones()
    }

    /// The hash as four big-endian `u64` words (word 0 holds the first 16 hex digits).
    #[inline]
    pub fn words(&self) -> [u64; 4] {
        std::array::from_fn(|w| {
            let mut b = [0u8; 8];
            b.copy_from_slice(&self.0[w * 8..w * 8 + 8]);
            u64::from_be_bytes(b)
        })
    }

    /// Inverse of [`PdqHash::words`].
    #[inline]
    pub fn from_words(words: [u64; 4]) -> PdqHash {
        let mut out = [0u8; 32];
        for (w, chunk) in words.iter().zip(out.chunks_exact_mut(8)) {
            chunk.copy_from_slice(&w.to_be_bytes());
        }
        PdqHash(out)
    }

    /// Sixteen-bit slot `s` (0..16) in text order: slot 0 is the first four hex digits, the
    /// reference's `w[15]`. Multi-index hashing keys on these.
    #[inline]
    pub fn slot(&self, s: usize) -> u16 {
        u16::from_be_bytes([self.0[2 * s], self.0[2 * s + 1]])
    }

    /// Bit `k` in the reference's numbering (coefficient `k / 16`, `k % 16`).
    #[inline]
    pub fn bit(&self, k: usize) -> bool {
        self.0[31 - k / 8] >> (k % 8) & 1 == 1
    }

    #[inline]
    pub(crate) fn set_bit(&mut self, k: usize) {
        self.0[31 - k / 8] |= 1 << (k % 8);
    }

    /// This hash with bit `k` inverted.
    #[inline]
    pub fn flip_bit(mut self, k: usize) -> PdqHash {
        self.0[31 - k / 8] ^= 1 << (k % 8);
        self
    }
}

impl fmt::Display for PdqHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for PdqHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PdqHash({self})")
    }
}

impl FromStr for PdqHash {
    type Err = PdqError;

    /// Exactly 64 hex digits (either case), nothing else.
    fn from_str(s: &str) -> Result<PdqHash, PdqError> {
        let s = s.as_bytes();
        if s.len() != 64 {
            return Err(PdqError::BadHashText);
        }
        let nibble = |c: u8| match c {
            b'0'..=b'9' => Ok(c - b'0'),
            b'a'..=b'f' => Ok(c - b'a' + 10),
            b'A'..=b'F' => Ok(c - b'A' + 10),
            _ => Err(PdqError::BadHashText),
        };
        let mut out = [0u8; 32];
        for (o, pair) in out.iter_mut().zip(s.chunks_exact(2)) {
            *o = nibble(pair[0])? << 4 | nibble(pair[1])?;
        }
        Ok(PdqHash(out))
    }
}
