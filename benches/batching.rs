//! The batcher under concurrent callers: each caller scores one tweet at a time, as the API's
//! single-text requests do, with the champion model. Criterion times one round (every caller's
//! tweet answered); after each setting the batches formed are printed, so the per-text cost and
//! the batch size can be read side by side.
//!
//!   cargo bench --bench batching

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use tweet_sentiment::commands::load_version_dir;
use tweet_sentiment::model::LoadedModel;
use tweet_sentiment::service::batcher::{Batcher, BatcherConfig};

const TWEETS: [&str; 4] = [
    "Flight delayed AGAIN. 3 hours on the tarmac and no info!!! #fail",
    "@united thanks for the upgrade, the crew was great :)",
    "lost my bag in CDG, nobody answers the phone",
    "on my way to Nice so excited",
];

fn champion() -> Arc<LoadedModel> {
    let models = Path::new(env!("CARGO_MANIFEST_DIR")).join("models");
    let pointer: serde_json::Value =
        serde_json::from_slice(&std::fs::read(models.join("champion.json")).unwrap()).unwrap();
    let dir = models
        .join(pointer["name"].as_str().unwrap())
        .join(pointer["version"].as_str().unwrap());
    Arc::new(LoadedModel {
        scorer: load_version_dir(&dir).unwrap(),
        loaded_at: time::OffsetDateTime::now_utc(),
    })
}

fn batching(c: &mut Criterion) {
    let model = champion();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut group = c.benchmark_group("batcher");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(4))
        .warm_up_time(Duration::from_secs(1));
    for callers in [1usize, 4, 8, 16] {
        let batcher = Arc::new(Batcher::new(BatcherConfig {
            workers,
            max_batch: 4,
            chunk: 2,
            max_wait: Duration::ZERO,
            max_queued: 4096,
        }));
        group.throughput(Throughput::Elements(callers as u64));
        group.bench_with_input(BenchmarkId::new("callers", callers), &callers, |b, &n| {
            b.iter(|| {
                runtime.block_on(futures::future::join_all((0..n).map(|i| {
                    batcher.score(model.clone(), vec![TWEETS[i % TWEETS.len()].to_owned()])
                })))
            })
        });
        let status = batcher.status();
        println!(
            "{callers} callers: {} texts in {} model calls, {:.2} texts per call",
            status.batched_texts,
            status.batches,
            status.batched_texts as f64 / status.batches.max(1) as f64
        );
    }
    group.finish();
}

criterion_group!(benches, batching);
criterion_main!(benches);
