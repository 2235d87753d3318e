//! Custodia's HTTP API: axum handlers that extract a request, call the vault and map the answer.
//!
//! Routes (the OpenAPI document at `/v1/openapi.json` is the reference):
//!
//! | route | what |
//! |---|---|
//! | `POST /v1/captures` | a sealed capture (binary body) → `201 {record_id}` once durable, `200` for a retry, `503 intake-busy` beyond the [`intake`] limits |
//! | `GET /v1/epochs` | the signed set of epoch public keys lanes seal to |
//! | `GET /log/checkpoint` | the audit log's latest signed checkpoint (C2SP tlog-checkpoint), with witness cosignatures |
//! | `GET /log/tile/<L>/<N>[.p/<W>]` | a hash tile (C2SP tlog-tiles) |
//! | `GET /log/tile/entries/<N>[.p/<W>]` | an entry bundle of audit events |
//! | `GET /healthz` | liveness and record count |
//! | `GET /v1/openapi.json` | the API description |
//!
//! Every error is RFC 9457 `application/problem+json`. What this crate is not: it holds no
//! policy, cryptography or SQL; those are in `custodia-vault` and below. [`app`] builds the router
//! so tests run without a socket; [`run`] serves it on a listener until a shutdown future fires.
//!
//! ```no_run
//! # async fn demo(vault: custodia_vault::Vault) -> std::io::Result<()> {
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! custodia_server::run(listener, vault, std::future::pending()).await
//! # }
//! ```

#![forbid(unsafe_code)]

pub mod access;
pub mod intake;
pub mod problem;

use std::future::Future;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use custodia_vault::Vault;
use custodia_vault::ingest::MAX_CAPTURE_BYTES;
use http_body_util::BodyExt;

pub use intake::{Admission, IntakeGate, IntakeLimits};
pub use problem::Problem;

/// The media type of a sealed capture body.
pub const SEALED_CAPTURE_MEDIA_TYPE: &str = "application/vnd.custodia.sealed-capture";

const OPENAPI: &str = include_str!("../openapi.json");

/// The router over a vault, with the default [`IntakeLimits`].
pub fn app(vault: Vault) -> Router {
    app_with_intake(vault, IntakeLimits::default())
}

/// The router over a vault, admitting captures within `intake` ([`intake`]).
pub fn app_with_intake(vault: Vault, intake: IntakeLimits) -> Router {
    let gate = IntakeGate::new(intake);
    Router::new()
        .route(
            "/v1/captures",
            post(post_capture).route_layer(axum::middleware::from_fn_with_state(gate, intake::admit)),
        )
        .route("/v1/epochs", get(get_epochs))
        .route("/log/checkpoint", get(log_checkpoint))
        .route("/log/{*path}", get(log_tile))
        .route("/healthz", get(healthz))
        .route("/v1/openapi.json", get(openapi))
        .merge(access::routes())
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        // The capture handler enforces its own limit with a problem+json answer; this is the
        // backstop for every other route.
        .layer(DefaultBodyLimit::max(MAX_CAPTURE_BYTES))
        .with_state(vault)
}

