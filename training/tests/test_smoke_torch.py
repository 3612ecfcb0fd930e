"""Smoke trainings of the torch models (LSTM, MiniLM); skipped when torch is not installed."""

import json
from collections import Counter

import numpy as np
import onnx
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from training import common, data, lstm, minilm  # noqa: E402
from training.tests.test_smoke_models import check_batch_invariance, check_version  # noqa: E402


def test_lstm_smoke(tiny_data_dir, tmp_path):
    ds = data.load_dataset(tiny_data_dir)
    lstm.train(ds.train, ds.val, out_dir=tmp_path, version="2000.01.01-1", data_desc="tiny", epochs=2,
               batch_size=32, emb=16, hidden=16, threads=1, pretrained=False)
    vdir = tmp_path / "lstm" / "2000.01.01-1"
    manifest, model = check_version(vdir, "lstm", "lstm", 1)
    ops = Counter(n.op_type for n in model.graph.node)
    assert ops["LSTM"] == 1 and not any(op.startswith("DynamicQuantize") for op in ops)
    # MiniLM's WordPiece tokenizer, and its table stored as float16, gathered, then cast.
    assert json.loads((vdir / "tokenizer.json").read_text())["model"]["type"] == "WordPiece"
    (table,) = [i for i in model.graph.initializer if i.data_type == onnx.TensorProto.FLOAT16]
    assert table.dims[0] == 30522
    assert manifest["threshold"] == common.cost_threshold()
    check_batch_invariance(vdir)


def test_lstm_starts_from_minilm_embeddings():
    table = lstm.minilm_embeddings()
    assert tuple(table.shape) == (30522, 384)
    model = lstm.build_model(30522, pretrained=table)
    assert torch.equal(model.embedding.weight.detach(), table)


@pytest.mark.parametrize("s140", [40])
def test_minilm_pipeline_smoke(tiny_data_dir, tmp_path, s140):
    # A random 1-layer encoder stands in for the real weights so the test takes seconds; the
    # tokenizer is the real one shipped in the package.
    rc = minilm.main(["--data-dir", str(tiny_data_dir), "--out-dir", str(tmp_path), "--version", "2000.01.01-1",
                      "--tiny", "--s140", str(s140), "--epochs", "1", "--batch-size", "8", "--threads", "1",
                      "--checkpoint-dir", str(tmp_path / "ckpt")])
    assert rc == 0
    vdir = tmp_path / "minilm" / "2000.01.01-1"
    manifest, model = check_version(vdir, "minilm", "transformer", 3)
    assert manifest["inputs"] == {"input_ids": "input_ids", "attention_mask": "attention_mask",
                                  "token_type_ids": "token_type_ids"}
    ops = Counter(n.op_type for n in model.graph.node)
    assert ops["Flatten"] == 0  # the library's mask subgraph is not in the graph
    assert any(i.data_type == onnx.TensorProto.FLOAT16 for i in model.graph.initializer)
    # The embedding table is gathered in float16 and only the rows are cast (see store_fp16).
    fp16 = {i.name for i in model.graph.initializer if i.data_type == onnx.TensorProto.FLOAT16}
    word = [n for n in model.graph.node if n.op_type == "Gather" and n.input[1] == "input_ids"]
    assert word and word[0].input[0] in fp16
    before = common.OnnxScorer(vdir).score(["love it", "hate it"])
    assert minilm.repack(vdir)["max_score_change"] == 0.0
    assert np.allclose(common.OnnxScorer(vdir).score(["love it", "hate it"]), before)
    tok = json.loads((vdir / "tokenizer.json").read_text())
    assert tok["padding"]["strategy"] == "BatchLongest"
    check_batch_invariance(vdir)


def test_real_base_model_loads_offline():
    """The shipped weights load without any download and give a 2-class head."""
    import torch

    model = minilm.build_model()
    tok = minilm.load_tokenizer(16)
    ids, mask, types = minilm.encode_batch(tok, ["hello world", "a longer sentence here"])
    with torch.no_grad():
        out = model.eval()(ids, mask, types)
    assert out.shape == (2, 2)




