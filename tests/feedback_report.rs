//! End to end through the binary, as the Functions host drives it: predictions with inline labels,
//! feedback later (with unknown ids and duplicates), the timer invocation, and a report whose
//! figures equal an independent computation from the API's own answers.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::start_local;
use serde_json::{json, Value};

async fn post(client: &reqwest::Client, url: String, body: Value) -> (u16, Value) {
    let r = client.post(url).json(&body).send().await.unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

#[tokio::test]
async fn predictions_feedback_and_the_timer_report() {
    let local = start_local(|_| {}, &[("LOG_BATCH_MILLISECONDS", "50")]).await;
    let (mut handler, client, data) = (local.handler, local.client, local.data);

    let texts = [
        "I love this flight :)",
        "the crew was great",
        "thanks",
        "lost my bag",
        "I hate this flight",
        "delayed again :(",
        "awful",
        "great crew, thanks :)",
        "zzz",
        "the flight",
    ];
    // (predicted positive, true label) per labelled prediction, from the API's answers.
    let mut labelled: Vec<(bool, u8)> = Vec::new();
    let mut later: Vec<(String, bool, u8)> = Vec::new();
    let mut total = 0;
    for (i, text) in texts.iter().cycle().take(30).enumerate() {
        let truth = u8::from(i % 4 != 0);
        let inline = i < 12;
        let body = if inline {
            json!({ "text": text, "true_label": truth })
        } else {
            json!({ "text": text })
        };
        let (status, answer) = post(&client, handler.url("/api/predict"), body).await;
        assert_eq!(status, 200, "{answer}");
        total += 1;
        let positive = answer["sentiment"] == "positive";
        if inline {
            labelled.push((positive, truth));
        } else if i < 26 {
            later.push((answer["id"].as_str().unwrap().to_owned(), positive, truth));
        }
    }
    let (status, batch) = post(
        &client,
        handler.url("/api/predict"),
        json!({ "texts": ["a", "b"] }),
    )
    .await;
    assert_eq!(status, 200, "{batch}");
    total += 2;

    for (id, positive, truth) in &later {
        let (status, body) = post(
            &client,
            handler.url("/api/feedback"),
            json!({ "id": id, "true_label": truth }),
        )
        .await;
        assert_eq!(status, 201, "{body}");
        assert_eq!(body["stored"], true);
        labelled.push((*positive, *truth));
    }
    // A duplicate (ignored: the first label stands) and an id nobody predicted.
    let (status, _) = post(
        &client,
        handler.url("/api/feedback"),
        json!({ "id": later[0].0, "true_label": 1 - later[0].2 }),
    )
    .await;
    assert_eq!(status, 201);
    let (status, _) = post(
        &client,
        handler.url("/api/feedback"),
        json!({ "id": uuid::Uuid::now_v7(), "true_label": 1 }),
    )
    .await;
    assert_eq!(status, 201);

    let envelope = json!({
        "Data": {"timer": {"Schedule": {"AdjustForDST": true}, "ScheduleStatus": null, "IsPastDue": false}},
        "Metadata": {"sys": {"MethodName": "metrics-report", "UtcNow": "2026-11-25T10:15:00Z"}}
    });
    let r = client
        .post(handler.url("/metrics-report"))
        .header("x-azure-functions-invocationid", "timer-run-1")
        .json(&envelope)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let invoke: Value = r.json().await.unwrap();
    assert!(invoke["Outputs"].is_object());
    assert!(invoke["ReturnValue"].is_null());
    assert!(
        invoke["Logs"][0]
            .as_str()
            .unwrap()
            .contains("32 new predictions"),
        "{invoke}"
    );

    // The independent computation.
    let (mut tp, mut fp, mut tn, mut fn_) = (0u64, 0u64, 0u64, 0u64);
    for (positive, truth) in &labelled {
        match (positive, truth) {
            (true, 1) => tp += 1,
            (true, _) => fp += 1,
            (false, 0) => tn += 1,
            (false, _) => fn_ += 1,
        }
    }
    let report: Value =
        serde_json::from_slice(&std::fs::read(data.join("reports/latest.json")).unwrap()).unwrap();
    let all = &report["overall"]["since_start"];
    assert_eq!(all["predictions"], total);
    assert_eq!(all["labelled"], labelled.len());
    assert_eq!(
        all["confusion"],
        json!({"tp": tp, "fp": fp, "tn": tn, "fn": fn_})
    );
    let (tp, fp, tn, fn_) = (tp as f64, fp as f64, tn as f64, fn_ as f64);
    let macro_f1 = (2.0 * tp / (2.0 * tp + fp + fn_) + 2.0 * tn / (2.0 * tn + fp + fn_)) / 2.0;
    assert!((all["macro_f1"].as_f64().unwrap() - macro_f1).abs() < 1e-12);
    assert_eq!(report["feedback"]["joined"], later.len());
    assert_eq!(report["feedback"]["duplicate"], 1);
    assert_eq!(report["feedback_waiting"], 1);
    assert!(data.join("reports/latest.html").is_file());

    // The page route serves the same report.
    let served: Value = common::get_json(&client, handler.url("/api/report")).await;
    assert_eq!(served["overall"], report["overall"]);

    // One structured line per run, for the alert rules.
    let line = handler.wait_for_log(
        |l| l.contains("\"event\":\"metrics_report\""),
        Duration::from_secs(5),
    );
    let parsed: Value = serde_json::from_str(&line).unwrap();
    assert_eq!(parsed["fields"]["predictions"], total);
    assert_eq!(parsed["fields"]["bad_buzz"], false);
    assert_eq!(parsed["span"]["invocation_id"], "timer-run-1");

    // A second timer run reads nothing new and changes no figure.
    let r = client
        .post(handler.url("/metrics-report"))
        .json(&envelope)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let again: Value =
        serde_json::from_slice(&std::fs::read(data.join("reports/latest.json")).unwrap()).unwrap();
    assert_eq!(again["overall"], report["overall"]);
    assert_eq!(again["run"]["prediction_records"], 0);

    // Every prediction record was appended; none is left waiting.
    let health: Value = common::get_json(&client, handler.url("/api/health")).await;
    assert_eq!(health["log"]["pending"], 0);
    assert_eq!(health["log"]["appended"], total);
    assert!(handler.terminate().success());
}

#[tokio::test]
async fn text_modes_and_the_final_flush_on_shutdown() {
    for (mode, check) in [
        (
            "sha256",
            (|t: &Value| t.as_str().unwrap().starts_with("sha256:")) as fn(&Value) -> bool,
        ),
        ("none", |t: &Value| t.is_null()),
        ("full", |t: &Value| t == "I love this flight :)"),
    ] {
        // A long batch interval: only the shutdown flush can write the record in time.
        let local = start_local(
            |_| {},
            &[("LOG_TEXT", mode), ("LOG_BATCH_MILLISECONDS", "600000")],
        )
        .await;
        let (mut handler, client, data) = (local.handler, local.client, local.data);
        let (status, _) = post(
            &client,
            handler.url("/api/predict"),
            json!({"text": "I love this flight :)", "true_label": 1}),
        )
        .await;
        assert_eq!(status, 200);
        assert!(handler.terminate().success());
        let mut records: HashMap<String, Value> = HashMap::new();
        for entry in walk(&data.join("logs/predictions")) {
            for line in std::fs::read_to_string(entry).unwrap().lines() {
                let v: Value = serde_json::from_str(line).unwrap();
                records.insert(v["id"].as_str().unwrap().to_owned(), v);
            }
        }
        assert_eq!(
            records.len(),
            1,
            "{mode}: the record was flushed at shutdown"
        );
        let record = records.values().next().unwrap();
        assert!(check(&record["text"]), "{mode}: {record}");
        assert_eq!(record["true_label"], 1);
        assert_eq!(record["role"], "champion");
    }
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        if entry.path().is_dir() {
            files.extend(walk(&entry.path()));
        } else if !entry.file_name().to_string_lossy().starts_with('.') {
            // Dot files are the local store's own (block counters), not blobs.
            files.push(entry.path());
        }
    }
    files
}

