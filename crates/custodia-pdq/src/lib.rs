//! PDQ perceptual hashing for Custodia's leak detection (DESIGN.md §6).
//!
//! This is our own implementation of Meta's PDQ photo hash (ThreatExchange `pdq/cpp`,
//! algorithm paper `pdqhash-2017-10-09.pdf`): luma, a two-pass Jarosz box filter, 64×64
//! decimation, the 16×16 corner of a 64-point DCT-II, a median threshold, and the
//! reference's gradient-count quality score. It reproduces, bit for bit, the hashes and
//! qualities ThreatExchange publishes for its example images (`tests/conformance.rs`), and
//! derives all eight dihedral hashes from one DCT as the reference does.
//!
//! Two versioned pipelines turn encoded bytes into a luma plane; every result carries the
//! name of the one that made it, because hashes from different pipelines differ by a few bits:
//!
//! - [`Pipeline::CanonicalV1`] (`pdq-canonical-v1`): full-size decode. Use it for
//!   conformance and for hashes that will be compared with outside hash lists.
//! - [`Pipeline::FastV1`] (`pdq-fast-v1`): for bulk ingest and dump scans. A JPEG larger
//!   than 512 px is entropy-decoded and its Y channel (JFIF's Y *is* `0.299 R + 0.587 G +
//!   0.114 B`, PDQ's luma) is area-averaged to 1/2, 1/4 or 1/8 scale straight from the DCT
//!   coefficients, the mildest scale that fits 512 px on the long side; no IDCT, chroma
//!   upsampling or colour conversion runs. Other images are decoded in full and
//!   area-averaged to ≤ 512 px; images that already fit hash exactly as canonical does. On
//!   the conformance images fast differs from canonical by 0–14 bits (mean 4.9).
//!
//! JPEG pixels for `pdq-canonical-v1` come from this crate's own decoder, which reproduces
//! libjpeg-turbo's default output exactly (accurate integer IDCT, fancy upsampling, its
//! YCbCr tables) because that is what the published hashes were computed on; the `image`
//! crate's zune-jpeg differs by up to ±5 levels and moved 2 bits of `wee.jpg`. Arithmetic-
//! coded, 12-bit, lossless and CMYK JPEGs fall back to zune-jpeg (not bit-exact).
//!
//! Pixel rules (both pipelines; tested in `tests/pixel_rules.rs`):
//!
//! - **EXIF orientation is not applied.** Neither reference applies it (the C++ reads pixels
//!   with CImg, the Python with `PIL.Image.open`, neither transposes), and the eight
//!   orientations are exactly the eight dihedral variants, so a leak scan that queries all
//!   eight finds a re-oriented copy anyway.
//! - **Alpha is ignored**: the stored colour is hashed as if opaque, as the reference's Python
//!   path (which made the published hashes) does. Compositing over a chosen background would
//!   break agreement with outside hash lists; the C++ tool rejects RGBA input outright.
//! - **Greyscale** hashes the grey value itself (`fillFloatLumaFromGrey`).
//! - **16-bit** samples use their high byte (libpng `strip_16`, Pillow's 16-bit PNG reader).
//!   Pillow's own `I;16` → RGB conversion clips instead; we do not copy that.
//! - **Palette** images are expanded to RGB first (as CImg does; Python's numpy path would
//!   hash palette indices, which we treat as a bug, not a reference).
//! - RGB luma is `R·0.299 + G·0.587 + B·0.114` formed in `f64` and stored as `f32`: that is
//!   how the published hashes were computed (numpy, then the C++ core).
//!
//! What it does not do: read files, walk folders or archives, store anything, or decide
//! what a match means (that is the vault's leak scan). Formats are JPEG and PNG only.
//! Cropping and border stripping live in [`crops`]; multi-index search in [`index`].
//!
//! ```
//! use custodia_pdq::{hash_luma, PdqHash};
//!
//! // A 64×64 horizontal ramp.
//! let luma: Vec<f32> = (0..64 * 64).map(|i| (i % 64) as f32 * 4.0).collect();
//! let r = hash_luma(&luma, 64, 64);
//! let text = r.hash.to_string();
//! assert_eq!(text.len(), 64);
//! assert_eq!(text.parse::<PdqHash>().unwrap(), r.hash);
//! assert_eq!(r.hash.hamming(&r.hash), 0);
//! ```
// `deny`, not `forbid`: the one exception is `index::scan`, whose CPU-feature dispatch for the
// popcount scan measurably pays (benches/index.rs); everything else is safe code.
#![deny(unsafe_code)]
#![warn(missing_docs)]

