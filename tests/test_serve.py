"""Serving over loopback: predictions, micro-batching under concurrent clients, every
malformed request a 4xx with the server still serving, feedback rows neither lost nor
duplicated, and the way back to a manifest."""
from __future__ import annotations

import base64
import io
import json
from concurrent.futures import ThreadPoolExecutor

import httpx
import numpy as np
import pytest

import zoo
from conftest import run_zoo
from zoo.serve.uvicorn import run_in_thread
from zoo.serve.app import create_app


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    import zoo.registry.manager

    zoo.registry.reset()
    d = tmp_path_factory.mktemp("serve")
    model = zoo.create_model("tiny-text-image-clf", labels=["cat", "dog"])
    model.save_pretrained(d / "model")
    model = zoo.load(d / "model")
    from zoo.serve.limits import Limits

    app = create_app(model, feedback_db=d / "feedback.db", max_batch=16, max_wait_ms=20,
                     max_body=2_000_000,  # 2000 posts of one client: no rate limit here
                     limits=Limits.from_env(feedback_per_minute=1_000_000))
    with run_in_thread(app) as srv:
        srv.model, srv.db = model, d / "feedback.db"
        yield srv


def png_b64(photo) -> str:
    return base64.b64encode(photo.read_bytes()).decode()


def test_predict_matches_the_model_and_serves_info_and_health(server, photo):
    from PIL import Image

    body = {"inputs": [{"text": "a cat", "image": png_b64(photo)}, {"text": "only text"}]}
    r = httpx.post(f"{server.url}/predict", json=body, timeout=60)
    assert r.status_code == 200
    expected = server.model.predict([{"text": "a cat", "image": Image.open(photo)},
                                     {"text": "only text"}])
    got = r.json()["outputs"]
    assert [o["label"] for o in got] == [e["label"] for e in expected]
    assert got[0]["score"] == pytest.approx(expected[0]["score"], abs=1e-5)
    assert httpx.get(f"{server.url}/health").json() == {"status": "ok"}
    info = httpx.get(f"{server.url}/info").json()
    assert info["task"] == "classification" and info["labels"] == ["cat", "dog"]
    assert info["card"]["library_name"] == "zoo"


def test_concurrent_requests_are_micro_batched(server):
    texts = [f"request number {i} about a {'cat' if i % 2 else 'dog'}" for i in range(96)]
    expected = {t: p["label"] for t, p in zip(texts, server.model.predict(
        [{"text": t} for t in texts]))}

    def one(t):
        with httpx.Client(timeout=60) as c:
            return t, c.post(f"{server.url}/predict", json={"inputs": [{"text": t}]})

    with ThreadPoolExecutor(32) as pool:
        results = list(pool.map(one, texts))
    assert all(r.status_code == 200 for _, r in results)
    assert all(r.json()["outputs"][0]["label"] == expected[t] for t, r in results)
    metrics = httpx.get(f"{server.url}/metrics").text
    sizes = [int(line.split('le="')[1].split('"')[0]) for line in metrics.splitlines()
             if line.startswith("zoo_batch_size_bucket") and '+Inf' not in line]
    assert max(sizes) > 1, "concurrent requests were never batched together"
    assert 'zoo_requests_total{path="/predict",status="200"}' in metrics
    assert "zoo_request_seconds_bucket" in metrics


def _wav_b64(seconds=0.5, rate=16000) -> str:
    import soundfile as sf

    buf = io.BytesIO()
    sf.write(buf, np.zeros(int(seconds * rate), dtype="float32"), rate, format="WAV")
    return base64.b64encode(buf.getvalue()).decode()


