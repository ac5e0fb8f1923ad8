"""What one serving request may hold, and decoding it within bounds.

Every input is checked against :class:`Limits` before the expensive step: an image's
size is read from its header before its pixels are decoded, an audio file's rate and
length from its header before its samples. Beyond a limit the request is answered 413 (or
422 for an impossible value) with the limit's name and how to raise it.
"""
from __future__ import annotations

import base64
import binascii
import io
import os
from dataclasses import dataclass, fields
from typing import Any

__all__ = ["BadInput", "Limits", "decode_input", "decode_inputs", "json_inputs", "json_depth"]


class BadInput(ValueError):
    """A client error; a ``__413__``/``__422__`` prefix picks the status (else 400)."""


@dataclass(frozen=True)
class Limits:
    """Bounds on the work one request can cause; defaults are safe for a laptop. Each can
    be set by ``ZOO_SERVE_<NAME>`` (``ZOO_SERVE_MAX_PIXELS=100000000``) or
    ``zoo serve --limit max_pixels=100000000``."""

    max_pixels: int = 4096 * 4096  # decoded pixels per image
    max_audio_seconds: float = 120.0
    min_sample_rate: int = 4000
    max_sample_rate: int = 192000
    max_text_chars: int = 100_000
    max_inputs: int = 64  # per request
    max_json_depth: int = 32
    request_seconds: float = 60.0  # a prediction taking longer is answered 504

    @classmethod
    def from_env(cls, **overrides: Any) -> "Limits":
        values: dict[str, Any] = {}
        for f in fields(cls):
            raw = overrides.get(f.name, os.environ.get(f"ZOO_SERVE_{f.name.upper()}"))
            if raw is None:
                continue
            try:
                values[f.name] = type(f.default)(float(raw))
            except (TypeError, ValueError):
                from zoo.errors import ZooError

                raise ZooError(f"serving limit {f.name} must be a number, got {raw!r}") from None
            if values[f.name] <= 0:
                from zoo.errors import ZooError

                raise ZooError(f"serving limit {f.name} must be positive, got {raw!r}")
        unknown = set(overrides) - {f.name for f in fields(cls)}
        if unknown:
            from zoo.errors import ZooError

            raise ZooError(f"unknown serving limit(s) {sorted(unknown)} (known: "
                           f"{', '.join(f.name for f in fields(cls))})")
        return cls(**values)


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


def _too_big(what: str, value: str, limit: str, env: str) -> BadInput:
    return BadInput(f"__413__{what} is {value}; the limit is {limit} ({env}, or zoo serve "
                    f"--limit {env[len('ZOO_SERVE_'):].lower()}=...)")


def decode_input(raw: Any, i: int, limits: Limits | None = None) -> dict[str, Any]:
    """One request input: text as is; image / audio from base64 (or a data: URL)."""
    lim = limits or Limits()
    if not isinstance(raw, dict):
        raise BadInput(f"inputs[{i}] must be an object such as {{\"text\": \"...\"}}")
    if not raw:
        raise BadInput(f"inputs[{i}] is empty: give text, image or audio")
    out: dict[str, Any] = {}
    for key, value in raw.items():
        if key not in ("text", "image", "audio"):
            raise BadInput(f"inputs[{i}]: unknown key {str(key)[:40]!r} (text, image, audio)")
        if not isinstance(value, str):
            raise BadInput(f"inputs[{i}].{key} must be a string"
                           + ("" if key == "text" else " (base64)"))
        if key == "text":
            if len(value) > lim.max_text_chars:
                raise _too_big(f"inputs[{i}].text", f"{len(value)} characters",
                               f"{lim.max_text_chars}", "ZOO_SERVE_MAX_TEXT_CHARS")
            out["text"] = value
            continue
        b64 = value.split(",", 1)[1] if value.startswith("data:") else value
        try:
            data = base64.b64decode(b64, validate=True)
        except (binascii.Error, ValueError):
            raise BadInput(f"inputs[{i}].{key} is not valid base64") from None
        if not data:
            raise BadInput(f"inputs[{i}].{key} is empty")
        out[key] = _image(data, i, lim) if key == "image" else _audio(data, i, lim)
    return out


def json_inputs(body: Any) -> tuple[Any, str]:
    """The raw inputs of a JSON body in any accepted shape — ours ``{"inputs": [{...}]}``,
    KServe v1 ``{"instances": [...]}``, the Hugging Face ``{"inputs": "text"}`` — and the
    response shape to answer in ("zoo" or "kserve")."""
    if isinstance(body, dict) and "instances" in body:  # KServe v1 / Open Inference
        raw = body["instances"]
        if isinstance(raw, list):
            raw = [{"text": x} if isinstance(x, str) else x for x in raw]
        return raw, "kserve"
    if not isinstance(body, dict) or "inputs" not in body:
        raise BadInput('expected {"inputs": [ {...}, ... ]} (or KServe {"instances": [...]}, '
                       'or {"inputs": "text"})')
    raw = body["inputs"]
    if isinstance(raw, str):  # the Hugging Face Inference API's text shape
        raw = [raw]
    if isinstance(raw, list) and raw and all(isinstance(x, str) for x in raw):
        raw = [{"text": x} for x in raw]
    return raw, "zoo"


