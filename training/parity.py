"""Writes tests/fixtures/parity.json: fixed tweets, and for every model version under models/ the
token ids and the onnxruntime P(positive) of each tweet scored alone (batch 1).

The Rust test suite loads every committed version and must reproduce both (scores to 1e-4).

Run: python -m training.parity [--models-dir models] [--out tests/fixtures/parity.json]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from . import common
from .data import REPO_ROOT

MODEL_NAMES = ("naive-bayes", "lstm", "minilm")

# Varied on purpose: emoticons, URLs, mentions, HTML entities, emoji, capitals, repeated
# punctuation, very long text, non-Latin scripts and odd whitespace. Empty text is left out: the
# service refuses it before scoring.
TWEETS = [
    "I love flying with you guys :)",
    "Worst flight ever. Lost my bag AGAIN :(",
    "@AirParadis thanks for the upgrade!!! :D",
    "@AirParadis @helpdesk my flight was cancelled and nobody answers the phone",
    "Check in was smooth http://t.co/abc123 #happy",
    "delayed 3 hours... https://www.example.com/status?id=42&lang=en",
    "Tom &amp; Jerry &quot;flew&quot; with us &lt;3",
    "the crew was great &#39;cause they smiled",
    "😀😀😀 best day ever",
    "✈️ landed safely, thank you! 🙏",
    "😡😡 never again",
    "THIS IS UNACCEPTABLE!!!",
    "so happy right now!!!!!!",
    "why??? why is the wifi always down???",
    "meh.",
    "ok",
    "  spaces   everywhere  ",
    "Flight AP123 on 2026-11-25 was fine I guess",
    "Not bad at all",
    "not good, not good at all",
    "I don't hate it, but I won't fly again",
    "can't wait for my holiday in Paris tomorrow",
    "sooooo tired of waiting at the gate",
    "yay! upgraded to business class ;)",
    "the food was :-( and the seat was broken",
    "Great... another delay. Just great.",
    "Merci pour ce vol très agréable !",
    "Vuelo retrasado otra vez, qué desastre",
    "Danke für den tollen Service",
    "東京行きのフライトは最高でした",
    "Спасибо за отличный полёт",
    "رحلة رائعة شكرا",
    "#AirParadis #fail #neveragain",
    "RT @someone: loving the new lounge at CDG",
    "1st time flying, a bit nervous but excited",
    "10:30 departure, 11:45 boarding?! ok...",
    "my email is someone@example.com, please refund me",
    "www.airparadis.com is down again",
    "lol the pilot made a joke and everyone laughed xD",
    "I'm not sure how I feel about this",
    "Tabs\tand\nnew lines",
    "<url> <user> literal placeholders",
    "A very long tweet: " + "the flight attendants were wonderful and kind, " * 12 + "the end",
    "Another long one where the end matters " + "blah " * 80 + "and it was terrible",
    "Lost luggage, rude staff, 5 hour delay, cold food, broken seat. Anything else?",
    "Thank you @AirParadis for making my mum's birthday trip special ❤️",
    "i h8 delays",
    "Best. Airline. Ever.",
    "ugh",
    "💔",
]


def build(models_dir: Path) -> dict:
    result = {"tweets": TWEETS, "models": {}}
    for name in MODEL_NAMES:
        root = models_dir / name
        if not root.is_dir():
            continue
        for version_dir in sorted(p for p in root.iterdir() if (p / "manifest.json").is_file()):
            scorer = common.OnnxScorer(version_dir, threads=1)
            token_ids = [scorer.token_ids(t) for t in TWEETS]
            scores = [float(scorer.score([t])[0]) for t in TWEETS]
            result["models"][f"{name}/{version_dir.name}"] = {"token_ids": token_ids, "scores": scores}
    return result


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models-dir", default=str(common.MODELS_DIR))
    parser.add_argument("--out", default=str(REPO_ROOT / "tests" / "fixtures" / "parity.json"))
    args = parser.parse_args(argv)
    data = build(Path(args.models_dir))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(data, ensure_ascii=False, indent=1) + "\n")
    print(f"wrote {out}: {len(data['tweets'])} tweets, versions {sorted(data['models'])}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
