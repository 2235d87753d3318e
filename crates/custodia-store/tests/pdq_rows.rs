//! Perceptual hashes are stored with their record in the same transaction, read back for an
//! in-memory index, joined to their record's facts, and deleted per group/role in one statement.

mod records;

use custodia_store::index::{Index, InsertOutcome, NewRecord, PDQ_SLOTS, PdqEntry};

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

/// A part with more hashes than one row holds (`PDQ_SLOTS`) continues in another row: every
/// hash is stored once, with ids in the record's order.
#[test]
fn a_part_with_more_hashes_than_one_row_holds_keeps_them_all_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let index = Index::open(&dir.path().join("i.sqlite3")).unwrap();
    let many: Vec<PdqEntry> = (0..70u8).map(|k| entry(0, 1, "overview", &format!("v{k}"), k)).collect();
    let out =
        index.insert_records(&[record(1, many.clone()), record(2, vec![entry(0, 0, "face", "full", 99)])]).unwrap();
    assert_eq!(out, [InsertOutcome::Inserted, InsertOutcome::Inserted]);

    let mut seen = Vec::new();
    index.for_each_pdq_since(0, |id, _, hash| seen.push((id, hash[0]))).unwrap();
    let expected: Vec<u8> = (0..70u8).chain([99]).collect();
    assert_eq!(seen.iter().map(|s| s.1).collect::<Vec<_>>(), expected);
    let ids: Vec<u64> = seen.iter().map(|s| s.0).collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "ids follow the record's order");
    let rows_used: std::collections::BTreeSet<u64> = ids.iter().map(|id| id / PDQ_SLOTS).collect();
    assert_eq!(rows_used.len(), 4, "70 hashes of one part in three rows, the other record's in a fourth");
    let rows = index.pdq_rows(&ids[..70]).unwrap();
    assert_eq!(rows.iter().map(|r| r.entry.clone()).collect::<Vec<_>>(), many);
    // An id past a row's last hash names nothing.
    assert!(index.pdq_rows(&[ids[70] + 1]).unwrap().is_empty());

    // A refresh from the last id of the first record (its third row) hands out only the second.
    let mut after = Vec::new();
    index.for_each_pdq_since(ids[69], |id, _, _| after.push(id)).unwrap();
    assert_eq!(after, [ids[70]]);
}

/// A record's hashes are grouped per part even when the metadata interleaves parts, and a
/// variant named twice for one part and pipeline is kept once (the first), as the per-hash
/// layout's unique key did.
#[test]
fn hashes_are_grouped_per_part_and_a_repeated_variant_is_kept_once() {
    let dir = tempfile::tempdir().unwrap();
    let index = Index::open(&dir.path().join("i.sqlite3")).unwrap();
    let given = vec![
        entry(0, 1, "overview", "full", 1),
        entry(1, 0, "face", "full", 2),
        entry(0, 1, "overview", "inset-5", 3),
        entry(0, 1, "overview", "full", 9),
    ];
    index.insert_records(&[record(1, given)]).unwrap();
    let mut seen = Vec::new();
    index.for_each_pdq_since(0, |id, _, hash| seen.push((id, hash[0]))).unwrap();
    assert_eq!(seen.iter().map(|s| s.1).collect::<Vec<_>>(), [1, 3, 2]);
    let rows = index.pdq_rows(&seen.iter().map(|s| s.0).collect::<Vec<_>>()).unwrap();
    assert_eq!(
        rows.iter().map(|r| r.entry.clone()).collect::<Vec<_>>(),
        [entry(0, 1, "overview", "full", 1), entry(0, 1, "overview", "inset-5", 3), entry(1, 0, "face", "full", 2)]
    );
    // Deleting the overview's group counts its hashes, not its rows.
    assert_eq!(index.delete_pdq(&rows[0].record, 0, None).unwrap(), 2);
}

/// An index written when every hash was its own `record_pdq` row has its hashes moved to rows
/// per part the first time it is opened, and nothing else changes.
#[test]
fn an_index_with_a_row_per_hash_is_moved_to_rows_per_part_when_opened() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("i.sqlite3");
    let r1 = record(1, vec![]);
    let r2 = record(2, vec![]);
    Index::open(&path).unwrap().insert_records(&[r1.clone(), r2.clone()]).unwrap();
    let old: Vec<(u64, PdqEntry)> = vec![
        (1, entry(0, 1, "overview", "full", 1)),
        (1, entry(0, 1, "overview", "inset-5", 2)),
        (1, entry(1, 0, "face", "full", 3)),
        (2, entry(0, 1, "overview", "full", 4)),
    ];
    {
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute_batch(
            "CREATE TABLE record_pdq (
                id INTEGER PRIMARY KEY AUTOINCREMENT, device BLOB NOT NULL, sequence INTEGER NOT NULL,
                group_index INTEGER NOT NULL, part_index INTEGER NOT NULL, role TEXT NOT NULL,
                pipeline TEXT NOT NULL, variant TEXT NOT NULL, hash BLOB NOT NULL, quality INTEGER NOT NULL,
                UNIQUE (device, sequence, group_index, part_index, pipeline, variant));",
        )
        .unwrap();
        for (sequence, e) in &old {
            conn.execute(
                "INSERT INTO record_pdq (device, sequence, group_index, part_index, role, pipeline, variant, hash,
                                         quality) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                rusqlite::params![
                    r1.id.device.0.as_slice(),
                    *sequence as i64,
                    e.group,
                    e.part,
                    e.role,
                    e.pipeline,
                    e.variant,
                    e.hash.as_slice(),
                    e.quality
                ],
            )
            .unwrap();
        }
    }

    let index = Index::open(&path).unwrap();
    let mut seen = Vec::new();
    index.for_each_pdq_since(0, |id, _, _| seen.push(id)).unwrap();
    let rows = index.pdq_rows(&seen).unwrap();
    let moved: Vec<(u64, PdqEntry)> = rows.iter().map(|r| (r.record.sequence, r.entry.clone())).collect();
    assert_eq!(moved, old);
    assert_eq!(index.record_count().unwrap(), 2);
    drop(index);
    let conn = rusqlite::Connection::open(&path).unwrap();
    let tables: i64 = conn
        .query_row("SELECT COUNT(*) FROM sqlite_master WHERE name IN ('record_pdq', 'record_pdq_parts')", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(tables, 1, "the old table is gone");
    // Opening again finds nothing to move.
    let index = Index::open(&path).unwrap();
    let mut again = Vec::new();
    index.for_each_pdq_since(0, |id, _, _| again.push(id)).unwrap();
    assert_eq!(again, seen);
}

/// A variant name longer than a row's length byte can say is refused with its batch, not cut.
#[test]
fn a_variant_name_over_255_bytes_refuses_the_batch() {
    let dir = tempfile::tempdir().unwrap();
    let index = Index::open(&dir.path().join("i.sqlite3")).unwrap();
    let long = "v".repeat(256);
    let result = index.insert_records(&[record(1, vec![]), record(2, vec![entry(0, 0, "face", &long, 1)])]);
    assert!(matches!(result, Err(custodia_store::index::IndexError::Invalid("pdq variant name"))), "{result:?}");
    assert_eq!(index.record_count().unwrap(), 0, "nothing of the batch is stored");
}
