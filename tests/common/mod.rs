//! Helpers shared by the integration tests: fixture model folders, and the handler binary started
//! the way the Functions host starts it.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

pub const FIXTURE_VERSION: &str = "1";
pub const KINDS: [&str; 3] = ["fixture-nb", "fixture-lstm", "fixture-transformer"];

pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

pub fn fixture_version_dir(name: &str) -> PathBuf {
    fixtures().join("models").join(name).join(FIXTURE_VERSION)
}

/// Copies a directory tree.
/// Scores `texts` in one call and checks that each score is the text's score alone (to 1e-5):
/// padding, batch runs and chunking must never change a score or its place.
pub fn assert_scores_as_alone(scorer: &tweet_sentiment::model::Scorer, texts: &[&str], what: &str) {
    let together = scorer.score(texts).unwrap();
    assert_eq!(together.len(), texts.len(), "{what}");
    for (text, score) in texts.iter().zip(&together) {
        let alone = scorer.score(&[text]).unwrap()[0];
        assert!(
            (alone - score).abs() < 1e-5,
            "{what}: {text}: alone {alone} vs together {score}"
        );
    }
}

pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// A models folder holding the three fixture versions and a champion pointer.
pub fn models_dir_with_fixtures(root: &Path) -> PathBuf {
    let models = root.join("models");
    copy_dir(&fixtures().join("models"), &models);
    models
}

/// Copies a fixture version under a new version name (the manifest is rewritten to match), into
/// `dest/<name>/<version>/`, and returns that folder.
pub fn version_copy(name: &str, new_version: &str, dest: &Path) -> PathBuf {
    let folder = dest.join(name).join(new_version);
    copy_dir(&fixture_version_dir(name), &folder);
    let manifest_path = folder.join("manifest.json");
    let mut manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&manifest_path).unwrap()).unwrap();
    manifest["version"] = new_version.into();
    std::fs::write(
        &manifest_path,
        serde_json::to_vec_pretty(&manifest).unwrap(),
    )
    .unwrap();
    folder
}

/// The handler binary, running as the Functions host runs it: port from
/// FUNCTIONS_CUSTOMHANDLER_PORT (0 here, so the OS picks one), logs on stdout.
pub struct Handler {
    child: Child,
    pub base: String,
    lines: mpsc::Receiver<String>,
    pub log: Vec<String>,
}

impl Handler {
    pub fn start(envs: &[(&str, &str)]) -> Handler {
        let mut command = Command::new(env!("CARGO_BIN_EXE_tweet-sentiment"));
        command
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("FUNCTIONS_CUSTOMHANDLER_PORT", "0")
            .env("LOG_FORMAT", "json")
            .env("RUST_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        for (k, v) in envs {
            command.env(k, v);
        }
        let mut child = command.spawn().expect("starting the handler binary");
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut handler = Handler {
            child,
            base: String::new(),
            lines,
            log: Vec::new(),
        };
        let listening =
            handler.wait_for_log(|l| l.contains("\"listening\""), Duration::from_secs(30));
        let value: serde_json::Value = serde_json::from_str(&listening).unwrap();
        let address = value["fields"]["address"].as_str().unwrap().to_owned();
        handler.base = format!("http://{address}");
        handler
    }

