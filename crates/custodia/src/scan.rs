//! The demo's plaintext scan: read every file under a folder and look for anything that would
//! betray a plaintext image or plate.
//!
//! Patterns: the JPEG JFIF and EXIF headers, the PNG signature, the exact quantisation tables of
//! the JPEGs the cameras produced (present in any plaintext copy of them, with or without
//! headers), and every plate text the demo generated, upper- and lower-case. Ciphertext matching a
//! pattern of 8 or more bytes by chance is negligible (2^-64 per position). What this scan is not:
//! a proof. It cannot find a plate written in another encoding; it shows that none of what the
//! pipeline handled in plaintext is sitting on disk.

use std::path::{Path, PathBuf};

use aho_corasick::AhoCorasick;

/// One hit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// The file.
    pub path: PathBuf,
    /// Byte offset of the match.
    pub offset: usize,
    /// What matched (a description, not the matched text: that may be a plate).
    pub what: String,
}

/// What the scan saw.
#[derive(Debug, Default)]
pub struct ScanReport {
    /// Files read.
    pub files: u64,
    /// Bytes read.
    pub bytes: u64,
    /// Hits.
    pub findings: Vec<Finding>,
}

/// The patterns to look for.
pub struct Patterns {
    patterns: Vec<Vec<u8>>,
    labels: Vec<String>,
}

impl Patterns {
    /// Image signatures only.
    pub fn new() -> Self {
        let mut patterns = Self { patterns: Vec::new(), labels: Vec::new() };
        patterns.add(b"\xFF\xD8\xFF\xE0\x00\x10JFIF\x00".to_vec(), "JPEG/JFIF header".into());
        patterns.add(b"Exif\x00\x00MM\x00\x2A".to_vec(), "EXIF block (big-endian)".into());
        patterns.add(b"Exif\x00\x00II\x2A\x00".to_vec(), "EXIF block (little-endian)".into());
        patterns.add(b"\x89PNG\r\n\x1A\n".to_vec(), "PNG signature".into());
        patterns
    }

    fn add(&mut self, pattern: Vec<u8>, label: String) {
        if !self.patterns.contains(&pattern) {
            self.patterns.push(pattern);
            self.labels.push(label);
        }
    }

    /// Adds a plate text (upper- and lower-case).
    pub fn add_plate(&mut self, plate: &str) {
        self.add(plate.to_ascii_uppercase().into_bytes(), "plate text".into());
        self.add(plate.to_ascii_lowercase().into_bytes(), "plate text (lower-case)".into());
    }

    /// Adds the quantisation tables (DQT segments) of a JPEG, which any plaintext copy of that
    /// JPEG contains.
    pub fn add_jpeg_tables(&mut self, jpeg: &[u8]) {
        let mut at = 2;
        while at + 4 <= jpeg.len() && jpeg[at] == 0xFF {
            let marker = jpeg[at + 1];
            let len = u16::from_be_bytes([jpeg[at + 2], jpeg[at + 3]]) as usize;
            if marker == 0xDA || at + 2 + len > jpeg.len() {
                break;
            }
            if marker == 0xDB {
                self.add(jpeg[at..at + 2 + len].to_vec(), "JPEG quantisation table of a camera image".into());
            }
            at += 2 + len;
        }
    }

    /// Scans every regular file under `root`.
    pub fn scan(&self, root: &Path) -> std::io::Result<ScanReport> {
        let matcher = AhoCorasick::new(&self.patterns).expect("patterns build");
        let mut report = ScanReport::default();
        let mut stack = vec![root.to_path_buf()];
        while let Some(dir) = stack.pop() {
            for entry in std::fs::read_dir(&dir)? {
                let entry = entry?;
                let kind = entry.file_type()?;
                if kind.is_dir() {
                    stack.push(entry.path());
                } else if kind.is_file() {
                    let bytes = std::fs::read(entry.path())?;
                    report.files += 1;
                    report.bytes += bytes.len() as u64;
                    for hit in matcher.find_iter(&bytes) {
                        report.findings.push(Finding {
                            path: entry.path(),
                            offset: hit.start(),
                            what: self.labels[hit.pattern().as_usize()].clone(),
                        });
                    }
                }
            }
        }
        Ok(report)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_planted_plaintext_and_nothing_in_random_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let mut patterns = Patterns::new();
        patterns.add_plate("XQA1234");
        // A JPEG-like prefix with one DQT segment.
        let mut jpeg = b"\xFF\xD8\xFF\xDB\x00\x43\x00".to_vec();
        jpeg.extend((0..64u8).map(|i| i.wrapping_mul(7)));
        jpeg.extend_from_slice(b"\xFF\xDA\x00\x02");
        patterns.add_jpeg_tables(&jpeg);

        std::fs::write(
            dir.path().join("random.bin"),
            (0..200_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect::<Vec<_>>(),
        )
        .unwrap();
        assert!(patterns.scan(dir.path()).unwrap().findings.is_empty());

        std::fs::create_dir(dir.path().join("sub")).unwrap();
        std::fs::write(dir.path().join("sub/leak.txt"), b"...plate xqa1234 seen...").unwrap();
        let mut stripped_copy = b"noise".to_vec();
        stripped_copy.extend_from_slice(&jpeg[2..]);
        std::fs::write(dir.path().join("copy.raw"), &stripped_copy).unwrap();
        std::fs::write(dir.path().join("p.png"), b"\x89PNG\r\n\x1A\nrest").unwrap();
        let report = patterns.scan(dir.path()).unwrap();
        let mut what: Vec<_> = report.findings.iter().map(|f| f.what.as_str()).collect();
        what.sort();
        assert_eq!(what, ["JPEG quantisation table of a camera image", "PNG signature", "plate text (lower-case)"]);
        assert_eq!(report.files, 4);
    }
}
