//! Who may see what: principals and their tokens, grants, purpose-bound search and reads,
//! break-glass with a second principal's approval, the bulk-access guard, and the policy file.
//!
//! Every decision is `custodia_policy::decide`; this module gathers what it needs (the
//! principal's roles, live grants and last hour's reads from the access database), acts on the
//! answer, and logs it. The order for a read is the one DESIGN §3 gives: decide → log the access
//! durably → open with the epoch key → return. A refusal is logged as a `refused` event; a refusal
//! for crossing the volume limit also blocks the principal and logs a `bulk-blocked` alert.
//!
//! What it is not: authentication beyond bearer tokens (MFA is expected in front of it at scale),
//! or a transport: `custodia-server` maps HTTP onto these calls.

use std::sync::Arc;

use custodia_policy::{
    Decision, Denial, Grant, Permission, Policy, PolicyError, Principal, Purpose, RecordFacts, Request, Role, Scope,
    Usage, decide, visible,
};
use custodia_seal::metadata::CaptureMetadata;
use custodia_seal::{PartKind, SealedCapture};
use custodia_store::access::{BreakGlassRow, GrantRow, PrincipalRow, TokenRow};
use custodia_store::index::{RecordId, RecordQuery, RecordRow};
use serde::Serialize;
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq as _;
use zeroize::Zeroizing;

use crate::audit::{Action, Actor, Text};
use crate::{Vault, VaultError, civil};

/// The policy file in a vault folder.
pub const POLICY_FILE: &str = "policy.toml";
/// Longest token accepted before any look-up.
pub const MAX_TOKEN_LEN: usize = 100;
/// Prefix of every API token.
pub const TOKEN_PREFIX: &str = "cst_";
/// Longest window a search may span: 400 days.
pub const MAX_SEARCH_WINDOW_MS: i64 = 400 * DAY_MS;
const HOUR_MS: i64 = 3_600_000;
const DAY_MS: i64 = 24 * HOUR_MS;
const POLICY_DIGEST_SETTING: &str = "policy-sha256";

/// Why an access request did not go ahead.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AccessError {
    /// The token is missing, malformed, unknown, expired, or its principal is disabled. One
    /// variant for all: a caller learns nothing about which.
    #[error("authentication failed")]
    Unauthenticated,
    /// The policy refused; the refusal is in the log.
    #[error("refused ({code}): {0}", code = .0.code())]
    Denied(Denial),
    /// No such record, principal or request.
    #[error("no {what} {id}")]
    NotFound {
        /// What kind of thing.
        what: &'static str,
        /// Which.
        id: String,
    },
    /// A value in the request is malformed.
    #[error("invalid {what}: {reason}")]
    Invalid {
        /// Which value.
        what: &'static str,
        /// Why.
        reason: String,
    },
    /// A break-glass request that was already approved: an approval is used once.
    #[error("break-glass request {0} was already approved")]
    AlreadyApproved(String),
    /// The record part's key was destroyed by retention: it cannot be opened by anyone.
    #[error("{0} has been shredded")]
    Shredded(String),
    /// A policy file was refused; the running policy is unchanged.
    #[error(transparent)]
    Policy(#[from] PolicyError),
    /// Storage or the audit log failed: the action did not happen.
    #[error(transparent)]
    Vault(#[from] VaultError),
}

impl From<custodia_store::access::AccessError> for AccessError {
    fn from(e: custodia_store::access::AccessError) -> Self {
        match e {
            custodia_store::access::AccessError::PrincipalExists(id) => {
                AccessError::Invalid { what: "principal id", reason: format!("{id} already exists") }
            }
            other => AccessError::Vault(VaultError::Access(other)),
        }
    }
}

impl From<custodia_store::index::IndexError> for AccessError {
    fn from(e: custodia_store::index::IndexError) -> Self {
        AccessError::Vault(e.into())
    }
}

/// A freshly issued API token. The secret is shown once and never stored.
pub struct IssuedToken {
    /// The public id (logged, stored).
    pub id: String,
    /// The whole token, `cst_<id>_<secret>`: give it to the principal.
    pub token: Zeroizing<String>,
    /// When it stops working.
    pub expires_at_ms: i64,
}

/// What a search asks for. Exactly one of `plate`, `site`, `device` leads; `site`/`lane` also
/// narrow a plate search. The window defaults to the last 30 days.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SearchQuery {
    /// A plate (normalised to A–Z 0–9 before blinding; never stored or logged).
    #[serde(default)]
    pub plate: Option<String>,
    /// A site.
    #[serde(default)]
    pub site: Option<String>,
    /// A lane of that site.
    #[serde(default)]
    pub lane: Option<String>,
    /// A device id (hex).
    #[serde(default)]
    pub device: Option<String>,
    /// Window start, capture time (unix ms).
    #[serde(default)]
    pub from_ms: Option<i64>,
    /// Window end (exclusive).
    #[serde(default)]
    pub to_ms: Option<i64>,
    /// Most results (at most 1000).
    #[serde(default)]
    pub limit: Option<usize>,
}

/// A search result or the head of a read: what a record is, without its contents.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RecordSummary {
    /// Record id.
    pub record: String,
    /// Site.
    pub site: String,
    /// Lane.
    pub lane: String,
    /// Capture time (unix ms).
    pub capture_time_ms: i64,
    /// When the vault stored it.
    pub ingested_at_ms: i64,
    /// Image parts it holds, by role.
    pub images: Vec<String>,
    /// Whether the lane quarantined the input.
    pub quarantined: bool,
}

impl From<&RecordRow> for RecordSummary {
    fn from(row: &RecordRow) -> Self {
        Self {
            record: row.id.to_string(),
            site: row.site.clone(),
            lane: row.lane.clone(),
            capture_time_ms: row.capture_time_ms,
            ingested_at_ms: row.ingested_at_ms,
            images: row.image_roles.clone(),
            quarantined: row.quarantine_reason.is_some(),
        }
    }
}

