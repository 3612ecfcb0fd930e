//! The HTTP and host adapter: one file per Azure Function, one registry of routes, one error table.
//!
//! Every request goes through [`dispatch`], which finds the function in [`FUNCTIONS`] by path,
//! checks the method, reads the body under a size limit and calls the function's handler inside a
//! tracing span carrying the host's invocation id. The registry is also what the test against
//! `function-app/*/function.json` reads, so a route cannot exist on one side only.

pub mod error;
pub mod feedback;
pub mod health;
pub mod host;
pub mod metrics_report;
pub mod openapi;
pub mod predict;
pub mod report;
pub mod report_html;
pub mod server;
pub mod ui;
pub mod wire;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use bytes::{Buf, Bytes, BytesMut};
use futures::{Stream, StreamExt};
use tracing::Instrument;
use warp::http::{HeaderMap, Method, StatusCode};
use warp::reply::Response;
use warp::Filter;

pub use error::ApiError;
pub use server::{serve, Drained, ServerLimits};

use crate::service::Service;

/// Largest request body accepted.
pub const MAX_BODY_BYTES: usize = 256 * 1024;
/// HTTP functions live under this prefix, as on the Functions host.
pub const ROUTE_PREFIX: &str = "/api";

/// What every handler can reach.
#[derive(Debug, Clone)]
pub struct AppState {
    pub service: Arc<Service>,
    /// Longest a client may take to send a request body.
    pub body_timeout: std::time::Duration,
}

/// A request as handlers see it: the body already read, the path already matched.
#[derive(Debug)]
pub struct Request {
    pub method: Method,
    pub headers: HeaderMap,
    pub body: Bytes,
}

pub type HandlerFuture = Pin<Box<dyn Future<Output = Result<Response, ApiError>> + Send>>;
pub type Handler = fn(AppState, Request) -> HandlerFuture;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    /// Forwarded as-is by the host to `/api/<route>`.
    Http {
        methods: &'static [&'static str],
        route: &'static str,
    },
    /// Posted by the host to `/<function name>` as an InvokeRequest.
    Timer,
}

pub struct Function {
    /// The function's folder name in `function-app/`.
    pub name: &'static str,
    pub trigger: Trigger,
    pub handler: Handler,
}

/// Every function the handler serves, and so every folder `function-app/` must have.
pub const FUNCTIONS: &[Function] = &[
    predict::FUNCTION,
    health::FUNCTION,
    feedback::FUNCTION,
    ui::FUNCTION,
    report::FUNCTION,
    report_html::FUNCTION,
    openapi::FUNCTION,
    metrics_report::FUNCTION,
];

impl Function {
    fn matches(&self, path: &str) -> bool {
        match self.trigger {
            Trigger::Http { route, .. } => {
                path.strip_prefix(ROUTE_PREFIX)
                    .and_then(|p| p.strip_prefix('/'))
                    .is_some_and(|p| p.trim_end_matches('/') == route)
                    // The page is also served at the API root when run on its own.
                    || (self.name == ui::FUNCTION.name
                        && (path == ROUTE_PREFIX || path == "/api/"))
            }
            Trigger::Timer => path.strip_prefix('/') == Some(self.name),
        }
    }

    fn allows(&self, method: &Method) -> bool {
        match self.trigger {
            Trigger::Http { methods, .. } => methods
                .iter()
                .any(|m| m.eq_ignore_ascii_case(method.as_str())),
            Trigger::Timer => method == Method::POST,
        }
    }

    fn allowed(&self) -> String {
        match self.trigger {
            Trigger::Http { methods, .. } => methods.join(", ").to_uppercase(),
            Trigger::Timer => "POST".into(),
        }
    }
}

/// A body over the limit is still read, and thrown away, up to this many bytes, so that the
/// client finishes sending and reads our 413 instead of a reset connection.
const DRAIN_LIMIT_BYTES: usize = 4 * MAX_BODY_BYTES;

