//! The behaviour suite (`tests/fixtures/behaviour.json`, CheckList style) run on the served
//! champion through the HTTP path, deciding as the server decides. The pass rates must equal what
//! the training pipeline measured with onnxruntime for the same version (`models/COMPARISON.json`):
//! what was chosen is what serves.

mod common;

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use serde_json::Value;

fn read_json(path: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

#[tokio::test]
async fn the_served_champion_passes_the_suite_as_measured_in_training() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let suite = read_json(&root.join("tests/fixtures/behaviour.json"));
    let champion = read_json(&root.join("models/champion.json"));
    let comparison = read_json(&root.join("models/COMPARISON.json"));
    let measured = comparison["models"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == champion["name"] && m["version"] == champion["version"])
        .expect("COMPARISON.json covers the champion")["behaviour"]
        .clone();

    let server = common::InProcess::start_with_models(root.join("models"), &[]).await;
    let health: Value = server
        .client
        .get(server.url("/api/health"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(health["model"]["name"], champion["name"]);
    assert_eq!(health["model"]["version"], champion["version"]);

    // Every distinct text once, in batches as a client would send them.
    let tests = suite["tests"].as_array().unwrap();
    let mut texts: Vec<String> = Vec::new();
    for t in tests {
        let mut add = |v: &Value| {
            let s = v.as_str().unwrap().to_owned();
            if !texts.contains(&s) {
                texts.push(s);
            }
        };
        match t["kind"].as_str().unwrap() {
            "mft" => add(&t["text"]),
            "inv" => t["texts"].as_array().unwrap().iter().for_each(&mut add),
            _ => {
                add(&t["base"]);
                add(&t["changed"]);
            }
        }
    }
    assert!(
        texts.len() >= 150,
        "the suite has {} distinct texts",
        texts.len()
    );
    let answers: HashMap<String, (f64, bool)> = texts
        .iter()
        .cloned()
        .zip(server.predict_all(&texts).await)
        .map(|(text, p)| {
            let decision = (p["score"].as_f64().unwrap(), p["sentiment"] == "positive");
            (text, decision)
        })
        .collect();

    let mut per_category: BTreeMap<String, (u32, u32)> = BTreeMap::new();
    for t in tests {
        let passed = match t["kind"].as_str().unwrap() {
            "mft" => answers[t["text"].as_str().unwrap()].1 == (t["label"] == 1),
            "inv" => {
                let decisions: Vec<bool> = t["texts"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|x| answers[x.as_str().unwrap()].1)
                    .collect();
                decisions.iter().all(|d| *d == decisions[0])
            }
            _ => {
                let base = answers[t["base"].as_str().unwrap()].0;
                let changed = answers[t["changed"].as_str().unwrap()].0;
                if t["expect"] == "down" {
                    changed < base
                } else {
                    changed > base
                }
            }
        };
        let key = format!(
            "{}:{}",
            t["kind"].as_str().unwrap(),
            t["category"].as_str().unwrap()
        );
        let entry = per_category.entry(key).or_default();
        entry.0 += 1;
        entry.1 += u32::from(passed);
    }
    let total: u32 = per_category.values().map(|(n, _)| n).sum();
    let passed: u32 = per_category.values().map(|(_, p)| p).sum();
    println!(
        "served {}/{}: {passed}/{total} behaviour tests pass",
        champion["name"], champion["version"]
    );
    for (category, (n, p)) in &per_category {
        println!("  {category:<28} {p:>3}/{n:<3}");
        assert_eq!(
            (u64::from(*n), u64::from(*p)),
            (
                measured["per_category"][category]["n"].as_u64().unwrap(),
                measured["per_category"][category]["passed"]
                    .as_u64()
                    .unwrap()
            ),
            "{category}: the server and the training pipeline disagree"
        );
    }
    assert_eq!(
        u64::from(passed),
        measured["overall"]["passed"].as_u64().unwrap()
    );
    server.stop().await.unwrap();
}
