"""Multinomial Naive Bayes over word-level tokens, exported as a 4-node ONNX graph.

    Gather(logp[V,2], input_ids) → ReduceSum(axis=1) → Add(log prior) → Softmax

The pad row of logp is all zeros, so padding never changes a score. Trained on the human-labelled
pool (training/pool.py), optionally plus N Sentiment140 tweets (`--s140 N`). Alpha (Laplace/Lidstone
smoothing) is chosen on the pool's early-stop part, and a temperature is fitted there too (NB's
probabilities are far too sure of themselves); the threshold is the cost-based one.

Run: python -m training.nb [--data-dir DIR] [--version V] [--s140 N]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from . import common, wordtok
from .data import default_data_dir

NAME = "naive-bayes"
MAX_TOKENS = 128
ALPHAS = (0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0)


def count_matrix(ids: list[list[int]], labels: list[int], vocab_size: int) -> np.ndarray:
    counts = np.zeros((vocab_size, 2), dtype=np.float64)
    for row, y in zip(ids, labels):
        np.add.at(counts[:, y], row, 1.0)
    return counts


def log_probs(counts: np.ndarray, labels: list[int], alpha: float) -> tuple[np.ndarray, np.ndarray]:
    """log P(token | class) with the pad row zeroed, and log P(class)."""
    c = counts.copy()
    c[0] = 0.0
    smoothed = c + alpha
    smoothed[0] = 0.0
    logp = np.log(np.where(smoothed > 0, smoothed, 1.0)) - np.log(smoothed.sum(axis=0, keepdims=True))
    logp[0] = 0.0
    y = np.asarray(labels)
    prior = np.log(np.array([(y == 0).mean(), (y == 1).mean()]))
    return logp.astype(np.float32), prior.astype(np.float32)


def p_positive(logp: np.ndarray, prior: np.ndarray, ids: list[list[int]]) -> np.ndarray:
    out = np.empty(len(ids))
    for i, row in enumerate(ids):
        s = logp[row].sum(axis=0) + prior if row else prior.astype(np.float64)
        z = s - s.max()
        e = np.exp(z)
        out[i] = e[1] / e.sum()
    return out


def export_onnx(logp: np.ndarray, prior: np.ndarray, path: Path) -> None:
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    nodes = [
        helper.make_node("Gather", ["logp", "input_ids"], ["token_logp"], axis=0),
        helper.make_node("ReduceSum", ["token_logp", "sum_axes"], ["doc_logp"], keepdims=0),
        helper.make_node("Add", ["doc_logp", "log_prior"], ["joint"]),
        helper.make_node("Softmax", ["joint"], ["probabilities"], axis=1),
    ]
    graph = helper.make_graph(
        nodes,
        "naive_bayes",
        [helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch", "seq"])],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["batch", 2])],
        initializer=[
            numpy_helper.from_array(logp.astype(np.float32), "logp"),
            numpy_helper.from_array(np.array([1], dtype=np.int64), "sum_axes"),
            numpy_helper.from_array(prior.astype(np.float32), "log_prior"),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="tweet-sentiment")
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


def train(train, val, *, out_dir: Path, version: str, data_desc: str, extra_params: dict | None = None,
          min_frequency: int = 2, data_info: dict | None = None, miss_cost: float = common.MISS_COST) -> dict:
    """Fits on `train`; `val` (the pool's early-stop part) chooses alpha and fits the temperature."""
    from tqdm import tqdm

    mlflow = common.setup_mlflow()
    with mlflow.start_run(run_name=f"{NAME}-{version}") as run:
        t0 = time.perf_counter()
        tok = wordtok.build(train.texts, min_frequency=min_frequency, max_tokens=MAX_TOKENS, pad_direction="right")
        vocab = tok.get_vocab_size()
        train_ids = [r[:MAX_TOKENS] for r in wordtok.encode_ids(tok, train.texts)]
        val_ids = [r[:MAX_TOKENS] for r in wordtok.encode_ids(tok, val.texts)]
        counts = count_matrix(train_ids, train.labels, vocab)
        mlflow.log_params({"model": NAME, "version": version, "vocab_size": vocab, "min_frequency": min_frequency,
                           "max_tokens": MAX_TOKENS, "train_rows": len(train), "val_rows": len(val),
                           "miss_cost": miss_cost, **(extra_params or {})})
        if data_info is not None:
            common.log_provenance(mlflow, data_info)
        best = None
        for step, alpha in enumerate(tqdm(ALPHAS, desc="alpha")):
            logp, prior = log_probs(counts, train.labels, alpha)
            m = common.classification_metrics(val.labels, p_positive(logp, prior, val_ids))
            mlflow.log_metrics({"val_accuracy": m["accuracy"], "val_macro_f1": m["macro_f1"], "alpha": alpha}, step=step)
            if best is None or m["macro_f1"] > best[1]["macro_f1"]:
                best = (alpha, m)
        alpha, _ = best
        logp, prior = log_probs(counts, train.labels, alpha)
        train_seconds = time.perf_counter() - t0

        version_dir = Path(out_dir) / NAME / version
        version_dir.mkdir(parents=True, exist_ok=True)
        tok.save(str(version_dir / "tokenizer.json"))
        export_onnx(logp, prior, version_dir / "model.onnx")
        (version_dir / "manifest.json").write_text(json.dumps(_stub(version)))
        # Calibration from the exported file, scored as the server scores it (T = 1 first).
        p_raw = common.OnnxScorer(version_dir).score(val.texts)
        temperature = common.fit_temperature(val.labels, common.margin(p_raw))
        threshold = common.cost_threshold(miss_cost)
        (version_dir / "manifest.json").write_text(json.dumps({**_stub(version), "temperature": temperature}))
        p_val = common.OnnxScorer(version_dir).score(val.texts)
        vm = common.classification_metrics(val.labels, p_val, threshold=threshold)
        metrics = {"val_accuracy": round(vm["accuracy"], 4), "val_f1": round(vm["macro_f1"], 4),
                   "val_roc_auc": round(vm["roc_auc"], 4), "val_negative_recall": round(vm["negative_recall"], 4),
                   "val_ece_before": round(common.expected_calibration_error(val.labels, p_raw), 4),
                   "val_ece_after": round(common.expected_calibration_error(val.labels, p_val), 4),
                   "alpha": alpha, "train_wall_seconds": round(train_seconds, 2)}
        size = (version_dir / "model.onnx").stat().st_size
        mlflow.log_params({"alpha": alpha})
        mlflow.log_metrics({"train_wall_seconds": train_seconds, "model_bytes": size, "final_val_accuracy": vm["accuracy"],
                            "final_val_macro_f1": vm["macro_f1"], "final_val_roc_auc": vm["roc_auc"],
                            "temperature": temperature, "threshold": threshold,
                            "val_ece_before": metrics["val_ece_before"], "val_ece_after": metrics["val_ece_after"]})
        manifest = common.write_manifest(
            version_dir, name=NAME, version=version, kind="naive-bayes",
            inputs={"input_ids": "input_ids", "attention_mask": None, "token_type_ids": None},
            output={"name": "probabilities", "kind": "probability"}, max_tokens=MAX_TOKENS, threshold=threshold,
            temperature=temperature, mlflow_run_id=run.info.run_id, data=data_desc, metrics=metrics,
            reference_scores=common.histogram10(p_val))
        mlflow.log_artifacts(str(version_dir), "model")
        return manifest


def _stub(version: str) -> dict:
    return {"name": NAME, "version": version, "max_tokens": MAX_TOKENS,
            "inputs": {"input_ids": "input_ids", "attention_mask": None, "token_type_ids": None},
            "output": {"name": "probabilities", "kind": "probability"}}


def main(argv=None) -> int:
    from .pool import describe, training_split

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--out-dir", default=str(common.MODELS_DIR))
    parser.add_argument("--version", default=common.DEFAULT_VERSION)
    parser.add_argument("--s140", type=int, default=0, help="Sentiment140 tweets added to the human pool (0: none)")
    parser.add_argument("--miss-cost", type=float, default=common.MISS_COST)
    parser.add_argument("--seed", type=int, default=13)
    args = parser.parse_args(argv)
    data_dir = Path(args.data_dir) if args.data_dir else default_data_dir()
    pool, train_split, info = training_split(data_dir, args.s140, args.seed)
    desc = describe(pool, train_split, "alpha and temperature")
    manifest = train(train_split, pool.early_stop, out_dir=Path(args.out_dir), version=args.version, data_desc=desc,
                     extra_params={"s140": args.s140, "train_rows_pool": len(pool.train),
                                   "pool_sha256": pool.info["sha256"]["pool"]},
                     data_info=info, miss_cost=args.miss_cost)
    print(json.dumps({**manifest["training"], "temperature": manifest["temperature"],
                      "threshold": manifest["threshold"]}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
