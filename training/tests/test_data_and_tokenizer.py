import json

import numpy as np
from tokenizers import Tokenizer

from training import common, data, wordtok


def test_sentiment140_drops_empty_duplicates_and_conflicts(tiny_data_dir):
    texts, labels, stats = data.load_sentiment140(tiny_data_dir)
    assert stats["empty_dropped"] == 1
    assert stats["duplicates_dropped"] == 2  # pos[0] repeated, and the conflicting text's second copy
    assert stats["conflicting_dropped"] == 1
    assert "same text both ways" not in texts
    assert len(texts) == len(set(texts)) == 300
    assert sum(labels) == 150


def test_split_is_stratified_seeded_and_disjoint(tiny_data_dir):
    a = data.load_dataset(tiny_data_dir)
    b = data.load_dataset(tiny_data_dir)
    assert a.info["sha256"] == b.info["sha256"]
    assert (len(a.train), len(a.val), len(a.test)) == (240, 30, 30)
    for part in (a.train, a.val, a.test):
        assert sum(part.labels) * 2 == len(part)
    assert not set(a.train.texts) & set(a.val.texts)
    assert not set(a.train.texts) & set(a.test.texts)
    other = data.stratified_split(a.train.texts, a.train.labels, seed=1)
    assert other[0].sha256() != data.stratified_split(a.train.texts, a.train.labels)[0].sha256()


def test_tweeteval_binary_drops_neutral(tiny_data_dir):
    test = data.load_tweeteval(tiny_data_dir, "test")
    assert len(test) == 20
    assert set(test.labels) == {0, 1}
    tune, select = data.tweeteval_val_parts(tiny_data_dir)
    assert not set(tune.texts) & set(select.texts)
    assert len(tune) + len(select) == 27


def _pieces(text):
    return [p for p, _ in wordtok.pre_tokenizer().pre_tokenize_str(wordtok.normalizer().normalize_str(text))]


def test_normalizer_and_pre_tokenizer():
    assert _pieces("Hello @Bob_1 see https://t.co/x?a=1 NOW!!! :D") == ["hello", "<user>", "see", "<url>", "now", "!!!", ":d"]
    assert _pieces("Tom &amp; Jerry &quot;hi&quot; &lt;3 it&#39;s") == ["tom", "&", "jerry", '"', "hi", '"', "<3", "it's"]
    assert _pieces("sad:( why??? www.x.com ok...") == ["sad", ":(", "why", "???", "<url>", "ok", "..."]
    assert _pieces("ﬁne 😀😀") == ["fine", "😀", "😀"]


def test_vocab_ids_and_json_round_trip(tmp_path):
    tok = wordtok.build(["love it :)", "love this", "hate it", "@a http://x hate"], min_frequency=1, max_tokens=8)
    vocab = tok.get_vocab()
    assert vocab["<pad>"] == 0 and vocab["<unk>"] == 1
    assert sorted(vocab.values()) == list(range(len(vocab)))
    path = tmp_path / "tokenizer.json"
    tok.save(str(path))
    raw = json.loads(path.read_text())
    assert raw["padding"]["pad_id"] == 0 and raw["truncation"]["max_length"] == 8
    again = Tokenizer.from_file(str(path))
    assert again.encode("LOVE it :) unseenword").ids == [vocab["love"], vocab["it"], vocab[":)"], 1]


def test_metrics_and_histogram():
    y = np.array([0, 0, 1, 1])
    m = common.classification_metrics(y, np.array([0.1, 0.6, 0.4, 0.9]))
    assert m["accuracy"] == 0.5 and m["macro_f1"] == 0.5
    assert common.roc_auc(y, np.array([0.1, 0.4, 0.35, 0.8])) == 0.75
    assert common.roc_auc(y, np.array([0.5, 0.5, 0.5, 0.5])) == 0.5
    h = common.histogram10([0.0, 0.05, 0.1, 0.95, 1.0, 0.5, 0.55])
    assert len(h) == 10 and abs(sum(h) - 1.0) < 1e-9
    assert abs(h[0] - 2 / 7) < 1e-5 and abs(h[9] - 2 / 7) < 1e-5 and h[1] == round(1 / 7, 6)
    assert np.allclose(common.to_p_pos(np.array([[0.0, 0.0]]), "logits"), [0.5])
    assert np.allclose(common.to_p_pos(np.array([[0.2, 0.8]]), "probability"), [0.8])
    assert np.allclose(common.to_p_pos(np.array([0.0]), "logits"), [0.5])


def test_missing_default_data_dir_says_what_to_do(monkeypatch, tmp_path):
    monkeypatch.setattr(data, "REPO_ROOT", tmp_path / "repo")
    try:
        data.default_data_dir()
    except FileNotFoundError as e:
        assert "--data-dir" in str(e)
    else:
        raise AssertionError("expected FileNotFoundError")
