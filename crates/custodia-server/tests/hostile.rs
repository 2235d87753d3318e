//! Hostile input against the HTTP API (issue 6, part 3 and 4).
//!
//! Over a real loopback socket (`custodia_server::run`), where the behaviour is about the
//! connection: a slowloris client trickling headers is cut off by the header read timeout while
//! other clients keep being served; a stalled body upload is cut off by the body idle timeout;
//! a truncated body stores nothing. Without a socket (`app(vault)` + `oneshot`): wrong content
//! types on every POST route, unknown JSON fields, oversized JSON, truncated JSON bodies and
//! non-UTF-8 policies, each answered with `application/problem+json`.
//!
//! And a property test: over random hostile requests (plates in search bodies, record ids,
//! purposes and case numbers carrying plate-like text, junk headers) against a vault holding a
//! real capture with a known plate, no error body carries the request's plate text, the stored
//! plate, the vault's folder, or SQLite/Rust internals.

use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use custodia_server::{BODY_IDLE_TIMEOUT, HEADER_READ_TIMEOUT, SEALED_CAPTURE_MEDIA_TYPE, app};
use custodia_vault::Vault;
use custodia_vault::policy::Role;
use http_body_util::BodyExt;
use proptest::prelude::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tower::ServiceExt;

mod common;
use common::{NOW, PLATE, SITE, World};

/// Tokens for the roles these tests act as (a day's grant for officer and supervisor).
async fn world() -> World {
    common::world(
        &[
            ("officer", Role::Officer, true),
            ("supervisor", Role::Supervisor, true),
            ("admin", Role::Admin, false),
            ("maintainer", Role::Maintainer, false),
            ("officer-no-grant", Role::Officer, false),
        ],
        1,
    )
    .await
}

impl World {
    fn token(&self, who: &str) -> String {
        self.tokens.iter().find(|(n, _)| *n == who).map(|(_, t)| t.clone()).unwrap_or_else(|| who.to_string())
    }
}

struct Reply {
    status: StatusCode,
    content_type: Option<String>,
    body: Vec<u8>,
}

impl Reply {
    fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }
}

async fn send(vault: &Vault, request: Request<Body>) -> Reply {
    let response = app(vault.clone()).oneshot(request).await.unwrap();
    let status = response.status();
    let content_type = response.headers().get(header::CONTENT_TYPE).map(|v| v.to_str().unwrap().to_string());
    let body = response.into_body().collect().await.unwrap().to_bytes().to_vec();
    Reply { status, content_type, body }
}

#[track_caller]
fn assert_problem(reply: &Reply, status: StatusCode, slug: &str) {
    let json = reply.json();
    assert_eq!(reply.status, status, "{json} {}", String::from_utf8_lossy(&reply.body));
    assert_is_problem(reply);
    assert_eq!(json["type"], format!("urn:custodia:problem:{slug}"), "{json}");
}

#[track_caller]
fn assert_is_problem(reply: &Reply) {
    let json = reply.json();
    assert_eq!(
        reply.content_type.as_deref(),
        Some("application/problem+json"),
        "{} {}",
        reply.status,
        String::from_utf8_lossy(&reply.body)
    );
    assert_eq!(json["status"], reply.status.as_u16(), "{json}");
    assert!(json["type"].as_str().is_some_and(|t| t.starts_with("urn:custodia:problem:")), "{json}");
    assert!(json["title"].as_str().is_some_and(|t| !t.is_empty()), "{json}");
}

/// A request as an authenticated principal, with purpose and case stated.
fn request(w: &World, who: &str, method: &str, uri: &str, content_type: Option<&str>, body: Body) -> Request<Body> {
    let mut r = Request::builder()
        .method(method)
        .uri(uri)
        .header(header::AUTHORIZATION, format!("Bearer {}", w.token(who)))
        .header("custodia-purpose", "inv")
        .header("custodia-case", "2026-118");
    if let Some(ct) = content_type {
        r = r.header(header::CONTENT_TYPE, ct);
    }
    r.body(body).unwrap()
}

