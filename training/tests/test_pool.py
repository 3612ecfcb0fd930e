"""The human-labelled pool: one loader for five formats, no TweetEval overlap, hashes logged."""

import os
from pathlib import Path

import pytest

from training import data, pool
from training.tests import conftest


def _keys(split):
    return {pool.match_key(t) for t in split.texts}


def _held_out_keys(data_dir):
    return _keys(data.load_tweeteval(data_dir, "val")) | _keys(data.load_tweeteval(data_dir, "test"))


def test_fixture_pool_has_no_tweeteval_overlap(tiny_data_dir):
    p = pool.load_pool(tiny_data_dir)
    assert not _keys(p.all) & _held_out_keys(tiny_data_dir)
    src = p.info["sources"]
    # The deliberate overlaps were found and dropped, one with a val tweet, one with a test tweet.
    assert src["semeval-2013-2016"]["tweeteval_overlap"] == 1
    assert src["sts-gold"]["tweeteval_overlap"] == 1
    assert not any("love the flight val 0" in t.lower() or "awful this crew test 1" in t.lower() for t in p.all.texts)


def test_fixture_pool_reads_every_format_and_cleans(tiny_data_dir):
    p = pool.load_pool(tiny_data_dir)
    src = p.info["sources"]
    assert set(src) == {"semeval-2013-2016", "sts-gold", "sanders", "thelwall-4242", "tweeteval-emotion"}
    assert all(s["kept"] > 0 for s in src.values())
    texts = p.all.texts
    assert "I ♥ my new seat on the flight" in texts  # \\uXXXX decoded
    assert "Tom & Jerry love the lounge <3" in texts  # entities decoded, twice-escaped too
    assert "quoted sad delayed trip" in texts  # wrapping quotes removed
    assert not any("&amp;" in t or "\\\\u" in t for t in texts)
    # Cross-source duplicate (semeval twice, then sanders with a URL) kept once.
    assert sum(pool.match_key(t) == pool.match_key(conftest.DUPLICATE) for t in texts) == 1
    assert src["sanders"]["duplicates"] == 1
    # Neutral, irrelevant, ties and the sarcasm file stay out.
    assert not any("neutral" in t or "sarcasm only" in t or "not about anything" in t or "tie is" in t for t in texts)
    assert "twitter-2014sarcasm-A.tsv" not in src["semeval-2013-2016"]["files"]
    # Emotion labels: joy and optimism positive, anger and sadness negative.
    emo = [(t, y) for t, y in zip(p.all.texts, p.all.labels) if t.startswith("emotion ")]
    assert len(emo) == 12 and {y for t, y in emo if t.split()[1] in conftest.POS_WORDS} == {1}


def test_fixture_pool_split_and_hashes(tiny_data_dir):
    a, b = pool.load_pool(tiny_data_dir), pool.load_pool(tiny_data_dir)
    assert a.info["sha256"] == b.info["sha256"]
    assert set(a.info["sha256"]) >= {"pool", "train", "early_stop"}
    for s in a.info["sources"].values():
        assert s["files"] and all(len(h) == 64 for h in s["files"].values())
    assert not set(a.train.texts) & set(a.early_stop.texts)
    assert len(a.train) + len(a.early_stop) == a.info["size"]
    assert len(a.early_stop) >= 2 and set(a.early_stop.labels) == {0, 1}


def test_with_sentiment140_adds_n_cleaned_tweets(tiny_data_dir):
    p = pool.load_pool(tiny_data_dir)
    s140 = data.load_dataset(tiny_data_dir).train
    assert pool.with_sentiment140(p.train, s140, 0, seed=1) is p.train
    more = pool.with_sentiment140(p.train, s140, 40, seed=1)
    assert len(more) == len(p.train) + 40
    assert not any("&amp;" in t for t in more.texts)


def _real_data_dir():
    env = os.environ.get("TWEET_SENTIMENT_DATA_DIR")
    candidate = Path(env) if env else data.REPO_ROOT.parent / "shared" / "data"
    return candidate if (candidate / "semeval-2013-2016").is_dir() else None


@pytest.mark.skipif(_real_data_dir() is None, reason="real data absent (set TWEET_SENTIMENT_DATA_DIR)")
def test_real_pool_has_zero_tweeteval_overlap():
    root = _real_data_dir()
    p = pool.load_pool(root)
    held_out = _held_out_keys(root)
    assert len(_keys(p.all) & held_out) == 0
    exact = set(data.load_tweeteval(root, "val").texts) | set(data.load_tweeteval(root, "test").texts)
    assert not set(p.all.texts) & exact
    assert sum(s["tweeteval_overlap"] for s in p.info["sources"].values()) > 0  # the filter did work
    assert len(_keys(p.all)) == len(p.all)  # no duplicates left across sources
