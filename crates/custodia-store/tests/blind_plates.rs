//! Blind-index rows are found only under the month whose key made them, a month's rows are
//! counted and deleted as one key range, a record's rows go with it through the keys its row
//! lists, and indexes written in earlier layouts are moved at open with every row kept: the
//! layout keyed by blind value (with a second index by month), and the one that found a record's
//! rows through an index by record.

mod records;

use custodia_seal::{EpochId, RetentionClass};
use custodia_store::index::{BlindPlate, Index, MonthBlind, NewRecord, RecordGroup, RecordId, RecordQuery};

fn record(sequence: u64, plates: Vec<BlindPlate>) -> NewRecord {
    records::record(sequence, plates, vec![])
}

fn plate(month: &str, blind: u8, rank: u8) -> BlindPlate {
    BlindPlate { month: month.into(), blind: [blind; 16], rank }
}

fn month_blind(month: &str, blind: u8) -> MonthBlind {
    MonthBlind { month: month.into(), blind: [blind; 16] }
}

fn ids(found: Vec<RecordId>) -> Vec<u64> {
    found.into_iter().map(|id| id.sequence).collect()
}

#[test]
fn a_blind_value_is_found_under_its_own_month_only() {
    let dir = tempfile::tempdir().unwrap();
    let index = Index::open(&dir.path().join("i.sqlite3")).unwrap();
    index
        .insert_records(&[
            record(1, vec![plate("2026-11", 1, 0), plate("2026-11", 2, 1)]),
            record(2, vec![plate("2026-12", 1, 0)]),
            record(3, vec![plate("2026-12", 1, 0), plate("2026-12", 3, 1)]),
        ])
        .unwrap();

    assert_eq!(ids(index.records_by_blind_plate(&month_blind("2026-11", 1)).unwrap()), [1]);
    assert_eq!(ids(index.records_by_blind_plate(&month_blind("2026-12", 1)).unwrap()), [2, 3]);
    assert_eq!(ids(index.records_by_blind_plate(&month_blind("2026-12", 2)).unwrap()), Vec::<u64>::new());
    let window = |blinds| RecordQuery::Plate { blinds, from_ms: 0, to_ms: i64::MAX };
    let found = index.search_records(&window(vec![month_blind("2026-11", 2), month_blind("2026-12", 3)]), 10).unwrap();
    assert_eq!(found.iter().map(|r| r.id.sequence).collect::<Vec<_>>(), [3, 1], "newest first");

    assert_eq!(index.plate_months().unwrap(), ["2026-11", "2026-12"]);
    assert_eq!(index.month_plate_count("2026-12").unwrap(), 3);
    assert_eq!(index.delete_month_plates("2026-11").unwrap(), 2);
    assert_eq!(index.plate_months().unwrap(), ["2026-12"]);
    assert_eq!(ids(index.records_by_blind_plate(&month_blind("2026-12", 1)).unwrap()), [2, 3]);
}

/// The `record_plates` layout before the month-first one, as such an index holds it.
const EARLIER_LAYOUT: &str = "
CREATE TABLE record_plates (
    blind BLOB NOT NULL, month TEXT NOT NULL, device BLOB NOT NULL, sequence INTEGER NOT NULL,
    rank INTEGER NOT NULL, PRIMARY KEY (blind, device, sequence, rank)) WITHOUT ROWID;
CREATE INDEX record_plates_by_record ON record_plates (device, sequence);
CREATE INDEX record_plates_by_month ON record_plates (month);
";

#[test]
fn an_index_in_the_earlier_layout_is_rebuilt_month_first_with_every_row() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("i.sqlite3");
    {
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute_batch(EARLIER_LAYOUT).unwrap();
        let mut insert = conn
            .prepare("INSERT INTO record_plates (blind, month, device, sequence, rank) VALUES (?1, ?2, ?3, ?4, ?5)")
            .unwrap();
        for (blind, month, sequence, rank) in [(1u8, "2026-10", 1i64, 0u8), (2, "2026-10", 1, 1), (1, "2026-11", 2, 0)]
        {
            insert
                .execute(rusqlite::params![[blind; 16].as_slice(), month, [7u8; 16].as_slice(), sequence, rank])
                .unwrap();
        }
    }

    let index = Index::open(&path).unwrap();
    assert_eq!(ids(index.records_by_blind_plate(&month_blind("2026-10", 1)).unwrap()), [1]);
    assert_eq!(ids(index.records_by_blind_plate(&month_blind("2026-10", 2)).unwrap()), [1]);
    assert_eq!(ids(index.records_by_blind_plate(&month_blind("2026-11", 1)).unwrap()), [2]);
    assert_eq!(index.month_plate_count("2026-10").unwrap(), 2);
    drop(index);

    let conn = rusqlite::Connection::open(&path).unwrap();
    let table: String = conn
        .query_row("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'record_plates'", [], |r| r.get(0))
        .unwrap();
    assert!(table.contains("PRIMARY KEY (month, blind, device, sequence, rank)"), "{table}");
    let indexes: Vec<String> = conn
        .prepare(
            "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'record_plates' AND sql IS NOT NULL",
        )
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert!(indexes.is_empty(), "{indexes:?}");
    let rows: i64 = conn.query_row("SELECT COUNT(*) FROM record_plates", [], |r| r.get(0)).unwrap();
    assert_eq!(rows, 3);
    drop(conn);

    // Opening again finds the new layout and leaves it alone.
    let index = Index::open(&path).unwrap();
    assert_eq!(index.month_plate_count("2026-10").unwrap(), 2);
}