def decode_inputs(raw: Any, limits: Limits) -> list[dict[str, Any]]:
    """A request's list of raw inputs, counted and decoded within ``limits``."""
    if not isinstance(raw, list):
        raise BadInput("'inputs' must be a list")
    if not raw:
        raise BadInput("'inputs' is empty")
    if len(raw) > limits.max_inputs:
        raise BadInput(f"__413__{len(raw)} inputs; at most {limits.max_inputs} per request "
                       f"(ZOO_SERVE_MAX_INPUTS)")
    return [decode_input(x, i, limits) for i, x in enumerate(raw)]


def _image(data: bytes, i: int, lim: Limits) -> Any:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as im:  # reads the header only
            w, h = im.size
            if w * h > lim.max_pixels:
                raise _too_big(f"inputs[{i}].image", f"{w}x{h} ({w * h / 1e6:.1f} Mpx)",
                               f"{lim.max_pixels / 1e6:.1f} Mpx", "ZOO_SERVE_MAX_PIXELS")
            return im.convert("RGB")
    except BadInput:
        raise
    except Image.DecompressionBombError:
        raise BadInput(f"__413__inputs[{i}].image decompresses to too many pixels") from None
    except (UnidentifiedImageError, OSError, ValueError):
        raise BadInput(f"inputs[{i}].image is not a readable image") from None


def _audio(data: bytes, i: int, lim: Limits) -> Any:
    import soundfile as sf

    try:
        info = sf.info(io.BytesIO(data))  # the header: rate and length before any sample
    except Exception:
        raise BadInput(f"inputs[{i}].audio is not a readable audio file (WAV, FLAC or OGG)"
                       ) from None
    if not lim.min_sample_rate <= info.samplerate <= lim.max_sample_rate:
        raise BadInput(f"__422__inputs[{i}].audio has a sample rate of {info.samplerate} Hz; "
                       f"accepted: {lim.min_sample_rate}-{lim.max_sample_rate} Hz")
    seconds = info.frames / info.samplerate
    if seconds > lim.max_audio_seconds:
        raise _too_big(f"inputs[{i}].audio", f"{seconds:.1f} s", f"{lim.max_audio_seconds:g} s",
                       "ZOO_SERVE_MAX_AUDIO_SECONDS")
    try:
        wav, rate = sf.read(io.BytesIO(data), dtype="float32", always_2d=True)
    except Exception:
        raise BadInput(f"inputs[{i}].audio is not a readable audio file (WAV, FLAC or OGG)"
                       ) from None
    if not len(wav):
        raise BadInput(f"inputs[{i}].audio has no samples")
    return (wav.mean(axis=1), rate)


#: the OpenAPI description of POST /predict (FastAPI cannot infer it: the body is read
#: as a stream so its size is bounded before parsing)
_PREDICT_BODY = {"content": {
    "application/json": {"schema": {"oneOf": [
        {"type": "object", "required": ["inputs"], "properties": {"inputs": {
            "type": "array", "items": {"type": "object", "properties": {
                "text": {"type": "string"},
                "image": {"type": "string", "description": "base64 or a data: URL"},
                "audio": {"type": "string", "description": "base64 WAV/FLAC/OGG"}}}}}},
        {"type": "object", "required": ["instances"], "description": "KServe v1",
         "properties": {"instances": {"type": "array"}}},
        {"type": "object", "required": ["inputs"], "description": "Hugging Face Inference "
         "API: a string or a list of strings", "properties": {"inputs": {"type": "string"}}}]},
        "example": {"inputs": [{"text": "a photo of a cat"}]}},
    "multipart/form-data": {"schema": {"type": "object", "properties": {
        "text": {"type": "string"}, "image": {"type": "string", "format": "binary"},
        "audio": {"type": "string", "format": "binary"}}}},
    "image/*": {"schema": {"type": "string", "format": "binary"}},
    "audio/*": {"schema": {"type": "string", "format": "binary"}}}}
_PREDICT_RESPONSES = {"200": {"description": "One output per input: {\"outputs\": [...]} "
                              "(KServe: {\"predictions\": [...]})"},
                      "400": {"description": "a bad input, named"},
                      "401": {"description": "missing or wrong API key"},
                      "413": {"description": "over a limit, named"},
                      "422": {"description": "an impossible value (e.g. sample rate)"}}