@pytest.mark.parametrize("body,status,message", [
    (b"{not json", 400, "not valid JSON"),
    (json.dumps({"inputs": 3}).encode(), 400, "must be a list"),
    (json.dumps({"items": []}).encode(), 400, "expected"),
    (json.dumps({"inputs": []}).encode(), 400, "is empty"),
    (json.dumps({"inputs": [{}]}).encode(), 400, "is empty"),
    (json.dumps({"inputs": [{"text": 42}]}).encode(), 400, "must be a string"),
    (json.dumps({"inputs": [{"image": "%%% not base64"}]}).encode(), 400, "not valid base64"),
    (json.dumps({"inputs": [{"image": base64.b64encode(b"not a png").decode()}]}).encode(),
     400, "not a readable image"),
    (json.dumps({"inputs": [{"audio": _wav_b64()}]}).encode(), 400, "none of this model"),
    (json.dumps({"inputs": [{"video": "x"}]}).encode(), 400, "unknown key"),
    (json.dumps({"inputs": [{"text": "x" * 3_000_000}]}).encode(), 413, "over"),
])
def test_malformed_requests_get_a_4xx_and_the_server_keeps_serving(server, body, status,
                                                                    message):
    r = httpx.post(f"{server.url}/predict", content=body, timeout=60,
                   headers={"content-type": "application/json"})
    assert r.status_code == status, r.text
    assert message in r.json()["error"]
    ok = httpx.post(f"{server.url}/predict", json={"inputs": [{"text": "still alive"}]},
                    timeout=60)
    assert ok.status_code == 200


def test_asr_model_refuses_inputs_without_audio(tmp_path):
    model = zoo.create_model("conformer-ctc-tiny")
    with run_in_thread(create_app(model, feedback_db=tmp_path / "f.db")) as srv:
        r = httpx.post(f"{srv.url}/predict", json={"inputs": [{"text": "hello"}]}, timeout=60)
        assert r.status_code == 400 and "modalities (audio)" in r.json()["error"]
        r = httpx.post(f"{srv.url}/predict", json={"inputs": [{"audio": _wav_b64()}]},
                       timeout=60)
        assert r.status_code == 200 and isinstance(r.json()["outputs"][0]["text"], str)


@pytest.mark.slow
def test_2000_concurrent_feedback_posts_give_2000_ids_and_manifest_lines(server, photo,
                                                                         tmp_path):
    import threading

    img = png_b64(photo)
    mine, clients = threading.local(), []  # one client (connection) per thread: a new
    # httpx.Client per post built an SSL context each time, most of this test's minute

    def post(i):
        body = {"input": {"text": f"example {i}", **({"image": img} if i % 500 == 0 else {})},
                "prediction": {"label": "cat"}, "correction": "dog" if i % 2 else "cat"}
        if not hasattr(mine, "c"):
            mine.c = httpx.Client(timeout=60)
            clients.append(mine.c)
        r = mine.c.post(f"{server.url}/feedback", json=body)
        return r.status_code, r.json().get("id")

    try:
        with ThreadPoolExecutor(32) as pool:
            results = list(pool.map(post, range(2000)))
    finally:
        for c in clients:
            c.close()
    assert all(s == 200 for s, _ in results)
    ids = [i for _, i in results]
    assert len(set(ids)) == 2000
    bad = httpx.post(f"{server.url}/feedback", json={"input": {"text": "x"}})
    assert bad.status_code == 400 and "correction" in bad.json()["error"]
    out = tmp_path / "from-feedback.jsonl"
    run_zoo("data", "from-feedback", str(server.db), "--out", str(out), check=True)
    lines = [json.loads(x) for x in out.read_text().splitlines()]
    mine = [x for x in lines if x["feedback_id"] in set(ids)]
    assert len(mine) == 2000 and len({x["feedback_id"] for x in mine}) == 2000
    with_image = [x for x in mine if "image" in x]
    assert len(with_image) == 4 and (out.parent / with_image[0]["image"]).is_file()
    assert {x["label"] for x in mine} == {"cat", "dog"}
    # the exported manifest trains a model: the way back from use to data
    from zoo.data.manifest import read_manifest

    assert len(read_manifest(out)) == len(lines)


# ---- bounded serving: every limit answers with its name, before the expensive step -------

