//! The pixel rules (crate docs): EXIF orientation, alpha, greyscale, 16-bit, palette, tiny
//! images, and refusal of hostile headers. Each test builds real encoded files in memory
//! and goes through `hash_bytes`, so the decoders are part of what is tested.

use std::io::Cursor;

use custodia_pdq::{
    DihedralVariant, PdqError, PdqHash, Pipeline, hash_bytes, hash_bytes_dihedral, hash_image, hash_luma,
};
use image::{DynamicImage, ImageBuffer, ImageFormat, Luma, Rgb, Rgba};

/// A deterministic, textured test picture (smooth gradients plus blobs: quality 100).
fn picture(w: u32, h: u32) -> ImageBuffer<Rgb<u8>, Vec<u8>> {
    ImageBuffer::from_fn(w, h, |x, y| {
        let (fx, fy) = (x as f32 / w as f32, y as f32 / h as f32);
        let r = (255.0 * fx) as u8;
        let g = (255.0 * (0.5 + 0.5 * (fy * 9.0 + fx * 3.0).sin())) as u8;
        let b = (255.0 * (0.5 + 0.5 * ((fx - 0.3) * (fy - 0.6) * 40.0).cos())) as u8;
        Rgb([r, g, b])
    })
}

fn encode(img: &DynamicImage, f: ImageFormat) -> Vec<u8> {
    let mut out = Cursor::new(Vec::new());
    img.write_to(&mut out, f).expect("encode");
    out.into_inner()
}

fn canonical(bytes: &[u8]) -> custodia_pdq::PdqResult {
    hash_bytes(bytes, Pipeline::CanonicalV1).expect("hash")
}

#[test]
fn greyscale_hashes_the_grey_value() {
    let rgb = picture(200, 150);
    let grey: ImageBuffer<Luma<u8>, Vec<u8>> = ImageBuffer::from_fn(200, 150, |x, y| Luma([rgb.get_pixel(x, y)[1]]));
    let luma: Vec<f32> = grey.as_raw().iter().map(|&v| f32::from(v)).collect();
    let want = hash_luma(&luma, 200, 150);
    assert_eq!(canonical(&encode(&DynamicImage::ImageLuma8(grey.clone()), ImageFormat::Png)), want);
    // The same grey stored as RGB gives the same luma (0.299+0.587+0.114 in f64 rounds back).
    let as_rgb = DynamicImage::ImageLuma8(grey).to_rgb8();
    assert_eq!(canonical(&encode(&DynamicImage::ImageRgb8(as_rgb), ImageFormat::Png)).hash, want.hash);
}

#[test]
fn alpha_is_ignored_not_composited() {
    let rgb = picture(160, 120);
    let rgba: ImageBuffer<Rgba<u8>, Vec<u8>> = ImageBuffer::from_fn(160, 120, |x, y| {
        let p = rgb.get_pixel(x, y);
        // Fully transparent left third, half-transparent middle, opaque right.
        let a = if x < 53 {
            0
        } else if x < 106 {
            128
        } else {
            255
        };
        Rgba([p[0], p[1], p[2], a])
    });
    let opaque = canonical(&encode(&DynamicImage::ImageRgb8(rgb), ImageFormat::Png));
    let with_alpha = canonical(&encode(&DynamicImage::ImageRgba8(rgba.clone()), ImageFormat::Png));
    assert_eq!(with_alpha, opaque);
    // Compositing over white would have changed it: the rule is a real choice.
    let over_white = DynamicImage::ImageRgb8(ImageBuffer::from_fn(160, 120, |x, y| {
        let p = rgba.get_pixel(x, y);
        let a = u16::from(p[3]);
        let c = |v: u8| ((u16::from(v) * a + 255 * (255 - a)) / 255) as u8;
        Rgb([c(p[0]), c(p[1]), c(p[2])])
    }));
    assert!(hash_image(&over_white).hash.hamming(&opaque.hash) > 10);
}

#[test]
fn sixteen_bit_uses_the_high_byte() {
    let rgb = picture(120, 90);
    // Low bytes vary pseudo-randomly and must not matter.
    let rgb16: ImageBuffer<Rgb<u16>, Vec<u16>> = ImageBuffer::from_fn(120, 90, |x, y| {
        let p = rgb.get_pixel(x, y);
        let lo = |k: u32| ((x * 31 + y * 17 + k * 7) % 256) as u16;
        Rgb([u16::from(p[0]) << 8 | lo(0), u16::from(p[1]) << 8 | lo(1), u16::from(p[2]) << 8 | lo(2)])
    });
    let eight = canonical(&encode(&DynamicImage::ImageRgb8(rgb.clone()), ImageFormat::Png));
    let sixteen = canonical(&encode(&DynamicImage::ImageRgb16(rgb16), ImageFormat::Png));
    assert_eq!(sixteen, eight);
    let grey16: ImageBuffer<Luma<u16>, Vec<u16>> =
        ImageBuffer::from_fn(120, 90, |x, y| Luma([u16::from(rgb.get_pixel(x, y)[0]) << 8 | 0xFF]));
    let grey8: ImageBuffer<Luma<u8>, Vec<u8>> = ImageBuffer::from_fn(120, 90, |x, y| Luma([rgb.get_pixel(x, y)[0]]));
    assert_eq!(
        canonical(&encode(&DynamicImage::ImageLuma16(grey16), ImageFormat::Png)),
        canonical(&encode(&DynamicImage::ImageLuma8(grey8), ImageFormat::Png))
    );
}