#[tokio::test]
async fn a_challenger_scores_in_shadow_and_shares_the_feedback() {
    let local = start_local(
        |models| {
            let pointer = r#"{"name":"fixture-transformer","version":"1"}"#;
            std::fs::write(models.join("challenger.json"), pointer).unwrap();
        },
        &[("LOG_BATCH_MILLISECONDS", "50")],
    )
    .await;
    let (mut handler, client, data) = (local.handler, local.client, local.data);
    let health = handler
        .wait_health(&client, Duration::from_secs(30), |h| {
            !h["challenger"].is_null()
        })
        .await;
    assert_eq!(health["challenger"]["name"], "fixture-transformer");

    let (status, answer) = post(
        &client,
        handler.url("/api/predict"),
        json!({ "texts": ["I love this flight :)", "awful", "the crew"] }),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    // The caller only ever sees the champion.
    for p in answer["predictions"].as_array().unwrap() {
        assert_eq!(p["model"]["name"], "fixture-nb");
    }
    let first = answer["predictions"][0]["id"].as_str().unwrap().to_owned();
    let (status, _) = post(
        &client,
        handler.url("/api/feedback"),
        json!({ "id": first, "true_label": 1 }),
    )
    .await;
    assert_eq!(status, 201);

    // Shadow records are appended off the request path: wait for them, then report.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let health: Value = common::get_json(&client, handler.url("/api/health")).await;
        if health["log"]["appended"] == 6 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "shadow records never appended: {health}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let r = client
        .post(handler.url("/metrics-report"))
        .json(&json!({"Data": {}, "Metadata": {}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let report: Value =
        serde_json::from_slice(&std::fs::read(data.join("reports/latest.json")).unwrap()).unwrap();
    assert_eq!(
        report["overall"]["since_start"]["predictions"], 3,
        "overall counts the champion only"
    );
    let models: HashMap<String, &Value> = report["models"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                format!(
                    "{}/{}",
                    m["name"].as_str().unwrap(),
                    m["role"].as_str().unwrap()
                ),
                m,
            )
        })
        .collect();
    for key in ["fixture-nb/champion", "fixture-transformer/challenger"] {
        let since_start = &models[key]["windows"]["since_start"];
        assert_eq!(since_start["predictions"], 3, "{key}");
        assert_eq!(
            since_start["labelled"], 1,
            "{key}: one feedback labels both"
        );
    }
    assert_eq!(report["feedback"]["joined"], 1);
    assert!(handler.terminate().success());
}
