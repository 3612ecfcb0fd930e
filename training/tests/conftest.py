"""A tiny corpus written for the tests, laid out like the real data directory.

It is generated from short templates so that the words clearly carry the label; the smoke
trainings only check that the pipeline runs, exports and writes a valid manifest.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

POS_WORDS = ["love", "great", "happy", "awesome", "thanks", "amazing", "nice", "best"]
NEG_WORDS = ["hate", "awful", "sad", "terrible", "worst", "angry", "delayed", "broken"]
SUBJECTS = ["the flight", "this crew", "my trip", "the lounge", "the seat", "@AirParadis service"]
TAILS = ["", " today", " http://t.co/x1", " &amp; more", "!!!", " #travel"]


def _lines(words: list[str], n: int, offset: int) -> list[str]:
    combos = itertools.islice(itertools.cycle(itertools.product(words, SUBJECTS, TAILS)), offset, offset + n)
    return [f"{w} {s}{t} {i}" for i, (w, s, t) in enumerate(combos)]


@pytest.fixture(scope="session")
def tiny_data_dir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("data")
    s140 = root / "sentiment140-100k"
    s140.mkdir()
    pos = _lines(POS_WORDS, 150, 0)
    neg = _lines(NEG_WORDS, 150, 0)
    # An empty line, a duplicate and a text under both labels, which loading must drop.
    (s140 / "positive.txt").write_text("\n".join(pos + ["", pos[0], "same text both ways"]) + "\n", encoding="utf-8")
    (s140 / "negative.txt").write_text("\n".join(neg + ["same text both ways"]) + "\n", encoding="utf-8")
    te = root / "tweeteval-sentiment"
    te.mkdir()
    for which, n in (("val", 40), ("test", 30)):
        texts, labels = [], []
        for i in range(n):
            if i % 3 == 0:
                texts.append(f"{POS_WORDS[i % 8]} {SUBJECTS[i % 6]} {which} {i}")
                labels.append("2")
            elif i % 3 == 1:
                texts.append(f"{NEG_WORDS[i % 8]} {SUBJECTS[i % 6]} {which} {i}")
                labels.append("0")
            else:
                texts.append(f"the flight left at {i} {which}")
                labels.append("1")
        (te / f"{which}_text.txt").write_text("\n".join(texts) + "\n", encoding="utf-8")
        (te / f"{which}_labels.txt").write_text("\n".join(labels) + "\n", encoding="utf-8")
    (te / "mapping.txt").write_text("0\tnegative\n1\tneutral\n2\tpositive\n")
    return root


@pytest.fixture(scope="session", autouse=True)
def isolated_mlflow(tmp_path_factory):
    """The tests log to one throw-away MLflow store (created once: its schema set-up is slow),
    never to training/mlflow.db."""
    store = tmp_path_factory.mktemp("mlflow")
    patch = pytest.MonkeyPatch()
    patch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{store / 'mlflow.db'}")
    patch.setenv("HF_HUB_OFFLINE", "1")
    yield
    patch.undo()
