"""The routes of a zoo server, each one function over the :class:`Server` it serves:
``POST /predict``, ``POST /explain`` (:mod:`zoo.serve.explain`), ``POST /feedback``,
``GET /health``, ``/info``, ``/metrics``."""

import asyncio
from dataclasses import dataclass, field
from typing import Any

from zoo.errors import DataError, RequestError, ZooError
from zoo.serve.guard import error
from zoo.serve.inputs import check_modalities, decode_input, read_json, request_inputs
from zoo.serve.worker import InferenceUnavailable

__all__ = ["Server", "add_routes", "check_parameters", "explain_answer", "feedback", "jsonable",
           "predict", "predict_body", "PREDICT_RESPONSES"]


@dataclass
class Server:
    """What the routes of one served model share."""

    model: Any
    lanes: dict[str, Any]  # modality -> MicroBatcher; a request runs in its costliest's
    limits: Any
    store: Any  # zoo.io.feedback.FeedbackStore
    metrics: Any
    max_body: int
    info: dict[str, Any]
    modalities: dict[str, Any] = field(default_factory=dict)  # name -> Modality, read once
    pool: Any = None  # zoo.serve.limits.DecodePool: decoded bytes of requests in flight
    rates: Any = field(default_factory=lambda: Rates())  # feedback posts per client
    closers: list[Any] = field(default_factory=list)  # called when the server stops
    # one explanation at a time: each runs many predictions
    gate: asyncio.Semaphore = field(default_factory=lambda: asyncio.Semaphore(1))

    @property
    def task(self) -> Any:
        return self.model.task_impl

    @property
    def ignored(self) -> tuple[str, ...]:
        """Keys an input may carry besides modalities: an id and the task's targets."""
        return ("id", *self.task.targets)

    def lane(self, inputs: list[dict[str, Any]]) -> Any:
        present = {m for x in inputs for m in x}
        name = max(present & set(self.lanes), key=lambda m: (self.modalities[m].cost, m))
        return self.lanes[name]


class Rates:
    """Posts per client in a sliding minute (in this process; each worker counts its own)."""

    def __init__(self) -> None:
        import collections
        import threading

        self.seen: dict[str, Any] = collections.defaultdict(collections.deque)
        self.lock = threading.Lock()

    def wait(self, client: str, per_minute: float) -> float:
        """0 when ``client`` may post now (and counts it), else the seconds to wait."""
        import time

        now = time.monotonic()
        with self.lock:
            q = self.seen[client]
            while q and now - q[0] >= 60:
                q.popleft()
            if len(q) >= per_minute:
                return 60 - (now - q[0])
            q.append(now)
            if len(self.seen) > 10_000:  # forget idle clients: the table stays bounded
                for c in [c for c, d in self.seen.items() if not d or now - d[-1] >= 60]:
                    del self.seen[c]
            return 0.0


def check_parameters(model: Any, params: dict[str, Any]) -> None:
    """The request's predict options are ones this model's head decodes with (a 400
    naming the allowed ones otherwise)."""
    if not params:
        return
    head = model.head
    if head is None:
        raise RequestError(f"this model (embeddings) takes no parameters; got "
                           f"{sorted(params)[:5]}")
    try:
        head.check_decode_kwargs(params)
    except ZooError as e:
        raise RequestError(str(e)) from None


def jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, float):
        return round(obj, 6)
    return obj


