//! The product's core: validates what callers send, scores it with the registry's champion off the
//! async runtime, and reports health. The HTTP layer above only parses and maps errors; the
//! model and store layers below know nothing of requests.

pub mod batcher;

use std::sync::Arc;
use std::time::Instant;

use serde::Serialize;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::log::{FeedbackRecord, LogStatus, PredictionLog, PredictionRecord, TextMode};
use crate::metrics::{AggregationError, LatestReport, LatestReportError, Report, ReportConfig};
use crate::model::{LoadedModel, ModelError, ModelRef, Registry, Role, Sentiment};
use crate::store::{BlobStore, StoreError};

/// Longest text accepted, in characters (Unicode scalar values).
pub const MAX_TEXT_CHARS: usize = 5_000;
/// Most texts in one batch request.
pub use crate::model::MAX_BATCH;

#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error("{0}")]
    InvalidInput(String),
    #[error("no model is loaded yet")]
    NoModel,
    #[error("scoring failed: {0}")]
    Scoring(#[from] ModelError),
    #[error("storage unavailable, nothing was stored: {0}")]
    Storage(#[from] StoreError),
    #[error("metrics report failed: {0}")]
    Report(#[from] AggregationError),
    #[error(transparent)]
    LatestReport(#[from] LatestReportError),
    #[error(transparent)]
    Overloaded(#[from] batcher::Overloaded),
}

/// What went wrong, flat: the HTTP layer maps each kind to a status without looking into the
/// layers below.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The caller's input breaks the API contract.
    InvalidInput,
    /// No model version is loaded.
    NoModel,
    /// The model failed on this input.
    ScoringFailed,
    /// Storage could not be reached or refused the operation: nothing was changed.
    StorageUnavailable,
    /// Storage did not answer: the write may or may not have taken effect.
    StorageUncertain,
    /// Another report run committed first.
    ReportInProgress,
    /// The report's checkpoint cannot be read.
    CorruptCheckpoint,
    /// No report has been written yet.
    NoReport,
    /// The latest report is not valid JSON.
    ReportUnreadable,
    /// Too many texts are waiting to be scored: try again shortly.
    Overloaded,
}

impl ServiceError {
    pub fn kind(&self) -> ErrorKind {
        match self {
            ServiceError::InvalidInput(_) => ErrorKind::InvalidInput,
            ServiceError::NoModel => ErrorKind::NoModel,
            ServiceError::Scoring(_) => ErrorKind::ScoringFailed,
            ServiceError::Storage(StoreError::Uncertain(_)) => ErrorKind::StorageUncertain,
            ServiceError::Storage(_) => ErrorKind::StorageUnavailable,
            ServiceError::Report(AggregationError::Store(_)) => ErrorKind::StorageUnavailable,
            ServiceError::Report(AggregationError::ConcurrentRun) => ErrorKind::ReportInProgress,
            ServiceError::Report(AggregationError::CorruptCheckpoint(_)) => {
                ErrorKind::CorruptCheckpoint
            }
            ServiceError::LatestReport(LatestReportError::NoReport) => ErrorKind::NoReport,
            ServiceError::LatestReport(LatestReportError::Unreadable(_)) => {
                ErrorKind::ReportUnreadable
            }
            ServiceError::LatestReport(LatestReportError::Store(_)) => {
                ErrorKind::StorageUnavailable
            }
            ServiceError::Overloaded(_) => ErrorKind::Overloaded,
        }
    }
}

#[derive(Debug, Clone)]
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
    /// The prediction log: records waiting to be appended, and the last append error.
    pub log: LogStatus,
    /// Texts waiting to be scored, and the batches made so far.
    pub queue: batcher::QueueStatus,
}

impl Health {
    pub fn is_ready(&self) -> bool {
        self.model.is_some()
    }
}

/// What the service is built from, besides its collaborators.
#[derive(Debug, Clone)]
pub struct ServiceConfig {
    /// How concurrent requests are batched for the model.
    pub batching: batcher::BatcherConfig,
    pub text_mode: TextMode,
    pub report: ReportConfig,
}

#[derive(Debug)]
pub struct Service {
    registry: Arc<Registry>,
    store: Arc<dyn BlobStore>,
    log: Arc<PredictionLog>,
    latest_report: LatestReport,
    config: ServiceConfig,
    /// Gathers concurrent requests' texts into model batches, on threads of its own.
    batcher: Arc<batcher::Batcher>,
    /// One report run at a time in this process (runs elsewhere are fenced by the checkpoint).
    report_running: tokio::sync::Mutex<()>,
    started: Instant,
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

fn predictions_from(
    model: &LoadedModel,
    ids: &[Uuid],
    scores: Vec<f32>,
    latency_ms: f64,
) -> Vec<Prediction> {
    let manifest = model.scorer.manifest();
    let model_ref = manifest.model_ref();
    ids.iter()
        .zip(scores)
        .map(|(id, score)| Prediction {
            id: *id,
            score,
            sentiment: manifest.sentiment(score),
            model: model_ref.clone(),
            latency_ms,
        })
        .collect()
}

fn records_from(
    predictions: &[Prediction],
    texts: &[String],
    role: Role,
    text_mode: TextMode,
    true_label: Option<u8>,
) -> Vec<PredictionRecord> {
    let ts = OffsetDateTime::now_utc();
    predictions
        .iter()
        .zip(texts)
        .map(|(p, text)| PredictionRecord {
            v: 1,
            id: p.id,
            ts,
            model: p.model.clone(),
            role,
            score: p.score,
            sentiment: p.sentiment,
            latency_ms: p.latency_ms,
            text: text_mode.apply(text),
            true_label,
        })
        .collect()
}

impl Service {
    pub fn new(
        registry: Arc<Registry>,
        store: Arc<dyn BlobStore>,
        log: Arc<PredictionLog>,
        config: ServiceConfig,
    ) -> Self {
        Self {
            latest_report: LatestReport::new(
                store.clone(),
                config.report.reports_container.clone(),
            ),
            registry,
            store,
            log,
            batcher: Arc::new(batcher::Batcher::new(config.batching.clone())),
            config,
            report_running: tokio::sync::Mutex::new(()),
            started: Instant::now(),
        }
    }

    pub fn registry(&self) -> &Arc<Registry> {
        &self.registry
    }

    /// Scores texts with the champion and logs them; a challenger, when there is one, scores
    /// the same texts in shadow, off the request path. `true_label` (single texts only) is
    /// stored on the prediction record.
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
        let (scores, latency_ms) = self.batcher.score(model.clone(), texts.clone()).await??;
        let ids: Vec<Uuid> = texts.iter().map(|_| Uuid::now_v7()).collect();
        let predictions = predictions_from(&model, &ids, scores, latency_ms);
        let label = if texts.len() == 1 { true_label } else { None };
        self.log.record(records_from(
            &predictions,
            &texts,
            Role::Champion,
            self.config.text_mode,
            label,
        ));
        if let Some(challenger) = self.registry.get(Role::Challenger) {
            self.shadow(challenger, ids, texts, label);
        }
        Ok(predictions)
    }

    /// Scores with the challenger in the background and logs its records under the same ids,
    /// so that feedback on a prediction labels both.
    fn shadow(
        &self,
        challenger: Arc<LoadedModel>,
        ids: Vec<Uuid>,
        texts: Vec<String>,
        label: Option<u8>,
    ) {
        let batcher = self.batcher.clone();
        let log = self.log.clone();
        let text_mode = self.config.text_mode;
        tokio::spawn(async move {
            match batcher.score(challenger.clone(), texts.clone()).await {
                Ok(Ok((scores, latency_ms))) => {
                    let predictions = predictions_from(&challenger, &ids, scores, latency_ms);
                    log.record(records_from(
                        &predictions,
                        &texts,
                        Role::Challenger,
                        text_mode,
                        label,
                    ));
                }
                Ok(Err(error)) => tracing::warn!(%error, "challenger failed to score in shadow"),
                // Shadow scoring is the first thing to give way under load.
                Err(overloaded) => tracing::debug!(%overloaded, "challenger skipped a request"),
            }
        });
    }

    /// Stores the true label of an earlier prediction. Returns only once it is durably stored.
    /// `idempotency_key`, when the caller sends one, names the request: the same key is stored
    /// once however often it is retried. Without it, the prediction id and label name it.
    pub async fn feedback(
        &self,
        prediction_id: Uuid,
        true_label: u8,
        idempotency_key: Option<&str>,
    ) -> Result<FeedbackRecord, ServiceError> {
        if true_label > 1 {
            return Err(ServiceError::InvalidInput(format!(
                "true_label must be 0 (negative) or 1 (positive), got {true_label}"
            )));
        }
        if let Some(key) = idempotency_key {
            if key.is_empty() || key.len() > 255 || !key.bytes().all(|b| b.is_ascii_graphic()) {
                return Err(ServiceError::InvalidInput(
                    "Idempotency-Key must be 1 to 255 visible ASCII characters".into(),
                ));
            }
        }
        let record = FeedbackRecord {
            v: 1,
            id: Some(crate::log::record::feedback_id(
                prediction_id,
                true_label,
                idempotency_key,
            )),
            prediction_id,
            ts: OffsetDateTime::now_utc(),
            true_label,
        };
        self.log.append_feedback(&record).await?;
        Ok(record)
    }

    /// Aggregates the log into a report (reading only what is new since the last run), writes it,
    /// and logs the structured summary line.
    pub async fn run_report(&self) -> Result<Report, ServiceError> {
        let _one_run = self.report_running.lock().await;
        // What this instance buffered belongs in this report.
        if let Err(error) = self.log.flush().await {
            tracing::warn!(%error, "prediction log flush before the report failed; those records wait for the next run");
        }
        let report = crate::metrics::run_report(
            self.store.as_ref(),
            &self.config.report,
            OffsetDateTime::now_utc(),
        )
        .await?;
        crate::metrics::log_summary(&report);
        Ok(report)
    }

    /// The latest report as written, for `GET /api/report`.
    pub async fn latest_report(&self) -> Result<serde_json::Value, ServiceError> {
        Ok(self.latest_report.latest().await?)
    }

    /// The latest report's page, for `GET /api/report.html`.
    pub async fn latest_report_html(&self) -> Result<bytes::Bytes, ServiceError> {
        Ok(self.latest_report.latest_html().await?)
    }

    pub fn log(&self) -> &Arc<PredictionLog> {
        &self.log
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
            store: self.store.kind().to_owned(),
            log: self.log.status(),
            queue: self.batcher.status(),
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
