//! `GET /api/report.html`: the latest metrics report as a page, as the last run rendered it.
//! Same key as `GET /api/report`: the report says how the model does on real traffic.

use warp::http::{header, HeaderValue};
use warp::Reply;

use super::{AppState, Function, HandlerFuture, Request, Trigger};

pub const FUNCTION: Function = Function {
    name: "report-html",
    trigger: Trigger::Http {
        methods: &["get"],
        route: "report.html",
    },
    handler,
};

fn handler(state: AppState, _request: Request) -> HandlerFuture {
    Box::pin(async move {
        let page = state.service.latest_report_html().await?;
        let mut response = warp::reply::html(page.to_vec()).into_response();
        let headers = response.headers_mut();
        // The page is rendered with no script and only inline styles and SVG.
        headers.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(
                "default-src 'none'; style-src 'unsafe-inline'; img-src data:; \
                 base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
            ),
        );
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        Ok(response)
    })
}
