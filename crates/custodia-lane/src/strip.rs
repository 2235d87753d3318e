//! Lossless metadata stripping for JPEG and PNG.
//!
//! A lane camera's JPEG carries more than pixels: EXIF (camera serial number, GPS position, capture
//! time), XMP, IPTC (APP13), vendor APPn blocks, comments, ICC profiles with device strings,
//! embedded thumbnails (which can show an older, unredacted frame) and whatever an attacker appends
//! after the end of the image. This module rebuilds the file from only the segments that decoding
//! needs. It never decodes or re-encodes: the entropy-coded data is copied byte for byte, so the
//! decoded pixels are identical and the cost is one linear pass (tens of microseconds for a
//! 200 KB JPEG; see `benches/strip.rs`).
//!
//! What is kept and why:
//!
//! | JPEG | kept | reason |
//! |---|---|---|
//! | SOI, DQT, SOFn, DHT, DAC, DRI, DNL, SOS + entropy data (with RSTn), EOI | yes | needed to decode |
//! | APP0 `JFIF` | rewritten without its thumbnail | version and pixel density only; a JFIF thumbnail is a second copy of the picture |
//! | APP14 `Adobe` | yes (exactly the 12-byte form) | its transform flag selects the colour conversion (YCCK/CMYK) |
//! | APP1 (EXIF incl. GPS, XMP), APP2 (ICC, MPF), APP3–APP13 (incl. IPTC), APP15, COM, APP0 `JFXX` | dropped | metadata; ICC does not change decoded samples, and a profile's description strings can name the device |
//! | bytes after EOI | dropped, reported as `trailing-data` | can hide a payload or a second image (MPF) |
//!
//! | PNG | kept | reason |
//! |---|---|---|
//! | IHDR, PLTE, IDAT, IEND | yes | critical |
//! | tRNS, gAMA, cHRM, sRGB, cICP | yes | change how samples are interpreted; carry no free text |
//! | acTL, fcTL, fdAT | yes | animation frames are image data, not metadata |
//! | iCCP | dropped | consistent with JPEG ICC: a named, compressed profile that may carry device text |
//! | tEXt, zTXt, iTXt, eXIf, tIME, pHYs, bKGD, sBIT, sPLT, hIST, and any other ancillary chunk | dropped | metadata |
//! | an unknown critical chunk | refused | a decoder could not display the image either |
//!
//! Consequence to know: the EXIF orientation tag goes with APP1, so a viewer shows the image in
//! its stored orientation. Lane cameras write orientation 1; a caller that needs the tag must read
//! it before stripping.
//!
//! It does not: decode images, validate entropy-coded data or zlib streams, or handle formats
//! other than JPEG and PNG (anything else is refused with [`StripError::UnknownFormat`]).
//!
//! ```
//! use custodia_lane::strip::{strip_metadata, ImageKind};
//! // A 1x1 PNG with a tEXt chunk is stripped to its critical chunks.
//! # fn chunk(t: &[u8; 4], d: &[u8]) -> Vec<u8> {
//! #     let mut c = (d.len() as u32).to_be_bytes().to_vec();
//! #     c.extend_from_slice(t); c.extend_from_slice(d);
//! #     let mut h = crc32fast::Hasher::new(); h.update(t); h.update(d);
//! #     c.extend_from_slice(&h.finalize().to_be_bytes()); c }
//! # let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
//! # png.extend(chunk(b"IHDR", &[0,0,0,1, 0,0,0,1, 8, 0, 0, 0, 0]));
//! # png.extend(chunk(b"tEXt", b"GPS\x0049.1,2.3"));
//! # png.extend(chunk(b"IDAT", &[0x78, 0x01, 0x63, 0x60, 0x00, 0x00, 0x00, 0x02, 0x00, 0x01]));
//! # png.extend(chunk(b"IEND", &[]));
//! let out = strip_metadata(&png)?;
//! assert_eq!(out.kind, ImageKind::Png);
//! assert_eq!(out.removed, vec!["tEXt"]);
//! # Ok::<(), custodia_lane::strip::StripError>(())
//! ```

use std::fmt;

