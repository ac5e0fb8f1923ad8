"""Serving on Ray Serve: replicas of one zoo model behind Ray's HTTP proxy, for when one
process (or one machine) is not enough. ``zoo serve MODEL --backend ray --replicas N``, or
in Python::

    import ray
    from ray import serve
    from zoo.serve.ray import deployment

    ray.init()                                   # or ray.init(address="ray://head:10001")
    serve.start(http_options={"host": "0.0.0.0", "port": 8000})
    serve.run(deployment("out/run", replicas=2), route_prefix="/")

Each replica loads the model and batches concurrent requests with ``@serve.batch``
(requests asking for the same predict ``"parameters"`` run together); the routes are
``zoo serve``'s, answered by the same code: ``POST /predict`` (ours, KServe ``instances``,
``{"inputs": "text"}``), ``POST /explain`` (one at a time per replica), ``POST /feedback``
(into ``feedback_db``: SQLite, one file per machine; replicas on one machine share it),
``GET /info`` and ``/health``, within the same :class:`~zoo.serve.limits.Limits`. Not
``/metrics``: a scrape would reach one replica of many (Ray Serve exports its own request
metrics). Every request passes the checks ``zoo serve``'s guard makes, in the same order
and with the same answers: the Host allow-list and a browser's cross-site Origin (421 /
403), the API key (401), the body bounded while it is read, whatever its framing (413), its
JSON depth (422). Ray is imported only here (``pip install "ray[serve]"``).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from zoo.errors import ZooError
from zoo.serve.limits import Limits

__all__ = ["deployment"]


def deployment(model: str, *, replicas: int = 2, max_batch: int = 32,
               max_wait_ms: float = 5.0, limits: Limits | None = None,
               cpus_per_replica: float = 0.5, api_key: str | None = None,
               device: str = "cpu", precision: str = "auto",
               hosts: Sequence[str] | None = None, origins: Sequence[str] | None = None,
               max_body: int | None = None, feedback_db: str | Path = "feedback.db",
               quantize: str | None = None) -> Any:
    """A bound Ray Serve application serving ``model`` (a folder, ``hf-hub:`` id or registry
    name, loaded by every replica onto ``device``: a CUDA device gives each replica one GPU
    of the cluster, predicting in ``precision``). ``hosts``, ``origins`` and ``max_body`` as
    :func:`zoo.serve.app.create_app` takes them (default: loopback names or
    ``ZOO_SERVE_ALLOWED_HOSTS``, no cross-site origin, 20 MiB). ``feedback_db``: where
    ``POST /feedback`` stores corrections on each replica's machine (a relative path is
    taken from the replica's working directory: give an absolute one). ``quantize="int8"``:
    each replica quantizes its copy after loading, as ``zoo.load(..., quantize="int8")``."""
    from zoo.quantization import check_quantize

    check_quantize(quantize, device, precision)  # one line for int8 on CUDA or with bf16
    try:
        from ray import serve
    except ImportError:
        raise ZooError('serving on Ray needs ray: pip install "ray[serve]"') from None
    from starlette.requests import Request

    from zoo.serve.guard import allow_lists
    gpu = str(device).startswith("cuda")
    actor = {"num_cpus": cpus_per_replica, **({"num_gpus": 1} if gpu else {})}

    @serve.deployment(num_replicas=replicas, ray_actor_options=actor)
    class ZooReplica:
        def __init__(self, source: str, limits: dict[str, Any], key: str | None,
                     checks: dict[str, Any]) -> None:
            from zoo.io.hub import load as zoo_load

            # Ray shows each replica its own GPU as cuda:0
            model = zoo_load(source, device="cuda" if gpu else device, precision=precision,
                             quantize=quantize)
            self.server, self.model = replica_server(model, Limits(**limits), checks), model
            self.key = key.encode() if key else None
            self.hosts, self.origins = allow_lists(checks["hosts"], checks["origins"])

        @serve.batch(max_batch_size=max_batch, batch_wait_timeout_s=max_wait_ms / 1000)
        async def _batch(self, requests: list[tuple[list[dict[str, Any]], dict[str, Any]]]
                         ) -> list[Any]:
            import asyncio

            return await asyncio.to_thread(run_requests, self.model, requests)

        async def _predict(self, inputs: list[dict[str, Any]],
                           options: dict[str, Any] | None = None) -> list[Any]:
            out = await self._batch((inputs, dict(options or {})))
            if isinstance(out, BaseException):
                raise out
            return out

        async def __call__(self, request: Request) -> Any:
            return await _answer(self, request)

    return ZooReplica.bind(str(model), (limits or Limits.from_env()).asdict(), api_key,
                           _checks(hosts, origins, max_body, feedback_db))


def _checks(hosts: Sequence[str] | None, origins: Sequence[str] | None,
            max_body: int | None, feedback_db: str | Path) -> dict[str, Any]:
    """What each replica checks and where it stores feedback (picklable, for Ray)."""
    from zoo.serve.app import MAX_BODY, _allowed

    return {"hosts": _allowed(hosts, "ZOO_SERVE_ALLOWED_HOSTS"),
            "origins": _allowed(origins, "ZOO_SERVE_ALLOWED_ORIGINS", ()),
            "max_body": int(max_body or MAX_BODY), "feedback_db": str(feedback_db)}


def replica_server(model: Any, limits: Limits, checks: dict[str, Any]) -> Any:
    """What ``zoo serve``'s routes share (:class:`zoo.serve.routes.Server`), for one replica:
    its model, limits, decoded-bytes pool, feedback store and ``/info``; no lanes (Ray's
    ``@serve.batch`` batches) and no metrics."""
    from zoo.io.feedback import FeedbackStore
    from zoo.registry import modalities
    from zoo.serve.app import model_info
    from zoo.serve.limits import DecodePool
    from zoo.serve.routes import Server
    from zoo.serve.worker import device_info

    return Server(model=model, lanes={}, limits=limits, metrics=None,
                  store=FeedbackStore(checks.get("feedback_db") or "feedback.db"),
                  pool=DecodePool(limits.max_inflight_decoded_bytes),
                  max_body=int(checks["max_body"]), modalities=modalities(),
                  info={**model_info(model), **device_info(model), "backend": "ray"})


def run_requests(model: Any, requests: list[tuple[list[dict[str, Any]], dict[str, Any]]]
                 ) -> list[Any]:
    """One Ray batch: each request's ``(inputs, options)``; requests asking for the same
    options run together (:func:`zoo.serve.batch.run_items`: a failing batch is retried
    request by request). Each request's outputs, or the exception it alone raised."""
    from zoo.serve.batch import run_items

    def predict(inputs: list[dict[str, Any]], options: dict[str, Any]) -> list[Any]:
        return model.predict(inputs, batch_size=max(1, len(inputs)), **options)

    answers = {k: (ok, out) for k, ok, out in run_items(
        predict, [(inputs, k, options, 0.0) for k, (inputs, options) in enumerate(requests)])}
    return [answers[k][1] for k in range(len(requests))]


