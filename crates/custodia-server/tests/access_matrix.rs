//! Who may call what: every role × endpoint outcome through the HTTP API (`app(vault)`, no
//! socket), against a vault holding a real sealed capture; and the refusals the access issue
//! names (missing purpose, bad, expired and disabled tokens, the bulk guard, break-glass with a
//! second principal, a replayed approval, a bad policy file), each checked in the audit log.
//!
//! The expected table is written out here by hand from DESIGN §2, not derived from the policy,
//! so a policy or handler change that widens access fails this test.

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use custodia_server::app;
use custodia_vault::audit::{Action, Actor, Event};
use custodia_vault::config::DAY_MS;
use custodia_vault::policy::{Role, Scope};
use http_body_util::BodyExt;
use tower::ServiceExt;

const TOKEN_DAYS: i64 = 30;

mod common;
use common::{FACE, NOW, PLATE, PLATE_CROP, SITE, World, contains};

async fn world() -> World {
    common::world(
        &[
            ("officer", Role::Officer, true),
            ("supervisor", Role::Supervisor, true),
            ("admin", Role::Admin, false),
            ("maintainer", Role::Maintainer, false),
            ("recipient", Role::Recipient, false),
            ("auditor", Role::Auditor, false),
            ("responder", Role::Responder, false),
            ("officer-no-grant", Role::Officer, false),
        ],
        TOKEN_DAYS,
    )
    .await
}

impl World {
    fn token(&self, who: &str) -> &str {
        &self.tokens.iter().find(|(n, _)| *n == who).unwrap().1
    }

    async fn call(
        &self,
        who: Option<&str>,
        method: &str,
        uri: &str,
        body: &str,
    ) -> (StatusCode, serde_json::Value, Vec<u8>) {
        self.call_with(who, method, uri, body, Some(("inv", "2026-118"))).await
    }

    async fn call_with(
        &self,
        who: Option<&str>,
        method: &str,
        uri: &str,
        body: &str,
        purpose: Option<(&str, &str)>,
    ) -> (StatusCode, serde_json::Value, Vec<u8>) {
        let mut request = Request::builder().method(method).uri(uri).header(header::CONTENT_TYPE, "application/json");
        if let Some(who) = who {
            request = request.header(header::AUTHORIZATION, format!("Bearer {}", self.token(who)));
        }
        if let Some((code, case)) = purpose {
            request = request.header("custodia-purpose", code).header("custodia-case", case);
        }
        let response =
            app(self.vault.clone()).oneshot(request.body(Body::from(body.to_string())).unwrap()).await.unwrap();
        let status = response.status();
        let bytes = response.into_body().collect().await.unwrap().to_bytes().to_vec();
        (status, serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null), bytes)
    }

    fn events(&self) -> Vec<Event> {
        let log = self.vault.audit_log();
        (0..log.size()).map(|i| Event::parse(&log.entry(i).unwrap()).unwrap()).collect()
    }
}

const O: u16 = 200;
const C: u16 = 201;
const F: u16 = 403;
const U: u16 = 401;

