//! The vault's index in SQLite (bundled): devices, key epochs and capture records.
//!
//! Nothing in it is plaintext personal data: plates appear only as keyed blind-index values
//! (HMAC under a per-month key held by the keystore), and images are not here at all. Times,
//! sites, lanes and device ids are not secret.
//!
//! Durability: WAL journal with `synchronous = FULL`, so a committed transaction survives power
//! loss. The vault commits many records per transaction (one fsync per batch).
//!
//! What it is not: a search engine or a policy engine. It answers exact look-ups and inserts
//! batches; deciding who may see a row is the policy crate's job.

use std::fmt;
use std::path::Path;
use std::str::FromStr;
use std::sync::Mutex;

use custodia_seal::{DeviceId, EpochId, RetentionClass};
use rusqlite::{Connection, OptionalExtension, params};

/// The `records` columns `record_from_row` reads, in its order, for a query over `records r`:
/// one list for the lookup by id and every search (a macro so that `concat!` can build constant
/// queries, and defined before `mod search` so that module sees it).
macro_rules! record_columns {
    () => {
        "r.device, r.sequence, r.content_digest, r.site, r.lane, r.capture_time_ms, r.blob_key, \
         r.size, r.ingested_at_ms, r.quarantine_reason, r.image_roles"
    };
}

mod search;
pub use search::{DeviceHealth, MAX_SEARCH_RESULTS, RecordQuery};

/// A record's identity: the device that captured it and that device's sequence number.
/// Ingest is idempotent on it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RecordId {
    /// The capturing device.
    pub device: DeviceId,
    /// The device's sequence number for this capture.
    pub sequence: u64,
}

impl fmt::Display for RecordId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.device, self.sequence)
    }
}

impl FromStr for RecordId {
    type Err = IndexError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (device, sequence) = s.split_once('-').ok_or(IndexError::BadRecordId)?;
        Ok(Self {
            device: device.parse().map_err(|_| IndexError::BadRecordId)?,
            sequence: sequence.parse().map_err(|_| IndexError::BadRecordId)?,
        })
    }
}

/// Whether a device may submit captures.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeviceStatus {
    /// Enrolled and in service.
    Active,
    /// Revoked: its captures are refused.
    Revoked,
}

/// An enrolled lane device.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceRow {
    /// Its id (random at enrolment).
    pub id: DeviceId,
    /// The site it is installed at.
    pub site: String,
    /// Its lane at that site.
    pub lane: String,
    /// Its Ed25519 public key.
    pub public_key: [u8; 32],
    /// Active or revoked.
    pub status: DeviceStatus,
    /// When it was enrolled (unix ms).
    pub enrolled_at_ms: i64,
    /// When it was revoked, if it was.
    pub revoked_at_ms: Option<i64>,
}

/// A key epoch: one P-256 key pair per (site, retention class, period).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EpochRow {
    /// Its id, derived from the fields below.
    pub id: EpochId,
    /// The site whose captures it seals.
    pub site: String,
    /// The retention class of what it seals.
    pub class: RetentionClass,
    /// Start of the period it covers (unix ms, inclusive).
    pub not_before_ms: i64,
    /// End of the period (unix ms, exclusive).
    pub not_after_ms: i64,
    /// Public key, SEC1 uncompressed.
    pub public_key: Vec<u8>,
    /// Where the private key lives in the keystore.
    pub key_name: String,
    /// When the private key was destroyed, if it was.
    pub destroyed_at_ms: Option<i64>,
}

/// One group of a stored capture: which epoch its data key is sealed to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordGroup {
    /// The group's position in the capture.
    pub index: u8,
    /// Its retention class.
    pub class: RetentionClass,
    /// Its key epoch.
    pub epoch: EpochId,
}

/// A blind-index entry for a plate read: HMAC of the normalised plate under a monthly key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlindPlate {
    /// The month whose key made it, `YYYY-MM`.
    pub month: String,
    /// The first 16 bytes of the HMAC.
    pub blind: [u8; 16],
    /// 0 for the engine's best read, 1.. for its candidates in order.
    pub rank: u8,
}

/// A record to insert.
#[derive(Clone, Debug, PartialEq)]
pub struct NewRecord {
    /// Device and sequence.
    pub id: RecordId,
    /// SHA-256 of the sealed capture as received.
    pub content_digest: [u8; 32],
    /// Site, from the signed header.
    pub site: String,
    /// Lane, from the signed header.
    pub lane: String,
    /// Capture time (unix ms), from the signed header.
    pub capture_time_ms: i64,
    /// Where the sealed blob is stored.
    pub blob_key: String,
    /// The blob's size in bytes.
    pub size: u64,
    /// When the vault accepted it.
    pub ingested_at_ms: i64,
    /// Its groups and their epochs.
    pub groups: Vec<RecordGroup>,
    /// Blind-index entries for its plate read, if it has one.
    pub plates: Vec<BlindPlate>,
    /// Image parts it holds, by role, e.g. `["overview", "plate-crop", "face"]`.
    pub image_roles: Vec<String>,
    /// Set when the lane sealed an input it could not process; says why.
    pub quarantine_reason: Option<String>,
    /// Perceptual hashes of its image parts, from its metadata part.
    pub pdq: Vec<PdqEntry>,
}

/// One perceptual hash of one image part, as the lane computed it before sealing.
///
/// Not personal data by itself, but a face part's hashes describe a face: they are stored
/// per part (record, group, part, role) so that retention deletes them with the part they
/// describe in one `DELETE` ([`Index::delete_pdq`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PdqEntry {
    /// Group of the image part.
    pub group: u8,
    /// Part within the group.
    pub part: u8,
    /// The part's role (`overview`, `plate-crop`, `vehicle-crop`, `face`).
    pub role: String,
    /// Pipeline name, e.g. `pdq-fast-v1`.
    pub pipeline: String,
    /// `full` or a standard crop's name.
    pub variant: String,
    /// The 256-bit hash.
    pub hash: [u8; 32],
    /// Quality 0..=100.
    pub quality: u8,
}

/// A stored perceptual hash with the record facts a leak report needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PdqHitRow {
    /// The hash's id: its row's id × [`PDQ_SLOTS`] + its slot in the row (what an in-memory
    /// index stores).
    pub pdq_id: u64,
    /// The record.
    pub record: RecordId,
    /// The hash as stored.
    pub entry: PdqEntry,
    /// Site of the record.
    pub site: String,
    /// Lane of the record.
    pub lane: String,
    /// Capture time of the record (unix ms).
    pub capture_time_ms: i64,
}

/// A stored record as the index knows it.
#[derive(Clone, Debug, PartialEq)]
pub struct RecordRow {
    /// Device and sequence.
    pub id: RecordId,
    /// SHA-256 of the sealed capture.
    pub content_digest: [u8; 32],
    /// Site.
    pub site: String,
    /// Lane.
    pub lane: String,
    /// Capture time (unix ms).
    pub capture_time_ms: i64,
    /// Blob key.
    pub blob_key: String,
    /// Blob size.
    pub size: u64,
    /// When it was accepted.
    pub ingested_at_ms: i64,
    /// Set for quarantined inputs.
    pub quarantine_reason: Option<String>,
    /// The image roles it holds (`plate-crop`, `overview`, `face`), as ingested.
    pub image_roles: Vec<String>,
}

/// What happened to one record of a batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InsertOutcome {
    /// Newly stored.
    Inserted,
    /// Already stored with the same content digest: a retried upload.
    Duplicate,
    /// Already stored with *different* content: a replayed sequence number or a forked device.
    Conflict,
}

/// Index failures.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IndexError {
    /// SQLite failed.
    #[error("index database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// A stored value could not be read back as its type: the database was edited or is damaged.
    #[error("index holds an invalid value in {0}")]
    Invalid(&'static str),
    /// A record id was not `<device hex>-<sequence>`.
    #[error("a record id is `<device id>-<sequence>`")]
    BadRecordId,
    /// A device with this id is already enrolled.
    #[error("device {0} is already enrolled")]
    DeviceExists(String),
}

/// The month-first layout of `record_plates` after its name: one text for the schema and for the
/// migration to it (a macro so that `concat!` can build both).
macro_rules! record_plates_layout {
    () => {
        "(blind BLOB NOT NULL, month TEXT NOT NULL, device BLOB NOT NULL, sequence INTEGER NOT NULL,
    rank INTEGER NOT NULL, PRIMARY KEY (month, blind, device, sequence, rank)) WITHOUT ROWID"
    };
}

