"""Micro-batching for serving: concurrent requests' inputs gathered into one batch (up to
``max_batch`` inputs, waiting at most ``max_wait_ms`` for more) and run together in the
lane's own threads; a failing batch is retried request by request. Requests with predict
options (``"parameters"``) batch only with requests asking for the same options.

With ``workers`` > 1, that many batches run side by side (each in its own thread, the
next one gathering while they run): on a CPU, two ONNX Runtime batches on one core each
keep both cores busy without the per-operator hand-offs of one batch split over two
threads, which stall whenever another process takes one of the cores."""
from __future__ import annotations

import asyncio
from typing import Any

from zoo.serve.state import Metrics
from zoo.serve.worker import InferenceUnavailable, run_batch

__all__ = ["MicroBatcher"]


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
        self.queue: asyncio.Queue | None = None
        self.task: asyncio.Task | None = None
        self.pool: Any = None

    async def start(self) -> None:
        from concurrent.futures import ThreadPoolExecutor

        self.queue = asyncio.Queue()
        # its own threads: batches never queue behind other work in the default executor
        self.pool = ThreadPoolExecutor(self.workers, thread_name_prefix="zoo-batch")
        self.slots = asyncio.Semaphore(self.workers)
        self.running: set[asyncio.Task] = set()
        self.task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self.task:
            self.task.cancel()
        for t in list(getattr(self, "running", ())):
            t.cancel()
        if self.pool:
            self.pool.shutdown(wait=False)

    async def submit(self, inputs: list[dict[str, Any]],
                     options: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        fut = asyncio.get_running_loop().create_future()
        await self.queue.put((inputs, fut, dict(options or {})))
        return await fut

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            items = [await self.queue.get()]
            n = len(items[0][0])
            deadline = loop.time() + self.max_wait
            while n < self.max_batch:
                item = await self._next(loop, deadline)
                if item is None:
                    break
                items.append(item)
                n += len(item[0])
            await self.slots.acquire()  # free already unless the batch filled up
            task = asyncio.create_task(self._run_groups(loop, items))
            self.running.add(task)
            task.add_done_callback(self._finished)

    async def _next(self, loop: Any, deadline: float) -> Any:
        """The next request to join the batch being gathered, or None when it should go:
        at ``max_wait`` after its first request if a batch thread is free, else as soon as
        one is (until then it keeps gathering: the model never idles through a wait while
        requests are queued, and a busy server runs fuller batches)."""
        while True:
            if not self.queue.empty():
                return self.queue.get_nowait()
            timeout = deadline - loop.time()
            if timeout <= 0 and not self.slots.locked():
                return None
            getter = asyncio.ensure_future(self.queue.get())
            if timeout > 0:
                other: Any = asyncio.ensure_future(asyncio.sleep(timeout))
            else:
                other = self._freed = loop.create_future()  # set when a batch finishes
            await asyncio.wait({getter, other}, return_when=asyncio.FIRST_COMPLETED)
            other.cancel()
            if getter.done():
                return getter.result()
            getter.cancel()  # not taken: the request stays queued

    def _finished(self, task: asyncio.Task) -> None:
        self.running.discard(task)
        self.slots.release()
        freed = getattr(self, "_freed", None)
        if freed is not None and not freed.done():
            freed.set_result(None)

    async def _run_groups(self, loop: Any, items: list[tuple]) -> None:
        for group in _by_options(items):
            await self._run_group(loop, group)

    async def _run_group(self, loop: Any, items: list[tuple]) -> None:
        options = items[0][2]
        flat = [x for inputs, _, _ in items for x in inputs]
        try:
            outputs = await loop.run_in_executor(self.pool, self._predict, flat, options)
        except InferenceUnavailable as e:  # the child died: not one input's fault
            for _, fut, _ in items:
                if not fut.done():
                    fut.set_exception(e)
            return
        except Exception:
            # one bad input must not fail its neighbours: retry each request alone
            for inputs, fut, _ in items:
                try:
                    res = await loop.run_in_executor(self.pool, self._predict, inputs, options)
                    if not fut.done():
                        fut.set_result(res)
                except Exception as e:
                    if not fut.done():
                        fut.set_exception(e)
            return
        k = 0
        for inputs, fut, _ in items:
            if not fut.done():
                fut.set_result(outputs[k:k + len(inputs)])
            k += len(inputs)

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