/// The witness's router (C2SP tlog-witness `POST /add-checkpoint`), for `custodia witness serve`.
/// `now_secs` is the clock for cosignature timestamps. Answers: 200 with the cosignature line;
/// 409 `text/x.tlog.size` with the size the witness knows; 403 for a checkpoint the log key did
/// not sign; 422 for a fork or rollback (problem+json naming it); 400 for a malformed body.
pub fn witness_app(witness: std::sync::Arc<custodia_vault::audit::witness::Witness>, now_secs: fn() -> u64) -> Router {
    use custodia_vault::audit::witness::{MAX_ADD_CHECKPOINT_SIZE, WitnessError};
    let handler = move |body: bytes::Bytes| {
        let witness = witness.clone();
        async move {
            let answer = tokio::task::spawn_blocking(move || witness.add_checkpoint(&body, now_secs())).await;
            match answer {
                Ok(Ok(line)) => {
                    (StatusCode::OK, [(header::CONTENT_TYPE, "text/plain; charset=utf-8")], line).into_response()
                }
                Ok(Err(WitnessError::Conflict { known_size, .. })) => {
                    (StatusCode::CONFLICT, [(header::CONTENT_TYPE, "text/x.tlog.size")], format!("{known_size}\n"))
                        .into_response()
                }
                Ok(Err(e @ WitnessError::NotSigned(_))) => Problem::new(
                    StatusCode::FORBIDDEN,
                    "not-signed",
                    "Checkpoint not signed by the followed log",
                    Some(e.to_string()),
                )
                .into_response(),
                Ok(Err(e @ WitnessError::Inconsistent(_))) => {
                    tracing::error!(error = %e, "witness refused a checkpoint that does not extend the cosigned one");
                    Problem::new(
                        StatusCode::UNPROCESSABLE_ENTITY,
                        "inconsistent",
                        "Checkpoint does not extend the cosigned one",
                        Some(e.to_string()),
                    )
                    .into_response()
                }
                Ok(Err(e @ WitnessError::Malformed(_))) => Problem::new(
                    StatusCode::BAD_REQUEST,
                    "malformed",
                    "Not an add-checkpoint request",
                    Some(e.to_string()),
                )
                .into_response(),
                Ok(Err(e)) => {
                    tracing::error!(error = %e, "witness failure");
                    Problem::internal().into_response()
                }
                Err(_) => Problem::internal().into_response(),
            }
        }
    };
    Router::new()
        .route("/add-checkpoint", post(handler))
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(MAX_ADD_CHECKPOINT_SIZE))
}

/// Longest a client may take to send a request's head (request line and headers), counted
/// from its first byte: a slowloris client trickling headers is cut off after this.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// Longest a request body may stall with no bytes arriving; the request then fails (the
/// handler sees a body error) and the connection is closed. Counted per read, so a slow but
/// moving upload is not cut off.
pub const BODY_IDLE_TIMEOUT: Duration = Duration::from_secs(10);

/// Serves the API on `listener` until `shutdown` completes, then drains in-flight requests.
///
/// HTTP/1 only, with [`HEADER_READ_TIMEOUT`] (hyper's header read timeout, which needs the
/// timer that `axum::serve` does not set, hence this accept loop) and [`BODY_IDLE_TIMEOUT`].
pub async fn run(
    listener: tokio::net::TcpListener,
    vault: Vault,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
    let app = app(vault).layer(axum::middleware::map_request(|request: Request| async move {
        request.map(|body| Body::new(timeout::IdleBody::new(body, BODY_IDLE_TIMEOUT)))
    }));
    let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    builder.http1().timer(TokioTimer::new()).header_read_timeout(HEADER_READ_TIMEOUT);
    let builder = builder.http1_only();
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(error) => {
                    // A connection reset before accept, or descriptors exhausted: pause, go on.
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let (stream, peer) = stream;
        // The peer address, for the per-address limit on failed logins.
        let with_peer = tower::ServiceExt::map_request(app.clone(), move |mut request: axum::http::Request<_>| {
            request.extensions_mut().insert(axum::extract::ConnectInfo(peer));
            request
        });
        let service = hyper_util::service::TowerToHyperService::new(with_peer);
        let connection = graceful.watch(builder.serve_connection(TokioIo::new(stream), service).into_owned());
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(%error, "connection ended with an error");
            }
        });
    }
    drop(listener);
    graceful.shutdown().await;
    Ok(())
}

mod timeout {
    use std::pin::Pin;
    use std::task::{Context, Poll, ready};
    use std::time::Duration;

    use axum::body::{Body, Bytes, HttpBody};
    use http_body::Frame;

    /// A request body that fails when no frame arrives for `idle` while the handler waits for
    /// one. The clock starts at the handler's first read, not at the request's arrival.
    pub(crate) struct IdleBody {
        inner: Body,
        idle: Duration,
        sleep: Pin<Box<tokio::time::Sleep>>,
        started: bool,
    }

    impl IdleBody {
        pub(crate) fn new(inner: Body, idle: Duration) -> Self {
            Self { inner, idle, sleep: Box::pin(tokio::time::sleep(idle)), started: false }
        }
    }

    impl HttpBody for IdleBody {
        type Data = Bytes;
        type Error = axum::Error;

