//! One run of the metrics report: read the log since the checkpoint, update the state, write the
//! report files, then commit the checkpoint.

use std::collections::BTreeMap;

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::aggregate::{FeedbackCounts, HistoryPoint, State, Tally, HISTORY_POINTS, OVERALL};
use super::confusion::{ClassMetrics, Confusion};
use super::histogram::{psi, SCORE_BINS};
use crate::log::{FeedbackRecord, PredictionRecord, FEEDBACK_PREFIX, PREDICTIONS_PREFIX};
use crate::model::manifest::{Manifest, MANIFEST_FILE};
use crate::store::{BlobStore, ETag, StoreError, WriteCondition};

pub const CHECKPOINT_BLOB: &str = "state/checkpoint.json";
pub const LATEST_JSON: &str = "latest.json";
pub const LATEST_HTML: &str = "latest.html";

#[derive(Debug, thiserror::Error)]
pub enum AggregationError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("another report run committed first; this run wrote no checkpoint")]
    ConcurrentRun,
    #[error("the checkpoint is unreadable: {0}")]
    CorruptCheckpoint(String),
}

/// Where the report reads and writes, and its bad-buzz rule.
#[derive(Debug, Clone)]
pub struct ReportConfig {
    pub logs_container: String,
    pub reports_container: String,
    pub models_container: String,
    /// A window needs at least this many predictions before it can raise `bad_buzz`.
    pub bad_buzz_min_predictions: u64,
    /// `bad_buzz` when the negative share exceeds its baseline by this much…
    pub bad_buzz_delta: f64,
    /// …or reaches this share whatever the baseline.
    pub bad_buzz_share: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LatencySummary {
    pub p50: Option<f64>,
    pub p95: Option<f64>,
    pub p99: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WindowReport {
    pub predictions: u64,
    pub labelled: u64,
    pub confusion: Confusion,
    pub accuracy: Option<f64>,
    pub positive: ClassMetrics,
    pub negative: ClassMetrics,
    pub macro_f1: Option<f64>,
    pub latency_ms: LatencySummary,
    /// Share of predictions that were negative.
    pub negative_share: Option<f64>,
    /// The same share over the 24 h before the window (`None` for `since_start`).
    pub baseline_negative_share: Option<f64>,
    pub bad_buzz: bool,
    pub score_histogram: [u64; SCORE_BINS],
    /// Drift of the score histogram against the model's reference (model series only).
    pub psi: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Windows {
    pub last_hour: WindowReport,
    pub last_24h: WindowReport,
    pub since_start: WindowReport,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelReport {
    pub name: String,
    pub version: String,
    pub role: String,
    pub windows: Windows,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunSummary {
    pub prediction_records: u64,
    pub feedback_records: u64,
    pub blobs_read: u64,
    pub bytes_read: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    #[serde(with = "time::serde::rfc3339")]
    pub generated_at: OffsetDateTime,
    pub run: RunSummary,
    /// Every champion prediction, whatever the version.
    pub overall: Windows,
    pub models: Vec<ModelReport>,
    pub feedback: FeedbackCounts,
    /// Feedback read but whose prediction has not been read yet.
    pub feedback_waiting: u64,
    pub invalid_lines: u64,
    pub duplicate_predictions: u64,
    pub history: Vec<HistoryPoint>,
}

const HOUR: i64 = 3600;
const DAY: i64 = 24 * HOUR;

fn window_report(
    tally: &Tally,
    baseline: Option<&Tally>,
    reference: Option<&[f64]>,
    config: &ReportConfig,
) -> WindowReport {
    let share =
        |t: &Tally| (t.predictions > 0).then(|| t.predicted_negative as f64 / t.predictions as f64);
    let negative_share = share(tally);
    let baseline_negative_share = baseline.and_then(share);
    let enough = tally.predictions >= config.bad_buzz_min_predictions;
    let bad_buzz = enough
        && match (negative_share, baseline_negative_share) {
            (Some(now), Some(base)) if now - base >= config.bad_buzz_delta => true,
            (Some(now), _) => now >= config.bad_buzz_share,
            _ => false,
        };
    WindowReport {
        predictions: tally.predictions,
        labelled: tally.confusion.total(),
        confusion: tally.confusion,
        accuracy: tally.confusion.accuracy(),
        positive: tally.confusion.positive(),
        negative: tally.confusion.negative(),
        macro_f1: tally.confusion.macro_f1(),
        latency_ms: LatencySummary {
            p50: tally.latency.quantile(0.50),
            p95: tally.latency.quantile(0.95),
            p99: tally.latency.quantile(0.99),
        },
        negative_share,
        baseline_negative_share,
        bad_buzz,
        score_histogram: tally.scores,
        psi: reference.and_then(|r| psi(&tally.scores, r)),
    }
}

fn windows(
    state: &State,
    series: &str,
    now: i64,
    reference: Option<&[f64]>,
    config: &ReportConfig,
) -> Windows {
    let hour = state.window(series, now, HOUR, 0);
    let hour_base = state.window(series, now, DAY, HOUR);
    let day = state.window(series, now, DAY, 0);
    let day_base = state.window(series, now, DAY, DAY);
    let all = state
        .series
        .get(series)
        .map(|s| s.since_start.clone())
        .unwrap_or_default();
    Windows {
        last_hour: window_report(&hour, Some(&hour_base), reference, config),
        last_24h: window_report(&day, Some(&day_base), reference, config),
        since_start: window_report(&all, None, reference, config),
    }
}

/// Builds the report from the state, appending a history point.
pub fn build_report(
    state: &mut State,
    now: OffsetDateTime,
    run: RunSummary,
    references: &BTreeMap<String, Vec<f64>>,
    config: &ReportConfig,
) -> Report {
    let ts = now.unix_timestamp();
    let overall = windows(state, OVERALL, ts, None, config);
    let models = state
        .series
        .keys()
        .filter(|k| k.as_str() != OVERALL)
        .filter_map(|key| {
            let mut parts = key.rsplitn(3, '/');
            let role = parts.next()?.to_owned();
            let version = parts.next()?.to_owned();
            let name = parts.next()?.to_owned();
            let reference = references
                .get(&format!("{name}/{version}"))
                .map(Vec::as_slice);
            Some(ModelReport {
                windows: windows(state, key, ts, reference, config),
                name,
                version,
                role,
            })
        })
        .collect();
    state.history.push(HistoryPoint {
        ts,
        macro_f1: overall.last_24h.macro_f1,
        negative_share: overall.last_hour.negative_share,
        predictions: overall.last_hour.predictions,
    });
    if state.history.len() > HISTORY_POINTS {
        let excess = state.history.len() - HISTORY_POINTS;
        state.history.drain(..excess);
    }
    Report {
        generated_at: now,
        run,
        overall,
        models,
        feedback: state.feedback,
        feedback_waiting: state.orphans.len() as u64,
        invalid_lines: state.invalid_lines,
        duplicate_predictions: state.duplicate_predictions,
        history: state.history.clone(),
    }
}

/// Complete lines of `bytes` and how many bytes they span; a trailing partial line is left for
/// the next run.
fn complete_lines(bytes: &[u8]) -> (&[u8], u64) {
    match bytes.iter().rposition(|b| *b == b'\n') {
        Some(end) => (&bytes[..=end], end as u64 + 1),
        None => (&[], 0),
    }
}

fn parse_lines<T: serde::de::DeserializeOwned>(bytes: &[u8], out: &mut Vec<T>, invalid: &mut u64) {
    for line in bytes.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
        match serde_json::from_slice::<T>(line) {
            Ok(record) => out.push(record),
            Err(_) => *invalid += 1,
        }
    }
}

/// Reads every log blob under `prefix` past its checkpointed offset.
async fn read_new<T: serde::de::DeserializeOwned>(
    store: &dyn BlobStore,
    container: &str,
    prefix: &str,
    state: &mut State,
    run: &mut RunSummary,
) -> Result<Vec<T>, AggregationError> {
    let mut records = Vec::new();
    for blob in store.list(container, prefix).await? {
        let offset = state.offsets.get(&blob.name).copied().unwrap_or(0);
        if blob.size <= offset {
            continue;
        }
        let bytes = store.get_from(container, &blob.name, offset).await?;
        let (lines, consumed) = complete_lines(&bytes);
        parse_lines(lines, &mut records, &mut state.invalid_lines);
        if consumed > 0 {
            state.offsets.insert(blob.name.clone(), offset + consumed);
            run.blobs_read += 1;
            run.bytes_read += consumed;
        }
    }
    Ok(records)
}

async fn load_checkpoint(
    store: &dyn BlobStore,
    container: &str,
) -> Result<(State, Option<ETag>), AggregationError> {
    match store.get(container, CHECKPOINT_BLOB).await {
        Ok(blob) => {
            let state = serde_json::from_slice(&blob.bytes)
                .map_err(|e| AggregationError::CorruptCheckpoint(e.to_string()))?;
            Ok((state, Some(blob.etag)))
        }
        Err(StoreError::NotFound { .. }) => Ok((State::default(), None)),
        Err(e) => Err(e.into()),
    }
}

/// The reference score histograms of the versions seen, from their manifests. A version whose
/// manifest cannot be read simply gets no PSI.
async fn references(
    store: &dyn BlobStore,
    container: &str,
    state: &State,
) -> BTreeMap<String, Vec<f64>> {
    let mut out = BTreeMap::new();
    for key in state.series.keys().filter(|k| k.as_str() != OVERALL) {
        let mut parts = key.rsplitn(3, '/').skip(1);
        let (Some(version), Some(name)) = (parts.next(), parts.next()) else {
            continue;
        };
        let id = format!("{name}/{version}");
        if out.contains_key(&id) {
            continue;
        }
        if let Ok(blob) = store.get(container, &format!("{id}/{MANIFEST_FILE}")).await {
            if let Ok(manifest) = Manifest::parse(&blob.bytes) {
                out.insert(id, manifest.reference_scores);
            }
        }
    }
    out
}

fn report_blob_name(now: OffsetDateTime) -> String {
    format!(
        "metrics/{:04}/{:02}/{:02}/{:02}{:02}.json",
        now.year(),
        u8::from(now.month()),
        now.day(),
        now.hour(),
        now.minute()
    )
}

/// Runs the aggregation once and returns the report it wrote.
pub async fn run_report(
    store: &dyn BlobStore,
    config: &ReportConfig,
    now: OffsetDateTime,
) -> Result<Report, AggregationError> {
    let now = now.to_offset(time::UtcOffset::UTC);
    let ts = now.unix_timestamp();
    let (mut state, etag) = load_checkpoint(store, &config.reports_container).await?;
    let mut run = RunSummary {
        prediction_records: 0,
        feedback_records: 0,
        blobs_read: 0,
        bytes_read: 0,
    };
    let predictions: Vec<PredictionRecord> = read_new(
        store,
        &config.logs_container,
        PREDICTIONS_PREFIX,
        &mut state,
        &mut run,
    )
    .await?;
    let feedback: Vec<FeedbackRecord> = read_new(
        store,
        &config.logs_container,
        FEEDBACK_PREFIX,
        &mut state,
        &mut run,
    )
    .await?;
    run.prediction_records = predictions.len() as u64;
    run.feedback_records = feedback.len() as u64;

    state.add_predictions(&predictions, ts);
    state.add_feedback(&feedback, ts);
    state.expire(ts);
    let references = references(store, &config.models_container, &state).await;
    let report = build_report(&mut state, now, run, &references, config);
    state.runs += 1;

    // Report files first, checkpoint last: a run that dies in between is simply redone.
    let report_json = Bytes::from(serde_json::to_vec_pretty(&report).expect("reports serialise"));
    let reports = &config.reports_container;
    store
        .put(
            reports,
            &report_blob_name(now),
            report_json.clone(),
            WriteCondition::Always,
        )
        .await?;
    store
        .put(reports, LATEST_JSON, report_json, WriteCondition::Always)
        .await?;
    store
        .put(
            reports,
            LATEST_HTML,
            Bytes::from(super::html::render(&report)),
            WriteCondition::Always,
        )
        .await?;
    let checkpoint = Bytes::from(serde_json::to_vec(&state).expect("state serialises"));
    let condition = match etag {
        Some(etag) => WriteCondition::IfMatch(etag),
        None => WriteCondition::IfAbsent,
    };
    match store
        .put(reports, CHECKPOINT_BLOB, checkpoint, condition)
        .await
    {
        Ok(_) => Ok(report),
        Err(StoreError::ConditionFailed { .. }) => Err(AggregationError::ConcurrentRun),
        Err(e) => Err(e.into()),
    }
}

/// The one structured line per run that alert rules query.
pub fn log_summary(report: &Report) {
    let hour = &report.overall.last_hour;
    let day = &report.overall.last_24h;
    tracing::info!(
        event = "metrics_report",
        macro_f1 = day.macro_f1,
        macro_f1_last_hour = hour.macro_f1,
        accuracy = day.accuracy,
        labelled = day.labelled,
        predictions = day.predictions,
        predictions_last_hour = hour.predictions,
        negative_share = hour.negative_share,
        baseline_negative_share = hour.baseline_negative_share,
        bad_buzz = hour.bad_buzz || day.bad_buzz,
        latency_p95_ms = day.latency_ms.p95,
        new_predictions = report.run.prediction_records,
        new_feedback = report.run.feedback_records,
        feedback_unknown = report.feedback.unknown,
        "metrics report"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_complete_lines_are_consumed() {
        assert_eq!(complete_lines(b"a\nb\nc"), (&b"a\nb\n"[..], 4));
        assert_eq!(complete_lines(b"partial"), (&b""[..], 0));
        let mut out: Vec<serde_json::Value> = Vec::new();
        let mut invalid = 0;
        parse_lines(
            b"{\"a\":1}\nnot json\n\n{\"b\":2}\n",
            &mut out,
            &mut invalid,
        );
        assert_eq!((out.len(), invalid), (2, 1));
    }

    fn config() -> ReportConfig {
        ReportConfig {
            logs_container: "logs".into(),
            reports_container: "reports".into(),
            models_container: "models".into(),
            bad_buzz_min_predictions: 10,
            bad_buzz_delta: 0.15,
            bad_buzz_share: 0.75,
        }
    }

    #[test]
    fn bad_buzz_needs_volume_and_a_jump_over_the_baseline() {
        let tally = |n: u64, neg: u64| Tally {
            predictions: n,
            predicted_negative: neg,
            ..Default::default()
        };
        let c = config();
        assert!(window_report(&tally(20, 12), Some(&tally(100, 30)), None, &c).bad_buzz);
        assert!(!window_report(&tally(20, 8), Some(&tally(100, 30)), None, &c).bad_buzz);
        assert!(
            !window_report(&tally(5, 5), Some(&tally(100, 30)), None, &c).bad_buzz,
            "too few"
        );
        assert!(
            window_report(&tally(20, 16), None, None, &c).bad_buzz,
            "absolute share"
        );
        assert!(!window_report(&tally(20, 10), None, None, &c).bad_buzz);
    }
}
