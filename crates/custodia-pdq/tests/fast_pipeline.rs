//! `pdq-fast-v1` against `pdq-canonical-v1` on the conformance images: how many bits the
//! scaled decode costs. Run with `--nocapture` to see the per-file table.

use std::path::PathBuf;

use custodia_pdq::{Pipeline, hash_bytes, hash_bytes_dihedral};

/// Fast hashes must stay well inside the match radius (31) of canonical ones. The measured
/// worst case on these images is printed; this bound leaves room for decoder noise, not
/// for a broken pipeline (unrelated images are ~128 bits apart).
const MAX_FAST_DISTANCE: u32 = 16;

#[test]
fn fast_pipeline_stays_close_to_canonical() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("testdata/pdq");
    let tsv = std::fs::read_to_string(dir.join("expected.tsv")).expect("testdata/pdq/expected.tsv");
    let mut worst = 0;
    let mut total = 0;
    let mut n = 0;
    for line in tsv.lines().filter(|l| !l.is_empty()) {
        let file = line.split('\t').next().unwrap();
        let bytes = std::fs::read(dir.join(file)).unwrap();
        let c = hash_bytes(&bytes, Pipeline::CanonicalV1).unwrap();
        let f = hash_bytes(&bytes, Pipeline::FastV1).unwrap();
        assert_eq!(f.pipeline.name(), "pdq-fast-v1");
        assert_eq!(c.pipeline.name(), "pdq-canonical-v1");
        let d = c.hash.hamming(&f.hash);
        println!("{file:32} canonical q{:3} fast q{:3} distance {d:3}", c.quality, f.quality);
        let fd = hash_bytes_dihedral(&bytes, Pipeline::FastV1).unwrap();
        assert_eq!(fd.original(), f);
        worst = worst.max(d);
        total += d;
        n += 1;
    }
    println!("fast vs canonical: worst {worst} bits, mean {:.1} bits over {n} images", total as f64 / n as f64);
    assert!(worst <= MAX_FAST_DISTANCE, "worst {worst}");
}

/// `pdq-fast-v1` is a named, versioned pipeline: stored hashes carry its name, so a change to
/// its output (not just its speed) would need a new name. This pins every conformance
/// image's fast hash, dihedral set and quality to `testdata/pdq/expected-fast-v1.tsv`,
/// written by the decoder as it was when the pipeline was named. With
/// `PDQ_WRITE_FAST_GOLDEN=1` the test writes the file instead of checking it (only ever
/// for a new pipeline version).
#[test]
fn fast_pipeline_output_is_pinned() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("testdata/pdq");
    let tsv = std::fs::read_to_string(dir.join("expected.tsv")).expect("testdata/pdq/expected.tsv");
    let mut got = String::new();
    for line in tsv.lines().filter(|l| !l.is_empty()) {
        let file = line.split('\t').next().unwrap();
        let bytes = std::fs::read(dir.join(file)).unwrap();
        let d = hash_bytes_dihedral(&bytes, Pipeline::FastV1).unwrap();
        let hashes: Vec<String> = d.hashes.iter().map(|h| h.to_string()).collect();
        got.push_str(&format!("{file}\t{}\t{}\n", d.quality, hashes.join("\t")));
    }
    let golden = dir.join("expected-fast-v1.tsv");
    if std::env::var_os("PDQ_WRITE_FAST_GOLDEN").is_some() {
        std::fs::write(&golden, &got).unwrap();
        return;
    }
    let want = std::fs::read_to_string(&golden).expect("testdata/pdq/expected-fast-v1.tsv");
    for (g, w) in got.lines().zip(want.lines()) {
        assert_eq!(g, w);
    }
    assert_eq!(got.lines().count(), want.lines().count());
}
