//! Against Azurite (started by scripts/test.sh, which sets AZURITE_CONNECTION_STRING): the Azure
//! store's contract, and promotion plus hot swap through the real binary.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::{fixture_version_dir, version_copy, Handler};
use tweet_sentiment::store::azure::AzureStore;
use tweet_sentiment::store::connection_string::ConnectionString;
use tweet_sentiment::store::{BlobStore, WriteCondition};

fn connection_string() -> String {
    std::env::var("AZURITE_CONNECTION_STRING")
        .expect("AZURITE_CONNECTION_STRING is set by scripts/test.sh, which starts Azurite")
}

fn store() -> AzureStore {
    let cs = ConnectionString::parse(&connection_string()).unwrap();
    AzureStore::with_account_key(cs, Duration::from_secs(10)).unwrap()
}

/// A container name of its own per test, so tests do not see each other's blobs.
fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", uuid::Uuid::now_v7().simple())
}

fn promote(container: &str, version_dir: &std::path::Path, extra: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_tweet-sentiment"))
        .arg("promote")
        .arg(version_dir)
        .args(extra)
        .env("STORAGE_CONNECTION_STRING", connection_string())
        .env("MODELS_CONTAINER", container)
        .output()
        .unwrap()
}

#[tokio::test]
#[ignore = "needs Azurite: run scripts/test.sh"]
async fn azure_store_honours_the_store_contract() {
    common::exercise_store(&store(), &unique("conformance")).await;
}

