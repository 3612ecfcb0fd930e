"""The learning loop end to end, through the binary, on one store (the local folder or Azurite).

    python scripts/learning_loop_e2e.py --binary target/debug/tweet-sentiment --store local
    python scripts/learning_loop_e2e.py --binary … --store azurite   # needs AZURITE_CONNECTION_STRING

1. A weak Naive Bayes champion (trained on Sentiment140's emoticon labels only) is promoted and served.
2. Labelled traffic on which it is weak: half of TweetEval val, with `true_label` on the prediction or
   sent afterwards through /api/feedback.
3. `export-labels` writes the dataset; a second export of the same range gives the same bytes.
4. NB is retrained on the same base plus the weighted feedback and published with `promote --as
   challenger`; the running server picks it up and scores it in shadow.
5. Before enough labelled traffic, the verdict is `not_enough_labels` and `promote --challenger`
   refuses. The other half of TweetEval val is sent, labelled.
6. `report` gives the verdict `promote`; `/api/report` shows it; `promote --challenger` promotes, and
   `/api/health` shows the new champion and no challenger.
7. The old champion comes back as challenger; on more labelled traffic the verdict is `keep`, and
   `promote --challenger` refuses.

Every step's figures are printed. The script exits non-zero on the first failed check.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from datetime import datetime, timedelta, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from training.data import default_data_dir, load_tweeteval  # noqa: E402

S140_BASE = 4000
FEEDBACK_WEIGHT = 3


def check(condition: bool, what: str) -> None:
    if not condition:
        raise SystemExit(f"FAILED: {what}")
    print(f"ok: {what}")


def http(base: str, method: str, path: str, body=None) -> tuple[int, dict]:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(f"{base}{path}", data=data, method=method,
                                     headers={"content-type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"null")


class Loop:
    def __init__(self, binary: Path, store: str, work: Path, data_dir: Path):
        self.binary = binary
        self.work = work
        self.data_dir = data_dir
        self.env = {**os.environ, "LOG_FORMAT": "json", "RUST_LOG": "info", "REPORT_TIMER": "never",
                    "MODEL_POLL_SECONDS": "1", "LOG_BATCH_MILLISECONDS": "50", "LOG_MIN_FLUSH_MILLISECONDS": "10",
                    "MLFLOW_TRACKING_URI": f"sqlite:///{work / 'mlflow.db'}",
                    "INSTANCE_ID": "e2e"}
        for key in ("STORAGE_CONNECTION_STRING", "STORAGE_ACCOUNT_URL"):
            self.env.pop(key, None)
        if store == "azurite":
            self.env["STORAGE_CONNECTION_STRING"] = os.environ["AZURITE_CONNECTION_STRING"]
            # Each run gets its own containers, so a rerun on the same Azurite starts clean.
            suffix = f"{os.getpid()}"
            for var, name in (("MODELS_CONTAINER", "models"), ("LOGS_CONTAINER", "logs"),
                              ("REPORTS_CONTAINER", "reports"), ("DATASETS_CONTAINER", "datasets")):
                self.env[var] = f"e2e{suffix}{name}"
        else:
            self.env["MODELS_DIR"] = str(work / "store" / "models")
            self.env["DATA_DIR"] = str(work / "store" / "data")
        self.server = None
        self.base = ""

    def cli(self, *args: str, expect_ok: bool = True, echo: bool = True) -> subprocess.CompletedProcess:
        run = subprocess.run([str(self.binary), *args], env=self.env, capture_output=True, text=True, timeout=300)
        print(f"$ tweet-sentiment {' '.join(args)}  → exit {run.returncode}")
        for line in run.stdout.strip().splitlines() if echo else []:
            print(f"  {line}")
        if expect_ok and run.returncode != 0:
            raise SystemExit(f"FAILED: tweet-sentiment {' '.join(args)}:\n{run.stderr}")
        return run

    def train(self, version: str, *extra: str) -> dict:
        out = subprocess.run([sys.executable, "-m", "training.nb", "--data-dir", str(self.data_dir), "--base", "s140",
                              "--s140", str(S140_BASE), "--version", version, "--out-dir", str(self.work / "out"),
                              *extra], cwd=REPO, env=self.env, capture_output=True, text=True, timeout=600)
        if out.returncode != 0:
            raise SystemExit(f"FAILED: training {version}:\n{out.stderr[-3000:]}")
        summary = json.loads(out.stdout[out.stdout.index("{"):])
        print(f"trained naive-bayes/{version}: {json.dumps(summary.get('feedback_holdout', summary['metrics']))}")
        return summary

    def version_dir(self, version: str) -> str:
        return str(self.work / "out" / "naive-bayes" / version)

    def start(self) -> None:
        log = open(self.work / "server.log", "w")
        self.server = subprocess.Popen([str(self.binary), "serve"], stdout=log, stderr=subprocess.STDOUT,
                                       env={**self.env, "FUNCTIONS_CUSTOMHANDLER_PORT": "0"})
        deadline = time.time() + 60
        while time.time() < deadline:
            found = re.search(r'"message":"listening".*?"address":"([^"]+)"', (self.work / "server.log").read_text())
            if found:
                self.base = f"http://{found.group(1)}/api"
                break
            if self.server.poll() is not None:
                raise SystemExit(f"FAILED: the server exited:\n{(self.work / 'server.log').read_text()}")
            time.sleep(0.1)
        check(bool(self.base), "the server listens")

    def stop(self) -> None:
        if self.server and self.server.poll() is None:
            self.server.terminate()
            self.server.wait(timeout=30)

    def wait_health(self, what: str, predicate) -> dict:
        deadline = time.time() + 30
        health = {}
        while time.time() < deadline:
            _, health = http(self.base, "GET", "/health")
            if health and predicate(health):
                check(True, what)
                return health
            time.sleep(0.2)
        raise SystemExit(f"FAILED: {what}: health {json.dumps(health)}")

    def wait_log_flushed(self) -> None:
        """Until nothing is pending and nothing new was appended for half a second (shadow scoring of
        the challenger runs after each answer, so its records come a little later)."""
        last = None
        deadline = time.time() + 30
        while time.time() < deadline:
            _, health = http(self.base, "GET", "/health")
            log = health.get("log", {})
            if log.get("pending") == 0 and log.get("appended") == last:
                check(True, f"the prediction log is flushed ({last} records appended)")
                return
            last = log.get("appended") if log.get("pending") == 0 else None
            time.sleep(0.5)
        raise SystemExit(f"FAILED: the prediction log did not settle: {health}")

    def send(self, texts: list[str], labels: list[int], feedback_share: float, seed: int) -> dict:
        """Scores each tweet; its label goes inline, or (for `feedback_share` of them) by /api/feedback."""
        rng = random.Random(seed)
        sent = {"inline": 0, "feedback": 0}
        for text, label in zip(texts, labels):
            by_feedback = rng.random() < feedback_share
            body = {"text": text} if by_feedback else {"text": text, "true_label": label}
            status, answer = http(self.base, "POST", "/predict", body)
            check_status = status == 200 and "id" in answer
            if not check_status:
                raise SystemExit(f"FAILED: predict answered {status} {answer}")
            if by_feedback:
                status, answer = http(self.base, "POST", "/feedback", {"id": answer["id"], "true_label": label})
                if status != 201:
                    raise SystemExit(f"FAILED: feedback answered {status} {answer}")
            sent["feedback" if by_feedback else "inline"] += 1
        return sent


def iso(ts: datetime) -> str:
    return ts.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--binary", type=Path, default=REPO / "target" / "debug" / "tweet-sentiment")
    parser.add_argument("--store", choices=("local", "azurite"), default="local")
    parser.add_argument("--data-dir", type=Path, default=None)
    args = parser.parse_args()
    data_dir = args.data_dir or default_data_dir()
    val = load_tweeteval(data_dir, "val")
    order = list(range(len(val)))
    random.Random(20261129).shuffle(order)
    half = len(order) // 2
    first = [val.texts[i] for i in order[:half]], [val.labels[i] for i in order[:half]]
    second = [val.texts[i] for i in order[half:]], [val.labels[i] for i in order[half:]]
    print(f"store: {args.store}; traffic: TweetEval val binary, {half} then {len(order) - half} labelled tweets")

    with tempfile.TemporaryDirectory(prefix="learning-loop-") as tmp:
        loop = Loop(args.binary.resolve(), args.store, Path(tmp), data_dir)
        try:
            loop.train("e2e-1")
            loop.cli("promote", loop.version_dir("e2e-1"))
            loop.start()
            loop.wait_health("the weak champion serves", lambda h: (h.get("model") or {}).get("version") == "e2e-1")

            start = datetime.now(timezone.utc) - timedelta(seconds=1)
            sent = loop.send(*first, feedback_share=0.5, seed=1)
            loop.wait_log_flushed()
            end = datetime.now(timezone.utc) + timedelta(seconds=1)
            export_dir = Path(tmp) / "export"
            run = loop.cli("export-labels", "--from", iso(start), "--to", iso(end), "--out", str(export_dir))
            manifest = json.loads(next(export_dir.glob("*.manifest.json")).read_text())
            check(manifest["rows"] == half, f"the export holds each of the {half} labelled predictions once")
            check(manifest["per_class"] == {"negative": first[1].count(0), "positive": first[1].count(1)},
                  f"per-class counts match the labels sent: {manifest['per_class']}")
            check(manifest["label_sources"] == sent, f"inline and feedback labels as sent: {sent}")
            again = loop.cli("export-labels", "--from", iso(start), "--to", iso(end))
            check("already exported, identical" in again.stdout and manifest["sha256"] in again.stdout,
                  f"a rerun over the same range gives the same bytes ({manifest['sha256'][:23]}…)")
            check(manifest["sha256"] in run.stdout, "the command prints the dataset's sha256")

            summary = loop.train("e2e-2", "--feedback", str(export_dir), "--feedback-weight", str(FEEDBACK_WEIGHT),
                                 "--champion", loop.version_dir("e2e-1"))
            holdout = summary["feedback_holdout"]
            check(holdout["candidate"]["macro_f1"] > holdout["champion"]["macro_f1"],
                  f"on the newest feedback kept apart, the retrained model beats the champion "
                  f"({holdout['candidate']['macro_f1']} > {holdout['champion']['macro_f1']})")
            loop.cli("promote", "--as", "challenger", loop.version_dir("e2e-2"))
            loop.wait_health("the challenger is loaded beside the champion",
                             lambda h: (h.get("challenger") or {}).get("version") == "e2e-2"
                             and (h.get("model") or {}).get("version") == "e2e-1")

            loop.cli("report")
            early = loop.cli("promote", "--challenger", expect_ok=False)
            check(early.returncode != 0 and "not_enough_labels" in early.stderr,
                  "before enough paired labels, promote --challenger refuses")

            loop.send(*second, feedback_share=0.3, seed=2)
            loop.wait_log_flushed()
            report = json.loads(loop.cli("report", "--json", echo=False).stdout)
            verdict = report.get("challenger") or {}
            print(json.dumps({k: verdict.get(k) for k in ("labelled", "champion_macro_f1", "challenger_macro_f1",
                                                           "difference_ci95", "mcnemar_p", "verdict")}))
            check(verdict.get("labelled") == len(order) - half,
                  f"every tweet of the second half is paired ({verdict.get('labelled')})")
            check(verdict.get("verdict") == "promote", f"the verdict is promote: {verdict.get('reason')}")
            status, api_report = http(loop.base, "GET", "/report")
            check(status == 200 and (api_report.get("challenger") or {}).get("verdict") == "promote",
                  "GET /api/report carries the verdict")

            loop.cli("promote", "--challenger")
            loop.wait_health("the server now serves the former challenger as champion, and no challenger",
                             lambda h: (h.get("model") or {}).get("version") == "e2e-2" and h.get("challenger") is None)

            # The old champion, now the weaker model, comes back as challenger: the verdict keeps.
            loop.cli("promote", "--as", "challenger", loop.version_dir("e2e-1"))
            loop.wait_health("the old champion shadows the new one",
                             lambda h: (h.get("challenger") or {}).get("version") == "e2e-1")
            loop.send(*second, feedback_share=0.0, seed=3)
            loop.wait_log_flushed()
            verdict = json.loads(loop.cli("report", "--json", echo=False).stdout).get("challenger") or {}
            check(verdict.get("verdict") == "keep" and verdict.get("champion") == "naive-bayes/e2e-2",
                  f"a worse challenger gets keep ({verdict.get('labelled')} paired tweets, macro-F1 "
                  f"{verdict.get('challenger_macro_f1')} vs {verdict.get('champion_macro_f1')})")
            refused = loop.cli("promote", "--challenger", expect_ok=False)
            check(refused.returncode != 0 and "`keep`" in refused.stderr, "promote --challenger refuses on keep")
        finally:
            loop.stop()
    print(f"learning loop end to end on {args.store}: passed")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