/// A record's metadata as an authorised reader sees it.
#[derive(Clone, Debug, Serialize)]
pub struct RecordView {
    /// What the index knows.
    #[serde(flatten)]
    pub summary: RecordSummary,
    /// The opened metadata part: the plate read, candidates, engine, image list.
    pub metadata: CaptureMetadata,
}

/// An opened image part.
pub struct ImagePart {
    /// `image/jpeg` or `image/png`.
    pub media_type: &'static str,
    /// The image, as the lane sealed it (metadata already stripped at the lane).
    pub bytes: Zeroizing<Vec<u8>>,
}

/// A device's health as maintainers see it: no record data.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct DeviceHealthView {
    /// Device id.
    pub device: String,
    /// Site.
    pub site: String,
    /// Lane.
    pub lane: String,
    /// `active` or `revoked`.
    pub status: &'static str,
    /// When it was enrolled.
    pub enrolled_at_ms: i64,
    /// Captures stored from it.
    pub records: u64,
    /// When its last capture arrived.
    pub last_ingest_ms: Option<i64>,
    /// Its highest stored sequence number.
    pub last_sequence: Option<u64>,
    /// The software it last uploaded with (`custodia-lane/0.1.0`), since the vault started.
    pub agent: Option<String>,
}

/// What a lane is configured against, as maintainers check it: no record data.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct LaneFacingConfig {
    /// Sites this vault serves.
    pub sites: Vec<String>,
    /// The Ed25519 key lanes pin to check epoch sets (hex).
    pub epoch_signing_key: String,
    /// How far ahead epoch keys are published.
    pub publish_ahead_ms: i64,
    /// The oldest capture accepted, relative to now.
    pub max_capture_age_ms: i64,
    /// The clock skew tolerated for capture times.
    pub max_clock_skew_ms: i64,
    /// The largest sealed capture accepted, in bytes.
    pub max_capture_bytes: usize,
    /// Length of each retention class's key epochs.
    pub epoch_ms: std::collections::BTreeMap<&'static str, i64>,
}

/// Longest User-Agent kept for device health.
const MAX_AGENT_LEN: usize = 64;

/// Group commit for reads: concurrent readers' `accessed` events go into one log frame (one
/// fdatasync) and their read counts into one access-database transaction. Each reader still
/// waits until its own event is durable before anything is opened; it only shares the wait.
///
/// The first reader to find no write under way becomes the writer for everything queued so far;
/// the others sleep until the batch holding their event is finished.
#[derive(Default)]
pub(crate) struct ReadBatcher {
    state: std::sync::Mutex<BatchState>,
    done: std::sync::Condvar,
}

#[derive(Default)]
struct BatchState {
    /// Reads waiting for the next batch, whose number is `next_batch`.
    pending: Vec<PendingRead>,
    next_batch: u64,
    /// Every batch numbered below this is finished.
    finished: u64,
    writing: bool,
    /// Recent failed batches and why (kept short: only waiters of those batches read them).
    failed: std::collections::VecDeque<(u64, String)>,
}

struct PendingRead {
    event: crate::audit::Event,
    principal: String,
    time_ms: i64,
}

/// Most reads written in one batch (one log frame); the rest wait for the next.
const MAX_READ_BATCH: usize = 256;

/// Loads `<vault>/policy.toml` (or the embedded default when there is none).
pub(crate) fn load_policy(dir: &std::path::Path) -> Result<(Policy, String), VaultError> {
    let path = dir.join(POLICY_FILE);
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => custodia_policy::DEFAULT_POLICY.to_string(),
        Err(source) => return Err(VaultError::Io { path: path.display().to_string(), source }),
    };
    let policy = Policy::parse(&text)
        .map_err(|e| VaultError::Config { path: path.display().to_string(), reason: e.to_string() })?;
    Ok((policy, text))
}

fn text(s: impl Into<String>) -> Result<Text, AccessError> {
    Text::new(s).map_err(|e| AccessError::Invalid { what: "text", reason: e.to_string() })
}

fn check_id(what: &'static str, id: &str) -> Result<(), AccessError> {
    let ok = !id.is_empty()
        && id.len() <= 64
        && id.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'-' | b'_' | b'.'));
    if ok {
        Ok(())
    } else {
        Err(AccessError::Invalid { what, reason: format!("{id:?}: use 1-64 characters of a-z 0-9 - _ .") })
    }
}

fn request_label(request: &Request<'_>) -> (&'static str, String) {
    match request {
        Request::Search { site, lane } => (
            "search",
            match (site, lane) {
                (Some(s), Some(l)) => format!("lane:{s}/{l}"),
                (Some(s), None) => format!("site:{s}"),
                _ => "-".into(),
            },
        ),
        Request::ReadMetadata(r) => ("read-metadata", r.id.to_string()),
        Request::ReadImage(r) => ("read-image", r.id.to_string()),
        Request::ApproveBreakGlass { requester } => ("approve-break-glass", requester.to_string()),
        Request::Act(p) => (p.as_str(), "-".into()),
    }
}

impl Vault {
    /// The policy in force.
    pub fn policy(&self) -> Arc<Policy> {
        self.inner.policy.read().expect("policy lock").0.clone()
    }

    /// The text of the policy in force.
    pub fn policy_text(&self) -> String {
        self.inner.policy.read().expect("policy lock").1.clone()
    }

    /// The retention rules of the policy in force (its active jurisdiction profile applied).
    /// Read at each use, so a policy change reaches the next retention run.
    pub fn retention_rules(&self) -> crate::retention::RetentionRules {
        rules_of(&self.policy().retention)
    }

    /// The policy's retention under another of its profiles, or `None` if it defines no such
    /// profile (`custodia retention run --profile NAME`).
    pub fn retention_rules_under(&self, profile: &str) -> Option<crate::retention::RetentionRules> {
        self.policy().retention_under(profile).as_ref().map(rules_of)
    }

