"""Inference in a process of its own: the server's batches go through pipes to a child
process that holds the model and runs them, as LitServe does.

Why: in one process, the event loop (HTTP, JSON, request checks) and the batch thread
share one interpreter lock. Tokenizing, collating and decoding a batch hold it, and
the event loop, which took ~60 % of a core under 32 clients, kept it from the batch
thread (py-spy). In a child the batch runs beside the event loop, not between its steps.
What it costs: the model is loaded twice (the server keeps its copy for ``/explain``,
``/info`` and the request checks), the child's start-up, and pickling each batch's
inputs and outputs through pipes (microseconds for text; an image batch is copied once).
Each lane has its own pipe into the child, and a large request is sent from a thread: with
one pipe, 50 MB of decoded pixels took 200 ms to send, and held the event loop (``/health``,
every other request's reading) and every text request behind it that long.

The child is a fresh interpreter (a fork of a process that has run torch's thread pools can hang),
loads the model from its folder (a model without one is saved to a temporary folder
first), and batches the requests the server streams to it itself (one queue per lane, as
LitServe's worker collates its own batches). It ends when the server closes the pipe or
exits (the pipe closes with it)."""
from __future__ import annotations

import queue
import threading
from pathlib import Path
from typing import Any

from zoo.errors import ZooError
from zoo.serve.batch import answer

__all__ = ["InferenceProcess", "InferenceUnavailable", "device_info", "input_bytes"]

START_SECONDS = 600.0  # a large model's load on a slow disk
#: a request whose decoded inputs are larger is pickled and sent from a thread, not the
#: event loop (1 MB: ~4 ms of pickling and copying into the pipe)
OFF_LOOP_BYTES = 1 << 20


class InferenceUnavailable(ZooError):
    """The inference process is gone (killed, out of memory, crashed): the batch it was
    running gets a 503, and the next batch starts a new one."""