// ---- a minimal palette-PNG writer (stored deflate blocks), so palette input is real ----

fn crc32(data: &[u8]) -> u32 {
    let mut c = 0xFFFF_FFFFu32;
    for &b in data {
        c ^= u32::from(b);
        for _ in 0..8 {
            c = if c & 1 == 1 { 0xEDB8_8320 ^ (c >> 1) } else { c >> 1 };
        }
    }
    !c
}

fn chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
    out.extend_from_slice(&(data.len() as u32).to_be_bytes());
    let mut body = kind.to_vec();
    body.extend_from_slice(data);
    out.extend_from_slice(&body);
    out.extend_from_slice(&crc32(&body).to_be_bytes());
}

fn zlib_stored(raw: &[u8]) -> Vec<u8> {
    let mut z = vec![0x78, 0x01];
    let blocks: Vec<&[u8]> = raw.chunks(65_535).collect();
    for (i, b) in blocks.iter().enumerate() {
        z.push(u8::from(i + 1 == blocks.len()));
        z.extend_from_slice(&(b.len() as u16).to_le_bytes());
        z.extend_from_slice(&(!(b.len() as u16)).to_le_bytes());
        z.extend_from_slice(b);
    }
    let (mut a, mut b) = (1u32, 0u32);
    for &x in raw {
        a = (a + u32::from(x)) % 65_521;
        b = (b + a) % 65_521;
    }
    z.extend_from_slice(&(b << 16 | a).to_be_bytes());
    z
}

fn palette_png(w: u32, h: u32, palette: &[[u8; 3]], index: impl Fn(u32, u32) -> u8) -> Vec<u8> {
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut ihdr = Vec::new();
    ihdr.extend_from_slice(&w.to_be_bytes());
    ihdr.extend_from_slice(&h.to_be_bytes());
    ihdr.extend_from_slice(&[8, 3, 0, 0, 0]); // 8-bit, colour type 3 (palette)
    chunk(&mut out, b"IHDR", &ihdr);
    chunk(&mut out, b"PLTE", &palette.concat());
    let mut raw = Vec::new();
    for y in 0..h {
        raw.push(0); // filter: none
        raw.extend((0..w).map(|x| index(x, y)));
    }
    chunk(&mut out, b"IDAT", &zlib_stored(&raw));
    chunk(&mut out, b"IEND", &[]);
    out
}

#[test]
fn palette_is_expanded_to_rgb() {
    // A palette whose index order is unrelated to brightness: hashing indices would differ.
    let palette: Vec<[u8; 3]> = (0..=255u32)
        .map(|i| {
            let v = ((i * 97) % 256) as u8;
            [v, v.wrapping_mul(3), 255 - v]
        })
        .collect();
    let index = |x: u32, y: u32| ((x * 7 + y * 3 + (x * y) / 50) % 256) as u8;
    let png = palette_png(128, 96, &palette, index);
    let rgb = ImageBuffer::from_fn(128, 96, |x, y| Rgb(palette[usize::from(index(x, y))]));
    assert_eq!(canonical(&png), hash_image(&DynamicImage::ImageRgb8(rgb)));
    let indices: Vec<f32> = (0..96).flat_map(|y| (0..128).map(move |x| f32::from(index(x, y)))).collect();
    assert_ne!(canonical(&png).hash, hash_luma(&indices, 128, 96).hash);
}

/// Insert an APP1 Exif segment carrying `orientation` right after SOI.
fn with_orientation(jpeg: &[u8], orientation: u16) -> Vec<u8> {
    let mut tiff = b"MM\x00\x2a\x00\x00\x00\x08".to_vec();
    tiff.extend_from_slice(&1u16.to_be_bytes()); // one IFD entry
    tiff.extend_from_slice(&0x0112u16.to_be_bytes()); // Orientation
    tiff.extend_from_slice(&3u16.to_be_bytes()); // SHORT
    tiff.extend_from_slice(&1u32.to_be_bytes());
    tiff.extend_from_slice(&orientation.to_be_bytes());
    tiff.extend_from_slice(&[0, 0, 0, 0, 0, 0]); // value padding + next IFD = 0
    let mut app1 = b"Exif\0\0".to_vec();
    app1.extend_from_slice(&tiff);
    let mut out = jpeg[..2].to_vec();
    out.extend_from_slice(&[0xFF, 0xE1]);
    out.extend_from_slice(&((app1.len() + 2) as u16).to_be_bytes());
    out.extend_from_slice(&app1);
    out.extend_from_slice(&jpeg[2..]);
    out
}

