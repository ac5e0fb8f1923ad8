"""Serving: an ASGI app (FastAPI, run by uvicorn) with micro-batching and a feedback store.

    POST /predict   {"inputs": [{"text": "...", "image": "<base64>", "audio": "<base64>"}]}
                    -> {"outputs": [...]}   (the task outputs of DESIGN.md)
    POST /feedback  {"input": {...}, "prediction": {...}, "correction": {...}} -> {"id": n}
    GET  /health    GET /info (model card metadata)    GET /metrics (Prometheus text)

Concurrent requests are gathered into one batch (up to ``max_batch`` inputs, waiting at most
``max_wait_ms`` for more) and run together: on a CPU that is several times the throughput
of one-at-a-time. Bad requests get a 4xx with a message; the server keeps serving. The
modules: ``limits`` (what a request may hold), ``inputs`` (reading a request), ``guard``
(auth, body size, errors), ``routes``, ``batch`` (micro-batching), ``onnx``, ``ray``.
"""
from __future__ import annotations

import contextlib
import json
import re
from pathlib import Path
from typing import Any, Sequence

from zoo.errors import ZooError
from zoo.serve.limits import Limits

__all__ = ["create_app", "app_from_env", "Limits", "MAX_BODY"]

MAX_BODY = 20 * 1024 * 1024  # bytes; larger requests get a 413
#: where batches run: beside the event loop in this process, or in a child process
INFERENCE = ("thread", "process")


def create_app(model: Any, *, feedback_db: str | Path = "feedback.db", max_batch: int = 32,
               max_wait_ms: float = 5.0, max_body: int = MAX_BODY,
               limits: Limits | None = None, api_key: str | None = None,
               runtime: str = "torch", mounts: dict[str, Any] | None = None,
               hosts: Sequence[str] | None = None, origins: Sequence[str] | None = None,
               device: str | None = None, batch_threads: int | None = None,
               quantize: str | None = None, inference: str = "thread",
               source: str | Path | None = None) -> Any:
    """The FastAPI app. ``limits`` bound the work one request can cause (:class:`Limits`,
    defaults from ``ZOO_SERVE_*`` variables): beyond one, a 413 (422 for an impossible
    value) names it. With ``api_key`` every route but ``/health`` needs ``Authorization:
    Bearer KEY`` (or ``X-API-Key: KEY``). ``/predict`` takes our JSON, KServe v1
    ``instances``, the Hugging Face ``{"inputs": "text"}``, multipart form fields and raw
    bodies of a modality's media type. ``runtime="onnx"`` runs the model's tensors in ONNX
    Runtime (:mod:`zoo.serve.onnx`; a :class:`ZooError` if it cannot). ``mounts`` ({name:
    model}) serves more models under ``/models/NAME/...`` in this process. ``hosts``: the
    Host names answered (default loopback names, or ``ZOO_SERVE_ALLOWED_HOSTS``; ``"*"``
    any); ``origins``: the web origins whose cross-site requests are let in (default none,
    or ``ZOO_SERVE_ALLOWED_ORIGINS``). The torch runtime runs where the model sits (move
    it first: ``model.place("cuda")``); ``device`` names the GPU ONNX Runtime runs on
    (``"cuda"``, with onnxruntime-gpu), else its graph runs on the CPU. ``batch_threads``
    (ONNX Runtime): batches run side by side, the cores shared among them
    (:func:`batch_threads`; None: 2 on a CPU with 2 or more cores, else 1). ``quantize="int8"``:
    the ONNX graph's weights, or the torch model's linear layers, dynamic int8 on the CPU
    (scores move: measure with ``zoo eval --quantize int8``). ``inference="process"``:
    batches run in a child process (:mod:`zoo.serve.worker`) loading ``source`` (None: a
    temporary copy of ``model`` as it is) where ``model`` sits."""
    from fastapi import FastAPI

    from zoo.serve.guard import Guard
    from zoo.serve.routes import add_routes
    from zoo.version import __version__

    limits = limits or Limits.from_env()
    hosts, origins = _allowed(hosts, "ZOO_SERVE_ALLOWED_HOSTS"), \
        _allowed(origins, "ZOO_SERVE_ALLOWED_ORIGINS", ())
    server = _server(model, feedback_db, max_batch, max_wait_ms, max_body, limits, runtime,
                     device, batch_threads, quantize, inference, source)
    subs = {name: create_app(sub, feedback_db=_mount_db(feedback_db, name),
                             max_batch=max_batch, max_wait_ms=max_wait_ms, max_body=max_body,
                             limits=limits, api_key=api_key, runtime=runtime, hosts=hosts,
                             origins=origins, device=device, batch_threads=batch_threads,
                             quantize=quantize, inference=inference)
            for name, sub in _checked_mounts(mounts).items()}
    if subs:
        server.info["models"] = {name: f"/models/{name}" for name in subs}
    app = FastAPI(title=f"zoo: {server.info.get('name') or model.task}", version=__version__,
                  description=f"{model.task} on {', '.join(model.modalities)}",
                  docs_url="/docs", redoc_url=None, lifespan=_lifespan(server, subs))
    add_routes(app, server)
    app.add_middleware(Guard, api_key=api_key, max_body=max_body, metrics=server.metrics,
                       hosts=tuple(hosts), origins=tuple(origins))
    for name, sub in subs.items():
        app.mount(f"/models/{name}", sub)
    app.state.store, app.state.metrics, app.state.lanes = (server.store, server.metrics,
                                                           server.lanes)
    app.state.batcher = next(iter(server.lanes.values()))
    app.state.server = server
    return app


