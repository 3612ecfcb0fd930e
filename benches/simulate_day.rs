//! A simulated stretch of heavy traffic: N instances each scoring R tweets a second, a share of
//! them labelled by feedback, written to the log exactly as the handler writes it (the flush
//! policy's blocks, through the real segment writer) into the local store and, when
//! AZURITE_CONNECTION_STRING is set, into Azurite. The report runs after every simulated
//! 5 minutes. One table: per (N, R), the most blocks any blob got in its hour, the segments used,
//! the time per report run, the checkpoint's size, and whether a run fits in its 5 minutes.
//!
//!   cargo bench --bench simulate_day
//!   SIM_SLICES=288 cargo bench --bench simulate_day          # a whole day of 5-minute runs
//!   SIM_LOADS="1x10,4x1000" SIM_MAX_SLICE_RECORDS=3000000 cargo bench --bench simulate_day
//!   AZURITE_CONNECTION_STRING=… cargo bench --bench simulate_day

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use time::OffsetDateTime;
use tweet_sentiment::log::record::to_jsonl;
use tweet_sentiment::log::segments::SegmentWriter;
use tweet_sentiment::log::{FeedbackRecord, PredictionRecord, FEEDBACK_PREFIX, PREDICTIONS_PREFIX};
use tweet_sentiment::metrics::run::CHECKPOINT_BLOB;
use tweet_sentiment::metrics::{run_report, ReportConfig};
use tweet_sentiment::model::{ModelRef, Role, Sentiment};
use tweet_sentiment::store::azure::AzureStore;
use tweet_sentiment::store::connection_string::ConnectionString;
use tweet_sentiment::store::fs::FsStore;
use tweet_sentiment::store::{BlobStore, APPEND_BLOCK_LIMIT};
use uuid::Uuid;

/// The serve defaults (config.rs): flush at 256 records or 1 s, never more often than 100 ms.
const MAX_BATCH: f64 = 256.0;
const MAX_AGE_S: f64 = 1.0;
const MIN_FLUSH_S: f64 = 0.1;
/// Share of predictions that get a true label through `POST /api/feedback`.
const FEEDBACK_SHARE: f64 = 0.05;
const SLICE_S: i64 = 300;

struct Load {
    instances: u32,
    rate: u32,
}

struct Row {
    store: &'static str,
    load: Load,
    slice_records: u64,
    slices: usize,
    max_blocks: u32,
    segments: usize,
    mean_run_s: f64,
    max_run_s: f64,
    checkpoint_mb: f64,
    measured: bool,
}

/// Seconds between two flushes of one instance at `rate` predictions a second.
fn flush_interval(rate: f64) -> f64 {
    (MAX_BATCH / rate).clamp(MIN_FLUSH_S, MAX_AGE_S)
}

fn prediction(id: Uuid, ts: OffsetDateTime, k: u64) -> PredictionRecord {
    let score = ((k * 2_654_435_761) % 1000) as f32 / 1000.0;
    PredictionRecord {
        v: 1,
        id,
        ts,
        model: ModelRef {
            name: "minilm".into(),
            version: "2026.11.29-1".into(),
        },
        role: Role::Champion,
        score,
        sentiment: if score >= 0.6667 {
            Sentiment::Positive
        } else {
            Sentiment::Negative
        },
        latency_ms: 8.0 + (k % 7) as f64,
        text: Some("Flight delayed again, third time this month @airline #fail".into()),
        true_label: None,
    }
}

async fn simulate(
    name: &'static str,
    store: Arc<dyn BlobStore>,
    logs: &str,
    reports: &str,
    load: Load,
    slices: usize,
) -> Row {
    let config = ReportConfig {
        logs_container: logs.into(),
        reports_container: reports.into(),
        models_container: "models".into(),
        bad_buzz_min_predictions: 20,
        bad_buzz_delta: 0.15,
        bad_buzz_share: 0.75,
        verdict: tweet_sentiment::metrics::VerdictConfig::default(),
    };
    let rate = f64::from(load.rate);
    let interval = flush_interval(rate);
    let per_flush = (rate * interval).round().max(1.0) as u64;
    let flushes = (SLICE_S as f64 / interval).round() as u64;
    let writers: Vec<SegmentWriter> = (0..load.instances)
        .map(|i| {
            SegmentWriter::new(
                store.clone(),
                logs.into(),
                format!("i{i}"),
                APPEND_BLOCK_LIMIT,
            )
        })
        .collect();
    let mut blocks: HashMap<String, u32> = HashMap::new();
    let start = OffsetDateTime::now_utc().replace_nanosecond(0).unwrap() - time::Duration::days(1);
    let mut runs = Vec::new();
    let mut k = 0u64;
    for slice in 0..slices {
        let slice_start = start + time::Duration::seconds(SLICE_S * slice as i64);
        for writer in &writers {
            let mut labelled = Vec::new();
            for f in 0..flushes {
                let ts = slice_start + time::Duration::seconds_f64(f as f64 * interval);
                let records: Vec<PredictionRecord> = (0..per_flush)
                    .map(|_| {
                        k += 1;
                        let id = Uuid::from_u128(u128::from(k) << 32 | 7);
                        if (k % 1000) as f64 / 1000.0 < FEEDBACK_SHARE {
                            labelled.push((id, ts));
                        }
                        prediction(id, ts, k)
                    })
                    .collect();
                let blob = writer
                    .append(PREDICTIONS_PREFIX, ts, Bytes::from(to_jsonl(&records)))
                    .await
                    .unwrap();
                *blocks.entry(blob).or_default() += 1;
            }
            // Feedback is group-committed: at most one append per instance per second.
            for second in labelled.chunk_by(|a, b| (a.1 - b.1).whole_seconds() == 0) {
                let records: Vec<FeedbackRecord> = second
                    .iter()
                    .map(|(id, ts)| FeedbackRecord {
                        v: 1,
                        id: None,
                        prediction_id: *id,
                        ts: *ts + time::Duration::seconds(2),
                        true_label: (id.as_u128() >> 32) as u8 % 2,
                    })
                    .collect();
                let blob = writer
                    .append(
                        FEEDBACK_PREFIX,
                        records[0].ts,
                        Bytes::from(to_jsonl(&records)),
                    )
                    .await
                    .unwrap();
                *blocks.entry(blob).or_default() += 1;
            }
        }
        let now = slice_start + time::Duration::seconds(SLICE_S);
        let started = Instant::now();
        let report = run_report(store.as_ref(), &config, now).await.unwrap();
        runs.push(started.elapsed().as_secs_f64());
        assert_eq!(
            report.run.prediction_records,
            u64::from(load.instances) * flushes * per_flush,
            "every prediction of the slice read once"
        );
    }
    let checkpoint = store
        .get(reports, CHECKPOINT_BLOB)
        .await
        .map(|b| b.bytes.len())
        .unwrap_or(0);
    Row {
        store: name,
        slice_records: u64::from(load.instances) * flushes * per_flush,
        slices,
        max_blocks: blocks.values().copied().max().unwrap_or(0),
        segments: blocks.len(),
        mean_run_s: runs.iter().sum::<f64>() / runs.len().max(1) as f64,
        max_run_s: runs.iter().copied().fold(0.0, f64::max),
        checkpoint_mb: checkpoint as f64 / 1e6,
        measured: true,
        load,
    }
}

