//! The policy file (TOML, version 1): parsing, and the checks that refuse a policy that cannot be
//! meant, each naming the line that is wrong.
//!
//! What it is not: a place that decides anything. It turns text into a [`Policy`] or a
//! [`PolicyError`]; `decide` in the crate root uses the result.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;

use serde::Deserialize;
use toml::Spanned;

use crate::{Permission, Role};

/// Largest policy file accepted, in bytes. Real ones are a few KiB.
pub const MAX_POLICY_BYTES: usize = 64 * 1024;
/// Most purpose codes.
pub const MAX_PURPOSES: usize = 256;
/// Longest retention or lifetime anyone can mean: ten years.
pub const MAX_DURATION_MS: i64 = 10 * 366 * DAY_MS;
const DAY_MS: i64 = 86_400_000;

/// The default policy the vault starts with (`default-policy.toml` in this crate).
pub const DEFAULT_POLICY: &str = include_str!("../default-policy.toml");

/// Why a policy file was refused: where, and what is wrong.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("policy line {line}, column {column}: {message}")]
pub struct PolicyError {
    /// 1-based line of the offending key or value (0 when the whole file is at fault).
    pub line: usize,
    /// 1-based column.
    pub column: usize,
    /// What is wrong, in words.
    pub message: String,
}

/// How long each retention class lives after its key epoch closes, as the policy sets it (the
/// active profile's cap already applied).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Retention {
    /// The active jurisdiction profile.
    pub profile: String,
    /// Occupant faces (default 12 h).
    pub face_ms: i64,
    /// Occupant faces after an explicit hand-off stating its legal basis (default 14 d).
    pub face_handoff_ms: i64,
    /// Plate reads and plate crops (default 30 d, capped by the profile).
    pub plate_ms: i64,
    /// Vehicle overviews (default 30 d, capped by the profile).
    pub overview_ms: i64,
}

impl Retention {
    /// These periods under a jurisdiction's cap: every class, hand-offs included, is kept at
    /// most `cap_ms`. A cap only ever shortens; to keep plates longer, raise `plate` itself.
    fn capped(&self, profile: &str, cap_ms: i64) -> Retention {
        Retention {
            profile: profile.to_string(),
            face_ms: self.face_ms.min(cap_ms),
            face_handoff_ms: self.face_handoff_ms.min(cap_ms),
            plate_ms: self.plate_ms.min(cap_ms),
            overview_ms: self.overview_ms.min(cap_ms),
        }
    }
}

/// Volume limits and lifetimes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Records a principal may open per rolling hour, by the role it acts in; absent = no limit.
    pub records_per_hour: BTreeMap<Role, u64>,
    /// Longest API token lifetime.
    pub token_lifetime_ms: i64,
    /// Lifetime of a grant made by an approved break-glass request.
    pub break_glass_grant_ms: i64,
}

/// A checked policy. Valid by construction: the only way to get one is [`Policy::parse`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Policy {
    pub(crate) roles: BTreeMap<Role, BTreeSet<Permission>>,
    pub(crate) purposes: BTreeMap<String, String>,
    /// Retention, with the active profile applied.
    pub retention: Retention,
    /// Retention as configured, before any profile's cap.
    pub(crate) uncapped: Retention,
    /// Jurisdiction profiles: name → cap.
    pub(crate) profiles: BTreeMap<String, i64>,
    /// Volume limits and lifetimes.
    pub limits: Limits,
}

