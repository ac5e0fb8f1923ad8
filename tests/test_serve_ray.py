"""Serving replicas on Ray Serve (a local Ray cluster on 127.0.0.1): two replicas answer the
same predictions as `zoo serve` on the same model."""
from __future__ import annotations

import socket

import httpx
import pytest

import zoo
from zoo.serve.uvicorn import run_in_thread
from zoo.serve.app import create_app

ray = pytest.importorskip("ray")


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_two_ray_serve_replicas_answer_as_zoo_serve(tmp_path):
    from ray import serve

    from zoo.serve.ray import deployment

    model = zoo.create_model("tiny-text-image-clf", labels=["cat", "dog"])
    folder = model.save_pretrained(tmp_path / "m")
    texts = [f"a {'cat' if i % 3 else 'dog'} number {i}" for i in range(12)]
    body = {"inputs": [{"text": t} for t in texts]}
    with run_in_thread(create_app(zoo.load(folder), feedback_db=tmp_path / "fb.db")) as srv:
        expected = httpx.post(f"{srv.url}/predict", json=body, timeout=60).json()["outputs"]
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
        serve.run(deployment(str(folder), replicas=2), route_prefix="/", name="zoo")
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
    finally:
        serve.shutdown()
        ray.shutdown()
