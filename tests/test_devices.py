"""--device for every command (zoo.devices): the resolver, its one-line errors on a machine
without CUDA, auto picking CUDA where it is present, and each command end to end on the CPU."""
from __future__ import annotations

import json

import pytest
import torch
from click.testing import CliRunner

from conftest import run_zoo
from zoo.devices import inference_precision, resolve_device, resolve_precision
from zoo.errors import ZooError

LABELS = ["fruit", "tool"]
ROWS = [{"text": t, "label": lab} for t, lab in
        [("ripe apple", "fruit"), ("sharp saw", "tool"), ("green pear", "fruit"),
         ("heavy hammer", "tool"), ("sweet plum", "fruit"), ("steel wrench", "tool")] * 2]

no_cuda = pytest.mark.skipif(torch.cuda.is_available(), reason="checks a machine without CUDA")


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """A tiny text classifier (bert-tiny) saved once, and labelled data for it."""
    import zoo.registry
    from zoo.build.compose import compose

    base = tmp_path_factory.mktemp("devices")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ZOO_CACHE", str(base / "cache"))
        mp.setenv("ZOO_SECRET", str(base / "cache.key"))
        zoo.registry.reset()
        torch.manual_seed(0)
        model = compose("classification", {"text": "bert-tiny"},
                        head={"name": "classification", "labels": LABELS},
                        fusion={"name": "concat-mlp", "dim": 16})
        model.save_pretrained(base / "model")
        zoo.registry.reset()
    (base / "data.jsonl").write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    return base


def _zoo(*args: str) -> str:
    from zoo.cli import cli

    res = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    assert res.exit_code == 0, res.output
    return res.output


# ---- the resolver -------------------------------------------------------------------------

@no_cuda
def test_auto_is_the_cpu_here_and_cpu_is_the_cpu():
    if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        pytest.skip("this machine has mps")
    assert resolve_device("auto") == torch.device("cpu")
    assert resolve_device("cpu") == resolve_device(" CPU ") == torch.device("cpu")
    assert resolve_device(torch.device("cpu")) == torch.device("cpu")


@no_cuda
@pytest.mark.parametrize("spec", ["cuda", "cuda:1"])
def test_cuda_without_cuda_is_one_line_saying_what_to_pass(spec):
    with pytest.raises(ZooError) as e:
        resolve_device(spec)
    msg = str(e.value)
    assert "\n" not in msg and f"--device {spec}:" in msg
    assert "no CUDA device" in msg and "--device cpu" in msg


@pytest.mark.parametrize("spec", ["gpu", "cuda:x", "cuda1", "", "tpu:0"])
def test_anything_else_lists_the_choices(spec):
    with pytest.raises(ZooError, match=r"expected one of auto, cpu, cuda, cuda:N, mps$"):
        resolve_device(spec)


def _fake_cuda(monkeypatch, count=2, bf16=True):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: count)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: bf16)
    monkeypatch.setattr(torch.cuda, "set_device", lambda d: None)


def test_auto_picks_cuda_when_present(monkeypatch):
    _fake_cuda(monkeypatch)
    assert resolve_device("auto") == torch.device("cuda", 0)
    assert resolve_device("cuda:1") == torch.device("cuda", 1)
    assert resolve_device("cpu") == torch.device("cpu")  # asked for: kept
    with pytest.raises(ZooError, match=r"has 2 CUDA device\(s\), cuda:0 to cuda:1"):
        resolve_device("cuda:2")


def test_inference_precision_is_bf16_on_a_gpu_and_fp32_on_the_cpu(monkeypatch):
    cpu, gpu = torch.device("cpu"), torch.device("cuda", 0)
    assert inference_precision("auto", cpu) == "fp32"
    assert inference_precision("bf16", cpu) == "bf16"
    with pytest.raises(ZooError, match="fp16 needs a CUDA GPU"):
        inference_precision("fp16", cpu)
    _fake_cuda(monkeypatch)
    assert inference_precision("auto", gpu) == resolve_precision("auto", gpu) == "bf16"
    _fake_cuda(monkeypatch, bf16=False)  # before Ampere: half precision instead
    assert inference_precision("auto", gpu) == "fp16"


def test_each_training_rank_keeps_its_local_rank_gpu(monkeypatch):
    from zoo.training.dist import Dist

    _fake_cuda(monkeypatch)
    monkeypatch.setenv("LOCAL_RANK", "1")
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert Dist.from_env("auto").device == torch.device("cuda", 1)
    assert Dist.from_env("cuda").device == torch.device("cuda", 1)
    assert Dist.from_env("cuda:0").device == torch.device("cuda", 0)  # one process: as asked
    assert Dist.from_env("cpu").device == torch.device("cpu")


def test_train_config_checks_the_device():
    from zoo.training.config import TrainConfig, make_config

    assert TrainConfig().device == "auto"
    assert make_config({"device": "CUDA:1"}).device == "cuda:1"
    with pytest.raises(ZooError, match="expected one of"):
        make_config({"device": "gpu"})


# ---- the model on a device ----------------------------------------------------------------