class InferenceProcess:
    """A child process that loads the model described by ``spec`` and batches the requests
    streamed to it itself, as LitServe's worker does: a finished batch is followed at once
    by the requests queued meanwhile, without waiting for the server's event loop.
    ``spec``: ``source`` (a folder or name :func:`zoo.load` takes), ``place`` (its keyword
    arguments: device, precision, quantize), ``runtime`` (``"torch"`` or ``"onnx"``),
    ``onnx`` (:class:`OnnxRunner`'s keyword arguments), ``torch_threads`` (the child's
    intra-op threads, None: torch's default), ``chunk`` (:func:`run_batch`), ``lanes``
    (one queue each: a slow modality never delays a fast one), ``workers`` (batch threads
    per lane), ``max_batch`` and ``max_wait`` (seconds). Raises :class:`ZooError` with the
    child's one line when it cannot load. A child that dies fails the requests it held
    (:class:`InferenceUnavailable`, a 503) and is started again for the next one."""

    def __init__(self, spec: dict[str, Any], start_seconds: float = START_SECONDS) -> None:
        import itertools

        self.spec, self.start_seconds = spec, start_seconds
        self.pending: dict[int, tuple[int, Any, Any]] = {}  # id -> (generation, loop, future)
        self.ids = itertools.count()
        self.generation, self.restarts = 0, 0
        self.metrics: Any = None  # zoo.serve.state.Metrics: the child's batch sizes
        self.restart_lock = threading.Lock()
        self.conn: Any = None  # the child's "ready" and its answers
        self.lanes: dict[str, tuple[Any, Any]] = {}  # lane -> (its pipe in, its send lock)
        self._start()

    def _start(self) -> None:
        import json
        import os
        import socket
        import subprocess
        import sys
        from multiprocessing.connection import Connection

        spec = self.spec
        mine, theirs = socket.socketpair()
        # one pipe per lane for its requests: a large image request in one never queues a
        # text request behind it
        pairs = {name: socket.socketpair() for name in spec.get("lanes") or ["default"]}
        # a fresh interpreter running this module (not multiprocessing's spawn, which
        # imports the caller's __main__ again: a script without a __main__ guard would
        # start a second server); the pipes are socket pairs it inherits
        env = {**os.environ, "ZOO_INFERENCE_SPEC": json.dumps(spec),
               "ZOO_INFERENCE_FD": str(theirs.fileno()),
               "ZOO_INFERENCE_LANE_FDS": json.dumps({n: b.fileno() for n, (_, b) in
                                                     pairs.items()})}
        proc = subprocess.Popen([sys.executable, "-m", "zoo.serve.worker"], env=env,
                                pass_fds=[theirs.fileno(), *(b.fileno() for _, b in
                                                             pairs.values())],
                                stdin=subprocess.DEVNULL)
        theirs.close()  # the child's ends live in the child only: its exit closes ours
        for _, b in pairs.values():
            b.close()
        conn = Connection(mine.detach())
        lanes = {n: (Connection(a.detach()), threading.Lock()) for n, (a, _) in pairs.items()}
        try:
            ready = conn.poll(self.start_seconds)
            status, payload = conn.recv() if ready else ("error", None)
        except (EOFError, OSError):
            status, payload = "error", None
        if status != "ready":
            for c in [conn, *(c for c, _ in lanes.values())]:
                c.close()
            _end(proc)
            raise ZooError(payload or (
                f"the inference process did not load {spec.get('source')} in "
                f"{self.start_seconds:g} s" if proc.returncode is None else
                f"the inference process ended while loading {spec.get('source')} (exit "
                f"code {proc.returncode}; its log is above)"))
        self.info: dict[str, Any] = payload
        # requests go to the new child from here on (not while it loads: they would meet
        # the old, closed pipe)
        self.generation += 1
        self.proc, self.conn, self.lanes = proc, conn, lanes
        threading.Thread(target=self._read, args=(conn, self.generation, proc),
                         name="zoo-inference-reader", daemon=True).start()

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None

    async def submit(self, lane: str, inputs: list[dict[str, Any]],
                     options: dict[str, Any] | None = None) -> list[Any]:
        """The outputs for ``inputs``, batched in the child with other requests of
        ``lane``."""
        import asyncio
        import time

        loop = asyncio.get_running_loop()
        if not self.alive:  # died since the last request: a new child (off the event loop)
            await loop.run_in_executor(None, self._restart_if_gone)
        rid = next(self.ids)
        fut = loop.create_future()
        self.pending[rid] = (self.generation, loop, fut)
        msg = (inputs, rid, dict(options or {}), time.monotonic())
        pipe, lock = self.lanes[lane]
        try:  # small and the lane's pipe free: sent here; else from a thread, the loop free
            if input_bytes(inputs) < OFF_LOOP_BYTES and lock.acquire(blocking=False):
                try:
                    pipe.send(msg)
                finally:
                    lock.release()
            else:
                await loop.run_in_executor(None, _send, pipe, lock, msg)
        except OSError:
            self.pending.pop(rid, None)
            raise InferenceUnavailable("the inference process ended; the next request "
                                       "starts a new one") from None
        try:
            return await fut
        finally:
            self.pending.pop(rid, None)

    def lane(self, name: str) -> "_Lane":
        return _Lane(self, name)

    def _read(self, conn: Any, generation: int, proc: Any) -> None:
        """The parent's reader thread: each message is one batch's answers; the event
        loop gets them in one call. When the child is gone, its requests fail."""
        while True:
            try:
                answers, sizes = conn.recv()
            except (EOFError, OSError):
                break
            if self.metrics:
                for n in sizes:
                    self.metrics.batch(n)
            settle = [(self.pending.get(rid), ok, out) for rid, ok, out in answers]
            for loop in {p[1] for p, _, _ in settle if p}:
                answer(loop, [(p[2], ok, out) for p, ok, out in settle if p and p[1] is loop])
        code = proc.wait()
        err = InferenceUnavailable(f"the inference process ended (exit code {code}) with "
                                   f"this request; the next request starts a new one")
        for g, loop, fut in [p for p in list(self.pending.values()) if p[0] == generation]:
            answer(loop, [(fut, False, err)])

    def _restart_if_gone(self) -> None:
        with self.restart_lock:
            if self.alive:  # another request restarted it
                return
            self._close_pipes()
            self.restarts += 1
            try:
                self._start()
            except ZooError as e:
                raise InferenceUnavailable(str(e)) from None

    def close(self, timeout: float = 5.0) -> None:
        """Ends the child: its pipes closed (it leaves when the other end is gone), then
        terminated if it is still there after ``timeout`` seconds."""
        self._close_pipes()
        _end(self.proc, timeout)

    def _close_pipes(self) -> None:
        for c in [self.conn, *(c for c, _ in self.lanes.values())]:
            try:
                if c is not None:
                    c.close()
            except OSError:
                pass


def _send(pipe: Any, lock: Any, msg: Any) -> None:
    with lock:
        pipe.send(msg)


def input_bytes(inputs: list[dict[str, Any]]) -> int:
    """About how many bytes ``inputs`` pickle to (text by length, arrays and tensors by
    ``nbytes``, a PIL image by its pixels)."""
    from zoo.explanation.perturb import value_bytes

    return value_bytes(inputs)


def _end(proc: Any, timeout: float = 5.0) -> None:
    """Waits ``timeout`` seconds for ``proc`` to leave, then terminates it."""
    import subprocess

    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.terminate()
        proc.wait(timeout)


class _Lane:
    """One modality's queue in the child, as the routes see a lane (``submit``)."""

    def __init__(self, proc: InferenceProcess, name: str) -> None:
        self.proc, self.name = proc, name

    async def start(self) -> None:
        pass

    async def stop(self) -> None:
        pass

    async def submit(self, inputs: list[dict[str, Any]],
                     options: dict[str, Any] | None = None) -> list[Any]:
        return await self.proc.submit(self.name, inputs, options)