        fn poll_frame(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
            let this = &mut *self;
            if !this.started {
                this.started = true;
                this.sleep.as_mut().reset(tokio::time::Instant::now() + this.idle);
            }
            if let Poll::Ready(frame) = Pin::new(&mut this.inner).poll_frame(cx) {
                let deadline = tokio::time::Instant::now() + this.idle;
                this.sleep.as_mut().reset(deadline);
                return Poll::Ready(frame);
            }
            ready!(this.sleep.as_mut().poll(cx));
            let stalled = std::io::Error::new(std::io::ErrorKind::TimedOut, "request body stalled");
            Poll::Ready(Some(Err(axum::Error::new(stalled))))
        }

        fn is_end_stream(&self) -> bool {
            self.inner.is_end_stream()
        }

        fn size_hint(&self) -> http_body::SizeHint {
            self.inner.size_hint()
        }
    }
}

/// Keeps epoch keys published ahead: runs once now, then every `every`.
pub fn spawn_epoch_maintenance(vault: Vault, every: Duration) -> tokio::task::JoinHandle<()> {
    spawn_every(every, move || {
        let worker = vault.clone();
        async move {
            match tokio::task::spawn_blocking(move || worker.maintain_epochs()).await {
                Ok(Ok(0)) => {}
                Ok(Ok(created)) => tracing::info!(created, "published new key epochs"),
                Ok(Err(error)) => tracing::error!(%error, "epoch maintenance failed"),
                Err(error) => tracing::error!(%error, "epoch maintenance task failed"),
            }
        }
    })
}

/// Runs retention (crypto-shredding, then clean-up) under the policy's rules as the vault's system actor:
/// once now, then every `every`. A failed run is logged and retried at the next tick; it leaves
/// nothing half-done that the next run does not finish.
pub fn spawn_retention(vault: Vault, every: Duration) -> tokio::task::JoinHandle<()> {
    spawn_every(every, move || {
        let vault = vault.clone();
        async move {
            // The policy in force at each run: a policy change reaches the next one.
            let rules = vault.retention_rules();
            let actor = custodia_vault::audit::Actor::system();
            match vault.run_retention(&rules, &actor).await {
                Ok(report) if report.epochs_shredded() == 0 && report.blobs_deleted == 0 => {}
                Ok(report) => tracing::info!(
                    epochs = report.epochs_shredded(),
                    months = report.blind_months.len(),
                    blobs = report.blobs_deleted,
                    "retention shredded expired epochs"
                ),
                Err(error) => tracing::error!(%error, "retention run failed"),
            }
        }
    })
}

/// Runs `job` once now, then again `every` after each run ends (so runs never overlap).
fn spawn_every<F, Fut>(every: Duration, mut job: F) -> tokio::task::JoinHandle<()>
where
    F: FnMut() -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    tokio::spawn(async move {
        loop {
            job().await;
            tokio::time::sleep(every).await;
        }
    })
}

/// The media type a request declares, lower-cased and without parameters ("" when it declares
/// none or an unreadable one).
pub(crate) fn declared_media_type(headers: &axum::http::HeaderMap) -> String {
    let content_type = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    content_type.split(';').next().unwrap_or("").trim().to_ascii_lowercase()
}

/// The body length a request declares in `Content-Length`, if it declares one.
pub(crate) fn declared_length(headers: &axum::http::HeaderMap) -> Option<u64> {
    headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok())
}

