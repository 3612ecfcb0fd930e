//! The HTTP layer's one error type, and the one table that maps every error to a status code.

use serde::Serialize;
use warp::http::StatusCode;
use warp::reply::Response;
use warp::Reply;

use super::wire::{ErrorBody, ErrorDetail, Stored};
use crate::service::{ErrorKind, ServiceError};

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("the body is not valid JSON: {0}")]
    InvalidJson(String),
    #[error("{0}")]
    InvalidRequest(String),
    #[error("the body is larger than {limit} bytes")]
    PayloadTooLarge { limit: usize },
    #[error("no function answers {0}")]
    NotFound(String),
    #[error("{method} is not allowed here; use {allowed}")]
    MethodNotAllowed { method: String, allowed: String },
    #[error("{0}")]
    UnsupportedMediaType(String),
    #[error("the body did not arrive within {seconds} s")]
    RequestTimeout { seconds: f64 },
    #[error(transparent)]
    Service(#[from] ServiceError),
}

impl ApiError {
    /// Status and stable error code of each error: callers' mistakes are 4xx, our faults 5xx.
    /// The one table; the service's errors come in as flat kinds.
    pub fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            ApiError::InvalidJson(_) => (StatusCode::BAD_REQUEST, "invalid_json"),
            ApiError::InvalidRequest(_) => (StatusCode::BAD_REQUEST, "invalid_request"),
            ApiError::UnsupportedMediaType(_) => {
                (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type")
            }
            ApiError::RequestTimeout { .. } => (StatusCode::REQUEST_TIMEOUT, "request_timeout"),
            ApiError::PayloadTooLarge { .. } => {
                (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large")
            }
            ApiError::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            ApiError::MethodNotAllowed { .. } => {
                (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed")
            }
            ApiError::Service(e) => match e.kind() {
                ErrorKind::InvalidInput => (StatusCode::BAD_REQUEST, "invalid_input"),
                ErrorKind::NoModel => (StatusCode::SERVICE_UNAVAILABLE, "no_model"),
                ErrorKind::ScoringFailed => (StatusCode::INTERNAL_SERVER_ERROR, "scoring_failed"),
                ErrorKind::StorageUnavailable => {
                    (StatusCode::SERVICE_UNAVAILABLE, "storage_unavailable")
                }
                ErrorKind::StorageUncertain => (StatusCode::SERVICE_UNAVAILABLE, "storage_timeout"),
                ErrorKind::ReportInProgress => (StatusCode::CONFLICT, "report_in_progress"),
                ErrorKind::CorruptCheckpoint => {
                    (StatusCode::INTERNAL_SERVER_ERROR, "corrupt_checkpoint")
                }
                ErrorKind::NoReport => (StatusCode::NOT_FOUND, "no_report"),
                ErrorKind::ReportUnreadable => {
                    (StatusCode::INTERNAL_SERVER_ERROR, "report_unreadable")
                }
                ErrorKind::Overloaded => (StatusCode::SERVICE_UNAVAILABLE, "overloaded"),
            },
        }
    }

    /// What the caller reads. Our own faults are told in fixed words: their details (model node
    /// names, the storage service's answer) belong in our log, not in a stranger's hands.
    fn public_message(&self, code: &str) -> String {
        match code {
            "scoring_failed" => "the model failed on this input; the failure is logged".into(),
            "storage_unavailable" => {
                "storage is unavailable; nothing was changed, and retrying later is safe".into()
            }
            "storage_timeout" => "storage did not answer in time, so this may or may not have \
                been stored; retrying is safe: a retry of the same request is stored once"
                .into(),
            "corrupt_checkpoint" => "the report's checkpoint cannot be read".into(),
            "report_unreadable" => "the latest report is not valid JSON".into(),
            _ => self.to_string(),
        }
    }

    pub fn into_response(self) -> Response {
        let (status, code) = self.status_and_code();
        if status.is_server_error() {
            tracing::error!(code, error = %self, "request failed");
        } else {
            // The message may quote the caller's body, which may quote a tweet: the code is
            // enough to count and alert on, and the caller has the message.
            tracing::info!(code, status = status.as_u16(), "request rejected");
        }
        let body = ErrorBody {
            error: ErrorDetail {
                code: code.to_owned(),
                message: self.public_message(code),
            },
            // Whether a write went through, where the caller cannot tell from the status alone.
            stored: match code {
                "storage_unavailable" => Some(Stored::No),
                "storage_timeout" => Some(Stored::Unknown),
                _ => None,
            },
        };
        let mut response = warp::reply::json(&body).into_response();
        *response.status_mut() = status;
        if code == "overloaded" {
            // A second is about what the queue takes to drain at its limit.
            response.headers_mut().insert(
                warp::http::header::RETRY_AFTER,
                warp::http::HeaderValue::from_static("1"),
            );
        }
        response
    }
}

/// Parses a JSON body, telling malformed JSON apart from JSON of the wrong shape.
pub fn parse_json<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|e| match e.classify() {
        serde_json::error::Category::Data => ApiError::InvalidRequest(e.to_string()),
        _ => ApiError::InvalidJson(e.to_string()),
    })
}

/// A JSON reply with a status.
pub fn json_response<T: Serialize>(status: StatusCode, value: &T) -> Response {
    let mut response = warp::reply::json(value).into_response();
    *response.status_mut() = status;
    response
}