/// Largest image accepted, in bytes. A 4K lane overview at high JPEG quality is 2–6 MB and an
/// uncompressed-ish PNG of the same frame stays well below this; anything larger is not a lane
/// capture and is refused before any work is done.
pub const MAX_IMAGE_BYTES: usize = 32 * 1024 * 1024;

/// The image formats this module understands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ImageKind {
    /// JPEG (JFIF, EXIF or bare), baseline, extended, progressive, lossless or arithmetic.
    Jpeg,
    /// PNG, including APNG.
    Png,
}

impl ImageKind {
    /// Lower-case name, also the usual file extension.
    pub fn as_str(self) -> &'static str {
        match self {
            ImageKind::Jpeg => "jpeg",
            ImageKind::Png => "png",
        }
    }
}

/// The result of [`strip_metadata`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stripped {
    /// What the input was.
    pub kind: ImageKind,
    /// The image without metadata; decodes to exactly the same samples as the input.
    pub bytes: Vec<u8>,
    /// What was removed, each kind once, in the order first met (e.g. `"APP1/Exif"`, `"COM"`,
    /// `"tEXt"`, `"trailing-data"`). Empty when the input carried no metadata.
    pub removed: Vec<&'static str>,
}

/// Why an image was refused. Offsets are byte offsets into the input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StripError {
    /// The input is larger than [`MAX_IMAGE_BYTES`].
    #[error("image of {len} bytes is larger than the {max}-byte limit")]
    TooLarge {
        /// Input length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The input starts with neither the JPEG SOI marker nor the PNG signature.
    #[error("not a JPEG or PNG image")]
    UnknownFormat,
    /// JPEG: a byte other than 0xFF where a marker must start.
    #[error("JPEG: expected a marker at offset {offset}")]
    ExpectedMarker {
        /// Where the marker should have been.
        offset: usize,
    },
    /// JPEG: a segment length below 2, or one that runs past the end of the input.
    #[error("JPEG: segment {marker} at offset {offset} has a bad length or runs past the end")]
    BadSegment {
        /// The marker, e.g. `APP1` or `SOS`.
        marker: MarkerName,
        /// Offset of the marker's 0xFF.
        offset: usize,
    },
    /// JPEG: a second SOI before EOI (an embedded JPEG in the marker stream).
    #[error("JPEG: nested SOI at offset {offset}")]
    NestedSoi {
        /// Offset of the second SOI.
        offset: usize,
    },
    /// JPEG: a marker that may not appear here (reserved, TEM, RSTn outside a scan, a JPEG-LS or
    /// hierarchical marker, or a second frame header).
    #[error("JPEG: unexpected marker {marker} at offset {offset}")]
    UnexpectedMarker {
        /// The marker.
        marker: MarkerName,
        /// Offset of the marker's 0xFF.
        offset: usize,
    },
    /// JPEG: a scan (SOS) before any frame header (SOFn).
    #[error("JPEG: scan at offset {offset} comes before a frame header")]
    ScanBeforeFrame {
        /// Offset of the SOS marker.
        offset: usize,
    },
    /// JPEG: EOI reached with no scan in the file.
    #[error("JPEG: no scan (SOS) before EOI")]
    MissingSos,
    /// JPEG: the input ends before EOI (truncated file).
    #[error("JPEG: input ends at offset {offset} before EOI")]
    MissingEoi {
        /// The input length.
        offset: usize,
    },
    /// PNG: a chunk header or body runs past the end of the input, or a length above 2^31-1.
    #[error("PNG: chunk at offset {offset} is truncated or too long")]
    TruncatedChunk {
        /// Offset of the chunk's length field.
        offset: usize,
    },
    /// PNG: a chunk type that is not four ASCII letters.
    #[error("PNG: invalid chunk type at offset {offset}")]
    BadChunkType {
        /// Offset of the chunk's length field.
        offset: usize,
    },
    /// PNG: a chunk whose CRC does not match its type and data.
    #[error("PNG: CRC mismatch in {chunk} chunk at offset {offset}")]
    BadCrc {
        /// The chunk type.
        chunk: ChunkName,
        /// Offset of the chunk's length field.
        offset: usize,
    },
    /// PNG: the first chunk is not IHDR, or IHDR is not 13 bytes, or it appears twice.
    #[error("PNG: IHDR must be the first chunk, once, 13 bytes long")]
    BadIhdr,
    /// PNG: a critical chunk this module does not know; no decoder could display the image.
    #[error("PNG: unknown critical chunk {chunk} at offset {offset}")]
    UnknownCriticalChunk {
        /// The chunk type.
        chunk: ChunkName,
        /// Offset of the chunk's length field.
        offset: usize,
    },
    /// PNG: no IDAT chunk before IEND.
    #[error("PNG: no IDAT chunk")]
    MissingIdat,
    /// PNG: the input ends before IEND (truncated file).
    #[error("PNG: input ends before IEND")]
    MissingIend,
}