const SCHEMA: &str = concat!(
    "
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS devices (
    id BLOB PRIMARY KEY, site TEXT NOT NULL, lane TEXT NOT NULL, public_key BLOB NOT NULL,
    status TEXT NOT NULL, enrolled_at_ms INTEGER NOT NULL, revoked_at_ms INTEGER);
CREATE TABLE IF NOT EXISTS epochs (
    id BLOB PRIMARY KEY, site TEXT NOT NULL, class TEXT NOT NULL,
    not_before_ms INTEGER NOT NULL, not_after_ms INTEGER NOT NULL,
    public_key BLOB NOT NULL, key_name TEXT NOT NULL UNIQUE, destroyed_at_ms INTEGER);
CREATE INDEX IF NOT EXISTS epochs_by_period ON epochs (site, class, not_before_ms);
CREATE TABLE IF NOT EXISTS records (
    device BLOB NOT NULL, sequence INTEGER NOT NULL, content_digest BLOB NOT NULL,
    site TEXT NOT NULL, lane TEXT NOT NULL, capture_time_ms INTEGER NOT NULL,
    blob_key TEXT NOT NULL, size INTEGER NOT NULL, ingested_at_ms INTEGER NOT NULL,
    image_roles TEXT NOT NULL, quarantine_reason TEXT, plate_keys BLOB NOT NULL DEFAULT x'',
    PRIMARY KEY (device, sequence)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS records_by_time ON records (site, lane, capture_time_ms);
CREATE TABLE IF NOT EXISTS record_groups (
    device BLOB NOT NULL, sequence INTEGER NOT NULL, group_index INTEGER NOT NULL,
    class TEXT NOT NULL, epoch BLOB NOT NULL,
    PRIMARY KEY (device, sequence, group_index)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS record_groups_by_epoch ON record_groups (epoch);
-- Blind-index rows, keyed by month first: a blind value means something only under its month's
-- key, so every search names the month, and retention deletes a month as one key range. An
-- insert then touches one random page (its blind value's place) instead of two.
CREATE TABLE IF NOT EXISTS record_plates ",
    record_plates_layout!(),
    ";
-- Perceptual hashes, one row per image part and pipeline (see `PDQ_SLOTS`): `variants` is each
-- hash's variant name (a length byte, then the name), `hashes` 32 bytes and `qualities` one byte
-- per hash, in slot order. AUTOINCREMENT: hash ids are held by in-memory indexes, so a deleted
-- row's id is never reused.
CREATE TABLE IF NOT EXISTS record_pdq_parts (
    id INTEGER PRIMARY KEY AUTOINCREMENT, device BLOB NOT NULL, sequence INTEGER NOT NULL,
    group_index INTEGER NOT NULL, part_index INTEGER NOT NULL, role TEXT NOT NULL,
    pipeline TEXT NOT NULL, variants BLOB NOT NULL, hashes BLOB NOT NULL, qualities BLOB NOT NULL);
-- Retention deletes a group's hashes, or a record's.
CREATE INDEX IF NOT EXISTS record_pdq_parts_by_record ON record_pdq_parts (device, sequence, group_index);
-- Retention (crypto-shredding). A group's data key re-wrapped to a longer-lived extension epoch
-- (legal hold, hand-off); the blob itself is never modified.
CREATE TABLE IF NOT EXISTS record_reseals (
    device BLOB NOT NULL, sequence INTEGER NOT NULL, group_index INTEGER NOT NULL,
    epoch BLOB NOT NULL, wrapped BLOB NOT NULL, resealed_at_ms INTEGER NOT NULL,
    PRIMARY KEY (device, sequence, group_index, epoch)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS record_reseals_by_epoch ON record_reseals (epoch);
-- Blobs of records whose rows retention has deleted, until the blob store confirms the delete.
CREATE TABLE IF NOT EXISTS retention_purge (
    device BLOB NOT NULL, sequence INTEGER NOT NULL, blob_key TEXT NOT NULL,
    PRIMARY KEY (device, sequence)) WITHOUT ROWID;
-- Retention deletes a record's blind-index rows with it, by their primary keys, which the
-- record's `plate_keys` lists (see `pack_plate_keys`); a month's rows go as one key range.
"
);

/// The `CREATE TABLE` text of table `name`, or `None` if the index has no such table: how the
/// migrations at open tell an earlier layout.
fn table_sql(conn: &Connection, name: &str) -> Result<Option<String>, IndexError> {
    Ok(conn
        .query_row("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = ?1", [name], |r| r.get(0))
        .optional()?)
}

/// Before the month-first layout, `record_plates` was keyed by blind value and had a second index
/// by month, so every blind-index row was two random-page inserts. An index created then is
/// rebuilt in the new layout once, in one transaction, the first time this version opens it. It
/// runs before [`SCHEMA`], which then creates the table of a new index.
fn migrate_plates_to_month_first(conn: &Connection) -> Result<(), IndexError> {
    match table_sql(conn, "record_plates")? {
        Some(sql) if !sql.contains(record_plates_layout!()) => {}
        _ => return Ok(()),
    }
    conn.execute_batch(concat!(
        "BEGIN IMMEDIATE;
         CREATE TABLE record_plates_month_first ",
        record_plates_layout!(),
        ";
         INSERT INTO record_plates_month_first (blind, month, device, sequence, rank)
             SELECT blind, month, device, sequence, rank FROM record_plates;
         DROP TABLE record_plates;
         ALTER TABLE record_plates_month_first RENAME TO record_plates;
         COMMIT;"
    ))?;
    Ok(())
}

/// A blind-index value and the month whose key made it: a search's unit (the same plate has a
/// different blind value every month).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MonthBlind {
    /// `YYYY-MM`.
    pub month: String,
    /// HMAC of the normalised plate under that month's key, truncated.
    pub blind: [u8; 16],
}

/// The rows [`Index::capture_context`] reads: `None` where there is none.
#[derive(Debug, Clone)]
pub struct CaptureContext {
    /// The enrolled device.
    pub device: Option<DeviceRow>,
    /// A record already stored under the capture's id.
    pub record: Option<RecordRow>,
    /// Each named epoch, in the order asked.
    pub epochs: Vec<Option<EpochRow>>,
}

/// The SQLite index. One writer connection and one reader connection (WAL lets reads proceed
/// while a batch commits).
pub struct Index {
    writer: Mutex<Connection>,
    reader: Mutex<Connection>,
}

impl Index {
    /// Opens (creating if needed) the index database at `path`.
    pub fn open(path: &Path) -> Result<Self, IndexError> {
        let writer = Connection::open(path)?;
        writer.pragma_update(None, "journal_mode", "WAL")?;
        writer.pragma_update(None, "synchronous", "FULL")?;
        writer.pragma_update(None, "foreign_keys", "ON")?;
        writer.busy_timeout(std::time::Duration::from_secs(10))?;
        migrate_plates_to_month_first(&writer)?;
        writer.execute_batch(SCHEMA)?;
        migrate_pdq_to_parts(&writer)?;
        migrate_plate_keys_to_records(&writer)?;
        let reader = Connection::open(path)?;
        reader.busy_timeout(std::time::Duration::from_secs(10))?;
        // Room for every statement the reader repeats (see `read_optional`), so none is evicted.
        reader.set_prepared_statement_cache_capacity(64);
        Ok(Self { writer: Mutex::new(writer), reader: Mutex::new(reader) })
    }

    fn write(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.writer.lock().expect("index writer lock poisoned")
    }

    fn read(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.reader.lock().expect("index reader lock poisoned")
    }

    /// At most one row, through the reader's statement cache. Ingest runs these lookups several
    /// times per capture, thousands of times a second; parsing their SQL each time cost about 5 %
    /// of the vault's CPU.
    fn read_optional<T, P: rusqlite::Params>(
        &self,
        sql: &str,
        params: P,
        from_row: impl FnOnce(&rusqlite::Row<'_>) -> rusqlite::Result<Result<T, IndexError>>,
    ) -> Result<Option<T>, IndexError> {
        optional_row(&self.read(), sql, params, from_row)
    }

    /// What ingest checks a capture against (its device, a record already stored under its id,
    /// the epochs its groups name), read in one read transaction. Separate lookups each take and
    /// release the database's shared-memory read lock, and with every committed batch the reader's
    /// page cache starts cold; together those were most of ingest's SQLite time.
    pub fn capture_context(
        &self,
        device: &DeviceId,
        record: &RecordId,
        epochs: &[EpochId],
    ) -> Result<CaptureContext, IndexError> {
        let conn = self.read();
        let snapshot = conn.unchecked_transaction()?;
        let device = optional_row(&snapshot, DEVICE_BY_ID, [device.0.as_slice()], device_from_row)?;
        let record = optional_row(
            &snapshot,
            RECORD_BY_ID,
            params![record.device.0.as_slice(), sequence_to_sql(record.sequence)],
            record_from_row,
        )?;
        let epochs = epochs
            .iter()
            .map(|id| optional_row(&snapshot, EPOCH_BY_ID, [id.0.as_slice()], epoch_from_row))
            .collect::<Result<_, _>>()?;
        snapshot.commit()?;
        Ok(CaptureContext { device, record, epochs })
    }

    /// Which of `ids` have a stored record, read on the writer's connection in one transaction:
    /// the committer asks this of each batch just before inserting it, and the writer's page
    /// cache, unlike the reader's, is not emptied by the commit before.
    pub fn stored_records(&self, ids: &[RecordId]) -> Result<Vec<bool>, IndexError> {
        let conn = self.write();
        let snapshot = conn.unchecked_transaction()?;
        let mut exists = snapshot.prepare_cached(RECORD_DIGEST_BY_ID)?;
        let stored = ids
            .iter()
            .map(|id| exists.exists(params![id.device.0.as_slice(), sequence_to_sql(id.sequence)]))
            .collect::<Result<_, _>>()?;
        drop(exists);
        snapshot.commit()?;
        Ok(stored)
    }

    /// Enrols a device.
    pub fn insert_device(&self, device: &DeviceRow) -> Result<(), IndexError> {
        let result = self.write().execute(
            "INSERT INTO devices (id, site, lane, public_key, status, enrolled_at_ms, revoked_at_ms)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![
                device.id.0.as_slice(),
                device.site,
                device.lane,
                device.public_key.as_slice(),
                status_str(device.status),
                device.enrolled_at_ms,
                device.revoked_at_ms
            ],
        );
        match result {
            Ok(_) => Ok(()),
            Err(rusqlite::Error::SqliteFailure(e, _)) if e.code == rusqlite::ErrorCode::ConstraintViolation => {
                Err(IndexError::DeviceExists(device.id.to_string()))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Looks a device up.
    pub fn device(&self, id: &DeviceId) -> Result<Option<DeviceRow>, IndexError> {
        self.read_optional(DEVICE_BY_ID, [id.0.as_slice()], device_from_row)
    }

    /// All devices, by site, lane and id.
    pub fn devices(&self) -> Result<Vec<DeviceRow>, IndexError> {
        let conn = self.read();
        let mut statement = conn.prepare(
            "SELECT id, site, lane, public_key, status, enrolled_at_ms, revoked_at_ms
             FROM devices ORDER BY site, lane, id",
        )?;
        let rows = statement.query_map([], device_from_row)?;
        rows.map(|row| row?).collect()
    }

    /// Marks a device revoked. Returns false if no such device exists.
    pub fn revoke_device(&self, id: &DeviceId, now_ms: i64) -> Result<bool, IndexError> {
        let changed = self.write().execute(
            "UPDATE devices SET status = 'revoked', revoked_at_ms = COALESCE(revoked_at_ms, ?2)
             WHERE id = ?1",
            params![id.0.as_slice(), now_ms],
        )?;
        Ok(changed == 1)
    }

    /// Records a new epoch.
    pub fn insert_epoch(&self, epoch: &EpochRow) -> Result<(), IndexError> {
        self.write().execute(
            "INSERT INTO epochs (id, site, class, not_before_ms, not_after_ms, public_key, key_name,
                                 destroyed_at_ms)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            params![
                epoch.id.0.as_slice(),
                epoch.site,
                epoch.class.as_str(),
                epoch.not_before_ms,
                epoch.not_after_ms,
                epoch.public_key,
                epoch.key_name,
                epoch.destroyed_at_ms
            ],
        )?;
        Ok(())
    }

    /// Looks an epoch up by id.
    pub fn epoch(&self, id: &EpochId) -> Result<Option<EpochRow>, IndexError> {
        self.read_optional(EPOCH_BY_ID, [id.0.as_slice()], epoch_from_row)
    }

    /// Whether an epoch exists for this site and class starting at `not_before_ms` (extension
    /// epochs are not a period's epoch and are never returned).
    pub fn epoch_at(
        &self,
        site: &str,
        class: RetentionClass,
        not_before_ms: i64,
    ) -> Result<Option<EpochRow>, IndexError> {
        self.read_optional(
            &format!(
                "SELECT {EPOCH_COLUMNS} FROM epochs
                 WHERE site = ?1 AND class = ?2 AND not_before_ms = ?3
                   AND key_name NOT LIKE '{EXTENSION_PREFIX}%'"
            ),
            params![site, class.as_str(), not_before_ms],
            epoch_from_row,
        )
    }

    /// Epochs whose keys are not destroyed and whose period ends after `after_ms`, in period
    /// order: what lanes may still seal to. Extension epochs (key names under
    /// [`EXTENSION_PREFIX`]) hold re-sealed data keys only and are never listed.
    pub fn live_epochs(&self, after_ms: i64) -> Result<Vec<EpochRow>, IndexError> {
        let conn = self.read();
        let mut statement = conn.prepare(&format!(
            "SELECT {EPOCH_COLUMNS} FROM epochs
             WHERE destroyed_at_ms IS NULL AND not_after_ms > ?1
               AND key_name NOT LIKE '{EXTENSION_PREFIX}%'
             ORDER BY site, class, not_before_ms"
        ))?;
        let rows = statement.query_map([after_ms], epoch_from_row)?;
        rows.map(|row| row?).collect()
    }

    /// The stored record with this id, if any.
    pub fn record(&self, id: &RecordId) -> Result<Option<RecordRow>, IndexError> {
        self.read_optional(RECORD_BY_ID, params![id.device.0.as_slice(), sequence_to_sql(id.sequence)], record_from_row)
    }

    /// How many records are stored.
    pub fn record_count(&self) -> Result<u64, IndexError> {
        let count: i64 = self.read().query_row("SELECT COUNT(*) FROM records", [], |r| r.get(0))?;
        Ok(count as u64)
    }

    /// Records whose plate read (best or candidate) has this blind-index value under `month`'s
    /// key.
    pub fn records_by_blind_plate(&self, blind: &MonthBlind) -> Result<Vec<RecordId>, IndexError> {
        let conn = self.read();
        let mut statement = conn.prepare(
            "SELECT DISTINCT device, sequence FROM record_plates WHERE month = ?1 AND blind = ?2
             ORDER BY device, sequence",
        )?;
        let rows = statement.query_map(params![blind.month, blind.blind.as_slice()], |row| {
            let device: Vec<u8> = row.get(0)?;
            let sequence: i64 = row.get(1)?;
            Ok((device, sequence))
        })?;
        rows.map(|row| {
            let (device, sequence) = row?;
            Ok(RecordId { device: device_id_from(&device)?, sequence: sequence as u64 })
        })
        .collect()
    }

    /// Inserts a batch of records in one transaction (one fsync), deciding for each whether it is
    /// new, a retry of a stored record, or a conflicting reuse of its sequence number. Records
    /// earlier in the batch count as stored for later ones.
    pub fn insert_records(&self, batch: &[NewRecord]) -> Result<Vec<InsertOutcome>, IndexError> {
        let mut conn = self.write();
        let tx = conn.transaction()?;
        let mut outcomes = Vec::with_capacity(batch.len());
        {
            let mut existing = tx.prepare_cached(RECORD_DIGEST_BY_ID)?;
            let mut insert = tx.prepare_cached(
                "INSERT INTO records (device, sequence, content_digest, site, lane, capture_time_ms,
                                      blob_key, size, ingested_at_ms, image_roles, quarantine_reason, plate_keys)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
            )?;
            let mut insert_group = tx.prepare_cached(
                "INSERT INTO record_groups (device, sequence, group_index, class, epoch)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
            )?;
            let mut insert_plate = tx.prepare_cached(
                "INSERT OR IGNORE INTO record_plates (blind, month, device, sequence, rank)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
            )?;
            for record in batch {
                let device = record.id.device.0.as_slice();
                let sequence = sequence_to_sql(record.id.sequence);
                let stored: Option<Vec<u8>> = existing.query_row(params![device, sequence], |r| r.get(0)).optional()?;
                if let Some(stored) = stored {
                    outcomes.push(if stored == record.content_digest {
                        InsertOutcome::Duplicate
                    } else {
                        InsertOutcome::Conflict
                    });
                    continue;
                }
                insert.execute(params![
                    device,
                    sequence,
                    record.content_digest.as_slice(),
                    record.site,
                    record.lane,
                    record.capture_time_ms,
                    record.blob_key,
                    record.size as i64,
                    record.ingested_at_ms,
                    record.image_roles.join(","),
                    record.quarantine_reason,
                    pack_plate_keys(&record.plates)?
                ])?;
                for group in &record.groups {
                    insert_group.execute(params![
                        device,
                        sequence,
                        group.index,
                        group.class.as_str(),
                        group.epoch.0.as_slice()
                    ])?;
                }
                for plate in &record.plates {
                    insert_plate.execute(params![plate.blind.as_slice(), plate.month, device, sequence, plate.rank])?;
                }
                insert_pdq_parts(&tx, device, sequence, &record.pdq)?;
                outcomes.push(InsertOutcome::Inserted);
            }
        }
        tx.commit()?;
        Ok(outcomes)
    }

    /// Every record's id and blob key, in id order (for consistency checks between the index and
    /// the blob store).
    pub fn record_blob_keys(&self) -> Result<Vec<(RecordId, String)>, IndexError> {
        let conn = self.read();
        let mut statement = conn.prepare("SELECT device, sequence, blob_key FROM records ORDER BY device, sequence")?;
        let rows = statement
            .query_map([], |row| Ok((row.get::<_, Vec<u8>>(0)?, row.get::<_, i64>(1)?, row.get::<_, String>(2)?)))?;
        rows.map(|row| {
            let (device, sequence, key) = row?;
            Ok((RecordId { device: device_id_from(&device)?, sequence: sequence as u64 }, key))
        })
        .collect()
    }
}

impl Index {
    /// Calls `each(id, pipeline, hash)` for every stored perceptual hash with id > `after_id`,
    /// in id order, and returns the largest id seen (or `after_id`). An in-memory index loads
    /// everything with `after_id = 0` at open and then only what each batch added.
    pub fn for_each_pdq_since(
        &self,
        after_id: u64,
        mut each: impl FnMut(u64, &str, &[u8; 32]),
    ) -> Result<u64, IndexError> {
        let conn = self.read();
        let mut statement =
            conn.prepare_cached("SELECT id, pipeline, hashes FROM record_pdq_parts WHERE id > ?1 ORDER BY id")?;
        // Every hash of a row is handed out with the row, so the rows after the last id's are new.
        let mut rows = statement.query([(after_id / PDQ_SLOTS) as i64])?;
        let mut last = after_id;
        while let Some(row) = rows.next()? {
            let row_id = row.get::<_, i64>(0)? as u64;
            let pipeline = row.get_ref(1)?.as_str().map_err(|_| IndexError::Invalid("pdq pipeline"))?;
            let hashes = row.get_ref(2)?.as_blob().map_err(|_| IndexError::Invalid("pdq hashes"))?;
            if hashes.is_empty() || hashes.len() % 32 != 0 || hashes.len() / 32 > PDQ_SLOTS as usize {
                return Err(IndexError::Invalid("pdq hashes"));
            }
            for (slot, hash) in hashes.chunks_exact(32).enumerate() {
                let id = row_id * PDQ_SLOTS + slot as u64;
                each(id, pipeline, hash.try_into().expect("chunks of 32"));
                last = last.max(id);
            }
        }
        Ok(last)
    }

    /// The stored hashes with these ids and their records' site, lane and time. Ids no longer
    /// stored (deleted by retention since an in-memory index loaded them) are left out.
    pub fn pdq_rows(&self, ids: &[u64]) -> Result<Vec<PdqHitRow>, IndexError> {
        let conn = self.read();
        let mut statement = conn.prepare_cached(
            "SELECT p.device, p.sequence, p.group_index, p.part_index, p.role, p.pipeline, p.variants, p.hashes,
                    p.qualities, r.site, r.lane, r.capture_time_ms
             FROM record_pdq_parts p JOIN records r ON r.device = p.device AND r.sequence = p.sequence
             WHERE p.id = ?1",
        )?;
        // Hits cluster on a few parts: each part's row is read once.
        let mut parts: std::collections::HashMap<u64, Option<StoredPart>> = std::collections::HashMap::new();
        let mut out = Vec::with_capacity(ids.len());
        for &id in ids {
            let row_id = id / PDQ_SLOTS;
            let part = match parts.entry(row_id) {
                std::collections::hash_map::Entry::Occupied(known) => known.into_mut(),
                std::collections::hash_map::Entry::Vacant(slot) => {
                    let read = statement.query_row([row_id as i64], StoredPart::from_row).optional()?.transpose()?;
                    slot.insert(read)
                }
            };
            let Some(part) = part else { continue };
            let Some(entry) = part.entry((id % PDQ_SLOTS) as usize) else { continue };
            out.push(PdqHitRow {
                pdq_id: id,
                record: part.record,
                entry,
                site: part.site.clone(),
                lane: part.lane.clone(),
                capture_time_ms: part.capture_time_ms,
            });
        }
        Ok(out)
    }

    /// Deletes the perceptual hashes of one group of a record (all of it, or one role): what
    /// retention runs when it destroys that group's images. Returns how many hashes went.
    pub fn delete_pdq(&self, record: &RecordId, group: u8, role: Option<&str>) -> Result<usize, IndexError> {
        let conn = self.write();
        let mut delete = conn.prepare_cached(
            "DELETE FROM record_pdq_parts WHERE device = ?1 AND sequence = ?2 AND group_index = ?3
                                            AND (?4 IS NULL OR role = ?4)
             RETURNING length(qualities)",
        )?;
        hashes_deleted(&mut delete, params![record.device.0.as_slice(), sequence_to_sql(record.sequence), group, role])
    }
}

/// Most hashes one `record_pdq_parts` row holds; a hash's id is `row id × PDQ_SLOTS + slot`.
///
/// A lane's capture has 18 hashes: three image parts, each whole and in five crops. Stored one
/// row each, with a unique index over (record, group, part, pipeline, variant), they cost more
/// index CPU per capture than the record, its groups and its blind-index rows together; as one
/// row per part they are three rows (docs/performance.md, seventh pass). A part with more
/// variants than this continues in another row.
pub const PDQ_SLOTS: u64 = 32;

/// The rows of one record's hashes: one per (group, part, role, pipeline), in the order the
/// parts first appear, each with up to [`PDQ_SLOTS`] hashes in the order given. A variant named
/// twice for the same part and pipeline is stored once (the first).
fn insert_pdq_parts(conn: &Connection, device: &[u8], sequence: i64, entries: &[PdqEntry]) -> Result<(), IndexError> {
    if entries.is_empty() {
        return Ok(());
    }
    let mut insert = conn.prepare_cached(
        "INSERT INTO record_pdq_parts (device, sequence, group_index, part_index, role, pipeline, variants, hashes,
                                       qualities)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
    )?;
    for part in pack_pdq(entries)? {
        let first = part.first;
        insert.execute(params![
            device,
            sequence,
            first.group,
            first.part,
            first.role,
            first.pipeline,
            part.variants,
            part.hashes,
            part.qualities
        ])?;
    }
    Ok(())
}

/// One row's worth of hashes, encoded as `record_pdq_parts` stores them.
struct PackedPart<'a> {
    /// The first entry: its group, part, role and pipeline are the row's.
    first: &'a PdqEntry,
    variants: Vec<u8>,
    hashes: Vec<u8>,
    qualities: Vec<u8>,
}

/// A record's hashes as rows (see [`insert_pdq_parts`]). Linear scans, quadratic in the worst
/// case: a lane's 18 hashes take about a microsecond, and 2,600 hashes, about what a 256 KB
/// metadata part can name, took 35 ms with their inserts, each hash in its own part (hashed sets
/// made the lane's case ~5 µs slower).
fn pack_pdq(entries: &[PdqEntry]) -> Result<Vec<PackedPart<'_>>, IndexError> {
    let same_part = |a: &PdqEntry, b: &PdqEntry| {
        a.group == b.group && a.part == b.part && a.role == b.role && a.pipeline == b.pipeline
    };
    let mut parts: Vec<PackedPart<'_>> = Vec::new();
    for (k, entry) in entries.iter().enumerate() {
        let repeated = entries[..k].iter().any(|e| {
            e.group == entry.group && e.part == entry.part && e.pipeline == entry.pipeline && e.variant == entry.variant
        });
        if repeated {
            continue;
        }
        let open = parts.iter().position(|p| same_part(p.first, entry) && p.qualities.len() < PDQ_SLOTS as usize);
        let part = match open {
            Some(at) => &mut parts[at],
            None => {
                parts.push(PackedPart {
                    first: entry,
                    variants: Vec::new(),
                    hashes: Vec::new(),
                    qualities: Vec::new(),
                });
                parts.last_mut().expect("just pushed")
            }
        };
        // The vault refuses names over 32 bytes at ingest; the length byte holds up to 255.
        let name_len = u8::try_from(entry.variant.len()).map_err(|_| IndexError::Invalid("pdq variant name"))?;
        part.variants.push(name_len);
        part.variants.extend_from_slice(entry.variant.as_bytes());
        part.hashes.extend_from_slice(&entry.hash);
        part.qualities.push(entry.quality);
    }
    Ok(parts)
}

/// A `record_pdq_parts` row joined to its record, as [`Index::pdq_rows`] reads it.
struct StoredPart {
    record: RecordId,
    group: u8,
    part: u8,
    role: String,
    pipeline: String,
    variants: Vec<String>,
    hashes: Vec<u8>,
    qualities: Vec<u8>,
    site: String,
    lane: String,
    capture_time_ms: i64,
}

impl StoredPart {
    fn from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<Result<Self, IndexError>> {
        let device: Vec<u8> = row.get(0)?;
        let sequence: i64 = row.get(1)?;
        let variants: Vec<u8> = row.get(6)?;
        let hashes: Vec<u8> = row.get(7)?;
        let qualities: Vec<u8> = row.get(8)?;
        let (group, part, role, pipeline) = (row.get(2)?, row.get(3)?, row.get(4)?, row.get(5)?);
        let (site, lane, capture_time_ms) = (row.get(9)?, row.get(10)?, row.get(11)?);
        Ok((|| {
            let variants = unpack_variants(&variants).ok_or(IndexError::Invalid("pdq variants"))?;
            if hashes.len() != variants.len() * 32 || qualities.len() != variants.len() {
                return Err(IndexError::Invalid("pdq hashes"));
            }
            Ok(StoredPart {
                record: RecordId { device: device_id_from(&device)?, sequence: sequence as u64 },
                group,
                part,
                role,
                pipeline,
                variants,
                hashes,
                qualities,
                site,
                lane,
                capture_time_ms,
            })
        })())
    }

    /// The hash in `slot`, if the row has that many.
    fn entry(&self, slot: usize) -> Option<PdqEntry> {
        Some(PdqEntry {
            group: self.group,
            part: self.part,
            role: self.role.clone(),
            pipeline: self.pipeline.clone(),
            variant: self.variants.get(slot)?.clone(),
            hash: self.hashes.get(slot * 32..slot * 32 + 32)?.try_into().expect("32 bytes"),
            quality: *self.qualities.get(slot)?,
        })
    }
}

/// The names a `variants` value holds, or `None` if it is not a sequence of length-prefixed
/// UTF-8 names.
fn unpack_variants(mut bytes: &[u8]) -> Option<Vec<String>> {
    let mut names = Vec::new();
    while let Some((&len, rest)) = bytes.split_first() {
        let (name, rest) = rest.split_at_checked(len as usize)?;
        names.push(String::from_utf8(name.to_vec()).ok()?);
        bytes = rest;
    }
    Some(names)
}

/// Runs a `DELETE … RETURNING length(qualities)` on `record_pdq_parts` and counts the hashes
/// of the rows it deleted.
fn hashes_deleted(
    delete: &mut rusqlite::CachedStatement<'_>,
    params: impl rusqlite::Params,
) -> Result<usize, IndexError> {
    let mut rows = delete.query(params)?;
    let mut hashes = 0usize;
    while let Some(row) = rows.next()? {
        hashes += row.get::<_, i64>(0)? as usize;
    }
    Ok(hashes)
}

/// Before hashes were stored per part, `record_pdq` held one row per hash. An index created then
/// has its hashes moved into `record_pdq_parts` once, in one transaction, the first time this
/// version opens it (after [`SCHEMA`] created the new table). Hash ids change with the move;
/// nothing durable holds one (in-memory indexes load at their first search).
fn migrate_pdq_to_parts(conn: &Connection) -> Result<(), IndexError> {
    if table_sql(conn, "record_pdq")?.is_none() {
        return Ok(());
    }
    in_migration_transaction(conn, || {
        let mut read = conn.prepare(
            "SELECT device, sequence, group_index, part_index, role, pipeline, variant, hash, quality FROM record_pdq
             ORDER BY device, sequence, id",
        )?;
        for_each_record(
            &mut read.query([])?,
            |row| {
                let hash: Vec<u8> = row.get(7)?;
                Ok(PdqEntry {
                    group: row.get(2)?,
                    part: row.get(3)?,
                    role: row.get(4)?,
                    pipeline: row.get(5)?,
                    variant: row.get(6)?,
                    hash: hash.try_into().map_err(|_| IndexError::Invalid("pdq hash"))?,
                    quality: row.get(8)?,
                })
            },
            |device, sequence, entries| insert_pdq_parts(conn, device, sequence, entries),
        )?;
        conn.execute_batch("DROP TABLE record_pdq")?;
        Ok(())
    })
}

/// Reads `rows`, whose first two columns are a record's device and sequence and which come in
/// record order, makes an item of each row with `item`, and hands each record's items to
/// `per_record` once it has them all: how the migrations regroup rows kept one per item.
fn for_each_record<T>(
    rows: &mut rusqlite::Rows<'_>,
    mut item: impl FnMut(&rusqlite::Row<'_>) -> Result<T, IndexError>,
    mut per_record: impl FnMut(&[u8], i64, &[T]) -> Result<(), IndexError>,
) -> Result<(), IndexError> {
    let mut record: Option<(Vec<u8>, i64)> = None;
    let mut items = Vec::new();
    while let Some(row) = rows.next()? {
        let key = (row.get::<_, Vec<u8>>(0)?, row.get::<_, i64>(1)?);
        // A new record: the one before it (if any) has all its items.
        if record.as_ref() != Some(&key)
            && let Some((device, sequence)) = record.replace(key)
        {
            per_record(&device, sequence, &items)?;
            items.clear();
        }
        items.push(item(row)?);
    }
    match record {
        Some((device, sequence)) => per_record(&device, sequence, &items),
        None => Ok(()),
    }
}

/// Runs `migrate` in one `BEGIN IMMEDIATE` transaction on `conn`: committed if it succeeds,
/// rolled back (leaving the earlier layout as it was) if it fails.
fn in_migration_transaction(
    conn: &Connection,
    migrate: impl FnOnce() -> Result<(), IndexError>,
) -> Result<(), IndexError> {
    conn.execute_batch("BEGIN IMMEDIATE")?;
    match migrate() {
        Ok(()) => Ok(conn.execute_batch("COMMIT")?),
        Err(error) => {
            let _ = conn.execute_batch("ROLLBACK");
            Err(error)
        }
    }
}

/// A record's blind-index keys as its `plate_keys` column holds them: for each row, its rank
/// (one byte), its month's length (one byte) and month, and its 16-byte blind value. Retention
/// deletes those rows by primary key; a second index of `record_plates` by record, which only
/// retention read, cost a B-tree insert per row at ingest (10–18 µs of index CPU per lane's
/// capture, docs/performance.md). When a month's key is destroyed, its entries leave here with
/// its rows ([`Index::delete_month_plates`]).
fn pack_plate_keys(plates: &[BlindPlate]) -> Result<Vec<u8>, IndexError> {
    let mut packed = Vec::with_capacity(plates.iter().map(|p| 2 + p.month.len() + 16).sum());
    for plate in plates {
        let month_len = u8::try_from(plate.month.len()).map_err(|_| IndexError::Invalid("blind-index month"))?;
        packed.push(plate.rank);
        packed.push(month_len);
        packed.extend_from_slice(plate.month.as_bytes());
        packed.extend_from_slice(&plate.blind);
    }
    Ok(packed)
}

/// The keys [`pack_plate_keys`] packed, refusing a column that does not parse to the end.
fn unpack_plate_keys(mut packed: &[u8]) -> Result<Vec<BlindPlate>, IndexError> {
    let invalid = || IndexError::Invalid("record plate keys");
    let mut plates = Vec::new();
    while let [rank, month_len, rest @ ..] = packed {
        let month_len = *month_len as usize;
        if rest.len() < month_len + 16 {
            return Err(invalid());
        }
        let month = std::str::from_utf8(&rest[..month_len]).map_err(|_| invalid())?;
        let blind: [u8; 16] = rest[month_len..month_len + 16].try_into().expect("16 bytes");
        plates.push(BlindPlate { month: month.to_owned(), blind, rank: *rank });
        packed = &rest[month_len + 16..];
    }
    if packed.is_empty() { Ok(plates) } else { Err(invalid()) }
}

/// The blind-index keys record (`device`, `sequence`) lists in its `plate_keys` (none if there
/// is no such record).
fn record_plate_keys(conn: &Connection, device: &[u8], sequence: i64) -> Result<Vec<BlindPlate>, IndexError> {
    let packed: Option<Vec<u8>> = conn
        .prepare_cached("SELECT plate_keys FROM records WHERE device = ?1 AND sequence = ?2")?
        .query_row(params![device, sequence], |r| r.get(0))
        .optional()?;
    unpack_plate_keys(&packed.unwrap_or_default())
}

/// Sets the `plate_keys` of record (`device`, `sequence`) to `plates`.
fn set_record_plate_keys(
    conn: &Connection,
    device: &[u8],
    sequence: i64,
    plates: &[BlindPlate],
) -> Result<(), IndexError> {
    conn.prepare_cached("UPDATE records SET plate_keys = ?3 WHERE device = ?1 AND sequence = ?2")?.execute(params![
        device,
        sequence,
        pack_plate_keys(plates)?
    ])?;
    Ok(())
}

/// Deletes the blind-index rows of record (`device`, `sequence`), as its `plate_keys` lists them.
fn delete_record_plates(conn: &Connection, device: &[u8], sequence: i64) -> Result<(), IndexError> {
    let mut delete = conn.prepare_cached(
        "DELETE FROM record_plates WHERE month = ?1 AND blind = ?2 AND device = ?3 AND sequence = ?4 AND rank = ?5",
    )?;
    for plate in record_plate_keys(conn, device, sequence)? {
        delete.execute(params![plate.month, plate.blind.as_slice(), device, sequence, plate.rank])?;
    }
    Ok(())
}

/// Before `records.plate_keys`, retention found a record's blind-index rows through an index of
/// `record_plates` by record. An index created then gets the column, filled from its rows, and
/// loses that index, once, in one transaction, the first time this version opens it. It runs
/// after [`SCHEMA`], which leaves an existing `records` table as it was.
fn migrate_plate_keys_to_records(conn: &Connection) -> Result<(), IndexError> {
    match table_sql(conn, "records")? {
        Some(sql) if !sql.contains("plate_keys") => {}
        _ => return Ok(()),
    }
    in_migration_transaction(conn, || {
        conn.execute_batch("ALTER TABLE records ADD COLUMN plate_keys BLOB NOT NULL DEFAULT x''")?;
        let mut read = conn.prepare(
            "SELECT device, sequence, month, blind, rank FROM record_plates ORDER BY device, sequence, rank, month",
        )?;
        for_each_record(
            &mut read.query([])?,
            |row| {
                let blind: Vec<u8> = row.get(3)?;
                Ok(BlindPlate {
                    month: row.get(2)?,
                    blind: blind.try_into().map_err(|_| IndexError::Invalid("blind value"))?,
                    rank: row.get(4)?,
                })
            },
            |device, sequence, plates| set_record_plate_keys(conn, device, sequence, plates),
        )?;
        conn.execute_batch("DROP INDEX IF EXISTS record_plates_by_record")?;
        Ok(())
    })
}

/// Key-name prefix of extension epochs: keys that hold only re-sealed data keys (legal hold,
/// hand-off), never a lane's seal target.
pub const EXTENSION_PREFIX: &str = "extend/";

/// The columns `epoch_from_row` reads (a macro so that `concat!` can build constant queries).
macro_rules! epoch_columns {
    () => {
        "id, site, class, not_before_ms, not_after_ms, public_key, key_name, destroyed_at_ms"
    };
}
const EPOCH_COLUMNS: &str = epoch_columns!();
const EPOCH_BY_ID: &str = concat!("SELECT ", epoch_columns!(), " FROM epochs WHERE id = ?1");
const DEVICE_BY_ID: &str = "SELECT id, site, lane, public_key, status, enrolled_at_ms, revoked_at_ms
                            FROM devices WHERE id = ?1";
const RECORD_BY_ID: &str =
    concat!("SELECT ", record_columns!(), " FROM records r WHERE r.device = ?1 AND r.sequence = ?2");
/// A stored record's content digest by id: the committer's existence check and the insert's
/// duplicate-or-conflict check, one cached statement on the writer.
const RECORD_DIGEST_BY_ID: &str = "SELECT content_digest FROM records WHERE device = ?1 AND sequence = ?2";

/// At most one row of `sql`, through `conn`'s statement cache.
fn optional_row<T, P: rusqlite::Params>(
    conn: &Connection,
    sql: &str,
    params: P,
    from_row: impl FnOnce(&rusqlite::Row<'_>) -> rusqlite::Result<Result<T, IndexError>>,
) -> Result<Option<T>, IndexError> {
    let mut statement = conn.prepare_cached(sql)?;
    statement.query_row(params, from_row).optional()?.transpose()
}

/// SQLite integers are signed; sequence numbers are stored as their two's-complement bit
/// pattern so the whole u64 range round-trips.
fn sequence_to_sql(sequence: u64) -> i64 {
    sequence as i64
}

fn status_str(status: DeviceStatus) -> &'static str {
    match status {
        DeviceStatus::Active => "active",
        DeviceStatus::Revoked => "revoked",
    }
}

fn device_id_from(bytes: &[u8]) -> Result<DeviceId, IndexError> {
    Ok(DeviceId(bytes.try_into().map_err(|_| IndexError::Invalid("device id"))?))
}

fn device_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<Result<DeviceRow, IndexError>> {
    let id: Vec<u8> = row.get(0)?;
    let public_key: Vec<u8> = row.get(3)?;
    let status: String = row.get(4)?;
    let (site, lane, enrolled_at_ms, revoked_at_ms) = (row.get(1)?, row.get(2)?, row.get(5)?, row.get(6)?);
    Ok((|| {
        Ok(DeviceRow {
            id: device_id_from(&id)?,
            site,
            lane,
            public_key: public_key.try_into().map_err(|_| IndexError::Invalid("device public key"))?,
            status: match status.as_str() {
                "active" => DeviceStatus::Active,
                "revoked" => DeviceStatus::Revoked,
                _ => return Err(IndexError::Invalid("device status")),
            },
            enrolled_at_ms,
            revoked_at_ms,
        })
    })())
}

fn epoch_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<Result<EpochRow, IndexError>> {
    let id: Vec<u8> = row.get(0)?;
    let class: String = row.get(2)?;
    let (site, not_before_ms, not_after_ms, public_key, key_name, destroyed_at_ms) =
        (row.get(1)?, row.get(3)?, row.get(4)?, row.get(5)?, row.get(6)?, row.get(7)?);
    Ok((|| {
        Ok(EpochRow {
            id: EpochId(id.as_slice().try_into().map_err(|_| IndexError::Invalid("epoch id"))?),
            site,
            class: class.parse().map_err(|_| IndexError::Invalid("epoch class"))?,
            not_before_ms,
            not_after_ms,
            public_key,
            key_name,
            destroyed_at_ms,
        })
    })())
}

fn record_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<Result<RecordRow, IndexError>> {
    let device: Vec<u8> = row.get(0)?;
    let sequence: i64 = row.get(1)?;
    let digest: Vec<u8> = row.get(2)?;
    let size: i64 = row.get(7)?;
    let (site, lane, capture_time_ms, blob_key, ingested_at_ms, quarantine_reason) =
        (row.get(3)?, row.get(4)?, row.get(5)?, row.get(6)?, row.get(8)?, row.get(9)?);
    let image_roles: String = row.get(10)?;
    Ok((|| {
        Ok(RecordRow {
            id: RecordId { device: device_id_from(&device)?, sequence: sequence as u64 },
            content_digest: digest.try_into().map_err(|_| IndexError::Invalid("content digest"))?,
            site,
            lane,
            capture_time_ms,
            blob_key,
            size: size as u64,
            ingested_at_ms,
            quarantine_reason,
            image_roles: image_roles.split(',').filter(|role| !role.is_empty()).map(str::to_string).collect(),
        })
    })())
}

/// A group's data key re-wrapped to an extension epoch (legal hold, hand-off).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResealRow {
    /// The record.
    pub record: RecordId,
    /// The group within the capture.
    pub group: u8,
    /// The extension epoch it is wrapped to.
    pub epoch: EpochId,
    /// The wrapped data key (`custodia_seal::WrappedDataKey::to_bytes`, 115 bytes).
    pub wrapped: Vec<u8>,
    /// When it was re-sealed (unix ms).
    pub resealed_at_ms: i64,
}

/// What one [`Index::purge_epoch_batch`] call removed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PurgeBatch {
    /// Group and reseal rows under the epoch that were deleted (0: the epoch has none left).
    pub handles: usize,
    /// Perceptual hashes of groups that became unreadable.
    pub pdq_rows: usize,
    /// Records that became wholly unreadable: their rows are gone and their blobs are queued
    /// in the purge queue ([`Index::purge_queue`]).
    pub records: usize,
}