/// A record under key epoch `epoch` (one plate group) with these blind-index rows.
fn record_in_epoch(sequence: u64, epoch: u8, plates: Vec<BlindPlate>) -> NewRecord {
    let group = RecordGroup { index: 0, class: RetentionClass::Plate, epoch: EpochId([epoch; 16]) };
    NewRecord { groups: vec![group], ..record(sequence, plates) }
}

/// Two records share blind value 1; shredding the first one's epoch deletes its two rows and
/// leaves the second's.
fn assert_retention_deletes_a_records_rows_only(index: &Index) {
    assert_eq!(index.month_plate_count("2026-10").unwrap(), 3);
    let purged = index.purge_epoch_batch(&EpochId([1; 16]), 100).unwrap();
    assert_eq!(purged.records, 1);
    assert_eq!(index.month_plate_count("2026-10").unwrap(), 1);
    assert_eq!(ids(index.records_by_blind_plate(&month_blind("2026-10", 1)).unwrap()), [2]);
    assert_eq!(ids(index.records_by_blind_plate(&month_blind("2026-10", 2)).unwrap()), Vec::<u64>::new());
}

fn two_records_sharing_a_blind_value() -> [NewRecord; 2] {
    [
        record_in_epoch(1, 1, vec![plate("2026-10", 1, 0), plate("2026-10", 2, 1)]),
        record_in_epoch(2, 2, vec![plate("2026-10", 1, 0)]),
    ]
}

#[test]
fn retention_deletes_a_records_blind_rows_with_it_and_no_others() {
    let dir = tempfile::tempdir().unwrap();
    let index = Index::open(&dir.path().join("i.sqlite3")).unwrap();
    index.insert_records(&two_records_sharing_a_blind_value()).unwrap();
    assert_retention_deletes_a_records_rows_only(&index);
}

#[test]
fn an_index_that_found_a_records_rows_by_an_index_by_record_gets_their_keys_at_open() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("i.sqlite3");
    Index::open(&path).unwrap().insert_records(&two_records_sharing_a_blind_value()).unwrap();
    // The layout before `records.plate_keys`: no such column, and an index by record.
    rusqlite::Connection::open(&path)
        .unwrap()
        .execute_batch(
            "ALTER TABLE records DROP COLUMN plate_keys;
             CREATE INDEX record_plates_by_record ON record_plates (device, sequence);",
        )
        .unwrap();

    let index = Index::open(&path).unwrap();
    let conn = rusqlite::Connection::open(&path).unwrap();
    let indexes: i64 = conn
        .query_row("SELECT COUNT(*) FROM sqlite_master WHERE name = 'record_plates_by_record'", [], |r| r.get(0))
        .unwrap();
    assert_eq!(indexes, 0);
    let keys: Vec<Vec<u8>> = conn
        .prepare("SELECT plate_keys FROM records ORDER BY sequence")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    // Rank, month length, month, blind value: two entries, then one.
    assert_eq!(keys.iter().map(Vec::len).collect::<Vec<_>>(), [2 * 25, 25]);
    assert_retention_deletes_a_records_rows_only(&index);
    drop(index);

    // Opening again finds the new layout and leaves it alone.
    assert_eq!(Index::open(&path).unwrap().month_plate_count("2026-10").unwrap(), 1);
}

#[test]
fn a_records_plate_keys_that_do_not_parse_fail_its_retention_and_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("i.sqlite3");
    let index = Index::open(&path).unwrap();
    index.insert_records(&two_records_sharing_a_blind_value()).unwrap();
    // A month length that runs past the end of the column.
    rusqlite::Connection::open(&path)
        .unwrap()
        .execute("UPDATE records SET plate_keys = x'0007323032362d' WHERE sequence = 1", [])
        .unwrap();
    let error = index.purge_epoch_batch(&EpochId([1; 16]), 100).unwrap_err();
    assert!(error.to_string().contains("record plate keys"), "{error}");
    assert_eq!(index.month_plate_count("2026-10").unwrap(), 3);
    assert_eq!(
        index
            .record_groups(&RecordId { device: records::record(1, vec![], vec![]).id.device, sequence: 1 })
            .unwrap()
            .len(),
        1
    );
}

#[test]
fn a_months_blind_values_leave_the_records_that_outlive_its_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("i.sqlite3");
    let index = Index::open(&path).unwrap();
    index
        .insert_records(&[
            record_in_epoch(1, 1, vec![plate("2026-10", 1, 0), plate("2026-11", 2, 0)]),
            record_in_epoch(2, 1, vec![plate("2026-10", 3, 0)]),
        ])
        .unwrap();
    let plate_keys = || -> Vec<i64> {
        rusqlite::Connection::open(&path)
            .unwrap()
            .prepare("SELECT length(plate_keys) FROM records ORDER BY sequence")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    };
    assert_eq!(plate_keys(), [50, 25]);

    // October's key goes while both records are held: its values leave their rows too.
    assert_eq!(index.delete_month_plates("2026-10").unwrap(), 2);
    assert_eq!(plate_keys(), [25, 0]);
    assert_eq!(index.plate_months().unwrap(), ["2026-11"]);

    // The records' own retention later deletes what is left.
    assert_eq!(index.purge_epoch_batch(&EpochId([1; 16]), 100).unwrap().records, 2);
    assert!(index.plate_months().unwrap().is_empty());
}
