"""The zoo-vision-segment plugin: semantic segmentation through every verb, CLI and API, on
tiny images with exact masks (squares and circles pasted on noise), with timm-tiny-seg."""
from __future__ import annotations

import base64
import importlib.util
import io
import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from conftest import run_zoo

if importlib.util.find_spec("zoo_vision_segment") is None:
    pytest.skip("the zoo-vision-segment plugin is not installed (pip install -e "
                "plugins/zoo-vision-segment)", allow_module_level=True)
pytest.importorskip("torchmetrics")

from PIL import Image

LABELS = ["background", "square", "circle"]
SIZE = 64


def _scene(rng: np.random.Generator, h: int = SIZE, w: int = SIZE):
    """An image of noise with one or two bright squares / circles, and its exact mask."""
    yy, xx = np.mgrid[:h, :w]
    img = rng.integers(0, 90, (h, w, 3)).astype(np.uint8)
    mask = np.zeros((h, w), np.uint8)
    for _ in range(int(rng.integers(1, 3))):
        cls, r = int(rng.integers(1, 3)), int(rng.integers(7, 13))
        cy, cx = int(rng.integers(r, h - r)), int(rng.integers(r, w - r))
        inside = ((np.abs(yy - cy) <= r) & (np.abs(xx - cx) <= r) if cls == 1
                  else (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r)
        mask[inside] = cls
        img[inside] = rng.integers(150, 255, 3)
    return img, mask


def _split(d: Path, n: int, seed: int, labels: bool = True) -> Path:
    rng = np.random.default_rng(seed)
    (d / "img").mkdir(parents=True)
    (d / "masks").mkdir()
    lines = []
    for i in range(n):
        img, mask = _scene(rng)
        Image.fromarray(img).save(d / "img" / f"{i}.png")
        Image.fromarray(mask).save(d / "masks" / f"{i}.png")
        lines.append({"image": f"img/{i}.png", "mask": f"masks/{i}.png",
                      **({"labels": LABELS} if labels else {})})
    path = d / "data.jsonl"
    path.write_text("".join(json.dumps(x) + "\n" for x in lines))
    return path


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("seg")
    return {"train": _split(d / "train", 48, 0), "eval": _split(d / "eval", 16, 1)}


@pytest.fixture(scope="module")
def trained(data, tmp_path_factory) -> Path:
    """timm-tiny-seg trained a few epochs through the API (a module-wide model folder)."""
    import zoo

    out = tmp_path_factory.mktemp("seg-run") / "run"
    zoo.train("timm-tiny-seg", data["train"], data["eval"], out, epochs=5, lr=3e-3,
              batch_size=8, progress=False, loggers=[])
    return out


def _b64(mask: np.ndarray) -> str:
    buf = io.BytesIO()
    Image.fromarray(mask.astype(np.uint8)).save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode()


def _unb64(text: str) -> np.ndarray:
    return np.array(Image.open(io.BytesIO(base64.b64decode(text))))


def _task():
    from zoo.registry import get_task

    return get_task("segmentation")


def cli(*args, check=True):
    proc = run_zoo(*args)
    if check and proc.returncode:
        raise AssertionError(f"zoo {' '.join(args)}: {proc.stderr[-2000:]}")
    return proc


# ---- metrics ------------------------------------------------------------------------------

def test_per_class_iou_matches_a_hand_computation():
    import torch
    from torchmetrics.classification import MulticlassJaccardIndex

    from zoo.plugin import Example

    truth = np.array([[0, 0, 1, 1], [0, 0, 1, 1], [2, 2, 255, 0], [2, 2, 0, 0]], np.uint8)
    pred = np.array([[0, 1, 1, 1], [0, 0, 1, 1], [2, 0, 1, 0], [0, 2, 0, 0]], np.uint8)
    model = SimpleNamespace(labels=["background", "a", "b", "never"])
    ex = Example(1, {}, {"mask": truth})
    got = _task().metrics(model, [ex], [{"mask": _b64(pred)}])
    # 15 scored pixels (one ignored): background 6 / 9, a 4 / 5, b 2 / 4; 'never' is in
    # neither mask, so it has no IoU and stays out of the mean
    assert got["iou_background"] == pytest.approx(6 / 9)
    assert got["iou_a"] == pytest.approx(4 / 5) and got["iou_b"] == pytest.approx(2 / 4)
    assert "iou_never" not in got
    assert got["miou"] == pytest.approx((6 / 9 + 4 / 5 + 2 / 4) / 3)
    assert got["pixel_accuracy"] == pytest.approx(12 / 15)
    macro = MulticlassJaccardIndex(num_classes=4, average="macro", ignore_index=255)
    assert got["miou"] == pytest.approx(float(macro(torch.tensor(pred[None]).long(),
                                                    torch.tensor(truth[None]).long())))


def test_a_prediction_of_another_size_is_refused():
    from zoo.plugin import DataError, Example

    ex = Example(3, {}, {"mask": np.zeros((4, 4), np.uint8)})
    with pytest.raises(DataError, match="line 3: the predicted mask is 5x4 but the true one "
                                        "is 4x4"):
        _task().metrics(SimpleNamespace(labels=LABELS), [ex],
                        [{"mask": _b64(np.zeros((4, 5)))}])


# ---- masks: reading and checking ------------------------------------------------------------

def _png(path: Path, array: np.ndarray, mode: str | None = None, fmt: str = "PNG") -> Path:
    im = Image.fromarray(array)
    if mode == "P":
        im = im.convert("P")
        im.putpalette([0, 0, 0, 255, 0, 0, 0, 255, 0] + [0] * 759)
        im.putdata(array.ravel().tolist())
    im.save(path, format=fmt)
    return path


def test_a_palette_mask_reads_as_its_indices(tmp_path):
    from zoo_vision_segment.masks import read_mask

    ids = np.array([[0, 1, 2], [2, 1, 0]], np.uint8)
    path = _png(tmp_path / "p.png", ids, mode="P")
    assert Image.open(path).mode == "P"
    assert read_mask(str(path), "here").tolist() == ids.tolist()


@pytest.mark.parametrize("case, message", [
    ("missing", "line 7: mask file not found:"),
    ("rgb", "m.png is a RGB image; a mask must be a single-channel (L) or palette (P) PNG"),
    ("jpeg", "m.png is not a PNG; a mask must be a lossless PNG"),
    ("size", "m.png is 32x16 but its image is 64x64 (width x height); a mask must have its "
             "image's size"),
    ("class", "the mask holds class index 5, beyond its 'labels' (3 classes: 0..2; "),
    ("labels", "'labels' must be a list of 1 to 255 distinct names"),
    ("uri", "line 7: the inline mask (data: URI) is not valid base64 of a PNG file"),
])
def test_bad_masks_get_one_line_errors_that_start_with_where(tmp_path, case, message):
    from zoo.plugin import DataError

    image = _png(tmp_path / "img.png", np.zeros((SIZE, SIZE, 3), np.uint8))
    mask = np.zeros((SIZE, SIZE), np.uint8)
    targets = {"mask": str(tmp_path / "m.png"), "labels": LABELS}
    if case == "rgb":
        _png(tmp_path / "m.png", np.zeros((SIZE, SIZE, 3), np.uint8))
    elif case == "jpeg":
        _png(tmp_path / "m.png", mask, fmt="JPEG")
    elif case == "size":
        _png(tmp_path / "m.png", np.zeros((16, 32), np.uint8))
    elif case == "class":
        mask[3, 3] = 5
        _png(tmp_path / "m.png", mask)
    elif case == "labels":
        _png(tmp_path / "m.png", mask)
        targets["labels"] = ["a", "a"]
    elif case == "uri":
        targets["mask"] = "data:image/png;base64,not-base64!"
    with pytest.raises(DataError) as e:
        _task().check_target(targets, "line 7", None, {"image": str(image)})
    text = str(e.value)
    assert text.startswith("line 7: ") and message in text and "\n" not in text


def test_training_names_the_bad_line_and_the_fix(data, tmp_path):
    import zoo
    from zoo.plugin import DataError

    lines = data["train"].read_text().splitlines()[:3]
    lines[1] = lines[1].replace('"masks/1.png"', '"masks/nope.png"')
    bad = data["train"].parent / "bad.jsonl"  # beside the images and masks
    bad.write_text("".join(x + "\n" for x in lines))
    with pytest.raises(DataError, match=r"bad.jsonl:2: mask file not found: .*nope.png .*"
                                        r"--on-bad-data skip"):
        zoo.train("timm-tiny-seg", bad, None, tmp_path / "r", epochs=1, progress=False)


# ---- labels --------------------------------------------------------------------------------

def test_labels_come_from_the_data_or_from_the_largest_index(data, tmp_path):
    import zoo
    from zoo.plugin import DataError, Example

    task = _task()
    model = zoo.create_model("timm-tiny-seg")
    assert model.labels == ["background", "object"]
    mask = np.zeros((8, 8), np.uint8)
    mask[2:4, 2:4] = 3
    assert task.prepare(model, [Example(1, {}, {"mask": mask})]) is True
    assert model.labels == ["background", "1", "2", "3"]  # from the largest index seen
    assert task.prepare(model, [Example(1, {}, {"mask": mask // 3})]) is False  # covered
    named = [Example(1, {}, {"mask": mask // 3, "labels": ["sky", "tree"]})]
    assert task.prepare(model, named) is True and model.labels == ["sky", "tree"]
    mixed = named + [Example(2, {}, {"mask": mask // 3, "labels": ["sky", "road"]})]
    with pytest.raises(DataError, match="line 2: its 'labels' differ from an earlier line's"):
        task.prepare(model, mixed)


# ---- train, predict, eval ---------------------------------------------------------------------

def test_training_beats_an_all_background_baseline(trained, data):
    import zoo
    from zoo.data.formats import read_any
    from zoo.data.rows import resolve_file_targets

    record = json.loads((trained / "training.json").read_text())
    model = zoo.load(trained)
    assert model.labels == LABELS
    examples = read_any(data["eval"])[0]
    resolve_file_targets(examples, ("mask",))
    zeros = [{"mask": _b64(np.zeros((SIZE, SIZE)))} for _ in examples]
    baseline = _task().metrics(model, examples, zeros)["miou"]
    metrics = zoo.evaluate(trained, data["eval"])
    assert metrics["n"] == 16 and metrics["miou"] == pytest.approx(record["best"]["miou"])
    assert metrics["miou"] > baseline + 0.1, (metrics, baseline)
    assert metrics["iou_background"] > 0.9 and metrics["pixel_accuracy"] > 0.9


def test_predicted_masks_have_the_original_image_size(trained, tmp_path):
    import zoo

    model = zoo.load(trained)
    rng = np.random.default_rng(5)
    images = [_scene(rng, h, w)[0] for h, w in ((50, 70), (SIZE, SIZE), (201, 123))]
    path = tmp_path / "wide.png"
    Image.fromarray(images[0]).save(path)
    preds = model.predict([{"image": str(path)}, {"image": Image.fromarray(images[1])},
                           {"image": images[2]}])
    for p, img in zip(preds, images):
        mask = _unb64(p["mask"])
        assert mask.shape == img.shape[:2] and p["size"] == list(img.shape[:2])
        assert mask.dtype == np.uint8 and int(mask.max()) < len(LABELS)
        assert set(p["classes"]) <= set(LABELS)
        assert sum(c["fraction"] for c in p["classes"].values()) == pytest.approx(1, abs=1e-4)
        for name, c in p["classes"].items():
            assert c["index"] == LABELS.index(name) and 0 < c["score"] <= 1
            assert c["fraction"] == pytest.approx(float((mask == c["index"]).mean()), abs=1e-6)
    out = json.loads(cli("predict", str(trained), str(path)).stdout)
    assert out[0] == preds[0]


@pytest.mark.slow
def test_cli_trains_and_evaluates_on_csv(data, trained, tmp_path):
    root = data["eval"].parent
    rows = [json.loads(x) for x in data["eval"].read_text().splitlines()]
    csv = root / "eval.csv"
    csv.write_text("image,mask\n" + "".join(f"{r['image']},{r['mask']}\n" for r in rows))
    out = json.loads(cli("eval", str(trained), "--data", str(csv), "--json").stdout)
    import zoo

    assert out["miou"] == pytest.approx(zoo.evaluate(trained, data["eval"])["miou"])
    run = tmp_path / "cli-run"
    cli("train", "timm-tiny-seg", "--train", str(data["train"]), "--eval", str(csv),
        "--out", str(run), "--epochs", "1", "--batch-size", "16", "--quiet")
    record = json.loads((run / "training.json").read_text())
    assert record["n_train"] == 48 and "miou" in record["best"]
    assert json.loads((run / "config.json").read_text())["head"]["kwargs"]["labels"] == LABELS


def test_the_card_shows_overlays_and_the_output_schema(trained):
    card = (trained / "README.md").read_text()
    assert "pipeline_tag: image-segmentation" in card
    assert "segmentation_examples.png" in card and "### Segmentation output" in card
    assert "| 2 | `circle` |" in card and "mIoU" in card
    with Image.open(trained / "segmentation_examples.png") as im:
        assert im.width > 300 and im.height > 600  # 4 rows of image / truth / prediction


# ---- data tools ---------------------------------------------------------------------------------

def test_data_check_reads_masks_relative_to_the_data_file(data, tmp_path):
    from zoo.datatools import check_manifest, clean_manifest

    r = check_manifest(data["train"])
    assert r["task"] == "segmentation" and r["ok"] == 48, r["problems"][:2]
    assert r["targets"]["masks"] == 48
    # clean keeps each mask path as written (relative), and a mask outside the data set's
    # folder is a problem of its line, as training refuses it
    lines = data["train"].read_text().splitlines()
    outside = {**json.loads(lines[0]), "mask": "../elsewhere.png"}
    bad = data["train"].with_name("outside.jsonl")
    bad.write_text("\n".join([*lines[:3], json.dumps(outside)]) + "\n")
    r = check_manifest(bad)
    assert r["ok"] == 3 and r["problems"][0]["line"] == 4
    assert "points outside the data set" in r["problems"][0]["problem"]
    out = data["train"].with_name("clean.jsonl")
    assert clean_manifest(bad, out)["kept"] == 3
    assert [json.loads(x)["mask"] for x in out.read_text().splitlines()] == \
        [json.loads(x)["mask"] for x in lines[:3]]


def test_data_check_counts_pixels_per_class(data):
    from zoo.datatools import check_manifest

    root = data["train"].parent
    lines = [json.loads(x) for x in data["train"].read_text().splitlines()[:6]]
    for x in lines:  # absolute paths
        x["mask"] = str(root / x["mask"])
    lines[5]["mask"] = str(root / "masks" / "missing.png")
    path = root / "abs.jsonl"
    path.write_text("".join(json.dumps(x) + "\n" for x in lines))
    r = check_manifest(path)
    assert r["task"] == "segmentation" and r["ok"] == 5
    assert r["problems"] == [{"line": 6, "problem": "mask file not found: masks/missing.png (a "
                                                    "mask path is relative to the data file)"}]
    stats = r["targets"]
    assert stats["labels"] == {"background": 5, "square": 3, "circle": 2}  # masks with each
    assert sum(stats["pixel_share"].values()) == pytest.approx(1, abs=1e-4)
    assert stats["pixel_share"]["background"] > 0.8 and stats["masks"] == 5


# ---- serving, feedback, back into data ------------------------------------------------------

def _serve(model, db):
    from zoo.serve.app import create_app
    from zoo.serve.uvicorn import run_in_thread

    return run_in_thread(create_app(model, feedback_db=db))


def test_serve_predict_and_feedback_with_a_mask_then_from_feedback(trained, tmp_path):
    import httpx

    import zoo

    model = zoo.load(trained)
    img, mask = _scene(np.random.default_rng(9), 40, 56)
    path = tmp_path / "x.png"
    Image.fromarray(img).save(path)
    body = {"image": base64.b64encode(path.read_bytes()).decode()}
    with _serve(model, tmp_path / "fb.db") as srv:
        r = httpx.post(f"{srv.url}/predict", json={"inputs": [body]}, timeout=60)
        assert r.status_code == 200, r.text
        out = r.json()["outputs"][0]
        assert out == model.predict([{"image": str(path)}])[0]
        assert _unb64(out["mask"]).shape == (40, 56)
        post = lambda c: httpx.post(f"{srv.url}/feedback",
                                    json={"input": body, "prediction": out, "correction": c},
                                    timeout=60)
        wrong_size = post(_b64(mask[:20]))
        assert wrong_size.status_code == 422
        assert "is 56x20 but its image is 56x40" in wrong_size.json()["error"]
        assert post("aGVsbG8=").status_code == 422  # base64, but not a PNG
        rgb = post(_b64(np.zeros((40, 56, 3))))
        assert rgb.status_code == 422 and "single-channel" in rgb.json()["error"]
        beyond = mask.copy()
        beyond[0, 0] = 7
        over = post(_b64(beyond))
        assert over.status_code == 422 and "class index 7" in over.json()["error"]
        assert post(str(path)).status_code == 422  # never a path on the server
        ok = post(_b64(mask))
        assert ok.status_code == 200, ok.text
        assert post({"mask": "data:image/png;base64," + _b64(mask)}).status_code == 200
    fb = tmp_path / "fb.jsonl"
    cli("data", "from-feedback", str(tmp_path / "fb.db"), "--out", str(fb))
    rows = [json.loads(x) for x in fb.read_text().splitlines()]
    assert len(rows) == 2 and rows[0]["mask"].startswith("data:image/png;base64,")
    assert (fb.parent / rows[0]["image"]).is_file()
    r = json.loads(cli("data", "check", str(fb), "--json", check=False).stdout)
    assert r["task"] == "segmentation" and r["ok"] == 1  # the inline mask reads
    assert r["problems"] == [{"line": 2, "problem": "duplicate of line 1"}]
    # the exported file trains: the inline mask is a usable target
    again = tmp_path / "again"
    summary = zoo.train(trained, fb, fb, again, epochs=1, progress=False, loggers=[])
    assert summary["best"]["miou"] > 0


def test_pseudo_labels_are_the_predicted_masks(trained, data, tmp_path):
    import zoo

    model = zoo.load(trained)
    image = data["eval"].parent / "img" / "0.png"
    pred = model.predict([{"image": str(image)}])[0]
    targets, confidence = _task().pseudo_label(pred)
    _task().check_target(targets, "pseudo", model.labels, {"image": str(image)})
    assert _unb64(targets["mask"].split(",", 1)[1]).tolist() == _unb64(pred["mask"]).tolist()
    assert 0 < confidence <= 1
    from zoo.datatools import check_manifest, label_manifest

    out = tmp_path / "labelled.jsonl"  # zoo data label: inline masks, checked like any data
    r = label_manifest(model, data["eval"], out, min_confidence=0.5)
    assert r["labelled"] + r["review"] == 16 and r["labelled"] > 0
    line = json.loads(out.read_text().splitlines()[0])
    assert line["mask"].startswith("data:image/png;base64,") and line["labels"] == LABELS
    assert check_manifest(out)["ok"] == r["labelled"]


# ---- hub, plugin checks ---------------------------------------------------------------------------

def test_push_to_the_hub_and_load_back(trained, data, hub):
    import zoo

    model = zoo.load(trained)
    model.push_to_hub("zoo-tests/timm-tiny-seg")
    back = zoo.load("hf-hub:zoo-tests/timm-tiny-seg")
    image = str(data["eval"].parent / "img" / "1.png")
    assert back.labels == LABELS
    assert back.predict([{"image": image}]) == model.predict([{"image": image}])


@pytest.mark.slow
def test_the_plugin_passes_its_checks():
    proc = run_zoo("plugins", "check", "zoo-vision-segment", "--json")
    rows = json.loads(proc.stdout)
    failed = [r for r in rows if r["status"] == "fail"]
    assert proc.returncode == 0 and not failed, failed
    passed = {(r["subject"], r["check"]) for r in rows if r["status"] == "pass"}
    assert ("task segmentation", "metrics on a sample") in passed
    assert ("model timm-tiny-seg", "predict + save/load") in passed
    assert ("model effnet-lite0-seg", "predict + save/load") in passed