async def predict(server: Server, request: Any, run: Any = None) -> Any:
    """Predictions for one or more inputs (micro-batched with concurrent requests).
    ``run(inputs, params)``: what runs them (default: the costliest modality's lane; a
    Ray replica passes its ``@serve.batch``)."""
    from fastapi.responses import JSONResponse

    limits = server.limits.for_request(server.pool)  # this request's decode budget
    try:
        try:
            inputs, shape, params = await request_inputs(request, server.max_body, limits,
                                                         server.ignored, server.modalities)
            check_modalities(server.model, inputs, server.task.requires)
            check_parameters(server.model, params)
        except RequestError as e:
            return error(e.status, str(e))
        try:
            run = run or server.lane(inputs).submit
            outputs = await asyncio.wait_for(run(inputs, params), limits.request_seconds)
        except asyncio.TimeoutError:
            return error(504, f"the prediction took longer than {limits.request_seconds:g} s "
                              f"(ZOO_SERVE_REQUEST_SECONDS)")
        except InferenceUnavailable as e:
            return error(503, str(e))
        except ZooError as e:
            return error(400, str(e))
        return JSONResponse({"predictions" if shape == "kserve" else "outputs":
                             jsonable(outputs)})
    finally:
        inputs = None  # the decoded inputs go before their bytes are given back
        _give_back(limits)


async def explain_answer(server: Server, request: Any) -> Any:
    """``POST /explain``'s answer (:func:`zoo.serve.explain.explain`), one at a time
    (``server.gate``), within the request's decode budget."""
    from fastapi.responses import JSONResponse

    from zoo.serve.explain import explain

    limits = server.limits.for_request(server.pool)
    try:
        out = await explain(server, request, server.gate, limits)
    finally:
        _give_back(limits)
    if isinstance(out, list):
        return JSONResponse({"explanations": jsonable(out)})
    return out


def _give_back(limits: Any) -> None:
    """Return a request's decoded bytes to the pool; after a large one, hand freed heap
    memory back to the system (glibc keeps it otherwise: memory stays high after the
    response)."""
    if limits.release() > 64_000_000:
        try:
            import ctypes

            ctypes.CDLL("libc.so.6").malloc_trim(0)
        except (OSError, AttributeError):
            pass


async def feedback(server: Server, request: Any) -> Any:
    """A correction of a prediction, stored as training data: the input (this model's
    modalities, within limits) and the task's targets (checked as training data is)."""
    targets = ", ".join(server.task.targets) or "none"
    limits = server.limits.for_request(server.pool)
    try:
        return await _feedback(server, request, limits, targets)
    finally:
        _give_back(limits)


async def _feedback(server: Server, request: Any, limits: Any, targets: str) -> Any:
    from zoo.base.modality import json_size

    try:
        body = await read_json(request, server.max_body, limits)
        if not isinstance(body, dict) or not isinstance(body.get("input"), dict):
            raise RequestError('expected {"input": {...}, "prediction": ..., "correction": ...}')
        if body.get("correction") is None:
            raise RequestError(f"'correction' is required: the right answer, as this "
                               f"{server.model.task} model's targets ({targets})")
        inputs = await asyncio.to_thread(decode_input, body["input"], 0, limits,
                                         server.ignored, server.modalities)
        check_modalities(server.model, [inputs])
        if json_size(body["correction"]) > limits.max_value_bytes:
            raise RequestError(f"the correction is over {limits.max_value_bytes:g} "
                               f"bytes of JSON (ZOO_SERVE_MAX_VALUE_BYTES)", 413)
        try:
            corrected = server.task.targets_from_correction(
                body["correction"], server.model.labels, "correction", inputs)
        except DataError as e:
            raise RequestError(str(e), 422) from None
    except RequestError as e:
        return error(e.status, str(e))
    from zoo.io.feedback import FeedbackFull, KeyReused

    key = request.headers.get("idempotency-key")
    if key is not None and not 0 < len(key) <= 200:
        return error(400, "Idempotency-Key must be 1-200 characters")
    client = _client(request)
    wait = server.rates.wait(client, limits.feedback_per_minute)
    if wait:
        return error(429, f"too many feedback posts from this client (at most "
                          f"{limits.feedback_per_minute:g} a minute, "
                          f"ZOO_SERVE_FEEDBACK_PER_MINUTE); retry in {wait:.0f} s",
                     {"Retry-After": str(max(1, round(wait)))})
    try:
        fid = await asyncio.to_thread(
            server.store.add, body["input"], body.get("prediction"), body["correction"],
            None if key is None else f"{client}:{key}", corrected,
            max_rows=limits.feedback_max_rows, max_bytes=limits.feedback_max_bytes)
    except KeyReused as e:
        return error(409, str(e))
    except FeedbackFull as e:
        return error(507, str(e))
    return {"id": fid}


