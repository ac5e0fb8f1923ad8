"""Every registry model builds, predicts the contracted output on real inputs and
round-trips through save/load bit-identically."""
from __future__ import annotations

import json

import pytest
import torch

import zoo

MODELS = zoo.list_models()
SENTENCE = "A small grey cat sleeps on the warm windowsill."


def real_inputs(model, photo, speech):
    from zoo.registry import modalities

    full = {"text": SENTENCE, "image": str(photo), "audio": str(speech)}
    for m, enc in model.encoders.items():  # a plugin's modality: its own sample input
        if m not in full:
            full[m] = modalities()[m].samples()[0]
        enc.fit(modalities()[m].samples())  # as a training run would (tabular statistics)
    if model.task == "detection":  # text, if any, is the label prompts: images only
        return [{"image": full["image"]}, {"image": full["image"]}]
    x = {m: full[m] for m in model.modalities}
    return [x, {m: full[m] for m in model.modalities[:1]}]  # one with a modality missing


def check_output(task, out, model):
    if task == "classification" and getattr(model.head, "multi_label", False):
        assert set(out) == {"label", "score", "scores"} and set(out["scores"]) == set(model.labels)
        assert out["label"] == [k for k, v in out["scores"].items() if v >= model.head.threshold]
        assert out["score"] == [out["scores"][k] for k in out["label"]]
    elif task == "classification":
        assert set(out) == {"label", "score", "scores"}
        assert out["label"] in model.labels and set(out["scores"]) <= set(model.labels)
        if len(out["scores"]) == len(model.labels):
            assert abs(sum(out["scores"].values()) - 1) < 1e-5
        else:  # a many-class head gives its top-k
            assert 1 <= len(out["scores"]) < len(model.labels)
            assert sum(out["scores"].values()) <= 1 + 1e-5
        assert out["score"] == max(out["scores"].values())
    elif task == "detection":
        assert set(out) == {"boxes", "labels", "scores"}
        assert len(out["boxes"]) == len(out["labels"]) == len(out["scores"])
        for (x1, y1, x2, y2), label in zip(out["boxes"], out["labels"]):
            assert 0 <= x1 <= x2 <= 451 and 0 <= y1 <= y2 <= 300  # Chelsea is 451 x 300
            assert label in model.labels
    elif task == "asr":
        assert set(out) <= {"text", "segments", "language"} and isinstance(out["text"], str)
        for seg in out.get("segments", []):  # Whisper: timed segments of the text
            assert 0 <= seg["start"] <= seg["end"] and isinstance(seg["text"], str)
    elif task == "retrieval":
        assert set(out) == {"embedding"} and out["embedding"]
        for m, v in out["embedding"].items():
            assert m in model.modalities and len(v) == model.head.dim
            assert abs(sum(x * x for x in v) - 1) < 1e-4  # unit length in the shared space
    else:  # a plugin's task: the keys it declares, as JSON
        assert set(model.task_impl.outputs) <= set(out), (task, sorted(out))
        json.dumps(out)


@pytest.mark.parametrize("name", MODELS)
def test_registry_model_predicts_and_round_trips_bit_identically(name, photo, speech, tmp_path):
    info = zoo.model_info(name)
    model = zoo.create_model(name, pretrained=info["pretrained"])
    inputs = real_inputs(model, photo, speech)
    before = model.predict(inputs)
    assert len(before) == len(inputs)
    for out in before:
        check_output(model.task, out, model)

    model.save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    for m, entry in config["encoders"].items():
        assert entry["distribution"].startswith("zoo-") and entry["version"]
    assert config["head"]["distribution"].startswith("zoo-")
    assert {p["distribution"] for p in config["plugins"]} >= {
        e["distribution"] for e in config["encoders"].values()}

    loaded = zoo.load(tmp_path)
    sd, sd2 = model.state_dict(), loaded.state_dict()
    assert sd.keys() == sd2.keys()
    for k in sd:
        assert torch.equal(sd[k], sd2[k]), k
    assert loaded.predict(inputs) == before


def test_encoder_name_gives_an_encoder_only_model_with_embed(photo):
    model = zoo.create_model("timm-tiny")
    emb = model.embed([{"image": str(photo)}, {"image": str(photo)}])
    assert list(emb) == ["image"] and emb["image"].shape == (2, model.encoders["image"].dim)
    row = model.predict([{"image": str(photo)}])[0]["embedding"]["image"]
    assert torch.allclose(torch.tensor(row), emb["image"][0], atol=1e-5)


def test_overrides_change_labels_and_fusion():
    m = zoo.create_model("tiny-text-image-clf", labels=["x", "y", "z"], fusion="gated")
    assert m.labels == ["x", "y", "z"] and m.config["fusion"]["name"] == "gated"
    with pytest.raises(zoo.ZooError, match="unknown argument"):
        zoo.create_model("tiny-text-image-clf", colour="red")
    with pytest.raises(zoo.ZooError, match="unknown fusion"):
        zoo.create_model("tiny-text-image-clf", fusion="nope")


def test_missing_modality_uses_the_null_embedding_not_a_crash():
    m = zoo.create_model("tiny-text-image-clf")
    out = m.predict([{"text": "only words here"}])
    assert out[0]["label"] in m.labels
    with pytest.raises(zoo.ZooError, match="none of this model's modalities"):
        m.predict([{"text": None}])
    with pytest.raises(zoo.ZooError, match="unknown key"):
        m.predict([{"txt": "typo"}])


def test_bad_inputs_give_clear_errors(tmp_path):
    m = zoo.create_model("tiny-text-image-clf")
    with pytest.raises(zoo.ZooError, match="image file not found"):
        m.predict([{"image": str(tmp_path / "nope.png")}])
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not a png")
    with pytest.raises(zoo.ZooError, match="cannot decode image"):
        m.predict([{"image": str(bad)}])
    with pytest.raises(zoo.ZooError, match="text input must be a string"):
        m.predict([{"text": 42}])


def test_evaluate_returns_flat_metrics_and_writes_eval_results(tmp_path, photo):
    m = zoo.create_model("tiny-text-image-clf", labels=["cat", "dog"])
    d = tmp_path / "m"
    m.save_pretrained(d)
    manifest = tmp_path / "eval.jsonl"
    manifest.write_text("\n".join(json.dumps(x) for x in [
        {"text": "a cat", "image": str(photo), "label": "cat"},
        {"text": "a dog", "label": "dog"},
        {"image": str(photo), "label": "cat"}]) + "\n")
    loaded = zoo.load(d)
    preds = [p["label"] for p in loaded.predict([{"text": "a cat", "image": str(photo)},
                                                 {"text": "a dog"}, {"image": str(photo)}])]
    before = {p.name: p.read_bytes() for p in d.iterdir() if p.is_file()}
    result = zoo.evaluate(loaded, manifest)
    expected = sum(p == t for p, t in zip(preds, ["cat", "dog", "cat"])) / 3
    assert result["accuracy"] == pytest.approx(expected) and result["n"] == 3
    # evaluating is read-only: not a byte of the folder changes unless asked to record
    assert {p.name: p.read_bytes() for p in d.iterdir() if p.is_file()} == before
    assert zoo.evaluate(loaded, manifest, record=True) == result
    saved = json.loads((d / "eval_results.json").read_text())
    assert saved["metrics"]["accuracy"] == result["accuracy"] and saved["dataset"] == "eval"
