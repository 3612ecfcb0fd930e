//! `promote`: upload a model version, prove it loads and scores from the store, gate it against
//! the champion, then point `champion.json` at it.
//!
//! Order matters for running instances: the files go up first and the manifest last, so a
//! version folder with a manifest is always complete; the pointer moves only after the uploaded
//! copy was read back, verified and run; and it moves only if nobody moved it since we looked
//! (ETag precondition), so two promotions cannot silently overwrite each other.

use std::path::Path;

use anyhow::{bail, Context};
use bytes::Bytes;

use super::evaluate::{evaluate, read_labelled};
use super::{load_champion, load_version_dir};
use crate::config::PromoteArgs;
use crate::model::manifest::{MANIFEST_FILE, MODEL_FILE, TOKENIZER_FILE};
use crate::model::{registry, ModelRef, Role};
use crate::store::{BlobStore, StoreError, WriteCondition};

/// Uploads one file of a version. Versions are immutable: an existing blob is accepted only if it
/// is byte-for-byte what we would upload (a resumed promotion).
async fn upload_file(
    store: &dyn BlobStore,
    container: &str,
    version: &ModelRef,
    dir: &Path,
    file: &str,
) -> anyhow::Result<()> {
    let bytes = Bytes::from(std::fs::read(dir.join(file))?);
    let blob = version.blob(file);
    match store
        .put(container, &blob, bytes.clone(), WriteCondition::IfAbsent)
        .await
    {
        Ok(_) => Ok(()),
        Err(StoreError::ConditionFailed { .. }) => {
            let existing = store.get(container, &blob).await?;
            if existing.bytes == bytes {
                Ok(())
            } else {
                bail!("{container}/{blob} already exists with other content; versions are immutable, pick a new version")
            }
        }
        Err(e) => Err(e.into()),
    }
}

pub async fn run(args: PromoteArgs) -> anyhow::Result<()> {
    let store = args.store.open()?;
    let container = args.store.models_container.as_str();
    let dir = args.version_dir.clone();

    let candidate = tokio::task::spawn_blocking(move || load_version_dir(&dir))
        .await?
        .context("the candidate does not load")?;
    let manifest = candidate.manifest().clone();
    let version = manifest.model_ref();
    println!("candidate {version} verified and scored locally");

    // Read the pointer before anything else: the final flip is conditional on this tag.
    let pointer_etag = store.etag(container, Role::Champion.pointer()).await?;

    if let Some(gate_set) = &args.gate_set {
        let labelled = read_labelled(gate_set)?;
        let candidate_eval = {
            let labelled = labelled.clone();
            tokio::task::spawn_blocking(move || evaluate(&candidate, &labelled)).await??
        };
        println!(
            "gate: candidate macro-F1 {:.4} on {} tweets",
            candidate_eval.macro_f1.unwrap_or(0.0),
            candidate_eval.n
        );
        if pointer_etag.is_some() {
            let (current, scorer) = load_champion(store.as_ref(), container).await?;
            let current_eval =
                tokio::task::spawn_blocking(move || evaluate(&scorer, &labelled)).await??;
            println!(
                "gate: champion {current} macro-F1 {:.4}",
                current_eval.macro_f1.unwrap_or(0.0)
            );
            if candidate_eval.macro_f1 < current_eval.macro_f1 {
                if args.force {
                    println!("gate: candidate is worse, promoting anyway (--force)");
                } else {
                    bail!("the candidate scores a lower macro-F1 than the champion on the gate set; use --force to promote anyway");
                }
            }
        }
    }

    for file in [MODEL_FILE, TOKENIZER_FILE, MANIFEST_FILE] {
        upload_file(store.as_ref(), container, &version, &args.version_dir, file).await?;
    }
    println!("uploaded {container}/{version}/ (manifest last)");

    registry::load_version(store.as_ref(), container, &version)
        .await
        .context("the uploaded copy does not verify or load")?;
    println!("uploaded copy verified and scored");

    let pointer = serde_json::to_vec(&version)?;
    let condition = match pointer_etag {
        Some(etag) => WriteCondition::IfMatch(etag),
        None => WriteCondition::IfAbsent,
    };
    match store
        .put(
            container,
            Role::Champion.pointer(),
            Bytes::from(pointer),
            condition,
        )
        .await
    {
        Ok(_) => {
            println!("champion is now {version}");
            Ok(())
        }
        Err(StoreError::ConditionFailed { .. }) => {
            bail!("champion.json changed while promoting; nothing was flipped, run promote again")
        }
        Err(e) => Err(e.into()),
    }
}
