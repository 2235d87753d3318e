//! Defensive decoding and the pixel rules (which channels feed luma, and how).

use std::io::Cursor;

use image::{DynamicImage, ImageDecoder, ImageFormat, ImageReader, Limits};

use crate::algo::luma_f64;
use crate::{PdqError, Pipeline};

/// Largest image, in pixels, either pipeline will decode. Checked from the header before any
/// pixel buffer exists. 100 MP covers every camera in service (a lane camera is 2–12 MP);
/// canonical hashing needs ~12 bytes per pixel at peak (RGB + two `f32` planes).
pub const MAX_PIXELS: u64 = 100_000_000;

/// Longest side either pipeline will decode (JPEG's own format limit). A 65,535 × 1,526
/// strip is allowed; a 1 × 10⁸ "image" is not.
pub const MAX_DIMENSION: u32 = 65_535;

/// Largest encoded input accepted by `hash_bytes`, before anything is parsed.
pub const MAX_INPUT_BYTES: usize = 256 * 1024 * 1024;

/// Most bytes the decoders may allocate for one image: MAX_PIXELS of 8-bit RGBA
/// (16-bit images are bounded by this too, so they stop at 50 MP).
const MAX_DECODE_ALLOC: u64 = MAX_PIXELS * 4;

/// `pdq-fast-v1` reduces every image to at most this many pixels on its long side before
/// the PDQ box filter (PDQ's own output is 64×64, so 512 keeps 8× oversampling).
pub const FAST_MAX_SIDE: usize = 512;

/// A luma plane ready for hashing.
pub(crate) struct Luma {
    pub(crate) data: Vec<f32>,
    pub(crate) width: usize,
    pub(crate) height: usize,
}

fn check_dimensions(width: u32, height: u32) -> Result<(), PdqError> {
    if width > MAX_DIMENSION || height > MAX_DIMENSION || u64::from(width) * u64::from(height) > MAX_PIXELS {
        return Err(PdqError::TooLarge { width, height });
    }
    Ok(())
}

fn limits() -> Limits {
    let mut l = Limits::default();
    l.max_image_width = Some(MAX_DIMENSION);
    l.max_image_height = Some(MAX_DIMENSION);
    l.max_alloc = Some(MAX_DECODE_ALLOC);
    l
}

fn map_image_error(e: image::ImageError) -> PdqError {
    match e {
        image::ImageError::Unsupported(_) => PdqError::UnsupportedFormat,
        image::ImageError::Limits(_) => PdqError::LimitExceeded,
        other => PdqError::Decode(other.to_string()),
    }
}

fn sniff(bytes: &[u8]) -> Result<ImageFormat, PdqError> {
    if bytes.len() > MAX_INPUT_BYTES {
        return Err(PdqError::InputTooLong { len: bytes.len() });
    }
    match image::guess_format(bytes) {
        Ok(ImageFormat::Png) => {
            // IHDR is always first: refuse from its dimensions before any decoder runs.
            if bytes.len() >= 24 && &bytes[12..16] == b"IHDR" {
                let be = |i: usize| u32::from_be_bytes([bytes[i], bytes[i + 1], bytes[i + 2], bytes[i + 3]]);
                check_dimensions(be(16), be(20))?;
            }
            Ok(ImageFormat::Png)
        }
        // JPEG dimensions are checked at the frame header by both JPEG decoders, before
        // their coefficient or pixel buffers exist.
        Ok(ImageFormat::Jpeg) => Ok(ImageFormat::Jpeg),
        _ => Err(PdqError::UnsupportedFormat),
    }
}

/// Full-size decode: JPEG through our libjpeg-turbo-exact decoder (`crate::jpeg`), PNG and
/// JPEG kinds it does not cover through the `image` crate, refusing oversized images from the
/// header alone. EXIF orientation is deliberately not applied (see the crate docs).
pub(crate) fn decode_full(bytes: &[u8]) -> Result<DynamicImage, PdqError> {
    let format = sniff(bytes)?;
    if format == ImageFormat::Jpeg {
        match crate::jpeg::decode(bytes) {
            Ok(d) => return decoded_to_image(d),
            Err(crate::jpeg::JpegFail::Invalid(why)) => {
                return Err(PdqError::Decode(why.to_owned()));
            }
            Err(crate::jpeg::JpegFail::TooLarge(width, height)) => {
                return Err(PdqError::TooLarge { width, height });
            }
            // Arithmetic-coded, 12-bit, lossless, CMYK: the general decoder (not bit-exact
            // with libjpeg-turbo, see crate docs).
            Err(crate::jpeg::JpegFail::Unsupported) => {}
        }
    }
    let mut reader = ImageReader::with_format(Cursor::new(bytes), format);
    reader.limits(limits());
    let decoder = reader.into_decoder().map_err(map_image_error)?;
    let (w, h) = decoder.dimensions();
    check_dimensions(w, h)?;
    // The rule our JPEG decoder applies at the frame header (see `jpeg`), for the kinds it
    // leaves to zune-jpeg, which would fill a huge frame from a few bytes. At least one
    // component is full size, so its blocks are a lower bound.
    let luma_blocks = u64::from(w.div_ceil(8)) * u64::from(h.div_ceil(8));
    if format == ImageFormat::Jpeg && !crate::jpeg::entropy_data_can_cover(luma_blocks, bytes.len()) {
        return Err(PdqError::Decode("too little data for the frame size".to_owned()));
    }
    DynamicImage::from_decoder(decoder).map_err(map_image_error)
}

