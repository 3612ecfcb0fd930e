"""Feedback datasets exported by `tweet-sentiment export-labels`, read for retraining.

An export is `<from>_<to>.jsonl` (one labelled prediction per line: id, ts, text, label, label_source,
model, score) and `<from>_<to>.manifest.json` beside it (counts, time range, sha256 of the rows file).
Give `load_feedback` one rows file, or a folder: every export in it is read, each checked against its
manifest's sha256, and a prediction id present in two exports counts once (the later export wins).

Get one from the store with the CLI: `tweet-sentiment export-labels --from … --to … --out DIR`.

The most recent slice of the feedback (by prediction time) is kept apart as an extra evaluation set:
it is the closest thing to the traffic the next model will see, so a retrained model is judged on
tweets newer than any it learned from.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

from .data import Split
from .pool import clean

MANIFEST_SUFFIX = ".manifest.json"


@dataclass
class Feedback:
    rows: list[dict]
    manifests: list[dict] = field(default_factory=list)

    def split(self) -> Split:
        return Split([clean(r["text"]) for r in self.rows], [int(r["label"]) for r in self.rows])

    def recent_holdout(self, fraction: float) -> tuple[Split, Split]:
        """(older part for training, most recent `fraction` for evaluation), by prediction time."""
        ordered = sorted(self.rows, key=lambda r: (r["ts"], r["id"]))
        n_holdout = round(len(ordered) * fraction) if fraction > 0 else 0
        cut = len(ordered) - n_holdout
        older, recent = Feedback(ordered[:cut]), Feedback(ordered[cut:])
        return older.split(), recent.split()

    def sha256(self) -> str:
        return ",".join(m["sha256"] for m in self.manifests)


def _rows_files(path: Path) -> list[Path]:
    if path.is_dir():
        files = sorted(p for p in path.glob("*.jsonl"))
        if not files:
            raise FileNotFoundError(f"no exported dataset (*.jsonl) in {path}")
        return files
    if not path.exists():
        raise FileNotFoundError(path)
    return [path]


def load_feedback(path: Path | str) -> Feedback:
    by_id: dict[str, dict] = {}
    manifests = []
    for rows_file in _rows_files(Path(path)):
        manifest_file = rows_file.with_name(rows_file.name[: -len(".jsonl")] + MANIFEST_SUFFIX)
        if not manifest_file.exists():
            raise FileNotFoundError(f"{rows_file} has no manifest ({manifest_file.name}): export it again")
        manifest = json.loads(manifest_file.read_text())
        raw = rows_file.read_bytes()
        actual = "sha256:" + hashlib.sha256(raw).hexdigest()
        if actual != manifest["sha256"]:
            raise ValueError(f"{rows_file}: sha256 {actual} does not match its manifest's {manifest['sha256']}")
        for line in raw.decode().splitlines():
            if line.strip():
                row = json.loads(line)
                if row.get("label") not in (0, 1) or not str(row.get("text", "")).strip():
                    raise ValueError(f"{rows_file}: a row without a 0/1 label or a text: {line[:120]}")
                by_id[row["id"]] = row
        manifests.append(manifest)
    rows = sorted(by_id.values(), key=lambda r: (r["ts"], r["id"]))
    return Feedback(rows, manifests)


def weighted(base: Split, extra: Split, weight: int) -> Split:
    """`base` plus each row of `extra` `weight` times. For Naive Bayes, whose counts add up, this is
    exactly a sample weight; for the neural models it is oversampling."""
    if weight < 1:
        raise ValueError("the feedback weight is a whole number ≥ 1")
    return Split(base.texts + extra.texts * weight, base.labels + extra.labels * weight)
