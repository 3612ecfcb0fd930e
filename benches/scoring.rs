//! Tokenise + score, batch 1 and batch 32, for each model version: the fixtures of every kind, and
//! every real version committed under `models/`.
//!
//!   cargo bench --bench scoring

use std::path::{Path, PathBuf};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use tweet_sentiment::commands::load_version_dir;

const TWEETS: [&str; 8] = [
    "@united thanks for the upgrade, the crew was great :)",
    "Flight delayed AGAIN. 3 hours on the tarmac and no info!!! #fail",
    "lost my bag in CDG, nobody answers the phone http://t.co/xyz",
    "is it me or are the seats getting smaller every year?",
    "Best landing ever, kudos to the pilot",
    "not sure how I feel about the new menu &amp; the prices",
    "worst customer service I have ever had, never again",
    "on my way to Nice ✈️ so excited",
];

/// `<dir>/<name>/<version>/manifest.json` folders under a models directory.
fn versions(models: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let Ok(names) = std::fs::read_dir(models) else {
        return found;
    };
    for name in names.flatten().filter(|e| e.path().is_dir()) {
        for version in std::fs::read_dir(name.path())
            .into_iter()
            .flatten()
            .flatten()
        {
            if version.path().join("manifest.json").is_file() {
                found.push(version.path());
            }
        }
    }
    found.sort();
    found
}

fn scoring(c: &mut Criterion) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut dirs = versions(&root.join("tests/fixtures/models"));
    dirs.extend(versions(&root.join("models")));
    let batch32: Vec<&str> = TWEETS.iter().cycle().take(32).copied().collect();
    for dir in dirs {
        let scorer = load_version_dir(&dir).expect("a committed version loads");
        let label = format!("{}/{}", scorer.manifest().name, scorer.manifest().version);
        let mut group = c.benchmark_group(label);
        for batch in [&batch32[..1], &batch32[..]] {
            group.throughput(Throughput::Elements(batch.len() as u64));
            group.bench_with_input(BenchmarkId::new("batch", batch.len()), batch, |b, texts| {
                b.iter(|| scorer.score(texts).unwrap())
            });
        }
        group.finish();
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20).warm_up_time(std::time::Duration::from_millis(500)).measurement_time(std::time::Duration::from_secs(2));
    targets = scoring
}
criterion_main!(benches);