def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _png(w: int, h: int) -> bytes:
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.new("L", (w, h)).save(buf, format="PNG", optimize=True)
    return buf.getvalue()


def _wav(seconds: float, rate: int) -> bytes:
    import io

    import numpy as np
    import soundfile as sf

    buf = io.BytesIO()
    sf.write(buf, np.zeros(max(1, int(seconds * rate)), "float32"), rate, format="FLAC"
             if rate >= 1000 else "WAV")
    return buf.getvalue()


def test_limits_bound_each_request_and_name_the_limit(server):
    import time as _time

    post = lambda body: httpx.post(f"{server.url}/predict", json=body, timeout=60)  # noqa
    big = _png(9000, 9000)  # 81 Mpx of blank pixels in a small file
    assert len(big) < 1_000_000
    t = _time.perf_counter()
    r = post({"inputs": [{"text": "x", "image": _b64(big)}]})
    assert r.status_code == 413 and "ZOO_SERVE_MAX_PIXELS" in r.json()["error"]
    assert "9000x9000" in r.json()["error"] and _time.perf_counter() - t < 30  # a safety net
    r = post({"inputs": [{"text": "x" * 100_001}]})
    assert r.status_code == 413 and "ZOO_SERVE_MAX_TEXT_CHARS" in r.json()["error"]
    r = post({"inputs": [{"text": "x"}] * 65})
    assert r.status_code == 413 and "ZOO_SERVE_MAX_INPUTS" in r.json()["error"]
    deep = "[" * 5000 + "]" * 5000
    r = httpx.post(f"{server.url}/predict", content=deep,
                   headers={"content-type": "application/json"}, timeout=60)
    assert r.status_code == 422 and "nested" in r.json()["error"]
    r = httpx.post(f"{server.url}/feedback", content='{"input": ' + "[" * 100 + "]" * 100
                   + "}", headers={"content-type": "application/json"}, timeout=60)
    assert r.status_code == 422
    assert httpx.get(f"{server.url}/health", timeout=5).json() == {"status": "ok"}


def test_audio_limits_read_the_header_first(tmp_path):
    from zoo.errors import RequestError
    from zoo.serve.app import Limits
    from zoo.serve.inputs import decode_input

    with pytest.raises(RequestError, match="1 Hz") as e:
        decode_input({"audio": _b64(_wav(4, 1))}, 0)  # a 4 s file declaring 1 Hz
    assert e.value.status == 422
    with pytest.raises(RequestError, match="600.0 s.*ZOO_SERVE_MAX_AUDIO_SECONDS") as e:
        decode_input({"audio": _b64(_wav(600, 8000))}, 0)  # ten minutes of silence
    assert e.value.status == 413
    ok = decode_input({"audio": _b64(_wav(1, 16000))}, 0)
    assert ok["audio"][1] == 16000
    roomy = Limits.from_env(max_audio_seconds="900")
    assert decode_input({"audio": _b64(_wav(600, 8000))}, 0, roomy)["audio"][1] == 8000
    with pytest.raises(zoo.ZooError, match="unknown serving limit"):
        Limits.from_env(max_bananas=3)


# ---- an API that fits its ecosystem: auth, docs, multipart, raw bodies, other shapes ------

@pytest.fixture(scope="module")
def keyed(tmp_path_factory):
    d = tmp_path_factory.mktemp("keyed")
    model = zoo.create_model("tiny-text-image-clf", labels=["cat", "dog"])
    app = create_app(model, feedback_db=d / "feedback.db", max_wait_ms=5,
                     api_key="s3cret-key")
    with run_in_thread(app) as srv:
        srv.model, srv.db = model, d / "feedback.db"
        yield srv


