"""Feedback exports as training data: read, checked, split by time, weighted; NB retrains on them."""

import hashlib
import json

import pytest

from training import feedback
from training.data import Split


def write_export(folder, rows, name="20261129T100000Z_20261129T120000Z", sha=None):
    """An export as `tweet-sentiment export-labels` writes it: rows, then the manifest."""
    folder.mkdir(parents=True, exist_ok=True)
    raw = "".join(json.dumps(r, separators=(",", ":")) + "\n" for r in rows).encode()
    (folder / f"{name}.jsonl").write_bytes(raw)
    manifest = {"dataset": f"feedback/{name}.jsonl", "rows": len(rows),
                "sha256": sha or "sha256:" + hashlib.sha256(raw).hexdigest()}
    (folder / f"{name}.manifest.json").write_text(json.dumps(manifest))
    return folder


def row(i, text, label, minute):
    return {"id": f"00000000-0000-0000-0000-{i:012d}", "ts": f"2026-11-29T10:{minute:02d}:00Z", "text": text,
            "label": label, "label_source": "inline", "model": {"name": "nb", "version": "1"}, "score": 0.5}


def test_an_export_is_read_checked_and_split_by_time(tmp_path):
    rows = [row(i, f"tweet {i} &amp; more", i % 2, 50 - i) for i in range(10)]
    fb = feedback.load_feedback(write_export(tmp_path, rows))
    assert len(fb.rows) == 10
    older, newest = fb.recent_holdout(0.2)
    assert (len(older), len(newest)) == (8, 2)
    # The newest by prediction time are rows 0 and 1 (minutes 50 and 49).
    assert newest.texts == ["tweet 1 & more", "tweet 0 & more"], "entities decoded as the pool does"
    assert newest.labels == [1, 0]


def test_a_rows_file_that_does_not_match_its_manifest_is_refused(tmp_path):
    write_export(tmp_path, [row(1, "a", 1, 1)], sha="sha256:" + "0" * 64)
    with pytest.raises(ValueError, match="does not match"):
        feedback.load_feedback(tmp_path)


def test_two_exports_count_a_prediction_once(tmp_path):
    write_export(tmp_path, [row(1, "a", 1, 1), row(2, "b", 0, 2)], name="a_b")
    write_export(tmp_path, [row(2, "b", 1, 2), row(3, "c", 0, 3)], name="b_c")
    fb = feedback.load_feedback(tmp_path)
    assert [(r["text"], r["label"]) for r in fb.rows] == [("a", 1), ("b", 1), ("c", 0)]


def test_weighting_repeats_the_feedback():
    out = feedback.weighted(Split(["base"], [0]), Split(["fb"], [1]), 3)
    assert out.texts == ["base", "fb", "fb", "fb"] and out.labels == [0, 1, 1, 1]
    with pytest.raises(ValueError):
        feedback.weighted(Split(), Split(), 0)


def test_naive_bayes_retrains_with_feedback_and_scores_the_newest_part(tiny_data_dir, tmp_path, capsys):
    from training import nb

    out = tmp_path / "models"
    assert nb.main(["--data-dir", str(tiny_data_dir), "--out-dir", str(out), "--version", "1"]) == 0
    # Feedback in words the base data never uses, labelled the "wrong" way round for them.
    rows = [row(i, f"{'zorbly' if i % 2 else 'quaxed'} flight {i}", i % 2, i) for i in range(40)]
    export = write_export(tmp_path / "export", rows)
    capsys.readouterr()
    assert nb.main(["--data-dir", str(tiny_data_dir), "--out-dir", str(out), "--version", "2", "--feedback",
                    str(export), "--feedback-weight", "3", "--champion", str(out / "naive-bayes" / "1")]) == 0
    summary = json.loads(capsys.readouterr().out)
    holdout = summary["feedback_holdout"]
    assert holdout["candidate"]["rows"] == holdout["champion"]["rows"] == 8
    assert holdout["candidate"]["macro_f1"] == 1.0 > holdout["champion"]["macro_f1"]
    data = json.loads((out / "naive-bayes" / "2" / "manifest.json").read_text())["training"]["data"]
    assert "plus 32 feedback tweets ×3" in data and "the latest 8 kept apart" in data
