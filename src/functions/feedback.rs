//! `POST /api/feedback`: the true label of an earlier prediction, answered 201 only once stored.

use warp::http::StatusCode;

use super::error::{json_response, parse_json, ApiError};
use super::wire::{FeedbackAnswer, FeedbackRequest};
use super::{AppState, Function, HandlerFuture, Request, Trigger};

pub const FUNCTION: Function = Function {
    name: "feedback",
    trigger: Trigger::Http {
        methods: &["post"],
        route: "feedback",
    },
    handler,
};

fn handler(state: AppState, request: Request) -> HandlerFuture {
    Box::pin(async move {
        let body: FeedbackRequest = parse_json(&request.body)?;
        let key = match request.headers.get("idempotency-key") {
            None => None,
            Some(value) => Some(value.to_str().map_err(|_| {
                ApiError::InvalidRequest("Idempotency-Key must be visible ASCII".into())
            })?),
        };
        let record = state
            .service
            .feedback(body.id, body.true_label, key)
            .await?;
        Ok(json_response(
            StatusCode::CREATED,
            &FeedbackAnswer {
                id: record.prediction_id,
                true_label: record.true_label,
                stored: true,
            },
        ))
    })
}