mod algo;
pub mod crops;
mod decode;
mod hash;
pub mod index;
mod jpeg;

use image::DynamicImage;

pub use decode::{FAST_MAX_SIDE, MAX_DIMENSION, MAX_INPUT_BYTES, MAX_PIXELS};
pub use hash::PdqHash;

/// Why an image could not be hashed. Images too small to hash (under 5×5) are not an error:
/// as in the reference they give the all-zero hash with quality 0.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum PdqError {
    /// Hash text was not exactly 64 hex digits.
    #[error("a PDQ hash is exactly 64 hex digits")]
    BadHashText,
    /// Pipeline text was not a pipeline name this version knows.
    #[error("unknown PDQ pipeline name")]
    UnknownPipeline,
    /// The encoded input is longer than [`MAX_INPUT_BYTES`].
    #[error("input of {len} bytes exceeds the limit")]
    InputTooLong {
        /// Its length.
        len: usize,
    },
    /// The header declares more than [`MAX_PIXELS`] pixels or a side over [`MAX_DIMENSION`];
    /// nothing was decoded.
    #[error("image of {width}x{height} exceeds the size limit")]
    TooLarge {
        /// Declared width.
        width: u32,
        /// Declared height.
        height: u32,
    },
    /// A decoder wanted more memory than the decode limit allows.
    #[error("image decoding exceeded the memory limit")]
    LimitExceeded,
    /// Not a JPEG or PNG, or a JPEG/PNG feature the decoders do not support.
    #[error("unsupported image format")]
    UnsupportedFormat,
    /// The bytes are not a valid image of their format.
    #[error("image decoding failed: {0}")]
    Decode(String),
}

/// A named, versioned way of turning encoded bytes into the luma plane PDQ hashes.
/// Hashes are only comparable bit-for-bit within one pipeline; store the name with each hash.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Pipeline {
    /// `pdq-canonical-v1`: full-size decode, reference arithmetic throughout.
    CanonicalV1,
    /// `pdq-fast-v1`: DCT-domain JPEG luma downscale or area downsample to ≤ 512 px, then
    /// the reference arithmetic.
    FastV1,
}

impl Pipeline {
    /// Every pipeline this version implements.
    pub const ALL: [Pipeline; 2] = [Pipeline::CanonicalV1, Pipeline::FastV1];

    /// The stable name stored beside each hash.
    pub const fn name(self) -> &'static str {
        match self {
            Pipeline::CanonicalV1 => "pdq-canonical-v1",
            Pipeline::FastV1 => "pdq-fast-v1",
        }
    }
}

impl std::fmt::Display for Pipeline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Pipeline {
    type Err = PdqError;
    fn from_str(s: &str) -> Result<Pipeline, PdqError> {
        Pipeline::ALL.into_iter().find(|p| p.name() == s).ok_or(PdqError::UnknownPipeline)
    }
}

/// One hash, its quality (0..=100; below 50 the reference says not to trust it alone), and
/// the pipeline that made it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PdqResult {
    /// The hash.
    pub hash: PdqHash,
    /// The reference's quality score, 0..=100.
    pub quality: u32,
    /// The pipeline that produced the luma plane.
    pub pipeline: Pipeline,
}

/// The eight dihedral transforms, in the reference's order and with its names.
/// Each names the transform of the *image* whose hash the variant equals (up to the small
/// asymmetry of PDQ's sampling grid).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DihedralVariant {
    /// The image as stored.
    Original,
    /// Rotated by 90° (the reference's `Rotate90`; counter-clockwise, see tests).
    Rotate90,
    /// Rotated by 180°.
    Rotate180,
    /// Rotated by 270° (the reference's `Rotate270`; clockwise, see tests).
    Rotate270,
    /// Mirrored top to bottom (the reference's `FlipX`: rows reversed).
    FlipX,
    /// Mirrored left to right (the reference's `FlipY`: columns reversed).
    FlipY,
    /// Transposed about the main diagonal (the reference's `FlipPlus1`).
    FlipPlus1,
    /// Transposed about the anti-diagonal (the reference's `FlipMinus1`).
    FlipMinus1,
}

