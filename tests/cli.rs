//! `tweet-sentiment predict`, run as a user runs it: locally on the fixture models, and with
//! `--url` against the real handler binary (or, to see exactly what goes over the wire, against a
//! one-shot fake app that records the request).

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::Handler;
use serde_json::{json, Value};

const KEY: &str = "fk-cli-test-0123456789";

/// Runs the CLI with a clean environment plus `envs`, feeding `stdin`.
fn cli(args: &[&str], envs: &[(&str, &Path)], stdin: &str) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_tweet-sentiment"));
    command
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (name, value) in envs {
        command.env(name, value);
    }
    let mut child = command.spawn().unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

fn stdout(output: &Output) -> String {
    String::from_utf8(output.stdout.clone()).unwrap()
}

fn stderr(output: &Output) -> String {
    String::from_utf8(output.stderr.clone()).unwrap()
}

fn json_lines(output: &Output) -> Vec<Value> {
    assert!(output.status.success(), "{}", stderr(output));
    stdout(output)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not a JSON line ({e}): {l}")))
        .collect()
}

struct Running {
    handler: Handler,
    api: String,
    data: PathBuf,
    models: PathBuf,
    _dir: tempfile::TempDir,
}

async fn start() -> Running {
    let local = common::start_local(|_| {}, &[("LOG_BATCH_MILLISECONDS", "20")]).await;
    Running {
        api: local.handler.url("/api"),
        handler: local.handler,
        data: local.data,
        models: local.models,
        _dir: local.dir,
    }
}

#[tokio::test]
async fn scores_locally_and_against_a_running_app_alike() {
    let app = start().await;
    let texts = ["I love this crew :)", "lost my bag again :("];

    let local = cli(
        &["predict", "--json", texts[0], texts[1]],
        &[("MODELS_DIR", &app.models), ("DATA_DIR", &app.data)],
        "",
    );
    let local = json_lines(&local);
    let remote = cli(
        &["predict", "--json", "--url", &app.api, texts[0], texts[1]],
        &[],
        "",
    );
    let remote = json_lines(&remote);
    assert_eq!(local.len(), 2);
    assert_eq!(remote.len(), 2);
    for ((text, l), r) in texts.iter().zip(&local).zip(&remote) {
        assert_eq!(l["text"], *text);
        assert_eq!(r["text"], *text);
        assert_eq!(l["model"], json!({"name": "fixture-nb", "version": "1"}));
        assert_eq!(r["model"], l["model"]);
        assert_eq!(r["sentiment"], l["sentiment"], "{text}");
        let (a, b) = (l["score"].as_f64().unwrap(), r["score"].as_f64().unwrap());
        assert!((a - b).abs() < 1e-6, "{text}: local {a}, app {b}");
        assert!(l.get("id").is_none(), "a local score has no prediction id");
        uuid::Uuid::parse_str(r["id"].as_str().unwrap()).unwrap();
        assert!(r["latency_ms"].as_f64().unwrap() >= 0.0);
    }
    assert_eq!(local[0]["sentiment"], "positive");
    assert_eq!(local[1]["sentiment"], "negative");

    // The table: a header, then one row per text with sentiment, score, model, id and text.
    let table = cli(&["predict", "--url", &app.api, texts[0], texts[1]], &[], "");
    assert!(table.status.success(), "{}", stderr(&table));
    let rows: Vec<String> = stdout(&table).lines().map(str::to_owned).collect();
    assert_eq!(rows.len(), 3, "{rows:?}");
    let header: Vec<&str> = rows[0].split_whitespace().collect();
    assert_eq!(header, ["sentiment", "score", "model", "id", "text"]);
    for (row, expected) in rows[1..].iter().zip(&remote) {
        let words: Vec<&str> = row.split_whitespace().collect();
        assert_eq!(words[0], expected["sentiment"].as_str().unwrap(), "{row}");
        assert_eq!(
            words[1],
            format!("{:.3}", expected["score"].as_f64().unwrap()),
            "{row}"
        );
        assert_eq!(words[2], "fixture-nb/1", "{row}");
        uuid::Uuid::parse_str(words[3]).unwrap();
        assert!(row.ends_with(expected["text"].as_str().unwrap()), "{row}");
    }
}