/// The pixel rules, shared by both pipelines:
/// - RGB: `R*0.299 + G*0.587 + B*0.114` formed in `f64`, stored as `f32` (as the published
///   hashes were made; see `algo::luma_f64`).
/// - Grey: the grey value itself (the reference's `fillFloatLumaFromGrey`).
/// - Alpha: ignored; the stored colour is hashed as if opaque (no compositing), as the
///   reference's Python path does. See the crate docs for why.
/// - 16-bit samples: the high byte (`v >> 8`), as libpng's `strip_16` and Pillow's 16-bit
///   RGB PNG reader do.
/// - Palette: expanded to RGB by the PNG decoder before we see it.
/// - Float images (not produced by the decoders we enable): `image`'s own conversion to 8 bit.
pub(crate) fn luma_of(img: &DynamicImage) -> Luma {
    let width = img.width() as usize;
    let height = img.height() as usize;
    let data: Vec<f32> = match img {
        DynamicImage::ImageLuma8(b) => b.as_raw().iter().map(|&v| f32::from(v)).collect(),
        DynamicImage::ImageLumaA8(b) => b.as_raw().chunks_exact(2).map(|p| f32::from(p[0])).collect(),
        DynamicImage::ImageRgb8(b) => b.as_raw().chunks_exact(3).map(|p| luma_f64(p[0], p[1], p[2])).collect(),
        DynamicImage::ImageRgba8(b) => b.as_raw().chunks_exact(4).map(|p| luma_f64(p[0], p[1], p[2])).collect(),
        DynamicImage::ImageLuma16(b) => b.as_raw().iter().map(|&v| f32::from((v >> 8) as u8)).collect(),
        DynamicImage::ImageLumaA16(b) => b.as_raw().chunks_exact(2).map(|p| f32::from((p[0] >> 8) as u8)).collect(),
        DynamicImage::ImageRgb16(b) => b
            .as_raw()
            .chunks_exact(3)
            .map(|p| luma_f64((p[0] >> 8) as u8, (p[1] >> 8) as u8, (p[2] >> 8) as u8))
            .collect(),
        DynamicImage::ImageRgba16(b) => b
            .as_raw()
            .chunks_exact(4)
            .map(|p| luma_f64((p[0] >> 8) as u8, (p[1] >> 8) as u8, (p[2] >> 8) as u8))
            .collect(),
        other => other.to_rgb8().as_raw().chunks_exact(3).map(|p| luma_f64(p[0], p[1], p[2])).collect(),
    };
    Luma { data, width, height }
}

fn decoded_to_image(d: crate::jpeg::Decoded) -> Result<DynamicImage, PdqError> {
    let (w, h) = (d.width as u32, d.height as u32);
    let img = if d.channels == 1 {
        image::GrayImage::from_raw(w, h, d.pixels).map(DynamicImage::ImageLuma8)
    } else {
        image::RgbImage::from_raw(w, h, d.pixels).map(DynamicImage::ImageRgb8)
    };
    img.ok_or_else(|| PdqError::Decode("decoded buffer size mismatch".into()))
}

/// Average `factor`×`factor` blocks (edge blocks over the pixels they have). Used by
/// `pdq-fast-v1` to bring any image to at most [`FAST_MAX_SIDE`] on its long side.
pub(crate) fn area_downsample(l: Luma, max_side: usize) -> Luma {
    let long = l.width.max(l.height);
    if long <= max_side {
        return l;
    }
    let f = long.div_ceil(max_side);
    let ow = l.width.div_ceil(f);
    let oh = l.height.div_ceil(f);
    let mut acc = vec![0.0f32; ow * oh];
    for y in 0..l.height {
        let orow = &mut acc[(y / f) * ow..(y / f + 1) * ow];
        let irow = &l.data[y * l.width..(y + 1) * l.width];
        for (ox, chunk) in irow.chunks(f).enumerate() {
            orow[ox] += chunk.iter().sum::<f32>();
        }
    }
    for oy in 0..oh {
        let rows = (l.height - oy * f).min(f);
        for ox in 0..ow {
            let cols = (l.width - ox * f).min(f);
            acc[oy * ow + ox] /= (rows * cols) as f32;
        }
    }
    Luma { data: acc, width: ow, height: oh }
}

/// `pdq-fast-v1` for JPEG: the Y channel reduced in the DCT domain (see
/// `jpeg::decode_luma_reduced`), then area-averaged if 1/8 scale is still over
/// [`FAST_MAX_SIDE`]. `None` sends the image down the canonical full decode instead (it
/// already fits, or it is a kind the reduced path does not cover).
fn fast_jpeg(bytes: &[u8]) -> Result<Option<Luma>, PdqError> {
    match crate::jpeg::decode_luma_reduced(bytes, FAST_MAX_SIDE) {
        Ok(Some(r)) => {
            Ok(Some(area_downsample(Luma { data: r.data, width: r.width, height: r.height }, FAST_MAX_SIDE)))
        }
        Ok(None) | Err(crate::jpeg::JpegFail::Unsupported) => Ok(None),
        Err(crate::jpeg::JpegFail::Invalid(why)) => Err(PdqError::Decode(why.to_owned())),
        Err(crate::jpeg::JpegFail::TooLarge(width, height)) => Err(PdqError::TooLarge { width, height }),
    }
}

/// Decode `bytes` to the luma plane the named pipeline hashes.
pub(crate) fn luma_for(bytes: &[u8], pipeline: Pipeline) -> Result<Luma, PdqError> {
    let format = sniff(bytes)?;
    match pipeline {
        Pipeline::CanonicalV1 => Ok(luma_of(&decode_full(bytes)?)),
        Pipeline::FastV1 => {
            if format == ImageFormat::Jpeg
                && let Some(l) = fast_jpeg(bytes)?
            {
                return Ok(l);
            }
            Ok(area_downsample(luma_of(&decode_full(bytes)?), FAST_MAX_SIDE))
        }
    }
}
