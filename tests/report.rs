//! The log and the report in-process on the local-folder store: the aggregation against an
//! independent count, reruns that change nothing, a run killed before its checkpoint, and
//! concurrent writers.

mod common;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use time::OffsetDateTime;
use tweet_sentiment::log::{FeedbackRecord, PredictionLog, PredictionLogConfig, PredictionRecord};
use tweet_sentiment::metrics::run::CHECKPOINT_BLOB;
use tweet_sentiment::metrics::{run_report, AggregationError, Confusion, ReportConfig};
use tweet_sentiment::model::Sentiment;
use tweet_sentiment::model::{ModelRef, Role};
use tweet_sentiment::store::fs::FsStore;
use tweet_sentiment::store::{
    Blob, BlobInfo, BlobStore, ETag, StoreError, StoreResult, WriteCondition,
};
use uuid::Uuid;

fn config() -> ReportConfig {
    common::report_config("logs", "reports")
}

fn log(store: Arc<dyn BlobStore>, instance: &str) -> Arc<PredictionLog> {
    Arc::new(PredictionLog::new(
        store,
        PredictionLogConfig {
            instance: instance.into(),
            container: "logs".into(),
            max_batch: 64,
            max_age: Duration::from_millis(20),
            max_pending: 1_000_000,
            min_flush_interval: std::time::Duration::ZERO,
            block_limit: tweet_sentiment::store::APPEND_BLOCK_LIMIT,
        },
    ))
}

fn prediction(i: u32, score: f32, label: Option<u8>) -> PredictionRecord {
    PredictionRecord {
        v: 1,
        id: Uuid::now_v7(),
        ts: OffsetDateTime::now_utc(),
        model: ModelRef {
            name: "fixture-nb".into(),
            version: "1".into(),
        },
        role: Role::Champion,
        score,
        sentiment: if score >= 0.5 {
            Sentiment::Positive
        } else {
            Sentiment::Negative
        },
        latency_ms: 1.0 + f64::from(i % 7),
        text: Some(format!("tweet {i}")),
        true_label: label,
    }
}

fn feedback(id: Uuid, label: u8) -> FeedbackRecord {
    FeedbackRecord {
        v: 1,
        id: None,
        prediction_id: id,
        ts: OffsetDateTime::now_utc(),
        true_label: label,
    }
}

/// What happens when the aggregation writes its checkpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AtCheckpoint {
    Write,
    /// The run is killed between reading the log and committing its checkpoint.
    Crash,
    /// Another run commits its checkpoint first (once).
    Race,
}

/// The local store, with a hook on checkpoint writes.
#[derive(Debug)]
struct HookedStore {
    inner: FsStore,
    at_checkpoint: std::sync::Mutex<AtCheckpoint>,
}

impl HookedStore {
    fn new(inner: FsStore) -> Self {
        Self {
            inner,
            at_checkpoint: std::sync::Mutex::new(AtCheckpoint::Write),
        }
    }

    fn set(&self, mode: AtCheckpoint) {
        *self.at_checkpoint.lock().unwrap() = mode;
    }
}

#[async_trait]
impl BlobStore for HookedStore {
    async fn get(&self, c: &str, n: &str) -> StoreResult<Blob> {
        self.inner.get(c, n).await
    }
    async fn get_from(&self, c: &str, n: &str, o: u64) -> StoreResult<Bytes> {
        self.inner.get_from(c, n, o).await
    }
    async fn etag(&self, c: &str, n: &str) -> StoreResult<Option<ETag>> {
        self.inner.etag(c, n).await
    }
    async fn put(&self, c: &str, n: &str, b: Bytes, w: WriteCondition) -> StoreResult<ETag> {
        if n == CHECKPOINT_BLOB {
            let mode = *self.at_checkpoint.lock().unwrap();
            match mode {
                AtCheckpoint::Write => {}
                AtCheckpoint::Crash => {
                    return Err(StoreError::Unavailable(
                        "killed before the checkpoint".into(),
                    ))
                }
                AtCheckpoint::Race => {
                    self.set(AtCheckpoint::Write);
                    self.inner
                        .put(
                            c,
                            n,
                            Bytes::from_static(b"{\"runs\":99}"),
                            WriteCondition::Always,
                        )
                        .await?;
                }
            }
        }
        self.inner.put(c, n, b, w).await
    }
    async fn append(&self, c: &str, n: &str, b: Bytes) -> StoreResult<()> {
        self.inner.append(c, n, b).await
    }
    async fn delete_if_match(&self, c: &str, n: &str, t: &ETag) -> StoreResult<()> {
        self.inner.delete_if_match(c, n, t).await
    }
    async fn list(&self, c: &str, p: &str) -> StoreResult<Vec<BlobInfo>> {
        self.inner.list(c, p).await
    }
    fn describe(&self) -> String {
        "local store with a checkpoint hook".into()
    }
    fn kind(&self) -> &'static str {
        self.inner.kind()
    }
    fn locate(&self, c: &str, n: &str) -> String {
        self.inner.locate(c, n)
    }
}

