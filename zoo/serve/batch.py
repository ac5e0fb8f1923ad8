"""Micro-batching for serving: concurrent requests' inputs gathered into one batch (up to
``max_batch`` inputs, waiting at most ``max_wait_ms`` for more) and run together in the
lane's own threads; a failing batch is retried request by request. Requests with predict
options (``"parameters"``) batch only with requests asking for the same options.

The batch threads gather their own batches from a thread-safe queue, as LitServe's worker
does: the event loop only queues a request and, later, hands its answer back. A thread
that finishes a batch takes the requests queued meanwhile and runs them at once, without
waiting for the event loop, which under load is busy reading requests and writing
answers (dispatch through the loop cost the torch runtime about 10 % of its throughput
against LitServe). ``max_wait_ms`` runs from a request's arrival: on an idle server the
first request waits that long for company; on a busy one the requests that queued during
a batch have waited long enough.

With ``workers`` > 1, that many batches run side by side (each in its own thread): on a
CPU, two ONNX Runtime batches on one core each keep both cores busy without the
per-operator hand-offs of one batch split over two threads, which stall whenever another
process takes one of the cores."""
from __future__ import annotations

import asyncio
import queue
import threading
import time
from typing import Any

from zoo.serve.state import Metrics
from zoo.serve.worker import InferenceUnavailable, run_batch

__all__ = ["MicroBatcher"]

_STOP = object()  # tells a batch thread to leave


class MicroBatcher:
    """Collects inputs from concurrent requests and runs them through the model together."""

    def __init__(self, model: Any, max_batch: int = 32, max_wait_ms: float = 5.0,
                 metrics: Metrics | None = None, chunk: int = 0,
                 modalities: dict[str, Any] | None = None, workers: int = 1) -> None:
        self.model, self.max_batch, self.max_wait = model, max(1, max_batch), max_wait_ms / 1000
        self.metrics = metrics
        # batches run at once, each in its own thread (the model must allow it: the ONNX
        # runner does, model.predict's tokenizers do not)
        self.workers = max(1, int(workers))
        # > 0: a batch of variable-length inputs (text, audio) runs sorted by length in chunks
        # of this many, so short ones are not padded to the longest of the whole batch
        self.chunk = chunk
        self.modalities = modalities  # name -> Modality (lengths); None: from the registry
        self.queue: queue.Queue = queue.Queue()  # (inputs, future, options, arrival)
        self.threads: list[threading.Thread] = []
        self.loop: asyncio.AbstractEventLoop | None = None

    async def start(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.threads = [threading.Thread(target=self._serve, name=f"zoo-batch-{i}",
                                         daemon=True) for i in range(self.workers)]
        for t in self.threads:
            t.start()

    async def stop(self) -> None:
        for _ in self.threads:
            self.queue.put(_STOP)
        # a batch still running finishes on its own (daemon threads): shutdown does not wait

    async def submit(self, inputs: list[dict[str, Any]],
                     options: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        fut = asyncio.get_running_loop().create_future()
        self.queue.put((inputs, fut, dict(options or {}), time.monotonic()))
        return await fut

    # ------------------------------------------------------------ in the batch threads
    def _serve(self) -> None:
        while True:
            items = self._gather()
            if items is None:
                return
            for group in _by_options(items):
                self._run_group(group)

    def _gather(self) -> list[tuple] | None:
        """The next batch: the first queued request and those that join it until the batch
        is full or ``max_wait`` has passed since the first arrived (None: stop)."""
        first = self.queue.get()
        if first is _STOP:
            return None
        items, n = [first], len(first[0])
        deadline = first[3] + self.max_wait
        while n < self.max_batch:
            try:
                left = deadline - time.monotonic()
                item = self.queue.get(timeout=left) if left > 0 else self.queue.get_nowait()
            except queue.Empty:
                break
            if item is _STOP:
                self.queue.put(_STOP)  # for this thread's next round
                break
            items.append(item)
            n += len(item[0])
        return items

    def _run_group(self, items: list[tuple]) -> None:
        options = items[0][2]
        flat = [x for inputs, *_ in items for x in inputs]
        try:
            outputs = self._predict(flat, options)
        except InferenceUnavailable as e:  # the child died: not one input's fault
            for _, fut, *_ in items:
                self._answer(fut, error=e)
            return
        except Exception:  # noqa: BLE001
            # one bad input must not fail its neighbours: retry each request alone
            for inputs, fut, *_ in items:
                try:
                    self._answer(fut, self._predict(inputs, options))
                except Exception as e:  # noqa: BLE001
                    self._answer(fut, error=e)
            return
        k = 0
        for inputs, fut, *_ in items:
            self._answer(fut, outputs[k:k + len(inputs)])
            k += len(inputs)

    def _answer(self, fut: asyncio.Future, result: Any = None,
                error: BaseException | None = None) -> None:
        """Hands a request its answer on the event loop (unless it gave up waiting)."""
        def settle() -> None:
            if fut.done():
                return
            if error is not None:
                fut.set_exception(error)
            else:
                fut.set_result(result)

        try:
            self.loop.call_soon_threadsafe(settle)
        except RuntimeError:  # the loop closed: nobody is waiting
            pass

    def _predict(self, inputs: list[dict[str, Any]], options: dict[str, Any] | None = None
                 ) -> list[dict[str, Any]]:
        if self.metrics:
            self.metrics.batch(len(inputs))
        remote = getattr(self.model, "run_batch", None)  # an InferenceProcess chunks itself
        if remote is not None:
            return remote(inputs, options or {})
        return run_batch(self.model, inputs, options or {}, self.chunk, self.modalities)


def _by_options(items: list[tuple]) -> list[list[tuple]]:
    """Queued requests grouped by the predict options they ask for, in arrival order."""
    import json

    groups: dict[str, list[tuple]] = {}
    for item in items:
        groups.setdefault(json.dumps(item[2], sort_keys=True, default=str), []).append(item)
    return list(groups.values())