    /// Extends one record group's life past its epoch (a face hand-off stating its legal basis,
    /// or a legal hold) by re-sealing its data key to a longer-lived epoch; see
    /// [`Vault::reseal_group_under`]. Needs `extend-retention` and a grant covering the record.
    pub async fn extend_retention(
        &self,
        who: &str,
        record: &RecordId,
        class: custodia_seal::RetentionClass,
        until_ms: i64,
        basis: &str,
        purpose: &Purpose<'_>,
    ) -> Result<(), AccessError> {
        let row = self
            .inner
            .index
            .record(record)?
            .ok_or_else(|| AccessError::NotFound { what: "record", id: record.to_string() })?;
        let id = record.to_string();
        let facts = RecordFacts { id: &id, site: &row.site, lane: &row.lane };
        // Two checks: the role may extend retention, and a grant covers this record's data.
        let actor = self.authorize(who, &Request::Act(Permission::ExtendRetention), purpose)?;
        self.authorize(who, &Request::ReadMetadata(facts), purpose)?;
        let rules = self.retention_rules();
        self.reseal_group_under(&rules, record, class, until_ms, basis, &actor).await.map_err(|e| match e {
            VaultError::Shredded(what) => AccessError::Shredded(what),
            VaultError::Invalid { what, reason } => AccessError::Invalid { what, reason },
            other => AccessError::Vault(other),
        })
    }

    /// Logs a `policy-changed` event if the policy in force is not the last one logged (first
    /// start, or the file was edited while the vault was down).
    pub(crate) fn log_policy_if_new(&self) -> Result<(), VaultError> {
        let text = self.policy_text();
        let digest: [u8; 32] = Sha256::digest(text.as_bytes()).into();
        let known = self.inner.access.setting(POLICY_DIGEST_SETTING)?;
        if known.as_deref() == Some(hex::encode(digest).as_str()) {
            return Ok(());
        }
        let summary = format!("in force at start; retention profile {}", self.policy().retention.profile);
        let event = Actor::system().event(
            self.now_ms(),
            Action::PolicyChanged {
                policy: digest,
                summary: crate::audit::event::text(summary)
                    .map_err(|e| VaultError::Invalid { what: "audit event", reason: e.to_string() })?,
            },
        )?;
        self.logged(&[event], || Ok(self.inner.access.set_setting(POLICY_DIGEST_SETTING, &hex::encode(digest))?))
    }

    /// Replaces the policy. A file that does not parse is refused with its line and the running
    /// policy stays as it was; an accepted one is logged, written durably, then put in force.
    pub fn set_policy(&self, actor: &Actor, new_text: &str) -> Result<(), AccessError> {
        let policy = Policy::parse(new_text)?;
        let digest: [u8; 32] = Sha256::digest(new_text.as_bytes()).into();
        let old = self.policy();
        let mut changes = Vec::new();
        if old.retention != policy.retention {
            changes.push(format!("retention profile {}", policy.retention.profile));
        }
        if old.limits != policy.limits {
            changes.push("limits".to_string());
        }
        if Role::ALL.iter().any(|r| old.permissions(*r).ne(policy.permissions(*r))) {
            changes.push("role permissions".to_string());
        }
        if old.purposes() != policy.purposes() {
            changes.push("purposes".to_string());
        }
        let summary = if changes.is_empty() { "no effective change".to_string() } else { changes.join(", ") };
        let event = actor.event(self.now_ms(), Action::PolicyChanged { policy: digest, summary: text(summary)? })?;
        let path = self.inner.dir.join(POLICY_FILE);
        self.logged(&[event], || {
            crate::audit::write_durably(&path, new_text.as_bytes())?;
            self.inner.access.set_setting(POLICY_DIGEST_SETTING, &hex::encode(digest))?;
            *self.inner.policy.write().expect("policy lock") = (Arc::new(policy), new_text.to_string());
            Ok(())
        })?;
        Ok(())
    }

    /// The principal `id` as the policy sees it now: roles, block, live grants.
    fn principal_state(&self, id: &str) -> Result<Principal, AccessError> {
        let row = self
            .inner
            .access
            .principal(id)?
            .ok_or_else(|| AccessError::NotFound { what: "principal", id: id.into() })?;
        let now = self.now_ms();
        let roles = row.roles.iter().filter_map(|r| r.parse().ok()).collect();
        let grants = self
            .inner
            .access
            .live_grants(id, now)?
            .into_iter()
            .filter_map(|g| {
                Some(Grant { role: g.role.parse().ok()?, scope: g.scope.parse().ok()?, expires_at_ms: g.expires_at_ms })
            })
            .collect();
        Ok(Principal {
            id: row.id,
            roles,
            disabled: row.disabled_at_ms.is_some(),
            blocked: row.blocked_at_ms.is_some(),
            grants,
        })
    }

    /// Asks the policy whether `who` may do `request`. On a refusal, logs it (and on crossing
    /// the volume limit blocks the principal and logs the alert) before answering.
    pub fn authorize(&self, who: &str, request: &Request<'_>, purpose: &Purpose<'_>) -> Result<Actor, AccessError> {
        self.authorize_with_state(who, request, purpose).map(|(actor, _)| actor)
    }

