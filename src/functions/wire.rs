//! The API's request and answer bodies, declared once: the handlers read and write them,
//! `predict --url` sends and reads them, and the OpenAPI test checks them against the spec.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::model::{ModelRef, Sentiment};
use crate::service::Prediction;

/// `POST /api/predict`: one `text` (optionally with its `true_label`) or a batch of `texts`.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PredictRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub texts: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub true_label: Option<u8>,
}

/// One scored text.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PredictionAnswer {
    pub id: Uuid,
    /// P(positive), calibrated when the manifest carries a temperature.
    pub score: f32,
    pub sentiment: Sentiment,
    pub model: ModelRef,
    /// Milliseconds spent tokenising and scoring the request this text came with.
    pub latency_ms: f64,
}

impl From<Prediction> for PredictionAnswer {
    fn from(p: Prediction) -> Self {
        Self {
            id: p.id,
            score: p.score,
            sentiment: p.sentiment,
            model: p.model,
            // Microseconds are the most a caller can use; more digits are float noise.
            latency_ms: (p.latency_ms * 1e3).round() / 1e3,
        }
    }
}

/// The answer to a batch: one prediction per text, in the texts' order.
#[derive(Debug, Serialize, Deserialize)]
pub struct BatchAnswer {
    pub predictions: Vec<PredictionAnswer>,
}

/// `POST /api/feedback`.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeedbackRequest {
    /// The `id` of the prediction being labelled.
    #[serde(deserialize_with = "prediction_id")]
    pub id: Uuid,
    pub true_label: u8,
}

/// 201: the feedback is durably stored.
#[derive(Debug, Serialize, Deserialize)]
pub struct FeedbackAnswer {
    pub id: Uuid,
    pub true_label: u8,
    pub stored: bool,
}

/// Every error answer: `{"error": {"code", "message"}}`, and `stored` after a failed write.
#[derive(Debug, Serialize, Deserialize)]
pub struct ErrorBody {
    pub error: ErrorDetail,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stored: Option<Stored>,
}

/// What became of a write that failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Stored {
    /// Nothing was stored.
    No,
    /// Storage did not answer: it may have been stored. A retry is stored once.
    Unknown,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct ErrorDetail {
    pub code: String,
    pub message: String,
}

/// A UUID, refused in the caller's terms rather than the parser's.
fn prediction_id<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Uuid, D::Error> {
    let text = String::deserialize(d)?;
    Uuid::parse_str(&text).map_err(|_| {
        serde::de::Error::custom(
            "id must be the id of a prediction (a UUID, as POST /api/predict answers it)",
        )
    })
}
