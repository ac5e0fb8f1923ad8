"""Inference in a process of its own: the server's batches go through pipes to a child
process that holds the model and runs them, as LitServe does.

Why: in one process, the event loop (HTTP, JSON, request checks) and the batch thread
share one interpreter lock. Tokenizing, collating and decoding a batch hold it, and
the event loop, which took ~60 % of a core under 32 clients, kept it from the batch
thread (py-spy). In a child the batch runs beside the event loop, not between its steps.
What it costs: the model is loaded twice (the server keeps its copy for ``/explain``,
``/info`` and the request checks), the child's start-up, and pickling each batch's
inputs and outputs through a pipe (microseconds for text; an image batch is copied once).

The child is a fresh interpreter (a fork of a process that has run torch's thread pools can hang),
loads the model from its folder (a model without one is saved to a temporary folder
first), and serves one pipe per batch thread. It ends when the server closes the pipes
or exits (the pipes close with it)."""
from __future__ import annotations

import queue
import threading
from pathlib import Path
from typing import Any

from zoo.errors import ZooError

__all__ = ["InferenceProcess", "InferenceUnavailable", "device_info", "run_batch"]

START_SECONDS = 600.0  # a large model's load on a slow disk
CHUNK_SAVING = 0.25  # run_batch splits a batch by length when that pads this much less


def run_batch(model: Any, inputs: list[dict[str, Any]], options: dict[str, Any],
              chunk: int = 0, modalities: dict[str, Any] | None = None) -> list[Any]:
    """``model.predict`` over one gathered batch. With ``chunk`` > 0, variable-length
    inputs (text, audio) run sorted by length in chunks of that many when that pads at
    least :data:`CHUNK_SAVING` less than one call padded to the longest (the same outputs,
    less work); inputs of like length run in one call, which is faster (measured: 16 short
    sentences 87 ms in one call, 94 ms in two)."""
    n = len(inputs)
    lengths = _lengths(inputs, modalities) if chunk and n > chunk else None
    if lengths is None:
        return model.predict(inputs, batch_size=max(n, 1), **options)
    order = sorted(range(n), key=lengths.__getitem__)
    parts = [order[i:i + chunk] for i in range(0, n, chunk)]
    padded = sum(len(p) * lengths[p[-1]] for p in parts)  # each part padded to its longest
    if padded > (1 - CHUNK_SAVING) * n * lengths[order[-1]]:
        return model.predict(inputs, batch_size=n, **options)
    out: list[Any] = [None] * n
    for idx in parts:
        for j, o in zip(idx, model.predict([inputs[k] for k in idx], batch_size=len(idx),
                                           **options)):
            out[j] = o
    return out


def _lengths(inputs: list[dict[str, Any]], reg: dict[str, Any] | None
             ) -> list[float] | None:
    """Each input's length when every value is of a variable-length modality (padded to
    the longest in a batch); None otherwise (images are resized alike: nothing to gain)."""
    if reg is None:
        from zoo.registry import modalities

        reg = modalities()
    if not all(x and all(k in reg and reg[k].variable_length for k in x) for x in inputs):
        return None
    return [sum(reg[k].length(v) for k, v in x.items()) for x in inputs]


class InferenceUnavailable(ZooError):
    """The inference process is gone (killed, out of memory, crashed): the batch it was
    running gets a 503, and the next batch starts a new one."""


