"""The task hooks a plugin's application needs from the core: predict options (a head's
decode options) through the API, the CLI (``--option``) and every request shape of the
server (``"parameters"``; requests asking for different options never share a batch),
text output formats (``zoo predict --format``), and file targets resolved inside the data
set's folder."""
from __future__ import annotations

import base64
import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

import zoo
from conftest import run_zoo


@pytest.fixture(scope="module")
def detector(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("det") / "model"
    zoo.create_model("timm-tiny-fcos", labels=["digit"]).save_pretrained(d)
    return d


def _boxes(outputs):
    return [len(o["boxes"]) for o in outputs]


def test_options_reach_the_head_through_the_api_and_the_cli(detector, photo):
    model = zoo.load(detector)
    x = [{"image": str(photo)}]
    all_boxes = model.predict(x, score_threshold=0.0, max_detections=5)
    assert _boxes(all_boxes) == [5]
    assert _boxes(model.predict(x, score_threshold=0.0, max_detections=2)) == [2]
    proc = run_zoo("predict", str(detector), str(photo), "--option", "score_threshold=0",
                   "--option", "max_detections=3")
    assert proc.returncode == 0, proc.stderr
    assert _boxes(json.loads(proc.stdout)) == [3]
    bad = run_zoo("predict", str(detector), str(photo), "--option", "beam_size=5")
    assert bad.returncode == 1 and "allowed: score_threshold, nms_iou" in bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1
    fmt = run_zoo("predict", str(detector), str(photo), "--format", "srt")
    assert fmt.returncode == 1 and "a detection model writes json" in fmt.stderr


def test_the_server_takes_parameters_in_every_request_shape_and_batches_them_apart(
        detector, photo, tmp_path):
    from zoo.serve.app import create_app
    from zoo.serve.uvicorn import run_in_thread

    model = zoo.load(detector)
    png = photo.read_bytes()
    app = create_app(model, feedback_db=tmp_path / "f.db", max_batch=16, max_wait_ms=50)
    with run_in_thread(app) as srv:
        info = httpx.get(f"{srv.url}/info").json()
        assert info["parameters"] == ["score_threshold", "nms_iou", "max_detections", "labels"]
        assert info["formats"] == ["json"]
        b64 = base64.b64encode(png).decode()

        def post(n):  # concurrent requests, each its own max_detections
            body = {"inputs": [{"image": b64}],
                    "parameters": {"score_threshold": 0.0, "max_detections": n}}
            return n, httpx.post(f"{srv.url}/predict", json=body, timeout=120)

        with ThreadPoolExecutor(6) as pool:
            results = list(pool.map(post, [1, 2, 3, 1, 2, 3]))
        for n, r in results:
            assert r.status_code == 200, r.text
            assert _boxes(r.json()["outputs"]) == [n]
        raw = httpx.post(f"{srv.url}/predict?score_threshold=0&max_detections=4", content=png,
                         headers={"content-type": "image/png"}, timeout=60)
        assert raw.status_code == 200 and _boxes(raw.json()["outputs"]) == [4]
        form = httpx.post(f"{srv.url}/predict", timeout=60,
                          data={"parameters": '{"score_threshold": 0, "max_detections": 2}'},
                          files={"image": ("p.png", png, "image/png")})
        assert form.status_code == 200 and _boxes(form.json()["outputs"]) == [2]
        for body, message in (
                ({"inputs": [{"image": b64}], "parameters": {"beam_size": 5}},
                 "allowed: score_threshold"),
                ({"inputs": [{"image": b64}], "parameters": [1]}, "must be an object"),
                ({"inputs": [{"image": b64}], "parameters": "x"}, "is not JSON")):
            r = httpx.post(f"{srv.url}/predict", json=body, timeout=60)
            assert r.status_code == 400 and message in r.json()["error"], r.text
        r = httpx.post(f"{srv.url}/predict", timeout=60, data={"parameters": "{"},
                       files={"image": ("p.png", png, "image/png")})
        assert r.status_code == 400 and "form field 'parameters' is not JSON" in r.text


def test_a_classifier_takes_no_parameters(tmp_path):
    from zoo.serve.app import create_app
    from zoo.serve.uvicorn import run_in_thread

    model = zoo.create_model("char-text-clf", labels=["a", "b"])
    with run_in_thread(create_app(model, feedback_db=tmp_path / "f.db")) as srv:
        r = httpx.post(f"{srv.url}/predict", timeout=60,
                       json={"inputs": ["hello"], "parameters": {"top_k": 2}})
        assert r.status_code == 400 and "allowed: none" in r.json()["error"]
        ok = httpx.post(f"{srv.url}/predict", json={"inputs": ["hello"], "parameters": {}},
                        timeout=60)
        assert ok.status_code == 200


def test_file_targets_resolve_inside_the_data_folder(tmp_path):
    from zoo.data.rows import resolve_file_targets
    from zoo.base.example import Example
    from zoo.errors import DataError

    (tmp_path / "masks").mkdir()
    (tmp_path / "masks" / "a.png").write_bytes(b"")
    ex = Example(1, {"image": "a.png"}, {"mask": "masks/a.png", "label": "x"}, {}, tmp_path)
    resolve_file_targets([ex], ("mask",))
    assert ex.targets == {"mask": str((tmp_path / "masks" / "a.png").resolve()), "label": "x"}
    out = Example(2, {"image": "a.png"}, {"mask": "../../etc/passwd"}, {}, tmp_path)
    with pytest.raises(DataError, match="line 2: 'mask' points outside the data set"):
        resolve_file_targets([out], ("mask",))
    inline = Example(4, {"image": "a.png"}, {"mask": "data:image/png;base64,iVBO"}, {}, tmp_path)
    resolve_file_targets([inline], ("mask",))  # an inline file (a feedback correction)
    assert inline.targets["mask"] == "data:image/png;base64,iVBO"
    in_memory = Example(3, {"image": "a.png"}, {"mask": "masks/a.png"}, {}, None)
    resolve_file_targets([in_memory], ("mask",))  # no data file: left as given
    assert in_memory.targets["mask"] == "masks/a.png"


def test_a_task_without_formats_names_the_ones_it_has():
    from zoo.errors import ZooError
    from zoo.registry import get_task

    task = get_task("classification")
    assert task.output_formats == () and task.file_targets == ()
    with pytest.raises(ZooError, match="writes no 'srt' format"):
        task.format_outputs([{"label": "a"}], "srt")
