//! The HTTP layer's one error type, and the one table that maps every error to a status code.

use serde::Serialize;
use warp::http::StatusCode;
use warp::reply::Response;
use warp::Reply;

use crate::metrics::AggregationError;
use crate::reports::ReportError;
use crate::service::ServiceError;

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
    #[error(transparent)]
    Service(#[from] ServiceError),
    #[error(transparent)]
    Report(#[from] ReportError),
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: ErrorDetail<'a>,
}

#[derive(Serialize)]
struct ErrorDetail<'a> {
    code: &'a str,
    message: String,
}

impl ApiError {
    /// Status and stable error code of each error: callers' mistakes are 4xx, our faults 5xx.
    pub fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            ApiError::InvalidJson(_) => (StatusCode::BAD_REQUEST, "invalid_json"),
            ApiError::InvalidRequest(_) => (StatusCode::BAD_REQUEST, "invalid_request"),
            ApiError::PayloadTooLarge { .. } => {
                (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large")
            }
            ApiError::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            ApiError::MethodNotAllowed { .. } => {
                (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed")
            }
            ApiError::Service(ServiceError::InvalidInput(_)) => {
                (StatusCode::BAD_REQUEST, "invalid_input")
            }
            ApiError::Service(ServiceError::NoModel) => {
                (StatusCode::SERVICE_UNAVAILABLE, "no_model")
            }
            ApiError::Service(ServiceError::Scoring(_)) => {
                (StatusCode::INTERNAL_SERVER_ERROR, "scoring_failed")
            }
            ApiError::Service(ServiceError::Storage(_)) => {
                (StatusCode::SERVICE_UNAVAILABLE, "storage_unavailable")
            }
            ApiError::Service(ServiceError::Report(AggregationError::ConcurrentRun)) => {
                (StatusCode::CONFLICT, "report_in_progress")
            }
            ApiError::Service(ServiceError::Report(AggregationError::Store(_))) => {
                (StatusCode::SERVICE_UNAVAILABLE, "storage_unavailable")
            }
            ApiError::Service(ServiceError::Report(AggregationError::CorruptCheckpoint(_))) => {
                (StatusCode::INTERNAL_SERVER_ERROR, "corrupt_checkpoint")
            }
            ApiError::Report(ReportError::NoReport) => (StatusCode::NOT_FOUND, "no_report"),
            ApiError::Report(ReportError::Unreadable(_)) => {
                (StatusCode::INTERNAL_SERVER_ERROR, "report_unreadable")
            }
            ApiError::Report(ReportError::Store(_)) => {
                (StatusCode::SERVICE_UNAVAILABLE, "storage_unavailable")
            }
        }
    }

    pub fn into_response(self) -> Response {
        let (status, code) = self.status_and_code();
        if status.is_server_error() {
            tracing::error!(code, error = %self, "request failed");
        } else {
            tracing::info!(code, error = %self, "request rejected");
        }
        let body = ErrorBody {
            error: ErrorDetail {
                code,
                message: self.to_string(),
            },
        };
        let mut response = warp::reply::json(&body).into_response();
        *response.status_mut() = status;
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
