"""Serving replicas on Ray Serve (a local Ray cluster on 127.0.0.1): two replicas answer the
same predictions as `zoo serve` on the same model, and a replica's request handler makes the
checks `zoo serve`'s guard makes (Host, Origin, key, a body bounded while read, JSON depth)."""
from __future__ import annotations

import asyncio
import json
import socket
from types import SimpleNamespace

import httpx
import pytest

import zoo
from zoo.errors import ZooError
from zoo.serve.guard import allow_lists
from zoo.serve.limits import Limits
from zoo.serve.uvicorn import run_in_thread
from zoo.serve.app import create_app


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _replica(model, db=None, **checks):
    """What ``_answer`` reads of a Ray replica, without a Ray cluster."""
    from zoo.serve.ray import replica_server, run_requests

    hosts, origins = allow_lists(checks.get("hosts", ("127.0.0.1", "localhost")),
                                 checks.get("origins", ()))

    async def predict(inputs, options=None):
        out = run_requests(model, [(inputs, dict(options or {}))])[0]
        if isinstance(out, BaseException):
            raise out
        return out

    server = replica_server(model, Limits(max_json_depth=8), {
        "max_body": checks.get("max_body", 4096), "feedback_db": str(db or ":memory:")})
    return SimpleNamespace(server=server, model=model, key=checks.get("key"), hosts=hosts,
                           origins=origins, _predict=predict)


def _ask(replica, body: bytes, *, path="/predict", method="POST", headers=(), chunk=None):
    """One request through ``_answer``: the body sent in chunks of ``chunk`` bytes with no
    Content-Length (chunked framing), else whole with its length. Returns (status, json)."""
    from starlette.requests import Request

    from zoo.serve.ray import _answer

    sent = {"host": "127.0.0.1:8000", "content-type": "application/json", **dict(headers)}
    if chunk is None:
        sent.setdefault("content-length", str(len(body)))
    parts = [body[i:i + chunk] for i in range(0, len(body), chunk)] if chunk else [body]
    reads = [0]

    async def receive():
        i = reads[0]
        reads[0] += 1
        return {"type": "http.request", "body": parts[i] if i < len(parts) else b"",
                "more_body": i < len(parts) - 1}

    scope = {"type": "http", "method": method, "path": path, "query_string": b"",
             "root_path": "", "scheme": "http", "server": ("127.0.0.1", 8000),
             "headers": [(k.encode(), v.encode()) for k, v in sent.items()]}
    scope["client"] = ("127.0.0.1", 50000)
    out = asyncio.run(_answer(replica, Request(scope, receive)))
    if isinstance(out, dict):
        return 200, out, reads[0]
    return out.status_code, json.loads(out.body), reads[0]


def test_a_ray_replica_makes_the_checks_zoo_serve_makes():
    model = zoo.create_model("tiny-text-image-clf", labels=["cat", "dog"])
    replica = _replica(model, key=b"k3y")
    key = {"authorization": "Bearer k3y"}
    ok = json.dumps({"inputs": [{"text": "a cat"}, {"text": "a dog"}]}).encode()
    status, got, _ = _ask(replica, ok, headers=key)
    assert status == 200 and [o["label"] for o in got["outputs"]] == \
        [o["label"] for o in model.predict([{"text": "a cat"}, {"text": "a dog"}])]
    # the same request, chunked: answered the same
    assert _ask(replica, ok, headers=key, chunk=7)[:2] == (status, got)
    # DNS rebinding: a page's own name in Host, refused before the key is even looked at
    status, got, _ = _ask(replica, ok, headers={"host": "evil.example:8000"})
    assert status == 421 and "evil.example" in got["error"] and "--allow-host" in got["error"]
    assert _ask(replica, b"", path="/health", method="GET",
                headers={"host": "evil.example"})[0] == 421
    status, got, _ = _ask(replica, ok, headers={**key, "origin": "https://evil.example"})
    assert status == 403 and "cross-site" in got["error"]
    assert _ask(replica, ok)[0] == 401
    # a declared length over the bound: refused without reading a byte
    big = json.dumps({"inputs": [{"text": "x" * 5000}]}).encode()
    status, got, reads = _ask(replica, big, headers=key)
    assert (status, reads) == (413, 0) and "4096 bytes" in got["error"]
    # chunked, no length: refused once the bytes read pass the bound, not after the whole body
    status, got, reads = _ask(replica, big * 4, headers=key, chunk=1024)
    assert status == 413 and reads == 5
    deep = json.dumps({"inputs": [{"text": "a"}], "x": [[[[[[[[[[1]]]]]]]]]]}).encode()
    status, got, _ = _ask(replica, deep, headers=key)
    assert status == 422 and "nested deeper than 8" in got["error"]
    # the allow-lists as given: another name, a page of an allowed origin
    other = _replica(model, hosts=("models.example",), origins=("https://app.example/",))
    status, got, _ = _ask(other, ok, headers={"host": "Models.Example:443",
                                              "origin": "https://app.example"})
    assert status == 200 and len(got["outputs"]) == 2


