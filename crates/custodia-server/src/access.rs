//! The principal-facing routes: search, reads, break-glass, the bulk guard, principals, grants,
//! device health and the policy. Each handler authenticates the bearer token, asks the vault
//! (which asks the policy and logs), and maps the answer; none holds a rule of its own.
//!
//! Purpose and case travel in the `Custodia-Purpose` and `Custodia-Case` headers, so they are the
//! same for every route and never end up in URLs or proxy logs; plates travel only in the JSON
//! body of `POST /v1/search`.

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use custodia_vault::Vault;
use custodia_vault::access::{AccessError, SearchQuery};
use custodia_vault::policy::{Permission, Purpose, Request, Role, Scope};
use serde::Deserialize;

use crate::Problem;

/// Header carrying the purpose code.
pub const PURPOSE_HEADER: &str = "custodia-purpose";
/// Header carrying the case number.
pub const CASE_HEADER: &str = "custodia-case";
/// Largest policy document accepted by `PUT /v1/policy`.
const MAX_POLICY_BODY: usize = 64 * 1024;
/// Largest JSON body accepted by the other routes (a search or a grant is a few hundred bytes).
const MAX_JSON_BODY: usize = 64 * 1024;

/// Failed logins one address may make in [`LOGIN_WINDOW`] before it is turned away.
pub const MAX_LOGIN_FAILURES: usize = 10;
/// The window failed logins are counted over, and how long an address is then turned away.
pub const LOGIN_WINDOW: std::time::Duration = std::time::Duration::from_secs(60);
/// Most addresses tracked at once (older entries are dropped first).
const MAX_TRACKED_ADDRESSES: usize = 10_000;

/// Token guessing limit per client address: after [`MAX_LOGIN_FAILURES`] answers of 401 within
/// [`LOGIN_WINDOW`], the address gets 429 without its token being looked at until the window has
/// passed. Guessing a 256-bit secret is hopeless anyway; the limit keeps a guesser from filling
/// the audit log with `login-failed` events and the access database with look-ups.
#[derive(Default)]
pub struct LoginGuard {
    failures:
        std::sync::Mutex<std::collections::HashMap<std::net::IpAddr, std::collections::VecDeque<std::time::Instant>>>,
}

impl LoginGuard {
    fn turned_away(&self, ip: std::net::IpAddr, now: std::time::Instant) -> bool {
        let mut failures = self.failures.lock().expect("login guard lock");
        let Some(times) = failures.get_mut(&ip) else { return false };
        while times.front().is_some_and(|t| now.duration_since(*t) > LOGIN_WINDOW) {
            times.pop_front();
        }
        times.len() >= MAX_LOGIN_FAILURES
    }

    fn failed(&self, ip: std::net::IpAddr, now: std::time::Instant) {
        let mut failures = self.failures.lock().expect("login guard lock");
        if failures.len() >= MAX_TRACKED_ADDRESSES && !failures.contains_key(&ip) {
            failures.retain(|_, times| times.back().is_some_and(|t| now.duration_since(*t) <= LOGIN_WINDOW));
            if failures.len() >= MAX_TRACKED_ADDRESSES {
                return; // under a flood of addresses, count none rather than grow without bound
            }
        }
        let times = failures.entry(ip).or_default();
        times.push_back(now);
        while times.len() > MAX_LOGIN_FAILURES {
            times.pop_front();
        }
    }
}

async fn guard_logins(
    axum::extract::State(guard): axum::extract::State<std::sync::Arc<LoginGuard>>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    // The peer address is set by `crate::run` per connection; requests without one (in-process
    // tests through `app`) are not limited.
    let ip = request.extensions().get::<axum::extract::ConnectInfo<std::net::SocketAddr>>().map(|c| c.0.ip());
    let now = std::time::Instant::now();
    if let Some(ip) = ip
        && guard.turned_away(ip, now)
    {
        let mut response = Problem::new(
            StatusCode::TOO_MANY_REQUESTS,
            "too-many-failed-logins",
            "Too many failed logins from this address",
            Some(format!("wait {} s", LOGIN_WINDOW.as_secs())),
        )
        .into_response();
        response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(LOGIN_WINDOW.as_secs()));
        return response;
    }
    let response = next.run(request).await;
    if let Some(ip) = ip
        && response.status() == StatusCode::UNAUTHORIZED
    {
        guard.failed(ip, now);
    }
    response
}