async fn post_capture(State(vault): State<Vault>, request: Request) -> Result<Response, Problem> {
    // Which software the lane runs, for maintainers' device health (kept only once the capture
    // verified, so it is tied to a real device).
    let agent = request
        .headers()
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.chars().take(64).collect::<String>());
    let media_type = declared_media_type(request.headers());
    if media_type != SEALED_CAPTURE_MEDIA_TYPE && media_type != "application/octet-stream" {
        return Err(Problem::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported-media-type",
            "Unsupported media type",
            format!("send a sealed capture as {SEALED_CAPTURE_MEDIA_TYPE}"),
        ));
    }
    if declared_length(request.headers()).is_some_and(|len| len > MAX_CAPTURE_BYTES as u64) {
        return Err(too_large());
    }
    let body = http_body_util::Limited::new(request.into_body(), MAX_CAPTURE_BYTES);
    let bytes = match body.collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(error) if error.is::<http_body_util::LengthLimitError>() => return Err(too_large()),
        Err(_) => {
            return Err(Problem::new(
                StatusCode::BAD_REQUEST,
                "incomplete-body",
                "Request body could not be read",
                Some("the connection ended or failed before the whole body arrived".to_string()),
            ));
        }
    };
    let receipt = vault.ingest(bytes).await?;
    if let Some(agent) = agent {
        vault.note_device_agent(&receipt.record_id, &agent);
    }
    let status = if receipt.duplicate { StatusCode::OK } else { StatusCode::CREATED };
    Ok((status, Json(receipt)).into_response())
}

fn too_large() -> Problem {
    Problem::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "capture-too-large",
        "Capture too large",
        format!("the limit is {MAX_CAPTURE_BYTES} bytes"),
    )
}

async fn get_epochs(State(vault): State<Vault>) -> Result<Response, Problem> {
    let json = tokio::task::spawn_blocking(move || vault.signed_epoch_set())
        .await
        .map_err(|_| Problem::internal())?
        .map_err(|error| {
            tracing::error!(%error, "building the epoch set failed");
            Problem::internal()
        })?;
    let mut response = Body::from(json).into_response();
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    Ok(response)
}

async fn log_checkpoint(State(vault): State<Vault>) -> Result<Response, Problem> {
    let published = tokio::task::spawn_blocking(move || vault.publish_checkpoint())
        .await
        .map_err(|_| Problem::internal())?
        .map_err(|error| {
            tracing::error!(%error, "publishing the audit checkpoint failed");
            Problem::new(StatusCode::SERVICE_UNAVAILABLE, "log-unavailable", "Audit log unavailable", None)
        })?;
    let mut response = Body::from(published.text).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

/// C2SP tlog-tiles: full tiles and bundles never change; partial ones are replaced as the log grows.
async fn log_tile(
    State(vault): State<Vault>,
    axum::extract::Path(path): axum::extract::Path<String>,
) -> Result<Response, Problem> {
    let shown = path.chars().take(100).collect::<String>();
    let tile = tokio::task::spawn_blocking(move || vault.audit_log().serve_tile(&path))
        .await
        .map_err(|_| Problem::internal())?;
    let (data, immutable) = match tile {
        Ok(Some(found)) => found,
        Ok(None) => {
            return Err(Problem::new(
                StatusCode::NOT_FOUND,
                "tile-not-found",
                "No such tile yet",
                Some(format!("log/{shown} is beyond the current tree")),
            ));
        }
        Err(custodia_vault::audit::LogError::BadTilePath(reason)) => {
            return Err(Problem::new(
                StatusCode::BAD_REQUEST,
                "bad-tile-path",
                "Not a C2SP tile path",
                Some(format!("log/{shown}: {reason}")),
            ));
        }
        Err(error) => {
            tracing::error!(%error, "reading an audit tile failed");
            return Err(Problem::internal());
        }
    };
    let mut response = Body::from(data).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/octet-stream"));
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static(if immutable { "public, max-age=31536000, immutable" } else { "no-store" }),
    );
    Ok(response)
}

async fn healthz(State(vault): State<Vault>) -> Result<Json<serde_json::Value>, Problem> {
    let records = vault.record_count().map_err(|error| {
        tracing::error!(%error, "health check could not read the index");
        Problem::new(StatusCode::SERVICE_UNAVAILABLE, "unhealthy", "Index unavailable", None)
    })?;
    Ok(Json(serde_json::json!({ "status": "ok", "records": records })))
}

async fn openapi() -> Response {
    let mut response = Body::from(OPENAPI).into_response();
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

async fn method_not_allowed() -> Problem {
    Problem::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method-not-allowed",
        "Method not allowed on this route",
        Some("see /v1/openapi.json".to_string()),
    )
}

async fn not_found() -> Problem {
    Problem::new(StatusCode::NOT_FOUND, "not-found", "No such route", Some("see /v1/openapi.json".to_string()))
}