    fn authorize_with_state(
        &self,
        who: &str,
        request: &Request<'_>,
        purpose: &Purpose<'_>,
    ) -> Result<(Actor, Principal), AccessError> {
        let policy = self.policy();
        let principal = self.principal_state(who)?;
        let now = self.now_ms();
        let usage = match request {
            Request::ReadMetadata(_) | Request::ReadImage(_) => {
                Usage { records_last_hour: self.inner.access.reads_since(who, now - HOUR_MS)? }
            }
            _ => Usage::default(),
        };
        // Only well-formed purpose and case values go into events.
        let clean = |v: Option<&str>| v.filter(|s| Text::new(*s).is_ok()).map(str::to_string);
        let mut actor = Actor {
            principal: who.to_string(),
            role: String::new(),
            purpose: clean(purpose.code),
            case: clean(purpose.case),
        };
        match decide(&policy, &principal, request, purpose, &usage, now) {
            Decision::Allow { acting_role } => {
                actor.role = acting_role.as_str().to_string();
                Ok((actor, principal))
            }
            Decision::Deny(denial) => {
                actor.role = principal.roles.first().map_or("none", |r| r.as_str()).to_string();
                let (name, target) = request_label(request);
                let mut events = vec![actor.event(
                    now,
                    Action::Refused { request: text(name)?, target: text(target)?, reason: text(denial.code())? },
                )?];
                if let Denial::BulkLimit { limit, reads } = denial {
                    events.push(actor.event(now, Action::BulkBlocked { subject: text(who)?, reads, limit })?);
                    self.logged(&events, || Ok(self.inner.access.set_blocked(who, Some(now)).map(|_| ())?))?;
                } else {
                    self.log_events(&events)?;
                }
                Err(AccessError::Denied(denial))
            }
        }
    }

    /// Checks a bearer token and returns its principal. Every failure is logged as
    /// `login-failed` and answered with the one opaque [`AccessError::Unauthenticated`].
    pub fn authenticate(&self, token: &str) -> Result<String, AccessError> {
        let (claimed, outcome) = self.check_token(token)?;
        match outcome {
            Ok(principal) => Ok(principal),
            Err(reason) => {
                let actor = Actor { principal: "anonymous".into(), role: "none".into(), purpose: None, case: None };
                let event = actor
                    .event(self.now_ms(), Action::LoginFailed { claimed: text(claimed)?, reason: text(reason)? })?;
                self.log_events(&[event])?;
                Err(AccessError::Unauthenticated)
            }
        }
    }

    /// (claimed token id, principal or the failure reason). Storage errors are the outer error.
    fn check_token(&self, token: &str) -> Result<(String, Result<String, &'static str>), AccessError> {
        let parsed = (token.len() <= MAX_TOKEN_LEN)
            .then(|| token.strip_prefix(TOKEN_PREFIX))
            .flatten()
            .and_then(|rest| rest.split_once('_'))
            .filter(|(id, secret)| {
                id.len() == 16 && secret.len() == 64 && id.bytes().chain(secret.bytes()).all(|b| b.is_ascii_hexdigit())
            });
        let Some((id, secret)) = parsed else { return Ok(("-".into(), Err("malformed-token"))) };
        let Some(row) = self.inner.access.token(id)? else { return Ok((id.into(), Err("unknown-token"))) };
        let secret = Zeroizing::new(hex::decode(secret).map_err(|_| AccessError::Unauthenticated)?);
        let hash: [u8; 32] = Sha256::digest(&secret[..]).into();
        if !bool::from(hash.ct_eq(&row.secret_hash)) {
            return Ok((id.into(), Err("bad-secret")));
        }
        if row.expires_at_ms <= self.now_ms() {
            return Ok((id.into(), Err("expired")));
        }
        match self.inner.access.principal(&row.principal)? {
            Some(p) if p.disabled_at_ms.is_none() => Ok((id.into(), Ok(row.principal))),
            _ => Ok((id.into(), Err("disabled"))),
        }
    }

    /// Adds a principal with these roles.
    pub fn add_principal(&self, actor: &Actor, id: &str, roles: &[Role]) -> Result<(), AccessError> {
        check_id("principal id", id)?;
        if roles.is_empty() {
            return Err(AccessError::Invalid { what: "roles", reason: "a principal needs at least one role".into() });
        }
        let now = self.now_ms();
        let event = actor.event(
            now,
            Action::PrincipalAdded {
                subject: text(id)?,
                roles: roles.iter().map(|r| text(r.as_str())).collect::<Result<_, _>>()?,
            },
        )?;
        if self.inner.access.principal(id)?.is_some() {
            return Err(AccessError::Invalid { what: "principal id", reason: format!("{id} already exists") });
        }
        let row = PrincipalRow {
            id: id.into(),
            roles: roles.iter().map(|r| r.as_str().to_string()).collect(),
            created_at_ms: now,
            disabled_at_ms: None,
            blocked_at_ms: None,
        };
        self.logged(&[event], || Ok(self.inner.access.add_principal(&row)?))?;
        Ok(())
    }

    /// Every principal.
    pub fn principals(&self) -> Result<Vec<PrincipalRow>, AccessError> {
        Ok(self.inner.access.principals()?)
    }

    /// Disables a principal: its tokens stop working at once.
    pub fn disable_principal(&self, actor: &Actor, id: &str) -> Result<(), AccessError> {
        if self.inner.access.principal(id)?.is_none() {
            return Err(AccessError::NotFound { what: "principal", id: id.into() });
        }
        let now = self.now_ms();
        let event = actor.event(now, Action::PrincipalDisabled { subject: text(id)? })?;
        self.logged(&[event], || Ok(self.inner.access.disable_principal(id, now).map(|_| ())?))?;
        Ok(())
    }

