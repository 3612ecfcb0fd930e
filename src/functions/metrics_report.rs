//! `metrics-report`: the timer function, invoked by the host as `POST /metrics-report`.

use super::{ApiError, AppState, Function, HandlerFuture, Request, Trigger};

pub const FUNCTION: Function = Function {
    name: "metrics-report",
    trigger: Trigger::Timer,
    handler,
};

fn handler(_state: AppState, _request: Request) -> HandlerFuture {
    // A non-2xx answer makes the host record the invocation as failed, which is the truth
    // until the aggregation exists.
    Box::pin(async move { Err(ApiError::NotImplemented("the metrics report")) })
}
