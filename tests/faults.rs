//! Faults a hostile or unlucky client can cause, and what the server must do about each:
//! a stuck client at shutdown, half-open connections, bodies that never arrive, cross-site writes,
//! retried feedback, and a seeded flood of malformed bodies and framings.

mod common;

use std::io::Write;
use std::net::TcpStream;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn address(base: &str) -> String {
    base.trim_start_matches("http://").to_owned()
}

/// SIGTERM while a client holds a request open: the process still stops within the shutdown
/// deadline, and flushes the prediction log first.
#[tokio::test]
async fn sigterm_with_a_stuck_client_exits_within_the_deadline_and_flushes() {
    let mut api = common::start_local(
        |_| {},
        &[
            ("SHUTDOWN_SECONDS", "1"),
            ("BODY_TIMEOUT_SECONDS", "60"),
            ("LOG_BATCH_MILLISECONDS", "60000"),
            ("LOG_BATCH_RECORDS", "100000"),
        ],
    )
    .await;
    // One prediction waits in the buffer: only the final flush can store it.
    let r = api
        .client
        .post(api.handler.url("/api/predict"))
        .json(&json!({"text": "on hold for 45 minutes"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    // A request that declares 300 KB and sends 10 bytes, then waits.
    let mut stuck = TcpStream::connect(address(&api.handler.base)).unwrap();
    stuck
        .write_all(b"POST /api/feedback HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 300000\r\n\r\n{\"id\":\"01")
        .unwrap();
    std::thread::sleep(Duration::from_millis(200));

    let started = Instant::now();
    let status = api.handler.terminate();
    let took = started.elapsed();
    assert!(status.success(), "exit status {status}");
    assert!(
        took < Duration::from_secs(5),
        "stopped after {took:?} with a 1 s deadline"
    );
    assert!(
        api.handler
            .log
            .iter()
            .any(|l| l.contains("shutdown deadline reached")),
        "the stuck connection was dropped at the deadline"
    );
    let flushed = api
        .handler
        .log
        .iter()
        .find(|l| l.contains("prediction log flushed at shutdown"))
        .expect("the final flush ran");
    let flushed: Value = serde_json::from_str(flushed).unwrap();
    assert_eq!(flushed["fields"]["appended"], 1, "{flushed}");
    drop(stuck);
}

/// Half-open connections that never send a request head are closed after the header timeout, and
/// while they are open the server still answers health.
#[tokio::test]
async fn half_open_connections_neither_starve_health_nor_stay_open() {
    // Client and server share this process: 1,000 connections are 2,000 descriptors.
    // SAFETY: getrlimit and setrlimit only read and write the struct passed to them.
    unsafe {
        let mut limit = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 {
            limit.rlim_cur = limit.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        }
    }
    let server = common::InProcess::start(|_| {}, &["--header-timeout-seconds", "1"]).await;
    let addr = address(&server.base);
    let mut idle = Vec::new();
    for _ in 0..1000 {
        idle.push(tokio::net::TcpStream::connect(&addr).await.unwrap());
    }
    let health = server.client.get(server.url("/api/health")).send().await;
    assert_eq!(
        health.unwrap().status(),
        200,
        "health answers beside 1,000 idle connections"
    );

    tokio::time::sleep(Duration::from_millis(2500)).await;
    let mut closed = 0;
    for mut conn in idle {
        let mut buf = [0u8; 64];
        // Closed by the server: EOF or a reset. Still open: the read does not finish.
        match tokio::time::timeout(Duration::from_millis(200), conn.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => closed += 1,
            Ok(Ok(_)) | Err(_) => {}
        }
    }
    assert_eq!(
        closed, 1000,
        "every idle connection was closed after the header timeout"
    );
    server.stop().await.unwrap();
}

/// A body that never arrives gets 408 after the body timeout instead of holding a slot forever.
#[tokio::test]
async fn a_body_that_never_arrives_gets_408() {
    let server = common::InProcess::start(|_| {}, &["--body-timeout-seconds", "1"]).await;
    let mut conn = tokio::net::TcpStream::connect(address(&server.base))
        .await
        .unwrap();
    conn.write_all(b"POST /api/predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"text\":")
        .await
        .unwrap();
    let started = Instant::now();
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout(Duration::from_secs(10), conn.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => {
                answer.extend_from_slice(&buf[..n]);
                if answer.ends_with(b"}") {
                    break;
                }
            }
            _ => break,
        }
    }
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("request_timeout"), "{answer}");
    assert!(started.elapsed() < Duration::from_secs(5));
    server.stop().await.unwrap();
}

/// A page on another origin can send `text/plain` without a preflight: such a POST writes
/// nothing. Every answer says `nosniff`.
#[tokio::test]
async fn posts_must_be_json_and_answers_say_nosniff() {
    let server = common::InProcess::start(|_| {}, &[]).await;
    for content_type in [
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
        None,
    ] {
        let mut request = server
            .client
            .post(server.url("/api/feedback"))
            .body(r#"{"id":"0193f1a4-0000-7000-8000-000000000000","true_label":1}"#);
        if let Some(content_type) = content_type {
            request = request.header("content-type", content_type);
        }
        let r = request.send().await.unwrap();
        assert_eq!(r.status(), 415, "{content_type:?}");
        assert_eq!(r.headers()["x-content-type-options"], "nosniff");
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["error"]["code"], "unsupported_media_type");
    }
    assert!(
        !server.data.join("logs").join("feedback").exists(),
        "no feedback was stored"
    );
    // A charset parameter is still JSON.
    let r = server
        .client
        .post(server.url("/api/predict"))
        .header("content-type", "application/json; charset=utf-8")
        .body(r#"{"text":"fine"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    for path in ["/api/health", "/api/ui", "/api/nowhere", "/"] {
        let r = server.client.get(server.url(path)).send().await.unwrap();
        assert_eq!(r.headers()["x-content-type-options"], "nosniff", "{path}");
    }
    server.stop().await.unwrap();
}

/// The same feedback sent three times (a client retrying after a timeout), and once more with an
/// Idempotency-Key: each request is one record in the report however often it was stored.
#[tokio::test]
async fn retried_feedback_counts_once() {
    let server = common::InProcess::start(|_| {}, &["--log-batch-milliseconds", "20"]).await;
    let texts = [
        "my bag never showed up".to_owned(),
        "two hour wait at the gate".to_owned(),
    ];
    let ids = server.predict_ids(&texts).await;
    let (plain, keyed) = (&ids[0], &ids[1]);
    for _ in 0..3 {
        let body = json!({"id": plain, "true_label": 0});
        assert_eq!(server.post_json("/api/feedback", &body, &[]).await.0, 201);
        let body = json!({"id": keyed, "true_label": 0});
        let key = [("idempotency-key", "retry-me-1")];
        assert_eq!(server.post_json("/api/feedback", &body, &key).await.0, 201);
    }
    let body = json!({"id": keyed, "true_label": 0});
    let bad_key = server
        .post_json("/api/feedback", &body, &[("idempotency-key", "")])
        .await;
    assert_eq!(bad_key.0, 400, "{}", bad_key.1);

    // Both predictions reach the log before the report runs.
    server
        .wait_health(|h| h["log"]["appended"] == 2 && h["log"]["pending"] == 0)
        .await;
    let r = server
        .client
        .post(server.url("/metrics-report"))
        .json(&json!({"Data": {}, "Metadata": {}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let report: Value = serde_json::from_slice(
        &std::fs::read(server.data.join("reports").join("latest.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(report["feedback"]["joined"], 2, "{}", report["feedback"]);
    assert_eq!(report["feedback"]["repeated"], 4, "{}", report["feedback"]);
    assert_eq!(report["feedback"]["duplicate"], 0, "{}", report["feedback"]);
    assert_eq!(report["overall"]["since_start"]["labelled"], 2);
    server.stop().await.unwrap();
}

/// A small deterministic generator, so that a failing case can be replayed from its seed.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.next() as usize % items.len()]
    }
}

fn fuzz_body(rng: &mut Lcg) -> Vec<u8> {
    let fragments: &[&[u8]] = &[
        b"{",
        b"}",
        b"[",
        b"]",
        b"\"text\"",
        b"\"texts\"",
        b"\"true_label\"",
        b"\"id\"",
        b":",
        b",",
        b"\"hello\"",
        b"\"\"",
        b"null",
        b"true",
        b"-1",
        b"2",
        b"1e309",
        b"0",
        b"1",
        b"\"\\u0000\"",
        b"\"\\ud800\"",
        b"\xff\xfe",
        b"\"\xe2\x9c\x88\"",
        b"   ",
        b"\n",
        b"{\"text\":\"a\"}",
        b"{\"texts\":[\"a\",\"b\"]}",
        b"{\"text\":\"x\",\"true_label\":1}",
        b"{\"id\":\"0193f1a4-0000-7000-8000-000000000000\",\"true_label\":0}",
    ];
    let mut body = Vec::new();
    for _ in 0..(rng.next() % 12) {
        let fragment: &&[u8] = rng.pick(fragments);
        body.extend_from_slice(fragment);
    }
    if rng.next().is_multiple_of(50) {
        // Now and then a long text or a long batch.
        let n = (rng.next() % 7000) as usize;
        body = format!("{{\"text\":\"{}\"}}", "é".repeat(n)).into_bytes();
    }
    if rng.next() % 50 == 1 {
        let n = (rng.next() % 80) as usize;
        body = serde_json::to_vec(&json!({ "texts": vec!["tweet"; n] })).unwrap();
    }
    body
}

/// 10,000 seeded bodies and framings: no 5xx, no hang, and the server still answers after.
#[tokio::test]
async fn ten_thousand_hostile_requests_get_no_5xx() {
    let server = common::InProcess::start(|_| {}, &["--log-batch-milliseconds", "50"]).await;
    let paths = [
        "/api/predict",
        "/api/feedback",
        "/metrics-report",
        "/api/health",
        "/api/x",
    ];
    let methods = ["POST", "POST", "POST", "GET", "PUT", "DELETE"];
    let content_types = [
        "application/json",
        "text/plain",
        "application/json; charset=utf-8",
        "",
    ];
    let mut rng = Lcg(20261129);
    let mut cases = Vec::with_capacity(10_000);
    for _ in 0..10_000 {
        cases.push((
            *rng.pick(&methods),
            *rng.pick(&paths),
            *rng.pick(&content_types),
            fuzz_body(&mut rng),
        ));
    }
    let started = Instant::now();
    let mut statuses = std::collections::BTreeMap::<u16, u32>::new();
    for chunk in cases.chunks(16) {
        let answers = futures::future::join_all(chunk.iter().map(|(method, path, ct, body)| {
            let mut request = server
                .client
                .request(method.parse().unwrap(), server.url(path))
                .timeout(Duration::from_secs(30))
                .body(body.clone());
            if !ct.is_empty() {
                request = request.header("content-type", *ct);
            }
            async move {
                let r = request.send().await.expect("every request is answered");
                let status = r.status().as_u16();
                let bytes = r.bytes().await.unwrap();
                (status, bytes, *method, *path)
            }
        }))
        .await;
        for (status, bytes, method, path) in answers {
            assert!(
                status < 500,
                "{method} {path} answered {status}: {}",
                String::from_utf8_lossy(&bytes)
            );
            *statuses.entry(status).or_default() += 1;
        }
    }
    println!(
        "10,000 requests in {:?}; statuses {statuses:?}",
        started.elapsed()
    );
    assert!(
        statuses.keys().any(|s| *s == 200),
        "some requests were valid"
    );
    assert!(
        statuses.keys().any(|s| *s == 400),
        "some were refused as bad"
    );
    let r = server.client.get(server.url("/api/health")).send().await;
    assert_eq!(r.unwrap().status(), 200);
    server.stop().await.unwrap();
}

/// 200 feedbacks sent at once share far fewer appends (group commit), and every one answered 201
/// is in the log.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_feedback_is_group_committed_and_every_201_is_stored() {
    let server = common::InProcess::start(|_| {}, &[]).await;
    let texts: Vec<String> = (0..200)
        .map(|i| format!("delayed again, day {i}"))
        .collect();
    let ids = server.predict_ids(&texts).await;
    let answers = futures::future::join_all(ids.iter().map(|id| {
        server
            .client
            .post(server.url("/api/feedback"))
            .json(&json!({"id": id, "true_label": 0}))
            .send()
    }))
    .await;
    let created = answers
        .into_iter()
        .filter(|r| r.as_ref().is_ok_and(|r| r.status() == 201))
        .count();
    assert_eq!(created, 200);

    let folder = server.data.join("logs").join("feedback");
    let (mut lines, mut blocks) = (0, 0);
    let mut stack = vec![folder];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(dir).unwrap().flatten() {
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().into_owned();
            if path.is_dir() {
                stack.push(path);
            } else if name.ends_with(".blocks") {
                blocks += std::fs::read_to_string(&path)
                    .unwrap()
                    .trim()
                    .parse::<u32>()
                    .unwrap();
            } else {
                lines += std::fs::read_to_string(&path).unwrap().lines().count();
            }
        }
    }
    assert_eq!(lines, 200, "every 201 is stored");
    println!("200 feedbacks in {blocks} appends");
    assert!(blocks <= 50, "200 feedbacks took {blocks} appends");
    server.stop().await.unwrap();
}

/// A disk that fills up mid-append: the local store cuts the failed append back, the appender
/// keeps the records and retries once there is room, and the report counts every record exactly
/// once, before and after. Needs a tiny tmpfs (root); without one it says so and checks nothing.
#[tokio::test]
async fn a_failed_partial_append_then_a_retry_counts_every_record_once() {
    use tweet_sentiment::log::PredictionLog;
    use tweet_sentiment::metrics::run_report;
    use tweet_sentiment::store::fs::FsStore;
    use tweet_sentiment::store::BlobStore;

    let dir = tempfile::tempdir().unwrap();
    // The logs container is a 64 KB disk of its own; reports stay on the real one.
    let disk = dir.path().join("data").join("logs");
    std::fs::create_dir_all(&disk).unwrap();
    let mounted = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=64k", "tmpfs"])
        .arg(&disk)
        .status()
        .is_ok_and(|s| s.success());
    if !mounted {
        eprintln!("SKIPPED: cannot mount a tmpfs here (needs root)");
        return;
    }
    struct Unmount(std::path::PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = std::process::Command::new("umount").arg(&self.0).status();
        }
    }
    let _unmount = Unmount(disk.clone());

    let store: Arc<dyn BlobStore> = Arc::new(FsStore::new(
        dir.path().join("data"),
        common::models_dir_with_fixtures(dir.path()),
        "models".into(),
    ));
    let log = PredictionLog::new(store.clone(), common::manual_log_config("i", "logs"));
    let config = common::report_config("logs", "reports");
    let record = |i: u32| tweet_sentiment::log::PredictionRecord {
        v: 1,
        id: uuid::Uuid::now_v7(),
        ts: time::OffsetDateTime::now_utc(),
        model: tweet_sentiment::model::ModelRef {
            name: "fixture-nb".into(),
            version: "1".into(),
        },
        role: tweet_sentiment::model::Role::Champion,
        score: 0.2,
        sentiment: tweet_sentiment::model::Sentiment::Negative,
        latency_ms: 1.0,
        text: Some(format!("my bag never showed up, day {i}")),
        true_label: Some(0),
    };
    log.record((0..20).map(record));
    log.flush().await.unwrap();
    // Fill the disk, then give back 2 KB: room for part of the next batch, not all of it.
    let ballast = disk.join("ballast");
    let mut file = std::fs::File::create(&ballast).unwrap();
    while file
        .write_all(&[b'x'; 1024])
        .and_then(|()| file.sync_data())
        .is_ok()
    {}
    let size = file.metadata().unwrap().len();
    file.set_len(size.saturating_sub(2048)).unwrap();
    drop(file);
    log.record((20..220).map(record));
    assert!(log.flush().await.is_err(), "the disk is full");
    assert_eq!(log.status().pending, 200, "the failed batch is kept");
    // The cut-back append left nothing half written for a report to read.
    let report = run_report(store.as_ref(), &config, time::OffsetDateTime::now_utc())
        .await
        .unwrap();
    assert_eq!(report.overall.since_start.predictions, 20);
    assert_eq!(report.invalid_lines, 0);

    std::fs::remove_file(&ballast).unwrap();
    log.flush().await.unwrap();
    let report = run_report(store.as_ref(), &config, time::OffsetDateTime::now_utc())
        .await
        .unwrap();
    assert_eq!(report.overall.since_start.predictions, 220);
    assert_eq!(report.overall.since_start.labelled, 220);
    assert_eq!(report.invalid_lines, 0);
    assert_eq!(report.duplicate_predictions, 0);
}

/// kill -9 (no shutdown at all): what was flushed stays, what was acknowledged as feedback stays,
/// and the loss is at most the prediction records buffered since the last flush, the documented
/// bound (`LOG_BATCH_MILLISECONDS` or `LOG_BATCH_RECORDS` of traffic).
#[tokio::test]
async fn kill_9_loses_at_most_the_unflushed_buffer() {
    let mut api = common::start_local(
        |_| {},
        &[
            ("LOG_BATCH_MILLISECONDS", "300"),
            ("LOG_MIN_FLUSH_MILLISECONDS", "0"),
        ],
    )
    .await;
    let url = api.handler.url("/api/predict");
    let mut first = Vec::new();
    for i in 0..40 {
        let r: Value = api
            .client
            .post(&url)
            .json(&json!({ "text": format!("flight {i} delayed") }))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        first.push(r["id"].as_str().unwrap().to_owned());
    }
    let r: Value = api
        .client
        .post(api.handler.url("/api/feedback"))
        .json(&json!({"id": first[0], "true_label": 0}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(r["stored"], true);
    // Past two flush periods: all of the first 40 are stored.
    tokio::time::sleep(Duration::from_millis(1000)).await;
    for i in 0..10 {
        api.client
            .post(&url)
            .json(&json!({ "text": format!("late tweet {i}") }))
            .send()
            .await
            .unwrap();
    }
    api.handler.kill_9();

    let mut stored = Vec::new();
    let mut feedback = 0;
    let mut stack = vec![api.data.join("logs")];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "jsonl") {
                for line in std::fs::read_to_string(&path).unwrap().lines() {
                    let v: Value = serde_json::from_str(line).unwrap();
                    match v["id"].as_str() {
                        Some(id) if v.get("prediction_id").is_none() => stored.push(id.to_owned()),
                        _ => feedback += 1,
                    }
                }
            }
        }
    }
    assert_eq!(feedback, 1, "acknowledged feedback survives kill -9");
    for id in &first {
        assert!(stored.contains(id), "a flushed prediction was lost");
    }
    let lost = 50 - stored.len();
    println!("kill -9 lost {lost} of the last 10 predictions (all within one flush period)");
    assert!(lost <= 10, "lost {lost}: more than the unflushed buffer");
}