    /// Issues an API token for `principal`, valid for `lifetime_ms` (at most the policy's
    /// token lifetime). Only the token's hash is stored.
    pub fn issue_token(&self, actor: &Actor, principal: &str, lifetime_ms: i64) -> Result<IssuedToken, AccessError> {
        let max = self.policy().limits.token_lifetime_ms;
        if lifetime_ms <= 0 || lifetime_ms > max {
            return Err(AccessError::Invalid {
                what: "token lifetime",
                reason: format!(
                    "must be more than zero and at most the policy's token_lifetime ({} days)",
                    max / DAY_MS
                ),
            });
        }
        match self.inner.access.principal(principal)? {
            Some(p) if p.disabled_at_ms.is_none() => {}
            Some(_) => {
                return Err(AccessError::Invalid { what: "principal", reason: format!("{principal} is disabled") });
            }
            None => return Err(AccessError::NotFound { what: "principal", id: principal.into() }),
        }
        let mut id = [0u8; 8];
        let mut secret = Zeroizing::new([0u8; 32]);
        {
            let mut rng = self.inner.rng.lock().expect("rng lock");
            rng.fill_bytes(&mut id);
            rng.fill_bytes(secret.as_mut());
        }
        let id = hex::encode(id);
        let now = self.now_ms();
        let row = TokenRow {
            id: id.clone(),
            principal: principal.into(),
            secret_hash: Sha256::digest(secret.as_ref()).into(),
            created_at_ms: now,
            expires_at_ms: now + lifetime_ms,
        };
        let event = actor.event(
            now,
            Action::TokenIssued {
                subject: text(principal)?,
                token: text(id.clone())?,
                expires_at_ms: row.expires_at_ms,
            },
        )?;
        self.logged(&[event], || Ok(self.inner.access.insert_token(&row)?))?;
        let token = Zeroizing::new(format!("{TOKEN_PREFIX}{id}_{}", hex::encode(secret.as_ref())));
        Ok(IssuedToken { id, token, expires_at_ms: row.expires_at_ms })
    }

    /// Gives `grantee` the `role` over `scope` until `expires_at_ms`.
    pub fn grant(
        &self,
        actor: &Actor,
        grantee: &str,
        role: Role,
        scope: &Scope,
        expires_at_ms: i64,
    ) -> Result<(), AccessError> {
        if self.inner.access.principal(grantee)?.is_none() {
            return Err(AccessError::NotFound { what: "principal", id: grantee.into() });
        }
        let now = self.now_ms();
        if expires_at_ms <= now {
            return Err(AccessError::Invalid { what: "grant expiry", reason: "already in the past".into() });
        }
        let event = actor.event(
            now,
            Action::Granted {
                grantee: text(grantee)?,
                grant_role: text(role.as_str())?,
                scope: text(scope.to_string())?,
            },
        )?;
        let row = GrantRow {
            id: 0,
            principal: grantee.into(),
            role: role.as_str().into(),
            scope: scope.to_string(),
            granted_by: actor.principal.clone(),
            created_at_ms: now,
            expires_at_ms,
            revoked_at_ms: None,
        };
        self.logged(&[event], || Ok(self.inner.access.insert_grant(&row).map(|_| ())?))?;
        Ok(())
    }

    /// Withdraws `grantee`'s live grants of `role`. Returns how many.
    pub fn revoke_grants(&self, actor: &Actor, grantee: &str, role: Role) -> Result<usize, AccessError> {
        let now = self.now_ms();
        let event = actor.event(now, Action::Revoked { grantee: text(grantee)?, grant_role: text(role.as_str())? })?;
        Ok(self.logged(&[event], || Ok(self.inner.access.revoke_grants(grantee, Some(role.as_str()), now)?))?)
    }

    /// Searches, keeping only records the principal's grants cover, and logs the search (with a
    /// digest of what was searched for, never a plate) before returning.
    pub fn search(
        &self,
        who: &str,
        query: &SearchQuery,
        purpose: &Purpose<'_>,
    ) -> Result<Vec<RecordSummary>, AccessError> {
        let now = self.now_ms();
        let to_ms = query.to_ms.unwrap_or(now + self.inner.config.max_clock_skew_ms);
        let from_ms = query.from_ms.unwrap_or(to_ms - 30 * DAY_MS);
        if from_ms >= to_ms || to_ms - from_ms > MAX_SEARCH_WINDOW_MS {
            return Err(AccessError::Invalid {
                what: "search window",
                reason: "from_ms must be before to_ms, at most 400 days apart".into(),
            });
        }
        if query.lane.is_some() && query.site.is_none() {
            return Err(AccessError::Invalid { what: "search", reason: "a lane needs its site".into() });
        }
        let limit = query.limit.unwrap_or(100).clamp(1, custodia_store::index::MAX_SEARCH_RESULTS);
        let request = Request::Search { site: query.site.as_deref(), lane: query.lane.as_deref() };
        let (actor, principal) = self.authorize_with_state(who, &request, purpose)?;
        let mut digest = Sha256::new();
        digest.update(b"custodia search v1\0");
        let index_query = match (&query.plate, &query.site, &query.device) {
            (Some(plate), _, None) => {
                let plate = normalise_plate(plate)?;
                let mut blinds = Vec::new();
                for month in months_between(from_ms, to_ms) {
                    // Only months whose key exists: a search never creates a key, and a
                    // shredded month has nothing left to find.
                    let name = custodia_store::KeyName::new(format!("blind/{month}")).map_err(VaultError::from)?;
                    if self.inner.keystore.state(&name).map_err(VaultError::from)? != custodia_store::KeyState::Present
                    {
                        continue;
                    }
                    let key = self
                        .blind_key(&month)
                        .map_err(|e| AccessError::Invalid { what: "blind-index key", reason: e.to_string() })?;
                    let blind = crate::ingest::blind_value(&key, &plate);
                    digest.update(blind);
                    blinds.push(custodia_store::index::MonthBlind { month, blind });
                }
                RecordQuery::Plate { blinds, from_ms, to_ms }
            }
            (None, Some(site), None) => {
                digest.update(format!("site:{site}/{}", query.lane.as_deref().unwrap_or("*")));
                RecordQuery::Window { site: site.clone(), lane: query.lane.clone(), from_ms, to_ms }
            }
            (None, _, Some(device)) => {
                let device = device
                    .parse()
                    .map_err(|_| AccessError::Invalid { what: "device id", reason: "32 hex digits".into() })?;
                digest.update(format!("device:{device}"));
                RecordQuery::Device { device, from_ms, to_ms }
            }
            _ => {
                return Err(AccessError::Invalid {
                    what: "search",
                    reason: "give exactly one of plate, site (with lane), device".into(),
                });
            }
        };
        digest.update(from_ms.to_be_bytes());
        digest.update(to_ms.to_be_bytes());
        let policy = self.policy();
        let mut found = Vec::new();
        for row in self.inner.index.search_records(&index_query, limit)? {
            if let Some(site) = &query.site
                && (&row.site != site || query.lane.as_ref().is_some_and(|l| l != &row.lane))
            {
                continue;
            }
            let id = row.id.to_string();
            if visible(&policy, &principal, &RecordFacts { id: &id, site: &row.site, lane: &row.lane }, now) {
                found.push(RecordSummary::from(&row));
            }
        }
        let event =
            actor.event(now, Action::Searched { query: digest.finalize().into(), results: found.len() as u64 })?;
        self.log_events(&[event])?;
        Ok(found)
    }