def _allowed(given: Sequence[str] | None, env: str,
             default: Sequence[str] | None = None) -> tuple[str, ...]:
    """An allow-list: as given, else a comma-separated environment variable, else the
    default (loopback names for hosts)."""
    import os

    from zoo.serve.guard import LOOPBACK_HOSTS

    if given is not None:
        return tuple(given)
    raw = os.environ.get(env, "")
    if raw.strip():
        return tuple(x.strip() for x in raw.split(",") if x.strip())
    return tuple(LOOPBACK_HOSTS if default is None else default)


def batch_threads(given: int | None, runtime: str, on_cpu: bool, cores: int | None = None,
                  inference: str = "thread", concurrent: bool = False) -> tuple[int, int]:
    """(batches run side by side, intra-op threads each). ONNX Runtime: ``given``, else 2
    on a CPU with 2 or more cores (a batch is one session call outside the GIL), else 1;
    the cores (torch's intra-op threads, ``OMP_NUM_THREADS``) shared among them: one batch
    per core beats one batch over every core, whose hand-offs between threads stall
    whenever another process takes one of the cores. torch in the server process
    (``inference="thread"``): one batch at a time (its operators take the GIL one by one:
    two batch threads contending for it with the event loop measured 0.83x), and more is a
    one-line error; on a CPU over every core but one, which the event loop keeps
    (``zoo serve`` sets it: :func:`tune_process`). torch in a child process: ``given``,
    else 2 on a CPU with 2 or more cores when the model's forward may run twice at once
    (``concurrent``: :func:`zoo.serve.sidebyside.concurrent_forward`), else 1; the threads
    each are :func:`_inference_process`'s to say."""
    import torch

    if given is not None and (isinstance(given, bool) or not isinstance(given, int)
                              or not 1 <= given <= 64):
        raise ZooError(f"--batch-threads must be a whole number from 1 to 64, not {given!r}")
    if runtime != "onnx" and inference == "process":  # the machine's cores: the child's
        cores = cores or _cores()
        return given or (2 if on_cpu and cores >= 2 and concurrent else 1), 0
    cores = cores or torch.get_num_threads()
    if runtime != "onnx":
        if given not in (None, 1):
            raise ZooError(f"--batch-threads {given} runs batches side by side in a child "
                           f"process (--inference process) or in ONNX Runtime (--runtime "
                           f"onnx); the torch runtime in the server process runs one batch "
                           f"at a time")
        # on a CPU the event loop keeps a core: HTTP, JSON and tokenizing run beside the batch
        return 1, max(1, cores - 1) if on_cpu else cores
    if given is None:
        given = 2 if on_cpu and cores >= 2 else 1
    return given, max(1, cores // given)


def _server(model: Any, feedback_db: Any, max_batch: int, max_wait_ms: float, max_body: int,
            limits: Limits, runtime: str, device: str | None = None,
            threads: int | None = None, quantize: str | None = None,
            inference: str = "thread", source: Any = None) -> Any:
    """What the routes share: lanes (one per modality, so a slow modality never delays a
    fast one), the feedback store, metrics and the model's facts."""
    from zoo.io.feedback import FeedbackStore
    from zoo.registry import modalities
    from zoo.serve.batch import MicroBatcher
    from zoo.serve.limits import DecodePool
    from zoo.serve.routes import Server
    from zoo.serve.sidebyside import concurrent_forward
    from zoo.serve.state import Metrics
    from zoo.serve.worker import device_info

    for what, value, known in (("runtime", runtime, ("torch", "onnx")), ("quantization",
                               quantize, (None, "int8")), ("inference", inference, INFERENCE)):
        if value not in known:
            raise ZooError(f"unknown {what} {value!r} ({' or '.join(filter(None, known))})")
    if quantize and runtime == "torch" and inference == "thread" and \
            getattr(model, "quantized", None) != quantize:
        model.quantize(quantize)  # dynamic int8 linear layers, on the CPU (zoo.quantization)
    on_cpu = not str(device or "").startswith("cuda")
    workers, per = batch_threads(threads, runtime, on_cpu, inference=inference,
                                 concurrent=concurrent_forward(model))
    runner = model  # what the batches run through: model.predict or the ONNX session's
    if inference == "process":
        runner, per = _inference_process(model, source, runtime, quantize, device, workers,
                                         per, on_cpu, max_batch, max_wait_ms)
    elif runtime == "onnx":
        from zoo.serve.onnx import OnnxRunner

        runner = OnnxRunner(model, device=device, threads=per if on_cpu else None,
                            quantize=quantize)
    else:
        import torch

        per = torch.get_num_threads()  # what the batch thread runs on (tune_process's)
    metrics = Metrics()
    reg = modalities()
    # the torch runtime sorts a batch of variable-length inputs by length into chunks of 8
    # (the ONNX runner does the same on token counts, inside one preprocessing call)
    if inference == "process":  # the child batches each modality's requests itself
        runner.metrics = metrics
        lanes = {m: runner.lane(m) for m in model.modalities}
    else:
        lanes = {m: MicroBatcher(runner, max_batch, max_wait_ms, metrics,
                                 chunk=8 if runtime == "torch" else 0, modalities=reg,
                                 workers=workers)
                 for m in model.modalities}
    return Server(model=model, lanes=lanes, limits=limits, store=FeedbackStore(feedback_db),
                  pool=DecodePool(limits.max_inflight_decoded_bytes),
                  metrics=metrics, max_body=max_body,
                  info={**model_info(model), "runtime": runtime,
                        **(runner.info["device"] if inference == "process" else
                           device_info(model, runner if runtime == "onnx" else None)),
                        "batch_threads": workers, "threads_per_batch": per,
                        "inference": inference,
                        **({"inference_pid": runner.pid} if inference == "process" else {})},
                  modalities=reg, closers=[runner.close] if inference == "process" else [])


def _inference_process(model: Any, source: Any, runtime: str, quantize: str | None,
                       device: str | None, workers: int, per: int, on_cpu: bool,
                       max_batch: int = 32, max_wait_ms: float = 5.0) -> tuple[Any, int]:
    """The child process the batches run in (:mod:`zoo.serve.worker`) and the intra-op
    threads each of its batches gets: it loads the model from ``source`` (else from a
    temporary copy of ``model`` as it is now) where ``model`` sits, quantized or as an ONNX
    graph as asked. On a CPU, torch gets every core but one there (HTTP and the clients
    keep it: on 2 cores, 2 threads served 174-194 req/s and 1 thread 229-245); ONNX
    Runtime's batch threads share the cores as :func:`batch_threads` says."""
    from zoo.serve.worker import InferenceProcess, saved_copy

    keep = None
    if source is None:
        source, keep = saved_copy(model)
    if on_cpu and runtime == "torch":  # the cores, not this process's (tuned) torch threads
        per = _inference_threads(_cores(), workers)
    spec = {"source": str(source), "runtime": runtime, "chunk": 8 if runtime == "torch" else 0,
            "place": {"device": None if runtime == "onnx" else str(model.device),
                      "precision": getattr(model, "precision", "auto") or "auto",
                      "quantize": quantize if runtime == "torch" else None},
            "onnx": {"device": device, "threads": per if on_cpu else None,
                     "quantize": quantize},
            "torch_threads": per if on_cpu else None, "lanes": list(model.modalities),
            "workers": workers, "max_batch": max_batch, "max_wait": max_wait_ms / 1000}
    proc = InferenceProcess(spec)
    proc.keep = keep  # the temporary copy lives as long as the child
    return proc, per


def _cores() -> int:
    """The cores this process may run on."""
    import os

    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (
        os.cpu_count() or 1)


def _inference_threads(cores: int, workers: int = 1) -> int:
    """torch's intra-op threads in the inference process on a CPU
    (``ZOO_SERVE_INFERENCE_THREADS``, default every core but one, shared among the
    ``workers`` batch threads)."""
    import os

    raw = os.environ.get("ZOO_SERVE_INFERENCE_THREADS", "")
    return int(raw) if raw.isdigit() and int(raw) > 0 else max(1, (cores - 1) // workers)


def _checked_mounts(mounts: dict[str, Any] | None) -> dict[str, Any]:
    for name in mounts or {}:
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}", name):
            raise ZooError(f"mount name {name[:40]!r}: use letters, digits, '.', '_', '-'")
    return dict(mounts or {})


def _mount_db(feedback_db: Any, name: str) -> Path:
    db = Path(feedback_db)  # one feedback store per model
    return db.with_name(f"{db.stem}-{name}{db.suffix}")


def _lifespan(server: Any, subs: dict[str, Any]) -> Any:
    @contextlib.asynccontextmanager
    async def lifespan(app: Any) -> Any:
        async with contextlib.AsyncExitStack() as stack:  # mounted apps get no lifespan
            for sub in subs.values():
                await stack.enter_async_context(sub.router.lifespan_context(sub))
            for b in server.lanes.values():
                await b.start()
            yield
            for b in server.lanes.values():
                await b.stop()
            for close in server.closers:  # the inference process
                close()
    return lifespan


def model_info(model: Any) -> dict[str, Any]:
    """What ``GET /info`` says: the model's facts and its card's metadata."""
    import os

    cfg = model.config
    info = {"name": cfg.get("name"), "task": model.task, "modalities": model.modalities,
            "pid": os.getpid(), "labels": model.labels,
            "encoders": {m: e["name"] for m, e in cfg["encoders"].items()},
            "fusion": (cfg.get("fusion") or {}).get("name"),
            "head": (cfg.get("head") or {}).get("name"), "plugins": cfg.get("plugins"),
            "parameters": list(getattr(model.head, "decode_options", ())),
            "formats": ["json", *model.task_impl.output_formats]}
    source = getattr(model, "source", None)
    if source and (Path(source) / "README.md").is_file():
        from huggingface_hub import metadata_load

        info["card"] = metadata_load(Path(source) / "README.md")
    return info


_TUNED = False  # tune_process set torch's threads in this process


def tune_process(runtime: str, device: str | None) -> None:
    """What a ``zoo serve`` process sets for itself (not :func:`create_app`, which leaves
    its caller's process alone): torch's intra-op threads to :func:`batch_threads`'
    share for the torch runtime on a CPU (every core but the event loop's), and a short
    GIL switch interval (0.5 ms, not 5), so the batch thread gets the GIL back soon after
    each operator while the event loop is busy. Why: on 2 cores shared with other jobs, a
    batch of 32 on 2 OpenMP threads took 1.7 s against 0.2 s on one (its threads wait for
    each other whenever one is descheduled). Throughput against LitServe on one torch
    thread: 0.70x -> 0.82-0.90x in two 4-round A/Bs, but 0.70x in the 5-round bench after:
    within the noise of that machine."""
    import sys

    import torch

    global _TUNED
    sys.setswitchinterval(0.0005)
    if not _TUNED and runtime == "torch" and not str(device or "cpu").startswith(
            ("cuda", "mps")):
        torch.set_num_threads(batch_threads(None, "torch", True)[1])
        _TUNED = True  # once: the share is of the cores, not of the threads left


def resolve_inference(given: str | None, runtime: str, device: str | None,
                      mounts: bool = False) -> str:
    """``"auto"`` (``zoo serve``'s default): a child process for the torch runtime on a CPU
    (on 2 cores 245 req/s against 203 in-process, LitServe 241: the child batches
    while the event loop serves HTTP), in-process otherwise (ONNX Runtime runs outside
    the interpreter lock already; a GPU would hold two copies; mounted models share
    their base in one process)."""
    if given not in (None, "auto"):
        return given
    on_cpu = not str(device or "cpu").startswith(("cuda", "mps"))
    return "process" if runtime == "torch" and on_cpu and not mounts else "thread"


def app_from_env() -> Any:
    """The app ``zoo serve`` describes in ``ZOO_SERVE_APP`` (JSON): how each of its worker
    processes builds its own copy."""
    import os

    from zoo.io.hub import load

    spec = json.loads(os.environ["ZOO_SERVE_APP"])
    # the torch runtime's model on the device; ONNX Runtime's keeps it on the CPU (it only
    # preprocesses) and runs the graph on the GPU itself when spec["device"] names one
    runtime = spec.get("runtime", "torch")
    tune_process(runtime, spec.get("device"))
    inference = resolve_inference(spec.get("inference"), runtime, spec.get("device"),
                                  bool(spec.get("mounts")))
    place = {"device": spec.get("device") if runtime == "torch" else None,
             "precision": spec.get("precision") or "auto",
             # a child process quantizes its own copy; this one keeps the float weights
             "quantize": spec.get("quantize") if runtime == "torch" and
             inference == "thread" else None}
    return create_app(load(spec["model"], **place), feedback_db=spec["feedback_db"],
                      max_batch=spec["max_batch"], max_wait_ms=spec["max_wait_ms"],
                      limits=Limits.from_env(**spec["limits"]), api_key=spec["api_key"],
                      runtime=spec.get("runtime", "torch"), hosts=spec.get("hosts"),
                      origins=spec.get("origins"),
                      mounts={k: load(v, **place) for k, v in (spec.get("mounts") or {}).items()},
                      device=spec.get("device"), batch_threads=spec.get("batch_threads"),
                      quantize=spec.get("quantize"), inference=inference,
                      source=spec["model"])
