//! `POST /api/predict`: score one text or a batch.

use serde::{Deserialize, Serialize};
use warp::http::StatusCode;

use super::error::{json_response, parse_json, ApiError};
use super::{AppState, Function, HandlerFuture, Request, Trigger};
use crate::service::Prediction;

pub const FUNCTION: Function = Function {
    name: "predict",
    trigger: Trigger::Http {
        methods: &["post"],
        route: "predict",
    },
    handler,
};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PredictBody {
    text: Option<String>,
    texts: Option<Vec<String>>,
    true_label: Option<u8>,
}

#[derive(Serialize)]
struct BatchAnswer {
    predictions: Vec<Prediction>,
}

fn handler(state: AppState, request: Request) -> HandlerFuture {
    Box::pin(async move {
        let body: PredictBody = parse_json(&request.body)?;
        match (body.text, body.texts) {
            (Some(text), None) => {
                let mut predictions = state.service.predict(vec![text], body.true_label).await?;
                let prediction = predictions.pop().expect("one text gives one prediction");
                Ok(json_response(StatusCode::OK, &prediction))
            }
            (None, Some(texts)) => {
                if body.true_label.is_some() {
                    return Err(ApiError::InvalidRequest(
                        "true_label goes with a single text; send feedback per prediction id for a batch".into(),
                    ));
                }
                let predictions = state.service.predict(texts, None).await?;
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