def test_a_ray_replica_takes_every_verb_zoo_serve_takes(tmp_path):
    """Parity: /feedback (stored, read back as training data), /explain, /info and predict
    parameters are answered by zoo serve's own code on a replica; /metrics says why not."""
    from zoo.io.feedback import FeedbackStore

    model = zoo.create_model("tiny-text-image-clf", labels=["cat", "dog"])
    replica = _replica(model, db=tmp_path / "fb.db", max_body=1 << 20)
    post = json.dumps({"input": {"text": "a cat"}, "prediction": {"label": "dog"},
                       "correction": "cat"}).encode()
    status, got, _ = _ask(replica, post, path="/feedback")
    assert status == 200 and isinstance(got["id"], int)
    rows = FeedbackStore(tmp_path / "fb.db").rows()
    assert [(r["input"], r["correction"]) for r in rows] == [({"text": "a cat"}, "cat")]
    wrong = json.dumps({"input": {"text": "a cat"}, "correction": "bird"}).encode()
    status, got, _ = _ask(replica, wrong, path="/feedback")
    assert status == 422 and "bird" in got["error"]
    status, got, _ = _ask(replica, b"", path="/info", method="GET")
    assert status == 200 and got["task"] == "classification" and got["backend"] == "ray"
    ask = json.dumps({"inputs": [{"text": "a cat on a mat"}],
                      "parameters": {"max_units": 8}}).encode()
    status, got, _ = _ask(replica, ask, path="/explain")
    assert status == 200 and got["explanations"][0]["units"]
    bad = json.dumps({"inputs": [{"text": "a cat"}], "parameters": {"top_k": 2}}).encode()
    status, got, _ = _ask(replica, bad)
    assert status == 400 and "top_k" in got["error"]
    status, got, _ = _ask(replica, b"", path="/metrics", method="GET")
    assert status == 404 and "Ray Serve's own" in got["error"]


def test_a_ray_batch_runs_requests_of_like_options_together_and_fails_one_alone():
    from zoo.serve.ray import run_requests

    class Recorder:
        calls: list = []

        def predict(self, inputs, batch_size=32, **options):
            self.calls.append(([x["text"] for x in inputs], options))
            if any(x["text"] == "bad" for x in inputs):
                raise ZooError("a bad input")
            return [{"label": x["text"], **options} for x in inputs]

    m = Recorder()
    out = run_requests(m, [([{"text": "a"}], {}), ([{"text": "b"}], {"k": 1}),
                           ([{"text": "c"}, {"text": "d"}], {}), ([{"text": "bad"}], {"k": 1})])
    assert out[0] == [{"label": "a"}] and out[2] == [{"label": "c"}, {"label": "d"}]
    assert out[1] == [{"label": "b", "k": 1}] and isinstance(out[3], ZooError)
    assert m.calls[0] == (["a", "c", "d"], {})  # like options: one call


