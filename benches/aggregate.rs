//! Aggregation throughput: a generated log of 1,000,000 records (800,000 predictions, 200,000
//! feedback) aggregated by one report run, on the local-folder store and, when
//! AZURITE_CONNECTION_STRING is set, on Azurite.
//!
//!   cargo bench --bench aggregate
//!   AZURITE_CONNECTION_STRING=… cargo bench --bench aggregate
//!   AGGREGATE_RECORDS=200000 cargo bench --bench aggregate   # a smaller log

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use time::OffsetDateTime;
use tweet_sentiment::log::record::to_jsonl;
use tweet_sentiment::log::{partition_blob, FeedbackRecord, PredictionRecord};
use tweet_sentiment::log::{FEEDBACK_PREFIX, PREDICTIONS_PREFIX};
use tweet_sentiment::metrics::{run_report, ReportConfig};
use tweet_sentiment::model::Sentiment;
use tweet_sentiment::model::{ModelRef, Role};
use tweet_sentiment::store::azure::AzureStore;
use tweet_sentiment::store::connection_string::ConnectionString;
use tweet_sentiment::store::fs::FsStore;
use tweet_sentiment::store::BlobStore;
use uuid::Uuid;

const INSTANCES: u64 = 8;
/// Lines per append: under the 4 MiB append block limit at ~200 bytes a line.
const LINES_PER_APPEND: usize = 15_000;

// A cheap deterministic generator, so every run aggregates the same log.
use tweet_sentiment::metrics::verdict::SplitMix64 as SplitMix;

async fn write_log(store: &dyn BlobStore, container: &str, total: usize, now: OffsetDateTime) {
    let predictions = total * 4 / 5;
    let feedback = total - predictions;
    let mut rng = SplitMix(42);
    let mut ids = Vec::with_capacity(predictions);
    let mut by_blob: std::collections::BTreeMap<String, Vec<PredictionRecord>> = Default::default();
    for i in 0..predictions {
        // Spread over the last 24 hours and 8 instances.
        let ts = now - Duration::from_secs_f64(rng.unit() * 86_400.0);
        let score = rng.unit() as f32;
        let id = Uuid::from_u128(((i as u128) << 64) | rng.next_u64() as u128);
        ids.push(id);
        let record = PredictionRecord {
            v: 1,
            id,
            ts,
            model: ModelRef {
                name: "lstm".into(),
                version: "2026.11.25-1".into(),
            },
            role: Role::Champion,
            score,
            sentiment: if score >= 0.5 {
                Sentiment::Positive
            } else {
                Sentiment::Negative
            },
            latency_ms: 0.5 + rng.unit() * 4.0,
            text: Some("Flight delayed again, third time this month @airline #fail".into()),
            true_label: (rng.unit() < 0.4).then(|| u8::from(rng.unit() < 0.5)),
        };
        let blob = partition_blob(
            PREDICTIONS_PREFIX,
            ts,
            &format!("i{}", i as u64 % INSTANCES),
        );
        by_blob.entry(blob).or_default().push(record);
    }
    for (blob, records) in by_blob {
        for chunk in records.chunks(LINES_PER_APPEND) {
            store
                .append(container, &blob, Bytes::from(to_jsonl(chunk)))
                .await
                .unwrap();
        }
    }
    let feedback: Vec<FeedbackRecord> = (0..feedback)
        .map(|_| {
            // A few percent point at ids nobody predicted.
            let id = if rng.unit() < 0.03 {
                Uuid::now_v7()
            } else {
                ids[(rng.next_u64() as usize) % ids.len()]
            };
            FeedbackRecord {
                v: 1,
                id: None,
                prediction_id: id,
                ts: now,
                true_label: u8::from(rng.unit() < 0.5),
            }
        })
        .collect();
    let blob = partition_blob(FEEDBACK_PREFIX, now, "i0");
    for chunk in feedback.chunks(LINES_PER_APPEND) {
        store
            .append(container, &blob, Bytes::from(to_jsonl(chunk)))
            .await
            .unwrap();
    }
}

async fn bench(name: &str, store: Arc<dyn BlobStore>, logs: &str, reports: &str, total: usize) {
    let config = ReportConfig {
        logs_container: logs.into(),
        reports_container: reports.into(),
        models_container: "models".into(),
        bad_buzz_min_predictions: 20,
        bad_buzz_delta: 0.15,
        bad_buzz_share: 0.75,
        verdict: tweet_sentiment::metrics::VerdictConfig::default(),
    };
    let now = OffsetDateTime::now_utc();
    let started = Instant::now();
    write_log(store.as_ref(), logs, total, now).await;
    println!(
        "{name}: wrote {total} records in {:.1} s",
        started.elapsed().as_secs_f64()
    );

    let started = Instant::now();
    let report = run_report(store.as_ref(), &config, now).await.unwrap();
    let elapsed = started.elapsed().as_secs_f64();
    let read = report.run.prediction_records + report.run.feedback_records;
    assert_eq!(read as usize, total, "every record read once");
    println!(
        "{name}: aggregated {read} records ({:.0} MB) in {elapsed:.2} s = {:.0} records/s; \
         labelled {}, macro-F1 {:.3}",
        report.run.bytes_read as f64 / 1e6,
        read as f64 / elapsed,
        report.overall.since_start.labelled,
        report.overall.since_start.macro_f1.unwrap_or(f64::NAN),
    );
    let started = Instant::now();
    let again = run_report(store.as_ref(), &config, OffsetDateTime::now_utc())
        .await
        .unwrap();
    assert_eq!(again.run.prediction_records + again.run.feedback_records, 0);
    println!(
        "{name}: incremental rerun with nothing new in {:.2} s",
        started.elapsed().as_secs_f64()
    );
}

fn main() {
    // `cargo bench` passes `--bench`; a filter argument is not meaningful here.
    let total: usize = std::env::var("AGGREGATE_RECORDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let fs: Arc<dyn BlobStore> = Arc::new(FsStore::new(
            dir.path().join("data"),
            dir.path().join("models"),
            "models".into(),
        ));
        bench("local folder", fs, "logs", "reports", total).await;
        if let Ok(cs) = std::env::var("AZURITE_CONNECTION_STRING") {
            let azure: Arc<dyn BlobStore> = Arc::new(
                AzureStore::with_account_key(
                    ConnectionString::parse(&cs).unwrap(),
                    Duration::from_secs(120),
                )
                .unwrap(),
            );
            let suffix = Uuid::now_v7().simple().to_string();
            bench(
                "azurite",
                azure,
                &format!("logs-{suffix}"),
                &format!("reports-{suffix}"),
                total,
            )
            .await;
        }
    });
}
