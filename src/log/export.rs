//! Labelled predictions exported from the log as a training dataset: the first step of the
//! learning loop.
//!
//! A dataset covers the predictions made in `[from, to)`:
//! - each prediction id once, with the champion's record (text, model, score);
//! - its latest label: the one sent inline with the prediction, or a later feedback record (read
//!   from the same range), the latest by time winning;
//! - sorted by time then id, one JSON object per line.
//!
//! The bytes depend only on the log's records in the range, never on when or where the export
//! runs, so rerunning over the same range gives the same file and the same sha256. Predictions
//! logged without their text (`LOG_TEXT` `sha256` or `none`) cannot teach a model; they are
//! counted in the manifest as skipped, by reason.
//!
//! Blobs, in the datasets container: `feedback/<from>_<to>.jsonl`, then
//! `feedback/<from>_<to>.manifest.json` (written last: a manifest means a complete dataset).

use std::collections::{BTreeMap, HashMap};

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

use super::{FeedbackRecord, PredictionRecord, FEEDBACK_PREFIX, PREDICTIONS_PREFIX};
use crate::model::{ModelRef, Role};
use crate::store::{BlobStore, StoreError, WriteCondition};

pub const DATASET_PREFIX: &str = "feedback/";

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the range is empty: --from {from} is not before --to {to}")]
    EmptyRange { from: String, to: String },
    /// Nothing to train on: no prediction in the range has both a label and its text.
    #[error("no labelled prediction with its text between {from} and {to} ({unlabelled} unlabelled, {without_text} labelled but logged without text); nothing was written")]
    NoLabels {
        from: String,
        to: String,
        unlabelled: u64,
        without_text: u64,
    },
    #[error("{0} already exists with other content: the log of that range changed since it was exported (a late writer); export another range or delete the old dataset")]
    Changed(String),
}

/// Where a row's label came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LabelSource {
    Inline,
    Feedback,
}

/// One line of the dataset.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DatasetRow {
    pub id: Uuid,
    #[serde(with = "time::serde::rfc3339")]
    pub ts: OffsetDateTime,
    pub text: String,
    /// 1 positive, 0 negative.
    pub label: u8,
    pub label_source: LabelSource,
    /// The champion that answered, and its score.
    pub model: ModelRef,
    pub score: f32,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ClassCounts {
    pub negative: u64,
    pub positive: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelCount {
    pub name: String,
    pub version: String,
    pub role: Role,
    /// Labelled predictions this model made in the range (text or not).
    pub labelled: u64,
}

/// Labelled predictions that are not in the dataset, by reason.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Skipped {
    /// Logged with `LOG_TEXT=sha256`: only a hash of the text was kept.
    pub text_sha256: u64,
    /// Logged with `LOG_TEXT=none`: no text was kept.
    pub text_none: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DatasetManifest {
    /// Blob name of the rows in the datasets container.
    pub dataset: String,
    #[serde(with = "time::serde::rfc3339")]
    pub from: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub to: OffsetDateTime,
    pub rows: u64,
    /// `sha256:<hex>` of the rows file.
    pub sha256: String,
    pub per_class: ClassCounts,
    pub label_sources: BTreeMap<String, u64>,
    pub per_model: Vec<ModelCount>,
    /// How the exported texts were logged: always `full` (other modes are skipped).
    pub text_mode: String,
    pub skipped: Skipped,
    /// Champion predictions in the range that never got a label.
    pub unlabelled: u64,
    /// Feedback in the range whose prediction is not in it.
    pub feedback_without_prediction: u64,
}

/// What an export did.
#[derive(Debug, Clone, PartialEq)]
pub struct Export {
    pub manifest: DatasetManifest,
    pub rows: Bytes,
    pub manifest_bytes: Bytes,
    /// False when an identical dataset was already stored.
    pub written: bool,
}

/// `20261129T190000Z`: sortable, and safe in blob names and file names.
pub fn compact_time(ts: OffsetDateTime) -> String {
    let ts = ts.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}{:02}{:02}T{:02}{:02}{:02}Z",
        ts.year(),
        u8::from(ts.month()),
        ts.day(),
        ts.hour(),
        ts.minute(),
        ts.second()
    )
}

/// The dataset's blob names: rows, then manifest.
pub fn dataset_blobs(from: OffsetDateTime, to: OffsetDateTime) -> (String, String) {
    let stem = format!(
        "{DATASET_PREFIX}{}_{}",
        compact_time(from),
        compact_time(to)
    );
    (format!("{stem}.jsonl"), format!("{stem}.manifest.json"))
}

