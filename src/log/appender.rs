//! The buffered appender for prediction records, and the synchronous one for feedback.
//!
//! Predictions are buffered and appended in batches (bounded in size and age) so that scoring never
//! waits on storage. A failed append is retried with back-off; its records stay buffered, in order,
//! until they are stored. Shutdown flushes what is left. Feedback is different: the caller is told
//! "stored" only after the append returned, so it is written at once.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde::Serialize;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::record::{to_jsonl, FeedbackRecord, PredictionRecord};
use super::segments::SegmentWriter;
use super::{partition_dir, FEEDBACK_PREFIX, PREDICTIONS_PREFIX};
use crate::store::{BlobStore, StoreError};

/// Largest single append: well below the service's limit on an append block.
const MAX_APPEND_BYTES: usize = 4 * 1024 * 1024 - 64 * 1024;

#[derive(Debug, Clone)]
pub struct PredictionLogConfig {
    /// This process's id in blob names: one writer per blob.
    pub instance: String,
    pub container: String,
    /// Flush once this many records are buffered…
    pub max_batch: usize,
    /// …or once the oldest buffered record is this old.
    pub max_age: Duration,
    /// Records kept while storage is down; beyond this, new records are counted as dropped
    /// (and reported) rather than growing memory without bound.
    pub max_pending: usize,
    /// Flushes are at least this far apart, so a blob's blocks per hour stay bounded whatever
    /// the request rate.
    pub min_flush_interval: Duration,
    /// The store's most blocks per append blob; segments roll over before it.
    pub block_limit: u32,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct LogStatus {
    pub pending: usize,
    pub appended: u64,
    pub dropped: u64,
    pub last_error: Option<String>,
}

#[derive(Default)]
struct Buffer {
    records: Vec<PredictionRecord>,
    /// Records taken by the flush under way: still pending until their append succeeds.
    in_flight: usize,
    oldest: Option<Instant>,
    appended: u64,
    dropped: u64,
    last_error: Option<String>,
}

type FeedbackWaiter = (
    FeedbackRecord,
    tokio::sync::oneshot::Sender<Result<(), StoreError>>,
);

pub struct PredictionLog {
    config: PredictionLogConfig,
    segments: Arc<SegmentWriter>,
    buffer: Mutex<Buffer>,
    /// Serialises flushes, so batches reach a blob in the order they were taken.
    flushing: tokio::sync::Mutex<()>,
    wake: Notify,
    /// Feedback waiting for the next group commit…
    feedback_queue: Arc<Mutex<Vec<FeedbackWaiter>>>,
    /// …which one caller at a time runs for everyone queued.
    feedback_commit: tokio::sync::Mutex<()>,
    feedback_appends: std::sync::atomic::AtomicU64,
}

impl std::fmt::Debug for PredictionLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PredictionLog")
            .field("config", &self.config)
            .finish()
    }
}

/// Groups records by partition folder (keeping their order) and cuts each group into appends
/// below the block size limit.
fn appends_for(records: &[PredictionRecord]) -> Vec<(String, Vec<PredictionRecord>)> {
    let mut by_blob: BTreeMap<String, Vec<PredictionRecord>> = BTreeMap::new();
    for record in records {
        by_blob
            .entry(partition_dir(PREDICTIONS_PREFIX, record.ts))
            .or_default()
            .push(record.clone());
    }
    let mut appends = Vec::new();
    for (blob, group) in by_blob {
        let mut current = Vec::new();
        let mut size = 0;
        for record in group {
            let line = to_jsonl(std::slice::from_ref(&record)).len();
            if !current.is_empty() && size + line > MAX_APPEND_BYTES {
                appends.push((blob.clone(), std::mem::take(&mut current)));
                size = 0;
            }
            size += line;
            current.push(record);
        }
        if !current.is_empty() {
            appends.push((blob, current));
        }
    }
    appends
}

