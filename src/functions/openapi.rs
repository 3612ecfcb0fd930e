//! `GET /api/openapi.json`: the OpenAPI description of the HTTP API (`docs/openapi.json`).

use warp::http::{header, HeaderValue};
use warp::Reply;

use super::{AppState, Function, HandlerFuture, Request, Trigger};

/// The spec, compiled in so the binary always serves the description of the API it implements.
pub const SPEC: &str = include_str!("../../docs/openapi.json");

pub const FUNCTION: Function = Function {
    name: "openapi",
    trigger: Trigger::Http {
        methods: &["get"],
        route: "openapi.json",
    },
    handler,
};

fn handler(_state: AppState, _request: Request) -> HandlerFuture {
    Box::pin(async move {
        let mut response = SPEC.into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        Ok(response)
    })
}
