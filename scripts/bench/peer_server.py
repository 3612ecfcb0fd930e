"""The obvious alternative a user would pick, for the side-by-side benchmark: FastAPI + onnxruntime
serving the same model version (same ONNX file, same tokenizer.json, same manifest semantics:
truncate to max_tokens, pad to the longest, margin / temperature, threshold).

Run: MODEL_DIR=models/minilm/2026.11.29-1 uvicorn --app-dir scripts/bench peer_server:app --workers 2
"""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path

import numpy as np
import onnxruntime as ort
from fastapi import FastAPI
from pydantic import BaseModel
from tokenizers import Tokenizer

MODEL_DIR = Path(os.environ["MODEL_DIR"])
MANIFEST = json.loads((MODEL_DIR / "manifest.json").read_text())
TOKENIZER = Tokenizer.from_file(str(MODEL_DIR / "tokenizer.json"))
TOKENIZER.no_truncation()
options = ort.SessionOptions()
options.intra_op_num_threads = 1
SESSION = ort.InferenceSession(str(MODEL_DIR / "model.onnx"), options, providers=["CPUExecutionProvider"])
PAD = (TOKENIZER.padding or {}).get("pad_id", 0)
INPUTS = MANIFEST["inputs"]
REF = {"name": MANIFEST["name"], "version": MANIFEST["version"]}

app = FastAPI()


class Body(BaseModel):
    text: str | None = None
    texts: list[str] | None = None


def score(texts: list[str]) -> np.ndarray:
    encs = TOKENIZER.encode_batch(texts)
    ids = [e.ids[: MANIFEST["max_tokens"]] for e in encs]
    width = max(1, max(len(r) for r in ids))
    input_ids = np.full((len(ids), width), PAD, dtype=np.int64)
    mask = np.zeros((len(ids), width), dtype=np.int64)
    for i, row in enumerate(ids):
        input_ids[i, : len(row)] = row
        mask[i, : len(row)] = 1
    feed = {INPUTS["input_ids"]: input_ids}
    if INPUTS.get("attention_mask"):
        feed[INPUTS["attention_mask"]] = mask
    if INPUTS.get("token_type_ids"):
        feed[INPUTS["token_type_ids"]] = np.zeros_like(input_ids)
    (raw,) = SESSION.run([MANIFEST["output"]["name"]], feed)
    raw = np.asarray(raw, dtype=np.float64)
    if MANIFEST["output"]["kind"] == "logits":
        margin = raw[:, 1] - raw[:, 0]
    else:
        p = np.clip(raw, 1e-12, 1.0)
        margin = np.log(p[:, 1]) - np.log(p[:, 0])
    return 1.0 / (1.0 + np.exp(-margin / MANIFEST.get("temperature", 1.0)))


def answer(s: float) -> dict:
    sentiment = "positive" if s >= MANIFEST["threshold"] else "negative"
    return {"id": str(uuid.uuid4()), "score": float(s), "sentiment": sentiment, "model": REF}


@app.get("/api/health")
def health():
    return {"status": "ok", "model": REF}


@app.post("/api/predict")
def predict(body: Body):
    if body.text is not None:
        return answer(score([body.text])[0])
    return {"predictions": [answer(s) for s in score(body.texts or [])]}