/// The access routes, merged into [`crate::app`].
pub fn routes() -> axum::Router<Vault> {
    let guard = std::sync::Arc::new(LoginGuard::default());
    axum::Router::new()
        .route("/v1/search", post(search))
        .route("/v1/records/{id}", get(record_metadata))
        .route("/v1/records/{id}/{part}", get(record_image))
        .route("/v1/records/{id}/extend", post(extend_retention))
        .route("/v1/break-glass", post(request_break_glass))
        .route("/v1/break-glass/{id}/approve", post(approve_break_glass))
        .route("/v1/principals", get(list_principals).post(add_principal))
        .route("/v1/principals/{id}/clear-block", post(clear_block))
        .route("/v1/principals/{id}/disable", post(disable_principal))
        .route("/v1/grants", post(add_grant))
        .route("/v1/devices/health", get(device_health))
        .route("/v1/devices/config", get(device_config))
        .route("/v1/policy", get(get_policy).put(put_policy))
        .layer(axum::middleware::from_fn_with_state(guard, guard_logins))
}

impl From<AccessError> for Problem {
    fn from(error: AccessError) -> Self {
        use StatusCode as S;
        let detail = Some(error.to_string());
        match error {
            AccessError::Unauthenticated => Self::new(
                S::UNAUTHORIZED,
                "unauthenticated",
                "Authentication failed",
                Some("send Authorization: Bearer <token>".into()),
            ),
            AccessError::Denied(denial) => {
                let status = match denial.code() {
                    "missing-purpose" | "unknown-purpose" | "missing-case" => S::BAD_REQUEST,
                    _ => S::FORBIDDEN,
                };
                Self::new(status, denial.code(), "Refused by policy", detail)
            }
            AccessError::NotFound { .. } => Self::new(S::NOT_FOUND, "not-found", "No such resource", detail),
            // The reason quotes the caller's value (a scope, a role), which may carry a plate
            // someone typed; the answer keeps the explanation and drops the value.
            AccessError::Invalid { .. } => {
                Self::new(S::BAD_REQUEST, "invalid-request", "Invalid request", detail.map(|d| unquote(&d)))
            }
            AccessError::AlreadyApproved(_) => {
                Self::new(S::CONFLICT, "replayed-approval", "Request already approved", detail)
            }
            AccessError::Shredded(_) => Self::new(S::GONE, "shredded", "Shredded by retention", detail),
            AccessError::Policy(_) => Self::new(
                S::UNPROCESSABLE_ENTITY,
                "invalid-policy",
                "Policy refused; the running policy is unchanged",
                detail,
            ),
            AccessError::Vault(error) => {
                tracing::error!(%error, "access request failed in storage or the log");
                Self::new(
                    S::SERVICE_UNAVAILABLE,
                    "storage-unavailable",
                    "Storage or audit log unavailable; nothing was done",
                    None,
                )
            }
            _ => Self::internal(),
        }
    }
}

/// The authenticated principal, or the problem to answer with.
async fn principal(vault: &Vault, headers: &HeaderMap) -> Result<String, Problem> {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(|t| t.trim().chars().take(custodia_vault::access::MAX_TOKEN_LEN + 1).collect::<String>())
        .unwrap_or_default();
    let vault = vault.clone();
    let answer =
        tokio::task::spawn_blocking(move || vault.authenticate(&token)).await.map_err(|_| Problem::internal())?;
    Ok(answer?)
}

struct Stated {
    code: Option<String>,
    case: Option<String>,
}

impl Stated {
    fn from(headers: &HeaderMap) -> Self {
        let get =
            |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(|s| s.trim().chars().take(300).collect());
        Self { code: get(PURPOSE_HEADER), case: get(CASE_HEADER) }
    }
    fn purpose(&self) -> Purpose<'_> {
        Purpose { code: self.code.as_deref(), case: self.case.as_deref() }
    }
}

/// Runs a blocking vault call off the async workers.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, AccessError> + Send + 'static,
) -> Result<T, Problem> {
    Ok(tokio::task::spawn_blocking(f).await.map_err(|_| Problem::internal())??)
}

/// Decides an action that needs only a role permission.
async fn allowed(vault: &Vault, who: String, permission: Permission) -> Result<custodia_vault::audit::Actor, Problem> {
    let vault = vault.clone();
    blocking(move || vault.authorize(&who, &Request::Act(permission), &Purpose::default())).await
}

/// `text` with every double-quoted value replaced by `"…"`.
fn unquote(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for (i, piece) in text.split('"').enumerate() {
        out.push_str(if i % 2 == 1 { "\"…\"" } else { piece });
    }
    out
}

/// Reads a body of at most `limit` bytes. Every failure is a problem: axum's own body
/// rejections are text/plain and carry the transport's error text.
async fn read_body(body: Body, limit: usize, too_large: fn() -> Problem) -> Result<bytes::Bytes, Problem> {
    use http_body_util::BodyExt;
    match http_body_util::Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(error) if error.is::<http_body_util::LengthLimitError>() => Err(too_large()),
        Err(_) => Err(Problem::new(
            StatusCode::BAD_REQUEST,
            "incomplete-body",
            "Request body could not be read",
            Some("the connection ended, stalled or failed before the whole body arrived".to_string()),
        )),
    }
}