    /// Authorises a read of `record`, logs it durably and counts it against the volume limit,
    /// before anything is opened.
    fn authorize_read(
        &self,
        who: &str,
        record: &RecordId,
        part: &str,
        purpose: &Purpose<'_>,
    ) -> Result<RecordRow, AccessError> {
        let row = self
            .inner
            .index
            .record(record)?
            .ok_or_else(|| AccessError::NotFound { what: "record", id: record.to_string() })?;
        let id = record.to_string();
        let facts = RecordFacts { id: &id, site: &row.site, lane: &row.lane };
        let request = if part == "metadata" { Request::ReadMetadata(facts) } else { Request::ReadImage(facts) };
        let actor = self.authorize(who, &request, purpose)?;
        let now = self.now_ms();
        let event = actor.event(now, Action::Accessed { record: text(id)?, part: text(part)? })?;
        self.log_read(PendingRead { event, principal: who.to_string(), time_ms: now })?;
        Ok(row)
    }

    /// [`Vault::authorize_read`] on the blocking pool: it waits for an fdatasync (its own or its
    /// batch's), which must not stall the async workers that serve other requests.
    async fn authorize_read_off_thread(
        &self,
        who: &str,
        record: &RecordId,
        part: &str,
        purpose: &Purpose<'_>,
    ) -> Result<RecordRow, AccessError> {
        let vault = self.clone();
        let (who, record, part) = (who.to_string(), *record, part.to_string());
        let (code, case) = (purpose.code.map(str::to_string), purpose.case.map(str::to_string));
        tokio::task::spawn_blocking(move || {
            vault.authorize_read(&who, &record, &part, &Purpose { code: code.as_deref(), case: case.as_deref() })
        })
        .await
        .map_err(|e| AccessError::Vault(VaultError::Invalid { what: "read task", reason: e.to_string() }))?
    }

    /// Makes one read's `accessed` event durable and counts the read, sharing the fdatasync and
    /// the commit with whatever other reads are waiting (see [`ReadBatcher`]).
    fn log_read(&self, read: PendingRead) -> Result<(), AccessError> {
        let batcher = &self.inner.reads;
        let mut state = batcher.state.lock().expect("read batcher lock");
        // Which batch this read lands in: the current one, or a later one if it is full.
        let mine = state.next_batch + (state.pending.len() / MAX_READ_BATCH) as u64;
        state.pending.push(read);
        loop {
            if state.finished > mine {
                return match state.failed.iter().find(|(batch, _)| *batch == mine) {
                    Some((_, reason)) => Err(AccessError::Vault(VaultError::Invalid {
                        what: "audit log",
                        reason: format!("the read was not logged, so nothing was opened: {reason}"),
                    })),
                    None => Ok(()),
                };
            }
            if !state.writing {
                state.writing = true;
                let take = state.pending.len().min(MAX_READ_BATCH);
                let batch: Vec<PendingRead> = state.pending.drain(..take).collect();
                let number = state.next_batch;
                state.next_batch += 1;
                drop(state);
                let events: Vec<crate::audit::Event> = batch.iter().map(|r| r.event.clone()).collect();
                let counts: Vec<(&str, i64, u64)> =
                    batch.iter().map(|r| (r.principal.as_str(), r.time_ms, 1)).collect();
                // The counts are the effect: a crash between the frame and the commit loses at
                // most this batch's counts (the bulk guard undercounts by it), never an event.
                let result = self.logged(&events, || Ok(self.inner.access.add_reads_many(&counts)?));
                state = batcher.state.lock().expect("read batcher lock");
                state.writing = false;
                state.finished = number + 1;
                if let Err(error) = result {
                    tracing::error!(%error, reads = batch.len(), "logging a batch of reads failed; none of them was opened");
                    state.failed.push_back((number, error.to_string()));
                    while state.failed.len() > 64 {
                        state.failed.pop_front();
                    }
                }
                batcher.done.notify_all();
                continue;
            }
            state = batcher.done.wait(state).expect("read batcher lock");
        }
    }

    /// Reads a record's metadata: decide → log → open the metadata part.
    pub async fn read_metadata(
        &self,
        who: &str,
        record: &RecordId,
        purpose: &Purpose<'_>,
    ) -> Result<RecordView, AccessError> {
        let row = self.authorize_read_off_thread(who, record, "metadata", purpose).await?;
        let blob = self.sealed_blob(&row.blob_key).await?;
        let (metadata, _) = self.open_metadata(record, &blob)?;
        Ok(RecordView { summary: RecordSummary::from(&row), metadata })
    }