/// A JPEG marker byte, shown by name (`SOF0`, `APP1`, `COM`, …) in errors.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct MarkerName(pub u8);

impl fmt::Display for MarkerName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let m = self.0;
        match m {
            0xC4 => f.write_str("DHT"),
            0xC8 => f.write_str("JPG"),
            0xCC => f.write_str("DAC"),
            0xC0..=0xCF => write!(f, "SOF{}", m - 0xC0),
            0xD0..=0xD7 => write!(f, "RST{}", m - 0xD0),
            0xD8 => f.write_str("SOI"),
            0xD9 => f.write_str("EOI"),
            0xDA => f.write_str("SOS"),
            0xDB => f.write_str("DQT"),
            0xDC => f.write_str("DNL"),
            0xDD => f.write_str("DRI"),
            0xE0..=0xEF => write!(f, "APP{}", m - 0xE0),
            0xFE => f.write_str("COM"),
            0x01 => f.write_str("TEM"),
            _ => write!(f, "0xFF{m:02X}"),
        }
    }
}

impl fmt::Debug for MarkerName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// A PNG chunk type, shown as text when printable and as hex otherwise.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct ChunkName(pub [u8; 4]);

impl fmt::Display for ChunkName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.iter().all(u8::is_ascii_alphabetic) {
            // All four bytes are ASCII letters, checked just above.
            f.write_str(std::str::from_utf8(&self.0).unwrap_or("????"))
        } else {
            write!(f, "0x{:02X}{:02X}{:02X}{:02X}", self.0[0], self.0[1], self.0[2], self.0[3])
        }
    }
}

impl fmt::Debug for ChunkName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

const PNG_SIGNATURE: [u8; 8] = *b"\x89PNG\r\n\x1a\n";

/// Says which format `bytes` is by its first bytes, without checking anything else.
pub fn sniff(bytes: &[u8]) -> Option<ImageKind> {
    if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
        Some(ImageKind::Jpeg)
    } else if bytes.starts_with(&PNG_SIGNATURE) {
        Some(ImageKind::Png)
    } else {
        None
    }
}

/// Removes every metadata segment from a JPEG or PNG without re-encoding it.
///
/// The output decodes to exactly the same samples as the input. Malformed structure is refused
/// rather than repaired, so a file that passes is one a standard decoder reads the same way we
/// walked it.
pub fn strip_metadata(bytes: &[u8]) -> Result<Stripped, StripError> {
    if bytes.len() > MAX_IMAGE_BYTES {
        return Err(StripError::TooLarge { len: bytes.len(), max: MAX_IMAGE_BYTES });
    }
    match sniff(bytes) {
        Some(ImageKind::Jpeg) => strip_jpeg(bytes),
        Some(ImageKind::Png) => strip_png(bytes),
        None => Err(StripError::UnknownFormat),
    }
}

/// Records a removed kind once; the list stays tiny, so a linear search beats a set.
fn note(removed: &mut Vec<&'static str>, what: &'static str) {
    if !removed.contains(&what) {
        removed.push(what);
    }
}

// ---------------------------------------------------------------------------------------------
// JPEG

const SOI: u8 = 0xD8;
const EOI: u8 = 0xD9;
const SOS: u8 = 0xDA;

