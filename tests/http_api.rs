//! The HTTP API: bodies, statuses and routes against the library's server run in-process, and the
//! handler binary driven as the Functions host drives it (readiness on `/`, a timer envelope on
//! `/<function>`, the invocation id in the log, SIGTERM to stop). Local-folder store.

mod common;

use std::time::Duration;

use common::Handler;
use serde_json::{json, Value};

/// A server under test: in-process, or the binary as the host runs it.
struct Running<S> {
    server: S,
    base: String,
    client: reqwest::Client,
}

async fn start() -> Running<common::InProcess> {
    let server = common::InProcess::start(|_| {}, &[]).await;
    Running {
        base: server.base.clone(),
        client: server.client.clone(),
        server,
    }
}

async fn start_process() -> Running<common::LocalApi> {
    let api = common::start_local(|_| {}, &[]).await;
    Running {
        base: api.handler.base.clone(),
        client: api.client.clone(),
        server: api,
    }
}

impl<S> Running<S> {
    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    async fn post(&self, path: &str, body: impl Into<reqwest::Body>) -> (u16, Value) {
        let response = self
            .client
            .post(self.url(path))
            .header("content-type", "application/json")
            .header(
                "x-azure-functions-invocationid",
                "3f1c9a52-0000-4000-8000-000000000001",
            )
            .body(body)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text:?}")),
        )
    }
}

fn assert_error(status: u16, body: &Value, expected_status: u16, code: &str) {
    assert_eq!(status, expected_status, "{body}");
    assert_eq!(body["error"]["code"], code, "{body}");
    assert!(
        !body["error"]["message"].as_str().unwrap().is_empty(),
        "{body}"
    );
}