fn json_too_large() -> Problem {
    Problem::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "body-too-large",
        "Request body too large",
        Some(format!("the limit is {MAX_JSON_BODY} bytes")),
    )
}

fn policy_too_large() -> Problem {
    Problem::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "policy-too-large",
        "Policy too large",
        Some(format!("the limit is {MAX_POLICY_BODY} bytes")),
    )
}

/// A JSON request body: declared as JSON (`application/json` or an `application/…+json` type)
/// and at most [`MAX_JSON_BODY`] bytes. A body declared as anything else is refused unread, as
/// a form post or a text body that only happens to parse must not act.
async fn json_body<T: for<'de> Deserialize<'de>>(headers: &HeaderMap, body: Body) -> Result<T, Problem> {
    let media_type = crate::declared_media_type(headers);
    let is_json =
        media_type == "application/json" || (media_type.starts_with("application/") && media_type.ends_with("+json"));
    if !is_json {
        return Err(Problem::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported-media-type",
            "Unsupported media type",
            Some("send this request's body as application/json".to_string()),
        ));
    }
    parse_json(&read_body(body, MAX_JSON_BODY, json_too_large).await?)
}

fn parse_json<T: for<'de> Deserialize<'de>>(body: &[u8]) -> Result<T, Problem> {
    serde_json::from_slice(body).map_err(|e| {
        // serde's message names the field and position, never echoes values of ours.
        Problem::new(
            StatusCode::BAD_REQUEST,
            "invalid-json",
            "Request body is not the expected JSON",
            Some(e.to_string()),
        )
    })
}

async fn search(State(vault): State<Vault>, headers: HeaderMap, body: Body) -> Result<Response, Problem> {
    let who = principal(&vault, &headers).await?;
    let query: SearchQuery = json_body(&headers, body).await?;
    let stated = Stated::from(&headers);
    let found = blocking(move || vault.search(&who, &query, &stated.purpose())).await?;
    Ok(Json(serde_json::json!({ "records": found })).into_response())
}

fn record_id(id: &str) -> Result<custodia_vault::RecordId, Problem> {
    id.parse().map_err(|_| {
        Problem::new(
            StatusCode::BAD_REQUEST,
            "invalid-record-id",
            "Not a record id",
            Some("a record id is <device hex>-<sequence>".into()),
        )
    })
}