/// Every JSON-bodied route, with the principal allowed to call it and a valid body.
fn json_routes(w: &World) -> Vec<(&'static str, &'static str, String, String)> {
    vec![
        ("officer", "POST", "/v1/search".into(), format!(r#"{{"plate":"{PLATE}"}}"#)),
        (
            "admin",
            "POST",
            "/v1/grants".into(),
            format!(
                r#"{{"grantee":"maintainer","role":"maintainer","scope":"site:{SITE}","expires_at_ms":{}}}"#,
                NOW + 1000
            ),
        ),
        ("admin", "POST", "/v1/principals".into(), r#"{"id":"new-officer","roles":["officer"]}"#.into()),
        ("officer-no-grant", "POST", "/v1/break-glass".into(), format!(r#"{{"scope":"record:{}"}}"#, w.record)),
    ]
}

// ---------------------------------------------------------------------------------------------
// Over a socket

struct Server {
    addr: std::net::SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

async fn serve(vault: Vault) -> Server {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(custodia_server::run(listener, vault, async move {
        let _ = stopped.await;
    }));
    Server { addr, stop: Some(stop), task }
}

impl Server {
    async fn shutdown(mut self) {
        self.stop.take().unwrap().send(()).unwrap();
        tokio::time::timeout(Duration::from_secs(20), self.task)
            .await
            .expect("server drains and stops")
            .unwrap()
            .unwrap();
    }
}

/// One GET over a fresh connection, with a deadline; the status code.
async fn quick_get(addr: std::net::SocketAddr, path: &str) -> u16 {
    let client = reqwest::Client::builder().timeout(Duration::from_secs(3)).build().unwrap();
    client.get(format!("http://{addr}{path}")).send().await.expect("served while others stall").status().as_u16()
}

/// Reads until the peer closes (or resets) the connection; what arrived. Panics at `deadline`.
async fn read_until_closed(stream: &mut TcpStream, deadline: Duration) -> Vec<u8> {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let ended = tokio::time::timeout(deadline, async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    assert!(ended.is_ok(), "server kept the stalled connection open for {deadline:?}");
    got
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slowloris_headers_are_cut_off_and_others_are_served_meanwhile() {
    let w = world().await;
    let server = serve(w.vault.clone()).await;
    let addr = server.addr;
    // Eight clients each trickle a request head at one byte per second, never finishing it.
    let head = format!("GET /healthz HTTP/1.1\r\nHost: {addr}\r\nX-Padding: {}\r\n", "a".repeat(200));
    let started = Instant::now();
    let trickles: Vec<_> = (0..8)
        .map(|_| {
            let head = head.clone();
            tokio::spawn(async move {
                let mut stream = TcpStream::connect(addr).await.unwrap();
                for b in head.bytes() {
                    if stream.write_all(&[b]).await.is_err() {
                        return Instant::now(); // the server closed it under us
                    }
                    let mut probe = [0u8; 256];
                    // A closed connection reads as EOF (or reset) between our bytes.
                    match tokio::time::timeout(Duration::from_secs(1), stream.read(&mut probe)).await {
                        Ok(Ok(0) | Err(_)) => return Instant::now(),
                        Ok(Ok(_)) => return Instant::now(), // an error response also ends it
                        Err(_) => {}
                    }
                }
                panic!("server waited for a whole {}-byte head sent at 1 byte/s", head.len());
            })
        })
        .collect();
    // Meanwhile everyone else is served, promptly, again and again.
    for _ in 0..5 {
        let t = Instant::now();
        assert_eq!(quick_get(addr, "/healthz").await, 200);
        assert!(t.elapsed() < Duration::from_secs(3), "a healthz took {:?} under slowloris", t.elapsed());
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    for t in trickles {
        let cut = t.await.unwrap().duration_since(started);
        assert!(cut >= HEADER_READ_TIMEOUT - Duration::from_secs(1), "cut after {cut:?}: too early for a live client");
        assert!(cut <= HEADER_READ_TIMEOUT + Duration::from_secs(4), "slowloris held a connection for {cut:?}");
    }
    assert_eq!(quick_get(addr, "/healthz").await, 200);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_body_upload_is_cut_off_and_stores_nothing() {
    let w = world().await;
    let server = serve(w.vault.clone()).await;
    let addr = server.addr;
    let before = w.vault.record_count().unwrap();
    for (path, content_type, auth) in [
        ("/v1/captures", SEALED_CAPTURE_MEDIA_TYPE, String::new()),
        (
            "/v1/search",
            "application/json",
            format!(
                "Authorization: Bearer {}\r\ncustodia-purpose: inv\r\ncustodia-case: 2026-118\r\n",
                w.token("officer")
            ),
        ),
    ] {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: {content_type}\r\nContent-Length: 100000\r\n{auth}\r\n"
        );
        stream.write_all(head.as_bytes()).await.unwrap();
        stream.write_all(&[b'{'; 100]).await.unwrap();
        let started = Instant::now();
        // While it stalls, others are served.
        assert_eq!(quick_get(addr, "/healthz").await, 200);
        let answer = read_until_closed(&mut stream, BODY_IDLE_TIMEOUT + Duration::from_secs(5)).await;
        let took = started.elapsed();
        assert!(took >= BODY_IDLE_TIMEOUT - Duration::from_secs(1), "{path}: cut after {took:?}");
        // If an answer made it out before the close, it is a problem, not a success.
        if !answer.is_empty() {
            let text = String::from_utf8_lossy(&answer);
            assert!(text.starts_with("HTTP/1.1 4"), "{path}: {text}");
            assert!(text.to_ascii_lowercase().contains("content-type: application/problem+json"), "{path}: {text}");
        }
    }
    assert_eq!(w.vault.record_count().unwrap(), before);
    server.shutdown().await;
}

#[tokio::test]
async fn a_truncated_upload_over_the_socket_stores_nothing() {
    let w = world().await;
    let server = serve(w.vault.clone()).await;
    let addr = server.addr;
    let before = w.vault.record_count().unwrap();
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST /v1/captures HTTP/1.1\r\nHost: {addr}\r\nContent-Type: {SEALED_CAPTURE_MEDIA_TYPE}\r\nContent-Length: 5000\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(&[0u8; 1000]).await.unwrap();
    stream.shutdown().await.unwrap(); // the client goes away mid-body
    let answer = read_until_closed(&mut stream, Duration::from_secs(5)).await;
    if !answer.is_empty() {
        let text = String::from_utf8_lossy(&answer);
        assert!(text.starts_with("HTTP/1.1 400"), "{text}");
        assert!(text.contains("urn:custodia:problem:incomplete-body"), "{text}");
    }
    assert_eq!(w.vault.record_count().unwrap(), before);
    assert_eq!(quick_get(addr, "/healthz").await, 200);
    server.shutdown().await;
}

// ---------------------------------------------------------------------------------------------
// Without a socket

/// A body that yields `bytes` and then fails, as a connection that drops mid-body does.
fn truncated(bytes: &'static [u8]) -> Body {
    let chunks: Vec<Result<bytes::Bytes, std::io::Error>> = vec![
        Ok(bytes::Bytes::from_static(bytes)),
        Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "connection reset")),
    ];
    Body::from_stream(futures::stream::iter(chunks))
}

#[tokio::test]
async fn truncated_bodies_are_problems_on_every_route_with_a_body() {
    let w = world().await;
    let capture = Request::post("/v1/captures")
        .header(header::CONTENT_TYPE, SEALED_CAPTURE_MEDIA_TYPE)
        .body(truncated(b"\x01\x02\x03"))
        .unwrap();
    assert_problem(&send(&w.vault, capture).await, StatusCode::BAD_REQUEST, "incomplete-body");
    for (who, method, uri, _) in json_routes(&w) {
        let reply =
            send(&w.vault, request(&w, who, method, &uri, Some("application/json"), truncated(b"{\"plate\":"))).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{uri}");
        assert_is_problem(&reply);
        assert!(
            !String::from_utf8_lossy(&reply.body).contains("connection reset"),
            "{uri}: internal error text echoed"
        );
    }
    let reply = send(
        &w.vault,
        request(&w, "admin", "PUT", "/v1/policy", Some("application/toml"), truncated(b"version = 1\n")),
    )
    .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_is_problem(&reply);
    assert_eq!(w.vault.record_count().unwrap(), 1);
}

#[tokio::test]
async fn wrong_content_types_on_every_post_route_are_problems() {
    let w = world().await;
    let wrong = [
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
        "application/xml",
        "image/jpeg",
    ];
    // The capture route knows its media type and refuses everything else, also a missing one.
    for ct in wrong.iter().copied().map(Some).chain([None, Some("application/json")]) {
        let mut r = Request::post("/v1/captures");
        if let Some(ct) = ct {
            r = r.header(header::CONTENT_TYPE, ct);
        }
        let reply = send(&w.vault, r.body(Body::from(vec![1u8; 64])).unwrap()).await;
        assert_problem(&reply, StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported-media-type");
    }
    // JSON routes: a body declared as anything but JSON (or not declared) is refused unread,
    // even one that would parse; declared JSON that is not is a problem naming the body.
    // Whatever the outcome, an error is problem+json and nothing is done.
    let principals_before = w.vault.principals().unwrap().len();
    for (who, method, uri, valid) in json_routes(&w) {
        for ct in wrong.iter().copied().map(Some).chain([None]) {
            for body in [Body::from("plate=XQA1234&site=anzalduas"), Body::from(valid.to_string())] {
                let reply = send(&w.vault, request(&w, who, method, &uri, ct, body)).await;
                assert_problem(&reply, StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported-media-type");
                assert!(!String::from_utf8_lossy(&reply.body).contains(PLATE), "{uri}: plate echoed");
            }
        }
        for ct in ["application/json", "Application/JSON; charset=utf-8", "application/merge-patch+json"] {
            let reply =
                send(&w.vault, request(&w, who, method, &uri, Some(ct), Body::from("plate=XQA1234&site=anzalduas")))
                    .await;
            assert_problem(&reply, StatusCode::BAD_REQUEST, "invalid-json");
            assert!(!String::from_utf8_lossy(&reply.body).contains(PLATE), "{uri}: plate echoed");
        }
    }
    // Routes without a body ignore whatever is sent with one; PUT /v1/policy takes text.
    let reply = send(
        &w.vault,
        request(&w, "admin", "PUT", "/v1/policy", Some("image/jpeg"), Body::from(vec![0xffu8, 0xd8, 0xff, 0xe0])),
    )
    .await;
    assert_problem(&reply, StatusCode::BAD_REQUEST, "invalid-policy");
    assert_eq!(w.vault.principals().unwrap().len(), principals_before);
}

#[tokio::test]
async fn unknown_json_fields_are_refused_naming_the_field() {
    let w = world().await;
    for (who, method, uri, body) in json_routes(&w) {
        let mut value: serde_json::Value = serde_json::from_str(&body).unwrap();
        value["smuggled_field"] = serde_json::json!("x");
        let reply =
            send(&w.vault, request(&w, who, method, &uri, Some("application/json"), Body::from(value.to_string())))
                .await;
        assert_problem(&reply, StatusCode::BAD_REQUEST, "invalid-json");
        let detail = reply.json()["detail"].as_str().unwrap_or_default().to_string();
        assert!(detail.contains("smuggled_field"), "{uri}: {detail}");
        assert!(!detail.contains(PLATE), "{uri}: {detail}");
    }
    // The valid bodies themselves pass, so the refusals above were about the field.
    for (who, method, uri, body) in json_routes(&w) {
        let reply = send(&w.vault, request(&w, who, method, &uri, Some("application/json"), Body::from(body))).await;
        assert!(reply.status.is_success(), "{uri}: {} {}", reply.status, String::from_utf8_lossy(&reply.body));
    }
}

#[tokio::test]
async fn oversized_json_and_policy_bodies_are_refused() {
    let w = world().await;
    let huge = custodia_vault::ingest::MAX_CAPTURE_BYTES + 1;
    for (who, method, uri, _) in json_routes(&w) {
        // Far over any limit, declared.
        let body = format!(r#"{{"plate":"{}"}}"#, "A".repeat(huge));
        let reply = send(&w.vault, request(&w, who, method, &uri, Some("application/json"), Body::from(body))).await;
        assert_eq!(reply.status, StatusCode::PAYLOAD_TOO_LARGE, "{uri}");
        assert_is_problem(&reply);
        // The same, streamed with no length declared.
        let chunks =
            (0..huge.div_ceil(1 << 20)).map(|_| Ok::<_, std::io::Error>(bytes::Bytes::from(vec![b' '; 1 << 20])));
        let reply = send(
            &w.vault,
            request(&w, who, method, &uri, Some("application/json"), Body::from_stream(futures::stream::iter(chunks))),
        )
        .await;
        assert_eq!(reply.status, StatusCode::PAYLOAD_TOO_LARGE, "{uri}");
        assert_is_problem(&reply);
    }
    let policy = format!("{}\n#{}\n", w.vault.policy_text(), "x".repeat(70 * 1024));
    let reply =
        send(&w.vault, request(&w, "admin", "PUT", "/v1/policy", Some("application/toml"), Body::from(policy))).await;
    assert_problem(&reply, StatusCode::PAYLOAD_TOO_LARGE, "policy-too-large");
}

#[tokio::test]
async fn non_utf8_policy_bodies_are_refused_and_the_policy_stays() {
    let w = world().await;
    let before = w.vault.policy_text();
    let mut latin1 = before.clone().into_bytes();
    latin1.extend_from_slice(b"\n# caf\xe9\n");
    for body in [
        latin1,
        vec![0xff, 0xfe, 0x00, 0x00],
        b"version = 1\n\xc3\x28\n".to_vec(),
        before.as_bytes()[..10].iter().copied().chain([0x80]).collect(),
    ] {
        let reply =
            send(&w.vault, request(&w, "admin", "PUT", "/v1/policy", Some("application/toml"), Body::from(body))).await;
        assert_problem(&reply, StatusCode::BAD_REQUEST, "invalid-policy");
    }
    assert_eq!(w.vault.policy_text(), before);
}

// ---------------------------------------------------------------------------------------------
// No error carries plate text or internals

#[derive(Debug, Clone)]
enum Hostile {
    Search { plate: String, extra: Option<(String, String)> },
    Metadata { id: String },
    Image { id: String, part: String },
    BreakGlass { scope: String },
    Grant { grantee: String, role: String, scope: String },
    AddPrincipal { id: String, role: String },
    Approve { id: String },
    ClearBlock { id: String },
    Policy { text: String },
}

fn plate_like() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(PLATE.to_string()),
        Just(PLATE.to_lowercase()),
        Just(format!("{}-{}", &PLATE[..3], &PLATE[3..])),
        "[A-Z]{3}[0-9]{4}",
        "[A-Z0-9]{5,8}",
        "[A-Z]{2}[ -][0-9]{3}[ -][A-Z]{2}",
    ]
}

fn record_id(real: String) -> impl Strategy<Value = String> {
    prop_oneof![
        Just(real.clone()),
        plate_like(),
        "[0-9a-f]{32}-[0-9]{1,20}",
        plate_like().prop_map(move |p| format!("{real}{p}")),
        "[ -~]{0,40}"
            .prop_map(|s| s.replace(['/', '?', '#', '%', ' ', '"', '<', '>', '\\', '^', '`', '{', '|', '}'], "")),
    ]
    .prop_filter("a path segment", |s| !s.is_empty())
}

fn hostile(real: String) -> impl Strategy<Value = Hostile> {
    let field = ("[a-z_]{1,12}", plate_like());
    prop_oneof![
        (plate_like(), proptest::option::of(field)).prop_map(|(plate, extra)| Hostile::Search { plate, extra }),
        record_id(real.clone()).prop_map(|id| Hostile::Metadata { id }),
        (record_id(real.clone()), prop_oneof![Just("face".to_string()), Just("plate-crop".to_string()), plate_like()])
            .prop_map(|(id, part)| Hostile::Image { id, part }),
        (prop_oneof![Just("record:"), Just("site:"), Just("lane:"), Just("")], record_id(real.clone()))
            .prop_map(|(k, v)| Hostile::BreakGlass { scope: format!("{k}{v}") }),
        (
            plate_like(),
            prop_oneof![Just("officer".to_string()), plate_like()],
            plate_like().prop_map(|p| format!("site:{p}"))
        )
            .prop_map(|(grantee, role, scope)| Hostile::Grant { grantee, role, scope }),
        (plate_like(), prop_oneof![Just("officer".to_string()), plate_like()])
            .prop_map(|(id, role)| Hostile::AddPrincipal { id, role }),
        plate_like().prop_map(|id| Hostile::Approve { id }),
        plate_like().prop_map(|id| Hostile::ClearBlock { id }),
        (plate_like(), 0..4usize).prop_map(|(p, k)| Hostile::Policy {
            text: match k {
                0 => format!("version = 1\n[purposes]\n{p} = \"{p}\"\n"),
                1 => format!("{p} = 1\n"),
                2 => format!("version = \"{p}\"\n"),
                _ => format!("[roles]\nofficer = [\"{p}\"]\n"),
            }
        }),
    ]
}

#[derive(Debug, Clone)]
struct Stated {
    who: String,
    purpose: Option<String>,
    case: Option<String>,
    junk: Vec<(String, String)>,
}

fn stated() -> impl Strategy<Value = Stated> {
    let who = prop_oneof![
        Just("officer".to_string()),
        Just("supervisor".to_string()),
        Just("admin".to_string()),
        Just("maintainer".to_string()),
        Just("officer-no-grant".to_string()),
        plate_like().prop_map(|p| format!("cst_{p}")),
    ];
    let text = prop_oneof![
        Just("inv".to_string()),
        Just("2026-118".to_string()),
        plate_like(),
        plate_like().prop_map(|p| format!("case {p}")),
        "[ -~]{0,80}"
    ];
    let junk = proptest::collection::vec(("x-[a-z]{1,8}", plate_like()), 0..3);
    (who, proptest::option::of(text.clone()), proptest::option::of(text), junk)
        .prop_map(|(who, purpose, case, junk)| Stated { who, purpose, case, junk })
}

impl Hostile {
    /// Method, URI, body, and the values that must never be echoed: where a plate belongs or
    /// could be smuggled (a search's fields, a break-glass scope). Ids in the path or in admin
    /// bodies may be echoed in a "no such ..." answer: they are the caller's own handle.
    fn http(&self) -> (&'static str, String, String, Vec<String>) {
        match self {
            Hostile::Search { plate, extra } => {
                let mut body = serde_json::json!({ "plate": plate });
                let mut carried = vec![plate.clone()];
                if let Some((k, v)) = extra {
                    body[k] = serde_json::json!(v);
                    carried.push(v.clone());
                }
                ("POST", "/v1/search".into(), body.to_string(), carried)
            }
            Hostile::Metadata { id } => ("GET", format!("/v1/records/{id}"), String::new(), vec![]),
            Hostile::Image { id, part } => ("GET", format!("/v1/records/{id}/{part}"), String::new(), vec![]),
            Hostile::BreakGlass { scope } => (
                "POST",
                "/v1/break-glass".into(),
                serde_json::json!({ "scope": scope }).to_string(),
                vec![scope.clone()],
            ),
            Hostile::Grant { grantee, role, scope } => (
                "POST",
                "/v1/grants".into(),
                serde_json::json!({ "grantee": grantee, "role": role, "scope": scope, "expires_at_ms": NOW + 1000 })
                    .to_string(),
                vec![],
            ),
            Hostile::AddPrincipal { id, role } => {
                ("POST", "/v1/principals".into(), serde_json::json!({ "id": id, "roles": [role] }).to_string(), vec![])
            }
            Hostile::Approve { id } => ("POST", format!("/v1/break-glass/{id}/approve"), String::new(), vec![]),
            Hostile::ClearBlock { id } => ("POST", format!("/v1/principals/{id}/clear-block"), String::new(), vec![]),
            Hostile::Policy { text } => ("PUT", "/v1/policy".into(), text.clone(), vec![]),
        }
    }
}

fn plate_text_in(carried: &str) -> Vec<String> {
    // The plate-like runs a request carried: uppercase/digit tokens of 5+ characters, and the
    // stored plate in any case or separator form.
    carried
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|t| t.len() >= 5 && t.chars().any(|c| c.is_ascii_digit()) && t.chars().any(|c| c.is_ascii_alphabetic()))
        .map(str::to_string)
        .collect()
}

#[test]
fn no_error_response_carries_plate_text_or_internals() {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let w = rt.block_on(world());
    let dir = w.dir.path().to_string_lossy().to_string();
    let forbidden_internals = [
        "rusqlite",
        "sqlite",
        "panicked",
        "/tmp/",
        ".sqlite3",
        "RUST_BACKTRACE",
        "src/",
        ".rs:",
        "Error {",
        "Os {",
        "errno",
    ];
    let config = ProptestConfig { cases: 1500, failure_persistence: None, ..ProptestConfig::default() };
    let errors_seen = std::cell::Cell::new(0u32);
    proptest!(config, |(h in hostile(w.record.clone()), s in stated())| {
        let (method, uri, body, carried) = h.http();
        let mut r = Request::builder().method(method).uri(&uri).header(header::CONTENT_TYPE, "application/json");
        if s.who.starts_with("cst_") {
            r = r.header(header::AUTHORIZATION, format!("Bearer {}", s.who));
        } else {
            r = r.header(header::AUTHORIZATION, format!("Bearer {}", w.token(&s.who)));
        }
        if let Some(p) = &s.purpose {
            r = r.header("custodia-purpose", p.as_str());
        }
        if let Some(c) = &s.case {
            r = r.header("custodia-case", c.as_str());
        }
        for (k, v) in &s.junk {
            r = r.header(k.as_str(), v.as_str());
        }
        let Ok(request) = r.body(Body::from(body)) else { return Ok(()) };
        let reply = rt.block_on(send(&w.vault, request));
        if reply.status.is_success() {
            return Ok(());
        }
        errors_seen.set(errors_seen.get() + 1);
        assert_is_problem(&reply);
        let text = String::from_utf8_lossy(&reply.body).to_string();
        let upper = text.to_uppercase();
        let mut plates: Vec<String> = carried.iter().flat_map(|c| plate_text_in(c)).collect();
        plates.extend(s.purpose.iter().chain(&s.case).flat_map(|c| plate_text_in(c)));
        plates.extend(s.junk.iter().flat_map(|(_, v)| plate_text_in(v)));
        // The stored plate, unless the caller sent it somewhere themselves (then an echo of an
        // id they chose is possible and not a leak from storage).
        let sent = format!("{uri} {} {s:?}", h.http().2).to_uppercase();
        if !sent.contains(PLATE) {
            plates.push(PLATE.to_string());
        }
        // What the caller may see echoed: the path, and admin bodies (their own ids).
        let body_text = h.http().2;
        let echo_ok = format!("{uri} {}", if carried.is_empty() { body_text.as_str() } else { "" }).to_uppercase();
        for p in plates.iter().filter(|p| !echo_ok.contains(&p.to_uppercase())) {
            prop_assert!(!upper.contains(&p.to_uppercase()), "{method} {uri} {s:?}: error echoes plate-like {p:?}: {text}");
        }
        prop_assert!(!text.contains(&dir), "{method} {uri}: vault folder in {text}");
        for needle in forbidden_internals {
            prop_assert!(!text.contains(needle), "{method} {uri}: {needle:?} in {text}");
        }
    });
    assert!(errors_seen.get() > 100, "only {} error responses: the generator is too tame", errors_seen.get());
}

/// Token guessing over a socket: after ten failed logins a minute from one address, the address
/// gets 429 without its token being looked at (so the log is not flooded), good token or not.
#[tokio::test]
async fn token_guessing_is_turned_away_after_ten_failures_a_minute() {
    let w = world().await;
    let server = serve(w.vault.clone()).await;
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let url = format!("http://{}/v1/devices/health", server.addr);
    let logins_failed = |w: &World| {
        let log = w.vault.audit_log();
        (0..log.size())
            .filter(|i| {
                custodia_vault::audit::Event::parse(&log.entry(*i).unwrap()).unwrap().action.kind() == "login-failed"
            })
            .count()
    };
    let good = client.get(&url).bearer_auth(w.token("maintainer")).send().await.unwrap();
    assert_eq!(good.status().as_u16(), 200);
    for guess in 0..10 {
        let token = format!("cst_{:016x}_{}", guess, "0".repeat(64));
        assert_eq!(client.get(&url).bearer_auth(token).send().await.unwrap().status().as_u16(), 401);
    }
    let turned_away =
        client.get(&url).bearer_auth("cst_0000000000000099_".to_string() + &"0".repeat(64)).send().await.unwrap();
    assert_eq!(turned_away.status().as_u16(), 429);
    assert_eq!(turned_away.headers().get("retry-after").unwrap(), "60");
    let body: serde_json::Value = turned_away.json().await.unwrap();
    assert_eq!(body["type"], "urn:custodia:problem:too-many-failed-logins");
    // The good token from the same address waits too; nothing more was logged.
    assert_eq!(client.get(&url).bearer_auth(w.token("maintainer")).send().await.unwrap().status().as_u16(), 429);
    assert_eq!(logins_failed(&w), 10);
}