/// What to do with one marker segment before EOI.
enum Action {
    Keep,
    Drop(&'static str),
    /// APP0 JFIF: keep the header, drop the thumbnail.
    Jfif,
}

fn classify(marker: u8, payload: &[u8]) -> Result<Action, ()> {
    Ok(match marker {
        // SOF0-3, SOF5-7, SOF9-11, SOF13-15 (0xC4 DHT, 0xC8 JPG, 0xCC DAC are handled below).
        0xC0..=0xC3 | 0xC5..=0xC7 | 0xC9..=0xCB | 0xCD..=0xCF => Action::Keep,
        0xC4 | 0xCC | 0xDB | 0xDC | 0xDD => Action::Keep, // DHT, DAC, DQT, DNL, DRI
        0xE0 => {
            if payload.starts_with(b"JFIF\0") && payload.len() >= 14 {
                Action::Jfif
            } else if payload.starts_with(b"JFXX\0") {
                Action::Drop("APP0/JFXX")
            } else {
                Action::Drop("APP0")
            }
        }
        0xE1 => {
            if payload.starts_with(b"Exif\0") {
                Action::Drop("APP1/Exif")
            } else if payload.starts_with(b"http://ns.adobe.com/xap/1.0/\0")
                || payload.starts_with(b"http://ns.adobe.com/xmp/extension/\0")
            {
                Action::Drop("APP1/XMP")
            } else {
                Action::Drop("APP1")
            }
        }
        0xE2 => {
            if payload.starts_with(b"ICC_PROFILE\0") {
                Action::Drop("APP2/ICC")
            } else if payload.starts_with(b"MPF\0") {
                Action::Drop("APP2/MPF")
            } else {
                Action::Drop("APP2")
            }
        }
        0xE3 => Action::Drop("APP3"),
        0xE4 => Action::Drop("APP4"),
        0xE5 => Action::Drop("APP5"),
        0xE6 => Action::Drop("APP6"),
        0xE7 => Action::Drop("APP7"),
        0xE8 => Action::Drop("APP8"),
        0xE9 => Action::Drop("APP9"),
        0xEA => Action::Drop("APP10"),
        0xEB => Action::Drop("APP11"),
        0xEC => Action::Drop("APP12"),
        0xED => Action::Drop("APP13"),
        // The Adobe segment is exactly "Adobe" + version(2) + flags0(2) + flags1(2) + transform(1).
        0xEE if payload.len() == 12 && payload.starts_with(b"Adobe") => Action::Keep,
        0xEE => Action::Drop("APP14"),
        0xEF => Action::Drop("APP15"),
        0xFE => Action::Drop("COM"),
        _ => return Err(()),
    })
}

fn is_sof(marker: u8) -> bool {
    matches!(marker, 0xC0..=0xC3 | 0xC5..=0xC7 | 0xC9..=0xCB | 0xCD..=0xCF)
}

fn strip_jpeg(input: &[u8]) -> Result<Stripped, StripError> {
    let n = input.len();
    let mut out = Vec::with_capacity(n);
    let mut removed = Vec::new();
    out.extend_from_slice(&[0xFF, SOI]);
    let mut pos = 2;
    let mut seen_frame = false;
    let mut seen_scan = false;
    loop {
        // A marker: 0xFF, any number of 0xFF fill bytes, then the marker code.
        let start = pos;
        if pos >= n {
            return Err(StripError::MissingEoi { offset: n });
        }
        if input[pos] != 0xFF {
            return Err(StripError::ExpectedMarker { offset: pos });
        }
        while pos < n && input[pos] == 0xFF {
            pos += 1;
        }
        if pos >= n {
            return Err(StripError::MissingEoi { offset: n });
        }
        let marker = input[pos];
        pos += 1;
        match marker {
            EOI => {
                if !seen_scan {
                    return Err(StripError::MissingSos);
                }
                out.extend_from_slice(&[0xFF, EOI]);
                if pos < n {
                    note(&mut removed, "trailing-data");
                }
                return Ok(Stripped { kind: ImageKind::Jpeg, bytes: out, removed });
            }
            SOI => return Err(StripError::NestedSoi { offset: start }),
            0x00 | 0x01 | 0xD0..=0xD7 => {
                return Err(StripError::UnexpectedMarker { marker: MarkerName(marker), offset: start });
            }
            _ => {}
        }
        // Every other marker here has a two-byte big-endian length that counts itself.
        if pos + 2 > n {
            return Err(StripError::BadSegment { marker: MarkerName(marker), offset: start });
        }
        let len = usize::from(u16::from_be_bytes([input[pos], input[pos + 1]]));
        if len < 2 || pos + len > n {
            return Err(StripError::BadSegment { marker: MarkerName(marker), offset: start });
        }
        let segment = &input[pos..pos + len];
        let payload = &segment[2..];
        pos += len;

        if marker == SOS {
            if !seen_frame {
                return Err(StripError::ScanBeforeFrame { offset: start });
            }
            seen_scan = true;
            out.extend_from_slice(&[0xFF, SOS]);
            out.extend_from_slice(segment);
            let end = scan_end(input, pos);
            out.extend_from_slice(&input[pos..end]);
            pos = end;
            continue;
        }
        if is_sof(marker) {
            // A second frame header (hierarchical JPEG, or a spliced-in image) is not something a
            // lane camera writes; refuse rather than guess which frame a decoder shows.
            if seen_frame {
                return Err(StripError::UnexpectedMarker { marker: MarkerName(marker), offset: start });
            }
            seen_frame = true;
        }
        match classify(marker, payload) {
            Ok(Action::Keep) => {
                out.extend_from_slice(&[0xFF, marker]);
                out.extend_from_slice(segment);
            }
            Ok(Action::Jfif) => {
                // "JFIF\0" version(2) units(1) Xdensity(2) Ydensity(2) Xthumb(1) Ythumb(1): keep
                // the first 12 payload bytes and declare a 0x0 thumbnail.
                if payload[12] != 0 || payload[13] != 0 || payload.len() > 14 {
                    note(&mut removed, "APP0/JFIF-thumbnail");
                }
                out.extend_from_slice(&[0xFF, 0xE0, 0x00, 0x10]);
                out.extend_from_slice(&payload[..12]);
                out.extend_from_slice(&[0, 0]);
            }
            Ok(Action::Drop(what)) => note(&mut removed, what),
            Err(()) => {
                return Err(StripError::UnexpectedMarker { marker: MarkerName(marker), offset: start });
            }
        }
    }
}

/// Returns the offset of the first marker after entropy-coded data starting at `from`: the first
/// 0xFF that is neither a stuffed 0xFF00 nor the start of an RSTn marker. Fill bytes (runs of
/// 0xFF) before that marker are left for the marker reader to skip. Returns `input.len()` when
/// the data runs to the end (a truncated file, which the caller then refuses).
fn scan_end(input: &[u8], from: usize) -> usize {
    let n = input.len();
    let mut i = from;
    while let Some(off) = input[i..].iter().position(|&b| b == 0xFF) {
        let ff = i + off;
        let mut j = ff + 1;
        while j < n && input[j] == 0xFF {
            j += 1;
        }
        if j >= n {
            return ff;
        }
        match input[j] {
            0x00 if j == ff + 1 => i = j + 1,
            0xD0..=0xD7 => i = j + 1,
            _ => return ff,
        }
    }
    n
}

// ---------------------------------------------------------------------------------------------
// PNG

/// Ancillary chunks we keep: they change how samples are interpreted and carry no free text.
/// The animation chunks carry image data.
const PNG_KEEP_ANCILLARY: [&[u8; 4]; 8] = [b"tRNS", b"gAMA", b"cHRM", b"sRGB", b"cICP", b"acTL", b"fcTL", b"fdAT"];

/// Names for removed chunks; `removed` holds `&'static str`, so known types map to literals.
fn png_removed_name(t: &[u8; 4]) -> &'static str {
    match t {
        b"tEXt" => "tEXt",
        b"zTXt" => "zTXt",
        b"iTXt" => "iTXt",
        b"eXIf" => "eXIf",
        b"tIME" => "tIME",
        b"pHYs" => "pHYs",
        b"iCCP" => "iCCP",
        b"bKGD" => "bKGD",
        b"sBIT" => "sBIT",
        b"sPLT" => "sPLT",
        b"hIST" => "hIST",
        b"oFFs" => "oFFs",
        b"pCAL" => "pCAL",
        b"sCAL" => "sCAL",
        b"mDCv" => "mDCv",
        b"cLLi" => "cLLi",
        b"dSIG" => "dSIG",
        _ => "unknown-ancillary-chunk",
    }
}

