//! The product's core: validates what callers send, scores it with the registry's champion off the
//! async runtime, and reports health. The HTTP layer above only parses and maps errors; the
//! model and store layers below know nothing of requests.

use std::sync::Arc;
use std::time::Instant;

use serde::Serialize;
use time::OffsetDateTime;
use tokio::sync::Semaphore;
use uuid::Uuid;

use crate::model::{LoadedModel, ModelError, ModelRef, Registry, Role};

/// Longest text accepted, in characters (Unicode scalar values).
pub const MAX_TEXT_CHARS: usize = 5_000;
/// Most texts in one batch request.
pub const MAX_BATCH: usize = 64;

#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error("{0}")]
    InvalidInput(String),
    #[error("no model is loaded yet")]
    NoModel,
    #[error("scoring failed: {0}")]
    Scoring(#[from] ModelError),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Sentiment {
    Positive,
    Negative,
}

#[derive(Debug, Clone, Serialize)]
pub struct Prediction {
    pub id: Uuid,
    /// P(positive).
    pub score: f32,
    pub sentiment: Sentiment,
    pub model: ModelRef,
    /// Time spent tokenising and running the model for the request this prediction came with.
    pub latency_ms: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct ModelStatus {
    pub name: String,
    pub version: String,
    pub kind: crate::model::ModelKind,
    #[serde(with = "time::serde::rfc3339")]
    pub loaded_at: OffsetDateTime,
}

#[derive(Debug, Clone, Serialize)]
pub struct Health {
    pub status: &'static str,
    pub model: Option<ModelStatus>,
    pub challenger: Option<ModelStatus>,
    /// Why the last version offered as champion was refused, if it was.
    pub last_model_error: Option<String>,
    pub uptime_seconds: u64,
    pub store: String,
}

impl Health {
    pub fn is_ready(&self) -> bool {
        self.model.is_some()
    }
}

#[derive(Debug)]
pub struct Service {
    registry: Arc<Registry>,
    /// Bounds concurrent inferences to the cores we have: more would only queue inside the CPU.
    inference_slots: Arc<Semaphore>,
    started: Instant,
    store_description: String,
}

fn status_of(model: &LoadedModel) -> ModelStatus {
    let m = model.scorer.manifest();
    ModelStatus {
        name: m.name.clone(),
        version: m.version.clone(),
        kind: m.kind,
        loaded_at: model.loaded_at,
    }
}

/// Checks texts and a label as the API contract demands, before any work is done.
pub fn validate(texts: &[String], true_label: Option<u8>) -> Result<(), ServiceError> {
    if texts.is_empty() {
        return Err(ServiceError::InvalidInput(
            "texts must hold at least one text".into(),
        ));
    }
    if texts.len() > MAX_BATCH {
        return Err(ServiceError::InvalidInput(format!(
            "a batch holds at most {MAX_BATCH} texts, got {}",
            texts.len()
        )));
    }
    let batch = texts.len() > 1;
    for (index, text) in texts.iter().enumerate() {
        let which = if batch {
            format!("texts[{index}]")
        } else {
            "text".to_owned()
        };
        if text.trim().is_empty() {
            return Err(ServiceError::InvalidInput(format!("{which} is empty")));
        }
        let chars = text.chars().count();
        if chars > MAX_TEXT_CHARS {
            return Err(ServiceError::InvalidInput(format!(
                "{which} has {chars} characters; the limit is {MAX_TEXT_CHARS}"
            )));
        }
    }
    if let Some(label) = true_label {
        if label > 1 {
            return Err(ServiceError::InvalidInput(format!(
                "true_label must be 0 (negative) or 1 (positive), got {label}"
            )));
        }
    }
    Ok(())
}

impl Service {
    pub fn new(registry: Arc<Registry>, concurrency: usize, store_description: String) -> Self {
        Self {
            registry,
            inference_slots: Arc::new(Semaphore::new(concurrency.max(1))),
            started: Instant::now(),
            store_description,
        }
    }

    pub fn registry(&self) -> &Arc<Registry> {
        &self.registry
    }

    /// Scores texts with the champion. `true_label` is checked here and travels with single
    /// predictions to the prediction log.
    pub async fn predict(
        &self,
        texts: Vec<String>,
        true_label: Option<u8>,
    ) -> Result<Vec<Prediction>, ServiceError> {
        validate(&texts, true_label)?;
        let model = self
            .registry
            .get(Role::Champion)
            .ok_or(ServiceError::NoModel)?;
        let (scores, latency_ms) = self.score(model.clone(), texts).await?;
        let threshold = model.scorer.manifest().threshold;
        let model_ref = model.model_ref();
        Ok(scores
            .into_iter()
            .map(|score| Prediction {
                id: Uuid::now_v7(),
                score,
                sentiment: if score >= threshold {
                    Sentiment::Positive
                } else {
                    Sentiment::Negative
                },
                model: model_ref.clone(),
                latency_ms,
            })
            .collect())
    }

    /// Runs the model on a blocking thread, holding one inference slot.
    async fn score(
        &self,
        model: Arc<LoadedModel>,
        texts: Vec<String>,
    ) -> Result<(Vec<f32>, f64), ServiceError> {
        let _slot = self
            .inference_slots
            .clone()
            .acquire_owned()
            .await
            .expect("the inference semaphore is never closed");
        let (scores, elapsed) = tokio::task::spawn_blocking(move || {
            let started = Instant::now();
            let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
            let scores = model.scorer.score(&refs);
            (scores, started.elapsed())
        })
        .await
        .map_err(|e| ModelError::Inference(format!("scoring task failed: {e}")))?;
        Ok((scores?, elapsed.as_secs_f64() * 1e3))
    }

    pub fn health(&self) -> Health {
        let champion = self.registry.get(Role::Champion);
        Health {
            status: if champion.is_some() { "ok" } else { "no_model" },
            model: champion.as_deref().map(status_of),
            challenger: self
                .registry
                .get(Role::Challenger)
                .as_deref()
                .map(status_of),
            last_model_error: self.registry.last_error(Role::Champion),
            uptime_seconds: self.started.elapsed().as_secs(),
            store: self.store_description.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn validation_follows_the_contract() {
        assert!(validate(&texts(&["fine"]), None).is_ok());
        assert!(validate(&texts(&["fine"]), Some(1)).is_ok());
        assert!(validate(&texts(&[]), None).is_err());
        assert!(validate(&texts(&["  \n\t"]), None).is_err());
        assert!(validate(&texts(&["ok", ""]), None).is_err());
        assert!(validate(&texts(&["fine"]), Some(2)).is_err());
        let at_limit = "é".repeat(MAX_TEXT_CHARS);
        assert!(
            validate(std::slice::from_ref(&at_limit), None).is_ok(),
            "the limit counts characters, not bytes"
        );
        assert!(validate(&[format!("{at_limit}x")], None).is_err());
        assert!(validate(&vec!["a".to_string(); MAX_BATCH], None).is_ok());
        assert!(validate(&vec!["a".to_string(); MAX_BATCH + 1], None).is_err());
    }
}