/// The day folders (`predictions/YYYY/MM/DD/`) that can hold records of `[from, to)`.
fn day_prefixes(prefix: &str, from: OffsetDateTime, to: OffsetDateTime) -> Vec<String> {
    let mut out = Vec::new();
    let mut day = from.to_offset(time::UtcOffset::UTC).date();
    let last = (to - Duration::nanoseconds(1))
        .to_offset(time::UtcOffset::UTC)
        .date();
    while day <= last {
        out.push(format!(
            "{prefix}{:04}/{:02}/{:02}/",
            day.year(),
            u8::from(day.month()),
            day.day()
        ));
        match day.next_day() {
            Some(next) => day = next,
            None => break,
        }
    }
    out
}

/// Every record of type `T` under the day folders of the range, with time in `[from, to)`.
/// Lines that are not valid records, and a trailing partial line, are left out.
async fn read_range<T: serde::de::DeserializeOwned>(
    store: &dyn BlobStore,
    container: &str,
    prefix: &str,
    from: OffsetDateTime,
    to: OffsetDateTime,
    ts_of: impl Fn(&T) -> OffsetDateTime,
) -> Result<Vec<T>, StoreError> {
    let mut out = Vec::new();
    for day in day_prefixes(prefix, from, to) {
        for blob in store.list(container, &day).await? {
            let bytes = store.get_from(container, &blob.name, 0).await?;
            let end = bytes.iter().rposition(|b| *b == b'\n').map_or(0, |e| e + 1);
            for line in bytes[..end].split(|b| *b == b'\n') {
                if let Ok(record) = serde_json::from_slice::<T>(line) {
                    let ts = ts_of(&record);
                    if ts >= from && ts < to {
                        out.push(record);
                    }
                }
            }
        }
    }
    Ok(out)
}

/// Joins the range's predictions with their labels: pure, so that the same records always give
/// the same rows and manifest.
pub fn join(
    predictions: &[PredictionRecord],
    feedback: &[FeedbackRecord],
    from: OffsetDateTime,
    to: OffsetDateTime,
) -> (Vec<DatasetRow>, DatasetManifest) {
    // The latest label per prediction id, ties broken by the feedback record's id.
    let mut latest: HashMap<Uuid, (OffsetDateTime, Uuid, u8)> = HashMap::new();
    for record in feedback.iter().filter(|r| r.true_label <= 1) {
        let candidate = (record.ts, record.id(), record.true_label);
        latest
            .entry(record.prediction_id)
            .and_modify(|current| {
                if (candidate.0, candidate.1) > (current.0, current.1) {
                    *current = candidate;
                }
            })
            .or_insert(candidate);
    }

    let mut champion: BTreeMap<Uuid, &PredictionRecord> = BTreeMap::new();
    let mut labelled_by_model: BTreeMap<(String, String, Role), u64> = BTreeMap::new();
    let mut counted: std::collections::HashSet<(Uuid, Role)> = Default::default();
    for record in predictions {
        if !counted.insert((record.id, record.role)) {
            continue; // the same record appended twice
        }
        let labelled = record.true_label.is_some_and(|l| l <= 1) || latest.contains_key(&record.id);
        if labelled {
            *labelled_by_model
                .entry((
                    record.model.name.clone(),
                    record.model.version.clone(),
                    record.role,
                ))
                .or_default() += 1;
        }
        if record.role == Role::Champion {
            champion.insert(record.id, record);
        }
    }

    let mut rows = Vec::new();
    let mut skipped = Skipped::default();
    let mut unlabelled = 0;
    for record in champion.values() {
        let inline = record.true_label.filter(|l| *l <= 1);
        let label = match latest.get(&record.id) {
            // Feedback at or after the prediction supersedes the label sent with it.
            Some((ts, _, label)) if inline.is_none() || *ts >= record.ts => {
                Some((*label, LabelSource::Feedback))
            }
            _ => inline.map(|label| (label, LabelSource::Inline)),
        };
        let Some((label, label_source)) = label else {
            unlabelled += 1;
            continue;
        };
        let text = match &record.text {
            Some(text) if text.starts_with("sha256:") => {
                skipped.text_sha256 += 1;
                continue;
            }
            Some(text) => text.clone(),
            None => {
                skipped.text_none += 1;
                continue;
            }
        };
        rows.push(DatasetRow {
            id: record.id,
            ts: record.ts,
            text,
            label,
            label_source,
            model: record.model.clone(),
            score: record.score,
        });
    }
    rows.sort_by_key(|a| (a.ts, a.id));

    let mut per_class = ClassCounts::default();
    let mut label_sources = BTreeMap::new();
    for row in &rows {
        match row.label {
            0 => per_class.negative += 1,
            _ => per_class.positive += 1,
        }
        let source = match row.label_source {
            LabelSource::Inline => "inline",
            LabelSource::Feedback => "feedback",
        };
        *label_sources.entry(source.to_owned()).or_insert(0) += 1;
    }
    let predicted: std::collections::HashSet<Uuid> = predictions.iter().map(|p| p.id).collect();
    let feedback_without_prediction =
        latest.keys().filter(|id| !predicted.contains(id)).count() as u64;
    let (dataset, _) = dataset_blobs(from, to);
    let manifest = DatasetManifest {
        dataset,
        from,
        to,
        rows: rows.len() as u64,
        sha256: String::new(),
        per_class,
        label_sources,
        per_model: labelled_by_model
            .into_iter()
            .map(|((name, version, role), labelled)| ModelCount {
                name,
                version,
                role,
                labelled,
            })
            .collect(),
        text_mode: "full".into(),
        skipped,
        unlabelled,
        feedback_without_prediction,
    };
    (rows, manifest)
}

