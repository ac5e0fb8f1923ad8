"""The zoo-vision-faces plugin: MTCNN with facenet-pytorch's weights on real photos."""
from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import types
from pathlib import Path

import pytest

if importlib.util.find_spec("facenet_pytorch") is None:
    pytest.skip("facenet-pytorch is not installed (pip install --no-deps facenet-pytorch): "
                "its MTCNN weight files are needed", allow_module_level=True)
if importlib.util.find_spec("zoo_vision_faces") is None:
    pytest.skip("the zoo-vision-faces plugin is not installed (pip install -e "
                "plugins/zoo-vision-faces)", allow_module_level=True)

import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

pytest.importorskip("skimage")
pytest.importorskip("matplotlib")

# one face per photo: the box our MTCNN gives, measured once (x1, y1, x2, y2 in pixels)
FACES = {"astronaut": [181.0, 62.2, 267.8, 172.1], "grace_hopper": [174.4, 119.6, 355.7, 340.5]}
TOL = 12.0  # pixels on each side


def _photos() -> dict[str, Image.Image]:
    from matplotlib import cbook
    from skimage import data

    with Image.open(cbook.get_sample_data("grace_hopper.jpg")) as im:
        hopper = im.convert("RGB")
    return {"astronaut": Image.fromarray(data.astronaut()), "grace_hopper": hopper,
            "chelsea": Image.fromarray(data.chelsea()), "coffee": Image.fromarray(data.coffee())}


@pytest.fixture(scope="module")
def photos():
    return _photos()


@pytest.fixture(scope="module")
def model():
    import zoo

    return zoo.create_model("mtcnn-faces", pretrained=True)


@pytest.fixture(scope="module")
def preds(model, photos):
    names = list(photos)
    return dict(zip(names, model.predict([{"image": photos[n]} for n in names])))


def _confident(pred):
    return [(b, s) for b, s in zip(pred["boxes"], pred["scores"]) if s >= 0.9]


@pytest.mark.parametrize("name", sorted(FACES))
def test_one_face_found(preds, name):
    found = _confident(preds[name])
    assert len(found) == 1, preds[name]
    box, score = found[0]
    assert np.allclose(box, FACES[name], atol=TOL), (box, FACES[name])
    assert preds[name]["labels"] == ["face"] * len(preds[name]["boxes"])


@pytest.mark.parametrize("name", ["chelsea", "coffee"])
def test_no_face_on_cat_and_coffee(preds, name):
    assert _confident(preds[name]) == []


def test_matches_facenet_pytorch(preds, photos):
    """Our cascade against facenet-pytorch's own MTCNN (loaded from its files without its
    package __init__, which imports requests/tqdm for the recognition models)."""
    root = Path(importlib.util.find_spec("facenet_pytorch").submodule_search_locations[0])
    saved = {k: v for k, v in sys.modules.items() if k.startswith("facenet_pytorch")}
    pkg = types.ModuleType("facenet_pytorch")
    pkg.__path__ = [str(root)]
    sys.modules["facenet_pytorch"] = pkg
    try:
        from facenet_pytorch.models.mtcnn import MTCNN

        ref = MTCNN(keep_all=True, device="cpu")
        for name, img in photos.items():
            boxes, probs = ref.detect(img)
            theirs = [] if boxes is None else [(list(b), float(p)) for b, p in
                                               zip(boxes, probs)]
            theirs = [t for t in theirs if t[1] >= 0.9]
            ours = _confident(preds[name])
            assert len(ours) == len(theirs), (name, ours, theirs)
            for (b1, s1), (b2, s2) in zip(sorted(ours), sorted(theirs)):
                assert np.allclose(b1, b2, atol=3.0), (name, b1, b2)
                assert abs(s1 - s2) < 1e-3
    finally:
        for k in [k for k in sys.modules if k.startswith("facenet_pytorch")]:
            del sys.modules[k]
        sys.modules.update(saved)


def test_save_load_identical(model, photos, tmp_path):
    import zoo

    inputs = [{"image": photos["astronaut"]}, {"image": photos["chelsea"]}]
    back = zoo.load(model.save_pretrained(tmp_path / "mtcnn"))
    assert back.predict(inputs) == model.predict(inputs)
    assert back.config["head"]["weights"] == "mtcnn.facenet-onet"


def test_listed_ready():
    rows = subprocess.run([sys.executable, "-m", "zoo", "list", "--ready", "--json"],
                          capture_output=True, text=True, env={**os.environ,
                                                               "HF_HUB_OFFLINE": "1"})
    assert rows.returncode == 0, rows.stderr
    assert '"mtcnn-faces"' in rows.stdout


def test_plugin_check():
    proc = subprocess.run([sys.executable, "-m", "zoo", "plugins", "check", "vision_faces"],
                          capture_output=True, text=True, timeout=300,
                          env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
