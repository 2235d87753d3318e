//! The HTTP API without a socket (`app(vault)` + `oneshot`): every error is problem+json with a
//! precise title, and no error body carries plate text or internals.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use custodia_server::{SEALED_CAPTURE_MEDIA_TYPE, app};
use custodia_vault::clock::ManualClock;
use custodia_vault::config::DAY_MS;
use custodia_vault::{MasterKey, Vault, VaultConfig};
use http_body_util::BodyExt;
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use tower::ServiceExt;

const NOW: i64 = 1_780_000_000_000;

async fn vault() -> (tempfile::TempDir, Vault) {
    let dir = tempfile::tempdir().unwrap();
    let config = VaultConfig { sites: vec!["anzalduas".into()], ..VaultConfig::default() };
    Vault::init(dir.path(), &config, MasterKey::KeyFile, &mut ChaCha20Rng::seed_from_u64(1)).unwrap();
    let vault = Vault::open(dir.path(), Arc::new(ManualClock::new(NOW)), Box::new(ChaCha20Rng::seed_from_u64(2)), None)
        .unwrap();
    vault.ensure_epochs(NOW - DAY_MS, NOW + DAY_MS).unwrap();
    (dir, vault)
}

async fn send(vault: &Vault, request: Request<Body>) -> (StatusCode, Option<String>, serde_json::Value) {
    read(app(vault.clone()).oneshot(request).await.unwrap()).await
}

/// A response's status, content type and JSON body (null if it has none).
async fn read(response: axum::response::Response) -> (StatusCode, Option<String>, serde_json::Value) {
    let status = response.status();
    let content_type = response.headers().get(header::CONTENT_TYPE).map(|v| v.to_str().unwrap().to_string());
    let body = response.into_body().collect().await.unwrap().to_bytes();
    let json = serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null);
    (status, content_type, json)
}

fn post(body: Vec<u8>, content_type: &str) -> Request<Body> {
    Request::post("/v1/captures").header(header::CONTENT_TYPE, content_type).body(Body::from(body)).unwrap()
}

fn assert_problem(reply: &(StatusCode, Option<String>, serde_json::Value), status: StatusCode, slug: &str) {
    assert_eq!(reply.0, status, "{:?}", reply.2);
    assert_eq!(reply.1.as_deref(), Some("application/problem+json"));
    assert_eq!(reply.2["type"], format!("urn:custodia:problem:{slug}"));
    assert_eq!(reply.2["status"], status.as_u16());
    assert!(reply.2["title"].as_str().is_some_and(|t| !t.is_empty()));
}

