"""Data loading and the seeded, stratified split.

Sentiment140 (distant labels) gives the train / validation / test split. TweetEval sentiment
(human labels, neutral dropped) gives an external test set and a validation set that may be
used for model selection and a final fine-tuning stage, never its test set.
"""

from __future__ import annotations

import hashlib
import json
import random
from dataclasses import dataclass, field
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
SPLIT_SEED = 20091125
SPLIT_FRACTIONS = (0.8, 0.1, 0.1)


def default_data_dir() -> Path:
    """`../shared/data` seen from the repository root, when it exists."""
    candidate = (REPO_ROOT / ".." / "shared" / "data").resolve()
    if not candidate.is_dir():
        raise FileNotFoundError(f"no data directory at {candidate}; pass --data-dir (see training/README.md)")
    return candidate


@dataclass
class Split:
    texts: list[str] = field(default_factory=list)
    labels: list[int] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.texts)

    def sha256(self) -> str:
        h = hashlib.sha256()
        for t, y in zip(self.texts, self.labels):
            h.update(f"{y}\t{t}\n".encode())
        return h.hexdigest()

    def subset(self, n: int | None, seed: int = 0) -> Split:
        """A stratified random subset of about n rows (the whole split when n is None)."""
        if n is None or n >= len(self):
            return self
        by_class: dict[int, list[int]] = {}
        for i, y in enumerate(self.labels):
            by_class.setdefault(y, []).append(i)
        rng = random.Random(seed)
        picked: list[int] = []
        for y in sorted(by_class):
            idx = by_class[y][:]
            rng.shuffle(idx)
            picked += idx[: round(n * len(idx) / len(self))]
        picked.sort()
        return Split([self.texts[i] for i in picked], [self.labels[i] for i in picked])


def _read_lines(path: Path) -> list[str]:
    with open(path, encoding="utf-8") as f:
        return [line.rstrip("\n").rstrip("\r") for line in f]


def file_sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def load_sentiment140(data_dir: Path) -> tuple[list[str], list[int], dict]:
    """Positive/negative lines, empty lines and duplicates dropped.

    A text seen with both labels is dropped entirely: it cannot teach anything and would leak
    between splits.
    """
    root = Path(data_dir) / "sentiment140-100k"
    pos = _read_lines(root / "positive.txt")
    neg = _read_lines(root / "negative.txt")
    labels_of: dict[str, set[int]] = {}
    order: list[str] = []
    raw = 0
    empty = 0
    for label, lines in ((1, pos), (0, neg)):
        for line in lines:
            raw += 1
            text = line.strip()
            if not text:
                empty += 1
                continue
            if text not in labels_of:
                labels_of[text] = set()
                order.append(text)
            labels_of[text].add(label)
    texts, labels = [], []
    conflicting = 0
    for text in order:
        ys = labels_of[text]
        if len(ys) > 1:
            conflicting += 1
            continue
        texts.append(text)
        labels.append(next(iter(ys)))
    stats = {
        "raw_lines": raw,
        "empty_dropped": empty,
        "duplicates_dropped": raw - empty - len(order),
        "conflicting_dropped": conflicting,
        "kept": len(texts),
        "files": {
            "positive.txt": file_sha256(root / "positive.txt"),
            "negative.txt": file_sha256(root / "negative.txt"),
        },
    }
    return texts, labels, stats


def stratified_split(
    texts: list[str], labels: list[int], fractions=SPLIT_FRACTIONS, seed: int = SPLIT_SEED
) -> tuple[Split, ...]:
    """Shuffle each class with a fixed seed and cut it by `fractions`; order is then re-shuffled."""
    rng = random.Random(seed)
    parts = [Split() for _ in fractions]
    for y in sorted(set(labels)):
        idx = [i for i, lab in enumerate(labels) if lab == y]
        rng.shuffle(idx)
        start = 0
        for k, frac in enumerate(fractions):
            end = len(idx) if k == len(fractions) - 1 else start + round(frac * len(idx))
            for i in idx[start:end]:
                parts[k].texts.append(texts[i])
                parts[k].labels.append(y)
            start = end
    for part in parts:
        order = list(range(len(part)))
        rng.shuffle(order)
        part.texts = [part.texts[i] for i in order]
        part.labels = [part.labels[i] for i in order]
    return tuple(parts)


def load_tweeteval(data_dir: Path, which: str) -> Split:
    """TweetEval sentiment `val` or `test`, binary: 0 negative, 2 positive → 1; neutral dropped."""
    root = Path(data_dir) / "tweeteval-sentiment"
    texts = _read_lines(root / f"{which}_text.txt")
    labels = _read_lines(root / f"{which}_labels.txt")
    if len(texts) != len(labels):
        raise ValueError(f"TweetEval {which}: {len(texts)} texts but {len(labels)} labels")
    out = Split()
    for t, y in zip(texts, labels):
        y = int(y)
        if y == 1:
            continue
        out.texts.append(t.strip())
        out.labels.append(1 if y == 2 else 0)
    return out


@dataclass
class Dataset:
    train: Split
    val: Split
    test: Split
    info: dict

    def describe(self) -> str:
        return json.dumps(self.info, sort_keys=True)


def load_dataset(data_dir: Path | str | None = None) -> Dataset:
    data_dir = Path(data_dir) if data_dir else default_data_dir()
    texts, labels, stats = load_sentiment140(data_dir)
    train, val, test = stratified_split(texts, labels)
    info = {
        "source": "sentiment140-100k",
        "dedup": stats,
        "split_seed": SPLIT_SEED,
        "split_fractions": list(SPLIT_FRACTIONS),
        "sizes": {"train": len(train), "val": len(val), "test": len(test)},
        "sha256": {"train": train.sha256(), "val": val.sha256(), "test": test.sha256()},
    }
    return Dataset(train, val, test, info)


def tweeteval_val_parts(data_dir: Path | str | None = None, seed: int = SPLIT_SEED) -> tuple[Split, Split]:
    """TweetEval val (binary) cut into a `tune` part (70 %) and a `select` part (30 %).

    `tune` may be trained on; `select` is only ever used to pick checkpoints and thresholds, so
    that a selection score is never measured on data the model was fitted to.
    """
    data_dir = Path(data_dir) if data_dir else default_data_dir()
    val = load_tweeteval(data_dir, "val")
    tune, select = stratified_split(val.texts, val.labels, fractions=(0.7, 0.3), seed=seed)
    return tune, select