class InferenceProcess:
    """A child process that loads the model described by ``spec`` and runs batches for
    ``threads`` batch threads at once (one pipe each). ``spec``: ``source`` (a folder or
    name :func:`zoo.load` takes), ``place`` (its keyword arguments: device, precision,
    quantize), ``runtime`` (``"torch"`` or ``"onnx"``), ``onnx`` (:class:`OnnxRunner`'s
    keyword arguments), ``torch_threads`` (the child's intra-op threads, None: torch's
    default) and ``chunk`` (:func:`run_batch`). Raises :class:`ZooError` with the child's
    one line when it cannot load. A child that dies fails the batches it held
    (:class:`InferenceUnavailable`) and is started again for the next one."""

    def __init__(self, spec: dict[str, Any], threads: int = 1,
                 start_seconds: float = START_SECONDS) -> None:
        self.spec, self.threads, self.start_seconds = spec, max(1, threads), start_seconds
        self.free: queue.Queue = queue.Queue()  # (generation, pipe) not in use
        self.generation, self.restarts = 0, 0
        self.lock = threading.Lock()
        self.conns: list[Any] = []
        self._start()

    def _start(self) -> None:
        import json
        import os
        import socket
        import subprocess
        import sys
        from multiprocessing.connection import Connection

        spec = self.spec
        pairs = [socket.socketpair() for _ in range(self.threads)]
        fds = [b.fileno() for _, b in pairs]
        # a fresh interpreter running this module (not multiprocessing's spawn, which
        # imports the caller's __main__ again: a script without a __main__ guard would
        # start a second server); the pipes are socket pairs it inherits
        env = {**os.environ, "ZOO_INFERENCE_SPEC": json.dumps(spec),
               "ZOO_INFERENCE_FDS": ",".join(map(str, fds))}
        self.proc = subprocess.Popen([sys.executable, "-m", "zoo.serve.worker"], env=env,
                                     pass_fds=fds, stdin=subprocess.DEVNULL)
        for _, b in pairs:
            b.close()  # the child's ends live in the child only: its exit closes ours
        self.conns = [Connection(a.detach()) for a, _ in pairs]
        try:
            ready = self.conns[0].poll(self.start_seconds)
            status, payload = self.conns[0].recv() if ready else ("error", None)
        except (EOFError, OSError):
            status, payload = "error", None
        if status != "ready":
            self.close()
            raise ZooError(payload or (
                f"the inference process did not load {spec.get('source')} in "
                f"{self.start_seconds:g} s" if self.proc.returncode is None else
                f"the inference process ended while loading {spec.get('source')} (exit "
                f"code {self.proc.returncode}; its log is above)"))
        self.info: dict[str, Any] = payload
        self.generation += 1
        for c in self.conns:
            self.free.put((self.generation, c))

    @property
    def pid(self) -> int:
        return self.proc.pid

    def run_batch(self, inputs: list[dict[str, Any]], options: dict[str, Any],
                  chunk: int = 0, modalities: Any = None) -> list[Any]:
        """:func:`run_batch` in the child (``chunk`` is the child's own, from its spec)."""
        self._restart_if_gone()
        gen, conn = self.free.get()
        while gen != self.generation:  # a pipe to a child that is gone
            gen, conn = self.free.get()
        try:
            conn.send((inputs, options))
            status, payload = conn.recv()
        except (EOFError, OSError):
            code = self.proc.wait(10)
            raise InferenceUnavailable(f"the inference process ended (exit code {code}) "
                                       f"during this batch; the next batch starts a new one"
                                       ) from None
        finally:
            if gen == self.generation:
                self.free.put((gen, conn))
        if status == "error":
            raise payload
        return payload

    def _restart_if_gone(self) -> None:
        if self.proc.poll() is None:
            return
        with self.lock:
            if self.proc.poll() is None:  # another batch thread restarted it
                return
            for c in self.conns:
                c.close()
            self.restarts += 1
            try:
                self._start()
            except ZooError as e:
                raise InferenceUnavailable(str(e)) from None

    def predict(self, inputs: list[dict[str, Any]], batch_size: int = 32,
                **options: Any) -> list[Any]:
        return self.run_batch(list(inputs), options)

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None

    def close(self, timeout: float = 5.0) -> None:
        """Ends the child: its pipes closed (it leaves when a pipe's other end is gone),
        then terminated if it is still there after ``timeout`` seconds."""
        import subprocess

        for c in self.conns:
            try:
                c.close()
            except OSError:
                pass
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.terminate()
            self.proc.wait(timeout)


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


def _child(spec: dict[str, Any], conns: list[Any]) -> None:
    """The child: load, say ready (or the one-line reason it could not), then serve each
    pipe in a thread of its own until it closes."""
    try:
        runner, info = _load(spec)
    except BaseException as e:  # noqa: BLE001  (whatever stops the load goes back as a line)
        msg = str(e).strip().splitlines()[0][:300] if str(e).strip() else type(e).__name__
        conns[0].send(("error", f"the inference process could not load "
                                f"{spec.get('source')}: {msg}"))
        return
    conns[0].send(("ready", info))
    chunk = int(spec.get("chunk") or 0)
    threads = [threading.Thread(target=_serve_pipe, args=(runner, c, chunk), daemon=True)
               for c in conns]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def _load(spec: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    import os

    import torch

    from zoo.io.hub import load

    if spec.get("torch_threads"):
        torch.set_num_threads(int(spec["torch_threads"]))
    model = load(spec["source"], **(spec.get("place") or {}))
    runner = model
    if spec.get("runtime") == "onnx":
        from zoo.serve.onnx import OnnxRunner

        runner = OnnxRunner(model, **(spec.get("onnx") or {}))
    return runner, {"pid": os.getpid(), "torch_threads": torch.get_num_threads(),
                    "device": device_info(model, runner if runner is not model else None)}


def _serve_pipe(runner: Any, conn: Any, chunk: int) -> None:
    from zoo.registry import modalities

    reg = modalities()
    while True:
        try:
            inputs, options = conn.recv()
        except (EOFError, OSError):
            return  # the server closed the pipe or exited
        try:
            conn.send(("ok", run_batch(runner, inputs, options, chunk, reg)))
        except Exception as e:  # noqa: BLE001  (the server raises it for this batch)
            conn.send(("error", _picklable(e)))


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
    conns = [Connection(int(fd)) for fd in os.environ["ZOO_INFERENCE_FDS"].split(",")]
    _child(spec, conns)


if __name__ == "__main__":
    main()
