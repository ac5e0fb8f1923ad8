"""LoRA adapters (`zoo train --adapter lora`): trained, saved small over a pinned base,
loaded back with identical predictions, bases shared in memory, served; bad pins refused."""
from __future__ import annotations

import json

import httpx
import pytest
import torch

import zoo
from conftest import run_zoo

pytest.importorskip("peft")

WORDS = {"pos": ["great", "lovely", "excellent", "wonderful", "superb"],
         "neg": ["awful", "terrible", "dreadful", "horrible", "poor"]}
TEXTS = [{"text": "the film was great"}, {"text": "the film was awful"},
         {"text": "a quiet afternoon"}]


def _write(path, n: int, seed: int) -> str:
    import random

    rng = random.Random(seed)
    with open(path, "w") as f:
        for i in range(n):
            label = ("pos", "neg")[i % 2]
            f.write(json.dumps({"text": f"the film was {rng.choice(WORDS[label])} and "
                                        f"{rng.choice(['long', 'short', 'loud'])}",
                                "label": label}) + "\n")
    return str(path)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One LoRA run through the Python API: the model object holds the best weights after
    training, and the folder holds its adapter save."""
    d = tmp_path_factory.mktemp("lora")
    train, ev = _write(d / "train.jsonl", 48, 0), _write(d / "eval.jsonl", 16, 1)
    model = zoo.create_model("minilm-text-clf", pretrained=True)
    summary = zoo.train(model, train, ev, d / "out", epochs=2, adapter="lora", lora_r=4,
                        lr=3e-3, progress=False, loggers=[])
    return model, d / "out", summary, (train, ev)


def test_adapter_trains_and_saves_only_the_adapter(trained):
    from zoo.plugin import weights_path

    model, out, summary, _ = trained
    cfg = json.loads((out / "config.json").read_text())
    pin = cfg["adapter"]["base"]["text"]
    assert cfg["adapter"]["r"] == 4 and pin["weights"] == "minilm-l6.sbert"
    base_file = weights_path("minilm-l6.sbert") / "model.safetensors"
    assert pin["sha256"] == zoo.plugin.weights_info("minilm-l6.sbert").sha256
    size = (out / "model.safetensors").stat().st_size
    assert size < 0.05 * base_file.stat().st_size, size
    from safetensors.torch import load_file

    saved = load_file(str(out / "model.safetensors"))
    enc_keys = [k for k in saved if k.startswith("encoders.")]
    assert enc_keys and all("lora_" in k for k in enc_keys)
    # training moved the adapters (LoRA's B starts at zero) and nothing of the base
    assert any(v.abs().max() > 0 for k, v in saved.items() if "lora_B" in k)
    base = load_file(str(base_file))
    q = model.encoders["text"].model.encoder.layer[0].attention.self.query.base_layer.weight
    assert torch.equal(q, base["encoder.layer.0.attention.self.query.weight"])
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    assert trainable < 0.05 * sum(p.numel() for p in model.parameters())
    assert "## Adapter" in (out / "README.md").read_text()
    from huggingface_hub import ModelCard

    card = ModelCard((out / "README.md").read_text())  # the base's name and licence carry
    assert card.data.base_model == ["sentence-transformers/all-MiniLM-L6-v2"]
    assert card.data.license == "apache-2.0"


def test_adapter_loads_back_with_identical_predictions_and_shares_the_base(trained):
    model, out, _, _ = trained
    before = model.eval().predict(TEXTS)
    a, b = zoo.load(out), zoo.load(out)
    assert a.predict(TEXTS) == before == b.predict(TEXTS)
    pa, pb = dict(a.named_parameters()), dict(b.named_parameters())
    key = next(k for k in pa if k.endswith("query.base_layer.weight"))
    assert pa[key].data_ptr() == pb[key].data_ptr()  # one base in memory for both
    lora = next(k for k in pa if "lora_A" in k)
    assert pa[lora].data_ptr() != pb[lora].data_ptr()  # each its own adapter


def test_adapters_of_one_base_serve_side_by_side(trained):
    from zoo.serve.uvicorn import run_in_thread
    from zoo.serve.app import create_app

    model, out, _, _ = trained
    a, b = zoo.load(out), zoo.load(out)
    b.head.proj.bias.data += torch.arange(b.head.proj.bias.numel(), dtype=torch.float) * 100
    app = create_app(a, feedback_db=out.parent / "fb.db", max_batch=8, max_wait_ms=5,
                     mounts={"b": b})
    with run_in_thread(app) as srv:
        ra = httpx.post(f"{srv.url}/predict", json={"inputs": TEXTS}, timeout=60)
        rb = httpx.post(f"{srv.url}/models/b/predict", json={"inputs": TEXTS}, timeout=60)
        info = httpx.get(f"{srv.url}/info").json()
    assert ra.status_code == 200 and rb.status_code == 200, (ra.text, rb.text)
    assert [g["label"] for g in ra.json()["outputs"]] == [
        p["label"] for p in model.predict(TEXTS)]
    # the mounted model answers for itself (its head now always picks the last label)
    assert {g["label"] for g in rb.json()["outputs"]} == {b.labels[-1]}
    assert info["models"] == {"b": "/models/b"}


def test_a_changed_base_or_adapter_is_refused_in_one_line(trained, tmp_path):
    import shutil

    from zoo.weights import sha256_file

    _, out, _, _ = trained
    bad = tmp_path / "bad"
    shutil.copytree(out, bad, ignore=shutil.ignore_patterns("train_state", "tensorboard"))
    cfg = json.loads((bad / "config.json").read_text())
    cfg["adapter"]["base"]["text"]["sha256"] = "0" * 64
    (bad / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(zoo.errors.LoadError, match="trained on minilm-l6.sbert"):
        zoo.load(bad)
    cfg["adapter"]["base"]["text"]["sha256"] = zoo.plugin.weights_info(
        "minilm-l6.sbert").sha256
    cfg["adapter"]["r"] = 2  # the saved matrices are rank 4
    (bad / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(zoo.errors.LoadError, match="do not fit"):
        zoo.load(bad)
    from safetensors.torch import load_file, save_file

    cfg["adapter"]["r"] = 4
    state = {k: v for k, v in load_file(str(out / "model.safetensors")).items()
             if "layer.0.attention.self.query.lora_A" not in k}
    save_file(state, str(bad / "model.safetensors"), metadata={"format": "pt"})
    cfg["weights"] = {"model.safetensors": sha256_file(bad / "model.safetensors")}
    (bad / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(zoo.errors.LoadError, match="Missing key"):
        zoo.load(bad)


def test_cli_adapter_and_its_refusals(trained, tmp_path):
    _, _, _, (train, ev) = trained
    r = run_zoo("train", "minilm-text-clf", "--train", train, "--eval", ev, "--out",
                str(tmp_path / "o"), "--epochs", "1", "--adapter", "lora", "--lora-r", "2",
                "--quiet", "--logger", "none")
    assert r.returncode == 0, r.stderr
    assert json.loads((tmp_path / "o" / "config.json").read_text())["adapter"]["r"] == 2
    r = run_zoo("train", "minilm-text-clf", "--train", train, "--out", str(tmp_path / "f"),
                "--adapter", "lora", "--freeze", "all")
    assert r.returncode == 1 and r.stderr.strip().count("\n") == 0
    assert "leave --freeze at auto" in r.stderr
    r = run_zoo("train", "char-text-clf", "--train", train, "--out", str(tmp_path / "c"),
                "--adapter", "lora", "--epochs", "1")
    assert r.returncode == 1 and "has none" in r.stderr, r.stderr


def test_16_the_resume_state_holds_what_training_changes_and_resumes(trained, tmp_path):
    """train_state/ keeps the adapter, fusion, head and optimiser, not the frozen base
    (98 MB before for a 1.7 MB adapter); resuming rebuilds the base from its pin."""
    import shutil

    from zoo.plugin import weights_path

    _, out, summary, (train, ev) = trained
    base = (weights_path("minilm-l6.sbert") / "model.safetensors").stat().st_size
    state = sum(p.stat().st_size for p in (out / "train_state").iterdir())
    assert state < 0.1 * base, (state, base)
    copy = tmp_path / "out"
    shutil.copytree(out, copy)
    again = zoo.train(zoo.create_model("minilm-text-clf", pretrained=True), train, ev, copy,
                      epochs=2, adapter="lora", lora_r=4, lr=3e-3, progress=False, loggers=[],
                      resume=True)
    assert again["best_epoch"] == summary["best_epoch"]
    texts = [{"text": "a long sentence"}, {"text": "short and loud"}]
    assert zoo.load(copy).predict(texts) == zoo.load(out).predict(texts)
