"""The second hardening round (issue 25), each finding replayed as its probe: request
shapes that slipped past the bounds, configs that ran code or exhausted memory, caches
trusted without checking, and the rest. One test per finding, numbered as the issue."""
from __future__ import annotations

import base64
import io
import json

import httpx
import numpy as np
import pytest

import zoo
from zoo.errors import DataError, LoadError, RequestError, ZooError


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _png(w: int, h: int) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("L", (w, h)).save(buf, format="PNG", optimize=True)
    return buf.getvalue()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    from zoo.serve.app import create_app
    from zoo.serve.limits import Limits
    from zoo.serve.uvicorn import run_in_thread

    d = tmp_path_factory.mktemp("h2")
    model = zoo.create_model("tiny-text-image-clf", labels=["cat", "dog"])
    limits = Limits(max_decoded_bytes=20_000_000)  # 20 MB of pixels per request
    app = create_app(model, feedback_db=d / "f.db", max_body=1_000_000, limits=limits)
    with run_in_thread(app) as srv:
        srv.model, srv.state = model, app.state.server
        yield srv


def _rss_mb() -> float:
    import psutil

    return psutil.Process().memory_info().rss / 1e6


# 1. a chunked multipart body is bounded while it is read -------------------------------------

def test_01_a_chunked_multipart_body_is_refused_once_past_the_limit(server):
    boundary = "zooboundary"
    head = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"image\"; "
            f"filename=\"x.png\"\r\nContent-Type: image/png\r\n\r\n").encode()
    sent = {"bytes": 0}

    def body():  # 200 MB of image bytes, in chunks, with no Content-Length
        yield head
        chunk = b"\0" * (1 << 20)
        for _ in range(200):
            sent["bytes"] += len(chunk)
            yield chunk
        yield f"\r\n--{boundary}--\r\n".encode()

    before = _rss_mb()
    try:
        r = httpx.post(f"{server.url}/predict", content=body(), timeout=60,
                       headers={"content-type": f"multipart/form-data; boundary={boundary}"})
        status, text = r.status_code, r.text
    except httpx.HTTPError:  # the server may close the connection as it refuses
        status, text = 413, "closed"
    assert status == 413, text
    assert _rss_mb() - before < 100  # never read whole (the same process serves)
    assert httpx.get(f"{server.url}/health", timeout=10).status_code == 200


# 2. templates are plain placeholders, checked at load ----------------------------------------

@pytest.mark.parametrize("template", ["{0:>400000000}{0:>400000000}", "{0.__class__}",
                                      "no placeholder", "{} and {}", "a {x} {}"])
