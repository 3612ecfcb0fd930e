//! `export-labels`: the labelled predictions of a time range, from the log to a dataset in the
//! datasets container (and optionally a local folder, for training).

use anyhow::Context;
use time::OffsetDateTime;

use crate::config::ExportLabelsArgs;
use crate::log::export::{dataset_blobs, export_labels};

pub async fn run(args: ExportLabelsArgs) -> anyhow::Result<()> {
    let store = args.store.open()?;
    let to = args.to.unwrap_or_else(|| {
        OffsetDateTime::now_utc()
            .replace_nanosecond(0)
            .expect("zero nanoseconds is valid")
    });
    let from = args
        .from
        .unwrap_or(to - time::Duration::days(i64::from(args.days)));
    let export = export_labels(
        store.as_ref(),
        &args.store.logs_container,
        &args.store.datasets_container,
        from,
        to,
    )
    .await?;
    let m = &export.manifest;
    let rfc3339 = |ts: OffsetDateTime| {
        ts.format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default()
    };
    let (rows_blob, manifest_blob) = dataset_blobs(from, to);
    let datasets = &args.store.datasets_container;
    println!(
        "{} {} labelled tweets ({} negative, {} positive) from {} predictions of {} to {}",
        if export.written {
            "exported"
        } else {
            "already exported, identical:"
        },
        m.rows,
        m.per_class.negative,
        m.per_class.positive,
        m.rows + m.skipped.text_sha256 + m.skipped.text_none + m.unlabelled,
        rfc3339(from),
        rfc3339(to)
    );
    if m.skipped.text_sha256 + m.skipped.text_none > 0 {
        println!(
            "skipped {} labelled predictions logged without their text: {} with LOG_TEXT=sha256, {} with LOG_TEXT=none (only LOG_TEXT=full keeps what training needs)",
            m.skipped.text_sha256 + m.skipped.text_none,
            m.skipped.text_sha256,
            m.skipped.text_none
        );
    }
    println!("{} unlabelled predictions left out", m.unlabelled);
    println!("rows     {}", store.locate(datasets, &rows_blob));
    println!("manifest {}", store.locate(datasets, &manifest_blob));
    println!("{}", m.sha256);
    if let Some(dir) = &args.out {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        for (blob, bytes) in [
            (&rows_blob, &export.rows),
            (&manifest_blob, &export.manifest_bytes),
        ] {
            let file = dir.join(blob.rsplit('/').next().unwrap_or(blob));
            std::fs::write(&file, bytes).with_context(|| format!("writing {}", file.display()))?;
            println!("copied to {}", file.display());
        }
    }
    Ok(())
}