def test_api_key_guards_every_route_but_health(keyed):
    body = {"inputs": [{"text": "a cat"}]}
    assert httpx.post(f"{keyed.url}/predict", json=body).status_code == 401
    wrong = httpx.post(f"{keyed.url}/predict", json=body,
                       headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401 and wrong.headers["www-authenticate"] == "Bearer"
    assert "API key" in wrong.json()["error"]
    ok = httpx.post(f"{keyed.url}/predict", json=body,
                    headers={"Authorization": "Bearer s3cret-key"})
    assert ok.status_code == 200
    assert httpx.post(f"{keyed.url}/predict", json=body,
                      headers={"X-API-Key": "s3cret-key"}).status_code == 200
    assert httpx.get(f"{keyed.url}/metrics").status_code == 401
    assert httpx.get(f"{keyed.url}/health").status_code == 200


def test_docs_multipart_raw_bodies_and_other_request_shapes(keyed, photo):
    from PIL import Image

    h = {"X-API-Key": "s3cret-key"}
    docs = httpx.get(f"{keyed.url}/docs", headers=h)
    assert docs.status_code == 200 and "swagger" in docs.text.lower()
    spec = httpx.get(f"{keyed.url}/openapi.json", headers=h).json()
    body = spec["paths"]["/predict"]["post"]["requestBody"]["content"]
    assert {"application/json", "multipart/form-data", "image/*"} <= set(body)
    expected = keyed.model.predict([{"text": "a cat", "image": Image.open(photo)}])[0]["label"]
    multi = httpx.post(f"{keyed.url}/predict", headers=h, data={"text": "a cat"},
                       files={"image": ("p.png", photo.read_bytes(), "image/png")})
    assert multi.status_code == 200 and multi.json()["outputs"][0]["label"] == expected
    raw = httpx.post(f"{keyed.url}/predict?text=a%20cat", content=photo.read_bytes(),
                     headers={**h, "content-type": "image/png"})
    assert raw.status_code == 200 and raw.json()["outputs"][0]["label"] == expected
    text_only = keyed.model.predict([{"text": "a dog"}])[0]["label"]
    kserve = httpx.post(f"{keyed.url}/predict", headers=h,
                        json={"instances": [{"text": "a dog"}, "a dog"]})
    assert [p["label"] for p in kserve.json()["predictions"]] == [text_only] * 2
    hf = httpx.post(f"{keyed.url}/predict", headers=h, json={"inputs": "a dog"})
    assert hf.json()["outputs"][0]["label"] == text_only
    bad = httpx.post(f"{keyed.url}/predict", headers=h, data={"txt": "x"},
                     files={"image": ("p.png", photo.read_bytes(), "image/png")})
    assert bad.status_code == 400 and "unknown form field" in bad.json()["error"]


def test_feedback_rows_are_validated_and_a_retried_post_is_stored_once(keyed, photo):
    h = {"X-API-Key": "s3cret-key"}
    post = lambda body, **kw: httpx.post(f"{keyed.url}/feedback", json=body,  # noqa: E731
                                         headers={**h, **kw.get("headers", {})}, timeout=30)
    r = post({"input": {"audio": base64.b64encode(b"RIFF0000").decode()}, "correction": "x"})
    assert r.status_code == 400  # not this model's modality, or not decodable
    r = post({"input": {"text": "x" * 200_000}, "correction": "cat"})
    assert r.status_code == 413
    r = post({"input": {"text": "a cat"}, "correction": {"bogus": 1}})
    assert r.status_code == 422 and "target keys (label)" in r.json()["error"]
    r = post({"input": {"text": "a cat"}, "correction": "elephant"})  # not one of its labels
    assert r.status_code == 422 and "unknown label 'elephant'" in r.json()["error"]
    first = post({"input": {"text": "a cat"}, "correction": "cat"},
                 headers={"Idempotency-Key": "retry-1"})
    again = post({"input": {"text": "a cat"}, "correction": "cat"},
                 headers={"Idempotency-Key": "retry-1"})
    assert first.status_code == again.status_code == 200
    assert first.json()["id"] == again.json()["id"]
    from zoo.io.feedback import FeedbackStore

    rows = FeedbackStore(keyed.db).rows()
    assert sum(r["correction"] == "cat" and r["input"] == {"text": "a cat"} for r in rows) == 1


def test_metrics_labels_are_a_fixed_set(keyed):
    h = {"X-API-Key": "s3cret-key"}
    for i in range(50):
        httpx.get(f"{keyed.url}/nope-{i}\"}}injected", headers=h)
    text = httpx.get(f"{keyed.url}/metrics", headers=h).text
    assert "injected" not in text and "nope-" not in text
    assert 'path="other",status="404"' in text


def test_from_feedback_reports_a_bad_row_and_exports_the_rest(tmp_path):
    import sqlite3

    from zoo.io.feedback import FeedbackStore

    store = FeedbackStore(tmp_path / "fb.db")
    good = store.add({"text": "a cat"}, None, "cat")
    store.add({"text": "a dog"}, None, "dog")
    con = sqlite3.connect(tmp_path / "fb.db")  # an old or hand-edited row: broken base64
    con.execute("INSERT INTO feedback (created, input, correction) VALUES (0, ?, ?)",
                (json.dumps({"image": "%%%not base64"}), json.dumps("cat")))
    con.commit()
    out = tmp_path / "fb.jsonl"
    # rows from before zoo 0.2 hold bare corrections: reported, with the way to read them
    proc = run_zoo("data", "from-feedback", str(tmp_path / "fb.db"), "--out", str(out),
                   check=True)
    r = json.loads(proc.stdout)
    assert r["exported"] == 0 and r["skipped"] == 3
    assert "--task" in open(r["log"]).readline()
    proc = run_zoo("data", "from-feedback", str(tmp_path / "fb.db"), "--out", str(out),
                   "--task", "classification", check=True)
    r = json.loads(proc.stdout)
    assert r["rows"] == 3 and r["exported"] == 2 and r["skipped"] == 1
    assert [json.loads(x)["label"] for x in out.read_text().splitlines()] == ["cat", "dog"]
    assert [json.loads(x)["feedback_id"] for x in out.read_text().splitlines()] == [good, 2]
    assert "Error" in json.loads(open(r["log"]).readline())["reason"]


def test_bombs_are_refused_fast_with_little_memory_and_health_stays_quick(server):
    import resource
    import time as _time

    bomb = {"inputs": [{"text": "x", "image": _b64(_png(9000, 9000))}] * 10}  # 810 Mpx
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB, peak so far
    health: list[float] = []

    def poll():
        for _ in range(10):
            t = _time.perf_counter()
            httpx.get(f"{server.url}/health", timeout=10)
            health.append(_time.perf_counter() - t)

    with ThreadPoolExecutor(5) as pool:
        heavy = [pool.submit(httpx.post, f"{server.url}/predict", json=bomb, timeout=60)
                 for _ in range(4)]
        pool.submit(poll).result()
        codes = [f.result().status_code for f in heavy]
        assert all("ZOO_SERVE_MAX_PIXELS" in f.result().json()["error"] for f in heavy)
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert codes == [413] * 4
    assert grown_mb < 200, f"peak memory grew {grown_mb:.0f} MB"
    # /health never waits behind the bombs (generous: a loaded machine is slow, not stuck)
    assert max(health) < 5.0, f"/health took {max(health):.2f} s"


@pytest.mark.slow
def test_zoo_serve_workers_share_one_port_and_stop_gracefully(tmp_path):
    import signal

    proc, url = _start_zoo_serve(tmp_path, "--workers", "2")
    port = url.rsplit(":", 1)[1]
    try:
        import time as _time

        pids = set()
        deadline = _time.time() + 60  # /health answers once the first worker is up; the
        while len(pids) < 2 and _time.time() < deadline:  # second may still be loading
            with httpx.Client(timeout=30) as c:  # a new connection each time
                pids.add(c.get(f"{url}/info").json()["pid"])
            _time.sleep(0.05)
        assert len(pids) == 2, "one worker answered every connection"
        r = httpx.post(f"{url}/predict", json={"inputs": [{"text": "a cat"}]}, timeout=30)
        assert r.status_code == 200 and r.json()["outputs"][0]["label"] in ("cat", "dog")
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err[-1000:]
    assert f"on http://127.0.0.1:{port}" in err and "2 workers" in err


def test_heavy_requests_neither_starve_light_ones_nor_run_past_their_deadline(tmp_path, photo):
    """An image request that takes 3 s (a slow model, simulated) runs in its own lane: a
    text request sent meanwhile answers at once; past ZOO_SERVE_REQUEST_SECONDS a 504."""
    import threading
    import time as _time

    from zoo.serve.app import Limits

    model = zoo.create_model("tiny-text-image-clf", labels=["cat", "dog"])
    real = model.predict

    def slow_for_images(inputs, **kw):
        if any("image" in x for x in inputs):
            _time.sleep(6)
        return real(inputs, **kw)

    model.predict = slow_for_images
    app = create_app(model, feedback_db=tmp_path / "fb.db",
                     limits=Limits.from_env(request_seconds=4))
    img = {"inputs": [{"text": "x", "image": png_b64(photo)}]}
    with run_in_thread(app) as srv:
        heavy: dict = {}
        t = threading.Thread(target=lambda: heavy.update(r=httpx.post(
            f"{srv.url}/predict", json=img, timeout=30)))
        t.start()
        _time.sleep(0.5)  # the image batch is running now
        t0 = _time.perf_counter()
        light = httpx.post(f"{srv.url}/predict", json={"inputs": [{"text": "a cat"}]},
                           timeout=30)
        waited = _time.perf_counter() - t0
        heavy_still_running = t.is_alive()  # an order, not a speed: text did not queue
        t.join()
    assert light.status_code == 200 and heavy_still_running, f"text waited {waited:.2f} s"
    assert heavy["r"].status_code == 504
    assert "ZOO_SERVE_REQUEST_SECONDS" in heavy["r"].json()["error"]


@pytest.mark.slow
def test_sigterm_drains_the_request_in_flight(tmp_path, photo):
    import signal
    import threading
    import time as _time

    proc, url = _start_zoo_serve(tmp_path)
    big = {"inputs": [{"text": f"photo {i}", "image": png_b64(photo)} for i in range(64)]}
    t0 = _time.perf_counter()
    httpx.post(f"{url}/predict", json=big, timeout=60)  # how long one takes, warm
    took = _time.perf_counter() - t0
    result: dict = {}
    t = threading.Thread(target=lambda: result.update(r=httpx.post(f"{url}/predict", json=big,
                                                                   timeout=60)))
    t.start()
    _time.sleep(min(0.3, took / 3))  # the request is in flight
    proc.send_signal(signal.SIGTERM)
    t.join()
    _, err = proc.communicate(timeout=60)
    assert result["r"].status_code == 200 and len(result["r"].json()["outputs"]) == 64
    # uvicorn shuts down gracefully, then re-raises the signal: exit status -SIGTERM
    assert proc.returncode in (0, -signal.SIGTERM) and "Traceback" not in err


def _start_zoo_serve(tmp_path, *extra):
    """`zoo serve` on a saved tiny model in a subprocess on a free port, once /health
    answers: (process, base URL)."""
    import os
    import socket
    import subprocess
    import sys
    import time as _time

    from conftest import ROOT

    zoo.create_model("tiny-text-image-clf", labels=["cat", "dog"]).save_pretrained(
        tmp_path / "m")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "zoo", "serve", str(tmp_path / "m"),
                             "--port", str(port), "--feedback-db", str(tmp_path / "fb.db"),
                             *extra], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=os.environ.copy())
    url = f"http://127.0.0.1:{port}"
    deadline = _time.time() + 90
    while _time.time() < deadline and proc.poll() is None:
        try:
            if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            _time.sleep(0.3)
    return proc, url
