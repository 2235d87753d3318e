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
    /// The row's id (what an in-memory index stores).
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

const SCHEMA: &str = "
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
    image_roles TEXT NOT NULL, quarantine_reason TEXT,
    PRIMARY KEY (device, sequence)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS records_by_time ON records (site, lane, capture_time_ms);
CREATE TABLE IF NOT EXISTS record_groups (
    device BLOB NOT NULL, sequence INTEGER NOT NULL, group_index INTEGER NOT NULL,
    class TEXT NOT NULL, epoch BLOB NOT NULL,
    PRIMARY KEY (device, sequence, group_index)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS record_groups_by_epoch ON record_groups (epoch);
CREATE TABLE IF NOT EXISTS record_plates (
    blind BLOB NOT NULL, month TEXT NOT NULL, device BLOB NOT NULL, sequence INTEGER NOT NULL,
    rank INTEGER NOT NULL, PRIMARY KEY (blind, device, sequence, rank)) WITHOUT ROWID;
-- AUTOINCREMENT: ids are held by in-memory indexes, so a deleted row's id is never reused.
CREATE TABLE IF NOT EXISTS record_pdq (
    id INTEGER PRIMARY KEY AUTOINCREMENT, device BLOB NOT NULL, sequence INTEGER NOT NULL,
    group_index INTEGER NOT NULL, part_index INTEGER NOT NULL, role TEXT NOT NULL,
    pipeline TEXT NOT NULL, variant TEXT NOT NULL, hash BLOB NOT NULL, quality INTEGER NOT NULL,
    UNIQUE (device, sequence, group_index, part_index, pipeline, variant));
";

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
        writer.execute_batch(SCHEMA)?;
        let reader = Connection::open(path)?;
        reader.busy_timeout(std::time::Duration::from_secs(10))?;
        Ok(Self { writer: Mutex::new(writer), reader: Mutex::new(reader) })
    }

    fn write(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.writer.lock().expect("index writer lock poisoned")
    }

    fn read(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.reader.lock().expect("index reader lock poisoned")
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
            Err(rusqlite::Error::SqliteFailure(e, _))
                if e.code == rusqlite::ErrorCode::ConstraintViolation =>
            {
                Err(IndexError::DeviceExists(device.id.to_string()))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Looks a device up.
    pub fn device(&self, id: &DeviceId) -> Result<Option<DeviceRow>, IndexError> {
        self.read()
            .query_row(
                "SELECT id, site, lane, public_key, status, enrolled_at_ms, revoked_at_ms
                 FROM devices WHERE id = ?1",
                [id.0.as_slice()],
                device_from_row,
            )
            .optional()?
            .transpose()
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
        self.read()
            .query_row(
                &format!("SELECT {EPOCH_COLUMNS} FROM epochs WHERE id = ?1"),
                [id.0.as_slice()],
                epoch_from_row,
            )
            .optional()?
            .transpose()
    }

    /// Whether an epoch exists for this site and class starting at `not_before_ms`.
    pub fn epoch_at(
        &self,
        site: &str,
        class: RetentionClass,
        not_before_ms: i64,
    ) -> Result<Option<EpochRow>, IndexError> {
        self.read()
            .query_row(
                &format!(
                    "SELECT {EPOCH_COLUMNS} FROM epochs
                     WHERE site = ?1 AND class = ?2 AND not_before_ms = ?3"
                ),
                params![site, class.as_str(), not_before_ms],
                epoch_from_row,
            )
            .optional()?
            .transpose()
    }

    /// Epochs whose keys are not destroyed and whose period ends after `after_ms`, in period
    /// order: what lanes may still seal to.
    pub fn live_epochs(&self, after_ms: i64) -> Result<Vec<EpochRow>, IndexError> {
        let conn = self.read();
        let mut statement = conn.prepare(&format!(
            "SELECT {EPOCH_COLUMNS} FROM epochs
             WHERE destroyed_at_ms IS NULL AND not_after_ms > ?1
             ORDER BY site, class, not_before_ms"
        ))?;
        let rows = statement.query_map([after_ms], epoch_from_row)?;
        rows.map(|row| row?).collect()
    }

    /// The stored record with this id, if any.
    pub fn record(&self, id: &RecordId) -> Result<Option<RecordRow>, IndexError> {
        self.read()
            .query_row(
                "SELECT device, sequence, content_digest, site, lane, capture_time_ms, blob_key,
                        size, ingested_at_ms, quarantine_reason
                 FROM records WHERE device = ?1 AND sequence = ?2",
                params![id.device.0.as_slice(), sequence_to_sql(id.sequence)],
                record_from_row,
            )
            .optional()?
            .transpose()
    }

    /// How many records are stored.
    pub fn record_count(&self) -> Result<u64, IndexError> {
        let count: i64 = self.read().query_row("SELECT COUNT(*) FROM records", [], |r| r.get(0))?;
        Ok(count as u64)
    }

    /// Records whose plate read (best or candidate) has this blind-index value.
    pub fn records_by_blind_plate(&self, blind: &[u8; 16]) -> Result<Vec<RecordId>, IndexError> {
        let conn = self.read();
        let mut statement = conn.prepare(
            "SELECT DISTINCT device, sequence FROM record_plates WHERE blind = ?1
             ORDER BY device, sequence",
        )?;
        let rows = statement.query_map([blind.as_slice()], |row| {
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
            let mut existing = tx.prepare_cached(
                "SELECT content_digest FROM records WHERE device = ?1 AND sequence = ?2",
            )?;
            let mut insert = tx.prepare_cached(
                "INSERT INTO records (device, sequence, content_digest, site, lane, capture_time_ms,
                                      blob_key, size, ingested_at_ms, image_roles, quarantine_reason)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
            )?;
            let mut insert_group = tx.prepare_cached(
                "INSERT INTO record_groups (device, sequence, group_index, class, epoch)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
            )?;
            let mut insert_plate = tx.prepare_cached(
                "INSERT OR IGNORE INTO record_plates (blind, month, device, sequence, rank)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
            )?;
            let mut insert_pdq = tx.prepare_cached(
                "INSERT OR IGNORE INTO record_pdq (device, sequence, group_index, part_index, role,
                                                   pipeline, variant, hash, quality)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            )?;
            for record in batch {
                let device = record.id.device.0.as_slice();
                let sequence = sequence_to_sql(record.id.sequence);
                let stored: Option<Vec<u8>> =
                    existing.query_row(params![device, sequence], |r| r.get(0)).optional()?;
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
                    record.quarantine_reason
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
                    insert_plate.execute(params![
                        plate.blind.as_slice(),
                        plate.month,
                        device,
                        sequence,
                        plate.rank
                    ])?;
                }
                for p in &record.pdq {
                    insert_pdq.execute(params![
                        device,
                        sequence,
                        p.group,
                        p.part,
                        p.role,
                        p.pipeline,
                        p.variant,
                        p.hash.as_slice(),
                        p.quality
                    ])?;
                }
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
        let mut statement =
            conn.prepare("SELECT device, sequence, blob_key FROM records ORDER BY device, sequence")?;
        let rows = statement.query_map([], |row| {
            Ok((row.get::<_, Vec<u8>>(0)?, row.get::<_, i64>(1)?, row.get::<_, String>(2)?))
        })?;
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
            conn.prepare_cached("SELECT id, pipeline, hash FROM record_pdq WHERE id > ?1 ORDER BY id")?;
        let mut rows = statement.query([after_id as i64])?;
        let mut last = after_id;
        while let Some(row) = rows.next()? {
            let id = row.get::<_, i64>(0)? as u64;
            let pipeline = row.get_ref(1)?.as_str().map_err(|_| IndexError::Invalid("pdq pipeline"))?;
            let hash: &[u8; 32] =
                row.get_ref(2)?
                .as_blob()
                .ok()
                .and_then(|b| b.try_into().ok())
                .ok_or(IndexError::Invalid("pdq hash"))?;
            each(id, pipeline, hash);
            last = last.max(id);
        }
        Ok(last)
    }

    /// The stored hashes with these ids and their records' site, lane and time. Ids no longer
    /// stored (deleted by retention since an in-memory index loaded them) are left out.
    pub fn pdq_rows(&self, ids: &[u64]) -> Result<Vec<PdqHitRow>, IndexError> {
        let conn = self.read();
        let mut statement = conn.prepare_cached(
            "SELECT p.id, p.device, p.sequence, p.group_index, p.part_index, p.role, p.pipeline,
                    p.variant, p.hash, p.quality, r.site, r.lane, r.capture_time_ms
             FROM record_pdq p JOIN records r ON r.device = p.device AND r.sequence = p.sequence
             WHERE p.id = ?1",
        )?;
        let mut out = Vec::with_capacity(ids.len());
        for &id in ids {
            let row = statement
                .query_row([id as i64], |row| {
                    Ok((
                        row.get::<_, i64>(0)?,
                        row.get::<_, Vec<u8>>(1)?,
                        row.get::<_, i64>(2)?,
                        row.get::<_, u8>(3)?,
                        row.get::<_, u8>(4)?,
                        row.get::<_, String>(5)?,
                        row.get::<_, String>(6)?,
                        row.get::<_, String>(7)?,
                        row.get::<_, Vec<u8>>(8)?,
                        row.get::<_, u8>(9)?,
                        (row.get::<_, String>(10)?, row.get::<_, String>(11)?, row.get::<_, i64>(12)?),
                    ))
                })
                .optional()?;
            let Some((pid, device, sequence, group, part, role, pipeline, variant, hash, quality, (site, lane, time))) =
                row
            else {
                continue;
            };
            out.push(PdqHitRow {
                pdq_id: pid as u64,
                record: RecordId { device: device_id_from(&device)?, sequence: sequence as u64 },
                entry: PdqEntry {
                    group,
                    part,
                    role,
                    pipeline,
                    variant,
                    hash: hash.try_into().map_err(|_| IndexError::Invalid("pdq hash"))?,
                    quality,
                },
                site,
                lane,
                capture_time_ms: time,
            });
        }
        Ok(out)
    }

    /// Deletes the perceptual hashes of one group of a record (all of it, or one role): what
    /// retention runs when it destroys that group's images. Returns how many rows went.
    pub fn delete_pdq(&self, record: &RecordId, group: u8, role: Option<&str>) -> Result<usize, IndexError> {
        Ok(self.write().execute(
            "DELETE FROM record_pdq WHERE device = ?1 AND sequence = ?2 AND group_index = ?3
                                      AND (?4 IS NULL OR role = ?4)",
            params![record.device.0.as_slice(), sequence_to_sql(record.sequence), group, role],
        )?)
    }
}

const EPOCH_COLUMNS: &str =
    "id, site, class, not_before_ms, not_after_ms, public_key, key_name, destroyed_at_ms";

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
        })
    })())
}
