//! Every model version committed under `models/` scores like the Python pipeline that exported it:
//! the same token ids and onnxruntime's scores to 1e-4 (tests/fixtures/parity.json, written by
//! the training pipeline).

mod common;

use std::path::Path;

use common::assert_scores_as_alone;
use serde_json::Value;
use tweet_sentiment::commands::load_version_dir;

/// The versions committed under `models/`: what git tracks, so that a version promoted into the
/// checkout's local store for a try does not count. Outside a git checkout, every version folder.
fn committed_versions(models: &Path) -> Vec<(String, std::path::PathBuf)> {
    let tracked = std::process::Command::new("git")
        .args(["ls-files", "--", "*/manifest.json"])
        .current_dir(models)
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned());
    let mut found = Vec::new();
    for name in std::fs::read_dir(models).into_iter().flatten().flatten() {
        for version in std::fs::read_dir(name.path())
            .into_iter()
            .flatten()
            .flatten()
        {
            let key = format!(
                "{}/{}",
                name.file_name().to_string_lossy(),
                version.file_name().to_string_lossy()
            );
            let is_version = version.path().join("manifest.json").is_file();
            let is_committed = tracked
                .as_deref()
                .is_none_or(|t| t.lines().any(|l| l == format!("{key}/manifest.json")));
            if is_version && is_committed {
                found.push((key, version.path()));
            }
        }
    }
    found.sort();
    found
}

#[test]
fn committed_versions_match_python_scores_and_token_ids() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let versions = committed_versions(&root.join("models"));
    let parity_path = root.join("tests/fixtures/parity.json");
    if versions.is_empty() {
        assert!(
            !parity_path.exists(),
            "parity.json exists but no model version is committed under models/"
        );
        return;
    }
    let parity: Value = serde_json::from_slice(&std::fs::read(&parity_path).unwrap())
        .expect("tests/fixtures/parity.json is written by the training pipeline");
    let tweets: Vec<&str> = parity["tweets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect();
    assert!(
        tweets.len() >= 40,
        "the parity set has {} tweets",
        tweets.len()
    );
    for (key, dir) in versions {
        let expected = &parity["models"][&key];
        assert!(expected.is_object(), "{key} has no entry in parity.json");
        let scorer = load_version_dir(&dir).unwrap_or_else(|e| panic!("{key}: {e:#}"));
        let ids = scorer.token_ids(&tweets).unwrap();
        let mut worst = 0f64;
        for (i, tweet) in tweets.iter().enumerate() {
            let want_ids: Vec<u32> = expected["token_ids"][i]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_u64().unwrap() as u32)
                .collect();
            assert_eq!(ids[i], want_ids, "{key}: token ids of {tweet:?}");
            let score = scorer.score(&[tweet]).unwrap()[0] as f64;
            let want = expected["scores"][i].as_f64().unwrap();
            worst = worst.max((score - want).abs());
            assert!(
                (score - want).abs() < 1e-4,
                "{key}: {tweet:?} scored {score}, onnxruntime {want}"
            );
        }
        println!(
            "{key}: {} tweets, largest difference {worst:.2e}",
            tweets.len()
        );
    }
}

#[test]
fn committed_lstms_score_batches_in_fixed_runs_as_texts_alone() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let texts = [
        "my bag never showed up",
        "great crew, thanks!",
        "on hold for 45 minutes and still nobody answers the phone at all",
        "ok",
        "why does nobody answer the phone?",
        "two hour wait at the gate",
        "love it",
    ];
    let mut seen = 0;
    for (name, dir) in committed_versions(&root.join("models")) {
        if !name.starts_with("lstm/") {
            continue;
        }
        seen += 1;
        let scorer = load_version_dir(&dir).unwrap();
        assert_eq!(scorer.fixed_batch_sizes(), [4, 2], "{name}");
        // 7 texts: one run of 4, one of 2, one alone.
        assert_scores_as_alone(&scorer, &texts, &name);
    }
    assert!(seen > 0, "no LSTM version is committed under models/");
}
