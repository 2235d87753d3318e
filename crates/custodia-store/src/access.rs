//! The access database (SQLite, bundled, `access.sqlite3` beside the index): principals, the
//! hashes of their API tokens, grants, break-glass requests, the bulk-access guard's read counts.
//!
//! Kept apart from the record index because its life is different: it holds no record data, is
//! never shredded by retention, and is small. Tokens are stored only as SHA-256 of their 32-byte
//! random secret (a high-entropy secret needs no slow hash; a stolen database yields no token).
//!
//! What it is not: a policy engine. It stores roles as their names and answers look-ups;
//! `custodia-policy` decides and the vault logs.

use std::path::Path;
use std::sync::Mutex;

use rusqlite::{Connection, OptionalExtension, params};

/// A principal as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PrincipalRow {
    /// Its id (`officer-7`).
    pub id: String,
    /// Its role names.
    pub roles: Vec<String>,
    /// When it was added (unix ms).
    pub created_at_ms: i64,
    /// When it was disabled, if it was.
    pub disabled_at_ms: Option<i64>,
    /// When the bulk-access guard blocked it, if it is blocked now.
    pub blocked_at_ms: Option<i64>,
}

/// An API token as stored: never the secret, only its hash.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenRow {
    /// The token's public id (the part before the secret).
    pub id: String,
    /// Whose token.
    pub principal: String,
    /// SHA-256 of the secret.
    pub secret_hash: [u8; 32],
    /// When it was issued.
    pub created_at_ms: i64,
    /// When it stops working.
    pub expires_at_ms: i64,
}

/// A grant as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GrantRow {
    /// Its id (assigned on insert).
    pub id: i64,
    /// Who holds it.
    pub principal: String,
    /// The role it gives.
    pub role: String,
    /// What it covers (`site:..`, `lane:../..`, `record:..`).
    pub scope: String,
    /// Who gave it (a principal id, or `break-glass:<request>`).
    pub granted_by: String,
    /// When.
    pub created_at_ms: i64,
    /// When it stops.
    pub expires_at_ms: i64,
    /// When it was withdrawn, if it was.
    pub revoked_at_ms: Option<i64>,
}

/// A break-glass request as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BreakGlassRow {
    /// Its id.
    pub id: String,
    /// Who asked.
    pub requester: String,
    /// The role the grant would give.
    pub role: String,
    /// What it would cover.
    pub scope: String,
    /// The stated purpose code.
    pub purpose: String,
    /// The stated case number.
    pub case: String,
    /// When it was asked.
    pub created_at_ms: i64,
    /// Who approved it, once approved.
    pub approved_by: Option<String>,
    /// When.
    pub approved_at_ms: Option<i64>,
}

