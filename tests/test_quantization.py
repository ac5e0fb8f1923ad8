"""zoo.quantization on a model of the core's own components (a text + image classifier):
``model.quantize("int8")`` makes every linear layer dynamic int8 and keeps its predictions,
``zoo serve --quantize int8`` with the torch runtime serves it quantized, and what cannot be
done with an int8 model (save it, move it to a GPU) is one line. Whisper's own int8
(its tied vocabulary projection) is tested in test_whisper_int8.py."""
from __future__ import annotations

import copy

import httpx
import pytest
import torch
from torch import nn

import zoo
from zoo.quantization import check_quantize

pytestmark = pytest.mark.filterwarnings("ignore:model .* never trained")

INPUTS = [{"text": "a cat on a mat"}, {"text": "a dog in the park"}, {"text": "cats purr"}]


@pytest.fixture(scope="module")
def float_model():
    import zoo.registry.manager

    zoo.registry.reset()
    torch.manual_seed(0)
    return zoo.create_model("tiny-text-image-clf", labels=["cat", "dog"]).eval()


def test_every_linear_layer_becomes_int8_and_predictions_stay(float_model):
    int8 = copy.deepcopy(float_model).quantize("int8")
    assert sum(type(m) is nn.Linear for m in float_model.modules()) > 0
    assert not [n for n, m in int8.named_modules() if type(m) is nn.Linear]
    assert int8.quantized == "int8" and int8.precision == "fp32"
    want, got = float_model.predict(INPUTS), int8.predict(INPUTS)
    assert [w["label"] for w in want] == [g["label"] for g in got]
    for w, g in zip(want, got):
        assert g["score"] == pytest.approx(w["score"], abs=0.05)


def test_an_int8_model_is_not_saved_or_moved_off_the_cpu(float_model, tmp_path):
    int8 = copy.deepcopy(float_model).quantize("int8")
    with pytest.raises(zoo.ZooError, match="not saved: save the model before quantizing"):
        int8.save_pretrained(tmp_path / "m")
    with pytest.raises(zoo.ZooError, match="quantize must be one of int8"):
        copy.deepcopy(float_model).quantize("fp8")
    with pytest.raises(zoo.ZooError, match="for the CPU, not device cuda:1"):
        check_quantize("int8", "cuda:1")
    assert check_quantize(None, "cuda") is None and check_quantize("int8", "auto") == "int8"


def test_serve_quantizes_the_torch_runtime_model(float_model, tmp_path):
    from zoo.serve.app import create_app
    from zoo.serve.uvicorn import run_in_thread

    model = copy.deepcopy(float_model)
    want = model.predict(INPUTS)
    app = create_app(model, feedback_db=tmp_path / "feedback.db", quantize="int8")
    assert model.quantized == "int8"
    with run_in_thread(app) as srv:
        info = httpx.get(f"{srv.url}/info", timeout=30).json()
        assert info["precision"] == "int8" and info["device"] == "cpu"
        r = httpx.post(f"{srv.url}/predict", json={"inputs": INPUTS}, timeout=60)
    assert r.status_code == 200, r.text
    assert [o["label"] for o in r.json()["outputs"]] == [w["label"] for w in want]


def test_zoo_serve_quantize_int8_refuses_a_gpu_in_one_line():
    from conftest import run_zoo

    proc = run_zoo("serve", "tiny-text-image-clf", "--quantize", "int8", "--device", "cuda")
    assert proc.returncode != 0
    assert "for the CPU, not device cuda" in proc.stderr, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
