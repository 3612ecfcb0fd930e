"""Word-level LSTM classifier (PyTorch), exported with the native ONNX LSTM op.

Embedding → one-direction LSTM → masked mean and max pooling over the real tokens → linear head.
Batches are right-padded with id 0. A forward LSTM is causal, so trailing pads never reach the
outputs at real positions, and the pooling ignores pad positions: a tweet gets the same score
alone or in a batch padded to a longer neighbour. (A backward direction, or left padding, would
let pads change the score.)

Run: python -m training.lstm [--data-dir DIR] [--version V] [--epochs 8]
"""

from __future__ import annotations

import argparse
import json
import random
import time
from pathlib import Path

import numpy as np

from . import common, wordtok
from .data import load_dataset, tweeteval_val_parts

NAME = "lstm"
MAX_TOKENS = 64


def build_model(vocab_size: int, emb: int = 128, hidden: int = 128):
    import torch
    from torch import nn

    class LstmClassifier(nn.Module):
        def __init__(self):
            super().__init__()
            self.embedding = nn.Embedding(vocab_size, emb, padding_idx=0)
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


def export_onnx(model, path: Path) -> None:
    import onnx
    import torch

    model.eval()
    example = torch.tensor([[5, 6, 7, 0], [8, 9, 10, 11]], dtype=torch.long)
    torch.onnx.export(
        model, (example,), str(path), input_names=["input_ids"], output_names=["logits"],
        dynamic_axes={"input_ids": {0: "batch", 1: "seq"}, "logits": {0: "batch"}},
        opset_version=17, dynamo=False,
    )
    m = onnx.load(str(path))
    onnx.checker.check_model(m)
    if not any(n.op_type == "LSTM" for n in m.graph.node):
        raise RuntimeError("export did not produce a native ONNX LSTM node")


