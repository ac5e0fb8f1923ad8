"""What ``zoo serve`` does for speed: ``--quantize int8`` (ONNX Runtime on an int8 graph,
quantized once and sealed in the cache; the same labels as fp32 where fp32 is sure) and
``--batch-threads`` (ONNX Runtime batches side by side: the same outputs, in order, and
tokenizers never shared between threads); each bad value is one line."""
from __future__ import annotations

import asyncio
import os
import threading
import time
from pathlib import Path

import pytest
from starlette.testclient import TestClient

import zoo
from zoo.errors import ZooError
from zoo.serve.app import batch_threads, create_app
from zoo.serve.batch import MicroBatcher
from zoo.serve.onnx import TOLERANCE_INT8, OnnxRunner

TEXTS = ["a tabby cat asleep on the sofa", "dog", "two dogs chase a ball across the park",
         "the cat", "a very small dog with a very loud bark, barking at the postman",
         "cats", "a puppy", "the kitten and the dog share a basket by the fire"]


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    """A text classifier with a head that is sure of itself (its weights scaled up), so
    fp32's labels are not a coin toss that int8 could flip."""
    import torch

    import zoo.registry.manager

    zoo.registry.reset()
    d = tmp_path_factory.mktemp("speed") / "model"
    torch.manual_seed(0)  # random weights: the same ones every run
    m = zoo.create_model("tiny-text-image-clf", labels=["cat", "dog", "bird"])
    with torch.no_grad():
        for p in m.head.parameters():
            p.mul_(8)
    m.save_pretrained(d)
    return zoo.load(d)


def _inputs(photo):
    import base64

    img = base64.b64encode(photo.read_bytes()).decode()
    return [{"text": t, "image": img} for t in TEXTS]


def test_int8_runtime_gives_the_fp32_labels(model, photo, tmp_path):
    inputs = _inputs(photo)
    out = {}
    for name, kw in (("fp32", {}), ("int8", {"quantize": "int8"})):
        app = create_app(model, feedback_db=tmp_path / f"{name}.db", runtime="onnx", **kw)
        with TestClient(app, base_url="http://127.0.0.1") as c:
            r = c.post("/predict", json={"inputs": inputs})
            assert r.status_code == 200, r.text
            out[name] = r.json()["outputs"]
            info = c.get("/info").json()
        assert info["precision"] == name and info["runtime"] == "onnx"
    worst = max(abs(a["scores"][k] - b["scores"][k])
                for a, b in zip(out["int8"], out["fp32"]) for k in a["scores"])
    assert 0 < worst < 0.05  # int8: scores move a little
    sure = 0
    for a, b in zip(out["int8"], out["fp32"]):
        top = sorted(b["scores"].values(), reverse=True)
        if top[0] - top[1] > 2 * worst:  # fp32 is sure beyond what int8 moves: same label
            assert a["label"] == b["label"]
            sure += 1
    assert sure >= len(TEXTS) // 2


def test_int8_graph_is_quantized_once_sealed_and_remade_when_edited(model, tmp_path):
    first = OnnxRunner(model, cache_dir=tmp_path, quantize="int8")
    assert first.path.name == "model.int8.onnx" and first.quantize == "int8"
    assert 0 < first.max_logit_diff <= TOLERANCE_INT8
    names = sorted(p.name for p in first.path.parent.iterdir())
    assert names == ["model.int8.onnx", "model.int8.onnx.zoo-seal", "model.onnx",
                     "model.onnx.zoo-seal"]  # no temporary file left
    stamp = first.path.stat().st_mtime_ns
    time.sleep(0.01)
    again = OnnxRunner(model, cache_dir=tmp_path, quantize="int8")
    assert again.path == first.path and first.path.stat().st_mtime_ns == stamp
    with first.path.open("ab") as f:  # edited (or planted): its seal fails, made again
        f.write(b"\0")
    with pytest.warns(UserWarning, match="not the graph zoo quantized"):
        OnnxRunner(model, cache_dir=tmp_path, quantize="int8")
    assert first.path.stat().st_mtime_ns != stamp


