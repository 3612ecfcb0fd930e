//! The learning loop's commands on bad input, through the binary on the local store: each gets a
//! clear error and changes nothing. (The whole loop, end to end, is scripts/learning-loop-test.sh.)

mod common;

use std::path::Path;
use std::process::{Command, Output};

use tweet_sentiment::log::export::{dataset_blobs, export_labels, ExportError};
use tweet_sentiment::log::{partition_blob, PredictionRecord, PREDICTIONS_PREFIX};
use tweet_sentiment::model::{ModelRef, Role, Sentiment};
use tweet_sentiment::store::fs::FsStore;
use tweet_sentiment::store::BlobStore;

fn cli(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tweet-sentiment"))
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("MODELS_DIR", dir.join("models"))
        .env("DATA_DIR", dir.join("data"))
        .output()
        .unwrap()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn with_fixture_models() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    common::copy_dir(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/models"),
        &dir.path().join("models"),
    );
    std::fs::create_dir_all(dir.path().join("data")).unwrap();
    dir
}

#[test]
fn promoting_a_challenger_that_is_absent_or_broken_is_refused_and_changes_nothing() {
    let dir = with_fixture_models();
    let champion_before = std::fs::read(dir.path().join("models/champion.json")).unwrap();

    let none = cli(dir.path(), &["promote", "--challenger"]);
    assert!(!none.status.success());
    assert!(
        stderr(&none).contains("there is no challenger to promote"),
        "{}",
        stderr(&none)
    );

    // A challenger pointer naming a version that is not in the store, with --force past the
    // missing verdict: the version must still verify and load before anything is flipped.
    std::fs::write(
        dir.path().join("models/challenger.json"),
        br#"{"name":"fixture-nb","version":"404"}"#,
    )
    .unwrap();
    let without_verdict = cli(dir.path(), &["promote", "--challenger"]);
    assert!(!without_verdict.status.success());
    assert!(
        stderr(&without_verdict).contains("no verdict to act on"),
        "{}",
        stderr(&without_verdict)
    );
    let missing = cli(dir.path(), &["promote", "--challenger", "--force"]);
    assert!(!missing.status.success());
    assert!(
        stderr(&missing).contains("the challenger's files do not verify or load"),
        "{}",
        stderr(&missing)
    );
    assert_eq!(
        std::fs::read(dir.path().join("models/champion.json")).unwrap(),
        champion_before
    );
    assert!(dir.path().join("models/challenger.json").exists());
}

fn record(id: u128, minute: i64, text: Option<&str>, label: Option<u8>) -> PredictionRecord {
    PredictionRecord {
        v: 1,
        id: uuid::Uuid::from_u128(id),
        ts: time::macros::datetime!(2026-11-29 10:00 UTC) + time::Duration::minutes(minute),
        model: ModelRef {
            name: "fixture-nb".into(),
            version: "1".into(),
        },
        role: Role::Champion,
        score: 0.3,
        sentiment: Sentiment::Negative,
        latency_ms: 0.1,
        text: text.map(str::to_owned),
        true_label: label,
    }
}

async fn append(store: &dyn BlobStore, records: &[PredictionRecord]) {
    let mut lines = Vec::new();
    for r in records {
        serde_json::to_writer(&mut lines, r).unwrap();
        lines.push(b'\n');
    }
    let blob = partition_blob(PREDICTIONS_PREFIX, records[0].ts, "i1");
    store.append("logs", &blob, lines.into()).await.unwrap();
}

#[tokio::test]
async fn an_export_without_labels_says_why_and_an_interrupted_one_is_redone_identically() {
    let dir = with_fixture_models();
    let store = FsStore::new(
        dir.path().join("data"),
        dir.path().join("models"),
        "models".into(),
    );
    let store: &dyn BlobStore = &store;
    let from = time::macros::datetime!(2026-11-29 10:00 UTC);
    let to = time::macros::datetime!(2026-11-29 11:00 UTC);

    // Nothing in the range with a label and a text: a clear error, nothing written.
    append(
        store,
        &[
            record(1, 1, Some("no label"), None),
            record(2, 2, Some("sha256:ab"), Some(0)),
        ],
    )
    .await;
    match export_labels(store, "logs", "datasets", from, to).await {
        Err(ExportError::NoLabels {
            unlabelled,
            without_text,
            ..
        }) => assert_eq!((unlabelled, without_text), (1, 1)),
        other => panic!("expected NoLabels, got {other:?}"),
    }
    assert!(store.list("datasets", "").await.unwrap().is_empty());
    let output = cli(
        dir.path(),
        &[
            "export-labels",
            "--from",
            "2026-11-29T10:00:00Z",
            "--to",
            "2026-11-29T11:00:00Z",
        ],
    );
    assert!(!output.status.success());
    assert!(
        stderr(&output).contains("no labelled prediction with its text"),
        "{}",
        stderr(&output)
    );

    // Interrupted after the rows, before the manifest: the rerun writes the same rows and the
    // manifest.
    append(store, &[record(3, 3, Some("lost my bag"), Some(0))]).await;
    let first = export_labels(store, "logs", "datasets", from, to)
        .await
        .unwrap();
    let (rows_blob, manifest_blob) = dataset_blobs(from, to);
    std::fs::remove_file(dir.path().join("data/datasets").join(&manifest_blob)).unwrap();
    let again = export_labels(store, "logs", "datasets", from, to)
        .await
        .unwrap();
    assert_eq!(again.rows, first.rows);
    assert_eq!(again.manifest.sha256, first.manifest.sha256);
    assert_eq!(
        store.get("datasets", &manifest_blob).await.unwrap().bytes,
        first.manifest_bytes
    );
    assert_eq!(
        store.get("datasets", &rows_blob).await.unwrap().bytes,
        first.rows
    );

    // A late record in the range changes the dataset: refused, the stored one stays.
    append(store, &[record(4, 4, Some("great crew"), Some(1))]).await;
    assert!(matches!(
        export_labels(store, "logs", "datasets", from, to).await,
        Err(ExportError::Changed(_))
    ));
    assert_eq!(
        store.get("datasets", &rows_blob).await.unwrap().bytes,
        first.rows
    );
}