#[tokio::test]
async fn scores_single_and_batch() {
    let api = start().await;
    let (status, body) = api
        .post("/api/predict", r#"{"text":"I love this flight :)"}"#)
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["sentiment"], "positive");
    assert!(body["score"].as_f64().unwrap() > 0.5);
    assert_eq!(body["model"], json!({"name": "fixture-nb", "version": "1"}));
    let id = uuid::Uuid::parse_str(body["id"].as_str().unwrap()).unwrap();
    assert_eq!(id.get_version_num(), 7);

    let texts = [
        "I hate this flight, delayed again :(",
        "the crew was great",
        "ok",
    ];
    let (status, body) = api
        .post("/api/predict", json!({ "texts": texts }).to_string())
        .await;
    assert_eq!(status, 200, "{body}");
    let predictions = body["predictions"].as_array().unwrap();
    assert_eq!(predictions.len(), 3);
    assert_eq!(predictions[0]["sentiment"], "negative");
    assert_eq!(predictions[1]["sentiment"], "positive");
    let ids: std::collections::HashSet<_> = predictions
        .iter()
        .map(|p| p["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), 3, "every prediction gets its own id");

    // The batch scores equal the single-text scores (NB ignores padding).
    for (text, prediction) in texts.iter().zip(predictions) {
        let (_, single) = api
            .post("/api/predict", json!({ "text": text }).to_string())
            .await;
        let (a, b) = (
            single["score"].as_f64().unwrap(),
            prediction["score"].as_f64().unwrap(),
        );
        assert!((a - b).abs() < 1e-6, "{text}: {a} vs {b}");
    }

    let (status, body) = api
        .post("/api/predict", r#"{"text":"thanks","true_label":1}"#)
        .await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn bad_bodies_get_clear_4xx_errors() {
    let api = start().await;
    let too_long = "a".repeat(5_001);
    let too_many: Vec<String> = (0..65).map(|i| format!("tweet {i}")).collect();
    let cases: Vec<(String, u16, &str)> = vec![
        ("{not json".into(), 400, "invalid_json"),
        ("".into(), 400, "invalid_json"),
        (r#"{"text":""}"#.into(), 400, "invalid_input"),
        (r#"{"text":"   \n\t "}"#.into(), 400, "invalid_input"),
        (
            json!({ "text": too_long }).to_string(),
            400,
            "invalid_input",
        ),
        (
            json!({ "texts": too_many }).to_string(),
            400,
            "invalid_input",
        ),
        (r#"{"texts":[]}"#.into(), 400, "invalid_input"),
        (r#"{"texts":["fine",""]}"#.into(), 400, "invalid_input"),
        (r#"{"text":42}"#.into(), 400, "invalid_request"),
        (r#"{"texts":"not a list"}"#.into(), 400, "invalid_request"),
        (
            r#"{"text":"a","texts":["b"]}"#.into(),
            400,
            "invalid_request",
        ),
        (r#"{"txt":"typo"}"#.into(), 400, "invalid_request"),
        (r#"{}"#.into(), 400, "invalid_request"),
        (r#"[1,2]"#.into(), 400, "invalid_request"),
        (
            r#"{"text":"a","true_label":2}"#.into(),
            400,
            "invalid_input",
        ),
        (
            r#"{"text":"a","true_label":-1}"#.into(),
            400,
            "invalid_request",
        ),
        (
            r#"{"text":"a","true_label":"1"}"#.into(),
            400,
            "invalid_request",
        ),
        (
            r#"{"texts":["a"],"true_label":1}"#.into(),
            400,
            "invalid_request",
        ),
    ];
    for (body, status, code) in cases {
        let (got_status, got) = api.post("/api/predict", body.clone()).await;
        assert_eq!(got_status, status, "body {body:?} answered {got}");
        assert_error(got_status, &got, status, code);
    }

    // A 5,000-character text is accepted: the limit is inclusive.
    let (status, body) = api
        .post(
            "/api/predict",
            json!({ "text": "love ".repeat(1000).trim_end() }).to_string(),
        )
        .await;
    assert_eq!(status, 200, "{body}");

    // Over 256 KB: refused before being read, whether the length is declared or streamed.
    let big = json!({ "text": "x".repeat(300 * 1024) }).to_string();
    let (status, body) = api.post("/api/predict", big.clone()).await;
    assert_error(status, &body, 413, "payload_too_large");
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> = big
        .into_bytes()
        .chunks(16 * 1024)
        .map(|c| Ok(c.to_vec()))
        .collect();
    let streamed = reqwest::Body::wrap_stream(futures::stream::iter(chunks));
    let (status, body) = api.post("/api/predict", streamed).await;
    assert_error(status, &body, 413, "payload_too_large");

    // Still healthy after all that.
    let (status, _) = api.post("/api/predict", r#"{"text":"still up"}"#).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn routes_methods_and_the_timer_envelope() {
    let mut api = start_process().await;
    let health = common::get_json(&api.client, api.url("/api/health")).await;
    assert_eq!(health["model"]["name"], "fixture-nb");
    assert_eq!(health["model"]["kind"], "naive-bayes");

    let r = api
        .client
        .get(api.url("/api/nothing"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "not_found");

    let r = api
        .client
        .get(api.url("/api/predict"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 405);

    let (status, body) = api
        .post("/api/feedback", r#"{"id":"not-a-uuid","true_label":1}"#)
        .await;
    assert_error(status, &body, 400, "invalid_request");
    let (status, body) = api
        .post(
            "/api/feedback",
            r#"{"id":"0193f1a4-0000-7000-8000-000000000000","true_label":3}"#,
        )
        .await;
    assert_error(status, &body, 400, "invalid_input");
    let (status, body) = api.post("/metrics-report", "not an envelope").await;
    assert_error(status, &body, 400, "invalid_json");

    // Log lines are JSON and carry the host's invocation id.
    let line = api.server.handler.wait_for_log(
        |l| l.contains("3f1c9a52-0000-4000-8000-000000000001"),
        Duration::from_secs(5),
    );
    let parsed: Value = serde_json::from_str(&line).unwrap();
    assert_eq!(
        parsed["span"]["invocation_id"],
        "3f1c9a52-0000-4000-8000-000000000001"
    );

    let status = api.server.handler.terminate();
    assert!(status.success(), "graceful stop on SIGTERM, got {status}");
    assert!(api.server.handler.log.iter().any(|l| l.contains("stopped")));
}

#[tokio::test]
async fn no_model_means_503_with_a_json_body() {
    let dir = tempfile::tempdir().unwrap();
    let empty_models = dir.path().join("models");
    std::fs::create_dir_all(&empty_models).unwrap();
    let handler = Handler::start(&[
        ("MODELS_DIR", empty_models.to_str().unwrap()),
        ("DATA_DIR", dir.path().join("data").to_str().unwrap()),
    ]);
    let client = reqwest::Client::new();
    handler.wait_ready(&client).await;
    let r = client.get(handler.url("/api/health")).send().await.unwrap();
    assert_eq!(r.status(), 503);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["status"], "no_model");
    let r = client
        .post(handler.url("/api/predict"))
        .header("content-type", "application/json")
        .body(r#"{"text":"hello"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 503);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "no_model");
}
