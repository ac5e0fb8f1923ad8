"""Reading a serving request into model inputs, within bounds enforced while reading.

The body is read as a stream and refused (413) once it passes ``max_body``, whatever the
framing (Content-Length, chunked, multipart); JSON depth is bounded; every value is decoded
by its modality (``Modality.from_request`` / ``from_bytes``), which checks its own limits
before the expensive step (an image's size from its header, audio's rate, length and
channels from its header). Accepted shapes: ours ``{"inputs": [{...}]}``, KServe v1
``{"instances": [...]}``, the Hugging Face ``{"inputs": "text"}``, multipart form fields
named by modality, and a raw body of a modality's media type (``image/png``)."""
from __future__ import annotations

import asyncio
import json
from typing import Any, AsyncIterator, Iterable

from zoo.errors import RequestError
from zoo.registry import modalities

__all__ = ["BadInput", "RequestError", "decode_input", "decode_inputs", "json_inputs",
           "json_depth", "read_body", "read_json", "request_inputs", "check_modalities"]

#: the name serving code used before RequestError: the same class
BadInput = RequestError


def json_depth(value: Any, stop: int) -> int:
    """Nesting depth of a parsed JSON value (iterative; stops counting past ``stop``)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        v, d = stack.pop()
        if isinstance(v, (dict, list)):
            deepest = max(deepest, d)
            if deepest > stop:
                return deepest
            stack.extend((x, d + 1) for x in (v.values() if isinstance(v, dict) else v))
    return deepest


async def _bounded(request: Any, max_body: int, seconds: float = 30.0
                   ) -> AsyncIterator[bytes]:
    """The body's chunks, refused once their total passes ``max_body`` (any framing) or
    once the whole body has taken ``seconds`` to arrive (a client trickling bytes)."""
    loop = asyncio.get_running_loop()
    deadline, n = loop.time() + seconds, 0
    chunks = request.stream().__aiter__()
    while True:
        try:
            chunk = await asyncio.wait_for(chunks.__anext__(), max(0.0, deadline - loop.time()))
        except StopAsyncIteration:
            return
        except asyncio.TimeoutError:
            raise RequestError(f"the request body took over {seconds:g} s to arrive "
                               f"(ZOO_SERVE_BODY_SECONDS)", 408) from None
        n += len(chunk)
        if n > max_body:
            raise RequestError(f"request body over {max_body} bytes", 413)
        yield chunk


async def read_body(request: Any, max_body: int, seconds: float = 30.0) -> bytes:
    return b"".join([chunk async for chunk in _bounded(request, max_body, seconds)])


async def read_json(request: Any, max_body: int, limits: Any) -> Any:
    body = await read_body(request, max_body, limits.body_seconds)
    try:
        value = json.loads(body)
    except (ValueError, UnicodeDecodeError) as e:
        where = f" (line {e.lineno}, column {e.colno})" if hasattr(e, "lineno") else ""
        raise RequestError(f"the body is not valid JSON{where}") from None
    except RecursionError:
        raise RequestError("the body's JSON is nested too deeply", 422) from None
    if json_depth(value, limits.max_json_depth) > limits.max_json_depth:
        raise RequestError(f"the body's JSON is nested deeper than {limits.max_json_depth:g} "
                           f"levels (ZOO_SERVE_MAX_JSON_DEPTH)", 422)
    return value


def json_inputs(body: Any, reg: dict[str, Any] | None = None) -> tuple[Any, str]:
    """The raw inputs of a JSON body in any accepted shape, and the response shape to
    answer in ("zoo" or "kserve")."""
    reg = modalities() if reg is None else reg
    plain = next((n for n, m in reg.items() if m.plain_string), None)  # a bare string
    if isinstance(body, dict) and "instances" in body:  # KServe v1 / Open Inference
        raw = body["instances"]
        if isinstance(raw, list) and plain:
            raw = [{plain: x} if isinstance(x, str) else x for x in raw]
        return raw, "kserve"
    if not isinstance(body, dict) or "inputs" not in body:
        raise RequestError('expected {"inputs": [ {...}, ... ]} (or KServe {"instances": '
                           '[...]}, or {"inputs": "text"})')
    raw = body["inputs"]
    if isinstance(raw, str):  # the Hugging Face Inference API's text shape
        raw = [raw]
    if isinstance(raw, list) and raw and all(isinstance(x, str) for x in raw) and plain:
        raw = [{plain: x} for x in raw]
    return raw, "zoo"


def decode_input(raw: Any, i: int, limits: Any = None, ignored: Iterable[str] = ("id",),
                 reg: dict[str, Any] | None = None) -> dict[str, Any]:
    """One request input: every modality's value decoded by that modality; keys in
    ``ignored`` (``id``, the task's target keys) are dropped; any other key is a 400.
    ``reg``: the modalities (name -> Modality), when the caller holds them."""
    from zoo.serve.limits import Limits

    lim = limits or Limits()
    reg = modalities() if reg is None else reg
    if not isinstance(raw, dict):
        raise RequestError(f"inputs[{i}] must be an object such as {{\"{next(iter(reg))}\": "
                           f"...}}")
    if not raw:
        raise RequestError(f"inputs[{i}] is empty: give {', '.join(reg)}")
    out: dict[str, Any] = {}
    for key, value in raw.items():
        if key in ignored:
            continue
        if key not in reg:
            raise RequestError(f"inputs[{i}]: unknown key {str(key)[:40]!r} "
                               f"({', '.join(reg)})")
        out[key] = reg[key].from_request(value, f"inputs[{i}].{key}", lim)
    return out


def decode_inputs(raw: Any, limits: Any, ignored: Iterable[str] = ("id",),
                  reg: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """A request's list of raw inputs, counted and decoded within ``limits``."""
    if not isinstance(raw, list):
        raise RequestError("'inputs' must be a list")
    if not raw:
        raise RequestError("'inputs' is empty")
    if len(raw) > limits.max_inputs:
        raise RequestError(f"{len(raw)} inputs; at most {limits.max_inputs:g} per request "
                           f"(ZOO_SERVE_MAX_INPUTS)", 413)
    ignored = tuple(ignored)
    reg = modalities() if reg is None else reg
    return [decode_input(x, i, limits, ignored, reg) for i, x in enumerate(raw)]


def _media_modality(kind: str, reg: dict[str, Any]) -> str | None:
    return next((n for n, m in reg.items()
                 if any(kind.startswith(t) for t in m.media_types)), None)


def _json_or_text(value: str) -> Any:
    try:
        return json.loads(value)
    except ValueError:
        return value


async def _form_input(request: Any, max_body: int, limits: Any, reg: dict[str, Any]
                      ) -> tuple[dict[str, Any], dict[str, Any]]:
    """One input from multipart form fields named by modality (and a ``parameters`` field
    of JSON options), parsed from the bounded stream (a chunked body cannot slip past the
    limit)."""
    from starlette.formparsers import MultiPartException, MultiPartParser

    try:
        form = await MultiPartParser(request.headers,
                                     _bounded(request, max_body, limits.body_seconds),
                                     max_files=len(reg), max_fields=len(reg) + 1,
                                     max_part_size=max_body).parse()
    except MultiPartException as e:
        raise RequestError(f"the multipart body is malformed: {e.message}") from None
    unknown = [k for k in form.keys() if k not in reg and k != "parameters"]
    if unknown:
        raise RequestError(f"unknown form field(s) {unknown[:3]} ({', '.join(reg)})")
    out: dict[str, Any] = {}
    try:
        for key in reg:
            value = form.get(key)
            if value is None:
                continue
            where = f"form field {key!r}"
            if isinstance(value, str):
                out[key] = reg[key].from_request(value, where, limits)
            else:
                out[key] = await asyncio.to_thread(reg[key].from_bytes, await value.read(),
                                                   where, limits)
    finally:
        await form.close()
    if not out:
        raise RequestError(f"the form has none of the fields {', '.join(reg)}")
    field = form.get("parameters")
    if field is not None and not isinstance(field, str):
        raise RequestError("form field 'parameters' must be JSON text, not a file")
    return out, parameters(field, "form field 'parameters'")


async def request_inputs(request: Any, max_body: int, limits: Any,
                         ignored: Iterable[str] = ("id",),
                         reg: dict[str, Any] | None = None
                         ) -> tuple[list[dict], str, dict[str, Any]]:
    """The decoded inputs of a request of any accepted shape, the response shape, and the
    predict options it asks for (``"parameters"``; query keys beside a raw file body; a
    ``parameters`` form field)."""
    reg = modalities() if reg is None else reg
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    media = _media_modality(kind, reg) if kind else None
    if media is not None:  # a raw file as the body, other modalities in the query string
        data = await read_body(request, max_body, limits.body_seconds)
        raw = {media: await asyncio.to_thread(reg[media].from_bytes, data, "the body", limits)}
        params: dict[str, Any] = {}
        for key, value in request.query_params.items():
            if key in reg and key != media:
                raw[key] = reg[key].from_request(value, f"query {key!r}", limits)
            elif key not in reg:  # ?language=fr&beam_size=5: a predict option, JSON or text
                params[key] = _json_or_text(value)
        return [raw], "zoo", params
    if kind == "multipart/form-data":
        one, params = await _form_input(request, max_body, limits, reg)
        return [one], "zoo", params
    body = await read_json(request, max_body, limits)
    raw, shape = json_inputs(body, reg)
    params = parameters(body.get("parameters"), "\"parameters\"")
    if _cheap(raw, reg):  # nothing to decode: checked here, no thread hop
        return decode_inputs(raw, limits, ignored, reg), shape, params
    # decoding files is CPU work: off the event loop, so light requests keep answering
    return (await asyncio.to_thread(decode_inputs, raw, limits, tuple(ignored), reg), shape,
            params)


def parameters(value: Any, where: str) -> dict[str, Any]:
    """A request's predict options (the Hugging Face Inference API's ``"parameters"``):
    a JSON object of the head's decode options, checked by the head before running."""
    if value is None:
        return {}
    if isinstance(value, str):  # a form field or query value holds JSON text
        try:
            value = json.loads(value)
        except ValueError:
            raise RequestError(f"{where} is not JSON: give an object such as "
                               f'{{"beam_size": 5}}') from None
    if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
        raise RequestError(f'{where} must be an object such as {{"beam_size": 5}}')
    return value


def _cheap(raw: Any, reg: dict[str, Any]) -> bool:
    """Inputs whose values are all of modalities that decode nothing (not file-based)."""
    return isinstance(raw, list) and all(
        isinstance(x, dict) and all(k in reg and not reg[k].file_based for k in x) for x in raw)


def check_modalities(model: Any, inputs: list[dict[str, Any]],
                     required: Iterable[str] = ()) -> None:
    """Every input carries one of the model's modalities, those its task requires, and
    no other (a 400 naming the input otherwise)."""
    required = tuple(required)
    for i, x in enumerate(inputs):
        if not any(m in model.encoders for m in x):
            raise RequestError(f"inputs[{i}] has none of this model's modalities "
                               f"({', '.join(model.modalities)})")
        missing = [m for m in required if m not in x]
        if missing:
            raise RequestError(f"inputs[{i}]: a {model.task} model needs "
                               f"{' and '.join(map(repr, missing))}")
        extra = [m for m in x if m not in model.encoders]
        if extra:
            raise RequestError(f"inputs[{i}]: this model takes {', '.join(model.modalities)}, "
                               f"not {', '.join(extra)}")