/// Largest wrapped data key accepted in a reseal row (the encoding is 115 bytes).
const MAX_WRAPPED_LEN: usize = 256;

/// Retention: epochs to shred, the rows a shred deletes, reseals, and the blob purge queue.
impl Index {
    /// Every epoch whose key is not destroyed (retention decides which have expired).
    pub fn unshredded_epochs(&self) -> Result<Vec<EpochRow>, IndexError> {
        let conn = self.read();
        let mut statement = conn.prepare(&format!(
            "SELECT {EPOCH_COLUMNS} FROM epochs WHERE destroyed_at_ms IS NULL ORDER BY not_after_ms, site, class"
        ))?;
        let rows = statement.query_map([], epoch_from_row)?;
        rows.map(|row| row?).collect()
    }

    /// Destroyed epochs that still have group or reseal rows (a shred whose clean-up was
    /// interrupted, or whose clean-up is still to run).
    pub fn destroyed_epochs_with_rows(&self) -> Result<Vec<EpochRow>, IndexError> {
        let conn = self.read();
        let mut statement = conn.prepare(&format!(
            "SELECT {EPOCH_COLUMNS} FROM epochs e WHERE destroyed_at_ms IS NOT NULL
               AND (EXISTS (SELECT 1 FROM record_groups g WHERE g.epoch = e.id)
                    OR EXISTS (SELECT 1 FROM record_reseals r WHERE r.epoch = e.id))
             ORDER BY not_after_ms"
        ))?;
        let rows = statement.query_map([], epoch_from_row)?;
        rows.map(|row| row?).collect()
    }