fn parse_loads(spec: &str) -> Vec<Load> {
    spec.split(',')
        .filter_map(|item| {
            let (n, r) = item.trim().split_once('x')?;
            Some(Load {
                instances: n.parse().ok()?,
                rate: r.parse().ok()?,
            })
        })
        .collect()
}

fn main() {
    let slices: usize = std::env::var("SIM_SLICES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(12);
    let max_slice_records: u64 = std::env::var("SIM_MAX_SLICE_RECORDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_500_000);
    let loads = parse_loads(
        &std::env::var("SIM_LOADS")
            .unwrap_or_else(|_| "1x10,1x100,4x100,4x500,8x1000,16x1000,64x1000,256x1000".into()),
    );
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let mut rows = Vec::new();
    runtime.block_on(async {
        for load in loads {
            let slice_records = u64::from(load.instances) * u64::from(load.rate) * SLICE_S as u64;
            if slice_records > max_slice_records {
                // Too large to write here: extrapolated from the last measured throughput.
                let last = rows
                    .iter()
                    .rev()
                    .find(|r: &&Row| r.measured && r.store == "local folder");
                let (mean, max) = last.map_or((f64::NAN, f64::NAN), |r: &Row| {
                    let scale = slice_records as f64 / r.slice_records as f64;
                    (r.mean_run_s * scale, r.max_run_s * scale)
                });
                rows.push(Row {
                    store: "local folder",
                    slice_records,
                    slices: 0,
                    max_blocks: (3600.0 / flush_interval(f64::from(load.rate))) as u32,
                    segments: 0,
                    mean_run_s: mean,
                    max_run_s: max,
                    checkpoint_mb: f64::NAN,
                    measured: false,
                    load,
                });
                continue;
            }
            let dir = tempfile::tempdir().unwrap();
            let fs: Arc<dyn BlobStore> = Arc::new(FsStore::new(
                dir.path().join("data"),
                dir.path().join("models"),
                "models".into(),
            ));
            let row = simulate("local folder", fs, "logs", "reports", load, slices).await;
            eprintln!(
                "done: {} x {} on the local folder",
                row.load.instances, row.load.rate
            );
            rows.push(row);
            if let Ok(cs) = std::env::var("AZURITE_CONNECTION_STRING") {
                let azure: Arc<dyn BlobStore> = Arc::new(
                    AzureStore::with_account_key(
                        ConnectionString::parse(&cs).unwrap(),
                        Duration::from_secs(120),
                    )
                    .unwrap(),
                );
                let suffix = Uuid::now_v7().simple().to_string();
                let last = rows.last().unwrap();
                let load = Load {
                    instances: last.load.instances,
                    rate: last.load.rate,
                };
                let row = simulate(
                    "azurite",
                    azure,
                    &format!("logs-{suffix}"),
                    &format!("reports-{suffix}"),
                    load,
                    slices,
                )
                .await;
                rows.push(row);
            }
        }
    });
    println!(
        "| store | instances × predictions/s | records per 5 min | 5-min runs | most blocks in one blob (per hour) | blobs | report run mean / max (s) | checkpoint (MB) | keeps up |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    for r in &rows {
        let fit = if r.max_run_s.is_nan() {
            "?".to_owned()
        } else if r.max_run_s < SLICE_S as f64 {
            format!(
                "yes ({:.0} % of the slot)",
                100.0 * r.max_run_s / SLICE_S as f64
            )
        } else {
            "**no**".to_owned()
        };
        if r.measured {
            println!(
                "| {} | {} × {} | {} | {} | {} | {} | {:.2} / {:.2} | {:.1} | {fit} |",
                r.store,
                r.load.instances,
                r.load.rate,
                r.slice_records,
                r.slices,
                r.max_blocks,
                r.segments,
                r.mean_run_s,
                r.max_run_s,
                r.checkpoint_mb
            );
        } else {
            println!(
                "| {} (extrapolated) | {} × {} | {} | – | {} (by the flush policy) | – | ~{:.1} / ~{:.1} | – | {fit} |",
                r.store, r.load.instances, r.load.rate, r.slice_records, r.max_blocks, r.mean_run_s,
                r.max_run_s
            );
        }
    }
}
