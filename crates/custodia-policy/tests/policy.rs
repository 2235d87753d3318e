//! The policy file's checks (each refusal names its line) and `decide` on every rule.

use custodia_policy::*;
use proptest::prelude::*;

const HOUR: i64 = 3_600_000;
const DAY: i64 = 24 * HOUR;

fn with(replace: &str, by: &str) -> String {
    assert!(DEFAULT_POLICY.contains(replace), "{replace:?} not in the default policy");
    DEFAULT_POLICY.replacen(replace, by, 1)
}

fn line_of(text: &str, needle: &str) -> usize {
    text.lines().position(|l| l.contains(needle)).expect("needle present") + 1
}

#[test]
fn the_default_policy_carries_the_real_retention_rules() {
    let p = Policy::default();
    assert_eq!(p.retention.face_ms, 12 * HOUR);
    assert_eq!(p.retention.face_handoff_ms, 14 * DAY);
    assert_eq!(p.retention.plate_ms, 30 * DAY);
    assert_eq!(p.retention.overview_ms, 30 * DAY);
    assert_eq!(p.limits.records_per_hour.get(&Role::Officer), Some(&200));
    assert!(p.purposes().contains_key("inv"));
    for role in [Role::Admin, Role::Maintainer, Role::Auditor, Role::Responder, Role::Recipient] {
        assert!(p.permissions(role).all(|perm| !perm.is_data()), "{role} holds a data permission");
    }
}

#[test]
fn profiles_cap_every_class_and_never_lengthen() {
    let p = Policy::parse(&with("profile = \"default\"", "profile = \"cap-21d\"")).unwrap();
    assert_eq!((p.retention.plate_ms, p.retention.overview_ms, p.retention.face_ms), (21 * DAY, 21 * DAY, 12 * HOUR));
    assert_eq!(p.retention.face_handoff_ms, 14 * DAY);
    let p = Policy::parse(&with("profile = \"default\"", "profile = \"cap-3min\"")).unwrap();
    let three = 3 * 60_000;
    assert_eq!((p.retention.plate_ms, p.retention.face_ms, p.retention.face_handoff_ms), (three, three, three));
    let p = Policy::parse(&with("profile = \"default\"", "profile = \"cap-60d\"")).unwrap();
    assert_eq!(p.retention.plate_ms, 30 * DAY, "a 60-day cap does not lengthen 30 days");
    let longer = Policy::parse(
        &with("plate = \"30d\"", "plate = \"60d\"").replace("profile = \"default\"", "profile = \"cap-60d\""),
    )
    .unwrap();
    assert_eq!(longer.retention.plate_ms, 60 * DAY);
    // The same caps on demand, without changing the active profile.
    let p = Policy::default();
    assert_eq!(p.retention_under("cap-21d").unwrap().plate_ms, 21 * DAY);
    assert_eq!(p.retention_under("cap-21d").unwrap().profile, "cap-21d");
    assert!(p.retention_under("cap-7d").is_none());
    assert_eq!(p.profile_names().collect::<Vec<_>>(), ["cap-21d", "cap-3min", "cap-60d", "default"]);
}