    /// The epoch whose private key has this keystore name.
    pub fn epoch_by_key_name(&self, key_name: &str) -> Result<Option<EpochRow>, IndexError> {
        self.read_optional(
            &format!("SELECT {EPOCH_COLUMNS} FROM epochs WHERE key_name = ?1"),
            [key_name],
            epoch_from_row,
        )
    }

    /// Earliest period start of any epoch (where the vault's history begins).
    pub fn earliest_epoch_start(&self) -> Result<Option<i64>, IndexError> {
        Ok(self.read().query_row("SELECT MIN(not_before_ms) FROM epochs", [], |r| r.get(0))?)
    }

    /// How many distinct records have a group (or a reseal) under `epoch`.
    ///
    /// A plain count of rows is exact: a sealed capture holds at most one group per retention
    /// class (`custodia_seal` refuses a duplicate class when parsing) and an epoch has one class,
    /// so a record has at most one group row per epoch, and at most one reseal row per extension
    /// epoch (its primary key). Group rows name period epochs and reseal rows extension epochs,
    /// so the two counts add up. Each is a count over the epoch index (a million rows in tens of
    /// milliseconds; a `DISTINCT` would take several times that).
    pub fn epoch_record_count(&self, epoch: &EpochId) -> Result<u64, IndexError> {
        let conn = self.read();
        let mut total = 0i64;
        for table in ["record_groups", "record_reseals"] {
            let count: i64 =
                conn.query_row(&format!("SELECT COUNT(*) FROM {table} WHERE epoch = ?1"), [epoch.0.as_slice()], |r| {
                    r.get(0)
                })?;
            total += count;
        }
        Ok(total as u64)
    }

