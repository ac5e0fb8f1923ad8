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
import torch

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


@pytest.mark.slow
def test_05_converted_whisper_weights_are_converted_again_when_edited():
    pytest.importorskip("zoo_speech_whisper")
    from zoo_speech_whisper.cache import converted
    from zoo_speech_whisper.weights import TINY_EN

    from safetensors.torch import load_file

    folder = converted(TINY_EN)
    dec = folder / "decoder.safetensors"
    good = {k: v.clone() for k, v in load_file(str(dec)).items()}  # not the mapped file
    data = dec.read_bytes()
    dec.write_bytes(data[:-4] + b"\x00\x3c\x00\x3c")  # two planted fp16 ones
    assert converted(TINY_EN) == folder
    again = load_file(str(dec))
    assert again.keys() == good.keys() and all(torch.equal(again[k], good[k]) for k in good)


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


def test_09_a_pull_takes_only_model_files_of_listed_types_and_sizes(hub, tmp_path, monkeypatch):
    from huggingface_hub import HfApi

    from zoo.io.hub import pull

    api = HfApi(endpoint=hub.url, token=hub.env["HF_TOKEN"])
    folder = tmp_path / "m"
    zoo.create_model("tiny-text-image-clf", labels=["cat", "dog"]).save_pretrained(folder)
    api.create_repo("zoo-tests/extras")
    api.upload_folder(folder_path=str(folder), repo_id="zoo-tests/extras")
    # files beside the model that a zoo model never needs are left on the Hub
    api.upload_file(path_or_fileobj=b"#!/bin/sh\necho pwned\n", path_in_repo="install.sh",
                    repo_id="zoo-tests/extras")
    api.upload_file(path_or_fileobj=b"{}", path_in_repo="model-00002-of-00002.bin.json",
                    repo_id="zoo-tests/extras")
    got = pull("zoo-tests/extras")
    names = sorted(p.relative_to(got).as_posix() for p in got.rglob("*") if p.is_file())
    assert "install.sh" not in names and "model-00002-of-00002.bin.json" not in names
    assert "config.json" in names and "model.safetensors" in names
    assert zoo.load("hf-hub:zoo-tests/extras").labels == ["cat", "dog"]
    # an executable or a blob in preprocessor/ refuses the repo, before downloading
    for name, data in (("preprocessor/text/install.sh", b"echo pwned"),
                       ("preprocessor/text/helper.dll", b"MZ")):
        repo = f"zoo-tests/pre-{name.rsplit('.', 1)[1]}"
        api.create_repo(repo)
        api.upload_folder(folder_path=str(folder), repo_id=repo)
        api.upload_file(path_or_fileobj=data, path_in_repo=name, repo_id=repo)
        with pytest.raises(LoadError, match=r"preprocessor file\(s\) of a type zoo does not "
                                            r"load: \['" + name.replace(".", r"\.")):
            pull(repo)
    monkeypatch.setenv("ZOO_HUB_MAX_FILE_MB", "0.001")  # ~1 KB: the vocabulary is larger
    with pytest.raises(LoadError, match=r"preprocessor file\(s\) over 0 MB: \['preprocessor/"):
        pull("zoo-tests/extras")
    monkeypatch.delenv("ZOO_HUB_MAX_FILE_MB")
    monkeypatch.setenv("ZOO_HUB_MAX_GB", "0.000001")
    with pytest.raises(LoadError, match=r"over the 1e-06 GB a pull takes"):
        pull("zoo-tests/extras")


def test_09_a_push_publishes_no_unlisted_shard_index_or_preprocessor_file(hub, tmp_path):
    from huggingface_hub import HfApi

    from zoo.io.hub import push_folder

    folder = tmp_path / "m"
    zoo.create_model("tiny-text-image-clf", labels=["cat", "dog"]).save_pretrained(folder)
    (folder / "model-00002-of-00002.safetensors").write_bytes(b"stale shard")
    (folder / "model.safetensors.index.json").write_text('{"weight_map": {}}')
    push_folder(folder, "zoo-tests/clean")
    files = set(HfApi(endpoint=hub.url, token=hub.env["HF_TOKEN"]).list_repo_files(
        "zoo-tests/clean"))
    assert "model-00002-of-00002.safetensors" not in files
    assert "model.safetensors.index.json" not in files and "model.safetensors" in files
    (folder / "preprocessor" / "text" / "install.sh").write_text("echo pwned\n")
    with pytest.raises(ZooError, match=r"install\.sh'\] in preprocessor/ is not a file type "
                                       r"zoo publishes"):
        push_folder(folder, "zoo-tests/dirty")


