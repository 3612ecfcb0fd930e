"""Multinomial Naive Bayes over word-level tokens, exported as a 4-node ONNX graph.

    Gather(logp[V,2], input_ids) → ReduceSum(axis=1) → Add(log prior) → Softmax

The pad row of logp is all zeros, so padding never changes a score. Trained on the human-labelled
pool (training/pool.py), optionally plus N Sentiment140 tweets (`--s140 N`). Alpha (Laplace/Lidstone
smoothing) is chosen on the pool's early-stop part, and a temperature is fitted there too (NB's
probabilities are far too sure of themselves); the threshold is the cost-based one.

Run: python -m training.nb [--data-dir DIR] [--version V] [--s140 N]

Retraining from feedback (the learning loop): `--feedback PATH` adds an export of
`tweet-sentiment export-labels` (a rows file or a folder of them) to the same base data the champion
was trained on, each feedback tweet counted `--feedback-weight` times (NB's counts add up, so this is a
sample weight and the result is the champion's counts plus the feedback's). The most recent
`--feedback-holdout` share of the feedback is kept apart and scored, with `--champion DIR` scored on it
too. `--base s140` trains on `--s140 N` Sentiment140 tweets only (no human pool): a deliberately weak
model, used by the end-to-end test of the loop.
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


def holdout_metrics(version_dir: Path, holdout, threshold: float) -> dict:
    """Macro-F1, accuracy and negative recall of a version folder on the feedback hold-out."""
    p = common.OnnxScorer(version_dir).score(holdout.texts)
    m = common.classification_metrics(holdout.labels, p, threshold=threshold)
    return {"macro_f1": round(m["macro_f1"], 4), "accuracy": round(m["accuracy"], 4),
            "negative_recall": round(m["negative_recall"], 4), "rows": len(holdout)}


def main(argv=None) -> int:
    from .data import Split, load_dataset
    from .feedback import load_feedback, weighted
    from .pool import clean, describe, load_pool, training_split

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--out-dir", default=str(common.MODELS_DIR))
    parser.add_argument("--version", default=common.DEFAULT_VERSION)
    parser.add_argument("--s140", type=int, default=0, help="Sentiment140 tweets added to the human pool (0: none)")
    parser.add_argument("--miss-cost", type=float, default=common.MISS_COST)
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--base", choices=("pool", "s140"), default="pool",
                        help="base training data: the human pool (plus --s140 N), or --s140 N Sentiment140 tweets only")
    parser.add_argument("--feedback", default=None, help="export(s) of `tweet-sentiment export-labels` to add")
    parser.add_argument("--feedback-weight", type=int, default=3, help="times each feedback tweet counts")
    parser.add_argument("--feedback-holdout", type=float, default=0.2,
                        help="most recent share of the feedback kept apart for evaluation")
    parser.add_argument("--champion", default=None, help="version folder scored on the feedback hold-out too")
    args = parser.parse_args(argv)
    data_dir = Path(args.data_dir) if args.data_dir else default_data_dir()
    if args.base == "s140":
        if args.s140 <= 0:
            parser.error("--base s140 needs --s140 N (N > 0)")
        pool = load_pool(data_dir)
        s140 = load_dataset(data_dir).train.subset(args.s140, seed=args.seed)
        train_split = Split([clean(t) for t in s140.texts], list(s140.labels))
        info = {**pool.info, "sentiment140_only": {"n": len(train_split), "sha256": train_split.sha256()}}
        desc = (f"{len(train_split)} Sentiment140 tweets (emoticon labels, no human labels); alpha and temperature "
                f"on the human pool's {len(pool.early_stop)}-tweet early-stop part")
    else:
        pool, train_split, info = training_split(data_dir, args.s140, args.seed)
        desc = describe(pool, train_split, "alpha and temperature")
    extra = {"s140": args.s140, "base": args.base, "train_rows_pool": len(pool.train),
             "pool_sha256": pool.info["sha256"]["pool"]}
    holdout = None
    if args.feedback:
        feedback = load_feedback(args.feedback)
        fb_train, holdout = feedback.recent_holdout(args.feedback_holdout)
        train_split = weighted(train_split, fb_train, args.feedback_weight)
        info = {**info, "feedback": {"rows": len(feedback.rows), "train_rows": len(fb_train),
                                     "holdout_rows": len(holdout), "weight": args.feedback_weight,
                                     "sha256": feedback.sha256()}}
        extra.update({"feedback_rows": len(fb_train), "feedback_weight": args.feedback_weight,
                      "feedback_holdout_rows": len(holdout)})
        desc += (f"; plus {len(fb_train)} feedback tweets ×{args.feedback_weight} (export sha256 "
                 f"{feedback.sha256()[7:23]}), the latest {len(holdout)} kept apart")
    manifest = train(train_split, pool.early_stop, out_dir=Path(args.out_dir), version=args.version, data_desc=desc,
                     extra_params=extra, data_info=info, miss_cost=args.miss_cost)
    summary = {**manifest["training"], "temperature": manifest["temperature"], "threshold": manifest["threshold"]}
    if holdout is not None and len(holdout):
        version_dir = Path(args.out_dir) / NAME / args.version
        summary["feedback_holdout"] = {"candidate": holdout_metrics(version_dir, holdout, manifest["threshold"])}
        if args.champion:
            champion = json.loads((Path(args.champion) / "manifest.json").read_text())
            summary["feedback_holdout"]["champion"] = holdout_metrics(Path(args.champion), holdout,
                                                                      champion["threshold"])
        mlflow = common.setup_mlflow()
        with mlflow.start_run(run_id=manifest["training"]["mlflow_run_id"]):
            for who, m in summary["feedback_holdout"].items():
                mlflow.log_metrics({f"feedback_holdout_{who}_{k}": v for k, v in m.items()})
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
