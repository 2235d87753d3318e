//! PNG stripping against an outside decoder: PNGs are encoded by the `image` crate, text/EXIF
//! chunks are spliced in with correct CRCs, and after stripping they are gone while `image`
//! decodes the same pixels.

use custodia_lane::strip::{ChunkName, ImageKind, StripError, strip_metadata};
use image::codecs::png::PngEncoder;
use image::{ExtendedColorType, ImageEncoder};
use proptest::prelude::*;

fn encode_png(w: u32, h: u32) -> Vec<u8> {
    let mut px = Vec::new();
    for y in 0..h {
        for x in 0..w {
            px.extend_from_slice(&[(x * 9) as u8, (y * 5) as u8, ((x ^ y) * 3) as u8, 200]);
        }
    }
    let mut out = Vec::new();
    PngEncoder::new(&mut out).write_image(&px, w, h, ExtendedColorType::Rgba8).unwrap();
    out
}

fn chunk(t: &[u8; 4], data: &[u8]) -> Vec<u8> {
    let mut c = u32::try_from(data.len()).unwrap().to_be_bytes().to_vec();
    c.extend_from_slice(t);
    c.extend_from_slice(data);
    let mut h = crc32fast::Hasher::new();
    h.update(t);
    h.update(data);
    c.extend_from_slice(&h.finalize().to_be_bytes());
    c
}

/// Offsets of chunk starts after IHDR up to and including IEND's (insertion points).
fn boundaries(png: &[u8]) -> Vec<usize> {
    let mut at = Vec::new();
    let mut pos = 8;
    loop {
        let len = u32::from_be_bytes(png[pos..pos + 4].try_into().unwrap()) as usize;
        let is_iend = &png[pos + 4..pos + 8] == b"IEND";
        if pos > 8 {
            at.push(pos);
        }
        if is_iend {
            return at;
        }
        pos += 12 + len;
    }
}