    /// Marks `epoch`'s key destroyed at `at_ms` (keeps an earlier mark). Returns false if no
    /// such epoch exists.
    pub fn mark_epoch_destroyed(&self, epoch: &EpochId, at_ms: i64) -> Result<bool, IndexError> {
        let changed = self.write().execute(
            "UPDATE epochs SET destroyed_at_ms = COALESCE(destroyed_at_ms, ?2) WHERE id = ?1",
            params![epoch.0.as_slice(), at_ms],
        )?;
        Ok(changed == 1)
    }

    /// The groups of a record and their original epochs (a group whose epoch was shredded has
    /// no row left).
    pub fn record_groups(&self, record: &RecordId) -> Result<Vec<RecordGroup>, IndexError> {
        let conn = self.read();
        let mut statement = conn.prepare_cached(
            "SELECT group_index, class, epoch FROM record_groups WHERE device = ?1 AND sequence = ?2
             ORDER BY group_index",
        )?;
        let rows = statement.query_map(params![record.device.0.as_slice(), sequence_to_sql(record.sequence)], |r| {
            Ok((r.get::<_, u8>(0)?, r.get::<_, String>(1)?, r.get::<_, Vec<u8>>(2)?))
        })?;
        rows.map(|row| {
            let (index, class, epoch) = row?;
            Ok(RecordGroup {
                index,
                class: class.parse().map_err(|_| IndexError::Invalid("group class"))?,
                epoch: EpochId(epoch.as_slice().try_into().map_err(|_| IndexError::Invalid("epoch id"))?),
            })
        })
        .collect()
    }