def test_02_a_prompt_template_with_more_than_one_plain_placeholder_does_not_load(
        tmp_path, template):
    model = zoo.create_model("timm-tiny-fcos", labels=["a"])
    folder = model.save_pretrained(tmp_path / "m")
    cfg = json.loads((folder / "config.json").read_text())
    cfg["head"]["kwargs"]["prompt_template"] = template
    (folder / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(LoadError, match="prompt_template must be text .* one '\\{\\}'"):
        zoo.load(folder)


def test_02_zero_shot_templates_are_substituted_never_formatted():
    from zoo.tasks.retrieval import _fill

    assert _fill("a photo of a {}", "cat") == "a photo of a cat"
    for bad in ("{0:>400000000}", "{0.__class__}", "{} {}"):
        with pytest.raises(ZooError, match="no other braces"):
            _fill(bad, "cat")


# 3. the channel count of audio is bounded before decoding -----------------------------------

@pytest.mark.parametrize("fmt,channels", [("WAV", 255), ("FLAC", 8), ("OGG", 255)])
def test_03_many_channels_are_refused_from_the_header(fmt, channels):
    import soundfile as sf

    from zoo.serve.inputs import decode_input

    buf = io.BytesIO()
    try:
        sf.write(buf, np.zeros((1600, channels), "float32"), 16000, format=fmt)
    except Exception as e:  # libsndfile builds differ in what they write
        pytest.skip(f"cannot write {channels}-channel {fmt} here: {e}")
    if channels <= 8:  # at the default limit: accepted, and a lower limit refuses it
        from zoo.serve.limits import Limits

        assert decode_input({"audio": _b64(buf.getvalue())}, 0)["audio"][1] == 16000
        with pytest.raises(RequestError, match="8 channels; the limit is 2") as e:
            decode_input({"audio": _b64(buf.getvalue())}, 0, Limits(max_audio_channels=2))
    else:
        with pytest.raises(RequestError, match=f"{channels} channels; the limit is 8") as e:
            decode_input({"audio": _b64(buf.getvalue())}, 0)
    assert e.value.status == 413


# 4. one request budget of decoded bytes, and a bound on all requests in flight --------------

def test_04_many_small_images_within_every_other_limit_hit_the_request_budget(server):
    img = _b64(_png(2048, 2048))  # 12.6 MB of RGB each, a few KB as PNG
    r = httpx.post(f"{server.url}/predict", timeout=60,
                   json={"inputs": [{"text": "x", "image": img}] * 8})
    assert r.status_code == 413 and "ZOO_SERVE_MAX_DECODED_BYTES" in r.json()["error"]
    one = httpx.post(f"{server.url}/predict", timeout=60,
                     json={"inputs": [{"text": "x", "image": img}]})
    assert one.status_code == 200
    assert server.state.pool.used == 0  # every request gave its bytes back


def test_04_requests_in_flight_share_one_pool():
    from zoo.serve.limits import DecodePool, Limits

    pool = DecodePool(30e6)
    a, b = Limits().for_request(pool), Limits().for_request(pool)
    a.charge(20e6, "inputs[0].image")
    with pytest.raises(RequestError, match="ZOO_SERVE_MAX_INFLIGHT_DECODED_BYTES") as e:
        b.charge(20e6, "inputs[0].image")
    assert e.value.status == 503
    assert a.release() == 20e6 and pool.used == 0
    b.charge(20e6, "inputs[0].image")  # room again once the first request is done
    Limits().charge(1e12, "outside a request")  # no budget outside serving: nothing counted


# 12. non-finite numbers ------------------------------------------------------------------------

def test_12_nan_audio_is_a_422_not_a_500(tmp_path):
    import soundfile as sf

    from zoo.modalities.audio import read_audio
    from zoo.serve.app import create_app
    from zoo.serve.uvicorn import run_in_thread

    buf = io.BytesIO()
    wave = np.zeros(16000, "float32")
    wave[100] = np.nan
    sf.write(buf, wave, 16000, format="WAV", subtype="FLOAT")
    model = zoo.create_model("conformer-ctc-tiny")
    with run_in_thread(create_app(model, feedback_db=tmp_path / "f.db")) as srv:
        r = httpx.post(f"{srv.url}/predict", timeout=60,
                       json={"inputs": [{"audio": _b64(buf.getvalue())}]})
    assert r.status_code == 422 and "NaN or infinite" in r.json()["error"]
    (tmp_path / "nan.wav").write_bytes(buf.getvalue())
    with pytest.raises(DataError, match="NaN or infinite"):
        read_audio(str(tmp_path / "nan.wav"))


@pytest.mark.parametrize("edit,message", [
    (lambda c: c["head"]["kwargs"].update(threshold=float("nan")), "holds NaN"),
    (lambda c: c["head"]["kwargs"].update(threshold=7), "threshold must be a number in"),
    (lambda c: c["fusion"]["kwargs"].update(dropout=float("inf")), "holds Infinity"),
    (lambda c: c["fusion"]["kwargs"].update(dropout=3.0), "cannot build.*dropout"),
    (lambda c: c["fusion"]["kwargs"].update(dim=-5), "cannot build"),
])
def test_12_a_config_with_impossible_numbers_is_a_one_line_load_error(tmp_path, edit, message):
    folder = zoo.create_model("tiny-text-image-clf", labels=["a", "b"]).save_pretrained(
        tmp_path / "m")
    cfg = json.loads((folder / "config.json").read_text())
    edit(cfg)
    (folder / "config.json").write_text(json.dumps(cfg))  # json writes NaN as NaN
    with pytest.raises(LoadError, match=message) as e:
        zoo.load(folder)
    assert "\n" not in str(e.value)


def test_12_request_parameters_are_checked_as_values_too(tmp_path):
    model = zoo.create_model("timm-tiny-fcos", labels=["a"])
    for bad, message in (({"score_threshold": float("nan")}, "in \\[0, 1\\]"),
                         ({"max_detections": 10 ** 9}, "1..1000"),
                         ({"nms_iou": "high"}, "in \\[0, 1\\]")):
        with pytest.raises(ZooError, match=message):
            model.head.check_decode_kwargs(bad)


# 5. cache entries are sealed: an edited or planted one is rebuilt, never trusted -------------

def test_05_an_edited_onnx_export_in_the_cache_is_exported_again(tmp_path):
    pytest.importorskip("onnxruntime")
    from zoo.serve.onnx import OnnxRunner

    model = zoo.create_model("char-text-clf", labels=["a", "b"])
    first = OnnxRunner(model, cache_dir=tmp_path)
    assert first.exported
    graph = first.path.read_bytes()
    assert OnnxRunner(model, cache_dir=tmp_path).exported is False  # sealed: reused
    first.path.write_bytes(graph[:-16] + b"\0" * 16)  # a backdoored graph, same size
    with pytest.warns(UserWarning, match="its seal fails"):
        again = OnnxRunner(model, cache_dir=tmp_path)
    assert again.exported and again.path.read_bytes() == graph
    # a forged seal (the digest of the public model is computable; the secret is not)
    first.path.write_bytes(graph[:-16] + b"\0" * 16)
    first.path.with_name("model.onnx.zoo-seal").write_text("0" * 64)
    with pytest.warns(UserWarning, match="its seal fails"):
        assert OnnxRunner(model, cache_dir=tmp_path).exported


def test_05_a_forged_sha256_memo_entry_does_not_let_tampered_weights_load(tmp_path):
    from zoo.weights import _cache_dir

    folder = zoo.create_model("tiny-text-image-clf", labels=["a", "b"]).save_pretrained(
        tmp_path / "m")
    good = json.loads((folder / "config.json").read_text())["weights"]["model.safetensors"]
    path = folder / "model.safetensors"
    data = bytearray(path.read_bytes())
    data[-8] ^= 0xFF
    path.write_bytes(bytes(data))
    st = path.stat()
    key = f"{path.resolve()}:{st.st_ino}:{st.st_size}:{st.st_mtime_ns}:{st.st_ctime_ns}"
    memo = _cache_dir() / "sha256.json"
    memo.parent.mkdir(parents=True, exist_ok=True)
    for forged in (good, [good, "0" * 64]):  # the old plain form, and a forged seal
        memo.write_text(json.dumps({key: forged}))
        with pytest.raises(LoadError, match="does not match the sha256"):
            zoo.load(folder)


@pytest.mark.slow
def test_05_converted_weights_in_the_cache_are_converted_again_when_edited():
    from zoo_text_toxic.convert import converted

    folder = converted()
    head = folder / "head.safetensors"
    good = head.read_bytes()
    head.write_bytes(good[:-4] + b"\x7f\x7f\x7f\x7f")  # a planted weight
    model = zoo.create_model("toxic-bilstm-jigsaw", pretrained=True)
    assert head.read_bytes() == good
    assert model.predict([{"text": "thank you"}])[0]["label"] == []


# 6. cross-site requests and DNS rebinding ------------------------------------------------------

def test_06_foreign_origins_hosts_and_simple_content_types_are_refused(tmp_path):
    from zoo.serve.app import create_app
    from zoo.serve.uvicorn import run_in_thread

    model = zoo.create_model("char-text-clf", labels=["a", "b"])
    app = create_app(model, feedback_db=tmp_path / "f.db",
                     origins=["https://app.example.com"])
    body = json.dumps({"input": {"text": "x"}, "correction": "a"})
    with run_in_thread(app) as srv:
        post = lambda path, **h: httpx.post(f"{srv.url}{path}", content=body,  # noqa: E731
                                            headers=h, timeout=30)
        r = post("/feedback", **{"content-type": "text/plain",
                                 "origin": "https://evil.example"})
        assert r.status_code == 403 and "--allow-origin" in r.json()["error"]
        r = post("/feedback", **{"content-type": "text/plain"})
        assert r.status_code == 415
        r = post("/feedback", **{"content-type": "application/json", "host": "evil.example"})
        assert r.status_code == 421 and "--allow-host" in r.json()["error"]
        r = httpx.get(f"{srv.url}/health", headers={"host": "rebind.evil.example:80"})
        assert r.status_code == 421
        port = srv.url.rsplit(":", 1)[1]
        for ok in ({"origin": "https://app.example.com"},  # allowed
                   {"origin": srv.url}, {"host": f"localhost:{port}"}):  # same origin
            r = post("/feedback", **{"content-type": "application/json", **ok})
            assert r.status_code == 200, (ok, r.text)
    import sqlite3

    rows = sqlite3.connect(tmp_path / "f.db").execute("select count(*) from feedback")
    assert rows.fetchone()[0] == 3  # only the three allowed posts were stored


# 8. slowloris: partial headers and trickled bodies time out ----------------------------------

@pytest.mark.slow
def test_08_a_thousand_idle_partial_requests_are_closed_and_health_keeps_answering(
        tmp_path, monkeypatch):
    import socket
    import time

    from zoo.serve.app import create_app
    from zoo.serve.limits import Limits
    from zoo.serve.uvicorn import run_in_thread

    monkeypatch.setenv("ZOO_SERVE_HEADER_SECONDS", "2")
    model = zoo.create_model("char-text-clf", labels=["a", "b"])
    app = create_app(model, feedback_db=tmp_path / "f.db", limits=Limits(body_seconds=1))
    with run_in_thread(app) as srv:
        host, port = "127.0.0.1", int(srv.url.rsplit(":", 1)[1])
        socks = []
        for _ in range(1000):
            s = socket.create_connection((host, port), timeout=10)
            s.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")  # never ends
            socks.append(s)
        t = time.perf_counter()
        assert httpx.get(f"{srv.url}/health", timeout=10).status_code == 200
        assert time.perf_counter() - t < 5
        time.sleep(3)
        closed = 0
        for s in socks:
            s.settimeout(5)
            try:
                closed += s.recv(1) == b""
            except OSError:
                closed += 1
            s.close()
        assert closed == 1000
        # a body that stops arriving: 408 after body_seconds
        s = socket.create_connection((host, port), timeout=10)
        s.sendall(b"POST /predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: "
                  b"application/json\r\nContent-Length: 100\r\n\r\n{\"inputs\"")
        s.settimeout(10)
        assert b" 408 " in s.recv(200).split(b"\r\n")[0] + b" "
        s.close()


# 7. feedback quotas: rows, bytes, per-client rate; corrections checked ------------------------

def test_07_feedback_has_quotas_of_rows_bytes_and_rate(tmp_path):
    from zoo.serve.app import create_app
    from zoo.serve.limits import Limits
    from zoo.serve.uvicorn import run_in_thread

    model = zoo.create_model("char-text-clf", labels=["a", "b"])

    def post(srv, text, correction="a"):
        return httpx.post(f"{srv.url}/feedback", timeout=30,
                          json={"input": {"text": text}, "correction": correction})

    rows = Limits(feedback_max_rows=3)
    with run_in_thread(create_app(model, feedback_db=tmp_path / "rows.db", limits=rows)) as srv:
        assert [post(srv, f"t{i}").status_code for i in range(4)] == [200, 200, 200, 507]
        assert "ZOO_SERVE_FEEDBACK_MAX_ROWS" in post(srv, "x").json()["error"]
        assert post(srv, "x", "elephant").status_code == 422  # not one of the labels
    size = Limits(feedback_max_bytes=200_000, max_text_chars=100_000)
    with run_in_thread(create_app(model, feedback_db=tmp_path / "b.db", limits=size)) as srv:
        codes = [post(srv, "x" * 90_000).status_code for _ in range(4)]
        assert codes[0] == 200 and codes[-1] == 507
    rate = Limits(feedback_per_minute=5)
    with run_in_thread(create_app(model, feedback_db=tmp_path / "r.db", limits=rate)) as srv:
        codes = [post(srv, f"t{i}").status_code for i in range(6)]
        assert codes == [200] * 5 + [429]
        r = post(srv, "again")
        assert r.status_code == 429 and int(r.headers["retry-after"]) >= 1
        other = httpx.Client(transport=httpx.HTTPTransport(local_address="127.0.0.2"))
        r = other.post(f"{srv.url}/feedback", json={"input": {"text": "x"}, "correction": "b"})
        assert r.status_code == 200  # another client has its own allowance


# 10. an Idempotency-Key is per client and per body ---------------------------------------------

def test_10_a_reused_key_with_another_body_is_a_409_and_keys_are_per_client(tmp_path):
    from zoo.serve.app import create_app
    from zoo.serve.uvicorn import run_in_thread

    model = zoo.create_model("char-text-clf", labels=["a", "b"])
    with run_in_thread(create_app(model, feedback_db=tmp_path / "f.db")) as srv:
        def post(correction, client=httpx):
            return client.post(f"{srv.url}/feedback", headers={"Idempotency-Key": "k-1"},
                               json={"input": {"text": "x"}, "correction": correction})

        first = post("a")
        assert first.status_code == 200
        assert post("a").json() == first.json()  # a retry: the same id, stored once
        r = post("b")
        assert r.status_code == 409 and "another body" in r.json()["error"]
        other = httpx.Client(transport=httpx.HTTPTransport(local_address="127.0.0.2"))
        theirs = post("b", other)  # the same key from another client is its own
        assert theirs.status_code == 200 and theirs.json()["id"] != first.json()["id"]
    import sqlite3

    stored = sqlite3.connect(tmp_path / "f.db").execute(
        "select correction from feedback order by id").fetchall()
    assert stored == [('"a"',), ('"b"',)]