    /// Reads one image part of a record: decide → log → open → return. `part` is an image
    /// role (`overview`, `plate-crop`, `vehicle-crop`, `face`), with `-2`, `-3`... for the
    /// second and later image of the same role.
    pub async fn read_image(
        &self,
        who: &str,
        record: &RecordId,
        part: &str,
        purpose: &Purpose<'_>,
    ) -> Result<ImagePart, AccessError> {
        let (role, nth) = match part.rsplit_once('-') {
            Some((role, n)) if n.bytes().all(|b| b.is_ascii_digit()) && !n.is_empty() => {
                (role, n.parse::<usize>().map_err(|_| AccessError::Invalid { what: "part", reason: part.into() })?)
            }
            _ => (part, 1),
        };
        if !["overview", "plate-crop", "vehicle-crop", "face"].contains(&role) || nth == 0 || nth > 16 {
            return Err(AccessError::Invalid {
                what: "part",
                reason: format!("{part:?}: overview, plate-crop, vehicle-crop or face, optionally -N"),
            });
        }
        let row = self.authorize_read_off_thread(who, record, part, purpose).await?;
        let blob = self.sealed_blob(&row.blob_key).await?;
        let (metadata, capture) = self.open_metadata(record, &blob)?;
        let image = metadata
            .images
            .iter()
            .filter(|i| i.role.as_str() == role)
            .nth(nth - 1)
            .ok_or_else(|| AccessError::NotFound { what: "image part", id: format!("{record}/{part}") })?;
        let (group, index) = (image.group as usize, image.part as usize);
        let kind = capture.groups().get(group).and_then(|g| g.parts().get(index)).map(|p| p.kind());
        let media_type = match kind {
            Some(PartKind::Jpeg) => "image/jpeg",
            Some(PartKind::Png) => "image/png",
            _ => return Err(AccessError::NotFound { what: "image part", id: format!("{record}/{part}") }),
        };
        let key = self.open_group_key(record, &capture, group)?;
        let bytes =
            capture.open_part(group, index, &key).map_err(|_| AccessError::Shredded(format!("{record}/{part}")))?;
        Ok(ImagePart { media_type, bytes })
    }

    fn open_metadata<'b>(
        &self,
        record: &RecordId,
        blob: &'b [u8],
    ) -> Result<(CaptureMetadata, SealedCapture<'b>), AccessError> {
        let capture = SealedCapture::parse(blob)
            .map_err(|e| AccessError::Vault(VaultError::Invalid { what: "stored capture", reason: e.to_string() }))?;
        let (group, part) = capture
            .metadata_part()
            .ok_or_else(|| AccessError::NotFound { what: "metadata part", id: record.to_string() })?;
        let key = self.open_group_key(record, &capture, group)?;
        let plaintext =
            capture.open_part(group, part, &key).map_err(|_| AccessError::Shredded(format!("{record} metadata")))?;
        let metadata = CaptureMetadata::from_slice(&plaintext)
            .map_err(|e| AccessError::Vault(VaultError::Invalid { what: "stored metadata", reason: e.to_string() }))?;
        Ok((metadata, capture))
    }

    /// A group's data key: [`Vault::group_data_key_in`] is the one place that knows about
    /// epochs and reseals; here its "shredded" answer becomes the reader's.
    fn open_group_key(
        &self,
        record: &RecordId,
        capture: &SealedCapture<'_>,
        group: usize,
    ) -> Result<custodia_seal::DataKey, AccessError> {
        let group = u8::try_from(group)
            .map_err(|_| AccessError::NotFound { what: "group", id: format!("{record}/{group}") })?;
        self.group_data_key_in(record, capture, group).map_err(|e| match e {
            VaultError::Shredded(what) => AccessError::Shredded(what),
            other => AccessError::Vault(other),
        })
    }

    /// Asks for break-glass access to `scope`; returns the request id a second principal approves.
    pub fn request_break_glass(&self, who: &str, scope: &str, purpose: &Purpose<'_>) -> Result<String, AccessError> {
        let scope: Scope = scope.parse().map_err(|reason| AccessError::Invalid { what: "scope", reason })?;
        let actor = self.authorize(who, &Request::Act(Permission::RequestBreakGlass), purpose)?;
        let mut id = [0u8; 8];
        self.inner.rng.lock().expect("rng lock").fill_bytes(&mut id);
        let id = format!("bg-{}", hex::encode(id));
        let now = self.now_ms();
        let row = BreakGlassRow {
            id: id.clone(),
            requester: who.into(),
            role: actor.role.clone(),
            scope: scope.to_string(),
            purpose: actor.purpose.clone().unwrap_or_default(),
            case: actor.case.clone().unwrap_or_default(),
            created_at_ms: now,
            approved_by: None,
            approved_at_ms: None,
        };
        let event = actor
            .event(now, Action::BreakGlassRequested { request: text(id.clone())?, scope: text(scope.to_string())? })?;
        self.logged(&[event], || Ok(self.inner.access.insert_break_glass(&row)?))?;
        Ok(id)
    }

    /// Approves a break-glass request: a second principal with `approve-break-glass`. The
    /// requester gets a grant for the policy's break-glass lifetime. An approval is used once.
    pub fn approve_break_glass(&self, who: &str, request: &str) -> Result<(), AccessError> {
        let row = self
            .inner
            .access
            .break_glass(request)?
            .ok_or_else(|| AccessError::NotFound { what: "break-glass request", id: request.into() })?;
        let actor =
            self.authorize(who, &Request::ApproveBreakGlass { requester: &row.requester }, &Purpose::default())?;
        let actor = Actor {
            purpose: Some(row.purpose.clone()).filter(|p| !p.is_empty()),
            case: Some(row.case.clone()).filter(|c| !c.is_empty()),
            ..actor
        };
        let now = self.now_ms();
        let replayed = |vault: &Vault| -> Result<AccessError, AccessError> {
            let event = actor.event(
                now,
                Action::Refused {
                    request: text("approve-break-glass")?,
                    target: text(request)?,
                    reason: text("replayed-approval")?,
                },
            )?;
            vault.log_events(&[event])?;
            Ok(AccessError::AlreadyApproved(request.into()))
        };
        if row.approved_by.is_some() {
            return Err(replayed(self)?);
        }
        let grant = GrantRow {
            id: 0,
            principal: row.requester.clone(),
            role: row.role.clone(),
            scope: row.scope.clone(),
            granted_by: format!("break-glass:{request}"),
            created_at_ms: now,
            expires_at_ms: now + self.policy().limits.break_glass_grant_ms,
            revoked_at_ms: None,
        };
        let event = actor.event(
            now,
            Action::BreakGlassApproved {
                request: text(request)?,
                requester: text(row.requester.clone())?,
                scope: text(row.scope.clone())?,
            },
        )?;
        let approved =
            self.logged(&[event], || Ok(self.inner.access.approve_break_glass(request, who, now, &grant)?))?;
        if approved { Ok(()) } else { Err(replayed(self)?) }
    }

    /// A supervisor clears a principal's bulk-access block; its read window starts afresh.
    pub fn clear_block(&self, who: &str, subject: &str) -> Result<(), AccessError> {
        let actor = self.authorize(who, &Request::Act(Permission::ClearBulkBlock), &Purpose::default())?;
        let row = self
            .inner
            .access
            .principal(subject)?
            .ok_or_else(|| AccessError::NotFound { what: "principal", id: subject.into() })?;
        if row.blocked_at_ms.is_none() {
            return Err(AccessError::Invalid { what: "principal", reason: format!("{subject} is not blocked") });
        }
        let event = actor.event(self.now_ms(), Action::BulkCleared { subject: text(subject)? })?;
        self.logged(&[event], || {
            self.inner.access.clear_reads(subject)?;
            self.inner.access.set_blocked(subject, None)?;
            Ok(())
        })?;
        Ok(())
    }

    /// Device health for maintainers: enrolment, counts and last arrival; no record data.
    pub fn device_health(&self) -> Result<Vec<DeviceHealthView>, AccessError> {
        let health: std::collections::HashMap<_, _> =
            self.inner.index.device_health()?.into_iter().map(|h| (h.device, h)).collect();
        let agents = self.inner.agents.lock().expect("agents lock").clone();
        Ok(self
            .inner
            .index
            .devices()?
            .into_iter()
            .map(|d| {
                let h = health.get(&d.id);
                DeviceHealthView {
                    device: d.id.to_string(),
                    site: d.site,
                    lane: d.lane,
                    status: match d.status {
                        custodia_store::index::DeviceStatus::Active => "active",
                        custodia_store::index::DeviceStatus::Revoked => "revoked",
                    },
                    enrolled_at_ms: d.enrolled_at_ms,
                    records: h.map_or(0, |h| h.records),
                    last_ingest_ms: h.and_then(|h| h.last_ingest_ms),
                    last_sequence: h.and_then(|h| h.last_sequence),
                    agent: agents.get(&d.id).map(|(agent, _)| agent.clone()),
                }
            })
            .collect())
    }
}

