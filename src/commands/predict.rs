//! `predict`: score texts locally with the champion or a version folder, or with a running app
//! (`--url`). Texts come from the arguments, else from stdin, one tweet per line.

use std::io::BufRead;

use serde::Serialize;

use super::remote::ApiClient;
use super::{load_champion, load_version_dir};
use crate::config::PredictArgs;
use crate::model::{ModelRef, Sentiment};
use crate::service;

/// One scored text, as printed.
#[derive(Serialize)]
struct Line<'a> {
    text: &'a str,
    /// The prediction id, when an app scored it (it is what feedback refers to).
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<uuid::Uuid>,
    score: f32,
    sentiment: Sentiment,
    model: ModelRef,
    #[serde(skip_serializing_if = "Option::is_none")]
    latency_ms: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    true_label: Option<u8>,
}

pub async fn run(args: PredictArgs) -> anyhow::Result<()> {
    let texts = if args.texts.is_empty() {
        std::io::stdin()
            .lock()
            .lines()
            .collect::<Result<Vec<_>, _>>()?
            .into_iter()
            .filter(|l| !l.trim().is_empty())
            .collect()
    } else {
        args.texts.clone()
    };
    if args.label.is_some() && texts.len() != 1 {
        anyhow::bail!(
            "--label goes with a single text, got {}; label texts one at a time",
            texts.len()
        );
    }
    // The API's own rules, checked before anything is scored or sent, so that a bad line
    // half-way through a file does not leave half the file scored.
    for chunk in texts.chunks(service::MAX_BATCH) {
        service::validate(chunk, args.label)?;
    }
    let lines = match &args.url {
        Some(url) => score_remotely(&args, url, &texts).await?,
        None => score_locally(&args, &texts).await?,
    };
    print_lines(&lines, args.json)
}

async fn score_locally<'a>(
    args: &PredictArgs,
    texts: &'a [String],
) -> anyhow::Result<Vec<Line<'a>>> {
    let scorer = match &args.version_dir {
        Some(dir) => load_version_dir(dir)?,
        None => {
            let store = args.store.open()?;
            load_champion(store.as_ref(), &args.store.models_container)
                .await?
                .1
        }
    };
    let manifest = scorer.manifest();
    let model = manifest.model_ref();
    let mut lines = Vec::with_capacity(texts.len());
    for chunk in texts.chunks(service::MAX_BATCH) {
        let refs: Vec<&str> = chunk.iter().map(String::as_str).collect();
        for (text, score) in chunk.iter().zip(scorer.score(&refs)?) {
            lines.push(Line {
                text,
                id: None,
                score,
                sentiment: manifest.sentiment(score),
                model: model.clone(),
                latency_ms: None,
                true_label: None,
            });
        }
    }
    Ok(lines)
}

async fn score_remotely<'a>(
    args: &PredictArgs,
    url: &url::Url,
    texts: &'a [String],
) -> anyhow::Result<Vec<Line<'a>>> {
    let client = ApiClient::new(url, args.key.as_ref())?;
    let predictions = if let [text] = texts {
        vec![client.predict_one(text, args.label).await?]
    } else {
        let mut predictions = Vec::with_capacity(texts.len());
        for chunk in texts.chunks(service::MAX_BATCH) {
            predictions.extend(client.predict_batch(chunk).await?);
        }
        predictions
    };
    Ok(texts
        .iter()
        .zip(predictions)
        .map(|(text, p)| Line {
            text,
            id: Some(p.id),
            score: p.score,
            sentiment: p.sentiment,
            model: p.model,
            latency_ms: Some(p.latency_ms),
            true_label: args.label,
        })
        .collect())
}

fn print_lines(lines: &[Line<'_>], json: bool) -> anyhow::Result<()> {
    if json {
        for line in lines {
            println!("{}", serde_json::to_string(line)?);
        }
        return Ok(());
    }
    let model_width = lines
        .iter()
        .map(|l| l.model.name.len() + 1 + l.model.version.len())
        .chain(["model".len()])
        .max()
        .unwrap_or_default();
    let with_ids = lines.iter().any(|l| l.id.is_some());
    let id_header = if with_ids {
        format!("{:<36}  ", "id")
    } else {
        String::new()
    };
    println!(
        "{:<9}  {:>6}  {:<model_width$}  {id_header}text",
        "sentiment", "score", "model"
    );
    for line in lines {
        let model = format!("{}/{}", line.model.name, line.model.version);
        let id = line.id.map(|id| format!("{id:<36}  ")).unwrap_or_default();
        // One row per text: line breaks inside a text would break the table.
        let text = line.text.replace(['\n', '\r'], " ");
        println!(
            "{:<9}  {:>6.3}  {model:<model_width$}  {id}{text}",
            line.sentiment, line.score
        );
    }
    Ok(())
}
