"""MiniLM sweep on one accelerator: several fine-tunings side by side, judged like `compare`, one choice.

The model is small, so one fine-tuning leaves a large GPU mostly idle; each config runs in its own
process and they share the device. Every run is judged the way `compare` judges a version:

- the temperature is fitted on the pool's early-stop part and the threshold comes from the miss cost;
- the choice is the highest macro-F1 on the whole TweetEval val binary set among the candidates whose
  behaviour-suite pass rate reaches the product's target (`compare.BEHAVIOUR_TARGET`);
- TweetEval test is scored and reported, never used to choose.

A greedy weight average of the runs ("model soup", Wortsman et al., ICML 2022) is one more candidate:
runs enter in order of their early-stop macro-F1 and each is kept only when the average's early-stop
macro-F1 does not drop. All runs start from the same base weights, which is what makes averaging work.

Out: `sweep.json` (every candidate's config, curve and figures) and `weights.safetensors` (the
chosen weights: float16 for the tensors the ONNX export stores in float16, float32 for the rest),
cut into parts of at most --part-mib when larger. `python -m training.minilm --weights ... --sweep-record
sweep.json` publishes them as a version.

Run: python -m training.sweep --device cuda --out DIR [--minutes 5.5] [--configs FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from . import behaviour, common, minilm
from .compare import BEHAVIOUR_TARGET
from .data import default_data_dir, load_dataset, load_tweeteval
from .pool import describe, load_pool, with_sentiment140

FP16_MIN_ELEMENTS = 1024  # the same cut as minilm.store_fp16: smaller tensors stay float32 in the export

BASE = {"batch_size": 32, "warmup": 0.06, "evals_per_epoch": 4, "freeze_word_embeddings": False}
# Around the recipe of the versions in models/ (2 epochs, lr 5e-5, unfrozen word table): longer runs,
# other learning rates, more Sentiment140 and other seeds.
DEFAULT_CONFIGS = [
    {"name": "e2-lr5-s0", "epochs": 2, "lr": 5e-5, "s140": 0, "seed": 13},
    {"name": "e3-lr5-s0", "epochs": 3, "lr": 5e-5, "s140": 0, "seed": 13},
    {"name": "e3-lr3-s0", "epochs": 3, "lr": 3e-5, "s140": 0, "seed": 13},
    {"name": "e4-lr4-s0", "epochs": 4, "lr": 4e-5, "s140": 0, "seed": 13},
    {"name": "e3-lr5-s0-seed14", "epochs": 3, "lr": 5e-5, "s140": 0, "seed": 14},
    {"name": "e2-lr5-s8k", "epochs": 2, "lr": 5e-5, "s140": 8000, "seed": 13},
    {"name": "e3-lr5-s8k", "epochs": 3, "lr": 5e-5, "s140": 8000, "seed": 13},
    {"name": "e3-lr5-s8k-seed14", "epochs": 3, "lr": 5e-5, "s140": 8000, "seed": 14},
    {"name": "e2-lr5-s20k", "epochs": 2, "lr": 5e-5, "s140": 20000, "seed": 13},
    {"name": "e2-lr5-s50k", "epochs": 2, "lr": 5e-5, "s140": 50000, "seed": 13},
]


class MetricLog:
    """The one MLflow call `minilm.train` makes, kept in memory: the sweep's machine may have no MLflow."""

    def __init__(self):
        self.points: list[dict] = []

    def log_metrics(self, metrics: dict, step: int | None = None) -> None:
        self.points.append({"step": step, **{k: float(v) for k, v in metrics.items()}})


# ----------------------------------------------------------------------------- weights on disk


def save_weights(state_dict: dict, path: Path, part_bytes: int | None = None) -> list[Path]:
    """safetensors bytes, cut into `path.0`, `path.1`, … when larger than part_bytes."""
    import torch
    from safetensors.torch import save

    tensors = {}
    for name, t in state_dict.items():
        t = t.detach().cpu().contiguous()
        if t.is_floating_point() and t.numel() >= FP16_MIN_ELEMENTS:
            t = t.to(torch.float16)
        tensors[name] = t
    blob = save(tensors)
    path = Path(path)
    if not part_bytes or len(blob) <= part_bytes:
        path.write_bytes(blob)
        return [path]
    parts = []
    for k, start in enumerate(range(0, len(blob), part_bytes)):
        part = path.with_name(f"{path.name}.{k}")
        part.write_bytes(blob[start : start + part_bytes])
        parts.append(part)
    return parts


