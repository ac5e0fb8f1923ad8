"""Every fusion x every modality subset builds, runs and back-propagates; missing modalities
follow each fusion's policy instead of crashing."""
from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

import zoo
from zoo.build.components import compose_parts as _compose
from zoo.build.compose import compose

FUSIONS = zoo.list_models(kind="fusion")
TINY = {"text": "bert-tiny", "image": "timm-tiny", "audio": "conformer-tiny"}
SUBSETS = [c for n in (1, 2, 3) for c in itertools.combinations(TINY, n)]


@pytest.fixture(scope="module")
def tiny_encoders():
    import zoo.registry.manager

    zoo.registry.reset()
    m = compose("classification", TINY, {"name": "classification",
                                                     "labels": ["a", "b"]}, "concat-mlp")
    return {k: m.encoders[k] for k in TINY}, m.config["encoders"]


def values(rng):
    return {"text": "a short sentence", "image": rng.integers(0, 255, (40, 50, 3), np.uint8),
            "audio": (rng.standard_normal(8000).astype("float32"), 16000)}


@pytest.mark.parametrize("fusion", FUSIONS)
@pytest.mark.parametrize("subset", SUBSETS, ids="+".join)
def test_fusion_builds_and_backpropagates_for_every_modality_subset(fusion, subset,
                                                                   tiny_encoders):
    encs, entries = tiny_encoders
    model = _compose("t", "classification", {m: encs[m] for m in subset},
                     {m: entries[m] for m in subset}, {"name": fusion, "dim": 32},
                     {"name": "classification", "labels": ["a", "b", "c"]})
    model.train()
    v = values(np.random.default_rng(0))
    inputs = [{m: v[m] for m in subset}, {m: v[m] for m in subset}]
    if len(subset) > 1:  # one example lacks a modality
        inputs.append({subset[0]: v[subset[0]]})
    batch = model.preprocess(inputs)
    logits = model(batch)
    assert logits.shape == (len(inputs), 3) and torch.isfinite(logits).all()
    model.zero_grad()
    loss = model.loss(logits, [{"label": "a"}, {"label": "b"}, {"label": "c"}][:len(inputs)],
                      batch)
    loss.backward()
    for name, p in model.fusion.named_parameters():
        if p.requires_grad and not name.startswith("null"):
            assert p.grad is not None, f"{fusion}: no gradient reaches {name}"
    assert model.head.proj.weight.grad.abs().sum() > 0
    for m in subset:
        grads = [p.grad for p in model.encoders[m].parameters() if p.requires_grad]
        assert any(g is not None and g.abs().sum() > 0 for g in grads), f"{m} gets no gradient"


@pytest.mark.parametrize("fusion", FUSIONS)
def test_a_missing_modality_at_inference_is_handled_by_the_fusion(fusion, tiny_encoders):
    encs, entries = tiny_encoders
    model = _compose("t", "classification", {m: encs[m] for m in ("text", "image")},
                     {m: entries[m] for m in ("text", "image")}, {"name": fusion, "dim": 32},
                     {"name": "classification", "labels": ["a", "b"]})
    model.eval()
    v = values(np.random.default_rng(1))
    both = model.predict([{"text": v["text"], "image": v["image"]}])[0]
    text_only = model.predict([{"text": v["text"]}])[0]
    image_only = model.predict([{"image": v["image"]}])[0]
    for out in (both, text_only, image_only):
        assert out["label"] in ("a", "b")
    # what is missing changes the prediction's input: the scores differ
    assert text_only["scores"] != both["scores"]
    assert image_only["scores"] != both["scores"]
    assert text_only["scores"] != image_only["scores"]
    # an example's prediction does not depend on what else is in its batch
    mixed = model.predict([{"text": v["text"]}, {"text": v["text"], "image": v["image"]}])
    assert mixed[0]["scores"] == pytest.approx(text_only["scores"], abs=1e-5)
    assert mixed[1]["scores"] == pytest.approx(both["scores"], abs=1e-5)