#[tokio::test]
#[ignore = "needs Azurite: run scripts/test.sh"]
async fn promote_hot_swap_and_refusal_of_a_corrupted_version() {
    let container = unique("models");
    let out = promote(&container, &fixture_version_dir("fixture-nb"), &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let poll_seconds = 1;
    let mut handler = Handler::start(&[
        ("STORAGE_CONNECTION_STRING", &connection_string()),
        ("MODELS_CONTAINER", &container),
        ("MODEL_POLL_SECONDS", &poll_seconds.to_string()),
    ]);
    let client = reqwest::Client::new();
    handler.wait_ready(&client).await;
    handler
        .wait_health(&client, Duration::from_secs(30), |h| {
            h["model"]["name"] == "fixture-nb"
        })
        .await;

    // Promote another version: every instance picks it up within one poll interval.
    let out = promote(&container, &fixture_version_dir("fixture-transformer"), &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let flipped = Instant::now();
    handler
        .wait_health(&client, Duration::from_secs(10), |h| {
            h["model"]["name"] == "fixture-transformer"
        })
        .await;
    let waited = flipped.elapsed();
    // One interval, plus the load itself and this test's own polling granularity.
    assert!(
        waited < Duration::from_secs(poll_seconds) + Duration::from_secs(2),
        "swap took {waited:?}"
    );

    // A corrupted model.onnx uploaded behind promote's back is refused; the old version serves on.
    let store = store();
    let dir = tempfile::tempdir().unwrap();
    let bad = version_copy("fixture-lstm", "9", dir.path());
    let mut model = std::fs::read(bad.join("model.onnx")).unwrap();
    model[20] ^= 0x5a;
    for (file, bytes) in [
        ("model.onnx", model),
        (
            "tokenizer.json",
            std::fs::read(bad.join("tokenizer.json")).unwrap(),
        ),
        (
            "manifest.json",
            std::fs::read(bad.join("manifest.json")).unwrap(),
        ),
    ] {
        store
            .put(
                &container,
                &format!("fixture-lstm/9/{file}"),
                Bytes::from(bytes),
                WriteCondition::Always,
            )
            .await
            .unwrap();
    }
    store
        .put(
            &container,
            "champion.json",
            Bytes::from_static(br#"{"name":"fixture-lstm","version":"9"}"#),
            WriteCondition::Always,
        )
        .await
        .unwrap();
    let health = handler
        .wait_health(&client, Duration::from_secs(10), |h| {
            !h["last_model_error"].is_null()
        })
        .await;
    assert_eq!(health["model"]["name"], "fixture-transformer", "{health}");
    assert!(
        health["last_model_error"]
            .as_str()
            .unwrap()
            .contains("sha256"),
        "{health}"
    );
    let r = client
        .post(handler.url("/api/predict"))
        .header("content-type", "application/json")
        .body(r#"{"text":"I love this flight"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["model"]["name"], "fixture-transformer");

    // Promote refuses to overwrite a version with other content: versions are immutable.
    let out = promote(&container, &bad, &[]);
    assert!(
        !out.status.success(),
        "a corrupted local version must not be promoted"
    );

    assert!(handler.terminate().success());
    // No secret reaches the logs.
    let log = handler.log.join("\n");
    assert!(!log.contains("sig="), "a SAS signature was logged");
    let key = ConnectionString::parse(&connection_string())
        .unwrap()
        .account_key;
    assert!(!log.contains(&key), "the account key was logged");
}

#[tokio::test]
#[ignore = "needs Azurite: run scripts/test.sh"]
async fn promote_gate_refuses_a_worse_model_unless_forced() {
    let container = unique("gate");
    let dir = tempfile::tempdir().unwrap();
    // The NB fixture gets both right; the transformer fixture, whose bias leans negative on
    // neutral words, misses the second.
    let gate = dir.path().join("gate.tsv");
    std::fs::write(
        &gate,
        "1\tI love this flight :)\n1\tthe crew\n0\tI hate this flight :(\n",
    )
    .unwrap();
    let nb =
        tweet_sentiment::commands::load_version_dir(&fixture_version_dir("fixture-nb")).unwrap();
    let tr =
        tweet_sentiment::commands::load_version_dir(&fixture_version_dir("fixture-transformer"))
            .unwrap();
    let labelled = tweet_sentiment::commands::evaluate::read_labelled(&gate).unwrap();
    let nb_f1 = tweet_sentiment::commands::evaluate::evaluate(&nb, &labelled)
        .unwrap()
        .macro_f1;
    let tr_f1 = tweet_sentiment::commands::evaluate::evaluate(&tr, &labelled)
        .unwrap()
        .macro_f1;
    assert!(
        tr_f1 < nb_f1,
        "the gate set must separate the fixtures: {tr_f1:?} vs {nb_f1:?}"
    );

    let gate_arg = gate.to_str().unwrap();
    let out = promote(
        &container,
        &fixture_version_dir("fixture-nb"),
        &["--gate-set", gate_arg],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = promote(
        &container,
        &fixture_version_dir("fixture-transformer"),
        &["--gate-set", gate_arg],
    );
    assert!(!out.status.success(), "a worse candidate must be refused");
    let pointer = store().get(&container, "champion.json").await.unwrap();
    assert!(String::from_utf8_lossy(&pointer.bytes).contains("fixture-nb"));
    let out = promote(
        &container,
        &fixture_version_dir("fixture-transformer"),
        &["--gate-set", gate_arg, "--force"],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let pointer = store().get(&container, "champion.json").await.unwrap();
    assert!(String::from_utf8_lossy(&pointer.bytes).contains("fixture-transformer"));
}

#[tokio::test]
#[ignore = "needs Azurite: run scripts/test.sh"]
async fn sixteen_concurrent_writers_on_azurite() {
    let store: std::sync::Arc<dyn BlobStore> = std::sync::Arc::new(store());
    common::concurrent_writers(store, &unique("logs")).await;
}

/// An Azurite of this test's own, on disk, that the test can stop and start again.
struct PrivateAzurite {
    child: std::process::Child,
    port: u16,
    dir: std::path::PathBuf,
}

impl PrivateAzurite {
    fn start(port: u16, dir: &std::path::Path) -> PrivateAzurite {
        let bin =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("node_modules/.bin/azurite-blob");
        let child = Command::new(bin)
            .args(["--blobHost", "127.0.0.1", "--blobPort", &port.to_string()])
            .args([
                "--disableTelemetry",
                "--skipApiVersionCheck",
                "--silent",
                "--location",
            ])
            .arg(dir)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("node_modules/.bin/azurite-blob (npm ci)");
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "private Azurite did not start");
            std::thread::sleep(Duration::from_millis(100));
        }
        PrivateAzurite {
            child,
            port,
            dir: dir.to_owned(),
        }
    }

    /// SIGTERM, so that Azurite saves its metadata before it exits (SIGKILL loses the last
    /// few seconds of writes, which is Azurite's behaviour, not the product's).
    fn stop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = Command::new("kill")
                .args(["-TERM", &self.child.id().to_string()])
                .status();
            let deadline = Instant::now() + Duration::from_secs(10);
            while matches!(self.child.try_wait(), Ok(None)) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }

    fn restart(&mut self) {
        self.stop();
        *self = PrivateAzurite::start(self.port, &self.dir.clone());
    }

    fn connection_string(&self) -> String {
        let key = ConnectionString::parse(&connection_string())
            .unwrap()
            .account_key;
        format!(
            "AccountName=devstoreaccount1;AccountKey={key};BlobEndpoint=http://127.0.0.1:{}/devstoreaccount1",
            self.port
        )
    }
}

impl Drop for PrivateAzurite {
    fn drop(&mut self) {
        self.stop();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A private Azurite with the Naive Bayes fixture promoted, and the handler serving from it with a
/// 2 s storage timeout, appends every 100 ms and no report timer. Returns the connection string too.
async fn serving_from_private_azurite(
    dir: &std::path::Path,
) -> (PrivateAzurite, Handler, reqwest::Client, String) {
    let azurite = PrivateAzurite::start(free_port(), dir);
    let cs = azurite.connection_string();
    let container = unique("models");
    let out = Command::new(env!("CARGO_BIN_EXE_tweet-sentiment"))
        .arg("promote")
        .arg(fixture_version_dir("fixture-nb"))
        .env("STORAGE_CONNECTION_STRING", &cs)
        .env("MODELS_CONTAINER", &container)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let handler = Handler::start(&[
        ("STORAGE_CONNECTION_STRING", &cs),
        ("MODELS_CONTAINER", &container),
        ("STORAGE_TIMEOUT_SECONDS", "2"),
        ("LOG_BATCH_MILLISECONDS", "100"),
        ("REPORT_TIMER", "never"),
    ]);
    let client = reqwest::Client::new();
    handler.wait_ready(&client).await;
    handler
        .wait_health(&client, Duration::from_secs(30), |h| h["status"] == "ok")
        .await;
    (azurite, handler, client, cs)
}

#[tokio::test]
#[ignore = "needs Azurite: run scripts/test.sh"]
async fn storage_outage_feedback_is_refused_and_predictions_wait() {
    let dir = tempfile::tempdir().unwrap();
    let (mut azurite, mut handler, client, cs) = serving_from_private_azurite(dir.path()).await;
    let predict = |text: &'static str| {
        let client = client.clone();
        let url = handler.url("/api/predict");
        async move {
            let r = client
                .post(url)
                .json(&serde_json::json!({ "text": text }))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200, "scoring does not depend on storage");
            r.json::<serde_json::Value>().await.unwrap()["id"]
                .as_str()
                .unwrap()
                .to_owned()
        }
    };
    let feedback = |id: String| {
        let client = client.clone();
        let url = handler.url("/api/feedback");
        async move {
            let r = client
                .post(url)
                .json(&serde_json::json!({ "id": id, "true_label": 1 }))
                .send()
                .await
                .unwrap();
            (
                r.status().as_u16(),
                r.json::<serde_json::Value>().await.unwrap(),
            )
        }
    };

    let stored_id = predict("I love this flight").await;
    assert_eq!(feedback(stored_id.clone()).await.0, 201);

    azurite.stop();
    let refused_id = predict("lost my bag").await;
    let (status, body) = feedback(refused_id.clone()).await;
    assert_eq!(status, 503, "{body}");
    // A refused connection is a clear "not stored"; a pooled connection that Azurite's exit cut
    // mid-request is honestly "unknown". Either way the answer says which, and nothing is stored.
    match body["error"]["code"].as_str() {
        Some("storage_unavailable") => assert_eq!(body["stored"], "no", "{body}"),
        Some("storage_timeout") => assert_eq!(body["stored"], "unknown", "{body}"),
        other => panic!("unexpected code {other:?}: {body}"),
    }
    let health = handler
        .wait_health(&client, Duration::from_secs(15), |h| {
            h["log"]["pending"].as_u64() > Some(0) && !h["log"]["last_error"].is_null()
        })
        .await;
    let last_error = health["log"]["last_error"].as_str().unwrap();
    assert!(
        last_error.contains("unavailable") || last_error.contains("did not answer"),
        "{health}"
    );

    azurite.restart();
    handler
        .wait_health(&client, Duration::from_secs(30), |h| {
            h["log"]["pending"] == 0 && h["log"]["last_error"].is_null()
        })
        .await;
    assert!(handler.terminate().success());

    // What was acknowledged is there; what was refused is not; no prediction was lost.
    let store = AzureStore::with_account_key(
        ConnectionString::parse(&cs).unwrap(),
        Duration::from_secs(10),
    )
    .unwrap();
    let mut feedback_ids = Vec::new();
    for blob in store.list("logs", "feedback/").await.unwrap() {
        let bytes = store.get("logs", &blob.name).await.unwrap().bytes;
        for line in bytes.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
            let v: serde_json::Value = serde_json::from_slice(line).unwrap();
            feedback_ids.push(v["prediction_id"].as_str().unwrap().to_owned());
        }
    }
    assert_eq!(feedback_ids, vec![stored_id.clone()]);
    let mut prediction_ids = Vec::new();
    for blob in store.list("logs", "predictions/").await.unwrap() {
        let bytes = store.get("logs", &blob.name).await.unwrap().bytes;
        for line in bytes.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
            let v: serde_json::Value = serde_json::from_slice(line).unwrap();
            prediction_ids.push(v["id"].as_str().unwrap().to_owned());
        }
    }
    prediction_ids.sort();
    let mut expected = vec![stored_id, refused_id];
    expected.sort();
    assert_eq!(prediction_ids, expected);
}

/// Azurite frozen (SIGSTOP) while feedback is written: the call times out, the caller is told
/// `stored: unknown` (the write may have landed), retries once Azurite is back, and the report
/// counts that feedback exactly once whether the first attempt landed or not. Predictions made
/// during the freeze wait in the buffer and are all counted once.
#[tokio::test]
#[ignore = "needs Azurite: run scripts/test.sh"]
async fn frozen_storage_then_a_retried_feedback_counts_once() {
    let dir = tempfile::tempdir().unwrap();
    let (azurite, mut handler, client, cs) = serving_from_private_azurite(dir.path()).await;
    let post = |path: &'static str, body: serde_json::Value| {
        let client = client.clone();
        let url = handler.url(path);
        async move {
            let r = client.post(url).json(&body).send().await.unwrap();
            (
                r.status().as_u16(),
                r.json::<serde_json::Value>().await.unwrap(),
            )
        }
    };
    let mut ids = Vec::new();
    for text in ["on hold for 45 minutes", "two hour wait at the gate"] {
        let (status, body) = post("/api/predict", serde_json::json!({ "text": text })).await;
        assert_eq!(status, 200);
        ids.push(body["id"].as_str().unwrap().to_owned());
    }
    handler
        .wait_health(&client, Duration::from_secs(15), |h| {
            h["log"]["appended"] == 2
        })
        .await;

    let pid = azurite.child.id().to_string();
    Command::new("kill").args(["-STOP", &pid]).status().unwrap();
    let (status, body) = post(
        "/api/feedback",
        serde_json::json!({"id": ids[0], "true_label": 0}),
    )
    .await;
    // Scoring goes on during the freeze; its records wait in the buffer.
    let (frozen_status, frozen) = post(
        "/api/predict",
        serde_json::json!({"text": "my bag never showed up"}),
    )
    .await;
    Command::new("kill").args(["-CONT", &pid]).status().unwrap();
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"]["code"], "storage_timeout", "{body}");
    assert_eq!(body["stored"], "unknown", "{body}");
    assert_eq!(frozen_status, 200);
    ids.push(frozen["id"].as_str().unwrap().to_owned());

    // The caller retries, as the answer says it safely may.
    let (status, body) = post(
        "/api/feedback",
        serde_json::json!({"id": ids[0], "true_label": 0}),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    handler
        .wait_health(&client, Duration::from_secs(30), |h| {
            h["log"]["appended"] == 3 && h["log"]["pending"] == 0
        })
        .await;
    let (status, _) = post(
        "/metrics-report",
        serde_json::json!({"Data": {}, "Metadata": {}}),
    )
    .await;
    assert_eq!(status, 200);
    assert!(handler.terminate().success());

    let store = AzureStore::with_account_key(
        ConnectionString::parse(&cs).unwrap(),
        Duration::from_secs(10),
    )
    .unwrap();
    let report: serde_json::Value =
        serde_json::from_slice(&store.get("reports", "latest.json").await.unwrap().bytes).unwrap();
    let overall = &report["overall"]["since_start"];
    assert_eq!(overall["predictions"], 3, "{overall}");
    assert_eq!(overall["labelled"], 1, "{overall}");
    assert_eq!(report["feedback"]["joined"], 1, "{}", report["feedback"]);
    assert_eq!(report["duplicate_predictions"], 0);
    let repeated = report["feedback"]["repeated"].as_u64().unwrap();
    assert!(
        repeated <= 1,
        "the first attempt landed or it did not: {repeated}"
    );
}

/// Two report runs racing on the same checkpoint in Azurite: at most one commits (the other is
/// told `ConcurrentRun` and writes no checkpoint), and a third run afterwards counts every record
/// exactly once.
#[tokio::test]
#[ignore = "needs Azurite: run scripts/test.sh"]
async fn two_report_runs_racing_on_azurite_count_once() {
    use tweet_sentiment::log::{PredictionLog, PredictionRecord};
    use tweet_sentiment::metrics::{run_report, AggregationError};

    let store: std::sync::Arc<dyn BlobStore> = std::sync::Arc::new(store());
    let (logs, reports) = (unique("logs"), unique("reports"));
    let log = PredictionLog::new(store.clone(), common::manual_log_config("i", &logs));
    log.record((0..300u32).map(|i| PredictionRecord {
        v: 1,
        id: uuid::Uuid::now_v7(),
        ts: time::OffsetDateTime::now_utc(),
        model: tweet_sentiment::model::ModelRef {
            name: "fixture-nb".into(),
            version: "1".into(),
        },
        role: tweet_sentiment::model::Role::Champion,
        score: 0.3,
        sentiment: tweet_sentiment::model::Sentiment::Negative,
        latency_ms: 1.0,
        text: None,
        true_label: Some(u8::from(i % 2 == 0)),
    }));
    log.flush().await.unwrap();
    let config = common::report_config(&logs, &reports);
    let now = time::OffsetDateTime::now_utc();
    let (a, b) = tokio::join!(
        run_report(store.as_ref(), &config, now),
        run_report(store.as_ref(), &config, now)
    );
    let committed = [&a, &b].iter().filter(|r| r.is_ok()).count();
    let refused = [&a, &b]
        .iter()
        .filter(|r| matches!(r, Err(AggregationError::ConcurrentRun)))
        .count();
    assert_eq!(committed + refused, 2, "{a:?} {b:?}");
    assert!(committed >= 1, "a run that raced alone commits");
    let after = run_report(store.as_ref(), &config, time::OffsetDateTime::now_utc())
        .await
        .unwrap();
    assert_eq!(after.overall.since_start.predictions, 300);
    assert_eq!(after.overall.since_start.labelled, 300);
    assert_eq!(after.duplicate_predictions, 0);
}
