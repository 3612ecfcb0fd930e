"""The behaviour suite (CheckList style: Ribeiro et al., "Beyond Accuracy: Behavioral Testing of NLP
Models with CheckList", ACL 2020): hand-written tweets in tests/fixtures/behaviour.json.

Three kinds of test, each judged the way the server decides (score ≥ threshold means positive):
- `mft` (minimum functionality): {text, label}; passes when the decision equals the label.
- `inv` (invariance): {texts}; the texts differ only in an airline name, @handle, URL or number,
  and passes when they all get the same decision.
- `dir` (directional): {base, changed, expect}; passes when the score moves strictly `down` or `up`.

`evaluate(score_fn, threshold)` takes a function from a list of texts to P(positive) scores.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from .data import REPO_ROOT

SUITE_PATH = REPO_ROOT / "tests" / "fixtures" / "behaviour.json"
KINDS = ("mft", "inv", "dir")


def load_suite(path: Path | str = SUITE_PATH) -> dict:
    suite = json.loads(Path(path).read_text(encoding="utf-8"))
    for i, t in enumerate(suite["tests"]):
        kind = t.get("kind")
        if kind not in KINDS or not t.get("category"):
            raise ValueError(f"test {i}: kind must be one of {KINDS} and category set")
        if kind == "mft" and (not t.get("text") or t.get("label") not in (0, 1)):
            raise ValueError(f"test {i}: mft needs text and label 0/1")
        if kind == "inv" and len(t.get("texts") or []) < 2:
            raise ValueError(f"test {i}: inv needs at least two texts")
        if kind == "dir" and (not t.get("base") or not t.get("changed") or t.get("expect") not in ("up", "down")):
            raise ValueError(f"test {i}: dir needs base, changed and expect up/down")
    return suite


def texts_of(suite: dict) -> list[str]:
    """Every distinct text of the suite, in first-seen order."""
    out: dict[str, None] = {}
    for t in suite["tests"]:
        if t["kind"] == "mft":
            out[t["text"]] = None
        elif t["kind"] == "inv":
            out.update(dict.fromkeys(t["texts"]))
        else:
            out.update(dict.fromkeys((t["base"], t["changed"])))
    return list(out)


def evaluate(score_fn: Callable[[Sequence[str]], Sequence[float]], threshold: float, suite: dict | None = None) -> dict:
    """Pass rates overall, per kind and per `kind:category`, plus the failing tests."""
    suite = suite or load_suite()
    texts = texts_of(suite)
    scores = dict(zip(texts, (float(s) for s in np.asarray(score_fn(texts), dtype=np.float64))))

    def positive(text):
        return scores[text] >= threshold

    results = []
    for t in suite["tests"]:
        if t["kind"] == "mft":
            ok = positive(t["text"]) == bool(t["label"])
        elif t["kind"] == "inv":
            ok = len({positive(x) for x in t["texts"]}) == 1
        else:
            delta = scores[t["changed"]] - scores[t["base"]]
            ok = delta < 0 if t["expect"] == "down" else delta > 0
        results.append((t, ok))

    def rate(items):
        n = len(items)
        passed = sum(ok for _, ok in items)
        return {"n": n, "passed": passed, "pass_rate": round(passed / n, 4) if n else None}

    per_kind = {k: rate([r for r in results if r[0]["kind"] == k]) for k in KINDS}
    cats: dict[str, list] = {}
    for r in results:
        cats.setdefault(f"{r[0]['kind']}:{r[0]['category']}", []).append(r)
    failures = [{k: v for k, v in t.items() if k != "kind"} | {"kind": t["kind"]} for t, ok in results if not ok]
    return {"overall": rate(results), "per_kind": per_kind, "per_category": {c: rate(v) for c, v in cats.items()},
            "threshold": threshold, "distinct_texts": len(texts), "failures": failures}
