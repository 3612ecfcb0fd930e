//! `GET /api/report`: the latest metrics report, as the `metrics-report` timer wrote it.

use warp::http::{header, HeaderValue, StatusCode};

use super::error::json_response;
use super::{AppState, Function, HandlerFuture, Request, Trigger};

pub const FUNCTION: Function = Function {
    name: "report",
    trigger: Trigger::Http {
        methods: &["get"],
        route: "report",
    },
    handler,
};

fn handler(state: AppState, _request: Request) -> HandlerFuture {
    Box::pin(async move {
        let report = state.service.latest_report().await?;
        let mut response = json_response(StatusCode::OK, &report);
        // A new report replaces this one every run; a cached copy would hide a bad buzz.
        response
            .headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        Ok(response)
    })
}