impl DihedralVariant {
    /// All eight, in the order of [`Dihedral::hashes`].
    pub const ALL: [DihedralVariant; 8] = [
        DihedralVariant::Original,
        DihedralVariant::Rotate90,
        DihedralVariant::Rotate180,
        DihedralVariant::Rotate270,
        DihedralVariant::FlipX,
        DihedralVariant::FlipY,
        DihedralVariant::FlipPlus1,
        DihedralVariant::FlipMinus1,
    ];

    /// A stable lower-case name (`original`, `rot90`, `rot180`, `rot270`, `flipx`, `flipy`,
    /// `flipplus1`, `flipminus1`).
    pub const fn name(self) -> &'static str {
        match self {
            DihedralVariant::Original => "original",
            DihedralVariant::Rotate90 => "rot90",
            DihedralVariant::Rotate180 => "rot180",
            DihedralVariant::Rotate270 => "rot270",
            DihedralVariant::FlipX => "flipx",
            DihedralVariant::FlipY => "flipy",
            DihedralVariant::FlipPlus1 => "flipplus1",
            DihedralVariant::FlipMinus1 => "flipminus1",
        }
    }

    /// Position in [`DihedralVariant::ALL`] and [`Dihedral::hashes`].
    pub const fn index(self) -> usize {
        self as usize
    }
}

/// All eight dihedral hashes of one image, from one DCT, with the shared quality.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Dihedral {
    /// Indexed by [`DihedralVariant::index`].
    pub hashes: [PdqHash; 8],
    /// The reference's quality score, 0..=100 (the same for every variant).
    pub quality: u32,
    /// The pipeline that produced the luma plane.
    pub pipeline: Pipeline,
}

impl Dihedral {
    /// The hash of one variant.
    pub fn get(&self, v: DihedralVariant) -> PdqHash {
        self.hashes[v.index()]
    }

    /// `(variant, hash)` pairs in reference order.
    pub fn iter(&self) -> impl Iterator<Item = (DihedralVariant, PdqHash)> + '_ {
        DihedralVariant::ALL.into_iter().zip(self.hashes)
    }

    /// The original-orientation result alone.
    pub fn original(&self) -> PdqResult {
        PdqResult { hash: self.hashes[0], quality: self.quality, pipeline: self.pipeline }
    }
}

fn checked_plane(luma: &[f32], width: usize, height: usize) -> Vec<f32> {
    // A length mismatch is a caller bug; hash what the dimensions describe, or nothing.
    match width.checked_mul(height) {
        Some(n) if n == luma.len() => luma.to_vec(),
        _ => Vec::new(),
    }
}

fn result_of(mut plane: Vec<f32>, width: usize, height: usize, pipeline: Pipeline) -> PdqResult {
    match algo::dct_and_quality(&mut plane, height, width) {
        Some((dct, quality)) => PdqResult { hash: algo::hash_from_dct(&dct), quality, pipeline },
        None => PdqResult { hash: PdqHash::ZERO, quality: 0, pipeline },
    }
}

fn dihedral_of(mut plane: Vec<f32>, width: usize, height: usize, pipeline: Pipeline) -> Dihedral {
    match algo::dct_and_quality(&mut plane, height, width) {
        Some((dct, quality)) => Dihedral { hashes: algo::dihedral_from_dct(&dct), quality, pipeline },
        None => Dihedral { hashes: [PdqHash::ZERO; 8], quality: 0, pipeline },
    }
}

/// Hash a row-major luma plane (values 0..=255) with the reference arithmetic.
///
/// `luma.len()` must equal `width * height`; if it does not, or either side is under 5,
/// the result is the all-zero hash with quality 0 (the reference's answer for tiny images).
/// The result is labelled `pdq-canonical-v1`: it is the canonical arithmetic on the plane
/// given. (A caller who downscaled the plane itself should say so where it stores the hash.)
pub fn hash_luma(luma: &[f32], width: usize, height: usize) -> PdqResult {
    result_of(checked_plane(luma, width, height), width, height, Pipeline::CanonicalV1)
}

/// [`hash_luma`], all eight dihedral variants.
pub fn hash_luma_dihedral(luma: &[f32], width: usize, height: usize) -> Dihedral {
    dihedral_of(checked_plane(luma, width, height), width, height, Pipeline::CanonicalV1)
}

