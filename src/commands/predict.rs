//! `predict`: score texts locally with the champion or a version folder.

use std::io::BufRead;

use serde::Serialize;

use super::{load_champion, load_version_dir};
use crate::config::PredictArgs;
use crate::service;
use crate::store;

#[derive(Serialize)]
struct Line<'a> {
    text: &'a str,
    score: f32,
    sentiment: &'static str,
    model: String,
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
    for chunk in texts.chunks(service::MAX_BATCH) {
        service::validate(chunk, None)?;
    }
    let scorer = match &args.version_dir {
        Some(dir) => load_version_dir(dir)?,
        None => {
            let store = store::from_args(&args.store)?;
            load_champion(store.as_ref(), &args.store.models_container)
                .await?
                .1
        }
    };
    let manifest = scorer.manifest();
    let model = format!("{}/{}", manifest.name, manifest.version);
    let mut lines = Vec::with_capacity(texts.len());
    for chunk in texts.chunks(service::MAX_BATCH) {
        let refs: Vec<&str> = chunk.iter().map(String::as_str).collect();
        for (text, score) in chunk.iter().zip(scorer.score(&refs)?) {
            lines.push(Line {
                text,
                score,
                sentiment: if score >= manifest.threshold {
                    "positive"
                } else {
                    "negative"
                },
                model: model.clone(),
            });
        }
    }
    if args.json {
        for line in &lines {
            println!("{}", serde_json::to_string(line)?);
        }
    } else {
        println!("{:<9} {:>6}  text   (model {model})", "sentiment", "score");
        for line in &lines {
            println!("{:<9} {:>6.3}  {}", line.sentiment, line.score, line.text);
        }
    }
    Ok(())
}
