//! `GET /api/health`: which model serves, since when, and whether it is ready.

use warp::http::StatusCode;

use super::error::json_response;
use super::{AppState, Function, HandlerFuture, Request, Trigger};

pub const FUNCTION: Function = Function {
    name: "health",
    trigger: Trigger::Http {
        methods: &["get"],
        route: "health",
    },
    handler,
};

fn handler(state: AppState, _request: Request) -> HandlerFuture {
    Box::pin(async move {
        let health = state.service.health();
        let status = if health.is_ready() {
            StatusCode::OK
        } else {
            StatusCode::SERVICE_UNAVAILABLE
        };
        Ok(json_response(status, &health))
    })
}