fn strip_png(input: &[u8]) -> Result<Stripped, StripError> {
    let n = input.len();
    let mut out = Vec::with_capacity(n);
    let mut removed = Vec::new();
    out.extend_from_slice(&PNG_SIGNATURE);
    let mut pos = PNG_SIGNATURE.len();
    let mut first = true;
    let mut seen_idat = false;
    loop {
        let start = pos;
        if pos + 8 > n {
            return Err(if pos == n { StripError::MissingIend } else { StripError::TruncatedChunk { offset: start } });
        }
        let len = u32::from_be_bytes([input[pos], input[pos + 1], input[pos + 2], input[pos + 3]]);
        // PNG limits chunk lengths to 2^31-1; past that the length itself is corrupt.
        if len > 0x7FFF_FFFF {
            return Err(StripError::TruncatedChunk { offset: start });
        }
        let len = len as usize;
        let mut ctype = [0u8; 4];
        ctype.copy_from_slice(&input[pos + 4..pos + 8]);
        if !ctype.iter().all(u8::is_ascii_alphabetic) {
            return Err(StripError::BadChunkType { offset: start });
        }
        let Some(total) = len.checked_add(12).filter(|t| pos + t <= n) else {
            return Err(StripError::TruncatedChunk { offset: start });
        };
        let chunk = &input[pos..pos + total];
        let mut hasher = crc32fast::Hasher::new();
        hasher.update(&chunk[4..8 + len]);
        let crc = u32::from_be_bytes([chunk[8 + len], chunk[9 + len], chunk[10 + len], chunk[11 + len]]);
        if hasher.finalize() != crc {
            return Err(StripError::BadCrc { chunk: ChunkName(ctype), offset: start });
        }
        pos += total;

        let is_ihdr = &ctype == b"IHDR";
        if first != is_ihdr || (is_ihdr && len != 13) {
            return Err(StripError::BadIhdr);
        }
        first = false;
        let critical = ctype[0].is_ascii_uppercase();
        match &ctype {
            b"IEND" => {
                if !seen_idat {
                    return Err(StripError::MissingIdat);
                }
                out.extend_from_slice(chunk);
                if pos < n {
                    note(&mut removed, "trailing-data");
                }
                return Ok(Stripped { kind: ImageKind::Png, bytes: out, removed });
            }
            b"IDAT" => {
                seen_idat = true;
                out.extend_from_slice(chunk);
            }
            b"IHDR" | b"PLTE" => out.extend_from_slice(chunk),
            t if PNG_KEEP_ANCILLARY.contains(&t) => out.extend_from_slice(chunk),
            _ if critical => {
                return Err(StripError::UnknownCriticalChunk { chunk: ChunkName(ctype), offset: start });
            }
            t => note(&mut removed, png_removed_name(t)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marker_names_read_like_the_standard() {
        assert_eq!(MarkerName(0xC0).to_string(), "SOF0");
        assert_eq!(MarkerName(0xC2).to_string(), "SOF2");
        assert_eq!(MarkerName(0xE1).to_string(), "APP1");
        assert_eq!(MarkerName(0xD3).to_string(), "RST3");
        assert_eq!(MarkerName(0xF7).to_string(), "0xFFF7");
        assert_eq!(ChunkName(*b"tEXt").to_string(), "tEXt");
        assert_eq!(ChunkName([0, 1, 2, 3]).to_string(), "0x00010203");
    }

    #[test]
    fn scan_end_skips_stuffing_and_restarts() {
        let data = [0x12, 0xFF, 0x00, 0x34, 0xFF, 0xD0, 0x56, 0xFF, 0xFF, 0xD9];
        assert_eq!(scan_end(&data, 0), 7);
        assert_eq!(scan_end(&[0x12, 0x34], 0), 2);
        assert_eq!(scan_end(&[0x12, 0xFF], 0), 1);
    }
}
