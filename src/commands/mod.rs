//! The command-line verbs. `serve` is the default.

pub mod evaluate;
pub mod export_labels;
pub mod predict;
pub mod promote;
pub mod remote;
pub mod report;
pub mod serve;

use std::path::Path;
use std::process::ExitCode;

use crate::config::{Cli, Command, LogFormat};
use crate::model::manifest::{Manifest, MANIFEST_FILE, MODEL_FILE, TOKENIZER_FILE};
use crate::model::{registry, ModelRef, Role, Scorer};
use crate::store::BlobStore;
use crate::telemetry;

pub async fn run(cli: Cli) -> ExitCode {
    let result = match cli.command {
        None => {
            telemetry::init(cli.serve.logging.log_format, telemetry::Sink::Stdout);
            serve::run(cli.serve).await
        }
        Some(Command::Serve(args)) => {
            telemetry::init(args.logging.log_format, telemetry::Sink::Stdout);
            serve::run(args).await
        }
        Some(command) => {
            // One-shot commands print their answer on stdout; their logs go to stderr, so that
            // `predict --json` and `report --json` stay machine-readable.
            telemetry::init(LogFormat::Pretty, telemetry::Sink::Stderr);
            match command {
                Command::Predict(args) => predict::run(args).await,
                Command::Evaluate(args) => evaluate::run(args).await,
                Command::Promote(args) => promote::run(args).await,
                Command::Report(args) => report::run(args).await,
                Command::ExportLabels(args) => export_labels::run(args).await,
                Command::Serve(_) => unreachable!("handled above"),
            }
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// Loads a model version from a local folder, verifying it like the registry does.
pub fn load_version_dir(dir: &Path) -> anyhow::Result<Scorer> {
    let read = |file: &str| {
        std::fs::read(dir.join(file))
            .map_err(|e| anyhow::anyhow!("reading {}: {e}", dir.join(file).display()))
    };
    let manifest = Manifest::parse(&read(MANIFEST_FILE)?)?;
    Ok(Scorer::load(
        manifest,
        &read(TOKENIZER_FILE)?,
        &read(MODEL_FILE)?,
    )?)
}

/// Loads the champion named by the store's pointer.
pub async fn load_champion(
    store: &dyn BlobStore,
    container: &str,
) -> anyhow::Result<(ModelRef, Scorer)> {
    let pointer = store.get(container, Role::Champion.pointer()).await?;
    let champion = ModelRef::parse(&pointer.bytes)?;
    let scorer = registry::load_version(store, container, &champion).await?;
    Ok((champion, scorer))
}