def train(train, val, *, out_dir: Path, version: str, data_desc: str, epochs: int = 8, patience: int = 2,
          batch_size: int = 128, lr: float = 2e-3, vocab_size: int = 20000, min_frequency: int = 2,
          seed: int = 7, threads: int = 2, select=None, extra_params: dict | None = None, emb: int = 128,
          hidden: int = 128) -> dict:
    import torch
    from tqdm import tqdm

    torch.set_num_threads(threads)
    torch.manual_seed(seed)
    rng = random.Random(seed)
    mlflow = common.setup_mlflow()
    with mlflow.start_run(run_name=f"{NAME}-{version}") as run:
        t0 = time.perf_counter()
        tok = wordtok.build(train.texts, vocab_size=vocab_size, min_frequency=min_frequency, max_tokens=MAX_TOKENS,
                            pad_direction="right")
        vocab = tok.get_vocab_size()
        train_ids = [r[:MAX_TOKENS] for r in wordtok.encode_ids(tok, train.texts)]
        val_ids = [r[:MAX_TOKENS] for r in wordtok.encode_ids(tok, val.texts)]
        select_ids = [r[:MAX_TOKENS] for r in wordtok.encode_ids(tok, select.texts)] if select is not None else None
        model = build_model(vocab, emb=emb, hidden=hidden)
        params = {"model": NAME, "version": version, "vocab_size": vocab, "min_frequency": min_frequency,
                  "max_tokens": MAX_TOKENS, "embedding_dim": emb, "hidden": hidden, "direction": "forward",
                  "pooling": "masked mean+max", "padding": "right", "batch_size": batch_size, "lr": lr,
                  "max_epochs": epochs, "patience": patience, "seed": seed, "train_rows": len(train),
                  "val_rows": len(val), **(extra_params or {})}
        mlflow.log_params(params)
        opt = torch.optim.Adam(model.parameters(), lr=lr)
        loss_fn = torch.nn.CrossEntropyLoss()
        lengths = [len(r) for r in train_ids]
        best = (-1.0, None, 0)
        bad = 0
        for epoch in range(1, epochs + 1):
            model.train()
            total, seen = 0.0, 0
            bar = tqdm(batches_by_length(len(train_ids), lengths, batch_size, rng), desc=f"lstm epoch {epoch}/{epochs}")
            for idx in bar:
                x = pad_right([train_ids[i] for i in idx])
                y = torch.tensor([train.labels[i] for i in idx], dtype=torch.long)
                loss = loss_fn(model(x), y)
                opt.zero_grad()
                loss.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
                opt.step()
                total += loss.item() * len(idx)
                seen += len(idx)
                bar.set_postfix(loss=f"{total / seen:.4f}")
            vm = common.classification_metrics(val.labels, predict(model, val_ids))
            record = {"train_loss": total / max(1, seen), "val_accuracy": vm["accuracy"], "val_macro_f1": vm["macro_f1"]}
            if select_ids is not None:
                sm = common.classification_metrics(select.labels, predict(model, select_ids))
                record["select_macro_f1"] = sm["macro_f1"]
            mlflow.log_metrics(record, step=epoch)
            print(json.dumps({"epoch": epoch, **record}), flush=True)
            if vm["accuracy"] > best[0]:
                best = (vm["accuracy"], {k: v.detach().clone() for k, v in model.state_dict().items()}, epoch)
                bad = 0
            else:
                bad += 1
                if bad >= patience:
                    break
        model.load_state_dict(best[1])
        train_seconds = time.perf_counter() - t0

        version_dir = Path(out_dir) / NAME / version
        version_dir.mkdir(parents=True, exist_ok=True)
        tok.save(str(version_dir / "tokenizer.json"))
        export_onnx(model, version_dir / "model.onnx")
        (version_dir / "manifest.json").write_text(json.dumps(_stub(version)))
        scorer = common.OnnxScorer(version_dir, threads=threads)
        p_val = scorer.score(val.texts, batch_size=256)
        vm = common.classification_metrics(val.labels, p_val)
        metrics = {"val_accuracy": round(vm["accuracy"], 4), "val_f1": round(vm["macro_f1"], 4),
                   "val_roc_auc": round(vm["roc_auc"], 4), "best_epoch": best[2],
                   "train_wall_seconds": round(train_seconds, 1)}
        if select is not None:
            sm = common.classification_metrics(select.labels, scorer.score(select.texts))
            metrics["tweeteval_select_macro_f1"] = round(sm["macro_f1"], 4)
            metrics["tweeteval_select_accuracy"] = round(sm["accuracy"], 4)
        size = (version_dir / "model.onnx").stat().st_size
        mlflow.log_metrics({"train_wall_seconds": train_seconds, "model_bytes": size, "best_epoch": best[2],
                            "final_val_accuracy": vm["accuracy"], "final_val_macro_f1": vm["macro_f1"]})
        manifest = common.write_manifest(
            version_dir, name=NAME, version=version, kind="lstm",
            inputs={"input_ids": "input_ids", "attention_mask": None, "token_type_ids": None},
            output={"name": "logits", "kind": "logits"}, max_tokens=MAX_TOKENS, threshold=0.5,
            mlflow_run_id=run.info.run_id, data=data_desc, metrics=metrics, reference_scores=common.histogram10(p_val))
        mlflow.log_artifacts(str(version_dir), "model")
        return manifest


def _stub(version: str) -> dict:
    return {"name": NAME, "version": version, "max_tokens": MAX_TOKENS,
            "inputs": {"input_ids": "input_ids", "attention_mask": None, "token_type_ids": None},
            "output": {"name": "logits", "kind": "logits"}}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--out-dir", default=str(common.MODELS_DIR))
    parser.add_argument("--version", default=common.DEFAULT_VERSION)
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    ds = load_dataset(args.data_dir)
    _, select = tweeteval_val_parts(args.data_dir)
    desc = (f"sentiment140-100k train split {len(ds.train)} rows (100 %), sha256 {ds.info['sha256']['train'][:16]}; "
            f"early stopping on val split {len(ds.val)} rows")
    manifest = train(ds.train, ds.val, out_dir=Path(args.out_dir), version=args.version, data_desc=desc,
                     epochs=args.epochs, threads=args.threads, select=select,
                     extra_params={"data_share": 1.0, "split_sha256_train": ds.info["sha256"]["train"]})
    print(json.dumps(manifest["training"], indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
