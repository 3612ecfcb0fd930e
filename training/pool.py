"""The human-labelled training pool: five sources read through one loader.

Every source goes through the same steps:
- `clean`: literal `\\uXXXX` escapes and HTML entities are decoded, wrapping quotes and runs of
  white space are removed. This is the text the models train on.
- `match_key`: a looser form (lower case, @handles and URLs folded, punctuation dropped) used only to
  find the same tweet twice: across sources, and against TweetEval val and test.
- duplicates across sources are dropped (first source wins; a tweet labelled both ways is dropped);
- every text whose key matches a TweetEval val or test tweet is dropped, so neither selection nor the
  external test ever scores a tweet a model was trained on.

Sentiment140 (emoticon labels) is not in the pool; `--s140 N` in the trainers adds N of its tweets,
so the comparison can show its effect.
"""

from __future__ import annotations

import csv
import hashlib
import html
import random
import re
from dataclasses import dataclass, field
from pathlib import Path

from .data import Split, _read_lines, file_sha256, load_tweeteval

POOL_SEED = 20261129
EARLY_STOP_FRACTION = 0.05

_ESCAPE = re.compile(r"\\u([0-9a-fA-F]{4})")
_SPACE = re.compile(r"\s+")
_HANDLE = re.compile(r"@\w+")
_URL = re.compile(r"(https?://|www\.)\S+")
_NOT_WORD = re.compile(r"[^\w@]+")


def clean(text: str) -> str:
    """Decoded, unquoted, single-spaced text."""
    text = _ESCAPE.sub(lambda m: chr(int(m.group(1), 16)), text)
    # Some sources escape entities twice (`&amp;amp;`).
    for _ in range(2):
        text = html.unescape(text)
    text = _SPACE.sub(" ", text).strip()
    if len(text) >= 2 and text[0] == text[-1] == '"':
        text = text[1:-1].strip()
    return text


def match_key(text: str) -> str:
    """The form two copies of one tweet share, whatever their source's habits."""
    text = clean(text).lower()
    text = _URL.sub(" ", text)
    text = _HANDLE.sub("@user", text)
    text = _NOT_WORD.sub(" ", text)
    return _SPACE.sub(" ", text).strip()


@dataclass
class Source:
    name: str
    files: list[Path]
    rows: list[tuple[str, int]] = field(default_factory=list)


def _semeval(root: Path) -> Source:
    folder = root / "semeval-2013-2016"
    # The sarcasm file is kept out of training: it is a hard-case table of its own.
    files = sorted(p for p in folder.glob("twitter-*-A.tsv") if "sarcasm" not in p.name)
    src = Source("semeval-2013-2016", files)
    for path in files:
        for line in _read_lines(path):
            parts = line.split("\t")
            if len(parts) < 3:
                continue
            label = {"positive": 1, "negative": 0}.get(parts[1].strip())
            if label is not None:
                src.rows.append((parts[2], label))
    return src


def _sts_gold(root: Path) -> Source:
    path = root / "sts-gold" / "sts_gold_tweet.csv"
    src = Source("sts-gold", [path])
    with open(path, encoding="utf-8", newline="") as f:
        for row in csv.DictReader(f, delimiter=";"):
            label = {"0": 0, "4": 1}.get(row["polarity"].strip())
            if label is not None:
                src.rows.append((row["tweet"], label))
    return src


def _sanders(root: Path) -> Source:
    path = root / "sanders" / "full-corpus.csv"
    src = Source("sanders", [path])
    with open(path, encoding="utf-8", errors="replace", newline="") as f:
        for row in csv.DictReader(f):
            label = {"positive": 1, "negative": 0}.get(row["Sentiment"].strip())
            if label is not None:
                src.rows.append((row["TweetText"], label))
    return src


def _thelwall(root: Path) -> Source:
    path = root / "thelwall-4242" / "twitter4242.txt"
    src = Source("thelwall-4242", [path])
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            parts = line.rstrip("\n").split("\t", 2)
            if len(parts) < 3 or not parts[0].strip().isdigit() or not parts[1].strip().isdigit():
                continue
            pos, neg = int(parts[0]), int(parts[1])
            if pos != neg:
                src.rows.append((parts[2], 1 if pos > neg else 0))
    return src


def _tweeteval_emotion(root: Path) -> Source:
    folder = root / "tweeteval-emotion"
    files = []
    src = Source("tweeteval-emotion", files)
    # 0 anger, 1 joy, 2 optimism, 3 sadness: a polarity proxy.
    polarity = {0: 0, 1: 1, 2: 1, 3: 0}
    for split in ("train", "val", "test"):
        texts, labels = folder / f"{split}_text.txt", folder / f"{split}_labels.txt"
        files += [texts, labels]
        for text, label in zip(_read_lines(texts), _read_lines(labels)):
            if label.strip():
                src.rows.append((text, polarity[int(label)]))
    return src


