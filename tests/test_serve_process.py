"""``zoo serve --inference process``: batches run in a child process that loads its own copy
of the model. The same answers as in-process serving, the child's own pid, one-line errors
for a model it cannot load, a 503 for the batch a dead child held and a new child for the
next, the model as the caller holds it (not as it was saved), and no child left behind.
Also the length-sorted chunking of a batch, which now happens only when it saves padding."""
from __future__ import annotations

import json
import os

import httpx
import pytest
import torch

import zoo
from zoo.errors import ZooError
from zoo.serve.uvicorn import run_in_thread
from zoo.serve.batch import run_batch
from zoo.serve.worker import InferenceProcess, InferenceUnavailable

TEXTS = ["a cat on a mat", "dogs", "a much longer sentence about a dog that runs far away"]


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    zoo.registry.reset()
    d = tmp_path_factory.mktemp("serve-process") / "model"
    zoo.create_model("tiny-text-image-clf", labels=["cat", "dog"]).save_pretrained(d)
    return d


@pytest.fixture(scope="module")
def server(folder, tmp_path_factory):
    """``zoo serve DIR --inference process`` as the command builds it (app_from_env)."""
    from zoo.serve.app import app_from_env

    spec = {"model": str(folder), "feedback_db": str(folder.parent / "fb.db"),
            "max_batch": 8, "max_wait_ms": 5, "limits": {}, "api_key": None,
            "runtime": "torch", "mounts": {}, "device": "cpu", "precision": "auto",
            "quantize": None, "batch_threads": None, "inference": "process",
            "hosts": None, "origins": None}
    old = os.environ.get("ZOO_SERVE_APP")
    os.environ["ZOO_SERVE_APP"] = json.dumps(spec)
    try:
        app = app_from_env()
    finally:
        os.environ.pop("ZOO_SERVE_APP") if old is None else \
            os.environ.__setitem__("ZOO_SERVE_APP", old)
    with run_in_thread(app) as srv:
        srv.app = app
        yield srv
    srv.child = app.state.server.closers  # for the test that the child ended


def test_process_serving_answers_as_the_model_does_from_its_own_process(server, folder):
    r = httpx.post(f"{server.url}/predict", json={"inputs": [{"text": t} for t in TEXTS]},
                   timeout=60)
    assert r.status_code == 200, r.text
    expected = zoo.load(folder).predict([{"text": t} for t in TEXTS])
    got = r.json()["outputs"]
    assert [o["label"] for o in got] == [e["label"] for e in expected]
    for o, e in zip(got, expected):
        assert o["score"] == pytest.approx(e["score"], abs=1e-5)
    info = httpx.get(f"{server.url}/info").json()
    assert info["inference"] == "process" and info["device"] == "cpu"
    # bert-tiny, timm-tiny, concat-mlp and classification all allow concurrent forwards
    assert info["batch_threads"] == (2 if _cores() >= 2 else 1)
    assert info["inference_pid"] not in (os.getpid(), None)
    runner = next(iter(server.app.state.lanes.values())).proc
    assert isinstance(runner, InferenceProcess) and runner.alive


def test_a_bad_request_is_a_4xx_and_the_child_keeps_serving(server):
    r = httpx.post(f"{server.url}/predict", timeout=30,
                   json={"inputs": [{"text": "x"}], "parameters": {"top_k": 2}})
    assert r.status_code == 400 and "top_k" in r.json()["error"]
    r = httpx.post(f"{server.url}/predict", json={"inputs": [{"text": "x"}]}, timeout=30)
    assert r.status_code == 200


def test_a_dead_child_fails_its_requests_with_503_and_the_next_gets_a_new_one(folder):
    import asyncio
    import signal

    proc = InferenceProcess({"source": str(folder), "place": {"device": "cpu"}, "chunk": 8,
                             "lanes": ["text"], "max_batch": 8, "max_wait": 0.005})

    async def main():
        first = proc.pid
        out = await proc.submit("text", [{"text": "a cat"}])
        assert out[0]["label"] in ("cat", "dog")
        os.kill(first, signal.SIGSTOP)  # the request reaches a child that cannot answer
        held = asyncio.ensure_future(proc.submit("text", [{"text": "a cat"}]))
        await asyncio.sleep(0.2)
        os.kill(first, signal.SIGKILL)  # and dies holding it
        with pytest.raises(InferenceUnavailable, match="ended .*next request starts a new"):
            await asyncio.wait_for(held, 30)
        # requests arriving together while the new child loads all wait for it: one restart
        outs = await asyncio.gather(*(proc.submit("text", [{"text": t}, {"text": "a dog"}])
                                      for t in ("a cat", "cats", "a kitten", "dogs")))
        assert [len(o) for o in outs] == [2] * 4
        assert proc.pid != first and proc.restarts == 1 and proc.alive

    try:
        asyncio.run(main())
    finally:
        proc.close()
    assert not proc.alive