def test_minilm_warm_start_with_feedback(tiny_data_dir, tmp_path):
    from training.tests.test_feedback import row, write_export

    common_args = ["--data-dir", str(tiny_data_dir), "--out-dir", str(tmp_path), "--tiny", "--epochs", "1",
                   "--batch-size", "8", "--threads", "1"]
    assert minilm.main([*common_args, "--version", "1", "--checkpoint-dir", str(tmp_path / "ckpt1")]) == 0
    rows = [row(i, f"{'love' if i % 2 else 'hate'} the crew {i}", i % 2, i) for i in range(20)]
    export = write_export(tmp_path / "export", rows)
    assert minilm.main([*common_args, "--version", "2", "--checkpoint-dir", str(tmp_path / "ckpt2"),
                        "--init-from", str(tmp_path / "ckpt1" / "best.pt"), "--feedback", str(export)]) == 0
    manifest = json.loads((tmp_path / "minilm" / "2" / "manifest.json").read_text())
    assert manifest["training"]["metrics"]["feedback_holdout_rows"] == 4
    assert 0.0 <= manifest["training"]["metrics"]["feedback_holdout_macro_f1"] <= 1.0
    assert "warm start from ckpt1" in manifest["training"]["data"]
    assert "plus 16 feedback tweets x3" in manifest["training"]["data"]


def test_sweep_chooses_and_its_weights_publish(tiny_data_dir, tmp_path):
    from training import sweep

    configs = [{"name": "a", "epochs": 1, "lr": 5e-4, "s140": 0, "seed": 1, "batch_size": 8},
               {"name": "b", "epochs": 1, "lr": 5e-4, "s140": 20, "seed": 2, "batch_size": 8}]
    (tmp_path / "configs.json").write_text(json.dumps(configs))
    out = tmp_path / "sweep"
    # A part size far below the file's forces the weights into several parts.
    assert sweep.main(["--data-dir", str(tiny_data_dir), "--out", str(out), "--device", "cpu", "--tiny",
                       "--configs", str(tmp_path / "configs.json"), "--part-mib", "0.5"]) == 0
    record = json.loads((out / "sweep.json").read_text())
    names = {c["name"] for c in record["candidates"]}
    assert {"a", "b"} <= names and record["chosen"] in names
    assert len(record["weights"]) > 1 and not (out / "weights.safetensors").exists()
    for c in record["candidates"]:
        assert 0.0 <= c["tweeteval_val"]["macro_f1"] <= 1.0 and 0.0 <= c["behaviour"]["pass_rate"] <= 1.0
    b = next(c for c in record["candidates"] if c["name"] == "b")
    assert "plus 20 Sentiment140" in b["data"] and b["history"] and b["train_log"]
    chosen = next(c for c in record["candidates"] if c["name"] == record["chosen"])
    assert chosen["tweeteval_val"]["macro_f1"] == max(c["tweeteval_val"]["macro_f1"] for c in record["candidates"]
                                                      if c["behaviour"]["pass_rate"] >= sweep.BEHAVIOUR_TARGET
                                                      or not any(d["behaviour"]["pass_rate"] >= sweep.BEHAVIOUR_TARGET
                                                                 for d in record["candidates"]))

    weights = sweep.load_weights(out / "weights.safetensors")
    assert all(v.dtype == torch.float32 for v in weights.values() if v.is_floating_point())
    rc = minilm.main(["--data-dir", str(tiny_data_dir), "--out-dir", str(tmp_path / "models"), "--version", "3",
                      "--tiny", "--threads", "1", "--weights", str(out / "weights.safetensors"),
                      "--sweep-record", str(out / "sweep.json")])
    assert rc == 0
    vdir = tmp_path / "models" / "minilm" / "3"
    manifest, _ = check_version(vdir, "minilm", "transformer", 3)
    assert manifest["training"]["data"] == chosen["data"]
    # The published file scores as the sweep judged it: same temperature, since both fit it on the
    # early-stop part with the same (float16-rounded) weights.
    assert manifest["temperature"] == pytest.approx(chosen["temperature"], abs=2e-3)


def test_weights_round_trip_in_parts(tmp_path):
    from training import sweep

    sd = {"big": torch.randn(64, 64), "small": torch.randn(10), "ids": torch.arange(5)}
    parts = sweep.save_weights(sd, tmp_path / "w.safetensors", part_bytes=4000)
    assert len(parts) > 1
    back = sweep.load_weights(tmp_path / "w.safetensors")
    assert torch.equal(back["small"], sd["small"])  # small tensors stay float32
    assert torch.allclose(back["big"], sd["big"], atol=2e-3) and not torch.equal(back["big"], sd["big"])
    assert torch.equal(back["ids"], sd["ids"])
