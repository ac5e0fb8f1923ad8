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
import re
import time
from pathlib import Path
from typing import Any

from zoo.serve.inputs import (_PREDICT_BODY, _PREDICT_RESPONSES, BadInput, Limits, decode_input,
                           decode_inputs, json_depth, json_inputs)
from zoo.serve.batch import MicroBatcher
from zoo.serve.state import FeedbackStore, Metrics

__all__ = ["create_app", "app_from_env", "FeedbackStore", "MicroBatcher", "decode_input",
           "Limits"]

MAX_BODY = 20 * 1024 * 1024  # bytes; larger requests get a 413


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
               limits: Limits | None = None, api_key: str | None = None,
               runtime: str = "torch", mounts: dict[str, Any] | None = None) -> Any:
    """The FastAPI app. ``limits`` bound the work one request can cause (decoded pixels,
    audio length and rate, text length, inputs, JSON depth; :class:`Limits`, defaults from
    ``ZOO_SERVE_*`` variables): beyond one, a 413 (422 for an impossible value) names it.
    With ``api_key`` every route but ``/health`` needs ``Authorization: Bearer KEY`` (or
    ``X-API-Key: KEY``). ``/predict`` takes our JSON, KServe v1 ``instances``, the Hugging
    Face ``{"inputs": "text"}``, multipart form fields and raw image/audio bodies.
    ``runtime="onnx"`` runs a classification model's tensors in ONNX Runtime
    (:mod:`zoo.serve.onnx`; a :class:`ZooError` if it cannot). ``mounts`` ({name: model})
    serves more models under ``/models/NAME/...`` in this process: adapters of one base
    loaded here share the base's tensors (:mod:`zoo.build.adapters`)."""
    import hmac
    from fastapi import FastAPI, Request
    from fastapi.responses import JSONResponse, PlainTextResponse

    from zoo.version import __version__
    from zoo.errors import ZooError

    limits = limits or Limits.from_env()
    metrics = Metrics()
    runner = model  # what the batches run through: model.predict or the ONNX session's
    if runtime == "onnx":
        from zoo.serve.onnx import OnnxRunner

        runner = OnnxRunner(model)
    elif runtime != "torch":
        raise ZooError(f"unknown runtime {runtime!r} (torch or onnx)")
    # one queue per lane: a request with audio (slow to run) never waits behind text, and
    # text never waits behind audio; the lanes' batches run side by side in threads
    # the torch runtime sorts a text batch by length into chunks of 8 (the ONNX runner
    # does the same on token counts, inside one tokenizer call)
    lanes = {lane: MicroBatcher(runner, max_batch, max_wait_ms, metrics,
                                chunk=8 if runtime == "torch" else 0)
             for lane in ("text", "image", "audio")}
    batcher = lanes["text"]
    store = FeedbackStore(feedback_db)
    info = {**_model_info(model), "runtime": runtime}
    from zoo.registry import get_task

    required = get_task(model.task).requires

    import contextlib

    subs = {}
    for name, sub_model in (mounts or {}).items():
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}", name):
            raise ZooError(f"mount name {name[:40]!r}: use letters, digits, '.', '_', '-'")
        db = Path(feedback_db)  # one feedback store per model
        db = db.with_name(f"{db.stem}-{name}{db.suffix}")
        subs[name] = create_app(sub_model, feedback_db=db, max_batch=max_batch,
                                max_wait_ms=max_wait_ms, max_body=max_body, limits=limits,
                                api_key=api_key, runtime=runtime)
    if subs:
        info["models"] = {name: f"/models/{name}" for name in subs}

    @contextlib.asynccontextmanager
    async def lifespan(app: Any) -> Any:
        async with contextlib.AsyncExitStack() as stack:  # mounted apps get no lifespan
            for sub in subs.values():
                await stack.enter_async_context(sub.router.lifespan_context(sub))
            for b in lanes.values():
                await b.start()
            yield
            for b in lanes.values():
                await b.stop()

    app = FastAPI(title=f"zoo: {info.get('name') or model.task}", version=__version__,
                  description=f"{model.task} on {', '.join(model.modalities)}",
                  docs_url="/docs", redoc_url=None, lifespan=lifespan)
    expected = api_key.encode() if api_key else None

    def bad(status: int, msg: str) -> JSONResponse:
        return JSONResponse({"error": msg}, status_code=status)

    from starlette.datastructures import Headers

    unauthorized = JSONResponse({"error": "missing or wrong API key: send 'Authorization: "
                                 "Bearer KEY' or 'X-API-Key: KEY'"}, status_code=401,
                                headers={"WWW-Authenticate": "Bearer"})

    class Guard:
        """API key, body size, never a 500 without a message, and the request metrics: a
        plain ASGI middleware (Starlette's BaseHTTPMiddleware costs a task, a stream and a
        response copy per request)."""

        def __init__(self, app: Any) -> None:
            self.app = app

        async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
            if scope["type"] != "http":
                return await self.app(scope, receive, send)
            t = time.perf_counter()
            path = scope["path"]
            headers = Headers(scope=scope)
            length = headers.get("content-length")
            status = [500, False]  # the status sent, whether the response started

            async def sending(message: Any) -> None:
                if message["type"] == "http.response.start":
                    status[:] = [message["status"], True]
                await send(message)

            if expected is not None and path != "/health" and not _authorized(
                    headers, expected, hmac):
                await unauthorized(scope, receive, sending)
            elif length and length.isdigit() and int(length) > max_body:
                await bad(413, f"request body over {max_body} bytes")(scope, receive, sending)
            else:
                try:
                    await self.app(scope, receive, sending)
                except Exception as e:  # never a 500 without a message, never a dead server
                    if status[1]:
                        raise
                    await bad(500, f"internal error: {type(e).__name__}")(scope, receive,
                                                                          sending)
            metrics.observe(path, status[0], time.perf_counter() - t)

    app.add_middleware(Guard)

    async def read_body(request: Request) -> bytes:
        """The body, read in chunks and refused once it passes ``max_body``."""
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > max_body:
                raise BadInput("__413__")
        return bytes(body)

    async def read_json(request: Request) -> Any:
        body = await read_body(request)
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

    async def request_inputs(request: Request) -> tuple[list, str]:
        """The raw inputs of any accepted shape, and the response shape to answer in."""
        kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if kind.startswith(("image/", "audio/")):  # a raw file as the body
            import base64

            raw: dict[str, str] = {kind.split("/")[0]: base64.b64encode(
                await read_body(request)).decode()}
            if request.query_params.get("text"):
                raw["text"] = request.query_params["text"]
            return [raw], "zoo"
        if kind == "multipart/form-data":
            import base64

            form = await request.form()
            raw = {}
            for key in ("text", "image", "audio"):
                value = form.get(key)
                if value is None:
                    continue
                if isinstance(value, str):
                    raw[key] = value
                else:
                    data = await value.read()
                    if len(data) > max_body:
                        raise BadInput("__413__")
                    raw[key] = base64.b64encode(data).decode()
            unknown = [k for k in form.keys() if k not in ("text", "image", "audio")]
            if unknown:
                raise BadInput(f"unknown form field(s) {unknown[:3]} (text, image, audio)")
            if not raw:
                raise BadInput("the form has no text, image or audio field")
            return [raw], "zoo"
        return json_inputs(await read_json(request))

    @app.post("/predict", openapi_extra={"requestBody": _PREDICT_BODY},
              responses=_PREDICT_RESPONSES)
    async def predict(request: Request) -> Any:
        """Predictions for one or more inputs (micro-batched with concurrent requests)."""
        try:
            raw, shape = await request_inputs(request)
            if _text_only(raw):  # nothing to decode: checked here, no thread hop
                inputs = decode_inputs(raw, limits)
            else:  # decoding is CPU work: off the event loop, so light requests answer
                inputs = await asyncio.to_thread(decode_inputs, raw, limits)
            check_modalities(model, inputs, required)
        except BadInput as e:
            return client_error(bad, e, max_body)
        try:
            lane = next((m for m in ("audio", "image") if any(m in x for x in inputs)), "text")
            outputs = await asyncio.wait_for(lanes[lane].submit(inputs), limits.request_seconds)
        except asyncio.TimeoutError:
            return bad(504, f"the prediction took longer than {limits.request_seconds:g} s "
                            f"(ZOO_SERVE_REQUEST_SECONDS)")
        except ZooError as e:
            return bad(400, str(e))
        return JSONResponse({"predictions" if shape == "kserve" else "outputs":
                             _jsonable(outputs)})

    @app.post("/feedback")
    async def feedback(request: Request) -> Any:
        try:
            body = await read_json(request)
        except BadInput as e:
            return client_error(bad, e, max_body)
        if not isinstance(body, dict) or not isinstance(body.get("input"), dict):
            return bad(400, 'expected {"input": {...}, "prediction": ..., "correction": ...}')
        if body.get("correction") is None:
            return bad(400, "'correction' is required (the right label or transcript)")
        try:  # a row must be usable as training data: this model's inputs, within limits
            inputs = await asyncio.to_thread(decode_input, body["input"], 0, limits)
            check_modalities(model, [inputs])
            _check_correction(body["correction"], limits)
        except BadInput as e:
            return client_error(bad, e, max_body)
        key = request.headers.get("idempotency-key")
        if key is not None and not 0 < len(key) <= 200:
            return bad(400, "Idempotency-Key must be 1-200 characters")
        fid = await asyncio.to_thread(store.add, body["input"], body.get("prediction"),
                                      body["correction"], key)
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

    for name, sub in subs.items():
        app.mount(f"/models/{name}", sub)
    app.state.store, app.state.metrics, app.state.batcher = store, metrics, batcher
    app.state.lanes = lanes
    return app


