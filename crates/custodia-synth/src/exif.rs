//! The metadata a real lane camera leaves in its JPEGs: an Exif APP1 segment (make, model, body
//! serial number, capture time, the port's GPS position) and a COM comment. The demo writes it so
//! that the lane agent can show it stripping it.
//!
//! Written by hand: a minimal little-endian TIFF with IFD0, an Exif IFD and a GPS IFD
//! (CIPA DC-008-2023, Exif 2.32 tags).

use crate::SynthError;
use crate::civil::civil;

/// What a lane camera writes into each JPEG.
#[derive(Clone, Debug, PartialEq)]
pub struct CameraMeta {
    /// Exif `Make` (0x010F). Printable ASCII, at most [`MAX_EXIF_TEXT`] bytes.
    pub make: String,
    /// Exif `Model` (0x0110).
    pub model: String,
    /// Exif `BodySerialNumber` (0xA431).
    pub serial: String,
    /// Capture time in ms since the Unix epoch. Written as `DateTimeOriginal` in UTC with
    /// `OffsetTimeOriginal` "+00:00" and the milliseconds in `SubSecTimeOriginal`.
    pub time_ms: i64,
    /// GPS latitude in degrees, north positive, in [-90, 90].
    pub latitude: f64,
    /// GPS longitude in degrees, east positive, in [-180, 180].
    pub longitude: f64,
    /// The JPEG comment (COM segment); any bytes but at most [`MAX_COMMENT`].
    pub comment: String,
}

/// Longest text value accepted for an Exif ASCII field. Real cameras write a few dozen bytes;
/// the bound keeps the whole APP1 segment far below its 64 KiB limit.
pub const MAX_EXIF_TEXT: usize = 256;
/// Longest comment accepted (a COM segment holds at most 65533 bytes).
pub const MAX_COMMENT: usize = 4096;

const ASCII: u16 = 2;
const BYTE: u16 = 1;
const LONG: u16 = 4;
const RATIONAL: u16 = 5;
const UNDEFINED: u16 = 7;

struct Entry {
    tag: u16,
    typ: u16,
    count: u32,
    data: Vec<u8>,
}

fn ascii(tag: u16, s: &str) -> Entry {
    let mut data = s.as_bytes().to_vec();
    data.push(0);
    Entry { tag, typ: ASCII, count: data.len() as u32, data }
}

fn long(tag: u16, v: u32) -> Entry {
    Entry { tag, typ: LONG, count: 1, data: v.to_le_bytes().to_vec() }
}

/// Degrees as three rationals: degrees/1, minutes/1, seconds×10000/10000.
fn dms(tag: u16, deg: f64) -> Entry {
    let deg = deg.abs();
    let d = deg.floor();
    let m = ((deg - d) * 60.0).floor();
    let s = ((deg - d) * 60.0 - m) * 60.0;
    let mut data = Vec::with_capacity(24);
    for (num, den) in [(d as u32, 1u32), (m as u32, 1), ((s * 10_000.0).round() as u32, 10_000)] {
        data.extend_from_slice(&num.to_le_bytes());
        data.extend_from_slice(&den.to_le_bytes());
    }
    Entry { tag, typ: RATIONAL, count: 3, data }
}

fn padded(n: usize) -> usize {
    n + (n & 1)
}

fn ifd_len(entries: &[Entry]) -> usize {
    2 + 12 * entries.len()
        + 4
        + entries.iter().filter(|e| e.data.len() > 4).map(|e| padded(e.data.len())).sum::<usize>()
}

/// Appends one IFD that starts at TIFF offset `at` (== out.len() - tiff_start), values that do
/// not fit in four bytes following it.
fn write_ifd(out: &mut Vec<u8>, tiff_start: usize, entries: &[Entry]) {
    let at = out.len() - tiff_start;
    let mut data_off = at + 2 + 12 * entries.len() + 4;
    out.extend_from_slice(&(entries.len() as u16).to_le_bytes());
    for e in entries {
        out.extend_from_slice(&e.tag.to_le_bytes());
        out.extend_from_slice(&e.typ.to_le_bytes());
        out.extend_from_slice(&e.count.to_le_bytes());
        if e.data.len() <= 4 {
            let mut v = [0u8; 4];
            v[..e.data.len()].copy_from_slice(&e.data);
            out.extend_from_slice(&v);
        } else {
            out.extend_from_slice(&(data_off as u32).to_le_bytes());
            data_off += padded(e.data.len());
        }
    }
    // No next IFD (we write no thumbnail).
    out.extend_from_slice(&0u32.to_le_bytes());
    for e in entries.iter().filter(|e| e.data.len() > 4) {
        out.extend_from_slice(&e.data);
        if e.data.len() & 1 == 1 {
            out.push(0);
        }
    }
}