def test_load_places_the_model_and_preprocess_follows_it(folder):
    import zoo

    model = zoo.load(folder / "model", device="cpu", precision="bf16")
    assert model.device == torch.device("cpu") and model.precision == "bf16"
    batch = model.preprocess([{"text": "ripe apple"}])
    assert all(t.device == model.device for t in batch["text"].tensors.values()
               if torch.is_tensor(t))
    out = model.predict([{"text": "ripe apple"}])[0]  # bf16 autocast, scores back in fp32
    assert out["label"] in LABELS and isinstance(out["score"], float)
    with pytest.raises(ZooError, match="fp16 needs a CUDA GPU"):
        model.place("cpu", "fp16")


def test_evaluate_takes_a_device(folder):
    import zoo

    r = zoo.evaluate(str(folder / "model"), str(folder / "data.jsonl"), device="cpu")
    assert r["n"] == len(ROWS) and 0 <= r["accuracy"] <= 1


# ---- every command: --device cpu end to end, --device cuda one line ----------------------

def test_predict_eval_explain_export_calibrate_run_on_the_cpu(folder):
    m, data = str(folder / "model"), str(folder / "data.jsonl")
    preds = json.loads(_zoo("predict", m, "ripe apple", "--device", "cpu",
                            "--precision", "fp32"))
    assert preds[0]["label"] in LABELS
    assert "accuracy" in json.loads(_zoo("eval", m, "--data", data, "--json",
                                         "--device", "cpu"))
    got = json.loads(_zoo("explain", m, "ripe apple", "--json", "--device", "cpu"))
    assert got[0]["units"]
    r = json.loads(_zoo("export", m, "--format", "torchscript", "--out",
                        str(folder / "m.pt"), "--data", data, "--json", "--device", "cpu"))
    assert r["max_output_diff"] < 1e-3
    rec = json.loads(_zoo("calibrate", m, "--data", data, "--out", str(folder / "cal"),
                          "--json", "--device", "cpu"))
    assert rec["temperature"] > 0


def test_train_runs_on_the_cpu(folder):
    out = folder / "run"
    _zoo("train", str(folder / "model"), "--train", str(folder / "data.jsonl"), "--out",
         str(out), "--epochs", "1", "--freeze", "all", "--logger", "none", "--quiet",
         "--device", "cpu")
    assert json.loads((out / "training.json").read_text())["config"]["device"] == "cpu"


def test_serve_puts_the_model_on_the_device_and_says_so(folder, monkeypatch):
    import uvicorn
    from starlette.testclient import TestClient

    from zoo.cli import main

    served = {}
    monkeypatch.setenv("ZOO_SERVE_APP", "{}")  # restored after: the command sets it
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: served.setdefault("app", app))
    main(["serve", str(folder / "model"), "--device", "cpu", "--feedback-db",
          str(folder / "fb.db")])
    with TestClient(served["app"], base_url="http://127.0.0.1") as c:
        info = c.get("/info").json()
        assert (info["device"], info["precision"]) == ("cpu", "fp32")
        r = c.post("/predict", json={"inputs": [{"text": "ripe apple"}, {"text": "saw"}]})
        assert r.status_code == 200 and len(r.json()["outputs"]) == 2


@no_cuda
@pytest.mark.parametrize("command", ["train", "predict", "eval", "serve", "export"])
def test_cuda_on_this_machine_is_exit_1_and_one_error_line(folder, command):
    m, data = str(folder / "model"), str(folder / "data.jsonl")
    args = {"train": ["--train", data, "--out", str(folder / "never")],
            "predict": ["ripe apple"], "eval": ["--data", data], "serve": [],
            "export": ["--format", "onnx", "--out", str(folder / "never.onnx"),
                       "--data", data]}[command]
    proc = run_zoo(command, m, *args, "--device", "cuda")
    err = proc.stderr.strip()
    assert proc.returncode == 1, proc.stderr
    assert err.count("\n") == 0 and err.startswith("error: --device cuda: this machine has "
                                                   "no CUDA device")
    assert "--device cpu" in err
    assert not (folder / "never").exists()


def test_onnx_runtime_without_its_gpu_provider_stays_on_the_cpu_and_says_so(monkeypatch):
    from zoo.serve import onnx

    monkeypatch.setattr(onnx, "_gpu_provider", lambda: False)
    with pytest.warns(UserWarning, match="runs on the CPU, not cuda:0.*onnxruntime-gpu"):
        assert onnx.onnx_device("cuda:0") == "cpu"
    assert onnx.onnx_device("cpu") == "cpu"
    monkeypatch.setattr(onnx, "_gpu_provider", lambda: True)
    assert onnx.onnx_device("cuda:0") == "cuda:0"


def test_int8_export_is_for_the_cpu():
    from zoo.export import _export_device

    assert _export_device("auto", "int8") == "cpu" and _export_device("cuda", None) == "cuda"
    with pytest.raises(ZooError, match="--quantize int8 is dynamic quantization for CPU"):
        _export_device("cuda:0", "int8")