def load_weights(path: Path) -> dict:
    """The state dict written by save_weights (whole or in parts), every float tensor as float32."""
    from safetensors.torch import load

    path = Path(path)
    if path.exists():
        blob = path.read_bytes()
    else:
        parts = sorted(path.parent.glob(path.name + ".*"), key=lambda p: int(p.suffix[1:]))
        if not parts:
            raise FileNotFoundError(f"{path} (nor {path.name}.0, .1, …)")
        blob = b"".join(p.read_bytes() for p in parts)
    return {k: (v.float() if v.is_floating_point() else v) for k, v in load(blob).items()}


# ----------------------------------------------------------------------------- judging


class Judge:
    """Scores a model the way `compare` scores an exported version (temperature, threshold, sets)."""

    def __init__(self, data_dir: Path, pool, device: str, miss_cost: float = common.MISS_COST):
        self.pool = pool
        self.device = device
        self.threshold = common.cost_threshold(miss_cost)
        self.val = load_tweeteval(data_dir, "val")
        self.test = load_tweeteval(data_dir, "test")
        self.train_tok = minilm.load_tokenizer(minilm.TRAIN_MAX_TOKENS)
        self.serve_tok = minilm.load_tokenizer(minilm.SERVE_MAX_TOKENS)
        self.batch = 256 if device != "cpu" else 64

    def _z(self, model, tok, texts):
        return minilm.margins(model, tok, texts, batch_size=self.batch, device=self.device, desc="judge")

    def early_stop_f1(self, model) -> float:
        z = self._z(model, self.train_tok, self.pool.early_stop.texts)
        return common.classification_metrics(self.pool.early_stop.labels, common.sigmoid(z))["macro_f1"]

    def __call__(self, model) -> dict:
        z_es = self._z(model, self.train_tok, self.pool.early_stop.texts)
        temperature = common.fit_temperature(self.pool.early_stop.labels, z_es)

        def scores(texts):
            return common.sigmoid(self._z(model, self.serve_tok, list(texts)) / temperature)

        out = {"temperature": round(temperature, 4), "threshold": self.threshold}
        for name, split in (("tweeteval_val", self.val), ("tweeteval_test", self.test)):
            m = common.classification_metrics(split.labels, scores(split.texts), threshold=self.threshold)
            out[name] = {k: round(float(m[k]), 4) for k in ("macro_f1", "accuracy", "negative_recall", "roc_auc")}
        suite = behaviour.evaluate(scores, self.threshold)
        out["behaviour"] = {"pass_rate": suite["overall"]["pass_rate"],
                            "per_category": {k: v["pass_rate"] for k, v in suite["per_category"].items()}}
        return out


# ----------------------------------------------------------------------------- one run (a worker process)


def run_one(cfg: dict, data_dir: Path, out: Path, device: str, stop_at: float | None, tiny: bool) -> dict:
    import torch

    torch.set_num_threads(1)
    cfg = {**BASE, **cfg}
    t0 = time.perf_counter()
    pool = load_pool(data_dir)
    train_split = pool.train.subset(cfg.get("train_limit"), seed=cfg["seed"])
    if cfg["s140"]:
        train_split = with_sentiment140(train_split, load_dataset(data_dir).train, cfg["s140"], cfg["seed"])
    tok = minilm.load_tokenizer(minilm.TRAIN_MAX_TOKENS)
    torch.manual_seed(cfg["seed"])  # the head's initial weights
    model = minilm.tiny_model(tok, cfg["seed"]) if tiny else minilm.build_model()
    if cfg["freeze_word_embeddings"]:
        model.bert.embeddings.word_embeddings.weight.requires_grad_(False)
    model.to(device)
    log = MetricLog()
    ckpt = minilm.Checkpoint(out / "ckpt", every_minutes=1e9, resumable=False)
    state = minilm.train(model, tok, train_split, pool.early_stop, epochs=cfg["epochs"], batch_size=cfg["batch_size"],
                         lr=cfg["lr"], warmup=cfg["warmup"], seed=cfg["seed"],
                         evals_per_epoch=cfg["evals_per_epoch"], ckpt=ckpt, mlflow=log,
                         run_params={"sweep": cfg}, device=device, stop_at=stop_at)
    train_seconds = time.perf_counter() - t0
    figures = Judge(data_dir, pool, device)(model)
    result = {
        "name": cfg["name"], "config": cfg, "data": describe(pool, train_split, "early stopping and temperature"),
        "train_rows": len(train_split), "steps": state["step"], "total_steps": state["total_steps"],
        "stopped_at_deadline": state["stopped_at_deadline"], "best_step": state["best_step"],
        "best_early_stop_f1": round(state["best_f1"], 4), "train_seconds": round(train_seconds, 1),
        "history": state["history"], "train_log": log.points, **figures,
    }
    (out / "result.json").write_text(json.dumps(result, indent=1))
    return result