/// Reads a body stream, refusing more than `limit` bytes without buffering them.
async fn read_body<S, B>(headers: &HeaderMap, body: S, limit: usize) -> Result<Bytes, ApiError>
where
    S: Stream<Item = Result<B, warp::Error>>,
    B: Buf,
{
    let declared = headers
        .get(warp::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    // A declared body far over the limit is refused unread; one just over it is drained like a
    // streamed one, so that the client reads the 413.
    if declared.is_some_and(|len| len > DRAIN_LIMIT_BYTES as u64) {
        return Err(ApiError::PayloadTooLarge { limit });
    }
    let mut body = std::pin::pin!(body);
    let mut buffer = BytesMut::new();
    let mut received = 0usize;
    while let Some(chunk) = body.next().await {
        let mut chunk =
            chunk.map_err(|e| ApiError::InvalidRequest(format!("reading the body failed: {e}")))?;
        received += chunk.remaining();
        if received > limit {
            if received > DRAIN_LIMIT_BYTES {
                break;
            }
            chunk.advance(chunk.remaining());
            continue;
        }
        while chunk.has_remaining() {
            let piece = chunk.chunk();
            buffer.extend_from_slice(piece);
            let n = piece.len();
            chunk.advance(n);
        }
    }
    if received > limit {
        return Err(ApiError::PayloadTooLarge { limit });
    }
    Ok(buffer.freeze())
}

/// POST bodies must say they are JSON. A browser page on another origin can only send
/// `text/plain`, form or multipart bodies without a CORS preflight, which this API never grants,
/// so this check is what stops cross-site writes.
fn require_json(headers: &HeaderMap) -> Result<(), ApiError> {
    let content_type = headers
        .get(warp::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    if essence == "application/json" {
        Ok(())
    } else if content_type.is_empty() {
        Err(ApiError::UnsupportedMediaType(
            "send the body with Content-Type: application/json".into(),
        ))
    } else {
        Err(ApiError::UnsupportedMediaType(format!(
            "the body must be application/json, not {:?}",
            content_type.chars().take(100).collect::<String>()
        )))
    }
}

async fn dispatch<S, B>(
    state: AppState,
    method: Method,
    path: String,
    headers: HeaderMap,
    body: S,
) -> Response
where
    S: Stream<Item = Result<B, warp::Error>>,
    B: Buf,
{
    // The host polls `/` until the handler answers; it only needs to know we are up.
    if path == "/" {
        return error::json_response(StatusCode::OK, &serde_json::json!({"status": "up"}));
    }
    let Some(function) = FUNCTIONS.iter().find(|f| f.matches(&path)) else {
        return ApiError::NotFound(path).into_response();
    };
    let invocation_id = headers
        .get("x-azure-functions-invocationid")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let span =
        tracing::info_span!("invocation", function = function.name, invocation_id = %invocation_id);
    async move {
        if !function.allows(&method) {
            return ApiError::MethodNotAllowed {
                method: method.to_string(),
                allowed: function.allowed(),
            }
            .into_response();
        }
        // The timer's InvokeRequest comes from the host over loopback; callers' POSTs must be JSON.
        if method == Method::POST && matches!(function.trigger, Trigger::Http { .. }) {
            if let Err(e) = require_json(&headers) {
                return e.into_response();
            }
        }
        let read = read_body(&headers, body, MAX_BODY_BYTES);
        let body = match tokio::time::timeout(state.body_timeout, read).await {
            Ok(Ok(body)) => body,
            Ok(Err(e)) => return e.into_response(),
            Err(_) => {
                return ApiError::RequestTimeout {
                    seconds: state.body_timeout.as_secs_f64(),
                }
                .into_response()
            }
        };
        let request = Request {
            method,
            headers,
            body,
        };
        match (function.handler)(state, request).await {
            Ok(response) => response,
            Err(e) => e.into_response(),
        }
    }
    .instrument(span)
    .await
}

/// The warp filter serving every function.
pub fn routes(
    state: AppState,
) -> impl Filter<Extract = (Response,), Error = std::convert::Infallible> + Clone {
    warp::method()
        .and(warp::path::full())
        .and(warp::header::headers_cloned())
        .and(warp::body::stream())
        .then(move |method, path: warp::path::FullPath, headers, body| {
            dispatch(
                state.clone(),
                method,
                path.as_str().to_owned(),
                headers,
                body,
            )
        })
        .recover(|_rejection: warp::Rejection| async move {
            // Every path matches the filter above, so this only sees malformed requests.
            Ok::<_, std::convert::Infallible>(
                ApiError::InvalidRequest("malformed request".into()).into_response(),
            )
        })
        .unify()
        .map(|mut r: Response| {
            // No answer of ours is ever to be read as another type than the one it declares.
            r.headers_mut().insert(
                warp::http::header::X_CONTENT_TYPE_OPTIONS,
                warp::http::HeaderValue::from_static("nosniff"),
            );
            r
        })
}
