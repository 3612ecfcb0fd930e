import json
import xml.etree.ElementTree as ET

import numpy as np

from training import common, compare, data, nb


def test_compare_writes_report_and_champion(tiny_data_dir, tmp_path):
    ds = data.load_dataset(tiny_data_dir)
    models = tmp_path / "models"
    nb.train(ds.train, ds.val, out_dir=models, version="2000.01.01-1", data_desc="tiny; alpha on val")
    (models / "champion.json").write_text(json.dumps({"name": "naive-bayes", "version": "1999.01.01-1"}))
    rc = compare.main(["--data-dir", str(tiny_data_dir), "--models-dir", str(models), "--no-rust", "--no-mlflow"])
    assert rc == 0
    report = json.loads((models / "COMPARISON.json").read_text())
    (row,) = report["models"]
    assert row["id"] == "naive-bayes/2000.01.01-1"
    for key in ("tweeteval_val", "tweeteval_test"):
        assert {"accuracy", "macro_f1", "roc_auc", "negative_recall", "positive_recall"} <= set(row[key])
    lo, hi = row["tweeteval_val_macro_f1_ci"]
    assert lo <= row["tweeteval_val"]["macro_f1"] <= hi
    assert row["threshold"] == common.cost_threshold()
    assert {"before", "after"} == set(row["ece_val"])
    assert row["behaviour"]["overall"]["n"] >= 150
    assert row["latency_rust"] is None and row["latency_onnxruntime"]["p95_ms"] > 0
    assert report["baselines"][0]["name"] == "vader"
    assert json.loads((models / "champion.json").read_text()) == {"name": "naive-bayes", "version": "2000.01.01-1"}
    md = (models / "COMPARISON.md").read_text()
    assert "Rust latency is n/a" in md and "## Champion" in md and "reliability.svg" in md
    assert "mft:complaint_as_fact" in md
    ET.fromstring((models / "reliability.svg").read_text())  # well-formed XML


def _row(name, f1, p95, behaviour=0.9, size=1):
    return {"id": name, "name": name, "tweeteval_val": {"macro_f1": f1}, "file_bytes": size,
            "latency_rust": {"latency_ms_p95": p95}, "latency_onnxruntime": {"p95_ms": 0.1},
            "behaviour": {"overall": {"pass_rate": behaviour}}}


def test_champion_rule_respects_latency_budget():
    rows = [_row("fast", 0.7, 1.0), _row("slow", 0.9, compare.LATENCY_BUDGET_MS + 1), _row("mid", 0.8, 10.0)]
    assert compare.pick_champion(rows)["name"] == "mid"
    assert compare.pick_champion([_row("slow", 0.9, 1e9)]) is None


def test_champion_rule_refuses_worse_behaviour_than_the_previous_champion():
    old = _row("old", 0.7, 1.0, behaviour=0.8)
    better_f1_worse_suite = _row("new", 0.9, 1.0, behaviour=0.75)
    assert compare.pick_champion([old, better_f1_worse_suite], previous=old)["name"] == "old"
    assert "behaviour" in compare.refusal_reason(better_f1_worse_suite, old)
    assert compare.pick_champion([old, better_f1_worse_suite], previous=None)["name"] == "new"
    assert compare.refusal_reason(old, old) is None


def test_once_a_version_reaches_the_behaviour_target_no_champion_may_be_below_it():
    old = _row("old", 0.88, 1.0, behaviour=0.86)
    better_val = _row("val", 0.89, 1.0, behaviour=0.87)
    catches_complaints = _row("suite", 0.87, 1.0, behaviour=0.93)
    assert compare.pick_champion([old, better_val, catches_complaints], previous=old)["name"] == "suite"
    assert "target" in compare.refusal_reason(better_val, old, [old, better_val, catches_complaints])
    assert compare.refusal_reason(catches_complaints, old, [old, better_val, catches_complaints]) is None
    # No version reaches the target: the champion in place's rate stays the floor.
    assert compare.pick_champion([old, better_val], previous=old)["name"] == "val"
    # A version that reaches the target but is too slow does not raise the floor.
    slow = _row("slow", 0.80, compare.LATENCY_BUDGET_MS + 1, behaviour=0.95)
    assert compare.pick_champion([old, better_val, slow], previous=old)["name"] == "val"


def test_bootstrap_interval_is_seeded_and_brackets_the_estimate():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 400)
    pred = np.where(rng.random(400) < 0.8, y, 1 - y)
    ci = compare.bootstrap_macro_f1(y, pred)
    assert ci == compare.bootstrap_macro_f1(y, pred)
    f1 = common.classification_metrics(y, pred.astype(float))["macro_f1"]
    assert ci[0] < f1 < ci[1] and ci[1] - ci[0] < 0.15


def test_temperature_calibration_and_ece():
    rng = np.random.default_rng(1)
    true_margin = rng.normal(0, 2, 5000)
    y = (rng.random(5000) < common.sigmoid(true_margin)).astype(int)
    overconfident = true_margin * 3  # a model 3x too sure of itself
    t = common.fit_temperature(y, overconfident)
    assert 2.5 < t < 3.5
    before = common.expected_calibration_error(y, common.sigmoid(overconfident))
    after = common.expected_calibration_error(y, common.sigmoid(overconfident / t))
    assert after < before / 2
    assert common.cost_threshold(2.0) == 0.6667
    assert np.allclose(common.to_p_pos(np.array([[0.0, 2.0]]), "logits", 2.0), common.sigmoid(1.0))


def test_champion_rule_skips_versions_trained_on_tweeteval_val():
    contaminated = {**_row("old-minilm", 0.95, 1.0), "trained_on_tweeteval_val": True}
    clean = _row("new", 0.85, 1.0)
    assert compare.pick_champion([contaminated, clean])["name"] == "new"
    assert "TweetEval val" in compare.refusal_reason(contaminated, None)
    assert compare.trained_on_tweeteval_val("sentiment140 slice + TweetEval val tune part 791")
    assert not compare.trained_on_tweeteval_val("human-labelled pool 34751 tweets")