#[test]
fn bad_files_are_refused_with_the_line_that_is_wrong() {
    let cases: Vec<(String, &str, &str)> = vec![
        (with("[limits]", "[limits]\nrecords_per_day = 5"), "records_per_day", "unknown field"),
        (with("officer = [", "officers = ["), "officers = [", "unknown role"),
        (
            with("\"read-image\", \"request-break-glass\"]", "\"read-images\", \"request-break-glass\"]"),
            "read-images",
            "unknown permission",
        ),
        (
            with("maintainer = [\"device-health\"]", "maintainer = [\"device-health\", \"read-image\"]"),
            "maintainer =",
            "never reads record data",
        ),
        (
            with("auditor = [\"read-log\"]", "auditor = [\"read-log\", \"search\"]"),
            "auditor =",
            "never reads record data",
        ),
        (with("face = \"12h\"", "face = \"15d\""), "face_handoff =", "cannot shorten"),
        (with("face = \"12h\"", "face = \"12 hours\""), "face = ", "duration"),
        (with("plate = \"30d\"", "plate = \"0d\""), "plate = ", "more than zero"),
        (with("profile = \"default\"", "profile = \"cap-7d\""), "profile = \"cap-7d\"", "not defined"),
        (with("officer = 200", "officer = 0"), "records_per_hour", "at least 1"),
        (with("version = 1", "version = 2"), "version = 2", "not supported"),
        (with("break_glass_grant = \"4h\"", "break_glass_grant = \"30d\""), "break_glass_grant", "over 7 days"),
        (with("inv = \"Criminal", "Inv = \"Criminal"), "Inv = ", "purpose code"),
        (with("version = 1", "version = \"one\""), "version = ", "invalid type"),
        (with("[purposes]", "[purposes]\nbad-line ="), "bad-line", ""),
    ];
    for (text, needle, says) in cases {
        let err = Policy::parse(&text).expect_err(needle);
        assert_eq!(err.line, line_of(&text, needle), "{needle}: {err}");
        assert!(err.message.contains(says), "{needle}: {err}");
        assert!(err.to_string().starts_with(&format!("policy line {}", err.line)));
    }
    let huge = format!("{DEFAULT_POLICY}\n# {}", "x".repeat(MAX_POLICY_BYTES));
    assert!(Policy::parse(&huge).unwrap_err().message.contains("bytes"));
    let no_purposes =
        DEFAULT_POLICY.replace("inv = ", "#").replace("imm = ", "#").replace("foia = ", "#").replace("qa = ", "#");
    assert!(Policy::parse(&no_purposes).unwrap_err().message.contains("no purpose code"));
}

#[test]
fn durations_parse_exactly() {
    assert_eq!(parse_duration("90s"), Ok(90_000));
    assert_eq!(parse_duration("3min"), Ok(180_000));
    assert_eq!(parse_duration("12h"), Ok(12 * HOUR));
    assert_eq!(parse_duration("14d"), Ok(14 * DAY));
    for bad in ["", "h", "12", "-3h", "1.5h", "3m", "12H", "99999999999999d", "0s"] {
        assert!(parse_duration(bad).is_err(), "{bad:?}");
    }
}

const SITE: &str = "anzalduas";
const NOW: i64 = 1_800_000_000_000;

fn principal(roles: &[Role], grants: Vec<Grant>) -> Principal {
    Principal { id: "p-1".into(), roles: roles.to_vec(), disabled: false, blocked: false, grants }
}

fn site_grant(role: Role) -> Grant {
    Grant { role, scope: Scope::Site(SITE.into()), expires_at_ms: NOW + HOUR }
}

const RECORD: RecordFacts<'static> = RecordFacts { id: "00ff-1", site: SITE, lane: "lane-1" };
const PURPOSE: Purpose<'static> = Purpose { code: Some("inv"), case: Some("2026-118") };

fn ask(p: &Principal, request: Request<'_>, purpose: Purpose<'_>, reads: u64) -> Decision {
    decide(&Policy::default(), p, &request, &purpose, &Usage { records_last_hour: reads }, NOW)
}