#[tokio::test]
async fn report_counts_match_an_independent_count_and_survive_reruns_and_a_crash() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(HookedStore::new(FsStore::new(
        dir.path().join("data"),
        common::models_dir_with_fixtures(dir.path()),
        "models".into(),
    )));
    let log = log(store.clone(), "instance-a");

    // 40 predictions with inline labels, 30 labelled later, 10 never labelled.
    let mut expected = Confusion::default();
    let mut later = Vec::new();
    for i in 0..80u32 {
        let score = ((i * 37) % 100) as f32 / 100.0;
        let truth = u8::from(i % 3 != 0);
        let inline = (i < 40).then_some(truth);
        let p = prediction(i, score, inline);
        if i < 70 {
            expected.record(truth, score >= 0.5);
        }
        if (40..70).contains(&i) {
            later.push((p.id, truth));
        }
        log.record([p]);
    }
    log.flush().await.unwrap();
    // Half the late feedback now, with a duplicate and an unknown id.
    for (id, truth) in &later[..15] {
        log.append_feedback(&feedback(*id, *truth)).await.unwrap();
    }
    log.append_feedback(&feedback(later[0].0, 1 - later[0].1))
        .await
        .unwrap();
    log.append_feedback(&feedback(Uuid::now_v7(), 1))
        .await
        .unwrap();

    let first = run_report(store.as_ref(), &config(), OffsetDateTime::now_utc())
        .await
        .unwrap();
    assert_eq!(first.overall.since_start.predictions, 80);
    assert_eq!(first.run.prediction_records, 80);
    assert_eq!(first.feedback.joined, 15);
    assert_eq!(
        first.feedback.duplicate, 1,
        "a second label for the same prediction"
    );
    assert_eq!(
        first.feedback_waiting, 1,
        "the unknown id waits for its prediction"
    );

    // The other half, then a run that dies before its checkpoint.
    for (id, truth) in &later[15..] {
        log.append_feedback(&feedback(*id, *truth)).await.unwrap();
    }
    store.set(AtCheckpoint::Crash);
    let crashed = run_report(store.as_ref(), &config(), OffsetDateTime::now_utc()).await;
    assert!(matches!(crashed, Err(AggregationError::Store(_))));
    store.set(AtCheckpoint::Write);

    let second = run_report(store.as_ref(), &config(), OffsetDateTime::now_utc())
        .await
        .unwrap();
    let all = &second.overall.since_start;
    assert_eq!(all.predictions, 80, "nothing counted twice after the crash");
    assert_eq!(all.confusion, expected, "nothing lost after the crash");
    assert_eq!(second.feedback.joined, 30);
    assert_eq!(second.feedback.late, 15);
    assert_eq!(
        second.run.feedback_records, 15,
        "the rerun read the crashed run's feedback again"
    );
    // The figures follow from the matrix.
    let tp = expected.tp as f64;
    let (fp, tn, fn_) = (expected.fp as f64, expected.tn as f64, expected.fn_ as f64);
    let f1_pos = 2.0 * tp / (2.0 * tp + fp + fn_);
    let f1_neg = 2.0 * tn / (2.0 * tn + fn_ + fp);
    assert!((all.macro_f1.unwrap() - (f1_pos + f1_neg) / 2.0).abs() < 1e-12);
    assert!((all.accuracy.unwrap() - (tp + tn) / 70.0).abs() < 1e-12);
    assert_eq!(all.labelled, 70);
    assert_eq!(second.overall.last_hour.predictions, 80);
    assert!(all.latency_ms.p50.is_some());
    assert_eq!(second.models.len(), 1);
    assert!(
        second.models[0].windows.since_start.psi.is_some(),
        "the fixture manifest has a reference"
    );

    // A rerun with nothing new changes no figure.
    let third = run_report(store.as_ref(), &config(), OffsetDateTime::now_utc())
        .await
        .unwrap();
    assert_eq!(third.run.prediction_records + third.run.feedback_records, 0);
    assert_eq!(third.overall, second.overall);
    assert_eq!(third.feedback, second.feedback);

    // The files a reader uses.
    for name in ["latest.json", "latest.html"] {
        assert!(store.get("reports", name).await.is_ok(), "{name}");
    }
    let html = String::from_utf8(
        store
            .get("reports", "latest.html")
            .await
            .unwrap()
            .bytes
            .to_vec(),
    )
    .unwrap();
    assert!(html.contains("<svg") && !html.contains("<script") && !html.contains("http"));
    let runs = store.list("reports", "metrics/").await.unwrap();
    assert!(!runs.is_empty());
}

