//! `POST /api/feedback`: the true label of an earlier prediction.

use super::{ApiError, AppState, Function, HandlerFuture, Request, Trigger};

pub const FUNCTION: Function = Function {
    name: "feedback",
    trigger: Trigger::Http {
        methods: &["post"],
        route: "feedback",
    },
    handler,
};

fn handler(_state: AppState, _request: Request) -> HandlerFuture {
    // Answering 501 rather than 2xx: nothing is stored yet, so nothing may be acknowledged.
    Box::pin(async move { Err(ApiError::NotImplemented("feedback")) })
}
