//! `GET /api/ui` (and `/api/` when run on its own): the web page for community managers.
//!
//! One self-contained file (`ui.html`): styles and script inline, nothing fetched from elsewhere,
//! and every API call relative to the page, so the same page works locally and deployed.

use warp::http::{header, HeaderValue};
use warp::Reply;

use super::{AppState, Function, HandlerFuture, Request, Trigger};

pub const PAGE: &str = include_str!("ui.html");

pub const FUNCTION: Function = Function {
    name: "ui",
    trigger: Trigger::Http {
        methods: &["get"],
        route: "ui",
    },
    handler,
};

fn handler(_state: AppState, _request: Request) -> HandlerFuture {
    Box::pin(async move {
        let mut response = warp::reply::html(PAGE).into_response();
        let headers = response.headers_mut();
        // The page needs nothing but itself and the API next to it; say so to the browser.
        headers.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(
                "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; \
                 img-src data:; connect-src 'self'; base-uri 'none'; form-action 'none'; \
                 frame-ancestors 'none'",
            ),
        );
        headers.insert(
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        );
        headers.insert(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        );
        Ok(response)
    })
}
