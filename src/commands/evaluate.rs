//! `evaluate`: score a labelled file, one tweet at a time as the API does, and print the figures.

use std::path::Path;
use std::time::Instant;

use anyhow::Context;
use serde::Serialize;

use super::{load_champion, load_version_dir};
use crate::config::EvaluateArgs;
use crate::metrics::{ClassMetrics, Confusion};
use crate::model::{Scorer, Sentiment};

#[derive(Debug, Serialize)]
pub struct Evaluation {
    pub model: String,
    pub n: usize,
    pub confusion: Confusion,
    pub accuracy: Option<f64>,
    pub macro_f1: Option<f64>,
    pub positive: ClassMetrics,
    pub negative: ClassMetrics,
    /// Tokenise + score of one tweet (batch 1), in milliseconds.
    pub latency_ms_p50: f64,
    pub latency_ms_p95: f64,
    pub latency_ms_mean: f64,
}

/// Reads `<label>\t<text>` lines; label 1 is positive, 0 negative.
pub fn read_labelled(path: &Path) -> anyhow::Result<Vec<(u8, String)>> {
    let raw =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    raw.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, line)| {
            let (label, text) = line.split_once('\t').with_context(|| {
                format!("{}:{}: expected <label>\\t<text>", path.display(), i + 1)
            })?;
            let label = match label.trim() {
                "0" => 0,
                "1" => 1,
                other => anyhow::bail!(
                    "{}:{}: label {other:?} is not 0 or 1",
                    path.display(),
                    i + 1
                ),
            };
            Ok((label, text.to_owned()))
        })
        .collect()
}

fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = (q * (sorted.len() - 1) as f64).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

pub fn evaluate(scorer: &Scorer, labelled: &[(u8, String)]) -> anyhow::Result<Evaluation> {
    let manifest = scorer.manifest();
    let mut confusion = Confusion::default();
    let mut latencies = Vec::with_capacity(labelled.len());
    for (label, text) in labelled {
        let started = Instant::now();
        let score = scorer.score(&[text.as_str()])?[0];
        latencies.push(started.elapsed().as_secs_f64() * 1e3);
        confusion.record(*label, manifest.sentiment(score) == Sentiment::Positive);
    }
    let mean = latencies.iter().sum::<f64>() / latencies.len().max(1) as f64;
    latencies.sort_by(f64::total_cmp);
    Ok(Evaluation {
        model: manifest.model_ref().to_string(),
        n: labelled.len(),
        accuracy: confusion.accuracy(),
        macro_f1: confusion.macro_f1(),
        positive: confusion.positive(),
        negative: confusion.negative(),
        confusion,
        latency_ms_p50: percentile(&latencies, 0.50),
        latency_ms_p95: percentile(&latencies, 0.95),
        latency_ms_mean: mean,
    })
}

pub async fn run(args: EvaluateArgs) -> anyhow::Result<()> {
    let labelled = read_labelled(&args.input)?;
    let scorer = match &args.version_dir {
        Some(dir) => load_version_dir(dir)?,
        None => {
            let store = args.store.open()?;
            load_champion(store.as_ref(), &args.store.models_container)
                .await?
                .1
        }
    };
    let evaluation = tokio::task::spawn_blocking(move || evaluate(&scorer, &labelled)).await??;
    if args.json {
        println!("{}", serde_json::to_string(&evaluation)?);
    } else {
        let fmt = |v: Option<f64>| v.map_or("n/a".to_owned(), |v| format!("{v:.4}"));
        println!("model      {}", evaluation.model);
        println!("tweets     {}", evaluation.n);
        println!("accuracy   {}", fmt(evaluation.accuracy));
        println!("macro-F1   {}", fmt(evaluation.macro_f1));
        for (name, c) in [
            ("positive", &evaluation.positive),
            ("negative", &evaluation.negative),
        ] {
            println!(
                "{name:<10} precision {} recall {} F1 {} (support {})",
                fmt(c.precision),
                fmt(c.recall),
                fmt(c.f1),
                c.support
            );
        }
        println!(
            "latency    p50 {:.3} ms, p95 {:.3} ms (one tweet at a time)",
            evaluation.latency_ms_p50, evaluation.latency_ms_p95
        );
    }
    Ok(())
}