#[test]
fn data_needs_a_live_covering_grant_a_purpose_and_a_case() {
    let officer = principal(&[Role::Officer], vec![site_grant(Role::Officer)]);
    let allow = Decision::Allow { acting_role: Role::Officer };
    assert_eq!(ask(&officer, Request::ReadImage(RECORD), PURPOSE, 0), allow);
    assert_eq!(ask(&officer, Request::ReadMetadata(RECORD), PURPOSE, 0), allow);
    assert_eq!(ask(&officer, Request::Search { site: None, lane: None }, PURPOSE, 0), allow);
    let other_site = RecordFacts { site: "otay-mesa", ..RECORD };
    assert_eq!(ask(&officer, Request::ReadImage(other_site), PURPOSE, 0), Decision::Deny(Denial::NoGrant));
    assert_eq!(
        ask(&officer, Request::Search { site: Some("otay-mesa"), lane: None }, PURPOSE, 0),
        Decision::Deny(Denial::NoGrant)
    );
    let expired = principal(&[Role::Officer], vec![Grant { expires_at_ms: NOW, ..site_grant(Role::Officer) }]);
    assert_eq!(ask(&expired, Request::ReadImage(RECORD), PURPOSE, 0), Decision::Deny(Denial::NoGrant));
    let no_grant = principal(&[Role::Officer], vec![]);
    assert_eq!(ask(&no_grant, Request::ReadImage(RECORD), PURPOSE, 0), Decision::Deny(Denial::NoGrant));
    for (purpose, denial) in [
        (Purpose { code: None, ..PURPOSE }, Denial::MissingPurpose),
        (Purpose { code: Some(""), ..PURPOSE }, Denial::MissingPurpose),
        (Purpose { code: Some("curiosity"), ..PURPOSE }, Denial::UnknownPurpose),
        (Purpose { case: None, ..PURPOSE }, Denial::MissingCase),
        (Purpose { case: Some("a case with spaces"), ..PURPOSE }, Denial::MissingCase),
    ] {
        assert_eq!(ask(&officer, Request::ReadImage(RECORD), purpose, 0), Decision::Deny(denial));
    }
    let lane = principal(
        &[Role::Officer],
        vec![Grant { scope: "lane:anzalduas/lane-2".parse().unwrap(), ..site_grant(Role::Officer) }],
    );
    assert_eq!(ask(&lane, Request::ReadImage(RECORD), PURPOSE, 0), Decision::Deny(Denial::NoGrant));
    let one = principal(
        &[Role::Officer],
        vec![Grant { scope: "record:00ff-1".parse().unwrap(), ..site_grant(Role::Officer) }],
    );
    assert_eq!(ask(&one, Request::ReadImage(RECORD), PURPOSE, 0), allow);
}

#[test]
fn roles_that_never_read_data_read_nothing_without_a_grant_and_act_only_within_their_role() {
    for role in [Role::Admin, Role::Maintainer, Role::Auditor, Role::Responder, Role::Recipient] {
        let p = principal(&[role], vec![]);
        assert_eq!(ask(&p, Request::ReadImage(RECORD), PURPOSE, 0), Decision::Deny(Denial::NoGrant), "{role}");
        assert_eq!(
            ask(&p, Request::Search { site: None, lane: None }, PURPOSE, 0),
            Decision::Deny(Denial::NoGrant),
            "{role}"
        );
        // A grant of *their own* role gives nothing: the role has no data permission.
        let granted = principal(&[role], vec![site_grant(role)]);
        assert_eq!(ask(&granted, Request::ReadImage(RECORD), PURPOSE, 0), Decision::Deny(Denial::NoGrant), "{role}");
    }
    // An admin given an officer grant reads within it: the grant, not the role, opens data.
    let admin = principal(&[Role::Admin], vec![site_grant(Role::Officer)]);
    assert_eq!(ask(&admin, Request::ReadImage(RECORD), PURPOSE, 0), Decision::Allow { acting_role: Role::Officer });
    let maintainer = principal(&[Role::Maintainer], vec![]);
    let none = Purpose::default();
    assert_eq!(
        ask(&maintainer, Request::Act(Permission::DeviceHealth), none, 0),
        Decision::Allow { acting_role: Role::Maintainer }
    );
    assert_eq!(
        ask(&maintainer, Request::Act(Permission::ManagePrincipals), none, 0),
        Decision::Deny(Denial::NotPermitted(Permission::ManagePrincipals))
    );
}

#[test]
fn the_bulk_guard_stops_the_read_that_crosses_the_limit() {
    let officer = principal(&[Role::Officer], vec![site_grant(Role::Officer)]);
    assert_eq!(ask(&officer, Request::ReadImage(RECORD), PURPOSE, 199), Decision::Allow { acting_role: Role::Officer });
    assert_eq!(
        ask(&officer, Request::ReadImage(RECORD), PURPOSE, 200),
        Decision::Deny(Denial::BulkLimit { limit: 200, reads: 201 })
    );
    let blocked = Principal { blocked: true, ..officer.clone() };
    assert_eq!(ask(&blocked, Request::ReadImage(RECORD), PURPOSE, 0), Decision::Deny(Denial::Blocked));
    assert_eq!(ask(&blocked, Request::Act(Permission::RequestBreakGlass), PURPOSE, 0), Decision::Deny(Denial::Blocked));
    let disabled = Principal { disabled: true, ..officer };
    assert_eq!(ask(&disabled, Request::Act(Permission::DeviceHealth), PURPOSE, 0), Decision::Deny(Denial::Disabled));
}

