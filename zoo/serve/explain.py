"""``POST /explain``: the explanation of each input (``zoo.explain``), read exactly as
``/predict`` reads inputs (same shapes, limits and API key) and bounded: at most
``max_explain_inputs`` inputs, ``max_explain_units`` units per input and
``max_explain_samples`` Shapley orderings, one explanation at a time per worker (503
while one runs), stopped at ``request_seconds`` (504). Options ride in ``"parameters"``:
``target``, ``method``, ``samples``, ``max_units``."""
from __future__ import annotations

import asyncio
import time
from typing import Any

from zoo.errors import RequestError, ZooError
from zoo.serve.guard import error
from zoo.serve.inputs import check_modalities, request_inputs

__all__ = ["explain", "explain_options", "EXPLAIN_RESPONSES"]

EXPLAIN_RESPONSES = {
    "200": {"description": "One explanation per input: {\"explanations\": [{\"target\", "
                           "\"score\", \"method\", \"units\": [...], \"modality_share\"}]}"},
    "400": {"description": "a bad input or option, named"},
    "401": {"description": "missing or wrong API key"},
    "413": {"description": "over a limit, named"},
    "503": {"description": "another explanation is running: retry"},
    "504": {"description": "the explanation ran past request_seconds"}}


def explain_options(params: dict[str, Any], limits: Any) -> dict[str, Any]:
    """A request's ``"parameters"`` -> keyword arguments of ``zoo.explain``, within the
    server's limits (a 400 / 413 naming the option otherwise)."""
    from zoo.explanation import METHODS, SAMPLES

    unknown = sorted(set(params) - {"target", "method", "samples", "max_units"})
    if unknown:
        raise RequestError(f"unknown explain parameter(s) {unknown[:3]} (target, method, "
                           f"samples, max_units)")
    method = params.get("method", "ablation")
    if method not in METHODS:
        raise RequestError(f"\"method\" must be one of {', '.join(METHODS)}")
    target = params.get("target")
    if target is not None and not isinstance(target, (str, int)):
        raise RequestError("\"target\" must be a label (a string)")
    out = {"target": target, "method": method}
    for name, default, limit in (("samples", SAMPLES, "max_explain_samples"),
                                 ("max_units", limits.max_explain_units, "max_explain_units")):
        value = params.get(name, min(default, getattr(limits, limit)))
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise RequestError(f"\"{name}\" must be a positive whole number")
        if value > getattr(limits, limit):
            raise RequestError(f"\"{name}\" is {value}; the limit is "
                               f"{getattr(limits, limit):g} (ZOO_SERVE_{limit.upper()}, or "
                               f"zoo serve --limit {limit}=...)", 413)
        out[name] = value
    return out


async def explain(server: Any, request: Any, gate: asyncio.Semaphore, limits: Any) -> Any:
    """Explanations for one request's inputs (never batched with other requests): the
    list of results, or an error response. ``limits``: this request's (the caller gives
    its decoded bytes back)."""
    try:
        inputs, _, params = await request_inputs(request, server.max_body, limits,
                                                 server.ignored, server.modalities)
        check_modalities(server.model, inputs, server.task.requires)
        options = explain_options(params, limits)
        if len(inputs) > limits.max_explain_inputs:
            raise RequestError(f"{len(inputs)} inputs; at most {limits.max_explain_inputs:g} "
                               f"per explanation (ZOO_SERVE_MAX_EXPLAIN_INPUTS)", 413)
    except RequestError as e:
        return error(e.status, str(e))
    if gate.locked():
        return error(503, "the server is explaining another request; retry shortly",
                     {"Retry-After": "1"})
    async with gate:
        status, body = await asyncio.to_thread(_run, server.model, inputs, options,
                                               time.monotonic() + limits.request_seconds)
    return body if status == 200 else error(status, body)


def _run(model: Any, inputs: list[dict[str, Any]], options: dict[str, Any],
         deadline: float) -> tuple[int, Any]:
    from zoo.explanation import explain as run
    from zoo.explanation.perturb import PastDeadline

    try:
        results = run(model, inputs, deadline=deadline, **options)
    except PastDeadline as e:
        return 504, str(e)
    except ZooError as e:
        return 400, str(e)
    for r in results:
        r.pop("files", None)
    return 200, results
