//! `custodia leak hash` prints, for Meta's published PDQ example images, exactly the hashes and
//! qualities ThreatExchange publishes (`crates/custodia-pdq/testdata/pdq/expected.tsv`), so a
//! reader can compare our pipeline with any other implementation from the command line.

use std::process::Command;

const DATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../custodia-pdq/testdata/pdq");

#[test]
fn leak_hash_prints_the_published_hashes_tab_separated() {
    let expected = std::fs::read_to_string(format!("{DATA}/expected.tsv")).unwrap();
    let rows: Vec<Vec<&str>> = expected.lines().filter(|l| !l.is_empty()).map(|l| l.split('\t').collect()).collect();
    assert!(rows.len() >= 10);
    let out = Command::new(env!("CARGO_BIN_EXE_custodia"))
        .current_dir(DATA)
        .args(["leak", "hash", "--pipeline", "pdq-canonical-v1"])
        .args(rows.iter().map(|r| r[0]))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), rows.len());
    for (line, row) in lines.iter().zip(&rows) {
        assert_eq!(*line, format!("{}\tpdq-canonical-v1\t{}\t{}", row[0], row[1], row[2]));
    }
}

#[test]
fn leak_hash_dihedral_prints_eight_hashes_and_refuses_non_images() {
    let out = Command::new(env!("CARGO_BIN_EXE_custodia"))
        .current_dir(DATA)
        .args(["leak", "hash", "--dihedral", "wee.jpg", "README.md"])
        .output()
        .unwrap();
    assert!(!out.status.success(), "a file that is not an image fails the command");
    let stdout = String::from_utf8(out.stdout).unwrap();
    let fields: Vec<&str> = stdout.trim_end().split('\t').collect();
    assert_eq!(fields.len(), 1 + 1 + 8 + 1, "{stdout}");
    let expected = std::fs::read_to_string(format!("{DATA}/expected.tsv")).unwrap();
    let wee = expected.lines().find(|l| l.starts_with("wee.jpg\t")).unwrap();
    assert_eq!(fields[2], wee.split('\t').nth(1).unwrap(), "the first variant is the original");
    assert!(String::from_utf8_lossy(&out.stderr).contains("README.md"));
}