fn check_text(field: &'static str, s: &str) -> Result<(), SynthError> {
    if s.len() > MAX_EXIF_TEXT || !s.bytes().all(|b| (0x20..0x7f).contains(&b)) {
        return Err(SynthError::InvalidMetadata { field });
    }
    Ok(())
}

/// The Exif payload of an APP1 segment: `Exif\0\0` and the TIFF structure.
fn exif_payload(meta: &CameraMeta) -> Result<Vec<u8>, SynthError> {
    check_text("make", &meta.make)?;
    check_text("model", &meta.model)?;
    check_text("serial", &meta.serial)?;
    if !(-90.0..=90.0).contains(&meta.latitude) {
        return Err(SynthError::InvalidMetadata { field: "latitude" });
    }
    if !(-180.0..=180.0).contains(&meta.longitude) {
        return Err(SynthError::InvalidMetadata { field: "longitude" });
    }
    let t = civil(meta.time_ms);
    let when = t.exif();
    let exif = vec![
        Entry { tag: 0x9000, typ: UNDEFINED, count: 4, data: b"0232".to_vec() },
        ascii(0x9003, &when),
        ascii(0x9011, "+00:00"),
        ascii(0x9291, &format!("{:03}", t.milli)),
        ascii(0xA431, &meta.serial),
    ];
    let gps = vec![
        Entry { tag: 0x0000, typ: BYTE, count: 4, data: vec![2, 3, 0, 0] },
        ascii(0x0001, if meta.latitude >= 0.0 { "N" } else { "S" }),
        dms(0x0002, meta.latitude),
        ascii(0x0003, if meta.longitude >= 0.0 { "E" } else { "W" }),
        dms(0x0004, meta.longitude),
    ];
    // IFD0 holds two pointers whose values depend only on IFD sizes, not on the pointers.
    let mut ifd0 = vec![
        ascii(0x010F, &meta.make),
        ascii(0x0110, &meta.model),
        ascii(0x0132, &when),
        long(0x8769, 0),
        long(0x8825, 0),
    ];
    let exif_at = 8 + ifd_len(&ifd0);
    let gps_at = exif_at + ifd_len(&exif);
    ifd0[3] = long(0x8769, exif_at as u32);
    ifd0[4] = long(0x8825, gps_at as u32);

    let mut out = Vec::with_capacity(gps_at + ifd_len(&gps) + 6);
    out.extend_from_slice(b"Exif\0\0");
    let tiff = out.len();
    out.extend_from_slice(b"II\x2a\x00\x08\x00\x00\x00");
    write_ifd(&mut out, tiff, &ifd0);
    write_ifd(&mut out, tiff, &exif);
    write_ifd(&mut out, tiff, &gps);
    Ok(out)
}

/// Returns `jpeg` with an Exif APP1 segment and a COM segment spliced in right after SOI, as a
/// camera writes them. The image data is untouched.
///
/// Errors: [`SynthError::NotJpeg`] when `jpeg` does not start with SOI (FF D8);
/// [`SynthError::InvalidMetadata`] when a text field is not printable ASCII or longer than
/// [`MAX_EXIF_TEXT`], the comment is longer than [`MAX_COMMENT`], or a coordinate is out of range.
pub fn jpeg_with_camera_metadata(jpeg: &[u8], meta: &CameraMeta) -> Result<Vec<u8>, SynthError> {
    if jpeg.len() < 4 || jpeg[0] != 0xFF || jpeg[1] != 0xD8 {
        return Err(SynthError::NotJpeg);
    }
    if meta.comment.len() > MAX_COMMENT {
        return Err(SynthError::InvalidMetadata { field: "comment" });
    }
    let app1 = exif_payload(meta)?;
    // Invariant: three bounded text fields and fixed-size values keep this under 2 KiB.
    debug_assert!(app1.len() + 2 <= u16::MAX as usize);
    let mut out = Vec::with_capacity(jpeg.len() + app1.len() + meta.comment.len() + 8);
    out.extend_from_slice(&[0xFF, 0xD8, 0xFF, 0xE1]);
    out.extend_from_slice(&((app1.len() + 2) as u16).to_be_bytes());
    out.extend_from_slice(&app1);
    if !meta.comment.is_empty() {
        out.extend_from_slice(&[0xFF, 0xFE]);
        out.extend_from_slice(&((meta.comment.len() + 2) as u16).to_be_bytes());
        out.extend_from_slice(meta.comment.as_bytes());
    }
    out.extend_from_slice(&jpeg[2..]);
    Ok(out)
}
