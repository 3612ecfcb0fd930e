import json

from training import compare, data, nb


def test_compare_writes_report_and_champion(tiny_data_dir, tmp_path):
    ds = data.load_dataset(tiny_data_dir)
    models = tmp_path / "models"
    nb.train(ds.train, ds.val, out_dir=models, version="2000.01.01-1", data_desc="tiny; alpha on val")
    rc = compare.main(["--data-dir", str(tiny_data_dir), "--models-dir", str(models), "--no-rust"])
    assert rc == 0
    report = json.loads((models / "COMPARISON.json").read_text())
    (row,) = report["models"]
    assert row["id"] == "naive-bayes/2000.01.01-1"
    for key in ("heldout", "tweeteval_test", "tweeteval_select"):
        assert {"accuracy", "macro_f1", "roc_auc", "negative_f1", "positive_recall"} <= set(row[key])
    assert row["latency_rust"] is None and row["latency_onnxruntime"]["p95_ms"] > 0
    assert report["baselines"][0]["name"] == "vader"
    assert json.loads((models / "champion.json").read_text()) == {"name": "naive-bayes", "version": "2000.01.01-1"}
    md = (models / "COMPARISON.md").read_text()
    assert "Rust latency is n/a" in md and "## Champion" in md


def test_champion_rule_respects_latency_budget():
    def row(name, f1, p95, size=1):
        return {"name": name, "tweeteval_select": {"macro_f1": f1}, "file_bytes": size,
                "latency_rust": {"latency_ms_p95": p95}, "latency_onnxruntime": {"p95_ms": 0.1}}

    rows = [row("fast", 0.7, 1.0), row("slow", 0.9, compare.LATENCY_BUDGET_MS + 1), row("mid", 0.8, 10.0)]
    assert compare.pick_champion(rows)["name"] == "mid"
    assert compare.pick_champion([row("slow", 0.9, 1e9)]) is None