#[tokio::test]
async fn sixteen_concurrent_writers_lose_nothing_and_interleave_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn BlobStore> = Arc::new(FsStore::new(
        dir.path().join("data"),
        dir.path().join("models"),
        "models".into(),
    ));
    common::concurrent_writers(store, "logs").await;
}

#[tokio::test]
async fn a_concurrent_run_commits_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = FsStore::new(
        dir.path().join("data"),
        dir.path().join("models"),
        "models".into(),
    );
    run_report(&store, &config(), OffsetDateTime::now_utc())
        .await
        .unwrap();
    let checkpoint = store.get("reports", CHECKPOINT_BLOB).await.unwrap();
    // Another run commits between our read and our write.
    let racing = HookedStore::new(store);
    racing.set(AtCheckpoint::Race);
    let result = run_report(&racing, &config(), OffsetDateTime::now_utc()).await;
    assert!(
        matches!(result, Err(AggregationError::ConcurrentRun)),
        "{result:?}"
    );
    let after = racing.get("reports", CHECKPOINT_BLOB).await.unwrap();
    assert_ne!(after.etag, checkpoint.etag);
    assert_eq!(&after.bytes[..], b"{\"runs\":99}");
}

/// With a block limit of 10, fifty flushes fill five segments and start a sixth: no record is
/// lost, no blob holds more blocks than the limit, and the report counts every record once
/// across the segments, also when it runs between flushes.
#[tokio::test]
async fn segments_keep_every_blob_under_the_block_limit_and_the_report_reads_them_all() {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn BlobStore> = Arc::new(
        FsStore::new(
            dir.path().join("data"),
            common::models_dir_with_fixtures(dir.path()),
            "models".into(),
        )
        .with_block_limit(10),
    );
    let log = Arc::new(PredictionLog::new(
        store.clone(),
        PredictionLogConfig {
            instance: "i".into(),
            container: "logs".into(),
            max_batch: 64,
            max_age: Duration::from_millis(20),
            max_pending: 1_000_000,
            min_flush_interval: Duration::ZERO,
            block_limit: 10,
        },
    ));
    let mut total = 0;
    for flush in 0..50u32 {
        log.record((0..3).map(|k| prediction(flush * 3 + k, 0.7, Some(1))));
        total += 3;
        log.flush().await.unwrap();
        if flush == 24 {
            let report = run_report(store.as_ref(), &config(), OffsetDateTime::now_utc())
                .await
                .unwrap();
            assert_eq!(report.overall.since_start.predictions, total);
        }
    }
    let blobs = store.list("logs", "predictions/").await.unwrap();
    assert!(blobs.len() >= 5, "{} segments", blobs.len());
    for blob in &blobs {
        let counter = dir
            .path()
            .join("data/logs")
            .join(&blob.name)
            .with_file_name(format!(".{}.blocks", blob.name.rsplit('/').next().unwrap()));
        let blocks: u32 = std::fs::read_to_string(counter).unwrap().parse().unwrap();
        assert!(blocks <= 10, "{} holds {blocks} blocks", blob.name);
    }
    let report = run_report(store.as_ref(), &config(), OffsetDateTime::now_utc())
        .await
        .unwrap();
    assert_eq!(report.overall.since_start.predictions, 150);
    assert_eq!(report.overall.since_start.labelled, 150);
    assert_eq!(report.duplicate_predictions, 0);
    assert_eq!(log.status().appended, 150);
}
