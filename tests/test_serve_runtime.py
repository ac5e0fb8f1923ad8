"""``zoo serve --runtime onnx``: the same labels as the torch runtime (scores within 1e-3),
the exported graph cached and reused, and a one-line error naming the runtime to use for a
model it cannot carry or when onnxruntime is missing."""
from __future__ import annotations

import base64
import json
import os
import sys
from pathlib import Path

import pytest
from starlette.testclient import TestClient

import zoo
from zoo.errors import ZooError
from zoo.serve.app import create_app
from zoo.serve.onnx import OnnxRunner

TEXTS = ["a tabby cat asleep on the sofa", "dog", "two dogs chase a ball across the park",
         "the cat", "a very small dog with a very loud bark, barking at the postman"]


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    import zoo.registry.manager

    zoo.registry.reset()
    d = tmp_path_factory.mktemp("runtime") / "model"
    zoo.create_model("tiny-text-image-clf", labels=["cat", "dog"]).save_pretrained(d)
    return zoo.load(d)


def _predict(app, requests):
    """Each request (a list of inputs) posted alone, so each is one batch."""
    out = []
    with TestClient(app, base_url="http://127.0.0.1") as c:
        for inputs in requests:
            r = c.post("/predict", json={"inputs": inputs})
            assert r.status_code == 200, r.text
            out += r.json()["outputs"]
        info = c.get("/info").json()
    return out, info


def test_onnx_runtime_gives_the_torch_runtime_labels(model, photo, tmp_path):
    img = base64.b64encode(photo.read_bytes()).decode()
    # a batch with every modality runs in ONNX Runtime; one lacking the image, in torch
    requests = [[{"text": t, "image": img} for t in TEXTS * 2], [{"text": "only text"}]]
    torch_out, info_t = _predict(create_app(model, feedback_db=tmp_path / "a.db"), requests)
    onnx_out, info_o = _predict(create_app(model, feedback_db=tmp_path / "b.db",
                                           runtime="onnx"), requests)
    assert (info_t["runtime"], info_o["runtime"]) == ("torch", "onnx")
    from PIL import Image  # both runtimes answer model.predict's outputs, in input order

    image = Image.open(photo)
    ref = model.predict([{"text": t, "image": image} for t in TEXTS * 2] +
                        [{"text": "only text"}])
    for out in (torch_out, onnx_out):
        assert max(abs(o["score"] - r["score"]) for o, r in zip(out, ref)) < 1e-3
        assert [o["label"] for o in out] == [r["label"] for r in ref]
    assert len(onnx_out) == 2 * len(TEXTS) + 1
    assert [o["label"] for o in onnx_out] == [o["label"] for o in torch_out]
    for a, b in zip(onnx_out, torch_out):
        assert a["scores"].keys() == b["scores"].keys()
        assert all(abs(a["scores"][k] - b["scores"][k]) < 1e-3 for k in a["scores"])


def test_onnx_runner_batches_like_model_predict(model, photo):
    from PIL import Image

    from zoo.serve.onnx import CHUNK, _length_chunks

    runner = OnnxRunner(model)
    assert runner.max_logit_diff < 1e-3
    image = Image.open(photo).convert("RGB")
    inputs = [{"text": t, "image": image} for t in TEXTS * 3]
    ref = model.predict(inputs)
    # batch sizes and lengths vary; over 8 texts run sorted by length, cut to each chunk's
    for lo, hi in ((0, len(inputs)), (0, 1), (1, 3), (2, 12)):
        got = runner.predict(inputs[lo:hi], batch_size=hi - lo)
        assert [g["label"] for g in got] == [w["label"] for w in ref[lo:hi]]
        assert max(abs(g["score"] - w["score"]) for g, w in zip(got, ref[lo:hi])) < 1e-3
    from zoo.serve.onnx import _flat

    parts = _length_chunks(runner.keys, _flat(model, model.preprocess(inputs))[1])
    assert len(parts) == -(-len(inputs) // CHUNK)  # the long batch did run in chunks
    assert sorted(int(i) for idx, _ in parts for i in idx) == list(range(len(inputs)))


def test_the_exported_graph_is_cached_and_reused(model):
    first = OnnxRunner(model)  # exported now, or by an earlier test of this session
    cache = Path(os.environ["ZOO_CACHE"])
    assert first.path.is_file() and cache in first.path.parents
    stamp = first.path.stat().st_mtime_ns
    again = OnnxRunner(model)
    assert not again.exported and again.path == first.path
    assert first.path.stat().st_mtime_ns == stamp
    assert sorted(p.name for p in first.path.parent.iterdir()) == [
        "model.onnx", "model.onnx.zoo-seal"]  # the graph and its seal; no temp left


@pytest.mark.parametrize("name,why", [("conformer-ctc-tiny", "its task (asr) does not export"),
                                      ("tiny-audio-text-clf", "audio encoder")])
def test_models_it_cannot_export_fail_in_one_line_naming_the_torch_runtime(name, why,
                                                                           tmp_path):
    m = zoo.create_model(name)
    with pytest.raises(ZooError) as e:
        create_app(m, feedback_db=tmp_path / "f.db", runtime="onnx")
    msg = str(e.value)
    assert why in msg and "use --runtime torch" in msg and "\n" not in msg


def test_a_failing_export_is_one_line_and_leaves_no_file(model, tmp_path, monkeypatch):
    import zoo.export

    def broken(*a, **kw):
        raise RuntimeError("Exporting the operator 'aten::frobnicate' is not supported\nmore")

    monkeypatch.setattr(zoo.export, "onnx_export", broken)
    with pytest.raises(ZooError, match=r"ONNX export failed \(RuntimeError: Exporting the "
                                       r"operator 'aten::frobnicate'.*use --runtime torch$"):
        OnnxRunner(model, cache_dir=tmp_path)
    assert not list(tmp_path.rglob("*.onnx"))


def test_missing_onnxruntime_says_what_to_install(model, monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import fails as if absent
    with pytest.raises(ZooError, match="pip install onnxruntime.*--runtime torch"):
        create_app(model, feedback_db=tmp_path / "f.db", runtime="onnx")


def test_zoo_serve_cli_reports_the_error_before_serving(monkeypatch, capsys):
    from zoo.cli import main

    monkeypatch.setenv("ZOO_SERVE_APP", "{}")  # restored after: the command sets it
    with pytest.raises(SystemExit) as e:
        main(["serve", "conformer-ctc-tiny", "--runtime", "onnx", "--port", "1"])
    err = capsys.readouterr().err.strip()
    assert e.value.code == 1
    assert err.startswith("error: --runtime onnx cannot serve this model") and "\n" not in err
    assert json.loads(os.environ["ZOO_SERVE_APP"])["runtime"] == "onnx"