/// Hash an already-decoded image at full size (`pdq-canonical-v1`), with the pixel rules
/// in the crate docs.
pub fn hash_image(img: &DynamicImage) -> PdqResult {
    hash_image_with(img, Pipeline::CanonicalV1)
}

/// Hash an already-decoded image with a pipeline: `FastV1` area-averages it to ≤ 512 px on
/// the long side first (there is no DCT-domain shortcut once an image is decoded).
pub fn hash_image_with(img: &DynamicImage, pipeline: Pipeline) -> PdqResult {
    let l = image_luma(img, pipeline);
    result_of(l.data, l.width, l.height, pipeline)
}

/// [`hash_image_with`], all eight dihedral variants.
pub fn hash_image_dihedral(img: &DynamicImage, pipeline: Pipeline) -> Dihedral {
    let l = image_luma(img, pipeline);
    dihedral_of(l.data, l.width, l.height, pipeline)
}

fn image_luma(img: &DynamicImage, pipeline: Pipeline) -> decode::Luma {
    let l = decode::luma_of(img);
    match pipeline {
        Pipeline::CanonicalV1 => l,
        Pipeline::FastV1 => decode::area_downsample(l, FAST_MAX_SIDE),
    }
}

/// Decode JPEG or PNG bytes and hash them with `pipeline`.
///
/// Defensive: the input length is checked against [`MAX_INPUT_BYTES`] and the header's
/// dimensions against [`MAX_PIXELS`]/[`MAX_DIMENSION`] before any pixel buffer is allocated,
/// decoders run under a memory limit, and malformed input is an error, never a panic. A
/// JPEG's frame must also be one its bytes could encode (at least one bit per block), and its
/// scans must follow the progression rules, so a few bytes cannot buy seconds of decoding.
pub fn hash_bytes(bytes: &[u8], pipeline: Pipeline) -> Result<PdqResult, PdqError> {
    let l = decode::luma_for(bytes, pipeline)?;
    Ok(result_of(l.data, l.width, l.height, pipeline))
}

/// [`hash_bytes`], all eight dihedral variants.
pub fn hash_bytes_dihedral(bytes: &[u8], pipeline: Pipeline) -> Result<Dihedral, PdqError> {
    let l = decode::luma_for(bytes, pipeline)?;
    Ok(dihedral_of(l.data, l.width, l.height, pipeline))
}

/// The whole image and each standard crop ([`crops::STANDARD_CROP_NAMES`]), with the results
/// [`hash_bytes`] and [`hash_image_with`]`(crop)` would give, for one full decode and one luma
/// conversion: the crops are cut from the full-resolution luma plane (luma is per pixel, so
/// cropping the plane equals converting the cropped pixels) and then go through the pipeline's
/// own downsampling. The whole-image hash keeps the pipeline's DCT-domain shortcut. Crops of an
/// image under 20 px a side are omitted, as in `standard_crops`.
pub fn hash_bytes_with_crops(bytes: &[u8], pipeline: Pipeline) -> Result<Vec<(&'static str, PdqResult)>, PdqError> {
    let whole = decode::luma_for(bytes, pipeline)?;
    let mut out = vec![("full", result_of(whole.data, whole.width, whole.height, pipeline))];
    let full = decode::luma_of(&decode::decode_full(bytes)?);
    for (name, (x0, y0, x1, y1)) in crops::crop_windows(full.width, full.height) {
        let mut data = Vec::with_capacity((x1 - x0) * (y1 - y0));
        for row in y0..y1 {
            data.extend_from_slice(&full.data[row * full.width + x0..row * full.width + x1]);
        }
        let plane = decode::Luma { data, width: x1 - x0, height: y1 - y0 };
        let plane = match pipeline {
            Pipeline::CanonicalV1 => plane,
            Pipeline::FastV1 => decode::area_downsample(plane, FAST_MAX_SIDE),
        };
        out.push((name, result_of(plane.data, plane.width, plane.height, pipeline)));
    }
    Ok(out)
}

/// Decode JPEG or PNG bytes at full size under the same limits as [`hash_bytes`] (for
/// callers that also crop or strip borders before hashing).
pub fn decode_image(bytes: &[u8]) -> Result<DynamicImage, PdqError> {
    decode::decode_full(bytes)
}
