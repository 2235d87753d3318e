//! JPEG stripping against an outside decoder: images are encoded by the `image` crate, metadata
//! is spliced in, and after stripping the metadata bytes are gone while `image` decodes the same
//! pixels as before.

use custodia_lane::strip::{ImageKind, MAX_IMAGE_BYTES, MarkerName, StripError, sniff, strip_metadata};
use image::codecs::jpeg::JpegEncoder;
use image::{ExtendedColorType, ImageEncoder};
use proptest::prelude::*;

/// A deterministic test picture: gradients plus a pattern, so the entropy data is non-trivial.
fn picture(w: u32, h: u32) -> Vec<u8> {
    let mut px = Vec::with_capacity((w * h * 3) as usize);
    for y in 0..h {
        for x in 0..w {
            let v = (x * 7 + y * 13) ^ (x * y);
            px.extend_from_slice(&[(x * 255 / w) as u8, (y * 255 / h) as u8, (v & 0xFF) as u8]);
        }
    }
    px
}

fn encode_jpeg(w: u32, h: u32) -> Vec<u8> {
    let mut out = Vec::new();
    JpegEncoder::new_with_quality(&mut out, 85).write_image(&picture(w, h), w, h, ExtendedColorType::Rgb8).unwrap();
    out
}

fn decode(bytes: &[u8]) -> image::DynamicImage {
    image::load_from_memory(bytes).expect("decodes")
}

fn segment(marker: u8, payload: &[u8]) -> Vec<u8> {
    let len = u16::try_from(payload.len() + 2).unwrap();
    let mut s = vec![0xFF, marker];
    s.extend_from_slice(&len.to_be_bytes());
    s.extend_from_slice(payload);
    s
}

/// Offsets of each marker segment's 0xFF before the first SOS (insertion points).
fn boundaries(jpeg: &[u8]) -> Vec<usize> {
    let mut at = vec![2];
    let mut pos = 2;
    while jpeg[pos] == 0xFF && jpeg[pos + 1] != 0xDA {
        let len = usize::from(u16::from_be_bytes([jpeg[pos + 2], jpeg[pos + 3]]));
        pos += 2 + len;
        at.push(pos);
    }
    at
}