#[tokio::test]
async fn stdin_lines_go_in_batches_of_at_most_64_in_order() {
    let app = start().await;
    // 70 lines: more than one request can carry, which the app would refuse with a 400.
    let lines: Vec<String> = (0..70)
        .map(|i| {
            if i % 2 == 0 {
                format!("tweet {i}: lovely crew :)")
            } else {
                format!("tweet {i}: delayed again :(")
            }
        })
        .collect();
    let stdin = format!("{}\n\n   \n", lines.join("\n"));
    let output = cli(
        &["predict", "--json"],
        &[("TWEET_SENTIMENT_URL", Path::new(&app.api))],
        &stdin,
    );
    let answers = json_lines(&output);
    let texts: Vec<&str> = answers
        .iter()
        .map(|a| a["text"].as_str().unwrap())
        .collect();
    assert_eq!(
        texts, lines,
        "every line once, in order; blank lines skipped"
    );
    let ids: std::collections::HashSet<&str> =
        answers.iter().map(|a| a["id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), 70);
    assert_eq!(answers[0]["sentiment"], "positive");
    assert_eq!(answers[1]["sentiment"], "negative");
}

#[tokio::test]
async fn a_label_reaches_the_prediction_log() {
    let app = start().await;
    let output = cli(
        &[
            "predict",
            "--json",
            "--url",
            &app.api,
            "--label",
            "0",
            "the crew was fine I guess",
        ],
        &[],
        "",
    );
    let answer = json_lines(&output).remove(0);
    assert_eq!(answer["true_label"], 0);
    let id = answer["id"].as_str().unwrap().to_owned();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let logged = jsonl_records(&app.data.join("logs").join("predictions"));
        if let Some(record) = logged.iter().find(|r| r["id"] == id.as_str()) {
            assert_eq!(record["true_label"], 0, "{record}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "prediction {id} never reached the log"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn jsonl_records(folder: &Path) -> Vec<Value> {
    let Ok(entries) = std::fs::read_dir(folder) else {
        return Vec::new();
    };
    let mut records = Vec::new();
    for entry in entries.filter_map(Result::ok) {
        let path = entry.path();
        if path.is_dir() {
            records.extend(jsonl_records(&path));
        } else if path.extension().is_none_or(|e| e != "jsonl") {
            // The local store's block counters sit beside the blobs.
        } else if let Ok(text) = std::fs::read_to_string(&path) {
            records.extend(text.lines().filter_map(|l| serde_json::from_str(l).ok()));
        }
    }
    records
}

/// A one-request HTTP server: records what it got and answers `status` with `body`.
struct FakeApp {
    base: String,
    request: std::thread::JoinHandle<(String, Vec<String>, Vec<u8>)>,
}

fn fake_app(status: &'static str, body: &'static str) -> FakeApp {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}/api", listener.local_addr().unwrap());
    let request = std::thread::spawn(move || {
        let (stream, _) = listener.accept().unwrap();
        let mut reader = BufReader::new(stream.try_clone().unwrap());
        let mut request_line = String::new();
        reader.read_line(&mut request_line).unwrap();
        let mut headers = Vec::new();
        loop {
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            let line = line.trim_end().to_owned();
            if line.is_empty() {
                break;
            }
            headers.push(line.to_lowercase());
        }
        let length: usize = headers
            .iter()
            .find_map(|h| h.strip_prefix("content-length:"))
            .map(|v| v.trim().parse().unwrap())
            .unwrap_or(0);
        let mut request_body = vec![0; length];
        reader.read_exact(&mut request_body).unwrap();
        let mut stream = stream;
        write!(
            stream,
            "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
        (request_line.trim_end().to_owned(), headers, request_body)
    });
    FakeApp { base, request }
}

const CANNED: &str = r#"{"id":"019abb2e-4f63-7c1e-9d0a-5b8e2f3c4d5e","score":0.25,"sentiment":"negative","model":{"name":"lstm","version":"2026.11.25-1"},"latency_ms":2.5}"#;

#[test]
fn the_key_goes_in_a_header_and_is_never_printed() {
    // From flags.
    let app = fake_app("200 OK", CANNED);
    let output = cli(
        &[
            "predict",
            "--url",
            &app.base,
            "--key",
            KEY,
            "--label",
            "1",
            "meh flight",
        ],
        &[],
        "",
    );
    let (request_line, headers, body) = app.request.join().unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(request_line, "POST /api/predict HTTP/1.1");
    assert!(
        headers.contains(&format!("x-functions-key: {}", KEY.to_lowercase())),
        "{headers:?}"
    );
    let body: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(body, json!({"text": "meh flight", "true_label": 1}));
    let printed = stdout(&output);
    assert!(printed.contains("lstm/2026.11.25-1"), "{printed}");
    assert!(!printed.contains(KEY) && !stderr(&output).contains(KEY));

    // From the environment, and on an error answer: still sent, still not printed.
    let app = fake_app(
        "401 Unauthorized",
        r#"{"error":{"code":"unauthorized","message":"a function key is required"}}"#,
    );
    let output = cli(
        &["predict", "some tweet"],
        &[
            ("TWEET_SENTIMENT_URL", Path::new(&app.base)),
            ("TWEET_SENTIMENT_KEY", Path::new(KEY)),
        ],
        "",
    );
    let (_, headers, body) = app.request.join().unwrap();
    assert!(headers.iter().any(|h| h.starts_with("x-functions-key:")));
    assert_eq!(
        serde_json::from_slice::<Value>(&body).unwrap(),
        json!({"text": "some tweet"})
    );
    assert!(!output.status.success());
    let message = stderr(&output);
    assert!(message.contains("401"), "{message}");
    assert!(message.contains("a function key is required"), "{message}");
    assert!(
        message.contains("--key"),
        "the error says how to fix it: {message}"
    );
    assert!(!message.contains(KEY) && !stdout(&output).contains(KEY));
}

#[tokio::test]
async fn mistakes_and_failures_are_reported_with_a_failing_exit_status() {
    let app = start().await;
    let refused = |output: &Output, needle: &str| {
        assert!(!output.status.success(), "should fail: {}", stdout(output));
        let message = stderr(output);
        assert!(message.contains(needle), "{needle:?} not in: {message}");
    };
    refused(
        &cli(
            &["predict", "--url", &app.api, "--label", "1", "one", "two"],
            &[],
            "",
        ),
        "--label goes with a single text",
    );
    refused(
        &cli(
            &["predict", "--url", &app.api, "--label", "2", "one"],
            &[],
            "",
        ),
        "--label",
    );
    refused(
        &cli(
            &["predict", "--label", "1", "one"],
            &[("MODELS_DIR", &app.models)],
            "",
        ),
        "--url",
    );
    refused(
        &cli(&["predict", "--url", &app.api, "   "], &[], ""),
        "text is empty",
    );
    refused(
        &cli(
            &[
                "predict",
                "--url",
                &format!("{}/nope", app.handler.base),
                "hi",
            ],
            &[],
            "",
        ),
        "404",
    );

    // An app without a model: its 503 and its words reach the user.
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("models");
    std::fs::create_dir_all(&empty).unwrap();
    let unready = Handler::start(&[
        ("MODELS_DIR", empty.to_str().unwrap()),
        ("DATA_DIR", dir.path().join("data").to_str().unwrap()),
    ]);
    unready.wait_ready(&reqwest::Client::new()).await;
    let output = cli(&["predict", "--url", &unready.url("/api"), "hi"], &[], "");
    refused(&output, "503");
    refused(&output, "no model is loaded yet");

    // Nobody listening.
    let closed = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = closed.local_addr().unwrap();
    drop(closed);
    refused(
        &cli(
            &["predict", "--url", &format!("http://{address}/api"), "hi"],
            &[],
            "",
        ),
        "could not reach",
    );
}