# ----------------------------------------------------------------------------- the sweep


def greedy_soup(runs: list[dict], run_dirs: dict[str, Path], judge: Judge, model) -> tuple[dict, list[str]]:
    """Uniform average of the runs that do not lower the early-stop macro-F1, best run first."""
    import torch

    order = sorted(runs, key=lambda r: r["best_early_stop_f1"], reverse=True)
    members = [order[0]["name"]]
    total = {k: v.double() for k, v in torch.load(run_dirs[order[0]["name"]] / "ckpt" / "best.pt",
                                                  weights_only=True).items() if v.is_floating_point()}
    best_f1 = order[0]["best_early_stop_f1"]
    for run in order[1:]:
        sd = torch.load(run_dirs[run["name"]] / "ckpt" / "best.pt", weights_only=True)
        trial = {k: total[k] + sd[k].double() for k in total}
        n = len(members) + 1
        model.load_state_dict({k: (v / n).float() for k, v in trial.items()}, strict=False)
        f1 = judge.early_stop_f1(model)
        print(json.dumps({"soup_trial": run["name"], "early_stop_f1": round(f1, 4), "best": round(best_f1, 4)}),
              flush=True)
        if f1 >= best_f1:
            total, best_f1 = trial, f1
            members.append(run["name"])
    n = len(members)
    return {k: (v / n).float() for k, v in total.items()}, members


