//! One run of the metrics report: read the log tails since the checkpoint, update the state,
//! write the report files, then commit the checkpoint.

use std::collections::BTreeMap;

use bytes::Bytes;
use time::OffsetDateTime;

use super::aggregate::{CountedPrediction, State, OVERALL};
use super::report::{build_report, Pointers, Report, ReportConfig, RunSummary};
use crate::log::{FeedbackRecord, FEEDBACK_PREFIX, PREDICTIONS_PREFIX};
use crate::model::manifest::{Manifest, MANIFEST_FILE};
use crate::model::{ModelRef, Role};
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

/// Blob reads in flight at once. Each read is one round trip plus the transfer: with a few in
/// flight the round trips overlap, and more than this gained nothing on Azurite (docs/scale.md).
pub const READ_CONCURRENCY: usize = 8;

/// Reads every log blob (every segment) under `prefix` past its checkpointed offset: several
/// blobs downloading at once, each parsed on a blocking thread as it arrives, and the records
/// kept in listing order.
async fn read_new<T: serde::de::DeserializeOwned + Send + 'static>(
    store: &dyn BlobStore,
    container: &str,
    prefix: &str,
    state: &mut State,
    run: &mut RunSummary,
) -> Result<Vec<T>, AggregationError> {
    use futures::StreamExt;

    let fresh: Vec<(String, u64)> = store
        .list(container, prefix)
        .await?
        .into_iter()
        .filter_map(|blob| {
            let offset = state.offsets.get(&blob.name).copied().unwrap_or(0);
            (blob.size > offset).then_some((blob.name, offset))
        })
        .collect();
    let mut reads = futures::stream::iter(fresh)
        .map(|(name, offset)| async move {
            let bytes = store.get_from(container, &name, offset).await?;
            let parsed = tokio::task::spawn_blocking(move || {
                let (lines, consumed) = complete_lines(&bytes);
                let mut records = Vec::new();
                let mut invalid = 0;
                parse_lines(lines, &mut records, &mut invalid);
                (records, invalid, consumed)
            })
            .await
            .map_err(|e| StoreError::Unavailable(format!("parsing task failed: {e}")))?;
            Ok::<_, StoreError>((name, offset, parsed))
        })
        .buffered(READ_CONCURRENCY);
    let mut records = Vec::new();
    while let Some(read) = reads.next().await {
        let (name, offset, (parsed, invalid, consumed)) = read?;
        records.extend(parsed);
        state.invalid_lines += invalid;
        if consumed > 0 {
            state.offsets.insert(name, offset + consumed);
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
            let mut state: State = serde_json::from_slice(&blob.bytes)
                .map_err(|e| AggregationError::CorruptCheckpoint(e.to_string()))?;
            state.upgrade();
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

/// The champion and challenger the store's pointers name now. An unreadable pointer counts as
/// none (logged): the report still runs, only without a verdict.
async fn pointers(store: &dyn BlobStore, container: &str) -> Pointers {
    let read = |role: Role| async move {
        match store.get(container, role.pointer()).await {
            Ok(blob) => ModelRef::parse(&blob.bytes)
                .map_err(|e| tracing::warn!(pointer = role.pointer(), error = %e, "unreadable model pointer"))
                .ok(),
            Err(StoreError::NotFound { .. }) => None,
            Err(e) => {
                tracing::warn!(pointer = role.pointer(), error = %e, "model pointer not read");
                None
            }
        }
    };
    Pointers {
        champion: read(Role::Champion).await,
        challenger: read(Role::Challenger).await,
    }
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
    let predictions: Vec<CountedPrediction> = read_new(
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
    let pointers = pointers(store, &config.models_container).await;
    let report = build_report(&mut state, now, run, &references, &pointers, config);
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
        challenger_verdict = report.challenger.as_ref().map(|c| c.verdict.as_str()),
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
}
