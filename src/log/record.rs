//! The record schema (version 1).

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::model::Sentiment;
use crate::model::{ModelRef, Role};

/// How much of a tweet's text is kept in the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TextMode {
    /// The text as sent.
    Full,
    /// `sha256:<hex>` of the text: duplicates stay recognisable, the words do not.
    Sha256,
    /// No text at all.
    None,
}

impl TextMode {
    pub fn apply(self, text: &str) -> Option<String> {
        match self {
            TextMode::Full => Some(text.to_owned()),
            TextMode::Sha256 => Some(format!("sha256:{}", hex::encode(Sha256::digest(text)))),
            TextMode::None => None,
        }
    }
}

/// One scored tweet.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PredictionRecord {
    pub v: u8,
    pub id: Uuid,
    #[serde(with = "time::serde::rfc3339")]
    pub ts: OffsetDateTime,
    pub model: ModelRef,
    pub role: Role,
    pub score: f32,
    pub sentiment: Sentiment,
    pub latency_ms: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// 1 positive, 0 negative, when the caller sent it with the prediction.
    #[serde(default)]
    pub true_label: Option<u8>,
}

/// A true label sent back for an earlier prediction.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeedbackRecord {
    pub v: u8,
    /// The record's own id, so that a retried append is one logical record. Written by the
    /// service; records from before it existed get the id derived from prediction and label.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<Uuid>,
    pub prediction_id: Uuid,
    #[serde(with = "time::serde::rfc3339")]
    pub ts: OffsetDateTime,
    pub true_label: u8,
}

impl FeedbackRecord {
    /// The record's id, as written or as derived.
    pub fn id(&self) -> Uuid {
        self.id
            .unwrap_or_else(|| feedback_id(self.prediction_id, self.true_label, None))
    }
}

/// A feedback record's id: from the caller's `Idempotency-Key` when there is one, else from the
/// prediction and the label. The same request sent twice gets the same id, so the report counts it
/// once however often it was appended.
pub fn feedback_id(prediction_id: Uuid, true_label: u8, idempotency_key: Option<&str>) -> Uuid {
    let mut hash = Sha256::new();
    match idempotency_key {
        Some(key) => {
            hash.update(b"key\0");
            hash.update(key.as_bytes());
        }
        None => {
            hash.update(b"label\0");
            hash.update(prediction_id.as_bytes());
            hash.update([true_label]);
        }
    }
    let digest = hash.finalize();
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    uuid::Builder::from_custom_bytes(bytes).into_uuid()
}

/// Serialises records as JSON Lines.
pub fn to_jsonl<T: Serialize>(records: &[T]) -> Vec<u8> {
    let mut out = Vec::with_capacity(records.len() * 200);
    for record in records {
        serde_json::to_writer(&mut out, record).expect("log records always serialise");
        out.push(b'\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_feedback_id_is_stable_per_request_and_differs_across_requests() {
        let p = Uuid::from_u128(7);
        assert_eq!(feedback_id(p, 1, None), feedback_id(p, 1, None));
        assert_ne!(feedback_id(p, 1, None), feedback_id(p, 0, None));
        assert_ne!(
            feedback_id(p, 1, None),
            feedback_id(Uuid::from_u128(8), 1, None)
        );
        assert_eq!(
            feedback_id(p, 1, Some("k-1")),
            feedback_id(Uuid::from_u128(9), 0, Some("k-1"))
        );
        assert_ne!(
            feedback_id(p, 1, Some("k-1")),
            feedback_id(p, 1, Some("k-2"))
        );
        let old = FeedbackRecord {
            v: 1,
            id: None,
            prediction_id: p,
            ts: time::macros::datetime!(2026-11-25 10:00:00 UTC),
            true_label: 1,
        };
        assert_eq!(
            old.id(),
            feedback_id(p, 1, None),
            "old records get the derived id"
        );
    }

    #[test]
    fn record_matches_the_documented_schema() {
        let record = PredictionRecord {
            v: 1,
            id: Uuid::nil(),
            ts: time::macros::datetime!(2026-11-25 10:00:00 UTC),
            model: ModelRef {
                name: "lstm".into(),
                version: "2026.11.25-1".into(),
            },
            role: Role::Champion,
            score: 0.93,
            sentiment: Sentiment::Positive,
            latency_ms: 1.7,
            text: TextMode::Full.apply("hello"),
            true_label: Some(1),
        };
        let json: serde_json::Value = serde_json::from_slice(&to_jsonl(&[record])).unwrap();
        assert_eq!(json["v"], 1);
        assert_eq!(json["ts"], "2026-11-25T10:00:00Z");
        assert_eq!(json["model"]["version"], "2026.11.25-1");
        assert_eq!(json["role"], "champion");
        assert_eq!(json["sentiment"], "positive");
        assert_eq!(json["text"], "hello");
        assert_eq!(json["true_label"], 1);
    }

    #[test]
    fn text_modes() {
        assert_eq!(TextMode::None.apply("x"), None);
        let hashed = TextMode::Sha256.apply("x").unwrap();
        assert!(hashed.starts_with("sha256:") && hashed.len() == 7 + 64);
        assert_eq!(Some(hashed), TextMode::Sha256.apply("x"));
        assert_ne!(TextMode::Sha256.apply("x"), TextMode::Sha256.apply("y"));
    }
}
