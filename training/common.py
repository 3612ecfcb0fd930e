"""Shared pieces: metrics, manifest writing, MLflow set-up, scoring with onnxruntime."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from .data import REPO_ROOT

DEFAULT_VERSION = "2026.11.29-1"
MODELS_DIR = REPO_ROOT / "models"
TRAINING_DIR = Path(__file__).resolve().parent


# ----------------------------------------------------------------------------- metrics


def roc_auc(y: np.ndarray, score: np.ndarray) -> float:
    """Area under the ROC curve by the rank-sum formula, ties given their mean rank."""
    y = np.asarray(y)
    score = np.asarray(score, dtype=np.float64)
    n_pos = int((y == 1).sum())
    n_neg = len(y) - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    order = np.argsort(score, kind="mergesort")
    ranks = np.empty(len(score), dtype=np.float64)
    sorted_scores = score[order]
    i = 0
    while i < len(score):
        j = i
        while j + 1 < len(score) and sorted_scores[j + 1] == sorted_scores[i]:
            j += 1
        ranks[order[i : j + 1]] = (i + j) / 2.0 + 1.0
        i = j + 1
    return float((ranks[y == 1].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def classification_metrics(y, p_pos, threshold: float = 0.5) -> dict:
    """Accuracy, per-class precision/recall/F1, macro-F1 and ROC-AUC for binary labels."""
    y = np.asarray(y, dtype=np.int64)
    p_pos = np.asarray(p_pos, dtype=np.float64)
    pred = (p_pos >= threshold).astype(np.int64)
    out: dict = {"n": int(len(y)), "accuracy": float((pred == y).mean()) if len(y) else float("nan")}
    f1s = []
    for cls, name in ((0, "negative"), (1, "positive")):
        tp = int(((pred == cls) & (y == cls)).sum())
        fp = int(((pred == cls) & (y != cls)).sum())
        fn = int(((pred != cls) & (y == cls)).sum())
        precision = tp / (tp + fp) if tp + fp else 0.0
        recall = tp / (tp + fn) if tp + fn else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        out[f"{name}_precision"] = precision
        out[f"{name}_recall"] = recall
        out[f"{name}_f1"] = f1
        f1s.append(f1)
    out["macro_f1"] = float(np.mean(f1s))
    out["roc_auc"] = roc_auc(y, p_pos)
    return out


def histogram10(p_pos) -> list[float]:
    """Proportions of scores in [0,0.1) … [0.9,1.0]; 1.0 itself falls in the last bin."""
    p = np.clip(np.asarray(p_pos, dtype=np.float64), 0.0, 1.0)
    idx = np.minimum((p * 10).astype(np.int64), 9)
    counts = np.bincount(idx, minlength=10).astype(np.float64)
    props = counts / counts.sum()
    # Round for a readable manifest, then put the rounding residue on the largest bin so the
    # proportions still sum to 1 exactly.
    rounded = [round(float(x), 6) for x in props]
    rounded[int(np.argmax(props))] += 1.0 - sum(rounded)
    rounded = [round(x, 6) for x in rounded]
    return rounded


# ----------------------------------------------------------------------------- files


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return "sha256:" + h.hexdigest()


def write_manifest(
    version_dir: Path,
    *,
    name: str,
    version: str,
    kind: str,
    inputs: dict,
    output: dict,
    max_tokens: int,
    threshold: float,
    mlflow_run_id: str,
    temperature: float = 1.0,
    data: str,
    metrics: dict,
    reference_scores: list[float],
) -> dict:
    version_dir = Path(version_dir)
    manifest = {
        "name": name,
        "version": version,
        "kind": kind,
        "created_at": dt.datetime.now(dt.timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z"),
        "inputs": inputs,
        "output": output,
        "max_tokens": max_tokens,
        "threshold": threshold,
        "temperature": temperature,
        "files": {
            "model.onnx": sha256_file(version_dir / "model.onnx"),
            "tokenizer.json": sha256_file(version_dir / "tokenizer.json"),
        },
        "training": {"mlflow_run_id": mlflow_run_id, "data": data, "metrics": metrics},
        "reference_scores": reference_scores,
    }
    (version_dir / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


# ----------------------------------------------------------------------------- mlflow


def setup_mlflow(experiment: str = "tweet-sentiment"):
    """Embedded store under training/ unless MLFLOW_TRACKING_URI says otherwise."""
    import mlflow

    uri = os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{TRAINING_DIR / 'mlflow.db'}"
    mlflow.set_tracking_uri(uri)
    if mlflow.get_experiment_by_name(experiment) is None:
        kwargs = {}
        if uri.startswith("sqlite:///"):
            # Artifacts beside the database rather than in ./mlruns of whatever the working directory is.
            kwargs["artifact_location"] = (Path(uri[len("sqlite:///") :]).parent / "mlartifacts").resolve().as_uri()
        try:
            mlflow.create_experiment(experiment, **kwargs)
        except Exception:  # created meanwhile by a concurrent run
            if mlflow.get_experiment_by_name(experiment) is None:
                raise
    mlflow.set_experiment(experiment)
    return mlflow


@contextmanager
def timer():
    box = {"start": time.perf_counter(), "seconds": 0.0}
    try:
        yield box
    finally:
        box["seconds"] = time.perf_counter() - box["start"]


# ----------------------------------------------------------------------------- scoring


class OnnxScorer:
    """Scores texts the way the Rust server does: tokenizer.json, truncate, pad, onnxruntime."""

    def __init__(self, version_dir: Path, threads: int | None = None):
        import onnxruntime as ort
        from tokenizers import Tokenizer

        self.dir = Path(version_dir)
        self.manifest = json.loads((self.dir / "manifest.json").read_text())
        self.tokenizer = Tokenizer.from_file(str(self.dir / "tokenizer.json"))
        opts = ort.SessionOptions()
        if threads:
            opts.intra_op_num_threads = threads
            opts.inter_op_num_threads = 1
        self.session = ort.InferenceSession(str(self.dir / "model.onnx"), opts, providers=["CPUExecutionProvider"])
        pad = self.tokenizer.padding
        self.pad_id = pad["pad_id"] if pad else 0
        self.pad_left = bool(pad) and pad.get("direction") == "left"

    def token_ids(self, text: str) -> list[int]:
        enc = self.tokenizer.encode(text)
        return enc.ids[: self.manifest["max_tokens"]]

    def _batch(self, texts: list[str]) -> dict:
        encs = [self.tokenizer.encode(t) for t in texts]
        max_tokens = self.manifest["max_tokens"]
        ids = [e.ids[:max_tokens] for e in encs]
        types = [e.type_ids[:max_tokens] for e in encs]
        width = max(1, max(len(x) for x in ids))
        n = len(ids)
        input_ids = np.full((n, width), self.pad_id, dtype=np.int64)
        mask = np.zeros((n, width), dtype=np.int64)
        type_ids = np.zeros((n, width), dtype=np.int64)
        for i, (row, trow) in enumerate(zip(ids, types)):
            if self.pad_left:
                input_ids[i, width - len(row) :] = row
                mask[i, width - len(row) :] = 1
                type_ids[i, width - len(row) :] = trow
            else:
                input_ids[i, : len(row)] = row
                mask[i, : len(row)] = 1
                type_ids[i, : len(row)] = trow
        inputs = self.manifest["inputs"]
        feed = {inputs["input_ids"]: input_ids}
        if inputs.get("attention_mask"):
            feed[inputs["attention_mask"]] = mask
        if inputs.get("token_type_ids"):
            feed[inputs["token_type_ids"]] = type_ids
        return feed

    def score(self, texts: list[str], batch_size: int = 64, progress: bool = False) -> np.ndarray:
        from tqdm import tqdm

        out_name = self.manifest["output"]["name"]
        kind = self.manifest["output"]["kind"]
        scores = []
        rng = range(0, len(texts), batch_size)
        for start in tqdm(rng, desc=f"score {self.manifest['name']}", disable=not progress, leave=False):
            chunk = texts[start : start + batch_size]
            (raw,) = self.session.run([out_name], self._batch(chunk))
            scores.append(to_p_pos(raw, kind, self.manifest.get("temperature", 1.0)))
        return np.concatenate(scores) if scores else np.zeros(0)


def to_p_pos(raw: np.ndarray, kind: str, temperature: float = 1.0) -> np.ndarray:
    """Manifest output semantics, as the Rust scorer applies them.

    The model's output becomes a two-class margin m = log P(pos) − log P(neg): logit(pos) − logit(neg)
    for two logit columns, log p1 − log p0 for two probability columns, the value itself for one logit
    column, logit(p) for one probability column. The score is sigmoid(m / temperature).
    """
    raw = np.asarray(raw, dtype=np.float64)
    if raw.ndim == 2 and raw.shape[1] == 2:
        if kind == "logits":
            m = raw[:, 1] - raw[:, 0]
        else:
            p = np.clip(raw, 1e-12, 1.0)
            m = np.log(p[:, 1]) - np.log(p[:, 0])
    else:
        flat = raw.reshape(raw.shape[0])
        m = flat if kind == "logits" else margin(flat)
    return sigmoid(m / temperature)


# ----------------------------------------------------------------------------- calibration and decision

# A missed complaint (a negative tweet scored positive) costs this many false alarms. With calibrated
# probabilities the cheapest decision is "positive" only when P(positive) ≥ cost / (1 + cost).
MISS_COST = 2.0


def cost_threshold(miss_cost: float = MISS_COST) -> float:
    return round(miss_cost / (1.0 + miss_cost), 4)


def margin(p_pos) -> np.ndarray:
    """log(p / (1 - p)): the two-class logit difference behind a probability."""
    p = np.clip(np.asarray(p_pos, dtype=np.float64), 1e-12, 1 - 1e-12)
    return np.log(p) - np.log1p(-p)


def sigmoid(z) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.asarray(z, dtype=np.float64)))


def fit_temperature(labels, margins) -> float:
    """The T that minimises the log loss of sigmoid(margin / T): a 1-D search over log T.

    One parameter cannot overfit a few thousand labels, and it leaves the ranking (ROC-AUC)
    unchanged; only how sure the scores say they are moves.
    """
    y = np.asarray(labels, dtype=np.float64)
    z = np.asarray(margins, dtype=np.float64)

    def nll(t):
        p = np.clip(sigmoid(z / t), 1e-12, 1 - 1e-12)
        return float(-(y * np.log(p) + (1 - y) * np.log(1 - p)).mean())

    grid = np.exp(np.linspace(np.log(0.05), np.log(20.0), 601))
    best = grid[int(np.argmin([nll(t) for t in grid]))]
    fine = np.linspace(best * 0.98, best * 1.02, 81)
    return round(float(fine[int(np.argmin([nll(t) for t in fine]))]), 4)


def expected_calibration_error(labels, p_pos, bins: int = 10) -> float:
    """Mean |accuracy − confidence| of P(positive) over equal-width bins, weighted by count."""
    return float(sum(abs(b["observed"] - b["mean_score"]) * b["n"] for b in reliability(labels, p_pos, bins))
                 / max(1, len(labels)))


def reliability(labels, p_pos, bins: int = 10) -> list[dict]:
    """Per score bin: how many, the mean score, and the observed share of positives."""
    y = np.asarray(labels, dtype=np.float64)
    p = np.clip(np.asarray(p_pos, dtype=np.float64), 0.0, 1.0)
    idx = np.minimum((p * bins).astype(np.int64), bins - 1)
    out = []
    for b in range(bins):
        sel = idx == b
        n = int(sel.sum())
        if n:
            out.append({"bin": b, "n": n, "mean_score": float(p[sel].mean()), "observed": float(y[sel].mean())})
    return out


def run_provenance() -> dict:
    """What a run was made from: the git commit and the installed packages."""
    import subprocess
    import sys

    def run(cmd):
        try:
            return subprocess.run(cmd, capture_output=True, text=True, timeout=60, cwd=REPO_ROOT).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return ""

    return {"git_sha": run(["git", "rev-parse", "HEAD"]) or "unknown",
            "git_dirty": bool(run(["git", "status", "--porcelain", "--", "training"])),
            "pip_freeze": run([sys.executable, "-m", "pip", "freeze", "--exclude-editable"])}


def log_provenance(mlflow, data_info: dict) -> None:
    prov = run_provenance()
    mlflow.set_tags({"git_sha": prov["git_sha"], "git_dirty": str(prov["git_dirty"])})
    mlflow.log_text(prov["pip_freeze"], "pip-freeze.txt")
    mlflow.log_dict(data_info, "data.json")
    hashes = {f"data_sha256_{k}": v[:16] for k, v in data_info.get("sha256", {}).items()}
    if hashes:
        mlflow.set_tags(hashes)