def test_a_large_request_is_sent_to_the_child_off_the_event_loop_and_its_own_pipe(folder):
    """Decoded images of a few MB go into their lane's pipe from a thread (with one pipe
    sent from the loop, a 50 MB request held the event loop, /health and every text request
    200 ms); small ones from the loop while their pipe is free; one message at a time into
    a pipe, and every answer is the model's."""
    import asyncio
    import threading

    import numpy as np
    from PIL import Image

    from zoo.serve.worker import OFF_LOOP_BYTES, input_bytes

    rng = np.random.default_rng(0)
    big = [{"image": Image.fromarray(rng.integers(0, 255, (900, 900, 3), np.uint8))}
           for _ in range(2)]
    small = [{"text": t} for t in TEXTS]
    assert input_bytes(big) == 2 * 900 * 900 * 3 > OFF_LOOP_BYTES > input_bytes(small)
    assert input_bytes([{"audio": (np.zeros(16000, np.float32), 16000)}]) == 64000
    proc = InferenceProcess({"source": str(folder), "place": {"device": "cpu"}, "chunk": 8,
                             "lanes": ["text", "image"], "max_batch": 8, "max_wait": 0.005})
    sent = []
    assert proc.lanes["text"][0] is not proc.lanes["image"][0]
    for lane, (pipe, lock) in proc.lanes.items():
        def recording(msg, lane=lane, lock=lock, send=pipe.send):
            assert lock.locked()  # never two messages at once into one pipe
            sent.append((lane, threading.current_thread() is threading.main_thread()))
            send(msg)

        pipe.send = recording

    async def main():
        first = await proc.submit("text", small)
        return [first, *await asyncio.gather(proc.submit("image", big),
                                             proc.submit("image", big),
                                             *(proc.submit("text", [x]) for x in small))]

    try:
        outs = asyncio.run(main())
    finally:
        proc.close()
    assert sent[0] == ("text", True) and len(sent) == 6
    assert [on_loop for lane, on_loop in sent if lane == "image"] == [False, False]
    model = zoo.load(folder)
    want = model.predict(small) + model.predict(big) * 2 + model.predict(small)
    got = [o for out in outs for o in out]
    assert [o["label"] for o in got] == [w["label"] for w in want]
    assert [o["score"] for o in got] == pytest.approx([w["score"] for w in want], abs=1e-5)


def test_the_child_serves_the_model_as_held_not_as_saved(folder, tmp_path):
    """A model changed after loading (here its head's bias) is what the child runs: it
    loads a temporary copy of the model as given."""
    from zoo.serve.app import create_app

    model = zoo.load(folder)
    saved = model.predict([{"text": TEXTS[0]}])[0]
    with torch.no_grad():
        bias = [p for n, p in model.head.named_parameters() if n.endswith("bias")][-1]
        bias[model.labels.index(saved["label"])] -= 100.0  # the other label wins now
    want = model.predict([{"text": TEXTS[0]}])[0]["label"]
    assert want != saved["label"]
    app = create_app(model, feedback_db=tmp_path / "fb.db", inference="process")
    with run_in_thread(app) as srv:
        r = httpx.post(f"{srv.url}/predict", json={"inputs": [{"text": TEXTS[0]}]},
                       timeout=60)
        assert r.json()["outputs"][0]["label"] == want
        runner = next(iter(app.state.lanes.values())).proc
    assert not runner.alive  # the server's shutdown ended the child


def test_a_model_the_child_cannot_load_is_one_line(tmp_path):
    with pytest.raises(ZooError) as e:
        InferenceProcess({"source": str(tmp_path / "nowhere"), "place": {}})
    msg = str(e.value)
    assert msg.startswith("the inference process could not load") and "\n" not in msg


def test_an_unknown_inference_mode_is_one_line(folder, tmp_path):
    from zoo.serve.app import create_app

    with pytest.raises(ZooError, match="unknown inference 'fork' .thread or process."):
        create_app(zoo.load(folder), feedback_db=tmp_path / "fb.db", inference="fork")


class Recorder:
    """A model whose predict records the batches it is given."""

    def __init__(self) -> None:
        self.calls: list[list[str]] = []

    def predict(self, inputs, batch_size=32, **options):
        self.calls.append([x["text"] for x in inputs])
        return [{"label": x["text"]} for x in inputs]


def test_a_batch_is_split_by_length_only_when_that_saves_padding():
    alike = [{"text": "x" * n} for n in (20, 22, 19, 21, 20, 23, 18, 22, 21, 20)]
    m = Recorder()
    assert [o["label"] for o in run_batch(m, alike, {}, chunk=4)] == [x["text"] for x in alike]
    assert len(m.calls) == 1  # like lengths: one call
    mixed = [{"text": "x" * n} for n in (300, 2, 3, 290, 1, 2, 310, 3, 2, 1)]
    m = Recorder()
    out = run_batch(m, mixed, {}, chunk=4)
    assert [o["label"] for o in out] == [x["text"] for x in mixed]  # the order kept
    assert [len(c) for c in m.calls] == [4, 4, 2]
    assert max(map(len, m.calls[0])) == 2 and min(map(len, m.calls[-1])) == 300