impl Default for Policy {
    fn default() -> Self {
        Policy::parse(DEFAULT_POLICY).expect("the embedded default policy is valid")
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileV1 {
    version: Spanned<i64>,
    roles: BTreeMap<Spanned<String>, Vec<Spanned<String>>>,
    purposes: BTreeMap<Spanned<String>, Spanned<String>>,
    retention: RetentionFile,
    limits: LimitsFile,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RetentionFile {
    profile: Spanned<String>,
    face: Spanned<String>,
    face_handoff: Spanned<String>,
    plate: Spanned<String>,
    overview: Spanned<String>,
    profiles: BTreeMap<Spanned<String>, Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LimitsFile {
    records_per_hour: BTreeMap<Spanned<String>, Spanned<i64>>,
    token_lifetime: Spanned<String>,
    break_glass_grant: Spanned<String>,
}

/// Roles whose holders never touch record data, whatever the file says (DESIGN §2).
const NO_DATA_ROLES: [Role; 5] = [Role::Admin, Role::Maintainer, Role::Recipient, Role::Auditor, Role::Responder];

impl Policy {
    /// Parses and checks a policy file. Refuses unknown keys, unknown roles and permissions,
    /// data permissions on roles that must never read data, empty or malformed purpose codes,
    /// durations that are zero, negative, unparsable or longer than ten years, a face retention
    /// longer than its hand-off extension, an active profile that is not defined, and limits
    /// below one.
    pub fn parse(text: &str) -> Result<Policy, PolicyError> {
        let at = |span: Range<usize>, message: String| locate(text, span.start, message);
        if text.len() > MAX_POLICY_BYTES {
            return Err(PolicyError { line: 0, column: 0, message: format!("file is over {MAX_POLICY_BYTES} bytes") });
        }
        let file: FileV1 = toml::from_str(text).map_err(|e| {
            let start = e.span().map_or(0, |s| s.start);
            let message = e.message().trim_end().to_string();
            locate(text, start, message)
        })?;
        if *file.version.get_ref() != 1 {
            return Err(at(
                file.version.span(),
                format!("version {} is not supported (this build reads 1)", file.version.get_ref()),
            ));
        }

        let mut roles = BTreeMap::new();
        for (name, permissions) in &file.roles {
            let role: Role = name.get_ref().parse().map_err(|m| at(name.span(), m))?;
            let mut set = BTreeSet::new();
            for permission in permissions {
                let p: Permission = permission.get_ref().parse().map_err(|m| at(permission.span(), m))?;
                if p.is_data() && NO_DATA_ROLES.contains(&role) {
                    return Err(at(
                        permission.span(),
                        format!(
                            "{} may not hold {}: that role never reads record data (give a grant instead)",
                            role.as_str(),
                            p.as_str()
                        ),
                    ));
                }
                if !set.insert(p) {
                    return Err(at(permission.span(), format!("{} is listed twice for {}", p.as_str(), role.as_str())));
                }
            }
            roles.insert(role, set);
        }

        if file.purposes.is_empty() {
            return Err(locate(
                text,
                0,
                "[purposes] lists no purpose code: no search or read could ever be made".into(),
            ));
        }
        if file.purposes.len() > MAX_PURPOSES {
            return Err(locate(text, 0, format!("more than {MAX_PURPOSES} purpose codes")));
        }
        let mut purposes = BTreeMap::new();
        for (code, description) in &file.purposes {
            let ok = !code.get_ref().is_empty()
                && code.get_ref().len() <= 32
                && code.get_ref().bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
            if !ok {
                return Err(at(
                    code.span(),
                    format!("purpose code {:?}: use 1-32 characters of a-z 0-9 -", code.get_ref()),
                ));
            }
            if description.get_ref().trim().is_empty() {
                return Err(at(description.span(), format!("purpose {} needs a description", code.get_ref())));
            }
            purposes.insert(code.get_ref().clone(), description.get_ref().clone());
        }

        let r = &file.retention;
        let duration = |s: &Spanned<String>| parse_duration(s.get_ref()).map_err(|m| at(s.span(), m));
        let face_ms = duration(&r.face)?;
        let face_handoff_ms = duration(&r.face_handoff)?;
        if face_ms > face_handoff_ms {
            return Err(at(
                r.face_handoff.span(),
                format!(
                    "face_handoff ({}) is shorter than face ({}): a hand-off extends retention, it cannot shorten it",
                    r.face_handoff.get_ref(),
                    r.face.get_ref()
                ),
            ));
        }
        let mut caps = BTreeMap::new();
        for (name, cap) in &r.profiles {
            if name.get_ref().is_empty() || !name.get_ref().bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
                return Err(at(name.span(), format!("profile name {:?}: use letters, digits and -", name.get_ref())));
            }
            caps.insert(name.get_ref().clone(), duration(cap)?);
        }
        let Some(&cap) = caps.get(r.profile.get_ref()) else {
            return Err(at(
                r.profile.span(),
                format!(
                    "profile {:?} is not defined in [retention.profiles] (defined: {})",
                    r.profile.get_ref(),
                    caps.keys().cloned().collect::<Vec<_>>().join(", ")
                ),
            ));
        };
        let uncapped = Retention {
            profile: "uncapped".into(),
            face_ms,
            face_handoff_ms,
            plate_ms: duration(&r.plate)?,
            overview_ms: duration(&r.overview)?,
        };
        let retention = uncapped.capped(r.profile.get_ref(), cap);

        let l = &file.limits;
        let mut records_per_hour = BTreeMap::new();
        for (name, limit) in &l.records_per_hour {
            let role: Role = name.get_ref().parse().map_err(|m| at(name.span(), m))?;
            let value = *limit.get_ref();
            if value < 1 {
                return Err(at(
                    limit.span(),
                    format!(
                        "records_per_hour for {} must be at least 1 (remove the role to lift the limit)",
                        role.as_str()
                    ),
                ));
            }
            records_per_hour.insert(role, value as u64);
        }
        let token_lifetime_ms = duration(&l.token_lifetime)?;
        let break_glass_grant_ms = duration(&l.break_glass_grant)?;
        if break_glass_grant_ms > 7 * DAY_MS {
            return Err(at(
                l.break_glass_grant.span(),
                "break_glass_grant is over 7 days: break-glass is for emergencies, make a grant instead".into(),
            ));
        }
        Ok(Policy {
            roles,
            purposes,
            retention,
            uncapped,
            profiles: caps,
            limits: Limits { records_per_hour, token_lifetime_ms, break_glass_grant_ms },
        })
    }

    /// Retention under the named profile instead of the active one, or `None` if the policy
    /// does not define it (`custodia retention run --profile NAME`).
    pub fn retention_under(&self, profile: &str) -> Option<Retention> {
        self.profiles.get(profile).map(|&cap| self.uncapped.capped(profile, cap))
    }

    /// The names of the jurisdiction profiles the policy defines.
    pub fn profile_names(&self) -> impl Iterator<Item = &str> {
        self.profiles.keys().map(String::as_str)
    }

    /// The permissions of a role (empty when the policy does not list it).
    pub fn permissions(&self, role: Role) -> impl Iterator<Item = Permission> + '_ {
        self.roles.get(&role).into_iter().flatten().copied()
    }

    /// Whether `role` has `permission`.
    pub fn role_has(&self, role: Role, permission: Permission) -> bool {
        self.roles.get(&role).is_some_and(|set| set.contains(&permission))
    }

    /// The purpose codes and their descriptions.
    pub fn purposes(&self) -> &BTreeMap<String, String> {
        &self.purposes
    }
}

/// `90s`, `3min`, `12h`, `14d`: a positive whole number and a unit, at most ten years.
pub fn parse_duration(text: &str) -> Result<i64, String> {
    let digits = text.bytes().take_while(u8::is_ascii_digit).count();
    let (number, unit) = text.split_at(digits);
    let unit_ms = match unit {
        "s" => 1_000,
        "min" => 60_000,
        "h" => 3_600_000,
        "d" => DAY_MS,
        _ => return Err(format!("duration {text:?}: write a whole number and one of s, min, h, d (e.g. \"12h\")")),
    };
    let n: i64 = number.parse().map_err(|_| format!("duration {text:?}: no number before the unit"))?;
    let ms = n.checked_mul(unit_ms).filter(|&ms| ms > 0 && ms <= MAX_DURATION_MS);
    ms.ok_or_else(|| format!("duration {text:?} must be more than zero and at most ten years"))
}

fn locate(text: &str, offset: usize, message: String) -> PolicyError {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    PolicyError { line, column, message }
}
