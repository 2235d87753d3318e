//! A record for the index tests (`mod records;`): one device, site and lane, a time and digest
//! from its sequence number, and the blind-index rows and hashes each test gives it.

use custodia_seal::DeviceId;
use custodia_store::index::{BlindPlate, NewRecord, PdqEntry, RecordId};

pub fn record(sequence: u64, plates: Vec<BlindPlate>, pdq: Vec<PdqEntry>) -> NewRecord {
    NewRecord {
        id: RecordId { device: DeviceId([7; 16]), sequence },
        content_digest: [sequence as u8; 32],
        site: "anzalduas".into(),
        lane: "lane-2".into(),
        capture_time_ms: 1_780_000_000_000 + sequence as i64,
        blob_key: format!("b/{sequence}"),
        size: 10,
        ingested_at_ms: 0,
        groups: vec![],
        plates,
        image_roles: vec!["overview".into(), "face".into()],
        quarantine_reason: None,
        pdq,
    }
}
