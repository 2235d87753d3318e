//! Audit events, version 1: what a log entry says, and its one canonical byte encoding.
//!
//! The encoding is specified in `docs/formats/audit-event.md`. In short: a JSON object, no
//! whitespace, keys in a fixed order (`v`, `event`, `time_ms`, `principal`, `role`, `purpose`,
//! `case`, then the kind's own fields in the order the spec lists), integers only (no floats),
//! strings restricted to printable ASCII without `"` or `\` (so no escapes exist), digests as 64
//! lowercase hex digits, absent optional values as `null`. [`Event::parse`] checks the size
//! first, parses, re-encodes and requires the bytes to be identical: there is exactly one
//! accepted encoding of each event, so its leaf hash identifies it.
//!
//! What an event never carries: plate text or its blind value, images, metadata contents, or
//! anything retention must delete. An event names records by id and content digest only.

use std::fmt::Write as _;

use serde_json::{Map, Value};

/// Version of the event format this module writes and reads.
pub const EVENT_VERSION: u64 = 1;

/// Largest encoded event, in bytes. The largest real event (an `ingested` event with a few
/// epochs) is under 700 bytes; 4 KiB leaves room and keeps entry bundles small.
pub const MAX_EVENT_SIZE: usize = 4096;

/// Longest text value, in bytes.
pub const MAX_TEXT_LEN: usize = 256;

/// Most items in a list field (the epochs of an `ingested` event: one per retention group).
pub const MAX_LIST_ITEMS: usize = 16;

/// Longest hex byte string (an epoch's SEC1 public key is 65 bytes).
pub const MAX_HEX_BYTES: usize = 128;

/// Why bytes are not a valid v1 event.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum EventError {
    /// Longer than [`MAX_EVENT_SIZE`].
    #[error("event is {0} bytes, over the {MAX_EVENT_SIZE}-byte limit")]
    TooLarge(usize),
    /// Not a JSON object.
    #[error("event is not a JSON object: {0}")]
    NotJson(String),
    /// A field is missing or has the wrong type or form.
    #[error("field {field}: {reason}")]
    Field {
        /// The field.
        field: &'static str,
        /// What is wrong.
        reason: &'static str,
    },
    /// A field this kind of event does not have.
    #[error("unexpected field {0:?}")]
    UnknownField(String),
    /// An event kind this version does not define.
    #[error("unknown event kind {0:?}")]
    UnknownKind(String),
    /// A version other than [`EVENT_VERSION`].
    #[error("event version {0} is not supported")]
    Version(u64),
    /// Valid values, but not in the canonical encoding (key order, spacing, duplicates).
    #[error("event is not in canonical form")]
    NotCanonical,
    /// A text value outside the allowed characters or length.
    #[error("text {0:?} is not allowed: 1..=256 printable ASCII bytes, no quote or backslash")]
    BadText(String),
}

/// A text value: 1..=[`MAX_TEXT_LEN`] bytes of printable ASCII other than `"` and `\`.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Text(String);