def test_two_batch_threads_give_the_same_outputs_in_order(model, photo, tmp_path):
    from concurrent.futures import ThreadPoolExecutor

    inputs = _inputs(photo)
    ref = OnnxRunner(model).predict([{"text": t, "image": photo} for t in TEXTS])
    app = create_app(model, feedback_db=tmp_path / "f.db", runtime="onnx", batch_threads=2,
                     max_wait_ms=1)
    with TestClient(app, base_url="http://127.0.0.1") as c:
        assert c.get("/info").json()["batch_threads"] == 2
        # many small concurrent requests: batches run side by side, each tokenized alone
        with ThreadPoolExecutor(8) as pool:
            got = list(pool.map(lambda k: c.post("/predict", json={"inputs": [
                inputs[k % len(inputs)], inputs[(k + 1) % len(inputs)]]}), range(40)))
    for k, r in enumerate(got):
        assert r.status_code == 200, r.text
        want = [ref[k % len(inputs)], ref[(k + 1) % len(inputs)]]
        assert [o["label"] for o in r.json()["outputs"]] == [w["label"] for w in want]
        assert all(abs(o["score"] - w["score"]) < 1e-3
                   for o, w in zip(r.json()["outputs"], want))


def test_micro_batcher_runs_batches_side_by_side():
    """Two workers: a second batch starts while the first runs; answers go to their own
    requests."""
    running, peak, lock = [0], [0], threading.Lock()

    class Slow:
        def predict(self, inputs, batch_size=32, **options):
            with lock:
                running[0] += 1
                peak[0] = max(peak[0], running[0])
            time.sleep(0.05)
            with lock:
                running[0] -= 1
            return [{"echo": x["text"]} for x in inputs]

    async def main(workers):
        b = MicroBatcher(Slow(), max_batch=2, max_wait_ms=1, workers=workers)
        await b.start()
        try:
            return await asyncio.gather(*(b.submit([{"text": str(i)}]) for i in range(8)))
        finally:
            await b.stop()

    for workers, want in ((1, 1), (2, 2)):
        peak[0] = 0
        out = asyncio.run(main(workers))
        assert [o[0]["echo"] for o in out] == [str(i) for i in range(8)]
        assert peak[0] == want


def test_a_busy_batcher_gathers_the_next_batch_while_one_runs():
    """While the batch thread is busy, requests gather into the next batch; it goes as soon
    as the thread is free, not after another ``max_wait`` (the model never idles through
    a wait while requests are queued). A request that finds the batcher idle, with nothing
    queued behind it, runs at once; one that comes while a batch runs waits ``max_wait``
    for company."""
    calls: list[tuple[float, float, list[str]]] = []

    class Slow:
        def predict(self, inputs, batch_size=32, **options):
            t = time.perf_counter()
            time.sleep(0.3)
            calls.append((t, time.perf_counter(), [x["text"] for x in inputs]))
            return [{"echo": x["text"]} for x in inputs]

    async def main():
        b = MicroBatcher(Slow(), max_batch=8, max_wait_ms=200)
        await b.start()
        try:
            sent.append(time.perf_counter())
            first = asyncio.ensure_future(b.submit([{"text": "a"}]))
            await asyncio.sleep(0.05)  # "a" runs from 0 s to 0.3 s
            later = [asyncio.ensure_future(b.submit([{"text": t}])) for t in "bc"]
            await asyncio.sleep(0.02)
            later.append(asyncio.ensure_future(b.submit([{"text": "d"}])))
            return await asyncio.gather(first, *later)
        finally:
            await b.stop()

    sent: list[float] = []
    out = asyncio.run(main())
    assert [o[0]["echo"] for o in out] == list("abcd")
    assert [c[2] for c in calls] == [["a"], ["b", "c", "d"]]
    assert calls[0][0] - sent[0] < 0.15  # idle, nothing behind it: it went at once (not 0.2 s)
    assert calls[1][0] - calls[0][1] < 0.1  # busy: the next batch went when the thread freed

    async def two_threads():
        calls.clear()
        b = MicroBatcher(Slow(), max_batch=8, max_wait_ms=200, workers=2)
        await b.start()
        try:
            first = asyncio.ensure_future(b.submit([{"text": "a"}]))
            await asyncio.sleep(0.05)  # "a" runs; the second thread is free
            later = [asyncio.ensure_future(b.submit([{"text": t}])) for t in "bc"]
            return await asyncio.gather(first, *later)
        finally:
            await b.stop()

    out = asyncio.run(two_threads())
    assert [o[0]["echo"] for o in out] == list("abc")
    # "b" found a batch running: it waited for company, and "c" joined it
    assert sorted(c[2] for c in calls) == [["a"], ["b", "c"]]