SOURCES = (_semeval, _sts_gold, _sanders, _thelwall, _tweeteval_emotion)


@dataclass
class Pool:
    """The deduplicated pool, its early-stopping part, and how it was made."""

    train: Split
    early_stop: Split
    info: dict

    @property
    def all(self) -> Split:
        return Split(self.train.texts + self.early_stop.texts, self.train.labels + self.early_stop.labels)


def load_pool(data_dir: Path | str, *, sources=SOURCES, early_stop_fraction: float = EARLY_STOP_FRACTION,
              seed: int = POOL_SEED) -> Pool:
    data_dir = Path(data_dir)
    held_out = set()
    for which in ("val", "test"):
        held_out |= {match_key(t) for t in load_tweeteval(data_dir, which).texts}
    seen: dict[str, int] = {}
    conflicting: set[str] = set()
    order: list[tuple[str, str]] = []
    per_source: dict[str, dict] = {}
    for load in sources:
        src = load(data_dir)
        stats = {"rows": len(src.rows), "kept": 0, "empty": 0, "duplicates": 0, "tweeteval_overlap": 0,
                 "files": {p.name: file_sha256(p) for p in src.files}}
        for raw, label in src.rows:
            text = clean(raw)
            key = match_key(text)
            if not key:
                stats["empty"] += 1
            elif key in held_out:
                stats["tweeteval_overlap"] += 1
            elif key in seen:
                stats["duplicates"] += 1
                if seen[key] != label:
                    conflicting.add(key)
            else:
                seen[key] = label
                order.append((key, text))
                stats["kept"] += 1
        per_source[src.name] = stats
    pool = Split()
    for key, text in order:
        if key not in conflicting:
            pool.texts.append(text)
            pool.labels.append(seen[key])
    train, early_stop = _stratified_cut(pool, early_stop_fraction, seed)
    info = {
        "sources": per_source,
        "conflicting_dropped": len(conflicting),
        "size": len(pool),
        "positive": sum(pool.labels),
        "negative": len(pool) - sum(pool.labels),
        "early_stop_fraction": early_stop_fraction,
        "seed": seed,
        "sizes": {"train": len(train), "early_stop": len(early_stop)},
        "sha256": {"pool": pool.sha256(), "train": train.sha256(), "early_stop": early_stop.sha256()},
    }
    return Pool(train, early_stop, info)


def _stratified_cut(split: Split, fraction: float, seed: int) -> tuple[Split, Split]:
    rng = random.Random(seed)
    keep, cut = Split(), Split()
    for label in (0, 1):
        idx = [i for i, y in enumerate(split.labels) if y == label]
        rng.shuffle(idx)
        n_cut = round(fraction * len(idx))
        for k, i in enumerate(idx):
            part = cut if k < n_cut else keep
            part.texts.append(split.texts[i])
            part.labels.append(label)
    for part in (keep, cut):
        order = list(range(len(part)))
        rng.shuffle(order)
        part.texts = [part.texts[i] for i in order]
        part.labels = [part.labels[i] for i in order]
    return keep, cut


def training_split(data_dir: Path, s140: int, seed: int) -> tuple[Pool, Split, dict]:
    """The pool, the split a trainer fits on (the pool's training part, plus `s140` Sentiment140
    tweets when asked), and the data description that goes to MLflow."""
    from .data import load_dataset

    pool = load_pool(data_dir)
    info = dict(pool.info)
    if not s140:
        return pool, pool.train, info
    sentiment140 = load_dataset(data_dir)
    train = with_sentiment140(pool.train, sentiment140.train, s140, seed)
    info["sentiment140"] = {"n": s140, "split_sha256_train": sentiment140.info["sha256"]["train"]}
    info["sha256"] = {**info["sha256"], "train_with_s140": train.sha256()}
    return pool, train, info


def describe(pool: Pool, train: Split, tuned_on: str) -> str:
    """The manifest's one-line account of the training data."""
    extra = len(train) - len(pool.train)
    return (f"human-labelled pool {len(pool.train)} tweets (pool sha256 {pool.info['sha256']['pool'][:16]}"
            f"{f', plus {extra} Sentiment140' if extra else ''}); {tuned_on} on its {len(pool.early_stop)}-tweet "
            f"early-stop part")


def with_sentiment140(train: Split, s140: Split, n: int, seed: int) -> Split:
    """The pool's training part plus n Sentiment140 tweets (stratified), for the comparison."""
    if n <= 0:
        return train
    extra = s140.subset(n, seed=seed)
    return Split(train.texts + [clean(t) for t in extra.texts], train.labels + list(extra.labels))


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()