    /// Stores a re-sealed data key (replacing one for the same group and epoch).
    pub fn insert_reseal(&self, row: &ResealRow) -> Result<(), IndexError> {
        if row.wrapped.len() > MAX_WRAPPED_LEN {
            return Err(IndexError::Invalid("wrapped data key length"));
        }
        self.write().execute(
            "INSERT OR REPLACE INTO record_reseals (device, sequence, group_index, epoch, wrapped, resealed_at_ms)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![
                row.record.device.0.as_slice(),
                sequence_to_sql(row.record.sequence),
                row.group,
                row.epoch.0.as_slice(),
                row.wrapped,
                row.resealed_at_ms
            ],
        )?;
        Ok(())
    }

    /// The reseal rows of one group of a record, latest extension first.
    pub fn reseals(&self, record: &RecordId, group: u8) -> Result<Vec<ResealRow>, IndexError> {
        let conn = self.read();
        let mut statement = conn.prepare_cached(
            "SELECT r.epoch, r.wrapped, r.resealed_at_ms FROM record_reseals r
             JOIN epochs e ON e.id = r.epoch
             WHERE r.device = ?1 AND r.sequence = ?2 AND r.group_index = ?3
             ORDER BY e.not_after_ms DESC",
        )?;
        let rows = statement
            .query_map(params![record.device.0.as_slice(), sequence_to_sql(record.sequence), group], |r| {
                Ok((r.get::<_, Vec<u8>>(0)?, r.get::<_, Vec<u8>>(1)?, r.get::<_, i64>(2)?))
            })?;
        rows.map(|row| {
            let (epoch, wrapped, resealed_at_ms) = row?;
            if wrapped.len() > MAX_WRAPPED_LEN {
                return Err(IndexError::Invalid("wrapped data key length"));
            }
            Ok(ResealRow {
                record: *record,
                group,
                epoch: EpochId(epoch.as_slice().try_into().map_err(|_| IndexError::Invalid("epoch id"))?),
                wrapped,
                resealed_at_ms,
            })
        })
        .collect()
    }

    /// How many reseal rows are stored.
    pub fn reseal_count(&self) -> Result<u64, IndexError> {
        let count: i64 = self.read().query_row("SELECT COUNT(*) FROM record_reseals", [], |r| r.get(0))?;
        Ok(count as u64)
    }

    /// Deletes up to `limit` group rows and up to `limit` reseal rows under a destroyed `epoch`,
    /// in one transaction. A group left with no row at all (no original epoch, no reseal) loses
    /// its perceptual hashes; a record left with none loses its record, blind-index and hash
    /// rows, and its blob key goes to the purge queue. Idempotent: call until `handles == 0`.
    pub fn purge_epoch_batch(&self, epoch: &EpochId, limit: usize) -> Result<PurgeBatch, IndexError> {
        let mut conn = self.write();
        let tx = conn.transaction()?;
        let mut batch = PurgeBatch::default();
        {
            let epoch_id = epoch.0.as_slice();
            let mut affected: Vec<(Vec<u8>, i64, u8)> = Vec::new();
            for table in ["record_groups", "record_reseals"] {
                let mut select = tx.prepare_cached(&format!(
                    "SELECT device, sequence, group_index FROM {table} WHERE epoch = ?1 LIMIT ?2"
                ))?;
                let rows: Vec<(Vec<u8>, i64, u8)> = select
                    .query_map(params![epoch_id, limit as i64], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
                    .collect::<Result<_, _>>()?;
                let mut delete = tx.prepare_cached(&format!(
                    "DELETE FROM {table} WHERE device = ?1 AND sequence = ?2 AND group_index = ?3 AND epoch = ?4"
                ))?;
                for (device, sequence, group) in &rows {
                    delete.execute(params![device, sequence, group, epoch_id])?;
                }
                batch.handles += rows.len();
                affected.extend(rows);
            }
            affected.sort();
            affected.dedup();
            let mut group_alive = tx.prepare_cached(
                "SELECT EXISTS (SELECT 1 FROM record_groups WHERE device = ?1 AND sequence = ?2 AND group_index = ?3)
                     OR EXISTS (SELECT 1 FROM record_reseals WHERE device = ?1 AND sequence = ?2 AND group_index = ?3)",
            )?;
            let mut delete_pdq = tx.prepare_cached(
                "DELETE FROM record_pdq_parts WHERE device = ?1 AND sequence = ?2 AND group_index = ?3
                 RETURNING length(qualities)",
            )?;
            for (device, sequence, group) in &affected {
                let alive: bool = group_alive.query_row(params![device, sequence, group], |r| r.get(0))?;
                if !alive {
                    batch.pdq_rows += hashes_deleted(&mut delete_pdq, params![device, sequence, group])?;
                }
            }
            let mut record_alive = tx.prepare_cached(
                "SELECT EXISTS (SELECT 1 FROM record_groups WHERE device = ?1 AND sequence = ?2)
                     OR EXISTS (SELECT 1 FROM record_reseals WHERE device = ?1 AND sequence = ?2)",
            )?;
            let mut queue = tx.prepare_cached(
                "INSERT OR IGNORE INTO retention_purge (device, sequence, blob_key)
                 SELECT device, sequence, blob_key FROM records WHERE device = ?1 AND sequence = ?2",
            )?;
            let mut delete_record = tx.prepare_cached("DELETE FROM records WHERE device = ?1 AND sequence = ?2")?;
            let mut delete_all_pdq = tx.prepare_cached(
                "DELETE FROM record_pdq_parts WHERE device = ?1 AND sequence = ?2 RETURNING length(qualities)",
            )?;
            let mut last: Option<(&[u8], i64)> = None;
            for (device, sequence, _) in &affected {
                if last == Some((device.as_slice(), *sequence)) {
                    continue;
                }
                last = Some((device.as_slice(), *sequence));
                let alive: bool = record_alive.query_row(params![device, sequence], |r| r.get(0))?;
                if alive {
                    continue;
                }
                queue.execute(params![device, sequence])?;
                batch.pdq_rows += hashes_deleted(&mut delete_all_pdq, params![device, sequence])?;
                delete_record_plates(&tx, device, *sequence)?;
                batch.records += delete_record.execute(params![device, sequence])?;
            }
        }
        tx.commit()?;
        Ok(batch)
    }

    /// Up to `limit` entries of the purge queue: records whose rows retention deleted and
    /// whose blobs are still to be deleted.
    pub fn purge_queue(&self, limit: usize) -> Result<Vec<(RecordId, String)>, IndexError> {
        let conn = self.read();
        let mut statement = conn.prepare_cached("SELECT device, sequence, blob_key FROM retention_purge LIMIT ?1")?;
        let rows = statement.query_map([limit as i64], |row| {
            Ok((row.get::<_, Vec<u8>>(0)?, row.get::<_, i64>(1)?, row.get::<_, String>(2)?))
        })?;
        rows.map(|row| {
            let (device, sequence, key) = row?;
            Ok((RecordId { device: device_id_from(&device)?, sequence: sequence as u64 }, key))
        })
        .collect()
    }

    /// Removes purge-queue entries whose blobs are deleted, in one transaction.
    pub fn purge_done(&self, records: &[RecordId]) -> Result<(), IndexError> {
        let mut conn = self.write();
        let tx = conn.transaction()?;
        {
            let mut delete = tx.prepare_cached("DELETE FROM retention_purge WHERE device = ?1 AND sequence = ?2")?;
            for id in records {
                delete.execute(params![id.device.0.as_slice(), sequence_to_sql(id.sequence)])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// How many blobs wait in the purge queue.
    pub fn purge_queue_len(&self) -> Result<u64, IndexError> {
        let count: i64 = self.read().query_row("SELECT COUNT(*) FROM retention_purge", [], |r| r.get(0))?;
        Ok(count as u64)
    }

    /// Every month (`YYYY-MM`) that has blind-index rows.
    pub fn plate_months(&self) -> Result<Vec<String>, IndexError> {
        let conn = self.read();
        let mut statement = conn.prepare("SELECT DISTINCT month FROM record_plates ORDER BY month")?;
        let rows = statement.query_map([], |r| r.get::<_, String>(0))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// How many blind-index rows a month has.
    pub fn month_plate_count(&self, month: &str) -> Result<u64, IndexError> {
        let count: i64 =
            self.read().query_row("SELECT COUNT(*) FROM record_plates WHERE month = ?1", [month], |r| r.get(0))?;
        Ok(count as u64)
    }

    /// Deletes a month's blind-index rows (its key is being destroyed), and their keys from the
    /// `plate_keys` of the records that outlived them (held ones), so no blind value of the month
    /// stays in the index. Returns how many rows went.
    pub fn delete_month_plates(&self, month: &str) -> Result<usize, IndexError> {
        let mut conn = self.write();
        let tx = conn.transaction()?;
        let deleted = {
            // The month's remaining rows belong to exactly the records that still list its keys.
            let mut holders = tx.prepare("SELECT DISTINCT device, sequence FROM record_plates WHERE month = ?1")?;
            let holders: Vec<(Vec<u8>, i64)> =
                holders.query_map([month], |r| Ok((r.get(0)?, r.get(1)?)))?.collect::<Result<_, _>>()?;
            for (device, sequence) in &holders {
                let mut plates = record_plate_keys(&tx, device, *sequence)?;
                plates.retain(|plate| plate.month != month);
                set_record_plate_keys(&tx, device, *sequence, &plates)?;
            }
            tx.execute("DELETE FROM record_plates WHERE month = ?1", [month])?
        };
        tx.commit()?;
        Ok(deleted)
    }
}
