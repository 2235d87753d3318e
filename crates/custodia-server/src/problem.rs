//! RFC 9457 problem details: every error the API returns is `application/problem+json` with a
//! precise title. Internal failures say only "Something went wrong"; their detail goes to the log.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use custodia_vault::IngestError;
use serde::Serialize;

/// A problem-details response.
#[derive(Debug, Serialize)]
pub struct Problem {
    /// A URI naming the kind of problem: `urn:custodia:problem:<slug>`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Short, the same for every occurrence of this kind.
    pub title: &'static str,
    /// The HTTP status.
    pub status: u16,
    /// This occurrence, for a person. Never plate text, image content or internals.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// Seconds for a `Retry-After` header (a busy answer), not part of the body.
    #[serde(skip)]
    pub retry_after_secs: Option<u32>,
}

impl Problem {
    /// A problem of kind `slug`.
    pub fn new(status: StatusCode, slug: &str, title: &'static str, detail: impl Into<Option<String>>) -> Self {
        Self {
            kind: format!("urn:custodia:problem:{slug}"),
            title,
            status: status.as_u16(),
            detail: detail.into(),
            retry_after_secs: None,
        }
    }

    /// The same problem, answered with `Retry-After: <secs>`.
    pub fn retry_after(self, secs: u32) -> Self {
        Self { retry_after_secs: Some(secs), ..self }
    }

    /// The opaque answer to an internal failure.
    pub fn internal() -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "Something went wrong", None)
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = serde_json::to_vec(&self).expect("problem serialises");
        let mut response = (status, body).into_response();
        response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/problem+json"));
        if let Some(secs) = self.retry_after_secs {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}

impl From<IngestError> for Problem {
    fn from(error: IngestError) -> Self {
        use StatusCode as S;
        let detail = Some(error.to_string());
        match error {
            IngestError::TooLarge(_) => {
                Self::new(S::PAYLOAD_TOO_LARGE, "capture-too-large", "Capture too large", detail)
            }
            IngestError::Malformed(_) => {
                Self::new(S::BAD_REQUEST, "malformed-capture", "Malformed sealed capture", detail)
            }
            IngestError::UnknownDevice(_) => Self::new(S::FORBIDDEN, "unknown-device", "Unknown device", detail),
            IngestError::RevokedDevice(_) => Self::new(S::FORBIDDEN, "revoked-device", "Device revoked", detail),
            IngestError::BadSignature => {
                Self::new(S::FORBIDDEN, "bad-signature", "Device signature does not verify", detail)
            }
            IngestError::WrongPlace { .. } => {
                Self::new(S::FORBIDDEN, "wrong-place", "Device used outside its enrolled site or lane", detail)
            }
            IngestError::CaptureTime { .. } => {
                Self::new(S::UNPROCESSABLE_ENTITY, "capture-time", "Capture time outside the accepted window", detail)
            }
            IngestError::UnknownEpoch { .. } => {
                Self::new(S::UNPROCESSABLE_ENTITY, "unknown-epoch", "Capture sealed to an unknown key epoch", detail)
            }
            IngestError::EpochMismatch { .. } => {
                Self::new(S::UNPROCESSABLE_ENTITY, "epoch-mismatch", "Key epoch does not cover this capture", detail)
            }
            IngestError::EpochShredded { .. } => {
                Self::new(S::GONE, "epoch-shredded", "Key epoch already shredded", detail)
            }
            IngestError::SequenceConflict { .. } => Self::new(
                S::CONFLICT,
                "sequence-conflict",
                "Sequence number already used with different content",
                detail,
            ),
            IngestError::NoMetadata => {
                Self::new(S::UNPROCESSABLE_ENTITY, "no-metadata", "Capture has no metadata part", detail)
            }
            IngestError::MetadataUnopenable => {
                Self::new(S::UNPROCESSABLE_ENTITY, "metadata-unopenable", "Metadata part cannot be opened", detail)
            }
            IngestError::MetadataInvalid(_) => {
                Self::new(S::UNPROCESSABLE_ENTITY, "metadata-invalid", "Metadata part is invalid", detail)
            }
            IngestError::Storage(reason) => {
                tracing::error!(%reason, "intake refused: storage unavailable");
                Self::new(
                    S::SERVICE_UNAVAILABLE,
                    "storage-unavailable",
                    "Storage unavailable; capture not accepted, retry later",
                    None,
                )
            }
            IngestError::ShuttingDown => {
                Self::new(S::SERVICE_UNAVAILABLE, "shutting-down", "Vault is shutting down; retry later", None)
            }
            _ => Self::internal(),
        }
    }
}