#[test]
fn exif_orientation_is_not_applied_and_dihedral_variants_cover_it() {
    let img = DynamicImage::ImageRgb8(picture(320, 200));
    let jpeg = encode(&img, ImageFormat::Jpeg);
    let rotated_tag = with_orientation(&jpeg, 6); // "rotate 90° clockwise to display"
    assert_eq!(
        image::ImageReader::new(Cursor::new(&rotated_tag)).with_guessed_format().unwrap().format(),
        Some(ImageFormat::Jpeg)
    );
    for p in Pipeline::ALL {
        assert_eq!(hash_bytes(&rotated_tag, p).unwrap(), hash_bytes(&jpeg, p).unwrap(), "{p}");
    }
    // What a viewer shows for orientation 6 is the image turned 90° clockwise; querying all
    // eight variants of the stored grid finds it. Name the variant that does.
    let dih = hash_bytes_dihedral(&jpeg, Pipeline::CanonicalV1).unwrap();
    let decoded = custodia_pdq::decode_image(&jpeg).unwrap();
    let cases = [
        (decoded.rotate90(), DihedralVariant::Rotate270),
        (decoded.rotate180(), DihedralVariant::Rotate180),
        (decoded.rotate270(), DihedralVariant::Rotate90),
        (decoded.flipv(), DihedralVariant::FlipX),
        (decoded.fliph(), DihedralVariant::FlipY),
        (decoded.rotate90().fliph(), DihedralVariant::FlipPlus1),
        (decoded.rotate90().flipv(), DihedralVariant::FlipMinus1),
        (decoded.clone(), DihedralVariant::Original),
    ];
    for (shown, variant) in cases {
        let h = hash_image(&shown).hash;
        let (best, d) = dih.iter().map(|(v, x)| (v, x.hamming(&h))).min_by_key(|&(_, d)| d).unwrap();
        assert_eq!(
            best,
            variant,
            "closest variant; distances {:?}",
            dih.iter().map(|(v, x)| (v.name(), x.hamming(&h))).collect::<Vec<_>>()
        );
        assert!(d <= 16, "{variant:?} at {d} bits");
    }
}

#[test]
fn tiny_images_hash_to_zero_with_quality_zero() {
    let img = DynamicImage::ImageRgb8(picture(4, 40));
    let r = canonical(&encode(&img, ImageFormat::Png));
    assert_eq!((r.hash, r.quality), (PdqHash::ZERO, 0));
    assert_eq!(hash_luma(&[1.0; 10], 5, 3).quality, 0); // wrong length: refused, not hashed
}

#[test]
fn hostile_headers_are_refused_before_decoding() {
    // PNG declaring 20000 × 20000 (400 MP, each side under the dimension limit) with no data.
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut ihdr = Vec::new();
    ihdr.extend_from_slice(&20_000u32.to_be_bytes());
    ihdr.extend_from_slice(&20_000u32.to_be_bytes());
    ihdr.extend_from_slice(&[8, 2, 0, 0, 0]);
    chunk(&mut png, b"IHDR", &ihdr);
    for p in Pipeline::ALL {
        assert!(
            matches!(
                hash_bytes(&png, p),
                Err(PdqError::TooLarge { width: 20_000, height: 20_000 }) | Err(PdqError::LimitExceeded)
            ),
            "{p}"
        );
    }
    // JPEG frame header declaring 65535 × 65535.
    let jpeg = encode(&DynamicImage::ImageRgb8(picture(16, 16)), ImageFormat::Jpeg);
    let sof = jpeg.windows(2).position(|w| w == [0xFF, 0xC0]).expect("SOF0");
    let mut big = jpeg.clone();
    big[sof + 5..sof + 9].copy_from_slice(&[0xFF, 0xFF, 0xFF, 0xFF]);
    for p in Pipeline::ALL {
        assert!(matches!(hash_bytes(&big, p), Err(PdqError::TooLarge { .. })), "{p}: {:?}", hash_bytes(&big, p));
    }
    // Truncations and garbage are errors, not panics.
    for cut in [0, 1, 2, 3, 10, jpeg.len() / 3, jpeg.len() / 2, jpeg.len() - 3] {
        for p in Pipeline::ALL {
            let _ = hash_bytes(&jpeg[..cut], p);
        }
    }
    assert_eq!(hash_bytes(b"GIF89a....", Pipeline::CanonicalV1), Err(PdqError::UnsupportedFormat));
}
