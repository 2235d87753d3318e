//! Conformance against ThreatExchange's published PDQ examples.
//!
//! Reads `expected.tsv` (file, hash, quality) and the images beside it from the shared
//! test-data folder (`../../../shared/testdata/pdq` from this crate, i.e. beside the
//! checkout) and, independently, from this crate's own copy in `testdata/pdq`. A missing
//! folder fails the test: a conformance suite that silently skips proves nothing.

use std::path::{Path, PathBuf};

use custodia_pdq::{PdqHash, Pipeline, hash_bytes, hash_bytes_dihedral};

struct Row {
    file: String,
    hash: PdqHash,
    quality: u32,
}

fn rows(dir: &Path) -> Vec<Row> {
    let tsv = dir.join("expected.tsv");
    let text = std::fs::read_to_string(&tsv)
        .unwrap_or_else(|e| panic!("conformance data missing: {}: {e}", tsv.display()));
    let rows: Vec<Row> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            assert_eq!(f.len(), 3, "bad line {l:?}");
            Row {
                file: f[0].to_owned(),
                hash: f[1].parse().expect("hash"),
                quality: f[2].parse().expect("quality"),
            }
        })
        .collect();
    assert!(rows.len() >= 14, "expected.tsv has {} rows", rows.len());
    rows
}

fn check_dir(dir: &Path) {
    let mut failures = Vec::new();
    let rows = rows(dir);
    for row in &rows {
        let bytes =
            std::fs::read(dir.join(&row.file)).unwrap_or_else(|e| panic!("{}: {e}", row.file));
        let got = hash_bytes(&bytes, Pipeline::CanonicalV1)
            .unwrap_or_else(|e| panic!("{}: {e}", row.file));
        assert_eq!(got.pipeline.name(), "pdq-canonical-v1");
        let dist = got.hash.hamming(&row.hash);
        if dist != 0 || got.quality != row.quality {
            failures.push(format!(
                "{}: got {} q{} want {} q{} ({} bits)",
                row.file, got.hash, got.quality, row.hash, row.quality, dist
            ));
        }
        // The dihedral path shares the DCT: its original must be the same hash.
        let d = hash_bytes_dihedral(&bytes, Pipeline::CanonicalV1).expect("dihedral");
        assert_eq!(d.original(), got, "{}", row.file);
    }
    assert!(
        failures.is_empty(),
        "{} of {} rows differ:\n{}",
        failures.len(),
        rows.len(),
        failures.join("\n")
    );
}

fn crate_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn shared_reference_examples_match_bit_for_bit() {
    check_dir(&crate_dir().join("../../../shared/testdata/pdq"));
}

#[test]
fn vendored_reference_examples_match_bit_for_bit() {
    check_dir(&crate_dir().join("testdata/pdq"));
}