def test_zoo_serve_batches_in_a_child_for_the_torch_runtime_on_a_cpu_by_default(monkeypatch,
                                                                                capsys):
    from zoo.cli import main
    from zoo.serve.app import resolve_inference

    assert resolve_inference("auto", "torch", "cpu") == "process"
    assert resolve_inference(None, "torch", None) == "process"
    assert resolve_inference("auto", "onnx", "cpu") == "thread"  # ORT runs outside the GIL
    assert resolve_inference("auto", "torch", "cuda:0") == "thread"  # one copy on the GPU
    assert resolve_inference("auto", "torch", "cpu", mounts=True) == "thread"
    assert resolve_inference("thread", "torch", "cpu") == "thread"
    monkeypatch.setenv("ZOO_SERVE_APP", "{}")  # restored after: the command sets it
    with pytest.raises(SystemExit):
        main(["serve", "no-such-model-anywhere", "--port", "1"])
    assert json.loads(os.environ["ZOO_SERVE_APP"])["inference"] == "auto"
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "no-such-model-anywhere" in err


def _cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else \
        (os.cpu_count() or 1)


def _overlap(model):
    """Counts the forwards running at once (each held 1 s): [now, most]."""
    import threading
    import time

    count, lock, real = [0, 0], threading.Lock(), model.forward

    def forward(batch, encoded=None):
        with lock:
            count[0] += 1
            count[1] = max(count[1], count[0])
        time.sleep(1.0)
        try:
            return real(batch, encoded)
        finally:
            with lock:
                count[0] -= 1

    model.forward = forward
    return count


@pytest.mark.parametrize("concurrent", [True, False])
def test_batch_threads_in_the_child_share_the_model_safely(folder, concurrent):
    """SideBySide: two batches at once give model.predict's answers; their forwards overlap
    when every part says ``concurrent_forward``, and run one at a time when one does not."""
    from concurrent.futures import ThreadPoolExecutor

    from zoo.serve.sidebyside import SideBySide, concurrent_forward

    model = zoo.load(folder)
    assert concurrent_forward(model)
    if not concurrent:
        model.head.concurrent_forward = False  # a third-party head that never said so
        assert not concurrent_forward(model)
    inputs = [{"text": t} for t in TEXTS]
    expected = model.predict(inputs)
    runner = SideBySide(model)
    count = _overlap(model)
    with ThreadPoolExecutor(2) as ex:
        outs = list(ex.map(lambda _: runner.predict(inputs, batch_size=8), range(2)))
    assert count[1] == (2 if concurrent else 1)
    for out in outs:
        assert [o["label"] for o in out] == [e["label"] for e in expected]
        for o, e in zip(out, expected):
            assert o["scores"] == pytest.approx(e["scores"], abs=1e-6)


def test_batch_threads_for_torch_are_two_in_the_child_and_one_in_the_server():
    from zoo.serve.app import _inference_threads, batch_threads

    child = {"runtime": "torch", "on_cpu": True, "inference": "process"}
    assert batch_threads(None, cores=2, concurrent=True, **child) == (2, 0)
    assert batch_threads(None, cores=2, concurrent=False, **child) == (1, 0)
    assert batch_threads(None, cores=1, concurrent=True, **child) == (1, 0)
    assert batch_threads(3, cores=2, **child) == (3, 0)
    assert batch_threads(None, "torch", False, cores=8, inference="process",
                         concurrent=True) == (1, 0)  # a GPU: one batch at a time
    assert batch_threads(None, "torch", True, cores=4) == (1, 3)  # in the server process
    with pytest.raises(ZooError, match="in a child process"):
        batch_threads(2, "torch", True, cores=2)
    assert _inference_threads(2, 2) == 1 and _inference_threads(16, 2) == 7
    assert _inference_threads(16) == 15


def test_predict_options_and_other_predicts_run_whole_under_both_locks(folder):
    """An option goes to model.predict whole (its checks and one-line errors), as does a
    model whose class predicts its own way."""
    from zoo.serve.sidebyside import SideBySide

    model = zoo.load(folder)
    runner = SideBySide(model)
    with pytest.raises(ZooError) as e:
        runner.predict([{"text": "a cat"}], nonsense=1)
    with pytest.raises(ZooError) as ref:
        model.predict([{"text": "a cat"}], nonsense=1)
    assert str(e.value) == str(ref.value)
    assert not runner.python.locked()  # released after the error

    class Own(type(model)):
        def predict(self, inputs, batch_size=32, **options):
            return [{"label": "own"} for _ in inputs]

    model.__class__ = Own
    assert SideBySide(model).predict([{"text": "a cat"}]) == [{"label": "own"}]
