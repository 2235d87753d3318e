//! Conformance against ThreatExchange's published PDQ examples.
//!
//! Reads `expected.tsv` (file, hash, quality) and the images beside it from the shared
//! test-data folder (`../../../shared/testdata/pdq` from this crate, i.e. beside the
//! checkout) where present, and always from this crate's own copy in `testdata/pdq`, which must
//! exist: a conformance suite that silently skips proves nothing.

use std::path::{Path, PathBuf};

use custodia_pdq::{PdqHash, Pipeline, hash_bytes, hash_bytes_dihedral};

struct Row {
    file: String,
    hash: PdqHash,
    quality: u32,
}

fn rows(dir: &Path) -> Vec<Row> {
    let tsv = dir.join("expected.tsv");
    let text =
        std::fs::read_to_string(&tsv).unwrap_or_else(|e| panic!("conformance data missing: {}: {e}", tsv.display()));
    let rows: Vec<Row> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            assert_eq!(f.len(), 3, "bad line {l:?}");
            Row { file: f[0].to_owned(), hash: f[1].parse().expect("hash"), quality: f[2].parse().expect("quality") }
        })
        .collect();
    assert!(rows.len() >= 14, "expected.tsv has {} rows", rows.len());
    rows
}

fn check_dir(dir: &Path) {
    let mut failures = Vec::new();
    let rows = rows(dir);
    for row in &rows {
        let bytes = std::fs::read(dir.join(&row.file)).unwrap_or_else(|e| panic!("{}: {e}", row.file));
        let got = hash_bytes(&bytes, Pipeline::CanonicalV1).unwrap_or_else(|e| panic!("{}: {e}", row.file));
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
    assert!(failures.is_empty(), "{} of {} rows differ:\n{}", failures.len(), rows.len(), failures.join("\n"));
}

fn crate_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The project's shared test data sits beside the checkout on development and CI machines, not
/// in a newcomer's clone. Where it is, it must match bit for bit too, and the vendored copy must be
/// the same files; where it is not, the vendored copy (always present, and always checked below)
/// carries the conformance claim.
#[test]
fn shared_reference_examples_match_bit_for_bit_where_present() {
    let shared = crate_dir().join("../../../shared/testdata/pdq");
    if !shared.join("expected.tsv").exists() {
        eprintln!("note: {} is not beside this checkout; the vendored copy is checked instead", shared.display());
        return;
    }
    check_dir(&shared);
    let vendored = crate_dir().join("testdata/pdq");
    for row in rows(&shared) {
        let a = std::fs::read(shared.join(&row.file)).unwrap();
        let b = std::fs::read(vendored.join(&row.file)).unwrap_or_else(|e| panic!("vendored {}: {e}", row.file));
        assert_eq!(a, b, "vendored {} differs from the shared copy", row.file);
    }
    assert_eq!(
        std::fs::read_to_string(shared.join("expected.tsv")).unwrap(),
        std::fs::read_to_string(vendored.join("expected.tsv")).unwrap()
    );
}

#[test]
fn vendored_reference_examples_match_bit_for_bit() {
    check_dir(&crate_dir().join("testdata/pdq"));
}