impl Text {
    /// Checks `s` and wraps it.
    pub fn new(s: impl Into<String>) -> Result<Text, EventError> {
        let s = s.into();
        let ok = !s.is_empty()
            && s.len() <= MAX_TEXT_LEN
            && s.bytes().all(|b| (0x20..0x7f).contains(&b) && b != b'"' && b != b'\\');
        if ok { Ok(Text(s)) } else { Err(EventError::BadText(s.chars().take(MAX_TEXT_LEN).collect())) }
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Text {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", self.0)
    }
}

impl std::fmt::Display for Text {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// A SHA-256 digest (content digests, query and manifest digests).
pub type Digest = [u8; 32];

/// One audit event: who did what, when, why, and under which case.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    /// When the vault performed the action (unix ms, the vault's clock).
    pub time_ms: i64,
    /// Who acted: a principal id, `device:<id>` for a lane, or `vault` for the vault itself.
    pub principal: Text,
    /// The role the principal acted in (`lane`, `admin`, `analyst`, `system`, ...).
    pub role: Text,
    /// The stated purpose, when the action needs one.
    pub purpose: Option<Text>,
    /// The case number the action is made under, when there is one.
    pub case: Option<Text>,
    /// What happened.
    pub action: Action,
}

/// What happened, with the ids and digests that identify it.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Action {
    /// A capture was stored.
    Ingested {
        /// Record id, `<device>-<sequence>`.
        record: Text,
        /// SHA-256 of the sealed capture as received.
        digest: Digest,
        /// Site from the signed header.
        site: Text,
        /// Lane from the signed header.
        lane: Text,
        /// Capture time (unix ms) from the signed header.
        capture_time_ms: i64,
        /// The capturing device.
        device: Text,
        /// The key epochs its groups are sealed to, in group order.
        epochs: Vec<Text>,
    },
    /// A record (or one part of it) was opened for a reader.
    Accessed {
        /// Record id.
        record: Text,
        /// Which part: `metadata`, `overview`, `plate-crop`, `face`, `all`.
        part: Text,
    },
    /// A search ran.
    Searched {
        /// SHA-256 over the blind values searched for (never the plate itself).
        query: Digest,
        /// How many records matched.
        results: u64,
    },
    /// An export package was produced.
    Exported {
        /// Export id.
        export: Text,
        /// Records in it (canaries excluded).
        records: u64,
        /// SHA-256 of its signed manifest.
        manifest: Digest,
        /// The recipient.
        recipient: Text,
    },
    /// A second person approved an export.
    ExportApproved {
        /// Export id.
        export: Text,
        /// Who requested it (the approver is the event's principal).
        requester: Text,
    },
    /// A grant was given.
    Granted {
        /// Who received it.
        grantee: Text,
        /// The role granted.
        grant_role: Text,
        /// What it covers (`site:<name>`, `case:<n>`, ...).
        scope: Text,
    },
    /// A grant was withdrawn.
    Revoked {
        /// Whose.
        grantee: Text,
        /// Which role.
        grant_role: Text,
    },
    /// A lane device was enrolled.
    DeviceEnrolled {
        /// Device id.
        device: Text,
        /// Site.
        site: Text,
        /// Lane.
        lane: Text,
        /// Its Ed25519 public key.
        public_key: Digest,
    },
    /// A lane device was revoked.
    DeviceRevoked {
        /// Device id.
        device: Text,
    },
    /// A key epoch was created.
    EpochCreated {
        /// Epoch id.
        epoch: Text,
        /// Site.
        site: Text,
        /// Retention class.
        class: Text,
        /// Start (unix ms, inclusive).
        not_before_ms: i64,
        /// End (unix ms, exclusive).
        not_after_ms: i64,
        /// Public key, SEC1 bytes.
        public_key: Vec<u8>,
    },
    /// An epoch key was destroyed, and with it every capture part sealed to it.
    Shredded {
        /// Epoch id.
        epoch: Text,
        /// Records that had a group under it.
        records: u64,
    },
    /// A leak scan ran.
    Scanned {
        /// Scan id.
        scan: Text,
        /// Files examined.
        files: u64,
        /// Records matched.
        matches: u64,
        /// SHA-256 of the scan report.
        report: Digest,
    },
    /// Policy (roles, retention, purposes) changed.
    PolicyChanged {
        /// SHA-256 of the new policy document.
        policy: Digest,
        /// A short summary of the change.
        summary: Text,
    },
    /// An authentication attempt failed.
    LoginFailed {
        /// The identity claimed.
        claimed: Text,
        /// Why it failed (`bad-token`, `mfa`, `expired`, ...).
        reason: Text,
    },
    /// The policy refused a request from an authenticated principal.
    Refused {
        /// What was asked (`search`, `read-metadata`, `read-image`, `approve`, ...).
        request: Text,
        /// What it was asked of: a record id, a site/lane scope, or `-`.
        target: Text,
        /// The policy's reason code (`no-grant`, `missing-purpose`, `bulk-limit`, ...).
        reason: Text,
    },
    /// A principal was created.
    PrincipalAdded {
        /// Its id.
        subject: Text,
        /// Its roles.
        roles: Vec<Text>,
    },
    /// A principal was disabled: its tokens stop working.
    PrincipalDisabled {
        /// Its id.
        subject: Text,
    },
    /// An API token was issued (only its id is logged; the vault keeps only its hash).
    TokenIssued {
        /// Whose token.
        subject: Text,
        /// The token's public id.
        token: Text,
        /// When it stops working (unix ms).
        expires_at_ms: i64,
    },
    /// A principal asked for break-glass access; it waits for a second principal's approval.
    BreakGlassRequested {
        /// The request id.
        request: Text,
        /// What it would cover (`record:<id>`, `site:<s>`, `lane:<s>/<l>`).
        scope: Text,
    },
    /// A second principal approved a break-glass request; the requester now holds a grant.
    BreakGlassApproved {
        /// The request id.
        request: Text,
        /// Who asked (the approver is the event's principal).
        requester: Text,
        /// What the grant covers.
        scope: Text,
    },
    /// A principal crossed a volume limit and is blocked until a supervisor clears it (an alert).
    BulkBlocked {
        /// Who.
        subject: Text,
        /// Records read in the window, this one included.
        reads: u64,
        /// The limit.
        limit: u64,
    },
    /// A supervisor cleared a bulk-access block.
    BulkCleared {
        /// Whose block.
        subject: Text,
    },
    /// One record group's data key was sealed again to a longer-lived epoch (legal hold,
    /// hand-off extension), so it outlives its original epoch.
    Resealed {
        /// Record id.
        record: Text,
        /// The group's retention class.
        class: Text,
        /// The epoch it was sealed to.
        from_epoch: Text,
        /// The epoch it is now also sealed to.
        to_epoch: Text,
        /// When the new epoch expires (unix ms).
        until_ms: i64,
        /// The stated legal basis (`legal-hold:<case>`, `hand-off:<basis>`).
        basis: Text,
    },
    /// A month's blind-index key was destroyed: that month's plate look-ups are gone.
    BlindKeyShredded {
        /// The month, `YYYY-MM`.
        month: Text,
        /// Blind-index rows deleted with it.
        entries: u64,
    },
}

