"""Export for deployment: TorchScript and ONNX (float and int8) give the original's
predictions on an eval manifest, and report the accuracy change and speed ratio."""
from __future__ import annotations

import json

import pytest

from conftest import run_zoo
from zoo.testing.synthetic import digits_manifests


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    import zoo.registry.manager

    zoo.registry.reset()
    d = tmp_path_factory.mktemp("export")
    data = digits_manifests(d / "digits", size=32, limit=120, text=True)
    zoo.train("tiny-text-image-clf", data["train"], data["val"], d / "run", epochs=1,
              freeze="none", progress=False)
    return d / "run", data["test"]


@pytest.mark.parametrize("fmt,quantize", [("torchscript", None), ("onnx", None),
                                          ("torchscript", "int8"), ("onnx", "int8")])
def test_export_keeps_predictions_and_reports_the_change(trained, tmp_path, fmt, quantize):
    run, test = trained
    out = tmp_path / ("model.pt" if fmt == "torchscript" else "model.onnx")
    args = ["export", str(run), "--format", fmt, "--out", str(out), "--data", str(test),
            "--json"] + (["--quantize", quantize] if quantize else [])
    r = json.loads(run_zoo(*args, check=True).stdout)
    assert r["n"] == len(test.read_text().splitlines())
    assert r["metric"] == "accuracy"
    assr = r["metric_exported"] - r["metric_original"]
    assert r["metric_change"] == pytest.approx(assr, abs=1e-4)
    if quantize is None:
        assert r["max_output_diff"] < 1e-3 and r["metric_change"] == 0
    else:
        assert r["max_output_diff"] < 0.5 and abs(r["metric_change"]) <= 0.2
    # the ratio is the two measured times' (not a figure that cannot be wrong)
    assert r["seconds_original"] > 0 and r["seconds_exported"] > 0
    assert r["speed_ratio"] == pytest.approx(r["seconds_original"] / r["seconds_exported"],
                                             rel=0.1, abs=2e-3)
    assert (tmp_path / r["out"].split("/")[-1]).is_file()


def test_export_refuses_what_it_cannot_carry(trained, tmp_path):
    run, test = trained
    proc = run_zoo("export", "conformer-ctc-tiny", "--format", "onnx", "--out",
                   str(tmp_path / "x.onnx"), "--data", str(test))
    assert proc.returncode == 1 and "does not export" in proc.stderr


def test_int8_recipe_keeps_embeddings_and_ffn_down_projections_in_float(trained, tmp_path):
    """INT8_RECIPE: matrix products in int8, except transformer feed-forward
    down-projections; embedding lookups (Gather) stay float."""
    import onnx

    from zoo.export import _int8_keeps_float

    enc = "/model/text/model/encoder/layer.3"
    assert _int8_keeps_float(f"{enc}/output/dense/MatMul")
    assert _int8_keeps_float("/model/image/blocks.1/mlp/fc2/Gemm")
    assert not _int8_keeps_float(f"{enc}/attention/output/dense/MatMul")
    assert not _int8_keeps_float(f"{enc}/intermediate/dense/MatMul")
    assert not _int8_keeps_float("/model/text/Gather")  # names that match nothing: int8
    run, test = trained
    out = tmp_path / "model.onnx"
    run_zoo("export", str(run), "--format", "onnx", "--out", str(out), "--data", str(test),
            "--quantize", "int8", check=True)
    nodes = onnx.load(str(tmp_path / "model.int8.onnx")).graph.node
    ops = {n.op_type for n in nodes}
    assert ops & {"MatMulInteger", "ConvInteger"}  # something is int8
    inits = {i.name for i in onnx.load(str(tmp_path / "model.int8.onnx")).graph.initializer}
    for n in nodes:
        if n.op_type == "Gather":  # an embedding table is looked up in float
            assert not any(i.endswith("_quantized") for i in n.input if i in inits)
