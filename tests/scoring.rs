//! The scorer on the fixture versions of every kind: the same token ids and scores as
//! onnxruntime (tests/fixtures/expected.json), batches equal to single texts, and refusal of
//! anything that does not verify.

mod common;

use common::{assert_scores_as_alone, fixture_version_dir, fixtures, KINDS};
use serde_json::Value;
use tweet_sentiment::commands::load_version_dir;
use tweet_sentiment::model::{ModelError, MAX_BATCH};

fn expected() -> Value {
    serde_json::from_slice(&std::fs::read(fixtures().join("expected.json")).unwrap()).unwrap()
}

#[test]
fn every_kind_matches_onnxruntime() {
    let expected = expected();
    for kind in KINDS {
        let scorer = load_version_dir(&fixture_version_dir(kind)).unwrap();
        let cases = expected[format!("{kind}/1")].as_array().unwrap();
        assert!(!cases.is_empty());
        for case in cases {
            let text = case["text"].as_str().unwrap();
            let ids: Vec<u32> = case["token_ids"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_u64().unwrap() as u32)
                .collect();
            assert_eq!(scorer.token_ids(&[text]).unwrap()[0], ids, "{kind}: {text}");
            let score = scorer.score(&[text]).unwrap()[0] as f64;
            let want = case["score"].as_f64().unwrap();
            assert!(
                (score - want).abs() < 1e-5,
                "{kind}: {text}: {score} vs {want}"
            );
        }
    }
}

#[test]
fn scores_point_the_right_way_for_every_kind() {
    for kind in KINDS {
        let scorer = load_version_dir(&fixture_version_dir(kind)).unwrap();
        let scores = scorer
            .score(&["I love this flight :)", "I hate this, awful :("])
            .unwrap();
        assert!(scores[0] > 0.5 && scores[1] < 0.5, "{kind}: {scores:?}");
    }
}

#[test]
fn a_batch_scores_like_its_texts_one_by_one() {
    let texts = [
        "I love this flight :)",
        "delayed again",
        "the crew was great, thanks! the crew was great",
        "zzz",
    ];
    // Masks (transformer), a zero pad row (NB) and right padding with masked pooling in the
    // LSTM's fixed-size runs all keep padding from changing a score.
    for kind in KINDS {
        let scorer = load_version_dir(&fixture_version_dir(kind)).unwrap();
        assert_scores_as_alone(&scorer, &texts, kind);
    }
}

#[test]
fn more_texts_than_max_batch_score_in_order() {
    // The plans are optimised for batches of at most MAX_BATCH; a longer list is cut into runs
    // of that size, each text keeping its place.
    let texts: Vec<String> = (0..MAX_BATCH + 9)
        .map(|i| {
            if i % 3 == 0 {
                format!("delayed again, {i} hours")
            } else {
                format!("I love this flight {i} :)")
            }
        })
        .collect();
    let texts: Vec<&str> = texts.iter().map(String::as_str).collect();
    for kind in KINDS {
        let scorer = load_version_dir(&fixture_version_dir(kind)).unwrap();
        assert_scores_as_alone(&scorer, &texts, kind);
    }
}

#[test]
fn long_texts_are_truncated_to_max_tokens() {
    let scorer = load_version_dir(&fixture_version_dir("fixture-transformer")).unwrap();
    let long = "love ".repeat(500);
    let ids = scorer.token_ids(&[long.as_str()]).unwrap();
    assert_eq!(ids[0].len(), scorer.manifest().max_tokens);
    assert!(scorer.score(&[long.as_str()]).unwrap()[0] > 0.5);
}

#[test]
fn tampered_files_and_manifests_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let version = common::version_copy("fixture-lstm", "2", dir.path());

    let model = version.join("model.onnx");
    let mut bytes = std::fs::read(&model).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(&model, &bytes).unwrap();
    let err = load_version_dir(&version).unwrap_err();
    let err = err.downcast::<ModelError>().unwrap();
    assert!(
        matches!(err, ModelError::ChecksumMismatch { ref file, .. } if file == "model.onnx"),
        "{err}"
    );

    let broken = dir.path().join("broken");
    std::fs::create_dir_all(&broken).unwrap();
    std::fs::write(broken.join("manifest.json"), b"{\"name\":").unwrap();
    std::fs::write(broken.join("model.onnx"), b"").unwrap();
    std::fs::write(broken.join("tokenizer.json"), b"").unwrap();
    let err = load_version_dir(&broken).unwrap_err();
    assert!(matches!(
        err.downcast::<ModelError>().unwrap(),
        ModelError::InvalidManifest(_)
    ));
}

#[test]
fn a_graph_that_does_not_parse_is_refused_even_with_a_matching_digest() {
    let dir = tempfile::tempdir().unwrap();
    let version = common::version_copy("fixture-nb", "2", dir.path());
    std::fs::write(version.join("model.onnx"), b"not an onnx graph").unwrap();
    let manifest_path = version.join("manifest.json");
    let mut manifest: Value =
        serde_json::from_slice(&std::fs::read(&manifest_path).unwrap()).unwrap();
    manifest["files"]["model.onnx"] =
        tweet_sentiment::model::manifest::sha256_tag(b"not an onnx graph").into();
    std::fs::write(&manifest_path, serde_json::to_vec(&manifest).unwrap()).unwrap();
    let err = load_version_dir(&version).unwrap_err();
    assert!(matches!(
        err.downcast::<ModelError>().unwrap(),
        ModelError::Onnx(_)
    ));
}
