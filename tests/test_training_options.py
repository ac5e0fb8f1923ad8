"""Training options a practitioner expects; each test fails if its option does nothing."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

import zoo
from zoo.compose import compose


def _data(n=16, seed=0):
    rng = np.random.default_rng(seed)
    words = ["red apple", "green pear", "ripe banana", "sour lemon"]
    return [{"text": f"{words[i % 4]} {i}", "label": words[i % 4].split()[1]} for i in range(n)]


def _model():
    # no dropout: two runs can then be compared weight for weight
    return compose("classification", {"text": "bert-tiny"},
                   head={"name": "classification", "labels": ["apple", "banana", "lemon",
                                                               "pear"]},
                   fusion={"name": "concat-mlp", "dim": 16, "dropout": 0.0})


def test_accumulation_gives_the_same_update_in_smaller_chunks(tmp_path):
    data = _data()
    runs = {}
    for accumulate in (1, 4):
        torch.manual_seed(0)  # the same initial weights for both runs
        model = _model()
        seen = []
        model.fusion.register_forward_hook(lambda m, i, o: seen.append(o.shape[0]))
        zoo.train(model, data, None, tmp_path / f"a{accumulate}", epochs=2, batch_size=8,
                  freeze="all", accumulate=accumulate, progress=False)
        runs[accumulate] = (zoo.load(tmp_path / f"a{accumulate}").state_dict(), max(seen))
    one, four = runs[1][0], runs[4][0]
    assert runs[1][1] == 8 and runs[4][1] == 2  # the batch really ran in chunks of 2
    assert all(torch.allclose(one[k], four[k], atol=1e-5) for k in one)


def test_early_stopping_stops_when_the_metric_stalls(tmp_path):
    data = _data()
    summary = zoo.train(_model(), data, data, tmp_path / "es", epochs=8, lr=0.0,
                        freeze="all", patience=2, progress=False)
    assert summary["epochs_run"] == 3 and summary["best_epoch"] == 1  # 1 best + 2 stalled
    full = zoo.train(_model(), data, data, tmp_path / "full", epochs=4, lr=0.0, freeze="all",
                     progress=False)
    assert full["epochs_run"] == 4


def test_bf16_precision_runs_the_forward_in_bfloat16_on_cpu(tmp_path):
    model = _model()
    dtypes = []
    model.head.register_forward_hook(lambda m, i, o: dtypes.append(o.dtype))
    summary = zoo.train(model, _data(), None, tmp_path / "bf16", epochs=1, freeze="all",
                        precision="bf16", progress=False)
    assert summary["precision"] == "bf16" and dtypes and set(dtypes) == {torch.bfloat16}
    assert zoo.load(tmp_path / "bf16").state_dict()["head.proj.weight"].dtype == torch.float32
    with pytest.raises(zoo.ZooError, match="fp16 needs a CUDA GPU"):
        zoo.train(_model(), _data(), None, tmp_path / "fp16", epochs=1, precision="fp16",
                  progress=False)


def test_images_are_augmented_only_while_the_encoder_trains():
    enc = zoo.create_model("timm-tiny", augment=True).encoders["image"]
    img = Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 80, 3), np.uint8))
    enc.eval()
    a, b = (enc.preprocess([img])["pixel_values"] for _ in range(2))
    assert torch.equal(a, b)  # evaluation: deterministic
    enc.train()
    torch.manual_seed(0)
    c, d = (enc.preprocess([img])["pixel_values"] for _ in range(2))
    assert c.shape == a.shape and not torch.equal(c, d)  # training: a new view each time
    det = zoo.create_model("timm", arch="test_efficientnet", features=True,
                           augment=True).encoders["image"]  # boxes must not move
    det.train()
    assert torch.equal(det.preprocess([img])["pixel_values"], det.preprocess([img])["pixel_values"])