impl Action {
    /// The event kind as written in the `event` field.
    pub fn kind(&self) -> &'static str {
        match self {
            Action::Ingested { .. } => "ingested",
            Action::Accessed { .. } => "accessed",
            Action::Searched { .. } => "searched",
            Action::Exported { .. } => "exported",
            Action::ExportApproved { .. } => "export-approved",
            Action::Granted { .. } => "granted",
            Action::Revoked { .. } => "revoked",
            Action::DeviceEnrolled { .. } => "device-enrolled",
            Action::DeviceRevoked { .. } => "device-revoked",
            Action::EpochCreated { .. } => "epoch-created",
            Action::Shredded { .. } => "shredded",
            Action::Scanned { .. } => "scanned",
            Action::PolicyChanged { .. } => "policy-changed",
            Action::LoginFailed { .. } => "login-failed",
            Action::Refused { .. } => "refused",
            Action::PrincipalAdded { .. } => "principal-added",
            Action::PrincipalDisabled { .. } => "principal-disabled",
            Action::TokenIssued { .. } => "token-issued",
            Action::BreakGlassRequested { .. } => "break-glass-requested",
            Action::BreakGlassApproved { .. } => "break-glass-approved",
            Action::BulkBlocked { .. } => "bulk-blocked",
            Action::BulkCleared { .. } => "bulk-cleared",
            Action::Resealed { .. } => "resealed",
            Action::BlindKeyShredded { .. } => "blind-key-shredded",
        }
    }
}

/// Writes fields in call order; the call order is the canonical order.
struct Encoder(String);

impl Encoder {
    fn key(&mut self, k: &str) {
        if self.0.len() > 1 {
            self.0.push(',');
        }
        self.0.push('"');
        self.0.push_str(k);
        self.0.push_str("\":");
    }
    fn text(&mut self, k: &str, v: &Text) {
        self.key(k);
        let _ = write!(self.0, "\"{}\"", v.0);
    }
    fn opt(&mut self, k: &str, v: &Option<Text>) {
        match v {
            Some(t) => self.text(k, t),
            None => {
                self.key(k);
                self.0.push_str("null");
            }
        }
    }
    fn int(&mut self, k: &str, v: i64) {
        self.key(k);
        let _ = write!(self.0, "{v}");
    }
    fn uint(&mut self, k: &str, v: u64) {
        self.key(k);
        let _ = write!(self.0, "{v}");
    }
    fn hex(&mut self, k: &str, v: &[u8]) {
        self.key(k);
        let _ = write!(self.0, "\"{}\"", hex::encode(v));
    }
    fn list(&mut self, k: &str, v: &[Text]) {
        self.key(k);
        self.0.push('[');
        for (i, t) in v.iter().enumerate() {
            if i > 0 {
                self.0.push(',');
            }
            let _ = write!(self.0, "\"{}\"", t.0);
        }
        self.0.push(']');
    }
}

