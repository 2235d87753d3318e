//! Perceptual hashes are stored with their record in the same transaction, read back for an
//! in-memory index, joined to their record's facts, and deleted per group/role in one statement.

mod records;

use custodia_store::index::{Index, InsertOutcome, NewRecord, PdqEntry};

fn entry(group: u8, part: u8, role: &str, variant: &str, seed: u8) -> PdqEntry {
    PdqEntry {
        group,
        part,
        role: role.into(),
        pipeline: "pdq-fast-v1".into(),
        variant: variant.into(),
        hash: [seed; 32],
        quality: 90,
    }
}

fn record(sequence: u64, pdq: Vec<PdqEntry>) -> NewRecord {
    records::record(sequence, vec![], pdq)
}

#[test]
fn hashes_are_stored_read_back_joined_and_deleted_per_group() {
    let dir = tempfile::tempdir().unwrap();
    let index = Index::open(&dir.path().join("i.sqlite3")).unwrap();
    let r1 = record(
        1,
        vec![entry(0, 1, "overview", "full", 1), entry(0, 1, "overview", "inset-5", 2), entry(1, 0, "face", "full", 3)],
    );
    // A retried upload (same id, same digest) adds no second copy of its hashes.
    let out =
        index.insert_records(&[r1.clone(), r1.clone(), record(2, vec![entry(0, 1, "overview", "full", 4)])]).unwrap();
    assert_eq!(out, [InsertOutcome::Inserted, InsertOutcome::Duplicate, InsertOutcome::Inserted]);

    let mut seen = Vec::new();
    let last =
        index.for_each_pdq_since(0, |id, pipeline, hash| seen.push((id, pipeline.to_string(), hash[0]))).unwrap();
    assert_eq!(seen.iter().map(|s| s.2).collect::<Vec<_>>(), [1, 2, 3, 4]);
    assert_eq!(last, seen.last().unwrap().0);
    assert_eq!(index.for_each_pdq_since(last, |_, _, _| panic!("nothing new")).unwrap(), last);

    let ids: Vec<u64> = seen.iter().map(|s| s.0).collect();
    let rows = index.pdq_rows(&ids).unwrap();
    assert_eq!(rows.len(), 4);
    assert_eq!(rows[2].entry, entry(1, 0, "face", "full", 3));
    assert_eq!(rows[2].record, r1.id);
    assert_eq!(
        (rows[3].site.as_str(), rows[3].lane.as_str(), rows[3].capture_time_ms),
        ("anzalduas", "lane-2", 1_780_000_000_002)
    );

    // Retention of record 1's face group: one DELETE, the other hashes stay.
    assert_eq!(index.delete_pdq(&r1.id, 1, Some("face")).unwrap(), 1);
    let rows = index.pdq_rows(&ids).unwrap();
    assert_eq!(
        rows.iter().map(|r| r.entry.hash[0]).collect::<Vec<_>>(),
        [1, 2, 4],
        "a deleted id is dropped, not an error"
    );
    // Ids are never reused after a delete, so an in-memory index cannot point at a stranger.
    index.insert_records(&[record(3, vec![entry(1, 0, "face", "full", 5)])]).unwrap();
    let mut fresh = Vec::new();
    index.for_each_pdq_since(last, |id, _, _| fresh.push(id)).unwrap();
    assert_eq!(fresh.len(), 1);
    assert!(fresh[0] > last);
}

/// A record's hashes go in by the statement-full (32 rows), so one with more than that spans
/// statements: every hash is stored once, with ids in the record's order.
#[test]
fn a_record_with_more_hashes_than_one_statement_carries_keeps_them_all_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let index = Index::open(&dir.path().join("i.sqlite3")).unwrap();
    let many: Vec<PdqEntry> = (0..70u8).map(|k| entry(k / 6, k % 6, "overview", &format!("v{k}"), k)).collect();
    let out =
        index.insert_records(&[record(1, many.clone()), record(2, vec![entry(0, 0, "face", "full", 99)])]).unwrap();
    assert_eq!(out, [InsertOutcome::Inserted, InsertOutcome::Inserted]);

    let mut seen = Vec::new();
    index.for_each_pdq_since(0, |id, _, hash| seen.push((id, hash[0]))).unwrap();
    let expected: Vec<u8> = (0..70u8).chain([99]).collect();
    assert_eq!(seen.iter().map(|s| s.1).collect::<Vec<_>>(), expected);
    let ids: Vec<u64> = seen.iter().map(|s| s.0).collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "ids follow the record's order");
    let rows = index.pdq_rows(&ids[..70]).unwrap();
    assert_eq!(rows.iter().map(|r| r.entry.clone()).collect::<Vec<_>>(), many);
}