def _authorized(headers: Any, expected: bytes, hmac: Any) -> bool:
    """Bearer token or X-API-Key, compared in constant time."""
    auth = headers.get("authorization", "")
    given = auth[7:].strip() if auth.lower().startswith("bearer ") else \
        headers.get("x-api-key", "")
    return hmac.compare_digest(given.encode(), expected)


def _check_correction(correction: Any, limits: Limits) -> None:
    """A label or transcript (a string), or an object of the targets zoo trains on."""
    if isinstance(correction, str):
        if len(correction) > limits.max_text_chars:
            raise BadInput(f"__413__the correction is {len(correction)} characters; the limit "
                           f"is {limits.max_text_chars} (ZOO_SERVE_MAX_TEXT_CHARS)")
        return
    if isinstance(correction, (int, float)) and not isinstance(correction, bool):
        return
    allowed = ("label", "transcript", "boxes", "labels")
    if isinstance(correction, dict) and correction and set(correction) <= set(allowed):
        if len(json.dumps(correction)) <= limits.max_text_chars:
            return
        raise BadInput("__413__the correction is too large (ZOO_SERVE_MAX_TEXT_CHARS)")
    raise BadInput(f"'correction' must be a label or transcript (a string) or an object with "
                   f"{', '.join(allowed)}")


