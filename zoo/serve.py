"""Serving: an ASGI app (FastAPI, run by uvicorn) with micro-batching and a feedback store.

    POST /predict   {"inputs": [{"text": "...", "image": "<base64>", "audio": "<base64>"}]}
                    -> {"outputs": [...]}   (the task outputs of DESIGN.md)
    POST /feedback  {"input": {...}, "prediction": {...}, "correction": {...}} -> {"id": n}
    GET  /health    GET /info (model card metadata)    GET /metrics (Prometheus text)

Concurrent requests are gathered into one batch (up to ``max_batch`` inputs, waiting at most
``max_wait_ms`` for more) and run together: on a CPU that is several times the throughput
of one-at-a-time. Bad requests get a 4xx with a message; the server keeps serving.
"""


import asyncio
import json
import sqlite3
import threading
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from .serve_inputs import BadInput, Limits, decode_input, json_depth

__all__ = ["create_app", "FeedbackStore", "MicroBatcher", "decode_input", "Limits"]

MAX_BODY = 20 * 1024 * 1024  # bytes; larger requests get a 413
_LAT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class FeedbackStore:
    """SQLite (WAL) table of feedback rows; one connection per thread, ids from SQLite."""

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        self._local = threading.local()
        con = self._con()
        con.execute("PRAGMA journal_mode=WAL")
        con.execute("""CREATE TABLE IF NOT EXISTS feedback (
            id INTEGER PRIMARY KEY AUTOINCREMENT, created REAL NOT NULL,
            input TEXT NOT NULL, prediction TEXT, correction TEXT NOT NULL)""")
        con.commit()

    def _con(self) -> sqlite3.Connection:
        con = getattr(self._local, "con", None)
        if con is None:
            con = sqlite3.connect(self.path, timeout=30, check_same_thread=False)
            con.execute("PRAGMA busy_timeout=30000")
            self._local.con = con
        return con

    def add(self, input: Any, prediction: Any, correction: Any) -> int:
        con = self._con()
        cur = con.execute("INSERT INTO feedback (created, input, prediction, correction) "
                          "VALUES (?, ?, ?, ?)", (time.time(), json.dumps(input),
                                                  json.dumps(prediction), json.dumps(correction)))
        con.commit()
        return int(cur.lastrowid)

    def rows(self) -> list[dict[str, Any]]:
        cur = self._con().execute("SELECT id, created, input, prediction, correction FROM "
                                  "feedback ORDER BY id")
        return [{"id": r[0], "created": r[1], "input": json.loads(r[2]),
                 "prediction": json.loads(r[3]) if r[3] else None,
                 "correction": json.loads(r[4])} for r in cur]