/// Access-database failures.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AccessError {
    /// SQLite failed.
    #[error("access database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// A principal with this id exists.
    #[error("principal {0} already exists")]
    PrincipalExists(String),
    /// A stored value could not be read back.
    #[error("access database holds an invalid value in {0}")]
    Invalid(&'static str),
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS principals (
    id TEXT PRIMARY KEY, roles TEXT NOT NULL, created_at_ms INTEGER NOT NULL,
    disabled_at_ms INTEGER, blocked_at_ms INTEGER);
CREATE TABLE IF NOT EXISTS tokens (
    id TEXT PRIMARY KEY, principal TEXT NOT NULL REFERENCES principals(id), secret_hash BLOB NOT NULL,
    created_at_ms INTEGER NOT NULL, expires_at_ms INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS grants (
    id INTEGER PRIMARY KEY AUTOINCREMENT, principal TEXT NOT NULL REFERENCES principals(id),
    role TEXT NOT NULL, scope TEXT NOT NULL, granted_by TEXT NOT NULL, created_at_ms INTEGER NOT NULL,
    expires_at_ms INTEGER NOT NULL, revoked_at_ms INTEGER);
CREATE INDEX IF NOT EXISTS grants_by_principal ON grants (principal);
CREATE TABLE IF NOT EXISTS break_glass (
    id TEXT PRIMARY KEY, requester TEXT NOT NULL REFERENCES principals(id), role TEXT NOT NULL,
    scope TEXT NOT NULL, purpose TEXT NOT NULL, case_number TEXT NOT NULL, created_at_ms INTEGER NOT NULL,
    approved_by TEXT, approved_at_ms INTEGER);
CREATE TABLE IF NOT EXISTS settings (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS reads (principal TEXT NOT NULL, time_ms INTEGER NOT NULL, records INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS reads_by_principal ON reads (principal, time_ms);
";

/// The access database.
pub struct AccessStore {
    conn: Mutex<Connection>,
}

impl AccessStore {
    /// Opens (creating if needed) the access database at `path`. WAL, `synchronous = FULL`.
    pub fn open(path: &Path) -> Result<Self, AccessError> {
        let conn = Connection::open(path)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        conn.busy_timeout(std::time::Duration::from_secs(10))?;
        conn.execute_batch(SCHEMA)?;
        Ok(Self { conn: Mutex::new(conn) })
    }

    fn db(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.conn.lock().expect("access database lock poisoned")
    }

    /// Adds a principal; refuses an existing id.
    pub fn add_principal(&self, row: &PrincipalRow) -> Result<(), AccessError> {
        let inserted = self.db().execute(
            "INSERT OR IGNORE INTO principals (id, roles, created_at_ms, disabled_at_ms, blocked_at_ms) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![row.id, row.roles.join(","), row.created_at_ms, row.disabled_at_ms, row.blocked_at_ms],
        )?;
        if inserted == 0 { Err(AccessError::PrincipalExists(row.id.clone())) } else { Ok(()) }
    }

    /// The principal with this id.
    pub fn principal(&self, id: &str) -> Result<Option<PrincipalRow>, AccessError> {
        let db = self.db();
        let mut stmt = db.prepare_cached(
            "SELECT id, roles, created_at_ms, disabled_at_ms, blocked_at_ms FROM principals WHERE id = ?1",
        )?;
        Ok(stmt.query_row([id], principal_row).optional()?)
    }

    /// Every principal, by id.
    pub fn principals(&self) -> Result<Vec<PrincipalRow>, AccessError> {
        let db = self.db();
        let mut stmt = db.prepare_cached(
            "SELECT id, roles, created_at_ms, disabled_at_ms, blocked_at_ms FROM principals ORDER BY id",
        )?;
        let rows = stmt.query_map([], principal_row)?.collect::<Result<_, _>>()?;
        Ok(rows)
    }

    /// Disables a principal. False if it does not exist or was already disabled.
    pub fn disable_principal(&self, id: &str, now_ms: i64) -> Result<bool, AccessError> {
        let n = self.db().execute(
            "UPDATE principals SET disabled_at_ms = ?2 WHERE id = ?1 AND disabled_at_ms IS NULL",
            params![id, now_ms],
        )?;
        Ok(n == 1)
    }

    /// Blocks (`Some(now)`) or clears (`None`) a principal's bulk-access block. False if it does
    /// not exist or was already in that state.
    pub fn set_blocked(&self, id: &str, blocked_at_ms: Option<i64>) -> Result<bool, AccessError> {
        let sql = if blocked_at_ms.is_some() {
            "UPDATE principals SET blocked_at_ms = ?2 WHERE id = ?1 AND blocked_at_ms IS NULL"
        } else {
            "UPDATE principals SET blocked_at_ms = ?2 WHERE id = ?1 AND blocked_at_ms IS NOT NULL"
        };
        Ok(self.db().execute(sql, params![id, blocked_at_ms])? == 1)
    }

    /// Stores a token's hash.
    pub fn insert_token(&self, row: &TokenRow) -> Result<(), AccessError> {
        self.db().execute(
            "INSERT INTO tokens (id, principal, secret_hash, created_at_ms, expires_at_ms) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![row.id, row.principal, row.secret_hash.as_slice(), row.created_at_ms, row.expires_at_ms],
        )?;
        Ok(())
    }

    /// The token with this public id.
    pub fn token(&self, id: &str) -> Result<Option<TokenRow>, AccessError> {
        let db = self.db();
        let mut stmt = db.prepare_cached(
            "SELECT id, principal, secret_hash, created_at_ms, expires_at_ms FROM tokens WHERE id = ?1",
        )?;
        let row = stmt
            .query_row([id], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get::<_, Vec<u8>>(2)?, r.get(3)?, r.get(4)?))
            })
            .optional()?;
        row.map(|(id, principal, hash, created_at_ms, expires_at_ms)| {
            let secret_hash = hash.try_into().map_err(|_| AccessError::Invalid("tokens.secret_hash"))?;
            Ok(TokenRow { id, principal, secret_hash, created_at_ms, expires_at_ms })
        })
        .transpose()
    }

    /// Stores a grant; returns its id.
    pub fn insert_grant(&self, row: &GrantRow) -> Result<i64, AccessError> {
        let db = self.db();
        db.execute(
            "INSERT INTO grants (principal, role, scope, granted_by, created_at_ms, expires_at_ms, revoked_at_ms)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![
                row.principal,
                row.role,
                row.scope,
                row.granted_by,
                row.created_at_ms,
                row.expires_at_ms,
                row.revoked_at_ms
            ],
        )?;
        Ok(db.last_insert_rowid())
    }

    /// A principal's grants that are neither withdrawn nor expired at `now_ms`.
    pub fn live_grants(&self, principal: &str, now_ms: i64) -> Result<Vec<GrantRow>, AccessError> {
        let db = self.db();
        let mut stmt = db.prepare_cached(
            "SELECT id, principal, role, scope, granted_by, created_at_ms, expires_at_ms, revoked_at_ms FROM grants
             WHERE principal = ?1 AND revoked_at_ms IS NULL AND expires_at_ms > ?2 ORDER BY id",
        )?;
        let rows = stmt
            .query_map(params![principal, now_ms], |r| {
                Ok(GrantRow {
                    id: r.get(0)?,
                    principal: r.get(1)?,
                    role: r.get(2)?,
                    scope: r.get(3)?,
                    granted_by: r.get(4)?,
                    created_at_ms: r.get(5)?,
                    expires_at_ms: r.get(6)?,
                    revoked_at_ms: r.get(7)?,
                })
            })?
            .collect::<Result<_, _>>()?;
        Ok(rows)
    }

    /// Withdraws a principal's live grants of `role` (all roles when `None`). Returns how many.
    pub fn revoke_grants(&self, principal: &str, role: Option<&str>, now_ms: i64) -> Result<usize, AccessError> {
        Ok(self.db().execute(
            "UPDATE grants SET revoked_at_ms = ?3 WHERE principal = ?1 AND (?2 IS NULL OR role = ?2) AND revoked_at_ms IS NULL",
            params![principal, role, now_ms],
        )?)
    }

    /// Stores a break-glass request.
    pub fn insert_break_glass(&self, row: &BreakGlassRow) -> Result<(), AccessError> {
        self.db().execute(
            "INSERT INTO break_glass (id, requester, role, scope, purpose, case_number, created_at_ms, approved_by, approved_at_ms)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            params![row.id, row.requester, row.role, row.scope, row.purpose, row.case, row.created_at_ms, row.approved_by, row.approved_at_ms],
        )?;
        Ok(())
    }

    /// The break-glass request with this id.
    pub fn break_glass(&self, id: &str) -> Result<Option<BreakGlassRow>, AccessError> {
        let db = self.db();
        let mut stmt = db.prepare_cached(
            "SELECT id, requester, role, scope, purpose, case_number, created_at_ms, approved_by, approved_at_ms
             FROM break_glass WHERE id = ?1",
        )?;
        Ok(stmt
            .query_row([id], |r| {
                Ok(BreakGlassRow {
                    id: r.get(0)?,
                    requester: r.get(1)?,
                    role: r.get(2)?,
                    scope: r.get(3)?,
                    purpose: r.get(4)?,
                    case: r.get(5)?,
                    created_at_ms: r.get(6)?,
                    approved_by: r.get(7)?,
                    approved_at_ms: r.get(8)?,
                })
            })
            .optional()?)
    }

    /// Marks a request approved and stores the grant it makes, in one transaction. False (and
    /// nothing stored) if it was already approved: an approval cannot be replayed.
    pub fn approve_break_glass(
        &self,
        id: &str,
        approver: &str,
        now_ms: i64,
        grant: &GrantRow,
    ) -> Result<bool, AccessError> {
        let mut db = self.db();
        let tx = db.transaction()?;
        let n = tx.execute(
            "UPDATE break_glass SET approved_by = ?2, approved_at_ms = ?3 WHERE id = ?1 AND approved_by IS NULL",
            params![id, approver, now_ms],
        )?;
        if n != 1 {
            return Ok(false);
        }
        tx.execute(
            "INSERT INTO grants (principal, role, scope, granted_by, created_at_ms, expires_at_ms, revoked_at_ms)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, NULL)",
            params![
                grant.principal,
                grant.role,
                grant.scope,
                grant.granted_by,
                grant.created_at_ms,
                grant.expires_at_ms
            ],
        )?;
        tx.commit()?;
        Ok(true)
    }

    /// Counts `records` opened by `principal` at `now_ms`, and drops counts older than a day.
    pub fn add_reads(&self, principal: &str, now_ms: i64, records: u64) -> Result<(), AccessError> {
        self.add_reads_many(&[(principal, now_ms, records)])
    }

    /// Counts several reads in one transaction (one commit for a batch of concurrent reads).
    pub fn add_reads_many(&self, reads: &[(&str, i64, u64)]) -> Result<(), AccessError> {
        let mut db = self.db();
        let tx = db.transaction()?;
        {
            let mut insert =
                tx.prepare_cached("INSERT INTO reads (principal, time_ms, records) VALUES (?1, ?2, ?3)")?;
            for (principal, now_ms, records) in reads {
                insert.execute(params![principal, now_ms, *records as i64])?;
            }
            let mut prune = tx.prepare_cached("DELETE FROM reads WHERE principal = ?1 AND time_ms < ?2")?;
            let mut seen = std::collections::HashSet::new();
            for (principal, now_ms, _) in reads {
                if seen.insert(*principal) {
                    prune.execute(params![principal, now_ms - 86_400_000])?;
                }
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// Forgets a principal's read counts (a supervisor cleared its block: the window restarts).
    pub fn clear_reads(&self, principal: &str) -> Result<(), AccessError> {
        self.db().execute("DELETE FROM reads WHERE principal = ?1", [principal])?;
        Ok(())
    }

    /// A stored setting.
    pub fn setting(&self, key: &str) -> Result<Option<String>, AccessError> {
        let db = self.db();
        let mut stmt = db.prepare_cached("SELECT value FROM settings WHERE key = ?1")?;
        Ok(stmt.query_row([key], |r| r.get(0)).optional()?)
    }

    /// Stores a setting.
    pub fn set_setting(&self, key: &str, value: &str) -> Result<(), AccessError> {
        self.db().execute("INSERT OR REPLACE INTO settings (key, value) VALUES (?1, ?2)", params![key, value])?;
        Ok(())
    }

    /// Records opened by `principal` at or after `since_ms`.
    pub fn reads_since(&self, principal: &str, since_ms: i64) -> Result<u64, AccessError> {
        let db = self.db();
        let mut stmt =
            db.prepare_cached("SELECT COALESCE(SUM(records), 0) FROM reads WHERE principal = ?1 AND time_ms >= ?2")?;
        let n: i64 = stmt.query_row(params![principal, since_ms], |r| r.get(0))?;
        Ok(n as u64)
    }
}

fn principal_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<PrincipalRow> {
    let roles: String = r.get(1)?;
    Ok(PrincipalRow {
        id: r.get(0)?,
        roles: roles.split(',').filter(|s| !s.is_empty()).map(str::to_string).collect(),
        created_at_ms: r.get(2)?,
        disabled_at_ms: r.get(3)?,
        blocked_at_ms: r.get(4)?,
    })
}
