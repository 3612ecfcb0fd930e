"""Smoke training of Naive Bayes on the tiny corpus (no torch needed); the torch models are in test_smoke_torch.py."""

import json

import numpy as np
import onnx

from training import common, data, nb, parity


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
    assert manifest["threshold"] == common.cost_threshold() and manifest["temperature"] > 0
    assert {"val_ece_before", "val_ece_after", "val_negative_recall"} <= set(manifest["training"]["metrics"])
    check_batch_invariance(vdir)


def test_naive_bayes_main_on_the_pool(tiny_data_dir, tmp_path):
    assert nb.main(["--data-dir", str(tiny_data_dir), "--out-dir", str(tmp_path), "--version", "2000.01.01-2",
                    "--s140", "40"]) == 0
    manifest = json.loads((tmp_path / "naive-bayes" / "2000.01.01-2" / "manifest.json").read_text())
    assert "human-labelled pool" in manifest["training"]["data"] and "plus 40 Sentiment140" in manifest["training"]["data"]


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
