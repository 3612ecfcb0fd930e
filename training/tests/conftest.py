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
    write_pool_sources(root)
    return root


# Rows the pool tests look for: each source's format, and the traps the loader must handle.
OVERLAP_VAL = '"LOVE the flight   val 0!! http://t.co/zzz"'  # TweetEval val "love the flight val 0"
OVERLAP_TEST = "Awful this crew test 1 :("  # TweetEval test "awful this crew test 1"
ESCAPED = r"I \u2665 my new seat on the flight"  # a literal \uXXXX escape → "I ♥ my new seat on the flight"
ENTITY = "Tom &amp;amp; Jerry love the lounge &lt;3"  # double-escaped entity → "Tom & Jerry love the lounge <3"
DUPLICATE = "the crew was so kind on my trip home"  # in semeval, again in sanders with a URL


def write_pool_sources(root: Path) -> None:
    pos = _lines(POS_WORDS, 60, 3)
    neg = _lines(NEG_WORDS, 60, 3)
    sem = root / "semeval-2013-2016"
    sem.mkdir()
    rows = [f"{100 + i}\tpositive\tpool {t}" for i, t in enumerate(pos[:30])]
    rows += [f"{200 + i}\tnegative\tpool {t}\t" for i, t in enumerate(neg[:30])]  # empty trailing column
    rows += ["300\tneutral\tthe flight left at noon", f"301\tpositive\t{OVERLAP_VAL}", f"302\tpositive\t{ESCAPED}",
             f"303\tpositive\t{ENTITY}", f"304\tpositive\t{DUPLICATE}", '305\tnegative\t"quoted sad delayed trip"']
    (sem / "twitter-2016train-A.tsv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    (sem / "twitter-2013dev-A.tsv").write_text(f"400\tpositive\t{DUPLICATE}\n", encoding="utf-8")  # same file set
    (sem / "twitter-2014sarcasm-A.tsv").write_text("500\tnegative\tsarcasm only, kept out of the pool\n", encoding="utf-8")
    sts = root / "sts-gold"
    sts.mkdir()
    lines = ['"id";"polarity";"tweet"', f'"1";"0";"{OVERLAP_TEST}"']
    lines += [f'"{10 + i}";"4";"sts {t}"' for i, t in enumerate(pos[30:40])]
    lines += [f'"{30 + i}";"0";"sts {t}"' for i, t in enumerate(neg[30:40])]
    (sts / "sts_gold_tweet.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    san = root / "sanders"
    san.mkdir()
    lines = ["Topic,Sentiment,TweetId,TweetDate,TweetText", f'apple,positive,1,Tue Oct 18 2011,"{DUPLICATE} http://x.co/1"']
    lines += [f'google,positive,{10 + i},Tue Oct 18 2011,"sanders {t}"' for i, t in enumerate(pos[40:48])]
    lines += [f'twitter,negative,{30 + i},Tue Oct 18 2011,"sanders {t}"' for i, t in enumerate(neg[40:48])]
    lines += ["apple,irrelevant,99,Tue Oct 18 2011,not about anything"]
    (san / "full-corpus.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    th = root / "thelwall-4242"
    th.mkdir()
    lines = ["pos\tneg\ttext"] + [f"3\t1\tthelwall {t}" for t in pos[48:54]] + [f"1\t4\tthelwall {t}" for t in neg[48:54]]
    lines += ["2\t2\ta tie is neutral"]
    (th / "twitter4242.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    emo = root / "tweeteval-emotion"
    emo.mkdir()
    for split, lo in (("train", 54), ("val", 56), ("test", 58)):
        texts = [f"emotion {t}" for t in pos[lo : lo + 2]] + [f"emotion {t}" for t in neg[lo : lo + 2]]
        labels = ["1", "2", "0", "3"][: len(texts)]
        (emo / f"{split}_text.txt").write_text("\n".join(texts) + "\n", encoding="utf-8")
        (emo / f"{split}_labels.txt").write_text("\n".join(labels) + "\n", encoding="utf-8")
    (emo / "mapping.txt").write_text("0\tanger\n1\tjoy\n2\toptimism\n3\tsadness\n")


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