#[tokio::test]
async fn malformed_uploads_get_precise_problems() {
    let (_dir, vault) = vault().await;
    let garbage = send(&vault, post(b"definitely not a sealed capture".to_vec(), SEALED_CAPTURE_MEDIA_TYPE)).await;
    assert_problem(&garbage, StatusCode::BAD_REQUEST, "malformed-capture");

    let wrong_type = send(&vault, post(vec![0; 10], "application/json")).await;
    assert_problem(&wrong_type, StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported-media-type");

    let missing_type = send(&vault, Request::post("/v1/captures").body(Body::from(vec![0u8; 10])).unwrap()).await;
    assert_problem(&missing_type, StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported-media-type");

    // Declared too large: refused before the body is read.
    let declared = Request::post("/v1/captures")
        .header(header::CONTENT_TYPE, SEALED_CAPTURE_MEDIA_TYPE)
        .header(header::CONTENT_LENGTH, (custodia_vault::ingest::MAX_CAPTURE_BYTES + 1).to_string())
        .body(Body::empty())
        .unwrap();
    assert_problem(&send(&vault, declared).await, StatusCode::PAYLOAD_TOO_LARGE, "capture-too-large");

    // Actually too large with no length declared (streamed).
    let chunks = chunks(custodia_vault::ingest::MAX_CAPTURE_BYTES + 1);
    let streamed = Request::post("/v1/captures")
        .header(header::CONTENT_TYPE, SEALED_CAPTURE_MEDIA_TYPE)
        .body(Body::from_stream(chunks))
        .unwrap();
    assert_problem(&send(&vault, streamed).await, StatusCode::PAYLOAD_TOO_LARGE, "capture-too-large");

    let unknown = send(&vault, Request::get("/v1/nothing-here").body(Body::empty()).unwrap()).await;
    assert_problem(&unknown, StatusCode::NOT_FOUND, "not-found");
    let wrong_method = send(&vault, Request::get("/v1/captures").body(Body::empty()).unwrap()).await;
    assert_problem(&wrong_method, StatusCode::METHOD_NOT_ALLOWED, "method-not-allowed");
    assert_eq!(vault.record_count().unwrap(), 0);
}

/// `total` zero bytes in 1 MiB chunks, with no length declared.
fn chunks(total: usize) -> impl futures::Stream<Item = Result<bytes::Bytes, std::io::Error>> + Send + 'static {
    let sizes: Vec<usize> = (0..total.div_ceil(1 << 20)).map(|i| (total - i * (1 << 20)).min(1 << 20)).collect();
    futures::stream::iter(sizes.into_iter().map(|n| Ok(bytes::Bytes::from(vec![0u8; n]))))
}

#[tokio::test]
async fn health_epochs_and_openapi_are_served() {
    let (_dir, vault) = vault().await;
    let (status, content_type, json) = send(&vault, Request::get("/healthz").body(Body::empty()).unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(content_type.as_deref(), Some("application/json"));
    assert_eq!(json["records"], 0);

    let (status, _, json) = send(&vault, Request::get("/v1/epochs").body(Body::empty()).unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(json["format"], "custodia-epoch-set/v1");
    assert!(json["epochs"].as_array().unwrap().len() >= 48);

    let (status, _, json) = send(&vault, Request::get("/v1/openapi.json").body(Body::empty()).unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(json["openapi"], "3.1.0");
    for path in [
        "/v1/captures",
        "/v1/epochs",
        "/healthz",
        "/v1/openapi.json",
        "/v1/search",
        "/v1/records/{id}",
        "/v1/records/{id}/{part}",
        "/v1/break-glass",
        "/v1/break-glass/{id}/approve",
        "/v1/principals",
        "/v1/principals/{id}/disable",
        "/v1/principals/{id}/clear-block",
        "/v1/grants",
        "/v1/devices/health",
        "/v1/policy",
        "/v1/records/{id}/extend",
        "/v1/devices/config",
    ] {
        assert!(json["paths"][path].is_object(), "{path} is not documented");
    }
}

#[tokio::test]
async fn intake_admits_by_declared_length_within_its_byte_budget() {
    use custodia_server::{IntakeLimits, app_with_intake};
    use custodia_vault::ingest::MAX_CAPTURE_BYTES;
    let (_dir, vault) = vault().await;
    // Four slots, and bytes for one capture of the largest size and one more MiB.
    let limits = IntakeLimits {
        in_flight: 4,
        in_flight_bytes: MAX_CAPTURE_BYTES + (1 << 20),
        waiting: 0,
        wait: std::time::Duration::from_secs(5),
    };
    let router = app_with_intake(vault.clone(), limits);
    let declaring = |length: usize, body: Body| {
        Request::post("/v1/captures")
            .header(header::CONTENT_TYPE, SEALED_CAPTURE_MEDIA_TYPE)
            .header(header::CONTENT_LENGTH, length)
            .body(body)
            .unwrap()
    };

    // A large upload declares the largest size and holds its share while its body trickles in.
    let (feed, body) = futures::channel::mpsc::unbounded::<Result<axum::body::Bytes, std::io::Error>>();
    let large = tokio::spawn(router.clone().oneshot(declaring(MAX_CAPTURE_BYTES, Body::from_stream(body))));
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    assert!(!large.is_finished(), "the large upload waits for its body");

    // Three slots are free, but 2 MiB do not fit beside it: busy, before its body is read.
    let response = router.clone().oneshot(declaring(2 << 20, Body::from(vec![0u8; 2 << 20]))).await.unwrap();
    assert_problem(&read(response).await, StatusCode::SERVICE_UNAVAILABLE, "intake-busy");
    // A small upload fits in what is left and is answered on its merits.
    let small = b"not a capture".to_vec();
    let response = router.clone().oneshot(declaring(small.len(), Body::from(small))).await.unwrap();
    assert_problem(&read(response).await, StatusCode::BAD_REQUEST, "malformed-capture");

    drop(feed);
    let large = large.await.unwrap().unwrap();
    assert_eq!(large.status(), StatusCode::BAD_REQUEST, "the large upload ends and is answered");
    assert_eq!(vault.record_count().unwrap(), 0);
}

#[tokio::test]
async fn uploads_beyond_the_intake_limit_are_told_to_retry_later() {
    use custodia_server::{IntakeLimits, app_with_intake};
    let (_dir, vault) = vault().await;
    let limits =
        IntakeLimits { in_flight: 1, waiting: 0, wait: std::time::Duration::from_secs(5), ..IntakeLimits::default() };
    let router = app_with_intake(vault.clone(), limits);

    // The first upload holds the only slot while its body has not arrived.
    let (feed, body) = futures::channel::mpsc::unbounded::<Result<axum::body::Bytes, std::io::Error>>();
    let slow = Request::post("/v1/captures")
        .header(header::CONTENT_TYPE, SEALED_CAPTURE_MEDIA_TYPE)
        .body(Body::from_stream(body))
        .unwrap();
    let first = tokio::spawn(router.clone().oneshot(slow));
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    assert!(!first.is_finished(), "the first upload waits for its body");

    // No slot and no room to wait: busy at once, as problem+json with Retry-After.
    let response = router.clone().oneshot(post(b"another capture".to_vec(), SEALED_CAPTURE_MEDIA_TYPE)).await.unwrap();
    assert_eq!(response.headers().get(header::RETRY_AFTER).map(|v| v.to_str().unwrap()), Some("1"));
    assert_problem(&read(response).await, StatusCode::SERVICE_UNAVAILABLE, "intake-busy");

    // The first body ends; that upload is answered on its merits and frees the slot.
    feed.unbounded_send(Ok(axum::body::Bytes::from_static(b"not a capture either"))).unwrap();
    drop(feed);
    let first = first.await.unwrap().unwrap();
    assert_eq!(first.status(), StatusCode::BAD_REQUEST);
    let next = router.oneshot(post(b"a third try".to_vec(), SEALED_CAPTURE_MEDIA_TYPE)).await.unwrap();
    assert_eq!(next.status(), StatusCode::BAD_REQUEST, "the slot is free again");
    assert_eq!(vault.record_count().unwrap(), 0);
}
