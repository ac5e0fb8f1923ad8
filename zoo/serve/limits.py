"""What one serving request may hold: bounds on the work a request can cause. The core's
(inputs per request, JSON depth and value size, seconds) and every registered modality's
own (``Modality.limits``: decoded pixels, audio seconds and channels, text length), each
settable by ``ZOO_SERVE_<NAME>`` or ``zoo serve --limit NAME=VALUE``."""
from __future__ import annotations

import os
from typing import Any

from zoo.errors import ZooError
from zoo.registry import modalities

__all__ = ["Limits", "CORE_LIMITS", "DecodePool"]

#: the core's limits: name -> default
CORE_LIMITS: dict[str, float] = {
    "max_inputs": 64,  # per request
    "max_json_depth": 32,
    "max_value_bytes": 1_000_000,  # one JSON input value (or correction), compactly encoded
    "request_seconds": 60.0,  # a prediction taking longer is answered 504
    "body_seconds": 30.0,  # a request body still arriving after this is answered 408
    # what decoding may allocate (pixels, audio samples x channels), charged by each
    # modality before it decodes: per request, and for all requests in flight together
    "max_decoded_bytes": 256_000_000,
    # POST /feedback: what the store may hold, and how often one client may post
    "feedback_max_rows": 1_000_000,
    "feedback_max_bytes": 2_000_000_000,
    "feedback_per_minute": 120,
    "max_inflight_decoded_bytes": 1_000_000_000,
    # POST /explain: inputs per request, units per input (words, patches, windows) and
    # Shapley orderings; each unit costs one prediction (ablation), or one per ordering
    "max_explain_inputs": 4,
    "max_explain_units": 64,
    "max_explain_samples": 16,
}


class DecodePool:
    """The server's in-flight decoded bytes: requests charge it while they hold decoded
    inputs; past ``max_inflight_decoded_bytes`` a request is answered 503 (retry), so
    concurrent requests cannot multiply the per-request bound into an out-of-memory."""

    def __init__(self, limit: float) -> None:
        import threading

        self.limit, self.used, self.lock = float(limit), 0.0, threading.Lock()

    def take(self, n: float, where: str) -> None:
        with self.lock:
            if self.used + n > self.limit:
                from zoo.errors import RequestError

                raise RequestError(f"{where}: the server is decoding other requests' inputs "
                                   f"up to its limit ({self.limit / 1e6:.0f} MB, "
                                   f"ZOO_SERVE_MAX_INFLIGHT_DECODED_BYTES); retry shortly", 503)
            self.used += n

    def give(self, n: float) -> None:
        with self.lock:
            self.used = max(0.0, self.used - n)


class Limits:
    """Bounds on the work one request can cause; defaults are safe for a laptop. Read as
    attributes (``limits.max_pixels``); a modality's ``from_request`` reads its own."""

    def __init__(self, **values: float) -> None:
        defaults = self.defaults()
        unknown = set(values) - set(defaults)
        if unknown:
            raise ZooError(f"unknown serving limit(s) {sorted(unknown)} (known: "
                           f"{', '.join(defaults)})")
        self._values = {**defaults, **values}

    @staticmethod
    def defaults() -> dict[str, float]:
        """Every limit's default: the core's, then each registered modality's."""
        out = dict(CORE_LIMITS)
        for modality in modalities().values():
            out.update(modality.limits)
        return out

    @classmethod
    def from_env(cls, **overrides: Any) -> "Limits":
        """Defaults, then ``ZOO_SERVE_<NAME>`` variables, then ``overrides``; each checked
        (a number, positive) with one line naming it."""
        defaults = cls.defaults()
        unknown = set(overrides) - set(defaults)
        if unknown:
            raise ZooError(f"unknown serving limit(s) {sorted(unknown)} (known: "
                           f"{', '.join(defaults)})")
        values: dict[str, float] = {}
        for name, default in defaults.items():
            raw = overrides.get(name, os.environ.get(f"ZOO_SERVE_{name.upper()}"))
            if raw is None:
                continue
            try:
                values[name] = type(default)(float(raw))
            except (TypeError, ValueError):
                raise ZooError(f"serving limit {name} must be a number, got {raw!r}") from None
            if values[name] <= 0:
                raise ZooError(f"serving limit {name} must be positive, got {raw!r}")
        return cls(**values)

    # ---- the request budget ---------------------------------------------------------
    def for_request(self, pool: DecodePool | None = None) -> "Limits":
        """These limits with a fresh budget of decoded bytes for one request (charged by
        :meth:`charge`, drawn from ``pool`` too; :meth:`release` gives it back)."""
        out = Limits.__new__(Limits)
        out.__dict__.update(_values=self._values, _charged=0.0, _pool=pool, _budget=True)
        return out

    def charge(self, nbytes: float, where: str) -> None:
        """A modality about to decode ``nbytes`` (pixels x channels, samples x channels x
        4): refused with 413 past ``max_decoded_bytes`` for the request, 503 past the
        server's in-flight bound. Outside a request's budget: nothing to count."""
        if not self.__dict__.get("_budget"):
            return
        from zoo.errors import RequestError

        total = self._charged + float(nbytes)
        if total > self.max_decoded_bytes:
            raise RequestError(f"{where}: the request's inputs decode to over "
                               f"{self.max_decoded_bytes / 1e6:.0f} MB (pixels and audio "
                               f"samples together; ZOO_SERVE_MAX_DECODED_BYTES, or zoo serve "
                               f"--limit max_decoded_bytes=...)", 413)
        if self._pool is not None:
            self._pool.take(float(nbytes), where)
        self.__dict__["_charged"] = total

    def release(self) -> float:
        """Give the request's decoded bytes back to the pool; returns how many."""
        n = self.__dict__.get("_charged", 0.0)
        if self.__dict__.get("_pool") is not None and n:
            self._pool.give(n)
        self.__dict__["_charged"] = 0.0
        return n

    def __getattr__(self, name: str) -> Any:
        values = self.__dict__.get("_values", {})
        if name in values:
            return values[name]
        raise AttributeError(f"no serving limit {name!r} (known: {', '.join(values)})")

    def asdict(self) -> dict[str, float]:
        return dict(self._values)

    def __repr__(self) -> str:
        return f"Limits({', '.join(f'{k}={v}' for k, v in self._values.items())})"