async fn record_metadata(
    State(vault): State<Vault>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, Problem> {
    let who = principal(&vault, &headers).await?;
    let id = record_id(&id)?;
    let stated = Stated::from(&headers);
    let view = vault.read_metadata(&who, &id, &stated.purpose()).await?;
    let mut response = Json(view).into_response();
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

async fn record_image(
    State(vault): State<Vault>,
    headers: HeaderMap,
    Path((id, part)): Path<(String, String)>,
) -> Result<Response, Problem> {
    let who = principal(&vault, &headers).await?;
    let id = record_id(&id)?;
    let stated = Stated::from(&headers);
    let image = vault.read_image(&who, &id, &part, &stated.purpose()).await?;
    let mut response = Body::from(image.bytes.to_vec()).into_response();
    let h = response.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(image.media_type));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ExtendBody {
    class: String,
    until_ms: i64,
    basis: String,
}

/// A face hand-off (`hand-off:<legal basis>`, at most the policy's hand-off period) or a legal
/// hold (`legal-hold:<case>`): re-seals one group's data key to a longer-lived epoch.
async fn extend_retention(
    State(vault): State<Vault>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Body,
) -> Result<Response, Problem> {
    let who = principal(&vault, &headers).await?;
    let id = record_id(&id)?;
    let request: ExtendBody = json_body(&headers, body).await?;
    let class = request.class.parse().map_err(|_| {
        Problem::new(
            StatusCode::BAD_REQUEST,
            "invalid-request",
            "Invalid request",
            Some("class is face, plate or overview".into()),
        )
    })?;
    let stated = Stated::from(&headers);
    vault.extend_retention(&who, &id, class, request.until_ms, &request.basis, &stated.purpose()).await?;
    Ok(Json(serde_json::json!({ "extended": true, "until_ms": request.until_ms })).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BreakGlassBody {
    scope: String,
}

async fn request_break_glass(State(vault): State<Vault>, headers: HeaderMap, body: Body) -> Result<Response, Problem> {
    let who = principal(&vault, &headers).await?;
    let request: BreakGlassBody = json_body(&headers, body).await?;
    let stated = Stated::from(&headers);
    let id = blocking(move || vault.request_break_glass(&who, &request.scope, &stated.purpose())).await?;
    Ok((StatusCode::CREATED, Json(serde_json::json!({ "request": id }))).into_response())
}

async fn approve_break_glass(
    State(vault): State<Vault>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, Problem> {
    let who = principal(&vault, &headers).await?;
    blocking(move || vault.approve_break_glass(&who, &id)).await?;
    Ok(Json(serde_json::json!({ "approved": true })).into_response())
}

async fn clear_block(
    State(vault): State<Vault>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, Problem> {
    let who = principal(&vault, &headers).await?;
    blocking(move || vault.clear_block(&who, &id)).await?;
    Ok(Json(serde_json::json!({ "cleared": true })).into_response())
}

async fn list_principals(State(vault): State<Vault>, headers: HeaderMap) -> Result<Response, Problem> {
    let who = principal(&vault, &headers).await?;
    allowed(&vault, who, Permission::ManagePrincipals).await?;
    let rows = blocking(move || vault.principals()).await?;
    let list: Vec<_> = rows
        .into_iter()
        .map(|p| serde_json::json!({ "id": p.id, "roles": p.roles, "disabled": p.disabled_at_ms.is_some(), "blocked": p.blocked_at_ms.is_some() }))
        .collect();
    Ok(Json(serde_json::json!({ "principals": list })).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewPrincipal {
    id: String,
    roles: Vec<String>,
}

async fn add_principal(State(vault): State<Vault>, headers: HeaderMap, body: Body) -> Result<Response, Problem> {
    let who = principal(&vault, &headers).await?;
    let actor = allowed(&vault, who, Permission::ManagePrincipals).await?;
    let new: NewPrincipal = json_body(&headers, body).await?;
    let roles =
        new.roles.iter().map(|r| r.parse::<Role>()).collect::<Result<Vec<_>, _>>().map_err(|reason| {
            Problem::new(StatusCode::BAD_REQUEST, "invalid-request", "Invalid request", Some(reason))
        })?;
    blocking(move || vault.add_principal(&actor, &new.id, &roles)).await?;
    Ok(StatusCode::CREATED.into_response())
}

async fn disable_principal(
    State(vault): State<Vault>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, Problem> {
    let who = principal(&vault, &headers).await?;
    let actor = allowed(&vault, who, Permission::ManagePrincipals).await?;
    blocking(move || vault.disable_principal(&actor, &id)).await?;
    Ok(Json(serde_json::json!({ "disabled": true })).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewGrant {
    grantee: String,
    role: String,
    scope: String,
    expires_at_ms: i64,
}

async fn add_grant(State(vault): State<Vault>, headers: HeaderMap, body: Body) -> Result<Response, Problem> {
    let who = principal(&vault, &headers).await?;
    let actor = allowed(&vault, who, Permission::ManageGrants).await?;
    let new: NewGrant = json_body(&headers, body).await?;
    let bad =
        |reason: String| Problem::new(StatusCode::BAD_REQUEST, "invalid-request", "Invalid request", Some(reason));
    let role: Role = new.role.parse().map_err(bad)?;
    let scope: Scope = new.scope.parse().map_err(bad)?;
    blocking(move || vault.grant(&actor, &new.grantee, role, &scope, new.expires_at_ms)).await?;
    Ok(StatusCode::CREATED.into_response())
}

async fn device_health(State(vault): State<Vault>, headers: HeaderMap) -> Result<Response, Problem> {
    let who = principal(&vault, &headers).await?;
    allowed(&vault, who, Permission::DeviceHealth).await?;
    let devices = blocking(move || vault.device_health()).await?;
    Ok(Json(serde_json::json!({ "devices": devices })).into_response())
}

async fn device_config(State(vault): State<Vault>, headers: HeaderMap) -> Result<Response, Problem> {
    let who = principal(&vault, &headers).await?;
    allowed(&vault, who, Permission::DeviceHealth).await?;
    let config = blocking(move || vault.lane_facing_config()).await?;
    Ok(Json(config).into_response())
}

async fn get_policy(State(vault): State<Vault>, headers: HeaderMap) -> Result<Response, Problem> {
    let who = principal(&vault, &headers).await?;
    allowed(&vault, who, Permission::ManagePolicy).await?;
    let mut response = Body::from(vault.policy_text()).into_response();
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/toml"));
    Ok(response)
}

async fn put_policy(State(vault): State<Vault>, headers: HeaderMap, body: Body) -> Result<Response, Problem> {
    let who = principal(&vault, &headers).await?;
    let actor = allowed(&vault, who, Permission::ManagePolicy).await?;
    let body = read_body(body, MAX_POLICY_BODY, policy_too_large).await?;
    let text = String::from_utf8(body.to_vec())
        .map_err(|_| Problem::new(StatusCode::BAD_REQUEST, "invalid-policy", "Policy is not UTF-8 text", None))?;
    blocking(move || vault.set_policy(&actor, &text)).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
