"""Smoke trainings on the tiny corpus: each model trains, exports, and writes a valid version."""

import json
from collections import Counter

import numpy as np
import onnx
import pytest

from training import common, data, lstm, minilm, nb, parity


def check_version(version_dir, name, kind, n_inputs):
    manifest = json.loads((version_dir / "manifest.json").read_text())
    assert manifest["name"] == name and manifest["kind"] == kind
    assert manifest["version"] == version_dir.name
    for f in ("model.onnx", "tokenizer.json"):
        assert manifest["files"][f] == common.sha256_file(version_dir / f)
    assert len(manifest["reference_scores"]) == 10
    assert abs(sum(manifest["reference_scores"]) - 1.0) < 1e-9
    assert manifest["output"]["kind"] in ("probability", "logits")
    assert manifest["training"]["mlflow_run_id"]
    assert {"val_accuracy", "val_f1"} <= set(manifest["training"]["metrics"])
    model = onnx.load(str(version_dir / "model.onnx"))
    assert len(model.graph.input) == n_inputs
    for inp in model.graph.input:
        assert inp.type.tensor_type.elem_type == onnx.TensorProto.INT64
        dims = inp.type.tensor_type.shape.dim
        assert len(dims) == 2 and dims[0].dim_param and dims[1].dim_param
    (out,) = model.graph.output
    assert out.name == manifest["output"]["name"]
    assert out.type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    return manifest, model


def check_batch_invariance(version_dir):
    """A tweet scores the same alone and in a batch padded to a longer neighbour."""
    scorer = common.OnnxScorer(version_dir)
    texts = ["love the flight", "hate the flight and the seat and the crew and the food today"]
    together = scorer.score(texts)
    alone = np.array([scorer.score([t])[0] for t in texts])
    assert np.allclose(together, alone, atol=1e-5)
    assert ((together >= 0) & (together <= 1)).all()


def test_naive_bayes_smoke(tiny_data_dir, tmp_path):
    ds = data.load_dataset(tiny_data_dir)
    nb.train(ds.train, ds.val, out_dir=tmp_path, version="2000.01.01-1", data_desc="tiny")
    vdir = tmp_path / "naive-bayes" / "2000.01.01-1"
    manifest, model = check_version(vdir, "naive-bayes", "naive-bayes", 1)
    assert [n.op_type for n in model.graph.node] == ["Gather", "ReduceSum", "Add", "Softmax"]
    logp = next(i for i in model.graph.initializer if i.name == "logp")
    assert not onnx.numpy_helper.to_array(logp)[0].any()  # pad row
    assert manifest["training"]["metrics"]["val_accuracy"] > 0.9
    check_batch_invariance(vdir)


def test_lstm_smoke(tiny_data_dir, tmp_path):
    ds = data.load_dataset(tiny_data_dir)
    lstm.train(ds.train, ds.val, out_dir=tmp_path, version="2000.01.01-1", data_desc="tiny", epochs=3,
               batch_size=32, emb=16, hidden=16, threads=1)
    vdir = tmp_path / "lstm" / "2000.01.01-1"
    manifest, model = check_version(vdir, "lstm", "lstm", 1)
    ops = Counter(n.op_type for n in model.graph.node)
    assert ops["LSTM"] == 1 and not any(op.startswith("DynamicQuantize") for op in ops)
    check_batch_invariance(vdir)


@pytest.mark.parametrize("s140", [40])
def test_minilm_pipeline_smoke(tiny_data_dir, tmp_path, s140):
    # A random 1-layer encoder stands in for the real weights so the test takes seconds; the
    # tokenizer is the real one shipped in the package.
    rc = minilm.main(["--data-dir", str(tiny_data_dir), "--out-dir", str(tmp_path), "--version", "2000.01.01-1",
                      "--tiny", "--s140-train", str(s140), "--stage2-epochs", "1", "--batch-size", "8",
                      "--threads", "1"])
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


def test_parity_fixture_for_a_version(tiny_data_dir, tmp_path):
    ds = data.load_dataset(tiny_data_dir)
    nb.train(ds.train, ds.val, out_dir=tmp_path, version="2000.01.01-1", data_desc="tiny")
    result = parity.build(tmp_path)
    entry = result["models"]["naive-bayes/2000.01.01-1"]
    assert len(entry["scores"]) == len(result["tweets"]) == len(entry["token_ids"])
    assert len(result["tweets"]) >= 40
    scorer = common.OnnxScorer(tmp_path / "naive-bayes" / "2000.01.01-1")
    assert entry["token_ids"][0] == scorer.tokenizer.encode(result["tweets"][0]).ids
    assert all(0.0 <= s <= 1.0 for s in entry["scores"])