fn splice(jpeg: &[u8], at: usize, seg: &[u8]) -> Vec<u8> {
    let mut v = jpeg[..at].to_vec();
    v.extend_from_slice(seg);
    v.extend_from_slice(&jpeg[at..]);
    v
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

fn exif_with_gps() -> Vec<u8> {
    // An EXIF APP1 as cameras write it: "Exif\0\0" + a TIFF header + IFD bytes. The TIFF content
    // need not be valid for this test; it must only be recognisable and gone afterwards.
    let mut p = b"Exif\0\0MM\0*\0\0\0\x08".to_vec();
    p.extend_from_slice(b"GPSLatitude=26.1782N;GPSLongitude=98.2930W;Model=LaneCam-7;Serial=SN0042");
    p
}

const XMP: &[u8] =
    b"http://ns.adobe.com/xap/1.0/\0<x:xmpmeta><rdf:Description dc:creator='operator-xmp-secret'/></x:xmpmeta>";
const COMMENT: &[u8] = b"maintenance laptop comment 2018-08-31";
const IPTC: &[u8] = b"Photoshop 3.0\08BIM\x04\x04\0\0\0\0\0\x10iptc-byline-secret";

#[test]
fn spliced_metadata_is_removed_and_pixels_are_unchanged() {
    let clean = encode_jpeg(96, 64);
    let before = decode(&clean);
    let at = boundaries(&clean);
    let mut dirty = splice(&clean, at[1], &segment(0xE1, &exif_with_gps()));
    dirty = splice(&dirty, 2, &segment(0xFE, COMMENT));
    let at = boundaries(&dirty);
    dirty = splice(&dirty, at[2], &segment(0xE1, XMP));
    dirty = splice(&dirty, at[2], &segment(0xED, IPTC));
    dirty = splice(&dirty, at[2], &segment(0xE2, b"ICC_PROFILE\0\x01\x01device-profile-text"));
    dirty.extend_from_slice(b"HIDDEN-PAYLOAD-AFTER-EOI");
    assert_eq!(decode(&dirty).to_rgb8(), before.to_rgb8(), "the spliced file is still a valid JPEG");

    let out = strip_metadata(&dirty).unwrap();
    assert_eq!(out.kind, ImageKind::Jpeg);
    for needle in [
        &b"GPSLatitude"[..],
        b"Serial",
        b"operator-xmp-secret",
        COMMENT,
        b"iptc-byline-secret",
        b"device-profile-text",
        b"HIDDEN-PAYLOAD",
        b"Exif\0",
    ] {
        assert!(!contains(&out.bytes, needle), "{:?} survived", String::from_utf8_lossy(needle));
    }
    // Outside a scan 0xFF is always a marker and inside one it is followed by 0x00 or RSTn, so a
    // search of the whole output for these marker codes is exact.
    for m in [0xE1u8, 0xE2, 0xED, 0xFE] {
        assert!(!contains(&out.bytes, &[0xFF, m]), "{} marker survived", MarkerName(m));
    }
    assert_eq!(decode(&out.bytes).to_rgb8(), before.to_rgb8(), "identical pixels");
    let mut removed = out.removed.clone();
    removed.sort_unstable();
    assert_eq!(removed, ["APP1/Exif", "APP1/XMP", "APP13", "APP2/ICC", "COM", "trailing-data"]);
    assert!(out.bytes.ends_with(&[0xFF, 0xD9]));

    // Stripping the clean encoder output gives the same bytes: nothing but metadata differed.
    let clean_out = strip_metadata(&clean).unwrap();
    assert_eq!(clean_out.bytes, out.bytes);
    // And stripping is idempotent.
    let again = strip_metadata(&out.bytes).unwrap();
    assert_eq!(again.bytes, out.bytes);
    assert!(again.removed.is_empty());
}

#[test]
fn jfif_is_kept_without_its_thumbnail_and_adobe_is_kept() {
    let clean = encode_jpeg(16, 16);
    // Replace whatever APP0 the encoder wrote by one with a 2x1 RGB thumbnail.
    let mut jfif = b"JFIF\0\x01\x02\x01\x00\x48\x00\x48\x02\x01".to_vec();
    jfif.extend_from_slice(&[10, 20, 30, 40, 50, 60]);
    let adobe = b"Adobe\0\x64\0\0\0\0\x01";
    let body: Vec<u8> = strip_metadata(&clean).unwrap().bytes[2..].to_vec();
    let body = if body.starts_with(&[0xFF, 0xE0]) {
        let len = usize::from(u16::from_be_bytes([body[2], body[3]]));
        body[2 + len..].to_vec()
    } else {
        body
    };
    let mut dirty = vec![0xFF, 0xD8];
    dirty.extend(segment(0xE0, &jfif));
    dirty.extend(segment(0xEE, adobe));
    dirty.extend_from_slice(&body);
    let out = strip_metadata(&dirty).unwrap();
    assert_eq!(out.removed, ["APP0/JFIF-thumbnail"]);
    let mut want = vec![0xFF, 0xD8];
    want.extend(segment(0xE0, b"JFIF\0\x01\x02\x01\x00\x48\x00\x48\x00\x00"));
    want.extend(segment(0xEE, adobe));
    assert!(out.bytes.starts_with(&want), "JFIF rewritten, Adobe kept");
    assert!(!contains(&out.bytes, &[10, 20, 30, 40, 50, 60]));
    assert_eq!(decode(&out.bytes).to_rgb8(), decode(&dirty).to_rgb8());
}

#[test]
fn fill_bytes_and_markers_between_scan_and_eoi() {
    let clean = encode_jpeg(32, 24);
    let before = decode(&clean).to_rgb8();
    // Fill bytes before the first DQT, and a COM between the entropy data and EOI.
    let at = boundaries(&clean);
    let mut dirty = clean[..at[1]].to_vec();
    dirty.extend_from_slice(&[0xFF, 0xFF, 0xFF]);
    dirty.extend_from_slice(&clean[at[1]..clean.len() - 2]);
    dirty.extend(segment(0xFE, b"late comment"));
    dirty.extend_from_slice(&[0xFF, 0xD9]);
    let out = strip_metadata(&dirty).unwrap();
    assert_eq!(out.removed, ["COM"]);
    assert!(!contains(&out.bytes, b"late comment"));
    assert_eq!(decode(&out.bytes).to_rgb8(), before);
    assert_eq!(out.bytes, strip_metadata(&clean).unwrap().bytes, "fill bytes dropped too");
}

#[test]
fn malformed_structure_is_refused_precisely() {
    let clean = encode_jpeg(16, 16);
    let at = boundaries(&clean);

    // Nested SOI.
    let nested = splice(&clean, at[1], &[0xFF, 0xD8]);
    assert_eq!(strip_metadata(&nested), Err(StripError::NestedSoi { offset: at[1] }));

    // A segment length past the end.
    let mut past = clean[..at[1]].to_vec();
    past.extend_from_slice(&[0xFF, 0xE1, 0xFF, 0xF0, 1, 2, 3]);
    assert_eq!(strip_metadata(&past), Err(StripError::BadSegment { marker: MarkerName(0xE1), offset: at[1] }));
    // A length below 2.
    let short = splice(&clean, at[1], &[0xFF, 0xFE, 0x00, 0x01]);
    assert_eq!(strip_metadata(&short), Err(StripError::BadSegment { marker: MarkerName(0xFE), offset: at[1] }));

    // No SOS: SOI, the tables and the frame header, then EOI.
    let sos = *at.last().unwrap();
    let mut no_sos = clean[..sos].to_vec();
    no_sos.extend_from_slice(&[0xFF, 0xD9]);
    assert_eq!(strip_metadata(&no_sos), Err(StripError::MissingSos));

    // No EOI.
    assert_eq!(strip_metadata(&clean[..clean.len() - 2]), Err(StripError::MissingEoi { offset: clean.len() - 2 }));

    // Garbage where a marker must be.
    let garbage = splice(&clean, at[1], b"XY");
    assert_eq!(strip_metadata(&garbage), Err(StripError::ExpectedMarker { offset: at[1] }));

    // A reserved marker and RST outside a scan.
    let reserved = splice(&clean, at[1], &segment(0xF7, b"jpeg-ls"));
    assert_eq!(
        strip_metadata(&reserved),
        Err(StripError::UnexpectedMarker { marker: MarkerName(0xF7), offset: at[1] })
    );
    let rst = splice(&clean, at[1], &[0xFF, 0xD0]);
    assert_eq!(strip_metadata(&rst), Err(StripError::UnexpectedMarker { marker: MarkerName(0xD0), offset: at[1] }));

    // A scan before the frame header: move SOS to the front.
    let mut early = vec![0xFF, 0xD8];
    early.extend(segment(0xDA, &[1, 1, 0, 0, 63, 0]));
    early.extend_from_slice(&clean[2..]);
    assert_eq!(strip_metadata(&early), Err(StripError::ScanBeforeFrame { offset: 2 }));

    assert_eq!(strip_metadata(b"GIF89a"), Err(StripError::UnknownFormat));
    assert_eq!(sniff(&clean), Some(ImageKind::Jpeg));
    assert_eq!(sniff(b"\xFF\xD8"), None);
}

#[test]
fn too_large_is_refused_first() {
    let mut big = vec![0u8; MAX_IMAGE_BYTES + 1];
    big[..3].copy_from_slice(&[0xFF, 0xD8, 0xFF]);
    assert_eq!(strip_metadata(&big), Err(StripError::TooLarge { len: MAX_IMAGE_BYTES + 1, max: MAX_IMAGE_BYTES }));
}

#[test]
fn every_truncation_is_refused_or_valid() {
    let clean = encode_jpeg(24, 16);
    let at = boundaries(&clean);
    let mut dirty = splice(&clean, at[1], &segment(0xE1, &exif_with_gps()));
    dirty = splice(&dirty, 2, &segment(0xFE, COMMENT));
    for cut in 0..=dirty.len() {
        match strip_metadata(&dirty[..cut]) {
            Err(_) => {}
            Ok(out) => {
                // Only a prefix that still ends in EOI can pass, and its output must be a
                // clean, structurally valid JPEG that strips to itself.
                assert!(out.bytes.ends_with(&[0xFF, 0xD9]), "cut {cut}");
                assert_eq!(strip_metadata(&out.bytes).unwrap().bytes, out.bytes);
            }
        }
    }
    // The only prefix that passes is the whole file.
    assert!(strip_metadata(&dirty[..dirty.len() - 1]).is_err());
}

/// Segments that carry metadata, as a proptest strategy: (marker, payload).
fn metadata_segment() -> impl Strategy<Value = (u8, Vec<u8>)> {
    let marker = prop_oneof![
        (0xE1u8..=0xED),
        Just(0xEFu8),
        Just(0xFEu8),
        // APP0 and APP14 that are not JFIF/Adobe are dropped too.
        Just(0xE0u8),
        Just(0xEEu8),
    ];
    (marker, proptest::collection::vec(any::<u8>(), 0..300)).prop_filter("not a JFIF/Adobe header", |(m, p)| {
        !((*m == 0xE0 && p.starts_with(b"JFIF\0")) || (*m == 0xEE && p.starts_with(b"Adobe")))
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn random_segment_insertions_strip_to_the_clean_image(
        inserts in proptest::collection::vec((any::<prop::sample::Index>(), metadata_segment()), 1..6),
        trailing in proptest::collection::vec(any::<u8>(), 0..40),
    ) {
        let clean = encode_jpeg(40, 24);
        let want = strip_metadata(&clean).unwrap().bytes;
        let mut dirty = clean.clone();
        for (where_, (m, payload)) in &inserts {
            let at = boundaries(&dirty);
            let i = at[where_.index(at.len())];
            dirty = splice(&dirty, i, &segment(*m, payload));
        }
        dirty.extend_from_slice(&trailing);
        let out = strip_metadata(&dirty).unwrap();
        prop_assert_eq!(&out.bytes, &want);
        prop_assert_eq!(out.removed.contains(&"trailing-data"), !trailing.is_empty());
    }

    #[test]
    fn random_bytes_after_soi_never_panic(tail in proptest::collection::vec(any::<u8>(), 0..400)) {
        let mut bytes = vec![0xFF, 0xD8, 0xFF];
        bytes.extend_from_slice(&tail);
        let _ = strip_metadata(&bytes);
    }

    #[test]
    fn random_byte_edits_never_panic(edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6)) {
        let mut bytes = encode_jpeg(16, 16);
        for (at, b) in edits {
            let i = at.index(bytes.len());
            bytes[i] = b;
        }
        if let Ok(out) = strip_metadata(&bytes) {
            prop_assert_eq!(strip_metadata(&out.bytes).unwrap().bytes, out.bytes.clone());
        }
    }
}
