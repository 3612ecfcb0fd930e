//! `POST /api/predict`: score one text or a batch.

use warp::http::StatusCode;

use super::error::{json_response, parse_json, ApiError};
use super::wire::{BatchAnswer, PredictRequest, PredictionAnswer};
use super::{AppState, Function, HandlerFuture, Request, Trigger};

pub const FUNCTION: Function = Function {
    name: "predict",
    trigger: Trigger::Http {
        methods: &["post"],
        route: "predict",
    },
    handler,
};

fn handler(state: AppState, request: Request) -> HandlerFuture {
    Box::pin(async move {
        let body: PredictRequest = parse_json(&request.body)?;
        match (body.text, body.texts) {
            (Some(text), None) => {
                let mut predictions = state.service.predict(vec![text], body.true_label).await?;
                let prediction = predictions.pop().expect("one text gives one prediction");
                Ok(json_response(
                    StatusCode::OK,
                    &PredictionAnswer::from(prediction),
                ))
            }
            (None, Some(texts)) => {
                if body.true_label.is_some() {
                    return Err(ApiError::InvalidRequest(
                        "true_label goes with a single text; send feedback per prediction id for a batch".into(),
                    ));
                }
                let predictions = state.service.predict(texts, None).await?;
                let predictions = predictions.into_iter().map(Into::into).collect();
                Ok(json_response(StatusCode::OK, &BatchAnswer { predictions }))
            }
            (Some(_), Some(_)) => Err(ApiError::InvalidRequest(
                "send either text or texts, not both".into(),
            )),
            (None, None) => Err(ApiError::InvalidRequest(
                "the body needs a text field (one tweet) or a texts field (a batch)".into(),
            )),
        }
    })
}