    /// Waits for a log line matching `pred`, keeping every line read in `self.log`.
    pub fn wait_for_log(&mut self, pred: impl Fn(&str) -> bool, timeout: Duration) -> String {
        if let Some(line) = self.log.iter().find(|l| pred(l)) {
            return line.clone();
        }
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.log.push(line.clone());
                    if pred(&line) {
                        return line;
                    }
                }
                Err(_) => panic!(
                    "no matching log line within {timeout:?}; log so far:\n{}",
                    self.log.join("\n")
                ),
            }
        }
    }

    /// Reads whatever the handler logged so far.
    pub fn drain_log(&mut self) {
        while let Ok(line) = self.lines.try_recv() {
            self.log.push(line);
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Polls `GET /` until it answers, as the host does before forwarding anything.
    pub async fn wait_ready(&self, client: &reqwest::Client) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(r) = client.get(self.url("/")).send().await {
                if r.status().is_success() {
                    return;
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("the handler never answered GET /");
    }

    /// Polls `/api/health` until `pred` holds for its JSON body.
    pub async fn wait_health(
        &self,
        client: &reqwest::Client,
        timeout: Duration,
        pred: impl Fn(&serde_json::Value) -> bool,
    ) -> serde_json::Value {
        let deadline = Instant::now() + timeout;
        let mut last = serde_json::Value::Null;
        while Instant::now() < deadline {
            if let Ok(r) = client.get(self.url("/api/health")).send().await {
                if let Ok(body) = r.json::<serde_json::Value>().await {
                    if pred(&body) {
                        return body;
                    }
                    last = body;
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("health never matched within {timeout:?}; last: {last}");
    }

    /// Sends SIGTERM, as the host does on scale-in, and returns the exit status.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                self.drain_log();
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "the handler did not stop on SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Handler {
    /// SIGKILL: no shutdown, no final flush, as when the platform gives up on the process.
    pub fn kill_9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.drain_log();
    }
}

impl Drop for Handler {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Exercises every `BlobStore` operation and its contract; run against each implementation.
pub async fn exercise_store(store: &dyn tweet_sentiment::store::BlobStore, container: &str) {
    use bytes::Bytes;
    use tweet_sentiment::store::{ETag, StoreError, WriteCondition};

    assert!(matches!(
        store.get(container, "missing.json").await,
        Err(StoreError::NotFound { .. })
    ));
    assert_eq!(store.etag(container, "missing.json").await.unwrap(), None);
    assert!(store.list(container, "").await.unwrap().is_empty());

    let first = store
        .put(
            container,
            "p/champion.json",
            Bytes::from_static(b"{\"v\":1}"),
            WriteCondition::IfAbsent,
        )
        .await
        .unwrap();
    assert_eq!(
        store.etag(container, "p/champion.json").await.unwrap(),
        Some(first.clone())
    );
    assert!(matches!(
        store
            .put(
                container,
                "p/champion.json",
                Bytes::from_static(b"x"),
                WriteCondition::IfAbsent
            )
            .await,
        Err(StoreError::ConditionFailed { .. })
    ));
    let second = store
        .put(
            container,
            "p/champion.json",
            Bytes::from_static(b"{\"v\":2}"),
            WriteCondition::IfMatch(first.clone()),
        )
        .await
        .unwrap();
    assert_ne!(first, second);
    assert!(matches!(
        store
            .put(
                container,
                "p/champion.json",
                Bytes::from_static(b"x"),
                WriteCondition::IfMatch(first)
            )
            .await,
        Err(StoreError::ConditionFailed { .. })
    ));
    let blob = store.get(container, "p/champion.json").await.unwrap();
    assert_eq!(&blob.bytes[..], b"{\"v\":2}");
    assert_eq!(blob.etag, second);

    store
        .append(container, "logs/a.jsonl", Bytes::from_static(b"one\n"))
        .await
        .unwrap();
    store
        .append(container, "logs/a.jsonl", Bytes::from_static(b"two\n"))
        .await
        .unwrap();
    store
        .append(container, "logs/b.jsonl", Bytes::from_static(b"three\n"))
        .await
        .unwrap();
    assert_eq!(
        &store.get(container, "logs/a.jsonl").await.unwrap().bytes[..],
        b"one\ntwo\n"
    );
    assert_eq!(
        &store.get_from(container, "logs/a.jsonl", 4).await.unwrap()[..],
        b"two\n"
    );
    assert!(store
        .get_from(container, "logs/a.jsonl", 8)
        .await
        .unwrap()
        .is_empty());

    let listed: Vec<(String, u64)> = store
        .list(container, "logs/")
        .await
        .unwrap()
        .into_iter()
        .map(|b| (b.name, b.size))
        .collect();
    assert_eq!(
        listed,
        vec![("logs/a.jsonl".into(), 8), ("logs/b.jsonl".into(), 6)]
    );
    assert_eq!(store.list(container, "").await.unwrap().len(), 3);

    // Retiring a pointer: only the version the caller read may be deleted.
    assert!(matches!(
        store
            .delete_if_match(container, "p/champion.json", &ETag("\"stale\"".into()))
            .await,
        Err(StoreError::ConditionFailed { .. })
    ));
    assert_eq!(
        &store.get(container, "p/champion.json").await.unwrap().bytes[..],
        b"{\"v\":2}",
        "a refused delete leaves the blob"
    );
    store
        .delete_if_match(container, "p/champion.json", &second)
        .await
        .unwrap();
    assert!(matches!(
        store.get(container, "p/champion.json").await,
        Err(StoreError::NotFound { .. })
    ));
    assert!(matches!(
        store
            .delete_if_match(container, "p/champion.json", &second)
            .await,
        Err(StoreError::NotFound { .. })
    ));
    assert!(store.get(container, "../escape").await.is_err());
}

/// 16 writers at once: 8 prediction logs (one per instance) recording from many tasks, and 8
/// tasks appending feedback to one shared blob. Every record must come back whole, exactly once.
pub async fn concurrent_writers(
    store: std::sync::Arc<dyn tweet_sentiment::store::BlobStore>,
    container: &str,
) {
    use std::collections::HashSet;
    use std::sync::Arc;
    use tweet_sentiment::log::{
        FeedbackRecord, PredictionLog, PredictionLogConfig, PredictionRecord,
    };
    use tweet_sentiment::model::Sentiment;
    use tweet_sentiment::model::{ModelRef, Role};

    const PER_WRITER: usize = 50;
    let mut tasks = Vec::new();
    let mut expected_ids = HashSet::new();
    for writer in 0..8 {
        let log = Arc::new(PredictionLog::new(
            store.clone(),
            PredictionLogConfig {
                instance: format!("writer-{writer}"),
                container: container.into(),
                max_batch: 7,
                max_age: Duration::from_millis(5),
                max_pending: 10_000,
                min_flush_interval: std::time::Duration::ZERO,
                block_limit: tweet_sentiment::store::APPEND_BLOCK_LIMIT,
            },
        ));
        let flusher = log.clone().spawn_flusher(
            tokio_util::sync::CancellationToken::new(),
            Duration::from_secs(5),
        );
        let records: Vec<PredictionRecord> = (0..PER_WRITER)
            .map(|i| PredictionRecord {
                v: 1,
                id: uuid::Uuid::now_v7(),
                ts: time::OffsetDateTime::now_utc(),
                model: ModelRef {
                    name: "m".into(),
                    version: "1".into(),
                },
                role: Role::Champion,
                score: 0.5,
                sentiment: Sentiment::Positive,
                latency_ms: 1.0,
                // Long, varied lines make torn or interleaved writes visible.
                text: Some(format!("writer {writer} record {i} {}", "x".repeat(i * 37))),
                true_label: None,
            })
            .collect();
        expected_ids.extend(records.iter().map(|r| r.id));
        tasks.push(tokio::spawn(async move {
            for chunk in records.chunks(3) {
                log.record(chunk.to_vec());
                tokio::task::yield_now().await;
            }
            log.flush().await.unwrap();
            flusher.abort();
        }));
    }
    let shared = Arc::new(PredictionLog::new(
        store.clone(),
        PredictionLogConfig {
            instance: "shared".into(),
            container: container.into(),
            max_batch: 1,
            max_age: Duration::from_millis(5),
            max_pending: 10,
            min_flush_interval: std::time::Duration::ZERO,
            block_limit: tweet_sentiment::store::APPEND_BLOCK_LIMIT,
        },
    ));
    let mut feedback_ids = HashSet::new();
    for _ in 0..8 {
        let ids: Vec<uuid::Uuid> = (0..PER_WRITER).map(|_| uuid::Uuid::now_v7()).collect();
        feedback_ids.extend(ids.iter().copied());
        let shared = shared.clone();
        tasks.push(tokio::spawn(async move {
            for id in ids {
                let record = FeedbackRecord {
                    v: 1,
                    id: None,
                    prediction_id: id,
                    ts: time::OffsetDateTime::now_utc(),
                    true_label: 1,
                };
                shared.append_feedback(&record).await.unwrap();
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }

    let mut seen = HashSet::new();
    for blob in store.list(container, "predictions/").await.unwrap() {
        let bytes = store.get(container, &blob.name).await.unwrap().bytes;
        assert!(bytes.ends_with(b"\n"), "{} ends mid-line", blob.name);
        for line in bytes.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
            let record: PredictionRecord = serde_json::from_slice(line)
                .unwrap_or_else(|e| panic!("torn line in {}: {e}", blob.name));
            assert!(seen.insert(record.id), "record {} written twice", record.id);
        }
    }
    assert_eq!(seen, expected_ids, "every prediction record, exactly once");
    let mut seen = HashSet::new();
    let blobs = store.list(container, "feedback/").await.unwrap();
    assert!(
        blobs.len() <= 2,
        "one shared blob (two across an hour boundary)"
    );
    for blob in blobs {
        let bytes = store.get(container, &blob.name).await.unwrap().bytes;
        for line in bytes.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
            let record: FeedbackRecord =
                serde_json::from_slice(line).expect("whole feedback lines");
            assert!(seen.insert(record.prediction_id));
        }
    }
    assert_eq!(seen, feedback_ids, "every feedback record, exactly once");
}

/// The handler binary serving the fixture models from a temporary local store, ready (the host's
/// `GET /` answered) and healthy (the champion loaded).
pub struct LocalApi {
    pub handler: Handler,
    pub client: reqwest::Client,
    pub models: PathBuf,
    pub data: PathBuf,
    pub dir: tempfile::TempDir,
}

/// Starts a [`LocalApi`]; `prepare` may change the models folder first, `env` adds settings.
pub async fn start_local(prepare: impl FnOnce(&Path), env: &[(&str, &str)]) -> LocalApi {
    let dir = tempfile::tempdir().unwrap();
    let models = models_dir_with_fixtures(dir.path());
    prepare(&models);
    let data = dir.path().join("data");
    let mut envs = vec![
        ("MODELS_DIR", models.to_str().unwrap()),
        ("DATA_DIR", data.to_str().unwrap()),
    ];
    envs.extend_from_slice(env);
    let handler = Handler::start(&envs);
    let client = reqwest::Client::new();
    handler.wait_ready(&client).await;
    handler
        .wait_health(&client, Duration::from_secs(30), |h| h["status"] == "ok")
        .await;
    LocalApi {
        handler,
        client,
        models,
        data,
        dir,
    }
}

/// `GET url` and its JSON body, whatever the status.
pub async fn get_json(client: &reqwest::Client, url: String) -> serde_json::Value {
    client.get(url).send().await.unwrap().json().await.unwrap()
}

/// The report's settings for a log and a reports container, with the default bad-buzz rule.
pub fn report_config(logs: &str, reports: &str) -> tweet_sentiment::metrics::ReportConfig {
    tweet_sentiment::metrics::ReportConfig {
        logs_container: logs.into(),
        reports_container: reports.into(),
        models_container: "models".into(),
        bad_buzz_min_predictions: 20,
        bad_buzz_delta: 0.15,
        bad_buzz_share: 0.75,
        verdict: tweet_sentiment::metrics::VerdictConfig::default(),
    }
}

/// A prediction log that flushes only when told to (`flush()`), for tests that count blocks.
pub fn manual_log_config(
    instance: &str,
    container: &str,
) -> tweet_sentiment::log::PredictionLogConfig {
    tweet_sentiment::log::PredictionLogConfig {
        instance: instance.into(),
        container: container.into(),
        max_batch: 100_000,
        max_age: Duration::from_secs(3600),
        max_pending: 100_000,
        min_flush_interval: Duration::ZERO,
        block_limit: tweet_sentiment::store::APPEND_BLOCK_LIMIT,
    }
}

/// The library's server inside the test process, as mini-redis's tests run theirs: a listener on
/// port 0, the `serve` options parsed as the command line parses them, and a shutdown future.
pub struct InProcess {
    pub base: String,
    pub client: reqwest::Client,
    pub models: PathBuf,
    pub data: PathBuf,
    pub dir: tempfile::TempDir,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

impl InProcess {
    /// Serves the fixture models from a fresh folder; `prepare` may change it first, `args` adds
    /// `serve` options. Returns once a model serves.
    pub async fn start(prepare: impl FnOnce(&Path), args: &[&str]) -> InProcess {
        let dir = tempfile::tempdir().unwrap();
        let models = models_dir_with_fixtures(dir.path());
        prepare(&models);
        Self::start_on(dir, models, args).await
    }

    /// Serves the given models folder as it is (read-only use: the repository's `models/`).
    pub async fn start_with_models(models: PathBuf, args: &[&str]) -> InProcess {
        Self::start_on(tempfile::tempdir().unwrap(), models, args).await
    }

    async fn start_on(dir: tempfile::TempDir, models: PathBuf, args: &[&str]) -> InProcess {
        use clap::Parser;
        use tweet_sentiment::config::{Cli, Command};

        let data = dir.path().join("data");
        let mut argv = vec![
            "tweet-sentiment".to_owned(),
            "serve".to_owned(),
            "--models-dir".to_owned(),
            models.display().to_string(),
            "--data-dir".to_owned(),
            data.display().to_string(),
            "--report-timer".to_owned(),
            "never".to_owned(),
        ];
        argv.extend(args.iter().map(|a| a.to_string()));
        let Some(Command::Serve(serve)) = Cli::try_parse_from(&argv).unwrap().command else {
            unreachable!("`serve` parses as the serve command")
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(tweet_sentiment::commands::serve::serve_on(
            listener,
            serve,
            async move {
                stopped.await.ok();
            },
        ));
        let server = InProcess {
            base,
            client: reqwest::Client::new(),
            models,
            data,
            dir,
            stop: Some(stop),
            task: Some(task),
        };
        server.wait_health(|h| h["status"] == "ok").await;
        server
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// POSTs a JSON body, with extra headers, and returns the status and the JSON answer.
    pub async fn post_json(
        &self,
        path: &str,
        body: &serde_json::Value,
        headers: &[(&str, &str)],
    ) -> (u16, serde_json::Value) {
        let mut request = self.client.post(self.url(path)).json(body);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap())
    }

    /// Scores texts through `POST /api/predict`, 64 at a time, and returns one prediction per text.
    pub async fn predict_all(&self, texts: &[String]) -> Vec<serde_json::Value> {
        let mut predictions = Vec::with_capacity(texts.len());
        for chunk in texts.chunks(64) {
            let (status, body) = self
                .post_json("/api/predict", &serde_json::json!({ "texts": chunk }), &[])
                .await;
            assert_eq!(status, 200, "{body}");
            predictions.extend(body["predictions"].as_array().unwrap().iter().cloned());
        }
        predictions
    }

    /// Scores texts and returns the prediction ids, in order.
    pub async fn predict_ids(&self, texts: &[String]) -> Vec<String> {
        self.predict_all(texts)
            .await
            .iter()
            .map(|p| p["id"].as_str().unwrap().to_owned())
            .collect()
    }

    pub async fn wait_health(&self, pred: impl Fn(&serde_json::Value) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut last = serde_json::Value::Null;
        while Instant::now() < deadline {
            if let Ok(r) = self.client.get(self.url("/api/health")).send().await {
                if let Ok(body) = r.json::<serde_json::Value>().await {
                    if pred(&body) {
                        return;
                    }
                    last = body;
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("health never matched; last: {last}");
    }

    /// Resolves the shutdown future and waits for `serve` to drain and flush.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        if let Some(stop) = self.stop.take() {
            stop.send(()).ok();
        }
        self.task.take().unwrap().await.unwrap()
    }
}