def choose(candidates: list[dict], floor: float = BEHAVIOUR_TARGET) -> tuple[dict, str]:
    """compare's rule: the best val macro-F1 among the candidates at or above the behaviour floor."""
    eligible = [c for c in candidates if c["behaviour"]["pass_rate"] >= floor]
    pool = eligible or candidates
    best = max(pool, key=lambda c: c["tweeteval_val"]["macro_f1"])
    why = (f"highest TweetEval val macro-F1 among the {len(eligible)} candidates at or above the behaviour "
           f"floor {floor:.1%}" if eligible else
           f"no candidate reached the behaviour floor {floor:.1%}: highest TweetEval val macro-F1")
    return best, why


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--out", required=True, help="folder for sweep.json, the chosen weights and each run")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--configs", default=None, help="JSON list of configs (default: DEFAULT_CONFIGS)")
    parser.add_argument("--minutes", type=float, default=5.5,
                        help="training time of the whole sweep; a run still going then stops with its best weights")
    parser.add_argument("--part-mib", type=float, default=15.0, help="largest part of weights.safetensors")
    parser.add_argument("--behaviour-floor", type=float, default=BEHAVIOUR_TARGET,
                        help="lowest behaviour pass rate a choice may have (compare's floor: the champion's rate)")
    parser.add_argument("--tiny", action="store_true", help="random tiny encoder (smoke tests only)")
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--stop-at", type=float, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    data_dir = Path(args.data_dir) if args.data_dir else default_data_dir()
    out = Path(args.out)

    if args.worker:
        cfg = json.loads(args.worker)
        run_one(cfg, data_dir, out, args.device, args.stop_at, args.tiny)
        return 0

    import torch

    configs = json.loads(Path(args.configs).read_text()) if args.configs else DEFAULT_CONFIGS
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    stop_at = t0 + args.minutes * 60
    procs, run_dirs = {}, {}
    for cfg in configs:
        run_dir = out / "runs" / cfg["name"]
        run_dir.mkdir(parents=True, exist_ok=True)
        run_dirs[cfg["name"]] = run_dir
        cmd = [sys.executable, "-m", "training.sweep", "--out", str(run_dir), "--device", args.device,
               "--data-dir", str(data_dir), "--worker", json.dumps(cfg), "--stop-at", str(stop_at)]
        if args.tiny:
            cmd.append("--tiny")
        log = open(run_dir / "log.txt", "w")
        procs[cfg["name"]] = (subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT), log)
    runs = []
    for name, (proc, log) in procs.items():
        # Judging follows training; a worker past the deadline by this much is stuck, not slow.
        try:
            rc = proc.wait(timeout=max(1.0, stop_at + 150 - time.time()))
        except subprocess.TimeoutExpired:
            proc.kill()
            rc = "killed"
        log.close()
        result_path = run_dirs[name] / "result.json"
        if rc != 0 or not result_path.exists():
            tail = (run_dirs[name] / "log.txt").read_text(errors="replace")[-1500:]
            print(json.dumps({"run": name, "failed": rc}), "\n", tail, flush=True)
            continue
        result = json.loads(result_path.read_text())
        runs.append(result)
        print(json.dumps({k: result[k] for k in ("name", "steps", "total_steps", "stopped_at_deadline",
                                                 "best_early_stop_f1", "tweeteval_val", "tweeteval_test",
                                                 "behaviour", "train_seconds")}), flush=True)
    if not runs:
        raise SystemExit("no run of the sweep finished")

    candidates = list(runs)
    pool = load_pool(data_dir)
    judge = Judge(data_dir, pool, args.device)
    tok = minilm.load_tokenizer(minilm.TRAIN_MAX_TOKENS)
    model = (minilm.tiny_model(tok, 0) if args.tiny else minilm.build_model()).to(args.device)
    soup_weights = None
    if len(runs) > 1:
        soup_weights, members = greedy_soup(runs, run_dirs, judge, model)
        if len(members) > 1:
            model.load_state_dict(soup_weights, strict=False)
            member_runs = [r for r in runs if r["name"] in members]
            data = (f"weight average of {len(members)} fine-tunings ("
                    + "; ".join(f"{r['name']}: {r['data']}" for r in member_runs) + ")")
            candidates.append({"name": "soup", "members": members, "data": data,
                               "best_early_stop_f1": round(judge.early_stop_f1(model), 4),
                               "train_seconds": round(sum(r["train_seconds"] for r in member_runs), 1),
                               **judge(model)})
            print(json.dumps({k: candidates[-1][k] for k in ("name", "members", "best_early_stop_f1",
                                                             "tweeteval_val", "tweeteval_test", "behaviour")}),
                  flush=True)
    chosen, why = choose(candidates, args.behaviour_floor)
    if chosen["name"] == "soup":
        weights = soup_weights
        base = torch.load(run_dirs[chosen["members"][0]] / "ckpt" / "best.pt", weights_only=True)
        weights = {**base, **weights}  # integer buffers come from a member
    else:
        weights = torch.load(run_dirs[chosen["name"]] / "ckpt" / "best.pt", weights_only=True)
    parts = save_weights(weights, out / "weights.safetensors", int(args.part_mib * 2**20))
    device_name = torch.cuda.get_device_name() if args.device.startswith("cuda") else args.device
    record = {"device": device_name, "minutes": args.minutes, "wall_seconds": round(time.time() - t0, 1),
              "torch": torch.__version__, "chosen": chosen["name"], "why": why, "candidates": candidates,
              "weights": [p.name for p in parts]}
    (out / "sweep.json").write_text(json.dumps(record, indent=1))
    print(json.dumps({"chosen": chosen["name"], "why": why, "tweeteval_val": chosen["tweeteval_val"],
                      "tweeteval_test": chosen["tweeteval_test"], "behaviour": chosen["behaviour"]["pass_rate"],
                      "weights": record["weights"], "wall_seconds": record["wall_seconds"]}), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
