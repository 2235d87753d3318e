//! The batched reads of the ingest path agree with the single-row lookups they replace:
//! `Index::capture_context` (one read transaction for a capture's device, stored record and
//! epochs) and `Index::stored_records` (the committer's existence check for a batch).

use custodia_seal::{DeviceId, EpochId, RetentionClass};
use custodia_store::index::{DeviceRow, DeviceStatus, EpochRow, Index, NewRecord, RecordId};

fn device(id: u8) -> DeviceRow {
    DeviceRow {
        id: DeviceId([id; 16]),
        site: "anzalduas".into(),
        lane: format!("lane-{id}"),
        public_key: [id; 32],
        status: DeviceStatus::Active,
        enrolled_at_ms: 1,
        revoked_at_ms: None,
    }
}

fn epoch(id: u8, class: RetentionClass) -> EpochRow {
    EpochRow {
        id: EpochId([id; 16]),
        site: "anzalduas".into(),
        class,
        not_before_ms: 1_000 * id as i64,
        not_after_ms: 1_000 * id as i64 + 1_000,
        public_key: vec![4; 65],
        key_name: format!("epoch/{id}"),
        destroyed_at_ms: None,
    }
}

fn record(device: u8, sequence: u64) -> NewRecord {
    NewRecord {
        id: RecordId { device: DeviceId([device; 16]), sequence },
        content_digest: [sequence as u8; 32],
        site: "anzalduas".into(),
        lane: format!("lane-{device}"),
        capture_time_ms: 5_000,
        blob_key: format!("b/{device}/{sequence}"),
        size: 10,
        ingested_at_ms: 0,
        groups: vec![],
        plates: vec![],
        image_roles: vec![],
        quarantine_reason: None,
        pdq: vec![],
    }
}

#[test]
fn capture_context_reads_what_the_single_lookups_read() {
    let dir = tempfile::tempdir().unwrap();
    let index = Index::open(&dir.path().join("i.sqlite3")).unwrap();
    index.insert_device(&device(1)).unwrap();
    index.insert_epoch(&epoch(5, RetentionClass::Plate)).unwrap();
    index.insert_epoch(&epoch(6, RetentionClass::Face)).unwrap();
    index.insert_records(&[record(1, 7)]).unwrap();

    let stored = RecordId { device: DeviceId([1; 16]), sequence: 7 };
    let epochs = [EpochId([6; 16]), EpochId([9; 16]), EpochId([5; 16])];
    let context = index.capture_context(&DeviceId([1; 16]), &stored, &epochs).unwrap();
    assert_eq!(context.device, index.device(&DeviceId([1; 16])).unwrap());
    assert_eq!(context.device.as_ref().map(|d| d.lane.as_str()), Some("lane-1"));
    assert_eq!(context.record, index.record(&stored).unwrap());
    assert_eq!(context.record.as_ref().map(|r| r.blob_key.as_str()), Some("b/1/7"));
    assert_eq!(context.epochs, epochs.iter().map(|e| index.epoch(e).unwrap()).collect::<Vec<_>>());
    assert_eq!(context.epochs.iter().map(Option::is_some).collect::<Vec<_>>(), [true, false, true]);

    // Nothing there: every part is None, and a later write is seen by the next read.
    let missing = RecordId { device: DeviceId([2; 16]), sequence: 1 };
    let context = index.capture_context(&DeviceId([2; 16]), &missing, &[]).unwrap();
    assert!(context.device.is_none() && context.record.is_none() && context.epochs.is_empty());
    index.insert_device(&device(2)).unwrap();
    index.insert_records(&[record(2, 1)]).unwrap();
    let context = index.capture_context(&DeviceId([2; 16]), &missing, &[]).unwrap();
    assert!(context.device.is_some() && context.record.is_some());
}

#[test]
fn stored_records_says_which_of_a_batch_exist() {
    let dir = tempfile::tempdir().unwrap();
    let index = Index::open(&dir.path().join("i.sqlite3")).unwrap();
    index.insert_records(&[record(1, 1), record(1, 3), record(2, 1)]).unwrap();
    let ids: Vec<RecordId> = [(1, 1), (1, 2), (1, 3), (2, 1), (2, 2), (1, 1)]
        .into_iter()
        .map(|(d, s)| RecordId { device: DeviceId([d; 16]), sequence: s })
        .collect();
    assert_eq!(index.stored_records(&ids).unwrap(), [true, false, true, true, false, true]);
    assert!(index.stored_records(&[]).unwrap().is_empty());
}