async def _answer(replica: Any, request: Any) -> Any:
    """One request to a replica, routed as ``zoo serve`` routes it and answered by the same
    code (:mod:`zoo.serve.routes`, :mod:`zoo.serve.explain`), after its guard's checks
    (:func:`zoo.serve.guard.refusal`, the API key, a declared length over the bound)."""
    from zoo.serve.guard import authorized, error, refusal
    from zoo.serve.routes import explain_answer, feedback, predict

    server = replica.server
    path = request.url.path.rstrip("/") or "/"
    refused = refusal(request.headers, replica.hosts, replica.origins, path, request.method)
    if refused is not None:
        return error(*refused)
    if path.endswith("/health"):
        return {"status": "ok"}
    if replica.key is not None and not authorized(request.headers, replica.key):
        return error(401, "missing or wrong API key: send 'Authorization: Bearer KEY' or "
                          "'X-API-Key: KEY'", {"WWW-Authenticate": "Bearer"})
    route = path.rsplit("/", 1)[-1]
    if request.method == "GET" and route == "info":
        return server.info
    if request.method != "POST" or route not in ("predict", "explain", "feedback"):
        return error(404, "POST /predict, /explain, /feedback; GET /info, /health (on Ray, "
                          "request metrics are Ray Serve's own, not /metrics)")
    length = request.headers.get("content-length", "")
    if length.isdigit() and int(length) > server.max_body:
        return error(413, f"request body over {server.max_body} bytes")
    if route == "feedback":
        return await feedback(server, request)
    if route == "explain":
        return await explain_answer(server, request)
    return await predict(server, request, replica._predict)