def _client(request: Any) -> str:
    """Who posts, for rates and idempotency keys: the API key's digest when one is sent,
    else the peer address (behind a proxy every client shares the proxy's)."""
    import hashlib

    auth = request.headers.get("authorization") or request.headers.get("x-api-key")
    if auth:
        return "key-" + hashlib.sha256(auth.encode()).hexdigest()[:16]
    return request.client.host if request.client else "unknown"


def predict_body() -> dict[str, Any]:
    """The OpenAPI description of POST /predict, from the registered modalities (FastAPI
    cannot infer it: the body is read as a stream so its size is bounded before parsing)."""
    from zoo.registry import modalities

    reg = modalities()
    one = {"type": "object", "properties": {n: m.request_schema() for n, m in reg.items()}}
    plain = next((n for n, m in reg.items() if m.plain_string), None)
    media = {t + "*": {"schema": {"type": "string", "format": "binary"}}
             for m in reg.values() for t in m.media_types}
    example = {"inputs": [{plain: "a photo of a cat"}]} if plain else {"inputs": [{}]}
    return {"content": {
        "application/json": {"schema": {"oneOf": [
            {"type": "object", "required": ["inputs"],
             "properties": {"inputs": {"type": "array", "items": one}}},
            {"type": "object", "required": ["instances"], "description": "KServe v1",
             "properties": {"instances": {"type": "array"}}},
            {"type": "object", "required": ["inputs"], "description": "Hugging Face "
             "Inference API: a string or a list of strings",
             "properties": {"inputs": {"type": "string"}}}]}, "example": example},
        "multipart/form-data": {"schema": {"type": "object", "properties": {
            n: ({"type": "string", "format": "binary"} if m.file_based else m.request_schema())
            for n, m in reg.items()}}},
        **media}}


PREDICT_RESPONSES = {"200": {"description": "One output per input: {\"outputs\": [...]} "
                             "(KServe: {\"predictions\": [...]})"},
                     "400": {"description": "a bad input, named"},
                     "401": {"description": "missing or wrong API key"},
                     "413": {"description": "over a limit, named"},
                     "422": {"description": "an impossible value (e.g. sample rate)"}}


def add_routes(app: Any, server: Server) -> None:
    from fastapi import Request
    from fastapi.responses import PlainTextResponse

    @app.post("/predict", openapi_extra={"requestBody": predict_body()},
              responses=PREDICT_RESPONSES)
    async def predict_route(request: Request) -> Any:
        """Predictions for one or more inputs (micro-batched with concurrent requests)."""
        return await predict(server, request)

    from zoo.serve.explain import EXPLAIN_RESPONSES

    @app.post("/explain", openapi_extra={"requestBody": predict_body()},
              responses=EXPLAIN_RESPONSES)
    async def explain_route(request: Request) -> Any:
        """Which words, image patches, time windows and modalities made each answer:
        inputs as /predict takes them; "parameters": target, method, samples, max_units."""
        return await explain_answer(server, request)

    @app.post("/feedback")
    async def feedback_route(request: Request) -> Any:
        """A correction: {"input": {...}, "prediction": ..., "correction": targets}."""
        return await feedback(server, request)

    @app.get("/health")
    async def health() -> Any:
        return {"status": "ok"}

    @app.get("/info")
    async def info() -> Any:
        return server.info

    @app.get("/metrics")
    async def metrics() -> Any:
        return PlainTextResponse(server.metrics.render(),
                                 media_type="text/plain; version=0.0.4")