def client_error(bad: Any, e: Exception, max_body: int) -> Any:
    """A BadInput as its response: ``__413__``/``__422__`` prefixes pick the status."""
    msg = str(e)
    if msg == "__413__":
        return bad(413, f"request body over {max_body} bytes")
    for code in (413, 422):
        if msg.startswith(f"__{code}__"):
            return bad(code, msg[len(f"__{code}__"):])
    return bad(400, msg)


def _text_only(raw: Any) -> bool:
    """A list of inputs that hold only text: decoding them is a few checks."""
    return isinstance(raw, list) and all(
        isinstance(x, dict) and all(k == "text" for k in x) for x in raw)


def check_modalities(model: Any, inputs: list[dict[str, Any]],
                     required: Any = None) -> None:
    """Every input carries one of the model's modalities, those its task requires, and
    no other (a BadInput naming the input otherwise). ``required``: the task's required
    modalities, when the caller has looked them up already."""
    if required is None:
        from zoo.registry import get_task

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
    import os

    info = {"name": cfg.get("name"), "task": model.task, "modalities": model.modalities,
            "pid": os.getpid(),
            "labels": model.labels, "encoders": {m: e["name"] for m, e in cfg["encoders"].items()},
            "fusion": (cfg.get("fusion") or {}).get("name"),
            "head": (cfg.get("head") or {}).get("name"), "plugins": cfg.get("plugins")}
    source = getattr(model, "source", None)
    if source and (Path(source) / "README.md").is_file():
        from huggingface_hub import metadata_load

        info["card"] = metadata_load(Path(source) / "README.md")
    return info


def app_from_env() -> Any:
    """The app ``zoo serve`` describes in ``ZOO_SERVE_APP`` (JSON): how each of its worker
    processes builds its own copy."""
    import os

    from zoo.io.hub import load

    spec = json.loads(os.environ["ZOO_SERVE_APP"])
    return create_app(load(spec["model"]), feedback_db=spec["feedback_db"],
                      max_batch=spec["max_batch"], max_wait_ms=spec["max_wait_ms"],
                      limits=Limits.from_env(**spec["limits"]), api_key=spec["api_key"],
                      runtime=spec.get("runtime", "torch"),
                      mounts={k: load(v) for k, v in (spec.get("mounts") or {}).items()})