impl Event {
    /// The canonical encoding: the bytes that go into the log.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut e = Encoder(String::with_capacity(256));
        e.0.push('{');
        e.uint("v", EVENT_VERSION);
        e.key("event");
        let _ = write!(e.0, "\"{}\"", self.action.kind());
        e.int("time_ms", self.time_ms);
        e.text("principal", &self.principal);
        e.text("role", &self.role);
        e.opt("purpose", &self.purpose);
        e.opt("case", &self.case);
        match &self.action {
            Action::Ingested { record, digest, site, lane, capture_time_ms, device, epochs } => {
                e.text("record", record);
                e.hex("digest", digest);
                e.text("site", site);
                e.text("lane", lane);
                e.int("capture_time_ms", *capture_time_ms);
                e.text("device", device);
                e.list("epochs", epochs);
            }
            Action::Accessed { record, part } => {
                e.text("record", record);
                e.text("part", part);
            }
            Action::Searched { query, results } => {
                e.hex("query", query);
                e.uint("results", *results);
            }
            Action::Exported { export, records, manifest, recipient } => {
                e.text("export", export);
                e.uint("records", *records);
                e.hex("manifest", manifest);
                e.text("recipient", recipient);
            }
            Action::ExportApproved { export, requester } => {
                e.text("export", export);
                e.text("requester", requester);
            }
            Action::Granted { grantee, grant_role, scope } => {
                e.text("grantee", grantee);
                e.text("grant_role", grant_role);
                e.text("scope", scope);
            }
            Action::Revoked { grantee, grant_role } => {
                e.text("grantee", grantee);
                e.text("grant_role", grant_role);
            }
            Action::DeviceEnrolled { device, site, lane, public_key } => {
                e.text("device", device);
                e.text("site", site);
                e.text("lane", lane);
                e.hex("public_key", public_key);
            }
            Action::DeviceRevoked { device } => e.text("device", device),
            Action::EpochCreated { epoch, site, class, not_before_ms, not_after_ms, public_key } => {
                e.text("epoch", epoch);
                e.text("site", site);
                e.text("class", class);
                e.int("not_before_ms", *not_before_ms);
                e.int("not_after_ms", *not_after_ms);
                e.hex("public_key", public_key);
            }
            Action::Shredded { epoch, records } => {
                e.text("epoch", epoch);
                e.uint("records", *records);
            }
            Action::Scanned { scan, files, matches, report } => {
                e.text("scan", scan);
                e.uint("files", *files);
                e.uint("matches", *matches);
                e.hex("report", report);
            }
            Action::PolicyChanged { policy, summary } => {
                e.hex("policy", policy);
                e.text("summary", summary);
            }
            Action::LoginFailed { claimed, reason } => {
                e.text("claimed", claimed);
                e.text("reason", reason);
            }
            Action::Refused { request, target, reason } => {
                e.text("request", request);
                e.text("target", target);
                e.text("reason", reason);
            }
            Action::PrincipalAdded { subject, roles } => {
                e.text("subject", subject);
                e.list("roles", roles);
            }
            Action::PrincipalDisabled { subject } => e.text("subject", subject),
            Action::TokenIssued { subject, token, expires_at_ms } => {
                e.text("subject", subject);
                e.text("token", token);
                e.int("expires_at_ms", *expires_at_ms);
            }
            Action::BreakGlassRequested { request, scope } => {
                e.text("request", request);
                e.text("scope", scope);
            }
            Action::BreakGlassApproved { request, requester, scope } => {
                e.text("request", request);
                e.text("requester", requester);
                e.text("scope", scope);
            }
            Action::BulkBlocked { subject, reads, limit } => {
                e.text("subject", subject);
                e.uint("reads", *reads);
                e.uint("limit", *limit);
            }
            Action::BulkCleared { subject } => e.text("subject", subject),
            Action::Resealed { record, class, from_epoch, to_epoch, until_ms, basis } => {
                e.text("record", record);
                e.text("class", class);
                e.text("from_epoch", from_epoch);
                e.text("to_epoch", to_epoch);
                e.int("until_ms", *until_ms);
                e.text("basis", basis);
            }
            Action::BlindKeyShredded { month, entries } => {
                e.text("month", month);
                e.uint("entries", *entries);
            }
        }
        e.0.push('}');
        e.0.into_bytes()
    }

    /// Parses one event strictly: bounded, typed, and byte-for-byte canonical.
    pub fn parse(bytes: &[u8]) -> Result<Event, EventError> {
        if bytes.len() > MAX_EVENT_SIZE {
            return Err(EventError::TooLarge(bytes.len()));
        }
        let value: Value = serde_json::from_slice(bytes).map_err(|e| EventError::NotJson(e.to_string()))?;
        let Value::Object(map) = value else { return Err(EventError::NotJson("not an object".into())) };
        let mut f = Fields(map);
        let version = f.uint("v")?;
        if version != EVENT_VERSION {
            return Err(EventError::Version(version));
        }
        let kind = f.raw_str("event")?;
        let time_ms = f.int("time_ms")?;
        let principal = f.text("principal")?;
        let role = f.text("role")?;
        let purpose = f.opt("purpose")?;
        let case = f.opt("case")?;
        let action = match kind.as_str() {
            "ingested" => Action::Ingested {
                record: f.text("record")?,
                digest: f.digest("digest")?,
                site: f.text("site")?,
                lane: f.text("lane")?,
                capture_time_ms: f.int("capture_time_ms")?,
                device: f.text("device")?,
                epochs: f.list("epochs")?,
            },
            "accessed" => Action::Accessed { record: f.text("record")?, part: f.text("part")? },
            "searched" => Action::Searched { query: f.digest("query")?, results: f.uint("results")? },
            "exported" => Action::Exported {
                export: f.text("export")?,
                records: f.uint("records")?,
                manifest: f.digest("manifest")?,
                recipient: f.text("recipient")?,
            },
            "export-approved" => Action::ExportApproved { export: f.text("export")?, requester: f.text("requester")? },
            "granted" => Action::Granted {
                grantee: f.text("grantee")?,
                grant_role: f.text("grant_role")?,
                scope: f.text("scope")?,
            },
            "revoked" => Action::Revoked { grantee: f.text("grantee")?, grant_role: f.text("grant_role")? },
            "device-enrolled" => Action::DeviceEnrolled {
                device: f.text("device")?,
                site: f.text("site")?,
                lane: f.text("lane")?,
                public_key: f.digest("public_key")?,
            },
            "device-revoked" => Action::DeviceRevoked { device: f.text("device")? },
            "epoch-created" => Action::EpochCreated {
                epoch: f.text("epoch")?,
                site: f.text("site")?,
                class: f.text("class")?,
                not_before_ms: f.int("not_before_ms")?,
                not_after_ms: f.int("not_after_ms")?,
                public_key: f.hex("public_key")?,
            },
            "shredded" => Action::Shredded { epoch: f.text("epoch")?, records: f.uint("records")? },
            "scanned" => Action::Scanned {
                scan: f.text("scan")?,
                files: f.uint("files")?,
                matches: f.uint("matches")?,
                report: f.digest("report")?,
            },
            "policy-changed" => Action::PolicyChanged { policy: f.digest("policy")?, summary: f.text("summary")? },
            "login-failed" => Action::LoginFailed { claimed: f.text("claimed")?, reason: f.text("reason")? },
            "refused" => {
                Action::Refused { request: f.text("request")?, target: f.text("target")?, reason: f.text("reason")? }
            }
            "principal-added" => Action::PrincipalAdded { subject: f.text("subject")?, roles: f.list("roles")? },
            "principal-disabled" => Action::PrincipalDisabled { subject: f.text("subject")? },
            "token-issued" => Action::TokenIssued {
                subject: f.text("subject")?,
                token: f.text("token")?,
                expires_at_ms: f.int("expires_at_ms")?,
            },
            "break-glass-requested" => {
                Action::BreakGlassRequested { request: f.text("request")?, scope: f.text("scope")? }
            }
            "break-glass-approved" => Action::BreakGlassApproved {
                request: f.text("request")?,
                requester: f.text("requester")?,
                scope: f.text("scope")?,
            },
            "bulk-blocked" => {
                Action::BulkBlocked { subject: f.text("subject")?, reads: f.uint("reads")?, limit: f.uint("limit")? }
            }
            "bulk-cleared" => Action::BulkCleared { subject: f.text("subject")? },
            "resealed" => Action::Resealed {
                record: f.text("record")?,
                class: f.text("class")?,
                from_epoch: f.text("from_epoch")?,
                to_epoch: f.text("to_epoch")?,
                until_ms: f.int("until_ms")?,
                basis: f.text("basis")?,
            },
            "blind-key-shredded" => Action::BlindKeyShredded { month: f.text("month")?, entries: f.uint("entries")? },
            other => return Err(EventError::UnknownKind(other.chars().take(64).collect())),
        };
        if let Some(extra) = f.0.keys().next() {
            return Err(EventError::UnknownField(extra.chars().take(64).collect()));
        }
        let event = Event { time_ms, principal, role, purpose, case, action };
        // Values are right; now the bytes must be the one encoding of them.
        if event.to_bytes() != bytes {
            return Err(EventError::NotCanonical);
        }
        Ok(event)
    }
}