fn splice(png: &[u8], at: usize, bytes: &[u8]) -> Vec<u8> {
    let mut v = png[..at].to_vec();
    v.extend_from_slice(bytes);
    v.extend_from_slice(&png[at..]);
    v
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

fn pixels(bytes: &[u8]) -> image::RgbaImage {
    image::load_from_memory(bytes).expect("decodes").to_rgba8()
}

#[test]
fn text_exif_and_private_chunks_are_removed_and_pixels_unchanged() {
    let clean = encode_png(40, 30);
    let before = pixels(&clean);
    let after_ihdr = 8 + 25;
    let mut dirty = clean.clone();
    let inserts: Vec<Vec<u8>> = vec![
        chunk(b"tEXt", b"GPS\0lat=26.1782 lon=-98.2930"),
        chunk(b"iTXt", b"XML:com.adobe.xmp\0\0\0\0\0<x:xmpmeta>itxt-secret</x:xmpmeta>"),
        chunk(b"eXIf", b"MM\0*\0\0\0\x08exif-serial-SN0042"),
        chunk(b"tIME", &[0x07, 0xE2, 8, 31, 10, 0, 0]),
        chunk(b"pHYs", &[0, 0, 0x0B, 0x13, 0, 0, 0x0B, 0x13, 1]),
        chunk(b"prVt", b"vendor-private-blob"),
        chunk(b"iCCP", b"LaneCam sensor profile\0\0\x78\x9c\x03\0\0\0\0\x01"),
        chunk(b"gAMA", &45455u32.to_be_bytes()),
    ];
    for c in inserts.iter().rev() {
        dirty = splice(&dirty, after_ihdr, c);
    }
    let iend = *boundaries(&dirty).last().unwrap();
    dirty = splice(&dirty, iend, &chunk(b"zTXt", b"Comment\0\0\x78\x9c\x03\0\0\0\0\x01"));
    dirty.extend_from_slice(b"HIDDEN-AFTER-IEND");
    assert_eq!(pixels(&dirty), before, "the spliced file is still a valid PNG");

    let out = strip_metadata(&dirty).unwrap();
    assert_eq!(out.kind, ImageKind::Png);
    for needle in [
        &b"tEXt"[..],
        b"iTXt",
        b"eXIf",
        b"zTXt",
        b"tIME",
        b"pHYs",
        b"prVt",
        b"iCCP",
        b"GPS",
        b"itxt-secret",
        b"SN0042",
        b"LaneCam",
        b"HIDDEN",
    ] {
        assert!(!contains(&out.bytes, needle), "{:?} survived", String::from_utf8_lossy(needle));
    }
    assert!(contains(&out.bytes, b"gAMA"), "colour-relevant chunk kept");
    assert_eq!(pixels(&out.bytes), before);
    assert_eq!(
        out.removed,
        ["tEXt", "iTXt", "eXIf", "tIME", "pHYs", "unknown-ancillary-chunk", "iCCP", "zTXt", "trailing-data"]
    );
    let again = strip_metadata(&out.bytes).unwrap();
    assert_eq!(again.bytes, out.bytes);
    assert!(again.removed.is_empty());
}

#[test]
fn bad_crc_and_structure_are_refused() {
    let clean = encode_png(8, 8);
    let mut bad = clean.clone();
    bad[8 + 8 + 3] ^= 1; // a byte of IHDR's data
    assert_eq!(strip_metadata(&bad), Err(StripError::BadCrc { chunk: ChunkName(*b"IHDR"), offset: 8 }));

    let crit = splice(&clean, 33, &chunk(b"XYZW", b"?"));
    assert_eq!(strip_metadata(&crit), Err(StripError::UnknownCriticalChunk { chunk: ChunkName(*b"XYZW"), offset: 33 }));

    // A chunk before IHDR.
    let mut early = clean[..8].to_vec();
    early.extend(chunk(b"tEXt", b"a\0b"));
    early.extend_from_slice(&clean[8..]);
    assert_eq!(strip_metadata(&early), Err(StripError::BadIhdr));

    // A non-letter chunk type.
    let odd = splice(&clean, 33, &chunk(b"te1t", b""));
    assert_eq!(strip_metadata(&odd), Err(StripError::BadChunkType { offset: 33 }));

    // No IDAT.
    let mut no_idat = clean[..33].to_vec();
    no_idat.extend(chunk(b"IEND", b""));
    assert_eq!(strip_metadata(&no_idat), Err(StripError::MissingIdat));

    // Length with the top bit set.
    let huge = splice(&clean, 33, &[0x80, 0, 0, 0, b't', b'E', b'X', b't']);
    assert_eq!(strip_metadata(&huge), Err(StripError::TruncatedChunk { offset: 33 }));
}

#[test]
fn every_truncation_is_refused() {
    let clean = encode_png(12, 9);
    let dirty = splice(&clean, 33, &chunk(b"tEXt", b"Author\0someone"));
    for cut in 0..dirty.len() {
        assert!(strip_metadata(&dirty[..cut]).is_err(), "prefix of {cut} bytes accepted");
    }
    assert_eq!(strip_metadata(&dirty[..dirty.len() - 12]).unwrap_err(), StripError::MissingIend);
    assert!(strip_metadata(&dirty).is_ok());
}

fn ancillary_chunk() -> impl Strategy<Value = Vec<u8>> {
    let name = prop_oneof![
        Just(*b"tEXt"),
        Just(*b"zTXt"),
        Just(*b"iTXt"),
        Just(*b"eXIf"),
        Just(*b"tIME"),
        Just(*b"pHYs"),
        Just(*b"bKGD"),
        Just(*b"prIv"),
        Just(*b"iCCP"),
    ];
    (name, proptest::collection::vec(any::<u8>(), 0..200)).prop_map(|(n, d)| chunk(&n, &d))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn random_chunk_insertions_strip_to_the_clean_image(
        inserts in proptest::collection::vec((any::<prop::sample::Index>(), ancillary_chunk()), 1..6),
    ) {
        let clean = encode_png(20, 10);
        let want = strip_metadata(&clean).unwrap().bytes;
        let mut dirty = clean.clone();
        for (where_, c) in &inserts {
            let at = boundaries(&dirty);
            dirty = splice(&dirty, at[where_.index(at.len())], c);
        }
        let out = strip_metadata(&dirty).unwrap();
        prop_assert_eq!(out.bytes, want);
    }

    #[test]
    fn random_byte_edits_never_panic(edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6)) {
        let mut bytes = encode_png(8, 8);
        for (at, b) in edits {
            let i = at.index(bytes.len());
            bytes[i] = b;
        }
        if let Ok(out) = strip_metadata(&bytes) {
            prop_assert_eq!(strip_metadata(&out.bytes).unwrap().bytes, out.bytes.clone());
        }
    }
}