#[tokio::test]
async fn every_role_gets_exactly_its_outcome_on_every_endpoint() {
    let w = world().await;
    let r = w.record.clone();
    let endpoints: Vec<(&str, String, String)> = vec![
        ("POST", "/v1/search".into(), format!(r#"{{"site":"{SITE}"}}"#)),
        ("POST", "/v1/search".into(), format!(r#"{{"plate":"{PLATE}"}}"#)),
        ("GET", format!("/v1/records/{r}"), String::new()),
        ("GET", format!("/v1/records/{r}/plate-crop"), String::new()),
        ("GET", format!("/v1/records/{r}/face"), String::new()),
        ("GET", "/v1/devices/health".into(), String::new()),
        ("GET", "/v1/devices/config".into(), String::new()),
        ("GET", "/v1/principals".into(), String::new()),
        ("GET", "/v1/policy".into(), String::new()),
        (
            "POST",
            "/v1/grants".into(),
            format!(
                r#"{{"grantee":"auditor","role":"auditor","scope":"site:{SITE}","expires_at_ms":{}}}"#,
                NOW + DAY_MS
            ),
        ),
        ("POST", "/v1/break-glass".into(), format!(r#"{{"scope":"record:{r}"}}"#)),
        ("GET", "/log/checkpoint".into(), String::new()),
        ("GET", "/v1/epochs".into(), String::new()),
    ];
    // Rows: search site, search plate, metadata, plate crop, face, device health, device
    // config, principals, policy, grants, break-glass, log checkpoint, epochs.
    let expected: Vec<(Option<&str>, [u16; 13])> = vec![
        (Some("officer"), [O, O, O, O, O, F, F, F, F, F, C, O, O]),
        (Some("supervisor"), [O, O, O, O, O, F, F, F, F, F, C, O, O]),
        (Some("admin"), [F, F, F, F, F, O, O, O, O, C, F, O, O]),
        (Some("maintainer"), [F, F, F, F, F, O, O, F, F, F, F, O, O]),
        (Some("recipient"), [F, F, F, F, F, F, F, F, F, F, F, O, O]),
        (Some("auditor"), [F, F, F, F, F, F, F, F, F, F, F, O, O]),
        (Some("responder"), [F, F, F, F, F, F, F, F, F, F, F, O, O]),
        (Some("officer-no-grant"), [F, F, F, F, F, F, F, F, F, F, C, O, O]),
        (None, [U, U, U, U, U, U, U, U, U, U, U, O, O]),
    ];
    for (who, outcomes) in &expected {
        for ((method, uri, body), want) in endpoints.iter().zip(outcomes) {
            let before = w.events().len();
            let (status, json, bytes) = w.call(*who, method, uri, body).await;
            assert_eq!(status.as_u16(), *want, "{who:?} {method} {uri}: {json}");
            let new: Vec<Event> = w.events().into_iter().skip(before).collect();
            match *want {
                F => {
                    assert!(
                        new.iter().any(|e| matches!(e.action, Action::Refused { .. }) && e.principal.as_str() == who.unwrap()),
                        "{who:?} {uri}: refusal not logged"
                    );
                    // A refusal never carries record data.
                    assert!(
                        !contains(&bytes, PLATE.as_bytes()) && !contains(&bytes, FACE) && !contains(&bytes, PLATE_CROP)
                    );
                }
                U => assert!(new.iter().any(|e| matches!(e.action, Action::LoginFailed { .. }))),
                _ => {}
            }
            if uri.ends_with("/face") && *want == O {
                assert_eq!(bytes, FACE);
                assert!(
                    new.iter().any(|e| matches!(&e.action, Action::Accessed { part, .. } if part.as_str() == "face"))
                );
            }
            if uri.ends_with("/plate-crop") && *want == O {
                assert_eq!(bytes, PLATE_CROP);
            }
            if uri.starts_with("/v1/records/") && !uri.ends_with("face") && !uri.ends_with("crop") && *want == O {
                assert_eq!(json["metadata"]["read"]["plate"], PLATE);
                assert!(
                    new.iter()
                        .any(|e| matches!(&e.action, Action::Accessed { part, .. } if part.as_str() == "metadata"))
                );
            }
            if uri == "/v1/search" && *want == O {
                assert_eq!(json["records"].as_array().unwrap().len(), 1, "{who:?} {body}");
                let searched = new.iter().find(|e| matches!(e.action, Action::Searched { .. })).expect("search logged");
                assert_eq!(searched.purpose.as_ref().map(|p| p.as_str()), Some("inv"));
                assert_eq!(searched.case.as_ref().map(|c| c.as_str()), Some("2026-118"));
                // The plate is never in the log.
                assert!(!contains(&searched.to_bytes(), PLATE.as_bytes()));
            }
            if uri == "/v1/devices/health" && *want == O {
                assert_eq!(json["devices"][0]["records"], 1);
                assert!(!contains(&bytes, PLATE.as_bytes()));
            }
            if uri == "/v1/devices/config" && *want == O {
                assert_eq!(json["sites"][0], SITE);
                assert_eq!(json["epoch_ms"]["face"], 3_600_000);
                assert_eq!(json["epoch_signing_key"].as_str().map(str::len), Some(64));
            }
        }
    }
    // A lane's software version shows in device health once it has uploaded with it.
    w.vault.note_device_agent(&w.record, "custodia-lane/0.1.0\u{7}");
    let (_, json, _) = w.call(Some("maintainer"), "GET", "/v1/devices/health", "").await;
    assert_eq!(json["devices"][0]["agent"], "custodia-lane/0.1.0");
    // No log entry anywhere carries the plate.
    for e in w.events() {
        assert!(!contains(&e.to_bytes(), PLATE.as_bytes()), "{e:?}");
    }
}

#[tokio::test]
async fn purpose_and_case_are_required_and_checked() {
    let w = world().await;
    let uri = format!("/v1/records/{}", w.record);
    for (purpose, slug) in [
        (None, "missing-purpose"),
        (Some(("gossip", "2026-1")), "unknown-purpose"),
        (Some(("inv", "no spaces allowed")), "missing-case"),
    ] {
        let (status, json, _) = w.call_with(Some("officer"), "GET", &uri, "", purpose).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{json}");
        assert_eq!(json["type"], format!("urn:custodia:problem:{slug}"));
    }
    let refusals = w.events().iter().filter(|e| matches!(e.action, Action::Refused { .. })).count();
    assert_eq!(refusals, 3);
}

#[tokio::test]
async fn bad_expired_and_disabled_tokens_are_refused_alike_and_logged() {
    let w = world().await;
    let call = |token: String| {
        let vault = w.vault.clone();
        async move {
            let request = Request::get("/v1/devices/health")
                .header(header::AUTHORIZATION, format!("Bearer {token}"))
                .body(Body::empty())
                .unwrap();
            let response = app(vault).oneshot(request).await.unwrap();
            let status = response.status();
            let body = response.into_body().collect().await.unwrap().to_bytes();
            (status, serde_json::from_slice::<serde_json::Value>(&body).unwrap())
        }
    };
    let good = w.token("maintainer").to_string();
    assert_eq!(call(good.clone()).await.0, StatusCode::OK);
    let mut wrong_secret = good.clone();
    let last = wrong_secret.pop().unwrap();
    wrong_secret.push(if last == '0' { '1' } else { '0' });
    let unknown = format!("cst_{}_{}", "0".repeat(16), "0".repeat(64));
    let mut answers = Vec::new();
    for token in [wrong_secret, unknown, "garbage".into(), "x".repeat(10_000)] {
        answers.push(call(token).await);
    }
    w.clock.advance(TOKEN_DAYS * DAY_MS + 1);
    answers.push(call(good.clone()).await); // expired
    w.clock.set(NOW);
    w.vault.disable_principal(&Actor::system(), "maintainer").unwrap();
    answers.push(call(good).await); // disabled
    for (status, json) in &answers {
        assert_eq!(*status, StatusCode::UNAUTHORIZED);
        // One answer for every cause: nothing tells a guesser which check failed.
        assert_eq!(json, &answers[0].1);
    }
    let reasons: Vec<String> = w
        .events()
        .iter()
        .filter_map(|e| match &e.action {
            Action::LoginFailed { reason, .. } => Some(reason.to_string()),
            _ => None,
        })
        .collect();
    assert_eq!(reasons, ["bad-secret", "unknown-token", "malformed-token", "malformed-token", "expired", "disabled"]);
}

#[tokio::test]
async fn crossing_the_volume_limit_blocks_until_a_supervisor_clears_it() {
    let w = world().await;
    let text = w.vault.policy_text().replace("officer = 200", "officer = 3");
    w.vault.set_policy(&Actor::system(), &text).unwrap();
    let uri = format!("/v1/records/{}/plate-crop", w.record);
    for _ in 0..3 {
        assert_eq!(w.call(Some("officer"), "GET", &uri, "").await.0, StatusCode::OK);
    }
    let (status, json, _) = w.call(Some("officer"), "GET", &uri, "").await;
    assert_eq!((status, json["type"].as_str()), (StatusCode::FORBIDDEN, Some("urn:custodia:problem:bulk-limit")));
    let (status, json, _) = w.call(Some("officer"), "GET", &format!("/v1/records/{}", w.record), "").await;
    assert_eq!((status, json["type"].as_str()), (StatusCode::FORBIDDEN, Some("urn:custodia:problem:blocked")));
    assert!(w.events().iter().any(
        |e| matches!(&e.action, Action::BulkBlocked { subject, reads: 4, limit: 3 } if subject.as_str() == "officer")
    ));
    // The officer cannot clear their own block; a supervisor can.
    assert_eq!(
        w.call(Some("officer"), "POST", "/v1/principals/officer/clear-block", "").await.0,
        StatusCode::FORBIDDEN
    );
    assert_eq!(w.call(Some("supervisor"), "POST", "/v1/principals/officer/clear-block", "").await.0, StatusCode::OK);
    assert_eq!(w.call(Some("officer"), "GET", &uri, "").await.0, StatusCode::OK);
    assert!(
        w.events()
            .iter()
            .any(|e| matches!(&e.action, Action::BulkCleared { subject } if subject.as_str() == "officer"))
    );
}

#[tokio::test]
async fn break_glass_needs_a_second_principal_and_an_approval_is_used_once() {
    let w = world().await;
    let uri = format!("/v1/records/{}/face", w.record);
    assert_eq!(w.call(Some("officer-no-grant"), "GET", &uri, "").await.0, StatusCode::FORBIDDEN);
    let (status, json, _) = w
        .call(Some("officer-no-grant"), "POST", "/v1/break-glass", &format!(r#"{{"scope":"record:{}"}}"#, w.record))
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let id = json["request"].as_str().unwrap().to_string();
    let approve = format!("/v1/break-glass/{id}/approve");
    // Not by the requester, not by a role without approve-break-glass.
    assert_eq!(w.call(Some("officer-no-grant"), "POST", &approve, "").await.0, StatusCode::FORBIDDEN);
    assert_eq!(w.call(Some("admin"), "POST", &approve, "").await.0, StatusCode::FORBIDDEN);
    assert_eq!(w.call(Some("supervisor"), "POST", &approve, "").await.0, StatusCode::OK);
    let (status, _, bytes) = w.call(Some("officer-no-grant"), "GET", &uri, "").await;
    assert_eq!((status, bytes.as_slice()), (StatusCode::OK, FACE));
    // Replay refused and logged.
    let (status, json, _) = w.call(Some("supervisor"), "POST", &approve, "").await;
    assert_eq!((status, json["type"].as_str()), (StatusCode::CONFLICT, Some("urn:custodia:problem:replayed-approval")));
    let events = w.events();
    assert!(events.iter().any(|e| matches!(&e.action, Action::BreakGlassRequested { .. })
        && e.purpose.as_ref().is_some_and(|p| p.as_str() == "inv")));
    assert!(events.iter().any(|e| matches!(&e.action, Action::BreakGlassApproved { requester, .. } if requester.as_str() == "officer-no-grant") && e.principal.as_str() == "supervisor"));
    assert!(
        events
            .iter()
            .any(|e| matches!(&e.action, Action::Refused { reason, .. } if reason.as_str() == "replayed-approval"))
    );
    assert!(
        events
            .iter()
            .any(|e| matches!(&e.action, Action::Refused { reason, .. } if reason.as_str() == "self-approval"))
    );
    // The grant is short: gone after the policy's break-glass lifetime (4 h).
    w.clock.advance(4 * 3_600_000 + 1);
    assert_eq!(w.call(Some("officer-no-grant"), "GET", &uri, "").await.0, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn a_bad_policy_is_refused_with_its_line_and_the_running_one_stays() {
    let w = world().await;
    let before = w.vault.policy_text();
    let bad = before.replace("maintainer = [\"device-health\"]", "maintainer = [\"device-health\", \"read-image\"]");
    let line = bad.lines().position(|l| l.starts_with("maintainer =")).unwrap() + 1;
    let (status, json, _) = w.call(Some("admin"), "PUT", "/v1/policy", &bad).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(json["detail"].as_str().unwrap().contains(&format!("policy line {line}")), "{json}");
    let (_, _, current) = w.call(Some("admin"), "GET", "/v1/policy", "").await;
    assert_eq!(String::from_utf8(current).unwrap(), before);
    let unknown_key = format!("{before}\n[extra]\nx = 1\n");
    assert_eq!(w.call(Some("admin"), "PUT", "/v1/policy", &unknown_key).await.0, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(w.vault.policy_text(), before);
    // A good change is logged and in force.
    let good = before.replace("profile = \"default\"", "profile = \"cap-21d\"");
    assert_eq!(w.call(Some("admin"), "PUT", "/v1/policy", &good).await.0, StatusCode::NO_CONTENT);
    assert_eq!(w.vault.policy().retention.plate_ms, 21 * DAY_MS);
    let changes: Vec<String> = w
        .events()
        .iter()
        .filter_map(|e| match &e.action {
            Action::PolicyChanged { summary, .. } => Some(format!("{} {summary}", e.principal)),
            _ => None,
        })
        .collect();
    assert_eq!(changes.len(), 2, "{changes:?}"); // the one in force at start, and this change
    assert!(changes[1].starts_with("admin ") && changes[1].contains("cap-21d"), "{changes:?}");
}

#[tokio::test]
async fn a_face_hand_off_keeps_the_face_readable_to_its_limit_and_retention_then_shreds_it() {
    let w = world().await;
    let extend = format!("/v1/records/{}/extend", w.record);
    let face = format!("/v1/records/{}/face", w.record);
    let body =
        |days: i64, basis: &str| format!(r#"{{"class":"face","until_ms":{},"basis":"{basis}"}}"#, NOW + days * DAY_MS);
    // Officers may not extend; a supervisor may, within the hand-off period, stating a basis.
    assert_eq!(
        w.call(Some("officer"), "POST", &extend, &body(14, "hand-off:8 USC 1357")).await.0,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        w.call(Some("supervisor"), "POST", &extend, &body(15, "hand-off:8 USC 1357")).await.0,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(w.call(Some("supervisor"), "POST", &extend, &body(14, "because")).await.0, StatusCode::BAD_REQUEST);
    let (status, json, _) = w.call(Some("supervisor"), "POST", &extend, &body(13, "hand-off:8 USC 1357")).await;
    assert_eq!(status, StatusCode::OK, "{json}");
    let resealed = w.events().into_iter().find(|e| matches!(e.action, Action::Resealed { .. })).expect("reseal logged");
    assert_eq!(resealed.principal.as_str(), "supervisor");
    assert_eq!(resealed.case.as_ref().map(|c| c.as_str()), Some("2026-118"));

    // Two days on, retention has shredded the face epoch (12 h); the hand-off still opens it.
    w.clock.advance(2 * DAY_MS);
    w.vault.maintain_epochs().unwrap();
    let report = w.vault.run_retention(&w.vault.retention_rules(), &Actor::system()).await.unwrap();
    assert!(report.epochs_shredded() > 0);
    // Grants were for a day: renew the officer's.
    w.vault.grant(&Actor::system(), "officer", Role::Officer, &Scope::Site(SITE.into()), NOW + 30 * DAY_MS).unwrap();
    let (status, _, bytes) = w.call(Some("officer"), "GET", &face, "").await;
    assert_eq!((status, bytes.as_slice()), (StatusCode::OK, FACE));

    // Past the extension: gone for everyone, and the answer says so.
    w.clock.advance(12 * DAY_MS);
    w.vault.maintain_epochs().unwrap();
    w.vault.run_retention(&w.vault.retention_rules(), &Actor::system()).await.unwrap();
    let (status, json, _) = w.call(Some("officer"), "GET", &face, "").await;
    assert_eq!((status, json["type"].as_str()), (StatusCode::GONE, Some("urn:custodia:problem:shredded")), "{json}");
    // The plate crop (30 days) is still there.
    let (status, _, bytes) = w.call(Some("officer"), "GET", &format!("/v1/records/{}/plate-crop", w.record), "").await;
    assert_eq!((status, bytes.as_slice()), (StatusCode::OK, PLATE_CROP));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_reads_share_fsyncs_but_each_is_logged_before_it_is_opened() {
    let w = world().await;
    let uri = format!("/v1/records/{}/plate-crop", w.record);
    let before = w.events().len();
    let frames_before = w.vault.audit_log().size();
    let mut tasks = Vec::new();
    for _ in 0..64 {
        let (vault, token, uri) = (w.vault.clone(), w.token("supervisor").to_string(), uri.clone());
        tasks.push(tokio::spawn(async move {
            let request = Request::get(&uri)
                .header(header::AUTHORIZATION, format!("Bearer {token}"))
                .header("custodia-purpose", "qa")
                .header("custodia-case", "T-77")
                .body(Body::empty())
                .unwrap();
            let response = app(vault).oneshot(request).await.unwrap();
            (response.status(), response.into_body().collect().await.unwrap().to_bytes().to_vec())
        }));
    }
    for task in tasks {
        let (status, bytes) = task.await.unwrap();
        assert_eq!((status, bytes.as_slice()), (StatusCode::OK, PLATE_CROP));
    }
    let accessed = w.events()[before..]
        .iter()
        .filter(|e| {
            matches!(&e.action, Action::Accessed { part, .. } if part.as_str() == "plate-crop")
                && e.case.as_ref().is_some_and(|c| c.as_str() == "T-77")
        })
        .count();
    assert_eq!(accessed, 64, "one accessed event per read");
    assert_eq!(w.vault.audit_log().size() - frames_before, 64);

    // A log that cannot be written opens nothing: the read is refused with 503.
    w.vault.audit_log().inject_fault(custodia_vault::audit::LogFault::FailAppend);
    let (status, json, bytes) = w.call(Some("supervisor"), "GET", &uri, "").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{json}");
    assert!(!contains(&bytes, PLATE_CROP));
    assert_eq!(w.call(Some("supervisor"), "GET", &uri, "").await.0, StatusCode::OK, "the next read works again");
}