/// Serialises rows as JSON Lines and fills in the manifest's sha256.
pub fn encode(rows: &[DatasetRow], manifest: &mut DatasetManifest) -> (Bytes, Bytes) {
    let mut out = Vec::with_capacity(rows.len() * 160);
    for row in rows {
        serde_json::to_writer(&mut out, row).expect("rows serialise");
        out.push(b'\n');
    }
    manifest.sha256 = format!("sha256:{}", hex::encode(Sha256::digest(&out)));
    let mut manifest_bytes = serde_json::to_vec_pretty(manifest).expect("manifests serialise");
    manifest_bytes.push(b'\n');
    (Bytes::from(out), Bytes::from(manifest_bytes))
}

/// Writes a blob that must not change once written: an identical copy already there is fine.
async fn put_once(
    store: &dyn BlobStore,
    container: &str,
    name: &str,
    bytes: Bytes,
) -> Result<bool, ExportError> {
    match store
        .put(container, name, bytes.clone(), WriteCondition::IfAbsent)
        .await
    {
        Ok(_) => Ok(true),
        Err(StoreError::ConditionFailed { .. }) => {
            if store.get(container, name).await?.bytes == bytes {
                Ok(false)
            } else {
                Err(ExportError::Changed(format!("{container}/{name}")))
            }
        }
        Err(e) => Err(e.into()),
    }
}