#[test]
fn break_glass_needs_a_purpose_and_a_second_principal() {
    let officer = principal(&[Role::Officer], vec![]);
    assert_eq!(
        ask(&officer, Request::Act(Permission::RequestBreakGlass), PURPOSE, 0),
        Decision::Allow { acting_role: Role::Officer }
    );
    assert_eq!(
        ask(&officer, Request::Act(Permission::RequestBreakGlass), Purpose::default(), 0),
        Decision::Deny(Denial::MissingPurpose)
    );
    let supervisor = Principal { id: "sup-1".into(), ..principal(&[Role::Supervisor], vec![]) };
    let none = Purpose::default();
    assert_eq!(
        ask(&supervisor, Request::ApproveBreakGlass { requester: "p-1" }, none, 0),
        Decision::Allow { acting_role: Role::Supervisor }
    );
    assert_eq!(
        ask(&supervisor, Request::ApproveBreakGlass { requester: "sup-1" }, none, 0),
        Decision::Deny(Denial::SelfApproval)
    );
    assert_eq!(
        ask(&officer, Request::ApproveBreakGlass { requester: "p-2" }, none, 0),
        Decision::Deny(Denial::NotPermitted(Permission::ApproveBreakGlass))
    );
}

#[test]
fn scopes_parse_and_print_the_same() {
    for s in ["site:anzalduas", "lane:anzalduas/lane-1", "record:00ff-17"] {
        assert_eq!(s.parse::<Scope>().unwrap().to_string(), s);
    }
    for bad in ["", "site:", "lane:x", "everything", "site:a b", "record:../x/y"] {
        assert!(bad.parse::<Scope>().is_err(), "{bad:?}");
    }
}

fn arb_role() -> impl Strategy<Value = Role> {
    prop::sample::select(Role::ALL.to_vec())
}

fn arb_scope() -> impl Strategy<Value = Scope> {
    let site = prop::sample::select(vec!["anzalduas", "otay-mesa"]);
    let lane = prop::sample::select(vec!["lane-1", "lane-2"]);
    prop_oneof![
        site.clone().prop_map(|s| Scope::Site(s.into())),
        (site, lane).prop_map(|(s, l)| Scope::Lane { site: s.into(), lane: l.into() }),
        prop::sample::select(vec!["00ff-1", "00ff-2"]).prop_map(|r| Scope::Record(r.into())),
    ]
}

proptest! {
    /// Whatever the roles and grants, an image read is allowed only through a live grant whose
    /// role may read images and whose scope covers the record, with purpose and case stated.
    #[test]
    fn no_read_without_a_covering_live_grant(
        roles in prop::collection::vec(arb_role(), 0..4),
        grants in prop::collection::vec((arb_role(), arb_scope(), -2i64..2), 0..4),
        blocked: bool, disabled: bool, reads in 0u64..500, with_purpose: bool,
    ) {
        let policy = Policy::default();
        let grants: Vec<Grant> = grants.into_iter().map(|(role, scope, t)| Grant { role, scope, expires_at_ms: NOW + t }).collect();
        let p = Principal { id: "p".into(), roles, disabled, blocked, grants: grants.clone() };
        let purpose = if with_purpose { PURPOSE } else { Purpose::default() };
        let d = decide(&policy, &p, &Request::ReadImage(RECORD), &purpose, &Usage { records_last_hour: reads }, NOW);
        if let Decision::Allow { acting_role } = d {
            prop_assert!(!disabled && !blocked && with_purpose);
            prop_assert!(grants.iter().any(|g| g.role == acting_role && g.expires_at_ms > NOW
                && policy.role_has(g.role, Permission::ReadImage) && g.scope.covers(&RECORD)));
            prop_assert!(policy.limits.records_per_hour.get(&acting_role).is_none_or(|&l| reads < l));
        }
    }
}