def test_batch_threads_defaults():
    assert batch_threads(None, "onnx", on_cpu=True, cores=2) == (2, 1)
    assert batch_threads(None, "onnx", on_cpu=True, cores=16) == (2, 8)
    assert batch_threads(None, "onnx", on_cpu=True, cores=1) == (1, 1)
    assert batch_threads(None, "onnx", on_cpu=False, cores=8) == (1, 8)
    assert batch_threads(3, "onnx", on_cpu=True, cores=2) == (3, 1)
    # torch: one batch, over every core but the event loop's on a CPU
    assert batch_threads(None, "torch", on_cpu=True, cores=2) == (1, 1)
    assert batch_threads(None, "torch", on_cpu=True, cores=16) == (1, 15)
    assert batch_threads(None, "torch", on_cpu=False, cores=8) == (1, 8)


def test_a_zoo_serve_process_keeps_a_core_for_the_event_loop(monkeypatch):
    import sys

    import torch

    import zoo.serve.app as app

    before = (sys.getswitchinterval(), torch.get_num_threads())
    monkeypatch.setattr(app, "_TUNED", False)
    try:
        app.tune_process("torch", "cpu")
        assert sys.getswitchinterval() == pytest.approx(0.0005)
        assert torch.get_num_threads() == max(1, before[1] - 1)
        app.tune_process("torch", "cpu")  # once a process: not one core fewer each call
        assert torch.get_num_threads() == max(1, before[1] - 1)
    finally:
        sys.setswitchinterval(before[0])
        torch.set_num_threads(before[1])


@pytest.mark.parametrize("kw,msg", [
    ({"runtime": "onnx", "quantize": "int4"}, "unknown quantization 'int4' (int8)"),
    ({"runtime": "onnx", "batch_threads": 0}, "--batch-threads must be a whole number from 1"),
    ({"batch_threads": 2}, "--batch-threads 2 runs batches side by side in a child process"),
])
def test_bad_values_are_one_line(model, tmp_path, kw, msg):
    with pytest.raises(ZooError) as e:
        create_app(model, feedback_db=tmp_path / "f.db", **kw)
    assert str(e.value).startswith(msg) and "\n" not in str(e.value)


@pytest.mark.parametrize("args,msg", [
    (["--runtime", "onnx", "--backend", "ray"], "--runtime onnx runs with --backend uvicorn"),
    (["--quantize", "int4"], "'int4' is not 'int8'"),
    (["--batch-threads", "0"], "0 is not in the range"),
    (["--batch-threads", "2", "--inference", "thread"], "--batch-threads: 2 batches side by "
                                                        "side run in a child process"),
])
def test_cli_bad_values_are_one_line(args, msg, monkeypatch, capsys):
    from zoo.cli import main

    monkeypatch.delenv("ZOO_SERVE_BATCH_THREADS", raising=False)
    monkeypatch.setenv("ZOO_SERVE_APP", "{}")  # restored after, should the command set it
    with pytest.raises(SystemExit) as e:
        main(["serve", "tiny-text-image-clf", "--port", "1", *args])
    err = capsys.readouterr().err.strip()
    assert e.value.code == 2
    assert err.splitlines()[-1].startswith("Error: Invalid value for") and \
        msg in err.splitlines()[-1]
