"""Ready models: pretrained end to end (heads included), right on real photos, equal to the
reference implementation on the same weights, and visibly ready (or not) in the registry."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from PIL import Image

import zoo

CATS = {"tabby, tabby cat", "tiger cat", "Persian cat", "Siamese cat, Siamese", "Egyptian cat"}


def _photo(name: str) -> Image.Image:
    from skimage import data

    return Image.fromarray(getattr(data, name)())


@pytest.fixture(scope="module")
def photos():
    return {n: _photo(n) for n in ("chelsea", "coffee", "rocket")}


@pytest.mark.parametrize("name", ["efficientnet-lite0-imagenet", "mobilenetv2-imagenet"])
def test_imagenet_classifiers_name_the_cat_and_the_espresso(name, photos):
    model = zoo.create_model(name, pretrained=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a ready model never warns about untrained parts
        preds = model.predict([{"image": photos["chelsea"]}, {"image": photos["coffee"]}])
    assert preds[0]["label"] in CATS, preds[0]
    assert preds[1]["label"] == "espresso", preds[1]
    assert len(model.labels) == 1000 and len(set(model.labels)) == 1000


def _zoo_logits(model, images):
    with torch.no_grad():
        return model(model.preprocess([{"image": im} for im in images]))  # (B, 1000)


def test_efficientnet_lite0_logits_equal_timm_with_the_same_weights(photos):
    import timm
    from timm.data import create_transform, resolve_data_config

    from zoo.plugin import weights_path
    from zoo.weights import load_checkpoint, remap_by_order

    ref = timm.create_model("tf_efficientnet_lite0").eval()
    sd = load_checkpoint(weights_path("efficientnet-lite0.in1k"))
    ref.load_state_dict(remap_by_order(sd, ref.state_dict(), what="test"))
    tf = create_transform(**resolve_data_config({}, model=ref))
    images = list(photos.values())
    with torch.no_grad():
        want = ref(torch.stack([tf(im) for im in images]))
    got = _zoo_logits(zoo.create_model("efficientnet-lite0-imagenet", pretrained=True), images)
    assert torch.allclose(got, want, atol=1e-4), (got - want).abs().max()


def test_mobilenetv2_logits_equal_torchvision_with_the_same_weights(photos):
    import torchvision
    from torchvision import transforms

    from zoo.plugin import weights_path

    ref = torchvision.models.mobilenet_v2().eval()
    ref.load_state_dict(torch.load(weights_path("mobilenetv2-100.tv_in1k"), weights_only=True))
    tf = transforms.Compose([transforms.Resize(256), transforms.CenterCrop(224),
                             transforms.ToTensor(),
                             transforms.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])])
    images = list(photos.values())
    with torch.no_grad():
        want = ref(torch.stack([tf(im) for im in images]))
    got = _zoo_logits(zoo.create_model("mobilenetv2-imagenet", pretrained=True), images)
    assert torch.allclose(got, want, atol=1e-3), (got - want).abs().max()
    assert got.argmax(-1).tolist() == want.argmax(-1).tolist()


def test_readiness_is_listed_and_untrained_heads_warn_once(tmp_path, photos):
    ready = set(zoo.list_models(ready=True))
    assert {"efficientnet-lite0-imagenet", "mobilenetv2-imagenet"} <= ready
    assert "effnet-lite0-image-clf" not in ready and "minilm-text-clf" not in ready
    model = zoo.create_model("effnet-lite0-image-clf", pretrained=True)
    with pytest.warns(UserWarning, match="never trained.*zoo train") as caught:
        model.predict([{"image": photos["chelsea"]}])
        model.predict([{"image": photos["coffee"]}])
    assert sum("never trained" in str(w.message) for w in caught) == 1
    # a ready model keeps its provenance and stays quiet after save + load
    m = zoo.create_model("mobilenetv2-imagenet", pretrained=True)
    back = zoo.load(m.save_pretrained(tmp_path / "m"))
    assert back.config["head"]["weights"] == "mobilenetv2-100.tv_in1k-classifier"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert back.predict([{"image": photos["coffee"]}])[0]["label"] == "espresso"


def test_a_ready_classifier_fine_tunes_to_new_labels(tmp_path):
    rng = np.random.default_rng(0)
    data = [{"image": Image.fromarray(rng.integers(0, 255, (40, 40, 3), dtype=np.uint8)),
             "label": "ab"[i % 2]} for i in range(6)]
    zoo.train("mobilenetv2-imagenet", data, data, tmp_path / "ft", epochs=1, progress=False)
    tuned = zoo.load(tmp_path / "ft")
    assert tuned.labels == ["a", "b"]
    assert tuned.config["head"]["weights"] == "trained"


def test_listed_results_are_current_for_every_measured_model():
    """zoo list --json shows params, licence and measured figures; the params recorded by
    bench_ready.py must still be the models' (rerun the bench when a model changes)."""
    from conftest import zoo_json

    rows = {r["name"]: r for r in zoo_json("list", "--ready", "--json")}
    reg = zoo.registry.get_registry()
    assert set(reg.results) <= set(zoo.list_models())
    info = zoo.model_info("mobilenetv2-imagenet")["weights"]  # provenance of every part
    assert info["head"]["tag"] == "mobilenetv2-100.tv_in1k-classifier"
    assert info["encoder image"]["license"] == "bsd-3-clause"
    assert zoo.model_info("effnet-lite0-image-clf")["weights"]["head"] is None
    for name, measured in reg.results.items():
        assert rows[name]["params"] == measured["params"] and rows[name]["license"]
        assert rows[name]["metrics"] and "bench_ready.py" in rows[name]["measured_by"]
        model = zoo.create_model(name)
        assert sum(p.numel() for p in model.parameters()) == measured["params"], name
