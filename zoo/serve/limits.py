"""What one serving request may hold: bounds on the work a request can cause. The core's
(inputs per request, JSON depth and value size, seconds) and every registered modality's
own (``Modality.limits``: decoded pixels, audio seconds and channels, text length), each
settable by ``ZOO_SERVE_<NAME>`` or ``zoo serve --limit NAME=VALUE``."""
from __future__ import annotations

import os
from typing import Any

from zoo.errors import ZooError
from zoo.registry import modalities

__all__ = ["Limits", "CORE_LIMITS"]

#: the core's limits: name -> default
CORE_LIMITS: dict[str, float] = {
    "max_inputs": 64,  # per request
    "max_json_depth": 32,
    "max_value_bytes": 1_000_000,  # one JSON input value (or correction), compactly encoded
    "request_seconds": 60.0,  # a prediction taking longer is answered 504
}


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

    def __getattr__(self, name: str) -> Any:
        values = self.__dict__.get("_values", {})
        if name in values:
            return values[name]
        raise AttributeError(f"no serving limit {name!r} (known: {', '.join(values)})")

    def asdict(self) -> dict[str, float]:
        return dict(self._values)

    def __repr__(self) -> str:
        return f"Limits({', '.join(f'{k}={v}' for k, v in self._values.items())})"
