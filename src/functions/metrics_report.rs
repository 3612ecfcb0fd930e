//! `metrics-report`: the timer function. The host POSTs an InvokeRequest to `/metrics-report`; we
//! run the aggregation and answer an InvokeResponse. A failed run answers an error status, so the
//! host records the invocation as failed.

use warp::http::StatusCode;

use super::error::{json_response, parse_json};
use super::host::{InvokeRequest, InvokeResponse};
use super::{AppState, Function, HandlerFuture, Request, Trigger};

pub const FUNCTION: Function = Function {
    name: "metrics-report",
    trigger: Trigger::Timer,
    handler,
};

fn handler(state: AppState, request: Request) -> HandlerFuture {
    Box::pin(async move {
        let invocation: InvokeRequest = parse_json(&request.body)?;
        let past_due = invocation.timer().is_some_and(|t| t.is_past_due);
        let report = state.service.run_report().await?;
        let day = &report.overall.last_24h;
        let hour = &report.overall.last_hour;
        let fmt = |v: Option<f64>| v.map_or("n/a".to_owned(), |v| format!("{v:.3}"));
        let response = InvokeResponse {
            logs: vec![format!(
                "metrics report: {} new predictions, {} new feedback{}; last 24 h macro-F1 {} on {} labelled; last hour negative share {}, bad_buzz {}",
                report.run.prediction_records,
                report.run.feedback_records,
                if past_due { " (run was past due)" } else { "" },
                fmt(day.macro_f1),
                day.labelled,
                fmt(hour.negative_share),
                hour.bad_buzz || day.bad_buzz,
            )],
            ..Default::default()
        };
        Ok(json_response(StatusCode::OK, &response))
    })
}