/// Exports the labelled predictions of `[from, to)` from `logs_container` into
/// `datasets_container`.
pub async fn export_labels(
    store: &dyn BlobStore,
    logs_container: &str,
    datasets_container: &str,
    from: OffsetDateTime,
    to: OffsetDateTime,
) -> Result<Export, ExportError> {
    if from >= to {
        return Err(ExportError::EmptyRange {
            from: compact_time(from),
            to: compact_time(to),
        });
    }
    let predictions: Vec<PredictionRecord> = read_range(
        store,
        logs_container,
        PREDICTIONS_PREFIX,
        from,
        to,
        |r: &PredictionRecord| r.ts,
    )
    .await?;
    let feedback: Vec<FeedbackRecord> = read_range(
        store,
        logs_container,
        FEEDBACK_PREFIX,
        from,
        to,
        |r: &FeedbackRecord| r.ts,
    )
    .await?;
    let (rows, mut manifest) = join(&predictions, &feedback, from, to);
    if rows.is_empty() {
        return Err(ExportError::NoLabels {
            from: compact_time(from),
            to: compact_time(to),
            unlabelled: manifest.unlabelled,
            without_text: manifest.skipped.text_sha256 + manifest.skipped.text_none,
        });
    }
    let (rows_bytes, manifest_bytes) = encode(&rows, &mut manifest);
    let (rows_blob, manifest_blob) = dataset_blobs(from, to);
    let wrote_rows = put_once(store, datasets_container, &rows_blob, rows_bytes.clone()).await?;
    let wrote_manifest = put_once(
        store,
        datasets_container,
        &manifest_blob,
        manifest_bytes.clone(),
    )
    .await?;
    Ok(Export {
        manifest,
        rows: rows_bytes,
        manifest_bytes,
        written: wrote_rows || wrote_manifest,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Sentiment;
    use time::macros::datetime;

    const FROM: OffsetDateTime = datetime!(2026-11-29 10:00 UTC);
    const TO: OffsetDateTime = datetime!(2026-11-29 12:00 UTC);

    fn prediction(
        id: u128,
        minute: i64,
        text: Option<&str>,
        label: Option<u8>,
        role: Role,
    ) -> PredictionRecord {
        PredictionRecord {
            v: 1,
            id: Uuid::from_u128(id),
            ts: FROM + Duration::minutes(minute),
            model: ModelRef {
                name: "nb".into(),
                version: if role == Role::Champion { "1" } else { "2" }.into(),
            },
            role,
            score: 0.7,
            sentiment: Sentiment::Positive,
            latency_ms: 1.0,
            text: text.map(str::to_owned),
            true_label: label,
        }
    }

    fn feedback(id: u128, minute: i64, label: u8) -> FeedbackRecord {
        FeedbackRecord {
            v: 1,
            id: None,
            prediction_id: Uuid::from_u128(id),
            ts: FROM + Duration::minutes(minute),
            true_label: label,
        }
    }

    #[test]
    fn each_prediction_once_with_its_latest_label_and_skips_explained() {
        let predictions = vec![
            prediction(3, 30, Some("late bag"), Some(1), Role::Champion),
            prediction(3, 30, Some("late bag"), Some(1), Role::Challenger),
            prediction(1, 5, Some("great crew"), Some(1), Role::Champion),
            prediction(1, 5, Some("great crew"), Some(1), Role::Champion), // appended twice
            prediction(2, 10, Some("on hold 45 min"), None, Role::Champion),
            prediction(4, 20, Some("sha256:ab"), Some(0), Role::Champion),
            prediction(5, 25, None, None, Role::Champion),
            prediction(6, 26, Some("no label ever"), None, Role::Champion),
        ];
        let feedback = vec![
            feedback(2, 11, 1),
            feedback(2, 12, 0), // the latest label wins
            feedback(3, 40, 0), // feedback corrects the inline label
            feedback(5, 26, 0),
            feedback(99, 50, 1),
        ];
        let (rows, mut manifest) = join(&predictions, &feedback, FROM, TO);
        let ids: Vec<u128> = rows.iter().map(|r| r.id.as_u128()).collect();
        assert_eq!(ids, vec![1, 2, 3], "sorted by time, each once");
        assert_eq!(
            rows.iter()
                .map(|r| (r.label, r.label_source))
                .collect::<Vec<_>>(),
            vec![
                (1, LabelSource::Inline),
                (0, LabelSource::Feedback),
                (0, LabelSource::Feedback)
            ]
        );
        assert_eq!(
            manifest.per_class,
            ClassCounts {
                negative: 2,
                positive: 1
            }
        );
        assert_eq!(
            manifest.skipped,
            Skipped {
                text_sha256: 1,
                text_none: 1
            }
        );
        assert_eq!(manifest.unlabelled, 1);
        assert_eq!(manifest.feedback_without_prediction, 1);
        let challenger = manifest
            .per_model
            .iter()
            .find(|m| m.role == Role::Challenger)
            .unwrap();
        assert_eq!((challenger.version.as_str(), challenger.labelled), ("2", 1));

        let (first, _) = encode(&rows, &mut manifest);
        let mut shuffled = predictions.clone();
        shuffled.reverse();
        let (rows_again, mut manifest_again) = join(&shuffled, &feedback, FROM, TO);
        let (second, _) = encode(&rows_again, &mut manifest_again);
        assert_eq!(
            first, second,
            "the same records in another order give the same bytes"
        );
        assert_eq!(manifest.sha256, manifest_again.sha256);
    }

    #[test]
    fn names_and_day_folders_cover_the_range() {
        assert_eq!(
            dataset_blobs(FROM, TO).0,
            "feedback/20261129T100000Z_20261129T120000Z.jsonl"
        );
        assert_eq!(
            day_prefixes(
                "predictions/",
                datetime!(2026-11-30 23:00 UTC),
                datetime!(2026-12-02 00:00 UTC)
            ),
            vec!["predictions/2026/11/30/", "predictions/2026/12/01/"]
        );
    }
}
