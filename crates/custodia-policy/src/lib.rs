//! Custodia's access policy: who may do what with which records, for what purpose, how much, and
//! for how long records live. A pure crate: [`decide`] takes the policy, the principal's state, the
//! request and the time, and answers; it touches no disk, clock or network.
//!
//! The rules (DESIGN.md §2, R2–R4, R7):
//!
//! - A principal holds **roles** (officer, supervisor, admin, maintainer, recipient, auditor,
//!   responder). The policy file maps each role to **permissions**. Non-data actions (manage
//!   principals, device health, read the log, ...) need a role with the permission.
//! - Touching record data (search, metadata, images) needs a live **grant**: a role given to the
//!   principal over a **scope** (a site, a lane, one record) until an expiry. The grant's role must
//!   carry the permission and its scope must cover the record. So an admin, maintainer, auditor or
//!   responder reads nothing without a grant, and the loader refuses data permissions on those
//!   roles outright.
//! - Every data request states a **purpose code** from the policy and a **case number**.
//! - **Volume limits**: records opened per rolling hour, by the role acted in. Crossing the limit
//!   denies the read; the vault then blocks the principal until a supervisor clears it.
//! - **Break-glass**: a principal asks, a *different* principal with `approve-break-glass`
//!   approves, and the requester gets a short grant. [`decide`] checks both halves.
//!
//! What it is not: storage (the vault keeps principals, grants and usage counts), authentication
//! (tokens are the vault's), or the audit log (the vault logs every decision it acts on).
//!
//! ```
//! use custodia_policy::*;
//! let policy = Policy::default();
//! let officer = Principal {
//!     id: "officer-7".into(),
//!     roles: vec![Role::Officer],
//!     disabled: false,
//!     blocked: false,
//!     grants: vec![Grant { role: Role::Officer, scope: "site:anzalduas".parse().unwrap(), expires_at_ms: 10_000 }],
//! };
//! let record = RecordFacts { id: "00ff-1", site: "anzalduas", lane: "lane-1" };
//! let purpose = Purpose { code: Some("inv"), case: Some("2026-118") };
//! let decision = decide(&policy, &officer, &Request::ReadImage(record), &purpose, &Usage::default(), 5_000);
//! assert_eq!(decision, Decision::Allow { acting_role: Role::Officer });
//! ```

#![forbid(unsafe_code)]

mod file;

use std::fmt;
use std::str::FromStr;

pub use file::{DEFAULT_POLICY, Limits, MAX_POLICY_BYTES, Policy, PolicyError, Retention, parse_duration};

/// Longest case number accepted.
pub const MAX_CASE_LEN: usize = 64;

