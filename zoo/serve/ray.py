"""Serving on Ray Serve: replicas of one zoo model behind Ray's HTTP proxy, for when one
process (or one machine) is not enough. ``zoo serve MODEL --backend ray --replicas N``, or
in Python::

    import ray
    from ray import serve
    from zoo.serve.ray import deployment

    ray.init()                                   # or ray.init(address="ray://head:10001")
    serve.start(http_options={"host": "0.0.0.0", "port": 8000})
    serve.run(deployment("out/run", replicas=2), route_prefix="/")

Each replica loads the model and batches concurrent requests with ``@serve.batch``;
``POST /predict`` takes the JSON shapes ``zoo serve`` takes (ours, KServe ``instances``,
``{"inputs": "text"}``) within the same :class:`~zoo.serve.limits.Limits` and answers the
same outputs; ``GET /health``. Every request passes the checks ``zoo serve``'s guard makes,
in the same order and with the same answers: the Host allow-list and a browser's cross-site
Origin (421 / 403), the API key (401), the body bounded while it is read, whatever its
framing (413), its JSON depth (422). Ray is imported only here (``pip install "ray[serve]"``).
"""
from __future__ import annotations

from typing import Any, Sequence

from zoo.errors import ZooError
from zoo.serve.limits import Limits

__all__ = ["deployment"]


def deployment(model: str, *, replicas: int = 2, max_batch: int = 32,
               max_wait_ms: float = 5.0, limits: Limits | None = None,
               cpus_per_replica: float = 0.5, api_key: str | None = None,
               device: str = "cpu", precision: str = "auto",
               hosts: Sequence[str] | None = None, origins: Sequence[str] | None = None,
               max_body: int | None = None) -> Any:
    """A bound Ray Serve application serving ``model`` (a folder, ``hf-hub:`` id or registry
    name, loaded by every replica onto ``device``: a CUDA device gives each replica one GPU
    of the cluster, predicting in ``precision``). ``hosts``, ``origins`` and ``max_body`` as
    :func:`zoo.serve.app.create_app` takes them (default: loopback names or
    ``ZOO_SERVE_ALLOWED_HOSTS``, no cross-site origin, 20 MiB)."""
    try:
        from ray import serve
    except ImportError:
        raise ZooError('serving on Ray needs ray: pip install "ray[serve]"') from None
    from starlette.requests import Request

    from zoo.serve.app import MAX_BODY, _allowed
    from zoo.serve.guard import allow_lists

    lim = (limits or Limits.from_env()).asdict()
    checks = {"hosts": _allowed(hosts, "ZOO_SERVE_ALLOWED_HOSTS"),
              "origins": _allowed(origins, "ZOO_SERVE_ALLOWED_ORIGINS", ()),
              "max_body": int(max_body or MAX_BODY)}

    gpu = str(device).startswith("cuda")
    actor = {"num_cpus": cpus_per_replica, **({"num_gpus": 1} if gpu else {})}

    @serve.deployment(num_replicas=replicas, ray_actor_options=actor)
    class ZooReplica:
        def __init__(self, source: str, limits: dict[str, Any], key: str | None,
                     checks: dict[str, Any]) -> None:
            from zoo.io.hub import load as zoo_load

            # Ray shows each replica its own GPU as cuda:0
            self.model = zoo_load(source, device="cuda" if gpu else device,
                                  precision=precision)
            self.limits = Limits(**limits)
            self.key = key.encode() if key else None
            self.hosts, self.origins = allow_lists(checks["hosts"], checks["origins"])
            self.max_body = checks["max_body"]

        @serve.batch(max_batch_size=max_batch, batch_wait_timeout_s=max_wait_ms / 1000)
        async def _predict(self, requests: list[list[dict[str, Any]]]) -> list[list[Any]]:
            import asyncio

            flat = [x for inputs in requests for x in inputs]
            outputs = await asyncio.to_thread(self.model.predict, flat,
                                              batch_size=max(1, len(flat)))
            out, k = [], 0
            for inputs in requests:
                out.append(outputs[k:k + len(inputs)])
                k += len(inputs)
            return out

        async def __call__(self, request: Request) -> Any:
            return await _answer(self, request)

    return ZooReplica.bind(str(model), lim, api_key, checks)


async def _answer(replica: Any, request: Any) -> Any:
    """One request to a replica: ``GET /health``, or ``POST /predict`` read and bounded as
    ``zoo serve`` reads it (its guard's checks first: :func:`zoo.serve.guard.refusal`), run
    through the replica's batch."""
    import asyncio

    from zoo.errors import RequestError
    from zoo.serve.guard import authorized, error, refusal
    from zoo.serve.inputs import check_modalities, decode_inputs, json_inputs, read_json
    from zoo.serve.routes import jsonable

    path = request.url.path.rstrip("/") or "/"
    refused = refusal(request.headers, replica.hosts, replica.origins, path, request.method)
    if refused is not None:
        return error(*refused)
    if path.endswith("/health"):
        return {"status": "ok"}
    if replica.key is not None and not authorized(request.headers, replica.key):
        return error(401, "missing or wrong API key: send 'Authorization: Bearer KEY' or "
                          "'X-API-Key: KEY'", {"WWW-Authenticate": "Bearer"})
    if not path.endswith("/predict") or request.method != "POST":
        return error(404, "POST /predict, GET /health")
    length = request.headers.get("content-length", "")
    if length.isdigit() and int(length) > replica.max_body:
        return error(413, f"request body over {replica.max_body} bytes")
    task = replica.model.task_impl
    try:
        # read as a stream, refused once past max_body whatever the framing (chunked too)
        body = await read_json(request, replica.max_body, replica.limits)
        raw, shape = json_inputs(body)
        # the per-request bound on decoded bytes (no shared pool: replicas are processes)
        inputs = await asyncio.to_thread(decode_inputs, raw, replica.limits.for_request(),
                                         ("id", *task.targets))
        check_modalities(replica.model, inputs, task.requires)
        if body.get("parameters"):
            raise RequestError("predict parameters are served by `zoo serve` without --ray "
                               "(a Ray replica batches with its defaults)")
    except RequestError as e:
        return error(e.status, str(e))
    outputs = await replica._predict(inputs)
    return {"predictions" if shape == "kserve" else "outputs": jsonable(outputs)}
