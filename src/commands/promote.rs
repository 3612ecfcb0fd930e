//! `promote`: upload a model version, prove it loads and scores from the store, gate it against
//! the champion, then point `champion.json` at it (or `challenger.json`, with `--as challenger`,
//! so that it scores in shadow first). `promote --challenger` makes the current challenger the
//! champion once the latest report's paired verdict says `promote`.
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
use crate::config::{PromoteArgs, PromoteTarget};
use crate::metrics::run::LATEST_JSON;
use crate::metrics::{Decision, Report};
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
    if args.challenger {
        return promote_challenger(&args).await;
    }
    let Some(version_dir) = args.version_dir.clone() else {
        bail!("give a model version folder to promote, or --challenger to promote the current challenger");
    };
    let role = match args.target {
        PromoteTarget::Champion => Role::Champion,
        PromoteTarget::Challenger => Role::Challenger,
    };
    let store = args.store.open()?;
    let container = args.store.models_container.as_str();
    let dir = version_dir.clone();

    let candidate = tokio::task::spawn_blocking(move || load_version_dir(&dir))
        .await?
        .context("the candidate does not load")?;
    let manifest = candidate.manifest().clone();
    let version = manifest.model_ref();
    println!("candidate {version} verified and scored locally");

    // Read the pointer before anything else: the final flip is conditional on this tag.
    let pointer_etag = store.etag(container, role.pointer()).await?;
    let champion_exists = match role {
        Role::Champion => pointer_etag.is_some(),
        Role::Challenger => store
            .etag(container, Role::Champion.pointer())
            .await?
            .is_some(),
    };

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
        if champion_exists {
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
        upload_file(store.as_ref(), container, &version, &version_dir, file).await?;
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
        .put(container, role.pointer(), Bytes::from(pointer), condition)
        .await
    {
        Ok(_) => {
            match role {
                Role::Champion => println!("champion is now {version}"),
                Role::Challenger => println!(
                    "challenger is now {version}: it scores in shadow, and the report compares it with the champion"
                ),
            }
            Ok(())
        }
        Err(StoreError::ConditionFailed { .. }) => {
            bail!(
                "{} changed while promoting; nothing was flipped, run promote again",
                role.pointer()
            )
        }
        Err(e) => Err(e.into()),
    }
}

/// Makes the challenger the champion, on the latest report's paired verdict (or `--force`), and
/// retires the challenger pointer. `challenger.json` is checked against the tag read at the start
/// just before `champion.json` is written, and `champion.json` is written only if its own tag is
/// unchanged: a pointer moved before the flip means nothing is flipped. The retirement is a delete
/// conditional on the challenger's tag, so a new challenger published in the instant between the
/// two writes stays in place.
async fn promote_challenger(args: &PromoteArgs) -> anyhow::Result<()> {
    let store = args.store.open()?;
    let container = args.store.models_container.as_str();
    let challenger_blob = match store.get(container, Role::Challenger.pointer()).await {
        Ok(blob) => blob,
        Err(StoreError::NotFound { .. }) => {
            bail!("there is no challenger to promote: publish one with `promote --as challenger <version folder>`")
        }
        Err(e) => return Err(e.into()),
    };
    let challenger = ModelRef::parse(&challenger_blob.bytes)?;
    let champion_blob = match store.get(container, Role::Champion.pointer()).await {
        Ok(blob) => Some(blob),
        Err(StoreError::NotFound { .. }) => None,
        Err(e) => return Err(e.into()),
    };
    let champion = champion_blob
        .as_ref()
        .map(|b| ModelRef::parse(&b.bytes))
        .transpose()?;

    let verdict = latest_verdict(store.as_ref(), &args.store.reports_container).await;
    let current = champion.as_ref().map(ToString::to_string);
    let refusal = match &verdict {
        Err(e) => Some(format!("no verdict to act on: {e}")),
        Ok(None) => Some("the latest report has no challenger verdict".to_owned()),
        Ok(Some(v)) if v.challenger != challenger.to_string() || Some(&v.champion) != current.as_ref() => Some(format!(
            "the latest verdict compares {} with {}, but the pointers now name {} and {}; wait for the next report",
            v.champion,
            v.challenger,
            current.as_deref().unwrap_or("no champion"),
            challenger
        )),
        Ok(Some(v)) if v.verdict != Decision::Promote => Some(format!(
            "the latest verdict is `{}`: {}",
            v.verdict.as_str(),
            v.reason
        )),
        Ok(Some(_)) => None,
    };
    match (&refusal, args.force) {
        (Some(why), false) => {
            bail!("not promoting {challenger}: {why}; use --force to promote anyway")
        }
        (Some(why), true) => println!("promoting {challenger} anyway (--force): {why}"),
        (None, _) => {
            if let Ok(Some(v)) = &verdict {
                println!(
                    "verdict: promote ({} paired labelled tweets, macro-F1 {:.4} → {:.4}, McNemar p {:.2e})",
                    v.labelled,
                    v.champion_macro_f1.unwrap_or(0.0),
                    v.challenger_macro_f1.unwrap_or(0.0),
                    v.mcnemar_p.unwrap_or(1.0)
                );
            }
        }
    }

    registry::load_version(store.as_ref(), container, &challenger)
        .await
        .context("the challenger's files do not verify or load")?;
    // The challenger pointer must still be the one the verdict was about.
    if store.etag(container, Role::Challenger.pointer()).await?
        != Some(challenger_blob.etag.clone())
    {
        bail!("challenger.json changed while promoting; nothing was flipped, run promote again");
    }
    let condition = match &champion_blob {
        Some(blob) => WriteCondition::IfMatch(blob.etag.clone()),
        None => WriteCondition::IfAbsent,
    };
    match store
        .put(
            container,
            Role::Champion.pointer(),
            Bytes::from(serde_json::to_vec(&challenger)?),
            condition,
        )
        .await
    {
        Ok(_) => println!("champion is now {challenger}"),
        Err(StoreError::ConditionFailed { .. }) => {
            bail!("champion.json changed while promoting; nothing was flipped, run promote again")
        }
        Err(e) => return Err(e.into()),
    }
    match store
        .delete_if_match(container, Role::Challenger.pointer(), &challenger_blob.etag)
        .await
    {
        Ok(()) | Err(StoreError::NotFound { .. }) => {
            println!("challenger pointer retired");
            Ok(())
        }
        Err(StoreError::ConditionFailed { .. }) => {
            println!("challenger.json was changed meanwhile (a new challenger); it stays");
            Ok(())
        }
        Err(e) => Err(anyhow::Error::from(e)
            .context("the champion was promoted, but challenger.json could not be retired")),
    }
}

/// The challenger verdict of the latest report, if the report has one.
async fn latest_verdict(
    store: &dyn BlobStore,
    reports_container: &str,
) -> anyhow::Result<Option<crate::metrics::ChallengerVerdict>> {
    let blob = match store.get(reports_container, LATEST_JSON).await {
        Ok(blob) => blob,
        Err(StoreError::NotFound { .. }) => bail!("no metrics report has been written yet"),
        Err(e) => return Err(e.into()),
    };
    let report: Report = serde_json::from_slice(&blob.bytes).context("the latest report")?;
    Ok(report.challenger)
}