macro_rules! named_enum {
    ($(#[$doc:meta])* $name:ident, $what:literal { $($(#[$vdoc:meta])* $variant:ident = $text:literal,)* }) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name { $($(#[$vdoc])* $variant,)* }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant,)*];

            /// The name used in policy files, tokens and audit events.
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text,)* }
            }
        }

        impl FromStr for $name {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, String> {
                match s {
                    $($text => Ok($name::$variant),)*
                    _ => Err(format!(
                        "unknown {} {:?} (known: {})",
                        $what,
                        s.chars().take(40).collect::<String>(),
                        [$($text),*].join(", ")
                    )),
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

named_enum!(
    /// A principal's role (DESIGN §2).
    Role, "role" {
        /// Searches and reads, with a purpose, a case number and a grant.
        Officer = "officer",
        /// Approves break-glass requests and exports; clears bulk-access blocks.
        Supervisor = "supervisor",
        /// Manages principals, grants, devices and policy; reads no data without a grant.
        Admin = "admin",
        /// Device health and firmware; never data.
        Maintainer = "maintainer",
        /// Receives export packages.
        Recipient = "recipient",
        /// Reads and verifies the audit log; no data.
        Auditor = "auditor",
        /// Incident scope and leak reports: counts and ids, no images.
        Responder = "responder",
    }
);

named_enum!(
    /// Something a role may be allowed to do.
    Permission, "permission" {
        /// Search records (by plate, site/lane and time, device).
        Search = "search",
        /// Read a record's metadata (the plate read, times, parts present).
        ReadMetadata = "read-metadata",
        /// Read a record's image parts.
        ReadImage = "read-image",
        /// Ask for break-glass access.
        RequestBreakGlass = "request-break-glass",
        /// Approve another principal's break-glass request.
        ApproveBreakGlass = "approve-break-glass",
        /// Clear a bulk-access block.
        ClearBulkBlock = "clear-bulk-block",
        /// Extend a record's retention (hand-off, legal hold).
        ExtendRetention = "extend-retention",
        /// Add, list and disable principals; issue tokens.
        ManagePrincipals = "manage-principals",
        /// Give and withdraw grants.
        ManageGrants = "manage-grants",
        /// Enrol and revoke lane devices.
        ManageDevices = "manage-devices",
        /// Replace the policy.
        ManagePolicy = "manage-policy",
        /// Run retention by hand.
        RunRetention = "run-retention",
        /// Device health, firmware version, configuration: no record data.
        DeviceHealth = "device-health",
        /// Read the audit log through the API.
        ReadLog = "read-log",
        /// Scope an incident (ids and counts).
        IncidentScope = "incident-scope",
        /// Scan a dump against the vault.
        LeakScan = "leak-scan",
        /// Receive export packages.
        ReceiveExport = "receive-export",
    }
);

impl Permission {
    /// Whether the permission touches record data, and so needs a grant, a purpose and a case.
    pub fn is_data(self) -> bool {
        matches!(self, Permission::Search | Permission::ReadMetadata | Permission::ReadImage)
    }
}

/// What a grant covers.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Scope {
    /// Every record of a site: `site:<site>`.
    Site(String),
    /// Every record of one lane: `lane:<site>/<lane>`.
    Lane {
        /// The site.
        site: String,
        /// The lane.
        lane: String,
    },
    /// One record: `record:<device>-<sequence>`.
    Record(String),
}

impl Scope {
    /// Whether the scope covers a record.
    pub fn covers(&self, record: &RecordFacts<'_>) -> bool {
        match self {
            Scope::Site(site) => site == record.site,
            Scope::Lane { site, lane } => site == record.site && lane == record.lane,
            Scope::Record(id) => id == record.id,
        }
    }

    /// Whether the scope may cover any record of a search narrowed to `site` and `lane`.
    fn overlaps(&self, site: Option<&str>, lane: Option<&str>) -> bool {
        match self {
            Scope::Site(s) => site.is_none_or(|x| x == s),
            Scope::Lane { site: s, lane: l } => site.is_none_or(|x| x == s) && lane.is_none_or(|x| x == l),
            Scope::Record(_) => true,
        }
    }
}

impl FromStr for Scope {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let ok = |v: &str| {
            !v.is_empty()
                && v.len() <= 128
                && v.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        };
        let bad = || {
            format!(
                "scope {:?}: write site:<site>, lane:<site>/<lane> or record:<id>",
                s.chars().take(60).collect::<String>()
            )
        };
        match s.split_once(':') {
            Some(("site", site)) if ok(site) => Ok(Scope::Site(site.into())),
            Some(("lane", rest)) => match rest.split_once('/') {
                Some((site, lane)) if ok(site) && ok(lane) => Ok(Scope::Lane { site: site.into(), lane: lane.into() }),
                _ => Err(bad()),
            },
            Some(("record", id)) if ok(id) => Ok(Scope::Record(id.into())),
            _ => Err(bad()),
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Scope::Site(site) => write!(f, "site:{site}"),
            Scope::Lane { site, lane } => write!(f, "lane:{site}/{lane}"),
            Scope::Record(id) => write!(f, "record:{id}"),
        }
    }
}

/// A role given to a principal over a scope until an expiry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Grant {
    /// The role it gives (its permissions come from the policy).
    pub role: Role,
    /// What it covers.
    pub scope: Scope,
    /// When it stops (unix ms, exclusive).
    pub expires_at_ms: i64,
}

