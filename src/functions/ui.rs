//! `GET /api/ui` (and `/api/` when run on its own): the web page.

use super::{ApiError, AppState, Function, HandlerFuture, Request, Trigger};

pub const FUNCTION: Function = Function {
    name: "ui",
    trigger: Trigger::Http {
        methods: &["get"],
        route: "ui",
    },
    handler,
};

fn handler(_state: AppState, _request: Request) -> HandlerFuture {
    Box::pin(async move { Err(ApiError::NotImplemented("the web page")) })
}