impl Vault {
    /// Notes the software a device uploaded with (its User-Agent), for device health. Only
    /// printable ASCII is kept, at most 64 characters; nothing else about the request.
    pub fn note_device_agent(&self, record_id: &str, agent: &str) {
        let Ok(record) = record_id.parse::<RecordId>() else { return };
        let agent: String = agent.chars().filter(|c| c.is_ascii_graphic() || *c == ' ').take(MAX_AGENT_LEN).collect();
        if !agent.is_empty() {
            self.inner.agents.lock().expect("agents lock").insert(record.device, (agent, self.now_ms()));
        }
    }

    /// The settings a lane is configured against, for maintainers.
    pub fn lane_facing_config(&self) -> Result<LaneFacingConfig, AccessError> {
        let config = &self.inner.config;
        let classes = [
            custodia_seal::RetentionClass::Face,
            custodia_seal::RetentionClass::Plate,
            custodia_seal::RetentionClass::Overview,
        ];
        Ok(LaneFacingConfig {
            sites: config.sites.clone(),
            epoch_signing_key: hex::encode(self.epoch_signing_public_key()?),
            publish_ahead_ms: config.publish_ahead_ms,
            max_capture_age_ms: config.max_capture_age_ms,
            max_clock_skew_ms: config.max_clock_skew_ms,
            max_capture_bytes: crate::ingest::MAX_CAPTURE_BYTES,
            epoch_ms: classes.iter().map(|c| (c.as_str(), config.epoch_length_ms(*c))).collect(),
        })
    }
}

/// The vault's retention rules from the policy's periods.
fn rules_of(r: &custodia_policy::Retention) -> crate::retention::RetentionRules {
    crate::retention::RetentionRules {
        face_ms: r.face_ms,
        face_handoff_ms: r.face_handoff_ms,
        plate_ms: r.plate_ms,
        overview_ms: r.overview_ms,
    }
}

/// A plate as the lane normalises it: upper-case A–Z and 0–9, separators dropped.
fn normalise_plate(plate: &str) -> Result<String, AccessError> {
    let normal: String = plate.chars().filter(|c| c.is_ascii_alphanumeric()).map(|c| c.to_ascii_uppercase()).collect();
    if normal.is_empty() || normal.len() > 16 {
        // The plate itself is never echoed back: error bodies must not carry plate text.
        return Err(AccessError::Invalid { what: "plate", reason: "1-16 letters and digits".into() });
    }
    Ok(normal)
}

/// `YYYY-MM` labels of every month that `[from_ms, to_ms)` touches.
fn months_between(from_ms: i64, to_ms: i64) -> Vec<String> {
    let mut months = Vec::new();
    let mut t = from_ms;
    while t < to_ms && months.len() < 14 {
        let label = civil::month_label(t);
        if months.last() != Some(&label) {
            months.push(label);
        }
        t += DAY_MS;
    }
    let last = civil::month_label(to_ms - 1);
    if months.last() != Some(&last) {
        months.push(last);
    }
    months
}