/// A principal as the vault knows it at the moment of a request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Principal {
    /// Its id.
    pub id: String,
    /// Its roles.
    pub roles: Vec<Role>,
    /// Disabled principals can do nothing.
    pub disabled: bool,
    /// Blocked by the bulk-access guard until a supervisor clears it.
    pub blocked: bool,
    /// Its grants (expired ones are ignored).
    pub grants: Vec<Grant>,
}

/// The non-secret facts of a record that scopes are decided on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecordFacts<'a> {
    /// Record id, `<device>-<sequence>`.
    pub id: &'a str,
    /// Its site.
    pub site: &'a str,
    /// Its lane.
    pub lane: &'a str,
}

/// What is asked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Request<'a> {
    /// A search, narrowed to a site and lane when given. Allowed when some grant could cover a
    /// result; the vault then keeps only results [`visible`] to the principal.
    Search {
        /// Site filter.
        site: Option<&'a str>,
        /// Lane filter.
        lane: Option<&'a str>,
    },
    /// A record's metadata.
    ReadMetadata(RecordFacts<'a>),
    /// A record's image parts.
    ReadImage(RecordFacts<'a>),
    /// Approval of a break-glass request made by `requester`.
    ApproveBreakGlass {
        /// Who asked.
        requester: &'a str,
    },
    /// Any action that needs only a role permission (no record data).
    Act(Permission),
}

/// The purpose code and case number a request states.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Purpose<'a> {
    /// Purpose code.
    pub code: Option<&'a str>,
    /// Case number.
    pub case: Option<&'a str>,
}

/// What the principal has used against its volume limits.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Usage {
    /// Records opened in the last rolling hour.
    pub records_last_hour: u64,
}

/// The policy's answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Go ahead, acting in this role.
    Allow {
        /// The role the principal acts in (a grant's role for data requests).
        acting_role: Role,
    },
    /// No, and why.
    Deny(Denial),
}

/// Why a request was refused. [`Denial::code`] is what the audit log and problem bodies carry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Denial {
    /// The principal is disabled.
    Disabled,
    /// The principal is blocked by the bulk-access guard.
    Blocked,
    /// No purpose code given.
    MissingPurpose,
    /// A purpose code the policy does not list.
    UnknownPurpose,
    /// No case number, or a malformed one.
    MissingCase,
    /// No role of the principal carries the permission.
    NotPermitted(Permission),
    /// No live grant covers the record (or could cover the search).
    NoGrant,
    /// This read would cross the volume limit.
    BulkLimit {
        /// The limit.
        limit: u64,
        /// Records opened in the window, this one included.
        reads: u64,
    },
    /// A break-glass request approved by the principal who made it.
    SelfApproval,
}

impl Denial {
    /// A stable code for logs and problem types.
    pub fn code(&self) -> &'static str {
        match self {
            Denial::Disabled => "disabled",
            Denial::Blocked => "blocked",
            Denial::MissingPurpose => "missing-purpose",
            Denial::UnknownPurpose => "unknown-purpose",
            Denial::MissingCase => "missing-case",
            Denial::NotPermitted(_) => "not-permitted",
            Denial::NoGrant => "no-grant",
            Denial::BulkLimit { .. } => "bulk-limit",
            Denial::SelfApproval => "self-approval",
        }
    }
}

impl fmt::Display for Denial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Denial::Disabled => f.write_str("this principal is disabled"),
            Denial::Blocked => {
                f.write_str("this principal is blocked by the bulk-access guard until a supervisor clears it")
            }
            Denial::MissingPurpose => f.write_str("state a purpose code"),
            Denial::UnknownPurpose => f.write_str("the purpose code is not in the policy"),
            Denial::MissingCase => f.write_str("state a case number (1-64 characters of A-Z a-z 0-9 - _ / .)"),
            Denial::NotPermitted(p) => write!(f, "none of this principal's roles may {}", p.as_str()),
            Denial::NoGrant => f.write_str("no live grant of this principal covers the record"),
            Denial::BulkLimit { limit, reads } => {
                write!(f, "{reads} records in the last hour crosses the limit of {limit}")
            }
            Denial::SelfApproval => f.write_str("a break-glass request needs a second principal's approval"),
        }
    }
}