def test_15_a_pulled_model_loads_offline_by_name_and_branch(hub, tmp_path, monkeypatch):
    import huggingface_hub.constants as C

    from zoo.io.hub import pull

    model = zoo.create_model("tiny-text-image-clf", labels=["cat", "dog"])
    model.push_to_hub("zoo-tests/plane")
    model.push_to_hub("zoo-tests/plane", revision="v1")
    pull("zoo-tests/plane")
    pull("zoo-tests/plane", revision="v1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(C, "HF_HUB_OFFLINE", True)
    hub.stop()  # nothing to reach: the cache alone
    inputs = [{"text": "a cat"}]
    assert zoo.load("hf-hub:zoo-tests/plane").predict(inputs) == model.predict(inputs)
    assert zoo.load("hf-hub:zoo-tests/plane@v1").labels == ["cat", "dog"]
    with pytest.raises(LoadError, match="not in the cache"):
        zoo.load("hf-hub:zoo-tests/never-pulled")


EVIL = "cat` ``` \n## Pwned\n<img src=x onerror=alert(1)>\n| a | b |\n[click](javascript:alert(1))"


def _html(markdown: str) -> str:
    from markdown_it import MarkdownIt

    return MarkdownIt("commonmark").enable("table").render(markdown.split("\n---\n", 1)[1])


def test_11_user_strings_cannot_break_out_of_the_card(tmp_path):
    from zoo.io.card import render_card

    folder = tmp_path / "m"
    zoo.create_model("tiny-text-image-clf", labels=[EVIL, "dog"]).save_pretrained(folder)
    config = json.loads((folder / "config.json").read_text())
    config["description"] = EVIL
    (folder / "config.json").write_text(json.dumps(config))
    (folder / "training.json").write_text(json.dumps({
        "train_data": f"/data/{EVIL}.csv", "n_train": 3, "config": {"epochs": EVIL}}))
    (folder / "eval_results.json").write_text(json.dumps({
        "task": "classification", "dataset": EVIL, "metrics": {"accuracy": 0.5, "n": 2}}))
    card = render_card(folder)
    html = _html(card)
    assert "<img" not in html and "<h2>Pwned" not in html and 'href="javascript' not in html
    assert "<h2>" in html  # the card's own sections are still there
    # the label is shown whole, literally, in one code span
    assert "<code>cat` ``` ## Pwned &lt;img src=x onerror=alert(1)&gt; | a | b |" in html
    import yaml

    front = yaml.safe_load(card.split("---\n")[1])
    assert front["library_name"] == "zoo"


def test_11_pretrain_card_escapes_the_corpus_and_folder_names(tmp_path):
    from types import SimpleNamespace

    from zoo.io.pretrain_card import write_card

    record = {"objective": "mlm", "objective_provider": {"distribution": "zoo-mm", "version": "1"},
              "encoder": {"name": "minilm-l6", "weights": "x", "base_model": f"a/b){EVIL}"},
              "corpus": {"name": EVIL, "sha256": "0" * 64, "sha256_of": "text", "unit": "lines",
                         "examples": 3},
              "settings": {"mask": EVIL}, "metrics": {"before": {"loss": 1.0},
                                                       "after": {"loss": 0.5}},
              "training": {"epochs": 1, "batch_size": 2, "lr": 1e-4, "optimizer": "AdamW",
                           "weight_decay": 0.0, "schedule": "linear", "warmup": 0.1,
                           "train_loss": [1.0], "seed": 0, "seconds": 1, "device": "cpu"},
              "eval": {"examples": 2, "source": EVIL}}
    objective = SimpleNamespace(modality="text", pipeline_tag="fill-mask", tags=[], notes=[])
    write_card(tmp_path, record, objective, f"enc\n# {EVIL}")
    html = _html((tmp_path / "README.md").read_text())
    assert "<img" not in html and "<h2>Pwned" not in html and 'href="javascript' not in html


@pytest.fixture(scope="module")
def one_run(tmp_path_factory):
    """A finished tiny run with its resume state."""
    from zoo.build.compose import compose

    def model():
        return compose("classification", {"text": "bert-tiny"},
                       head={"name": "classification", "labels": ["apple", "pear"]},
                       fusion={"name": "concat-mlp", "dim": 16})

    data = [{"text": f"{w} {i}", "label": w} for i, w in enumerate(["apple", "pear"] * 6)]
    out = tmp_path_factory.mktemp("resume") / "out"
    zoo.train(model(), data, data, out, epochs=1, batch_size=4, progress=False, loggers=[])
    return out, model, data


@pytest.mark.parametrize("damage,message", [
    (lambda s, step: (s / "latest").write_text("../.."), r"'latest' holds '\.\./\.\.', not a "
                                                         r"step number"),
    (lambda s, step: (s / "latest").write_text("1e3"), r"'latest' holds '1e3'"),
    (lambda s, step: (s / f"state-{step}.json").write_text('{"epoch": 1,'),
     r"state-\d+\.json is not valid JSON"),
    (lambda s, step: (s / f"state-{step}.safetensors").write_bytes(
        (s / f"state-{step}.safetensors").read_bytes()[:5000]),
     r"state-\d+\.safetensors cannot be read"),
    (lambda s, step: (s / f"state-{step}.safetensors").unlink(), r"state-\d+\.safetensors is "
                                                                 r"missing"),
], ids=["latest-a-path", "latest-not-digits", "broken-json", "truncated-tensors",
        "missing-tensors"])
def test_13_a_damaged_resume_state_is_one_line_with_the_way_out(one_run, tmp_path, damage,
                                                                message):
    import shutil

    out, model, data = one_run
    copy = tmp_path / "out"
    shutil.copytree(out, copy)
    state = copy / "train_state"
    damage(state, (state / "latest").read_text().strip())
    with pytest.raises(ZooError, match=message) as e:
        zoo.train(model(), data, data, copy, epochs=1, batch_size=4, progress=False,
                  loggers=[], resume=True)
    assert "\n" not in str(e.value) and "start again without --resume" in str(e.value)


def test_14_folder_data_sets_open_only_their_own_files(tmp_path, speech, photo):
    import os
    import shutil

    from zoo.data.formats import read_any

    outside = tmp_path / "private"
    outside.mkdir()
    shutil.copy(speech, outside / "secret.wav")
    shutil.copy(photo, outside / "secret.png")
    audio = tmp_path / "audiofolder"
    audio.mkdir()
    shutil.copy(speech, audio / "ok.wav")
    for bad in ("../private/secret.wav", str(outside / "secret.wav")):
        (audio / "metadata.csv").write_text(f"file_name,transcription\nok.wav,hello\n"
                                            f"{bad},stolen\n")
        with pytest.raises(DataError, match=r"metadata.csv:3: audio file .* is outside the "
                                            r"data set folder"):
            read_any(audio)
        errors: list = []
        examples, _, _ = read_any(audio, on_bad_data="skip", errors=errors)
        assert [ex.targets["transcript"] for ex in examples] == ["hello"] and len(errors) == 1
    images = tmp_path / "imagefolder"
    (images / "cat").mkdir(parents=True)
    shutil.copy(photo, images / "cat" / "ok.png")
    os.symlink(outside / "secret.png", images / "cat" / "link.png")
    with pytest.raises(DataError, match=r"image file .*link\.png' is outside the data set"):
        read_any(images)
    os.symlink(outside, images / "dog")  # a class folder that is a link out
    (images / "cat" / "link.png").unlink()
    with pytest.raises(DataError, match=r"secret\.png' is outside the data set"):
        read_any(images)
    (images / "dog").unlink()
    (images / "cat" / "inner.png").symlink_to(images / "cat" / "ok.png")  # inside: fine
    assert len(read_any(images)[0]) == 2
