"""Regenerates models/COMPARISON.md, COMPARISON.json, champion.json and reliability.svg.

Every model version under models/ is scored with onnxruntime, exactly as exported, at its own
manifest threshold and temperature (the server's decision), on:
- TweetEval sentiment val, binary (neutral dropped), whole: the selection set. Nothing trains on it
  any more (the pool drops every tweet that matches it), so the champion rule chooses here, and a
  seeded bootstrap gives the 95 % interval of macro-F1;
- TweetEval sentiment test, binary: the external test, reported only, never used to choose;
- the behaviour suite (tests/fixtures/behaviour.json, training/behaviour.py).
VADER (compound ≥ 0 → positive) is scored on the same sets as a reference. Calibration (expected
calibration error with T = 1 and with the manifest's T) is measured on TweetEval val. Latency comes
from the Rust binary (`tweet-sentiment evaluate --json`, batch 1) when it is built, else "n/a".
The figures are also logged to an MLflow run (experiment `tweet-sentiment-compare`).

Run: python -m training.compare [--data-dir DIR] [--rust-bin target/release/tweet-sentiment]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np

from . import behaviour, common
from .data import REPO_ROOT, default_data_dir, load_tweeteval

MODEL_NAMES = ("naive-bayes", "lstm", "minilm")
LATENCY_BUDGET_MS = 50.0  # p95 per tweet at batch 1 in the Rust server
BEHAVIOUR_TARGET = 0.90  # the product's floor on the behaviour suite, once some version reaches it
RUST_LATENCY_ROWS = 2000
BOOTSTRAP_RESAMPLES = 1000
BOOTSTRAP_SEED = 20261129
CHAMPION_RULE = (
    "Champion = the highest macro-F1 (at the version's own manifest threshold) on the whole TweetEval val binary "
    "set (human labels, never trained on: the pool drops every tweet matching it) among versions whose p95 latency "
    f"per tweet at batch 1 is at most {LATENCY_BUDGET_MS:g} ms in the Rust server (onnxruntime's batch-1 p95 stands "
    "in when the Rust figure is missing) and whose behaviour-suite pass rate is not below that of the champion in "
    f"place before this comparison ran, nor below the product's target of {BEHAVIOUR_TARGET:.0%} as soon as any "
    "version otherwise eligible reaches it (the suite tests what the product is for: catching complaints, "
    "polite or sarcastic ones included). A version trained on any part of TweetEval val (its manifest's training data "
    "says so) cannot be chosen: its val score is not a fair one. Ties go to the smaller file. TweetEval test is "
    "reported, never used to choose."
)


# Texts that the models are known to find hard; their scores are shown, not used to choose.
HARD_CASES = [
    "Great... another delay. Just great.",
    "Not bad at all",
    "I don't hate it, but I won't fly again",
    "Vuelo retrasado otra vez, qué desastre",
    "💔",
    "thanks for nothing @AirParadis",
]


def versions(models_dir: Path) -> list[Path]:
    found = []
    for name in MODEL_NAMES:
        root = models_dir / name
        if root.is_dir():
            found += sorted(p for p in root.iterdir() if (p / "manifest.json").is_file())
    return found


def vader_scores(texts: list[str]) -> np.ndarray:
    """VADER compound mapped to [0, 1]; compound ≥ 0 is positive, i.e. score ≥ 0.5."""
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    analyzer = SentimentIntensityAnalyzer()
    return np.array([(analyzer.polarity_scores(t)["compound"] + 1.0) / 2.0 for t in texts])


def ort_latency(scorer: common.OnnxScorer, texts: list[str], n: int = 300) -> dict:
    times = []
    for t in texts[:n]:
        start = time.perf_counter()
        scorer.score([t])
        times.append((time.perf_counter() - start) * 1000.0)
    return {"p50_ms": round(float(np.percentile(times, 50)), 3), "p95_ms": round(float(np.percentile(times, 95)), 3),
            "rows": len(times), "threads": 1}


def rust_evaluate(rust_bin: Path | None, version_dir: Path, texts: list[str], labels: list[int]) -> dict | None:
    if rust_bin is None or not Path(rust_bin).is_file():
        return None
    with tempfile.NamedTemporaryFile("w", suffix=".tsv", delete=False, encoding="utf-8") as f:
        for t, y in zip(texts, labels):
            flat = " ".join(t.split())  # one line per tweet; the server refuses empty text
            if flat:
                f.write(f"{y}\t{flat}\n")
        path = f.name
    try:
        proc = subprocess.run([str(rust_bin), "evaluate", "--version-dir", str(version_dir), "--input", path, "--json"],
                              capture_output=True, text=True, timeout=1800)
    finally:
        Path(path).unlink(missing_ok=True)
    if proc.returncode != 0:
        return {"error": (proc.stderr or proc.stdout).strip()[-500:]}
    for line in reversed(proc.stdout.strip().splitlines()):
        try:
            return json.loads(line)
        except json.JSONDecodeError:
            continue
    try:
        return json.loads(proc.stdout)
    except json.JSONDecodeError:
        return {"error": "no JSON in output: " + proc.stdout[-300:]}


def rounded(m: dict) -> dict:
    return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in m.items()}


def bootstrap_macro_f1(y, pred, resamples: int = BOOTSTRAP_RESAMPLES, seed: int = BOOTSTRAP_SEED) -> list[float]:
    """Seeded percentile bootstrap 95 % interval of macro-F1 for fixed decisions `pred`."""
    y = np.asarray(y, dtype=np.int64)
    pred = np.asarray(pred, dtype=np.int64)
    idx = np.random.default_rng(seed).integers(0, len(y), size=(resamples, len(y)))
    yy, pp = y[idx], pred[idx]
    f1s = []
    for cls in (0, 1):
        tp = ((pp == cls) & (yy == cls)).sum(axis=1)
        fp = ((pp == cls) & (yy != cls)).sum(axis=1)
        fn = ((pp != cls) & (yy == cls)).sum(axis=1)
        denom = 2 * tp + fp + fn
        f1s.append(np.where(denom > 0, 2 * tp / np.maximum(denom, 1), 0.0))
    macro = (f1s[0] + f1s[1]) / 2
    return [round(float(np.percentile(macro, 2.5)), 4), round(float(np.percentile(macro, 97.5)), 4)]


def p95(row: dict) -> float:
    rust = row.get("latency_rust") or {}
    if isinstance(rust.get("latency_ms_p95"), (int, float)):
        return rust["latency_ms_p95"]
    return row["latency_onnxruntime"]["p95_ms"]


def _clean(row: dict) -> bool:
    return p95(row) <= LATENCY_BUDGET_MS and not row.get("trained_on_tweeteval_val")


def behaviour_floor(rows: list[dict], previous: dict | None = None) -> float | None:
    """The lowest behaviour pass rate a champion may have: the champion in place's, raised to
    BEHAVIOUR_TARGET once a version that is otherwise eligible reaches the target."""
    floor = previous["behaviour"]["overall"]["pass_rate"] if previous and previous.get("behaviour") else None
    if any(_clean(r) and r["behaviour"]["overall"]["pass_rate"] >= BEHAVIOUR_TARGET for r in rows):
        floor = max(floor or 0.0, BEHAVIOUR_TARGET)
    return floor


def pick_champion(rows: list[dict], previous: dict | None = None) -> dict | None:
    """The rule in CHAMPION_RULE. `previous` is the champion row in place before (None: no behaviour floor
    but the target's)."""
    floor = behaviour_floor(rows, previous)
    eligible = [r for r in rows if _clean(r) and (floor is None or r["behaviour"]["overall"]["pass_rate"] >= floor)]
    if not eligible:
        return None
    return max(eligible, key=lambda r: (round(r["tweeteval_val"]["macro_f1"], 4), -r["file_bytes"]))


def trained_on_tweeteval_val(data_desc: str) -> bool:
    return "tweeteval val" in data_desc.lower()


def refusal_reason(row: dict, previous: dict | None, rows: list[dict] | None = None) -> str | None:
    if row.get("trained_on_tweeteval_val"):
        return "trained on part of TweetEval val, so its val score cannot choose it"
    if p95(row) > LATENCY_BUDGET_MS:
        return f"p95 latency {p95(row):.1f} ms > {LATENCY_BUDGET_MS:g} ms"
    floor = behaviour_floor(rows if rows is not None else [row], previous)
    rate = row["behaviour"]["overall"]["pass_rate"]
    if floor is not None and rate < floor:
        if floor == BEHAVIOUR_TARGET and (not previous or floor > previous["behaviour"]["overall"]["pass_rate"]):
            return (f"behaviour pass rate {rate:.1%} below the product's target of {BEHAVIOUR_TARGET:.0%}, "
                    "which another version reaches")
        return f"behaviour pass rate {rate:.1%} below the previous champion's {floor:.1%}"
    return None


def reliability_svg(curves: list[tuple[str, dict]], title: str) -> str:
    """A hand-written SVG reliability diagram: observed share of positives against mean score per bin."""
    size, pad = 360, 40
    colors = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf", "#7f7f7f"]
    width = 2 * size + 3 * pad + 260
    height = size + 2 * pad + 20
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" '
           'font-size="11">', f'<text x="{pad}" y="16" font-size="14">{_esc(title)}</text>']
    for panel, (label, key) in enumerate((("before: T = 1", "before"), ("after: manifest T", "after"))):
        x0, y0 = pad + panel * (size + pad), pad
        out.append(f'<rect x="{x0}" y="{y0}" width="{size}" height="{size}" fill="none" stroke="#444"/>')
        out.append(f'<line x1="{x0}" y1="{y0 + size}" x2="{x0 + size}" y2="{y0}" stroke="#aaa" stroke-dasharray="4 3"/>')
        out.append(f'<text x="{x0}" y="{y0 - 6}">{label}</text>')
        for t in (0, 0.5, 1):
            out.append(f'<text x="{x0 + t * size - 6:.1f}" y="{y0 + size + 14}">{t:g}</text>')
            out.append(f'<text x="{x0 - 22}" y="{y0 + (1 - t) * size + 4:.1f}">{t:g}</text>')
        out.append(f'<text x="{x0 + size / 2 - 30}" y="{y0 + size + 30}">mean score</text>')
        for i, (_name, bins) in enumerate(curves):
            pts = [(x0 + b["mean_score"] * size, y0 + (1 - b["observed"]) * size) for b in bins[key]]
            c = colors[i % len(colors)]
            if pts:
                out.append(f'<polyline fill="none" stroke="{c}" stroke-width="1.5" points="'
                           + " ".join(f"{x:.1f},{y:.1f}" for x, y in pts) + '"/>')
                out += [f'<circle cx="{x:.1f}" cy="{y:.1f}" r="2.5" fill="{c}"/>' for x, y in pts]
    lx = 2 * size + 3 * pad
    out.append(f'<text x="{lx}" y="{pad}">observed share of positives per bin (y)</text>')
    for i, (name, _) in enumerate(curves):
        c = colors[i % len(colors)]
        y = pad + 20 + 16 * i
        out.append(f'<line x1="{lx}" y1="{y - 4}" x2="{lx + 18}" y2="{y - 4}" stroke="{c}" stroke-width="2"/>')
        out.append(f'<text x="{lx + 24}" y="{y}">{_esc(name)}</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"


def _esc(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def fmt(x, digits=3):
    if x is None:
        return "n/a"
    if isinstance(x, float):
        return f"{x:.{digits}f}"
    return str(x)


def render_markdown(report: dict) -> str:
    lines = ["# Model comparison", ""]
    lines.append(f"Generated {report['generated_at']} by `python -m training.compare` (do not edit by hand).")
    lines.append("")
    d = report["data"]
    lines.append(f"- Selection set: TweetEval sentiment val, binary, whole ({d['tweeteval_val_rows']} tweets, "
                 f"{d['tweeteval_val_negative_share']:.0%} negative; neutral dropped). The training pool drops every "
                 "tweet matching it, so no model trained on it. 95 % interval: seeded bootstrap "
                 f"({report['bootstrap']['resamples']} resamples, seed {report['bootstrap']['seed']}).")
    lines.append(f"- External test: TweetEval sentiment test, binary ({d['tweeteval_test_rows']} tweets, "
                 f"{d['tweeteval_test_negative_share']:.0%} negative), reported only.")
    lines.append(f"- Behaviour suite: `tests/fixtures/behaviour.json`, {d['behaviour_tests']} tests over "
                 f"{d['behaviour_texts']} distinct hand-written texts (CheckList style, Ribeiro et al., ACL 2020).")
    lines.append("- Every version decides at its own manifest threshold with its own temperature, as the server does; "
                 "VADER at compound ≥ 0.")
    lines.append("")
    lines += ["## Summary", "",
              "| model | threshold | T | TweetEval val macro-F1 [95 % CI] | val neg recall | TweetEval test macro-F1 "
              "| test neg recall | behaviour pass | ECE val T=1 → T |",
              "|---|---|---|---|---|---|---|---|---|"]
    for r in report["models"] + report["baselines"]:
        v, t = r["tweeteval_val"], r["tweeteval_test"]
        ci = r.get("tweeteval_val_macro_f1_ci")
        ci_s = f" [{ci[0]:.3f}, {ci[1]:.3f}]" if ci else ""
        ece = r.get("ece_val")
        ece_s = f"{ece['before']:.3f} → {ece['after']:.3f}" if ece else "n/a"
        lines.append(f"| {r['id']} | {fmt(r.get('threshold'), 4)} | {fmt(r.get('temperature'), 3)} | "
                     f"{fmt(v['macro_f1'])}{ci_s} | {fmt(v['negative_recall'])} | {fmt(t['macro_f1'])} | "
                     f"{fmt(t['negative_recall'])} | {r['behaviour']['overall']['pass_rate']:.1%} | {ece_s} |")
    lines.append("")
    for key, title in (("tweeteval_test", "TweetEval test (binary), report only"),
                       ("tweeteval_val", "TweetEval val (binary), the selection set")):
        lines += [f"## {title}", "",
                  "| model | accuracy | macro-F1 | ROC-AUC | neg P | neg R | neg F1 | pos P | pos R | pos F1 |",
                  "|---|---|---|---|---|---|---|---|---|---|"]
        for r in report["models"] + report["baselines"]:
            m = r[key]
            lines.append(f"| {r['id']} | {fmt(m['accuracy'])} | {fmt(m['macro_f1'])} | {fmt(m['roc_auc'])} | "
                         f"{fmt(m['negative_precision'])} | {fmt(m['negative_recall'])} | {fmt(m['negative_f1'])} | "
                         f"{fmt(m['positive_precision'])} | {fmt(m['positive_recall'])} | {fmt(m['positive_f1'])} |")
        lines.append("")
    lines += ["## Calibration", "",
              "Expected calibration error (10 equal-width bins of P(positive)) on TweetEval val, with T = 1 (the raw "
              "model) and with the manifest's temperature (fitted on the training pool's early-stop part). "
              "Reliability diagram: [reliability.svg](reliability.svg).", "",
              "| model | T | ECE T=1 | ECE manifest T |", "|---|---|---|---|"]
    for r in report["models"]:
        lines.append(f"| {r['id']} | {fmt(r['temperature'], 4)} | {fmt(r['ece_val']['before'])} | "
                     f"{fmt(r['ece_val']['after'])} |")
    lines += ["", "![reliability diagram](reliability.svg)", ""]
    cats = list(report["models"][0]["behaviour"]["per_category"]) if report["models"] else []
    lines += ["## Behaviour suite (pass rate per category)", "",
              "| category | n | " + " | ".join(r["id"] for r in report["models"] + report["baselines"]) + " |",
              "|---|---|" + "---|" * (len(report["models"]) + len(report["baselines"]))]
    for c in cats:
        n = report["models"][0]["behaviour"]["per_category"][c]["n"]
        lines.append(f"| {c} | {n} | " + " | ".join(f"{r['behaviour']['per_category'][c]['pass_rate']:.0%}"
                                                    for r in report["models"] + report["baselines"]) + " |")
    lines.append("| **all** | " + str(report["data"]["behaviour_tests"]) + " | " + " | ".join(
        f"**{r['behaviour']['overall']['pass_rate']:.1%}**" for r in report["models"] + report["baselines"]) + " |")
    lines.append("")
    lines += ["## Cost", "",
              "| model | file size | training wall time | training data | Rust p50 / p95 ms | onnxruntime p50 / p95 ms "
              "| accuracy, Rust / onnxruntime |",
              "|---|---|---|---|---|---|---|"]
    for r in report["models"]:
        rust = r.get("latency_rust") or {}
        if "latency_ms_p50" in rust:
            rust_s = f"{fmt(rust['latency_ms_p50'], 2)} / {fmt(rust['latency_ms_p95'], 2)}"
        else:
            rust_s = "n/a"
        o = r["latency_onnxruntime"]
        wall = r["train_wall_seconds"]
        wall_s = f"{wall / 60:.1f} min" if isinstance(wall, (int, float)) else "n/a"
        acc_s = f"{fmt(rust['accuracy'])} / {fmt(r['onnxruntime_accuracy_first_rows'])}" if "accuracy" in rust else "n/a"
        lines.append(f"| {r['id']} | {r['file_bytes'] / 1e6:.1f} MB | {wall_s} | {r['data']} | {rust_s} | "
                     f"{fmt(o['p50_ms'], 2)} / {fmt(o['p95_ms'], 2)} | {acc_s} |")
    lines.append("")
    if not report["rust_latency_available"]:
        lines += ["Rust latency is n/a: the release binary was not built (or failed) when this ran. Fill it with "
                  "`cargo build --release && python -m training.compare --rust-bin target/release/tweet-sentiment`.", ""]
    else:
        lines += [f"Rust figures: `tweet-sentiment evaluate --version-dir … --json` on the first {report['rust_latency_rows']} "
                  "TweetEval test tweets, one tweet per call (tokenizer included); the last column compares its "
                  "accuracy with onnxruntime's on the same tweets.", ""]
    lines += ["onnxruntime latency: Python, one thread, one tweet per call (tokenizer included), first "
              f"{report['models'][0]['latency_onnxruntime']['rows'] if report['models'] else 0} TweetEval test tweets.",
              ""]
    lines += ["## Hard cases (P(positive))", "", "| text | " + " | ".join(r["id"] for r in report["models"]) + " |",
              "|---|" + "---|" * len(report["models"])]
    for i, text in enumerate(report["hard_cases"]):
        lines.append(f"| {text} | " + " | ".join(fmt(r["hard_cases"][i]) for r in report["models"]) + " |")
    lines.append("")
    lines += ["## Champion", "", report["champion_rule"], ""]
    prev = report.get("previous_champion")
    lines.append(f"Champion before this run: `{prev['name']}/{prev['version']}`" +
                 (f" (behaviour pass rate {report['previous_champion_behaviour']:.1%})."
                  if report.get("previous_champion_behaviour") is not None else " (not among the versions scored).")
                 if prev else "No champion before this run.")
    lines.append("")
    for rid, why in report.get("refused", {}).items():
        lines.append(f"- refused `{rid}`: {why}")
    if report.get("refused"):
        lines.append("")
    ch = report["champion"]
    lines.append(f"**Champion: `{ch['name']}/{ch['version']}`**" if ch else "**No version meets the rule.**")
    lines.append("")
    lines += ["## Where each model is weak", ""]
    lines += [f"- {w}" for w in report["weaknesses"]]
    lines.append("")
    return "\n".join(lines)


def weaknesses(rows: list[dict], vader: dict) -> list[str]:
    out = []
    for r in rows:
        te = r["tweeteval_test"]
        worst_cls = "negative" if te["negative_f1"] < te["positive_f1"] else "positive"
        cats = r["behaviour"]["per_category"]
        weak = sorted((c for c in cats if cats[c]["pass_rate"] is not None and cats[c]["pass_rate"] < 0.7),
                      key=lambda c: cats[c]["pass_rate"])
        out.append(
            f"`{r['id']}`: TweetEval test macro-F1 {te['macro_f1']:.3f}; its weaker class there is {worst_cls} "
            f"(F1 {te[worst_cls + '_f1']:.3f}, recall {te[worst_cls + '_recall']:.3f})."
            + (" It does not beat VADER on TweetEval test." if te["macro_f1"] <= vader["tweeteval_test"]["macro_f1"] else "")
            + (" Behaviour categories under 70 %: " + ", ".join(f"{c} ({cats[c]['pass_rate']:.0%})" for c in weak) + "."
               if weak else "")
        )
    out += [
        "The 2026.11.25-1 versions were trained on Sentiment140 (emoticon labels), and `minilm/2026.11.25-1` was also "
        "fine-tuned on 70 % of TweetEval val, so its TweetEval val figure is optimistic; the 2026.11.29 versions never "
        "saw TweetEval val.",
        "All models are trained on English tweets; other languages are unreliable (see the hard cases).",
    ]
    return out


def previous_champion(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None


def log_to_mlflow(report: dict, files: list[Path]) -> str | None:
    try:
        mlflow = common.setup_mlflow("tweet-sentiment-compare")
        with mlflow.start_run(run_name=f"compare-{report['generated_at']}") as run:
            common.log_provenance(mlflow, {"sha256": report["data"]["sha256"], **report["data"]})
            for r in report["models"] + report["baselines"]:
                key = r["id"].replace("/", "_").replace(" ", "_").replace("(", "").replace(")", "")
                metrics = {f"{key}.val_macro_f1": r["tweeteval_val"]["macro_f1"],
                           f"{key}.test_macro_f1": r["tweeteval_test"]["macro_f1"],
                           f"{key}.test_negative_recall": r["tweeteval_test"]["negative_recall"],
                           f"{key}.behaviour_pass_rate": r["behaviour"]["overall"]["pass_rate"]}
                if r.get("ece_val"):
                    metrics[f"{key}.ece_val_before"] = r["ece_val"]["before"]
                    metrics[f"{key}.ece_val_after"] = r["ece_val"]["after"]
                if r.get("tweeteval_val_macro_f1_ci"):
                    metrics[f"{key}.val_macro_f1_ci_low"] = r["tweeteval_val_macro_f1_ci"][0]
                    metrics[f"{key}.val_macro_f1_ci_high"] = r["tweeteval_val_macro_f1_ci"][1]
                mlflow.log_metrics(metrics)
            ch = report["champion"]
            mlflow.set_tag("champion", f"{ch['name']}/{ch['version']}" if ch else "none")
            for f in files:
                mlflow.log_artifact(str(f))
            return run.info.run_id
    except Exception as e:  # the comparison itself must not fail because of tracking
        print(f"warning: MLflow logging failed: {e}")
        return None


def finish(report: dict, models_dir: Path, champion_dir: Path, mlflow: bool) -> None:
    """Applies the champion rule to the report's rows, then writes every output."""
    rows = report["models"]
    prev = report.get("previous_champion")
    for r in rows:
        r["trained_on_tweeteval_val"] = trained_on_tweeteval_val(r["data"]) or r.get("trained_on_tweeteval_val", False)
    prev_row = next((r for r in rows if prev and (r["name"], r["version"]) == (prev.get("name"), prev.get("version"))),
                    None)
    champion = pick_champion(rows, prev_row)
    report["champion_rule"] = CHAMPION_RULE
    report["previous_champion_behaviour"] = prev_row["behaviour"]["overall"]["pass_rate"] if prev_row else None
    report["refused"] = {r["id"]: why for r in rows if (why := refusal_reason(r, prev_row, rows))}
    report["champion"] = {"name": champion["name"], "version": champion["version"]} if champion else None
    svg = models_dir / "reliability.svg"
    svg.write_text(reliability_svg([(r["id"], r["reliability_val"]) for r in rows],
                                   "Reliability on TweetEval val (binary): observed share of positives per score bin"))
    (models_dir / "COMPARISON.json").write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    (models_dir / "COMPARISON.md").write_text(render_markdown(report))
    if champion:
        (champion_dir / "champion.json").write_text(json.dumps(report["champion"]) + "\n")
    if mlflow:
        run_id = log_to_mlflow(report, [models_dir / "COMPARISON.json", models_dir / "COMPARISON.md", svg])
        print(json.dumps({"mlflow_run_id": run_id}))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--models-dir", default=str(common.MODELS_DIR))
    parser.add_argument("--rust-bin", default=str(REPO_ROOT / "target" / "release" / "tweet-sentiment"))
    parser.add_argument("--no-rust", action="store_true", help="skip the Rust latency even when the binary exists")
    parser.add_argument("--champion-out", default=None, help="where champion.json goes (default models-dir)")
    parser.add_argument("--suite", default=str(behaviour.SUITE_PATH))
    parser.add_argument("--no-mlflow", action="store_true")
    parser.add_argument("--render-only", action="store_true",
                        help="rewrite COMPARISON.md, champion.json and the SVG from COMPARISON.json, applying the current "
                             "champion rule to its figures, without scoring anything")
    args = parser.parse_args(argv)
    models_dir = Path(args.models_dir)
    if args.render_only:
        path = models_dir / "COMPARISON.json"
        report = json.loads(path.read_text())
        vader = next(b for b in report["baselines"] if b["name"] == "vader")
        report["weaknesses"] = weaknesses(report["models"], vader)
        finish(report, models_dir, Path(args.champion_out) if args.champion_out else models_dir, not args.no_mlflow)
        return 0

    data_dir = Path(args.data_dir) if args.data_dir else default_data_dir()
    te_val = load_tweeteval(data_dir, "val")
    te_test = load_tweeteval(data_dir, "test")
    suite = behaviour.load_suite(args.suite)
    sets = {"tweeteval_val": te_val, "tweeteval_test": te_test}
    rust_bin = None if args.no_rust else Path(args.rust_bin)
    rust_available = rust_bin is not None and rust_bin.is_file()
    champion_path = (Path(args.champion_out) if args.champion_out else models_dir) / "champion.json"
    prev = previous_champion(champion_path)

    rows = []
    for vdir in versions(models_dir):
        scorer = common.OnnxScorer(vdir, threads=2)
        man = scorer.manifest
        temperature = float(man.get("temperature", 1.0))
        threshold = float(man["threshold"])
        row = {"id": f"{man['name']}/{man['version']}", "name": man["name"], "version": man["version"],
               "kind": man["kind"], "file_bytes": (vdir / "model.onnx").stat().st_size,
               "train_wall_seconds": man["training"]["metrics"].get("train_wall_seconds"),
               "data": man["training"]["data"].split(";")[0], "threshold": threshold, "temperature": temperature,
               "trained_on_tweeteval_val": trained_on_tweeteval_val(man["training"]["data"])}
        for key, split in sets.items():
            p = scorer.score(split.texts, progress=True)
            row[key] = rounded(common.classification_metrics(split.labels, p, threshold))
            if key == "tweeteval_val":
                row["tweeteval_val_macro_f1_ci"] = bootstrap_macro_f1(split.labels, (p >= threshold).astype(int))
                p_raw = common.sigmoid(common.margin(p) * temperature)
                row["ece_val"] = {"before": round(common.expected_calibration_error(split.labels, p_raw), 4),
                                  "after": round(common.expected_calibration_error(split.labels, p), 4)}
                row["reliability_val"] = {"before": common.reliability(split.labels, p_raw),
                                          "after": common.reliability(split.labels, p)}
            if key == "tweeteval_test":
                n = RUST_LATENCY_ROWS
                row["onnxruntime_accuracy_first_rows"] = round(
                    common.classification_metrics(split.labels[:n], p[:n], threshold)["accuracy"], 4)
        row["behaviour"] = behaviour.evaluate(scorer.score, threshold, suite)
        row["hard_cases"] = [round(float(x), 3) for x in scorer.score(HARD_CASES)]
        row["latency_onnxruntime"] = ort_latency(common.OnnxScorer(vdir, threads=1), te_test.texts)
        rust = (rust_evaluate(rust_bin, vdir, te_test.texts[:RUST_LATENCY_ROWS], te_test.labels[:RUST_LATENCY_ROWS])
                if rust_available else None)
        row["latency_rust"] = rust
        rows.append(row)
        print(json.dumps({"id": row["id"], "val_macro_f1": row["tweeteval_val"]["macro_f1"],
                          "val_ci": row["tweeteval_val_macro_f1_ci"], "test_macro_f1": row["tweeteval_test"]["macro_f1"],
                          "test_negative_recall": row["tweeteval_test"]["negative_recall"],
                          "behaviour": row["behaviour"]["overall"]["pass_rate"], "ece_val": row["ece_val"],
                          "ort_p95_ms": row["latency_onnxruntime"]["p95_ms"],
                          "rust": {k: rust.get(k) for k in ("latency_ms_p50", "latency_ms_p95", "accuracy", "error")}
                          if rust else None}), flush=True)
    rust_available = rust_available and any("latency_ms_p50" in (r["latency_rust"] or {}) for r in rows)

    vader = {"id": "VADER (baseline)", "name": "vader", "threshold": 0.5}
    for key, split in sets.items():
        p = vader_scores(split.texts)
        vader[key] = rounded(common.classification_metrics(split.labels, p))
        if key == "tweeteval_val":
            vader["tweeteval_val_macro_f1_ci"] = bootstrap_macro_f1(split.labels, (p >= 0.5).astype(int))
    vader["behaviour"] = behaviour.evaluate(vader_scores, 0.5, suite)

    report = {
        "generated_at": dt.datetime.now(dt.timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z"),
        "data": {"tweeteval_val_rows": len(te_val),
                 "tweeteval_val_negative_share": round(1 - sum(te_val.labels) / len(te_val), 4),
                 "tweeteval_test_rows": len(te_test),
                 "tweeteval_test_negative_share": round(1 - sum(te_test.labels) / len(te_test), 4),
                 "behaviour_tests": len(suite["tests"]), "behaviour_texts": len(behaviour.texts_of(suite)),
                 "sha256": {"tweeteval_val": te_val.sha256(), "tweeteval_test": te_test.sha256(),
                            "behaviour_suite": common.sha256_file(Path(args.suite))}},
        "bootstrap": {"resamples": BOOTSTRAP_RESAMPLES, "seed": BOOTSTRAP_SEED, "interval": "percentile 95 %"},
        "models": rows, "baselines": [vader], "rust_latency_available": rust_available,
        "rust_latency_rows": RUST_LATENCY_ROWS if rust_available else 0,
        "latency_budget_ms": LATENCY_BUDGET_MS, "champion_rule": CHAMPION_RULE,
        "previous_champion": prev,
        "hard_cases": HARD_CASES,
        "weaknesses": weaknesses(rows, vader),
    }
    finish(report, models_dir, champion_path.parent, not args.no_mlflow)
    print(json.dumps({"champion": report["champion"], "refused": report["refused"]}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