/// Decides a request. Pure: the same inputs always give the same answer.
///
/// Order: disabled → blocked → purpose and case (data requests) → permission → grant → volume.
pub fn decide(
    policy: &Policy,
    principal: &Principal,
    request: &Request<'_>,
    purpose: &Purpose<'_>,
    usage: &Usage,
    now_ms: i64,
) -> Decision {
    use Decision::{Allow, Deny};
    if principal.disabled {
        return Deny(Denial::Disabled);
    }
    let data_permission = match request {
        Request::Search { .. } => Some(Permission::Search),
        Request::ReadMetadata(_) => Some(Permission::ReadMetadata),
        Request::ReadImage(_) => Some(Permission::ReadImage),
        Request::ApproveBreakGlass { .. } | Request::Act(_) => None,
    };
    let Some(permission) = data_permission else {
        let permission = match request {
            Request::ApproveBreakGlass { .. } => Permission::ApproveBreakGlass,
            Request::Act(p) => *p,
            _ => unreachable!("data requests handled below"),
        };
        if matches!(request, Request::ApproveBreakGlass { requester } if *requester == principal.id) {
            return Deny(Denial::SelfApproval);
        }
        // A block stops reads and break-glass requests; the other actions are not reads.
        if principal.blocked && permission == Permission::RequestBreakGlass {
            return Deny(Denial::Blocked);
        }
        if permission == Permission::RequestBreakGlass
            && let Err(denial) = check_purpose(policy, purpose)
        {
            return Deny(denial);
        }
        return match principal.roles.iter().find(|r| policy.role_has(**r, permission)) {
            Some(role) => Allow { acting_role: *role },
            None => Deny(Denial::NotPermitted(permission)),
        };
    };
    if principal.blocked {
        return Deny(Denial::Blocked);
    }
    if let Err(denial) = check_purpose(policy, purpose) {
        return Deny(denial);
    }
    let live = |g: &&Grant| g.expires_at_ms > now_ms && policy.role_has(g.role, permission);
    let grant = match request {
        Request::Search { site, lane } => principal.grants.iter().filter(live).find(|g| g.scope.overlaps(*site, *lane)),
        Request::ReadMetadata(record) | Request::ReadImage(record) => {
            principal.grants.iter().filter(live).find(|g| g.scope.covers(record))
        }
        _ => unreachable!("only data requests reach here"),
    };
    let Some(grant) = grant else {
        // Say "not permitted" when no role could ever do it, "no grant" when a grant is missing.
        let any_role = Role::ALL.iter().any(|r| policy.role_has(*r, permission));
        return Deny(if any_role { Denial::NoGrant } else { Denial::NotPermitted(permission) });
    };
    if matches!(request, Request::ReadMetadata(_) | Request::ReadImage(_))
        && let Some(&limit) = policy.limits.records_per_hour.get(&grant.role)
    {
        let reads = usage.records_last_hour.saturating_add(1);
        if reads > limit {
            return Deny(Denial::BulkLimit { limit, reads });
        }
    }
    Allow { acting_role: grant.role }
}

/// Whether a search result is visible to the principal: a live grant whose role may search
/// covers it. The vault filters search results with this.
pub fn visible(policy: &Policy, principal: &Principal, record: &RecordFacts<'_>, now_ms: i64) -> bool {
    !principal.disabled
        && principal
            .grants
            .iter()
            .any(|g| g.expires_at_ms > now_ms && policy.role_has(g.role, Permission::Search) && g.scope.covers(record))
}

fn check_purpose(policy: &Policy, purpose: &Purpose<'_>) -> Result<(), Denial> {
    let code = purpose.code.filter(|c| !c.is_empty()).ok_or(Denial::MissingPurpose)?;
    if !policy.purposes.contains_key(code) {
        return Err(Denial::UnknownPurpose);
    }
    let case = purpose.case.ok_or(Denial::MissingCase)?;
    let ok = !case.is_empty()
        && case.len() <= MAX_CASE_LEN
        && case.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'/' | b'.'));
    if ok { Ok(()) } else { Err(Denial::MissingCase) }
}
