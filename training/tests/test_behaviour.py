import json

import pytest

from training import behaviour


def test_committed_suite_is_valid_and_large_enough():
    suite = behaviour.load_suite()
    kinds = {t["kind"] for t in suite["tests"]}
    assert kinds == {"mft", "inv", "dir"}
    assert len(behaviour.texts_of(suite)) >= 150
    cats = {(t["kind"], t["category"]) for t in suite["tests"]}
    for c in ("complaint_as_fact", "polite_complaint", "negation", "sarcasm_hashtag", "emoji_only", "question_problem"):
        assert ("mft", c) in cats
    for c in ("airline_name", "handle", "url", "number"):
        assert ("inv", c) in cats
    assert {t["expect"] for t in suite["tests"] if t["kind"] == "dir"} == {"up", "down"}
    assert {t["label"] for t in suite["tests"] if t["kind"] == "mft"} == {0, 1}


SMALL = {"version": 1, "tests": [
    {"kind": "mft", "category": "pos", "text": "good", "label": 1},
    {"kind": "mft", "category": "pos", "text": "fine", "label": 1},
    {"kind": "mft", "category": "neg", "text": "bad", "label": 0},
    {"kind": "inv", "category": "name", "texts": ["good A", "good B"]},
    {"kind": "inv", "category": "name", "texts": ["bad A", "good C"]},
    {"kind": "dir", "category": "not", "base": "good", "changed": "not good", "expect": "down"},
    {"kind": "dir", "category": "not", "base": "bad", "changed": "not bad", "expect": "up"},
]}


def fake_scores(texts):
    table = {"good": 0.9, "fine": 0.6, "bad": 0.1, "good A": 0.8, "good B": 0.7, "bad A": 0.2, "good C": 0.9,
             "not good": 0.3, "not bad": 0.05}
    return [table[t] for t in texts]


def test_evaluate_counts_per_category_at_the_threshold():
    r = behaviour.evaluate(fake_scores, 0.5, SMALL)
    assert r["per_category"]["mft:pos"] == {"n": 2, "passed": 2, "pass_rate": 1.0}
    assert r["per_category"]["mft:neg"]["pass_rate"] == 1.0
    assert r["per_category"]["inv:name"]["pass_rate"] == 0.5
    assert r["per_category"]["dir:not"]["pass_rate"] == 0.5  # "not bad" moved down
    assert r["overall"] == {"n": 7, "passed": 5, "pass_rate": round(5 / 7, 4)}
    assert r["per_kind"]["mft"]["n"] == 3 and r["distinct_texts"] == 9
    assert len(r["failures"]) == 2
    # A higher threshold turns "fine" negative: the decision follows the manifest threshold.
    assert behaviour.evaluate(fake_scores, 0.6667, SMALL)["per_category"]["mft:pos"]["pass_rate"] == 0.5


def test_load_suite_rejects_malformed(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps({"version": 1, "tests": [{"kind": "dir", "category": "x", "base": "a", "changed": "b",
                                                          "expect": "sideways"}]}))
    with pytest.raises(ValueError):
        behaviour.load_suite(path)
