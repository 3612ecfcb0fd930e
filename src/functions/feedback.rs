//! `POST /api/feedback`: the true label of an earlier prediction, answered 201 only once stored.

use serde::{Deserialize, Serialize};
use uuid::Uuid;
use warp::http::StatusCode;

use super::error::{json_response, parse_json};
use super::{AppState, Function, HandlerFuture, Request, Trigger};

pub const FUNCTION: Function = Function {
    name: "feedback",
    trigger: Trigger::Http {
        methods: &["post"],
        route: "feedback",
    },
    handler,
};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FeedbackBody {
    /// The `id` of the prediction being labelled.
    id: Uuid,
    true_label: u8,
}

#[derive(Serialize)]
struct Stored {
    id: Uuid,
    true_label: u8,
    stored: bool,
}

fn handler(state: AppState, request: Request) -> HandlerFuture {
    Box::pin(async move {
        let body: FeedbackBody = parse_json(&request.body)?;
        let record = state.service.feedback(body.id, body.true_label).await?;
        Ok(json_response(
            StatusCode::CREATED,
            &Stored {
                id: record.prediction_id,
                true_label: record.true_label,
                stored: true,
            },
        ))
    })
}