/// Takes fields out of a parsed object by name, so leftovers can be reported.
struct Fields(Map<String, Value>);

impl Fields {
    fn take(&mut self, field: &'static str) -> Result<Value, EventError> {
        self.0.remove(field).ok_or(EventError::Field { field, reason: "missing" })
    }
    fn raw_str(&mut self, field: &'static str) -> Result<String, EventError> {
        match self.take(field)? {
            Value::String(s) => Ok(s),
            _ => Err(EventError::Field { field, reason: "not a string" }),
        }
    }
    fn text(&mut self, field: &'static str) -> Result<Text, EventError> {
        Text::new(self.raw_str(field)?)
    }
    fn opt(&mut self, field: &'static str) -> Result<Option<Text>, EventError> {
        match self.take(field)? {
            Value::Null => Ok(None),
            Value::String(s) => Ok(Some(Text::new(s)?)),
            _ => Err(EventError::Field { field, reason: "not a string or null" }),
        }
    }
    fn int(&mut self, field: &'static str) -> Result<i64, EventError> {
        self.take(field)?.as_i64().ok_or(EventError::Field { field, reason: "not an integer" })
    }
    fn uint(&mut self, field: &'static str) -> Result<u64, EventError> {
        self.take(field)?.as_u64().ok_or(EventError::Field { field, reason: "not a non-negative integer" })
    }
    fn hex(&mut self, field: &'static str) -> Result<Vec<u8>, EventError> {
        let s = self.raw_str(field)?;
        if s.len() > 2 * MAX_HEX_BYTES || s.bytes().any(|b| b.is_ascii_uppercase()) {
            return Err(EventError::Field { field, reason: "not lowercase hex of at most 128 bytes" });
        }
        hex::decode(&s).map_err(|_| EventError::Field { field, reason: "not hex" })
    }
    fn digest(&mut self, field: &'static str) -> Result<Digest, EventError> {
        self.hex(field)?.try_into().map_err(|_| EventError::Field { field, reason: "not 32 bytes" })
    }
    fn list(&mut self, field: &'static str) -> Result<Vec<Text>, EventError> {
        let Value::Array(items) = self.take(field)? else {
            return Err(EventError::Field { field, reason: "not a list" });
        };
        if items.len() > MAX_LIST_ITEMS {
            return Err(EventError::Field { field, reason: "too many items" });
        }
        items
            .into_iter()
            .map(|v| match v {
                Value::String(s) => Text::new(s),
                _ => Err(EventError::Field { field, reason: "list item is not a string" }),
            })
            .collect()
    }
}

/// Builds a [`Text`] from a value the vault itself produced (ids, site names, hex), which is
/// always in the allowed alphabet; a violation is a bug, reported as an error, not a panic.
pub(crate) fn text(s: impl Into<String>) -> Result<Text, EventError> {
    Text::new(s)
}