impl PredictionLog {
    pub fn new(store: Arc<dyn BlobStore>, config: PredictionLogConfig) -> Self {
        Self {
            segments: Arc::new(SegmentWriter::new(
                store,
                config.container.clone(),
                config.instance.clone(),
                config.block_limit,
            )),
            config,
            buffer: Mutex::new(Buffer::default()),
            flushing: tokio::sync::Mutex::new(()),
            wake: Notify::new(),
            feedback_queue: Arc::new(Mutex::new(Vec::new())),
            feedback_commit: tokio::sync::Mutex::new(()),
            feedback_appends: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// How many appends feedback took so far (a group commit is one).
    pub fn feedback_appends(&self) -> u64 {
        self.feedback_appends
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    pub fn instance(&self) -> &str {
        &self.config.instance
    }

    /// Buffers a prediction record. Never waits on storage.
    pub fn record(&self, records: impl IntoIterator<Item = PredictionRecord>) {
        let mut buffer = self.buffer.lock().expect("log buffer poisoned");
        for record in records {
            if buffer.records.len() >= self.config.max_pending {
                buffer.dropped += 1;
                if buffer.dropped == 1 || buffer.dropped.is_power_of_two() {
                    tracing::error!(
                        dropped = buffer.dropped,
                        "prediction log buffer full; records dropped"
                    );
                }
                continue;
            }
            buffer.records.push(record);
            buffer.oldest.get_or_insert_with(Instant::now);
        }
        if buffer.records.len() >= self.config.max_batch {
            self.wake.notify_one();
        }
    }

    pub fn status(&self) -> LogStatus {
        let buffer = self.buffer.lock().expect("log buffer poisoned");
        LogStatus {
            pending: buffer.records.len() + buffer.in_flight,
            appended: buffer.appended,
            dropped: buffer.dropped,
            last_error: buffer.last_error.clone(),
        }
    }

    /// Appends everything buffered. On failure, what was not stored goes back to the front of the
    /// buffer, in order, and the error is returned.
    pub async fn flush(&self) -> Result<(), StoreError> {
        let _one_at_a_time = self.flushing.lock().await;
        let taken = {
            let mut buffer = self.buffer.lock().expect("log buffer poisoned");
            buffer.oldest = None;
            let taken = std::mem::take(&mut buffer.records);
            buffer.in_flight = taken.len();
            taken
        };
        if taken.is_empty() {
            return Ok(());
        }
        let appends = appends_for(&taken);
        for (done, (_, records)) in appends.iter().enumerate() {
            let bytes = Bytes::from(to_jsonl(records));
            let hour = records[0].ts;
            if let Err(error) = self.segments.append(PREDICTIONS_PREFIX, hour, bytes).await {
                let unstored: Vec<PredictionRecord> = appends[done..]
                    .iter()
                    .flat_map(|(_, r)| r.iter().cloned())
                    .collect();
                let mut buffer = self.buffer.lock().expect("log buffer poisoned");
                buffer.in_flight = 0;
                let newer = std::mem::take(&mut buffer.records);
                buffer.records = unstored;
                buffer.records.extend(newer);
                buffer.oldest = Some(Instant::now());
                buffer.last_error = Some(error.to_string());
                return Err(error);
            }
            let mut buffer = self.buffer.lock().expect("log buffer poisoned");
            buffer.appended += records.len() as u64;
            buffer.in_flight -= records.len();
            buffer.last_error = None;
        }
        Ok(())
    }

    /// Appends one feedback record and returns only once it is stored.
    ///
    /// Group commit: the record joins a queue, and one caller at a time appends everything queued
    /// in one block per hour, then tells each waiter how it went. Feedback that arrives while an
    /// append is under way therefore shares the next one. The append runs on its own task, so a
    /// caller that goes away mid-commit cannot leave the others without an answer.
    pub async fn append_feedback(&self, record: &FeedbackRecord) -> Result<(), StoreError> {
        let (done, outcome) = tokio::sync::oneshot::channel();
        self.feedback_queue
            .lock()
            .expect("feedback queue poisoned")
            .push((record.clone(), done));
        {
            let _one_commit_at_a_time = self.feedback_commit.lock().await;
            let batch =
                std::mem::take(&mut *self.feedback_queue.lock().expect("feedback queue poisoned"));
            if !batch.is_empty() {
                let appends = batch
                    .iter()
                    .map(|(r, _)| partition_dir(FEEDBACK_PREFIX, r.ts))
                    .collect::<std::collections::BTreeSet<_>>()
                    .len();
                self.feedback_appends
                    .fetch_add(appends as u64, std::sync::atomic::Ordering::Relaxed);
                let segments = self.segments.clone();
                tokio::spawn(commit_feedback(segments, batch)).await.ok();
            }
        }
        outcome.await.unwrap_or_else(|_| {
            Err(StoreError::Uncertain(
                "the feedback commit stopped before it answered".into(),
            ))
        })
    }

    /// Flushes on size or age until `shutdown`, at most once per `min_flush_interval`, retrying
    /// failures with back-off, then flushes what is left (trying for up to `final_deadline`).
    pub fn spawn_flusher(
        self: Arc<Self>,
        shutdown: CancellationToken,
        final_deadline: Duration,
    ) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            let mut backoff = Duration::ZERO;
            let mut last_flush = Instant::now();
            loop {
                let wait = self.config.max_age.max(backoff);
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = self.wake.notified(), if backoff.is_zero() => {},
                    _ = tokio::time::sleep(wait) => {},
                }
                // However fast records come, a blob gets at most one block per interval.
                let since = last_flush.elapsed();
                if since < self.config.min_flush_interval {
                    tokio::select! {
                        _ = shutdown.cancelled() => break,
                        _ = tokio::time::sleep(self.config.min_flush_interval - since) => {},
                    }
                }
                last_flush = Instant::now();
                self.segments.forget_before(
                    PREDICTIONS_PREFIX,
                    time::OffsetDateTime::now_utc() - time::Duration::hours(1),
                );
                match self.flush().await {
                    Ok(()) => backoff = Duration::ZERO,
                    Err(error) => {
                        backoff = (backoff * 2)
                            .clamp(Duration::from_millis(250), Duration::from_secs(30));
                        tracing::warn!(%error, retry_in_ms = backoff.as_millis() as u64, pending = self.status().pending, "prediction log append failed; will retry");
                    }
                }
            }
            let deadline = Instant::now() + final_deadline;
            loop {
                match self.flush().await {
                    Ok(()) => {
                        tracing::info!(
                            appended = self.status().appended,
                            "prediction log flushed at shutdown"
                        );
                        break;
                    }
                    Err(error) if Instant::now() < deadline => {
                        tracing::warn!(%error, "final flush failed; retrying");
                        tokio::time::sleep(Duration::from_millis(500)).await;
                    }
                    Err(error) => {
                        tracing::error!(%error, lost = self.status().pending, "prediction log could not be flushed before shutdown");
                        break;
                    }
                }
            }
        })
    }
}

/// Appends a batch of feedback, one block per hour it spans, and answers every waiter.
async fn commit_feedback(segments: Arc<SegmentWriter>, batch: Vec<FeedbackWaiter>) {
    let mut by_hour: BTreeMap<String, Vec<FeedbackWaiter>> = BTreeMap::new();
    for waiter in batch {
        by_hour
            .entry(partition_dir(FEEDBACK_PREFIX, waiter.0.ts))
            .or_default()
            .push(waiter);
    }
    for (_, waiters) in by_hour {
        let records: Vec<FeedbackRecord> = waiters.iter().map(|(r, _)| r.clone()).collect();
        let outcome = segments
            .append(
                FEEDBACK_PREFIX,
                records[0].ts,
                Bytes::from(to_jsonl(&records)),
            )
            .await
            .map(drop);
        for (_, done) in waiters {
            // A caller that went away no longer listens; the record is stored all the same.
            let _ = done.send(outcome.clone());
        }
    }
}