class Metrics:
    """Counters and histograms, rendered in the Prometheus text format."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.requests: dict[tuple[str, int], int] = defaultdict(int)
        self.latency: dict[str, list[int]] = defaultdict(lambda: [0] * (len(_LAT_BUCKETS) + 1))
        self.latency_sum: dict[str, float] = defaultdict(float)
        self.batch_sizes: dict[int, int] = defaultdict(int)

    def observe(self, path: str, status: int, seconds: float) -> None:
        with self.lock:
            self.requests[(path, status)] += 1
            b = next((k for k, le in enumerate(_LAT_BUCKETS) if seconds <= le), len(_LAT_BUCKETS))
            self.latency[path][b] += 1
            self.latency_sum[path] += seconds

    def batch(self, size: int) -> None:
        with self.lock:
            self.batch_sizes[size] += 1

    def render(self) -> str:
        lines = ["# HELP zoo_requests_total Requests by path and status.",
                 "# TYPE zoo_requests_total counter"]
        with self.lock:
            for (path, status), n in sorted(self.requests.items()):
                lines.append(f'zoo_requests_total{{path="{path}",status="{status}"}} {n}')
            lines += ["# HELP zoo_request_seconds Request latency.",
                      "# TYPE zoo_request_seconds histogram"]
            for path, counts in sorted(self.latency.items()):
                acc = 0
                for le, c in zip([*map(str, _LAT_BUCKETS), "+Inf"], counts):
                    acc += c
                    lines.append(f'zoo_request_seconds_bucket{{path="{path}",le="{le}"}} {acc}')
                lines.append(f'zoo_request_seconds_sum{{path="{path}"}} {self.latency_sum[path]:.6f}')
                lines.append(f'zoo_request_seconds_count{{path="{path}"}} {acc}')
            lines += ["# HELP zoo_batch_size Inputs per model call.",
                      "# TYPE zoo_batch_size histogram"]
            acc = total = 0
            for size in sorted(self.batch_sizes):
                acc += self.batch_sizes[size]
                total += size * self.batch_sizes[size]
                lines.append(f'zoo_batch_size_bucket{{le="{size}"}} {acc}')
            lines.append(f'zoo_batch_size_bucket{{le="+Inf"}} {acc}')
            lines.append(f"zoo_batch_size_sum {total}")
            lines.append(f"zoo_batch_size_count {acc}")
        return "\n".join(lines) + "\n"


class MicroBatcher:
    """Collects inputs from concurrent requests and runs them through the model together."""

    def __init__(self, model: Any, max_batch: int = 32, max_wait_ms: float = 5.0,
                 metrics: Metrics | None = None) -> None:
        self.model, self.max_batch, self.max_wait = model, max(1, max_batch), max_wait_ms / 1000
        self.metrics = metrics
        self.queue: asyncio.Queue | None = None
        self.task: asyncio.Task | None = None

    async def start(self) -> None:
        self.queue = asyncio.Queue()
        self.task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self.task:
            self.task.cancel()

    async def submit(self, inputs: list[dict[str, Any]]) -> list[dict[str, Any]]:
        fut = asyncio.get_running_loop().create_future()
        await self.queue.put((inputs, fut))
        return await fut

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            items = [await self.queue.get()]
            n = len(items[0][0])
            deadline = loop.time() + self.max_wait
            while n < self.max_batch:
                timeout = deadline - loop.time()
                if timeout <= 0:
                    break
                try:
                    item = await asyncio.wait_for(self.queue.get(), timeout)
                except asyncio.TimeoutError:
                    break
                items.append(item)
                n += len(item[0])
            flat = [x for inputs, _ in items for x in inputs]
            try:
                outputs = await loop.run_in_executor(None, self._predict, flat)
            except Exception:
                # one bad input must not fail its neighbours: retry each request alone
                for inputs, fut in items:
                    try:
                        res = await loop.run_in_executor(None, self._predict, inputs)
                        if not fut.done():
                            fut.set_result(res)
                    except Exception as e:
                        if not fut.done():
                            fut.set_exception(e)
                continue
            k = 0
            for inputs, fut in items:
                if not fut.done():
                    fut.set_result(outputs[k:k + len(inputs)])
                k += len(inputs)

    def _predict(self, inputs: list[dict[str, Any]]) -> list[dict[str, Any]]:
        if self.metrics:
            self.metrics.batch(len(inputs))
        return self.model.predict(inputs, batch_size=max(len(inputs), 1))


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, float):
        return round(obj, 6)
    return obj


def create_app(model: Any, *, feedback_db: str | Path = "feedback.db", max_batch: int = 32,
               max_wait_ms: float = 5.0, max_body: int = MAX_BODY,
               limits: Limits | None = None) -> Any:
    """The FastAPI app. ``limits`` bound the work one request can cause (decoded pixels,
    audio length and rate, text length, inputs, JSON depth; :class:`Limits`, defaults from
    ``ZOO_SERVE_*`` variables): beyond one, a 413 (422 for an impossible value) names it."""
    from fastapi import FastAPI, Request
    from fastapi.responses import JSONResponse, PlainTextResponse

    from .errors import ZooError

    limits = limits or Limits.from_env()
    metrics = Metrics()
    batcher = MicroBatcher(model, max_batch, max_wait_ms, metrics)
    store = FeedbackStore(feedback_db)
    info = _model_info(model)

    import contextlib

    @contextlib.asynccontextmanager
    async def lifespan(app: Any) -> Any:
        await batcher.start()
        yield
        await batcher.stop()

    app = FastAPI(title="zoo", docs_url=None, redoc_url=None, lifespan=lifespan)

    def bad(status: int, msg: str) -> JSONResponse:
        return JSONResponse({"error": msg}, status_code=status)

    @app.middleware("http")
    async def guard(request: Request, call_next: Any) -> Any:
        t = time.perf_counter()
        length = request.headers.get("content-length")
        if length and length.isdigit() and int(length) > max_body:
            response = bad(413, f"request body over {max_body} bytes")
        else:
            try:
                response = await call_next(request)
            except Exception as e:  # never a 500 without a message, never a dead server
                response = bad(500, f"internal error: {type(e).__name__}")
        metrics.observe(request.url.path, response.status_code, time.perf_counter() - t)
        return response

    async def read_json(request: Request) -> Any:
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > max_body:
                raise BadInput("__413__")
        try:
            value = json.loads(body)
        except (ValueError, UnicodeDecodeError) as e:
            where = f" (line {e.lineno}, column {e.colno})" if hasattr(e, "lineno") else ""
            raise BadInput(f"the body is not valid JSON{where}") from None
        except RecursionError:
            raise BadInput("__422__the body's JSON is nested too deeply") from None
        if json_depth(value, limits.max_json_depth) > limits.max_json_depth:
            raise BadInput(f"__422__the body's JSON is nested deeper than "
                           f"{limits.max_json_depth} levels (ZOO_SERVE_MAX_JSON_DEPTH)")
        return value

    @app.post("/predict")
    async def predict(request: Request) -> Any:
        try:
            body = await read_json(request)
            if not isinstance(body, dict) or "inputs" not in body:
                raise BadInput('expected {"inputs": [ {...}, ... ]}')
            raw = body["inputs"]
            if not isinstance(raw, list):
                raise BadInput("'inputs' must be a list")
            if not raw:
                raise BadInput("'inputs' is empty")
            if len(raw) > limits.max_inputs:
                raise BadInput(f"__413__{len(raw)} inputs; at most {limits.max_inputs} per "
                               f"request (ZOO_SERVE_MAX_INPUTS)")
            # decoding is CPU work: off the event loop, so /health and light requests answer
            inputs = await asyncio.to_thread(
                lambda: [decode_input(x, i, limits) for i, x in enumerate(raw)])
            _check_modalities(model, inputs)
        except BadInput as e:
            return _client_error(bad, e, max_body)
        try:
            outputs = await batcher.submit(inputs)
        except ZooError as e:
            return bad(400, str(e))
        return {"outputs": _jsonable(outputs)}

    @app.post("/feedback")
    async def feedback(request: Request) -> Any:
        try:
            body = await read_json(request)
        except BadInput as e:
            return _client_error(bad, e, max_body)
        if not isinstance(body, dict) or not isinstance(body.get("input"), dict):
            return bad(400, 'expected {"input": {...}, "prediction": ..., "correction": ...}')
        if body.get("correction") is None:
            return bad(400, "'correction' is required (the right label or transcript)")
        import anyio

        fid = await anyio.to_thread.run_sync(store.add, body["input"], body.get("prediction"),
                                             body["correction"])
        return {"id": fid}

    @app.get("/health")
    async def health() -> Any:
        return {"status": "ok"}

    @app.get("/info")
    async def get_info() -> Any:
        return info

    @app.get("/metrics")
    async def get_metrics() -> Any:
        return PlainTextResponse(metrics.render(), media_type="text/plain; version=0.0.4")

    app.state.store, app.state.metrics, app.state.batcher = store, metrics, batcher
    return app


def _client_error(bad: Any, e: Exception, max_body: int) -> Any:
    """A BadInput as its response: ``__413__``/``__422__`` prefixes pick the status."""
    msg = str(e)
    if msg == "__413__":
        return bad(413, f"request body over {max_body} bytes")
    for code in (413, 422):
        if msg.startswith(f"__{code}__"):
            return bad(code, msg[len(f"__{code}__"):])
    return bad(400, msg)


def _check_modalities(model: Any, inputs: list[dict[str, Any]]) -> None:
    from .registry import get_task

    required = get_task(model.task).requires
    for i, x in enumerate(inputs):
        present = [m for m in x if m in model.encoders]
        if not present:
            raise BadInput(f"inputs[{i}] has none of this model's modalities "
                           f"({', '.join(model.modalities)})")
        missing = [m for m in required if m not in x]
        if missing:
            raise BadInput(f"inputs[{i}]: a {model.task} model needs "
                           f"{' and '.join(map(repr, missing))}")
        extra = [m for m in x if m not in model.encoders]
        if extra:
            raise BadInput(f"inputs[{i}]: this model takes {', '.join(model.modalities)}, "
                           f"not {', '.join(extra)}")


def _model_info(model: Any) -> dict[str, Any]:
    cfg = model.config
    info = {"name": cfg.get("name"), "task": model.task, "modalities": model.modalities,
            "labels": model.labels, "encoders": {m: e["name"] for m, e in cfg["encoders"].items()},
            "fusion": (cfg.get("fusion") or {}).get("name"),
            "head": (cfg.get("head") or {}).get("name"), "plugins": cfg.get("plugins")}
    source = getattr(model, "source", None)
    if source and (Path(source) / "README.md").is_file():
        from huggingface_hub import metadata_load

        info["card"] = metadata_load(Path(source) / "README.md")
    return info