def device_info(model: Any, onnx: Any = None) -> dict[str, Any]:
    """Where the model's tensors run, for ``GET /info``: the torch device and precision,
    or ONNX Runtime's execution provider."""
    from zoo.devices import inference_precision

    if onnx is not None:
        return {"device": "cuda" if onnx.on_gpu else "cpu",
                "precision": "int8" if onnx.quantize else "fp32",
                "providers": onnx.providers}
    return {"device": str(model.device),
            "precision": getattr(model, "quantized", None)
            or inference_precision(model.precision, model.device)}


def _child(spec: dict[str, Any], conn: Any, pipes: dict[str, Any]) -> None:
    """The child: load, say ready (or the one-line reason it could not), then read each
    lane's pipe (``pipes``) into its queue, served by its batch threads, until the server
    closes the pipes or exits."""
    import os
    import queue

    try:
        runner, info = _load(spec)
    except BaseException as e:  # noqa: BLE001  (whatever stops the load goes back as a line)
        msg = str(e).strip().splitlines()[0][:300] if str(e).strip() else type(e).__name__
        conn.send(("error", f"the inference process could not load "
                            f"{spec.get('source')}: {msg}"))
        return
    conn.send(("ready", info))
    from zoo.serve.batch import Running

    send = threading.Lock()
    for pipe in pipes.values():
        q: Any = queue.Queue()
        running = Running()  # the lane's batches running now
        for _ in range(max(1, int(spec.get("workers") or 1))):
            threading.Thread(target=_batches, args=(runner, q, conn, send, spec, running),
                             daemon=True).start()
        threading.Thread(target=_requests, args=(pipe, q), daemon=True).start()
    try:
        conn.recv()  # the server sends nothing here: this returns when it is gone
    except (EOFError, OSError):
        pass
    os._exit(0)  # the server is gone: so are its requests


def _requests(pipe: Any, q: Any) -> None:
    """A lane's reader in the child: its pipe's requests into its queue."""
    import os

    while True:
        try:
            q.put(pipe.recv())
        except (EOFError, OSError):
            os._exit(0)  # the server is gone: so are its requests


def _batches(runner: Any, q: Any, conn: Any, send: Any, spec: dict[str, Any],
             running: Any) -> None:
    from zoo.registry import modalities
    from zoo.serve.batch import gather, run_batch, run_items

    reg = modalities()
    chunk = int(spec.get("chunk") or 0)
    max_batch, max_wait = int(spec.get("max_batch") or 32), float(spec.get("max_wait") or 0)

    def predict(inputs: list[Any], options: dict[str, Any]) -> list[Any]:
        return run_batch(runner, inputs, options, chunk, reg)

    while True:
        items = gather(q, max_batch, max_wait, running=running)
        with running:  # until its answers are sent, as in-process
            answers = [(rid, ok, out if ok else _picklable(out))
                       for rid, ok, out in run_items(predict, items)]
            with send:
                conn.send((answers, [sum(len(x[0]) for x in items)]))


def _load(spec: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    import os

    import torch

    from zoo.io.hub import load

    if spec.get("torch_threads"):
        torch.set_num_threads(int(spec["torch_threads"]))
    model = load(spec["source"], **(spec.get("place") or {}))
    onnx = None
    if spec.get("runtime") == "onnx":
        from zoo.serve.onnx import OnnxRunner

        runner = onnx = OnnxRunner(model, **(spec.get("onnx") or {}))  # locks of its own
    else:  # batch threads side by side share the model through SideBySide's locks
        from zoo.serve.sidebyside import SideBySide

        runner = SideBySide(model) if int(spec.get("workers") or 1) > 1 else model
    return runner, {"pid": os.getpid(), "torch_threads": torch.get_num_threads(),
                    "device": device_info(model, onnx)}


def _picklable(e: Exception) -> Exception:
    """``e`` when it survives pickling, else a :class:`ZooError` with its message."""
    import pickle

    try:
        pickle.loads(pickle.dumps(e))
        return e
    except Exception:  # noqa: BLE001
        return ZooError(f"{type(e).__name__}: {e}")


def saved_copy(model: Any) -> tuple[str, Any]:
    """A folder the child can load ``model`` from: a temporary copy (the caller keeps the
    TemporaryDirectory alive while the child runs) of what the caller holds, which may
    differ from any folder it was loaded from."""
    import tempfile

    tmp = tempfile.TemporaryDirectory(prefix="zoo-serve-")
    model.save_pretrained(Path(tmp.name) / "model")
    return str(Path(tmp.name) / "model"), tmp


def main() -> None:
    """The child's entry point (``python -m zoo.serve.worker``, started by
    :class:`InferenceProcess`)."""
    import json
    import os
    from multiprocessing.connection import Connection

    spec = json.loads(os.environ["ZOO_INFERENCE_SPEC"])
    pipes = {n: Connection(int(fd)) for n, fd in
             json.loads(os.environ["ZOO_INFERENCE_LANE_FDS"]).items()}
    _child(spec, Connection(int(os.environ["ZOO_INFERENCE_FD"])), pipes)


if __name__ == "__main__":
    main()