@pytest.mark.slow
def test_two_ray_serve_replicas_answer_as_zoo_serve(tmp_path):
    ray = pytest.importorskip("ray")
    from ray import serve

    from zoo.serve.ray import deployment

    model = zoo.create_model("tiny-text-image-clf", labels=["cat", "dog"])
    folder = model.save_pretrained(tmp_path / "m")
    texts = [f"a {'cat' if i % 3 else 'dog'} number {i}" for i in range(12)]
    body = {"inputs": [{"text": t} for t in texts]}
    with run_in_thread(create_app(zoo.load(folder), feedback_db=tmp_path / "fb.db")) as srv:
        expected = httpx.post(f"{srv.url}/predict", json=body, timeout=60).json()["outputs"]
    with run_in_thread(create_app(zoo.load(folder), feedback_db=tmp_path / "fb8.db",
                                  quantize="int8", inference="thread")) as srv:
        expected8 = httpx.post(f"{srv.url}/predict", json=body, timeout=60).json()["outputs"]
    port = _port()
    # Ray's own readiness waits (5-10 s) must not fail the test on a loaded machine: the
    # test is about answers, not speed
    patient = {f"RAY_SERVE_{k}": "300" for k in (
        "PROXY_READY_CHECK_TIMEOUT_S", "PROXY_HEALTH_CHECK_TIMEOUT_S",
        "DEPLOYMENT_ACTOR_HEALTH_CHECK_TIMEOUT_S")}
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {"HF_HUB_OFFLINE": "1", **patient}})
    try:
        serve.start(http_options={"host": "127.0.0.1", "port": port})
        serve.run(deployment(str(folder), replicas=2, feedback_db=tmp_path / "ray-fb.db"),
                  route_prefix="/", name="zoo")
        status = serve.status().applications["zoo"]
        replicas = next(iter(status.deployments.values())).replica_states
        assert replicas.get("RUNNING") == 2
        url = f"http://127.0.0.1:{port}"
        got = httpx.post(f"{url}/predict", json=body, timeout=60).json()["outputs"]
        assert [o["label"] for o in got] == [o["label"] for o in expected]
        assert [o["score"] for o in got] == pytest.approx([o["score"] for o in expected],
                                                          abs=1e-5)
        kserve = httpx.post(f"{url}/predict", json={"instances": texts[:2]}, timeout=60)
        assert [o["label"] for o in kserve.json()["predictions"]] == \
            [o["label"] for o in expected[:2]]
        bad = httpx.post(f"{url}/predict", json={"inputs": [{"image": 3}]}, timeout=60)
        assert bad.status_code == 400 and "must be a string" in bad.json()["error"]
        assert httpx.get(f"{url}/health", timeout=30).json() == {"status": "ok"}
        fb = httpx.post(f"{url}/feedback", json={"input": {"text": "a cat"},
                                                  "correction": "cat"}, timeout=60)
        assert fb.status_code == 200, fb.text
        from zoo.io.feedback import FeedbackStore

        assert [r["id"] for r in FeedbackStore(tmp_path / "ray-fb.db").rows()] == \
            [fb.json()["id"]]
        assert httpx.get(f"{url}/info", timeout=30).json()["backend"] == "ray"
        # int8 replicas (each quantizes its own copy) answer as zoo serve --quantize int8
        serve.run(deployment(str(folder), replicas=1, quantize="int8",
                             feedback_db=tmp_path / "ray-fb8.db"),
                  route_prefix="/int8", name="zoo-int8")
        got8 = httpx.post(f"{url}/int8/predict", json=body, timeout=60).json()["outputs"]
        assert [o["score"] for o in got8] == pytest.approx([o["score"] for o in expected8],
                                                           abs=1e-5)
        assert httpx.get(f"{url}/int8/info", timeout=30).json()["precision"] == "int8"
        with pytest.raises(ZooError, match="not device cuda"):
            deployment(str(folder), quantize="int8", device="cuda")
        # the guard's checks on the real proxy: a Host not served, a body over the bound
        assert httpx.get(f"{url}/health", headers={"host": "evil.example"},
                         timeout=30).status_code == 421
        over = httpx.post(f"{url}/predict", content=b"{" + b" " * (21 << 20) + b"}",
                          headers={"content-type": "application/json"}, timeout=60)
        assert over.status_code == 413
    finally:
        serve.shutdown()
        ray.shutdown()
