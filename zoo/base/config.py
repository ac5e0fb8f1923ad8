"""Component configs captured from the arguments they were built with.

A component needs no hand-written ``config()``: the core records the keyword arguments it
passed to the factory (registered defaults merged with the model's own), and config.json
stores them. A component may still define ``config()`` when what rebuilds it differs from
what built it (a tokenizer read from the Hub, then saved beside the weights).
"""
from __future__ import annotations

from typing import Any, Mapping

from zoo.errors import RegistryError

__all__ = ["FRAMEWORK_ARGS", "capture", "config_of", "check_json"]

#: per kind, the arguments the core passes to factories itself; never in a stored config
FRAMEWORK_ARGS = {"encoder": ("pretrained", "weights", "assets_dir"),
                  "fusion": ("inputs",), "head": ("in_dim", "inputs")}

_JSON_SCALARS = (str, int, float, bool, type(None))


def check_json(value: Any, where: str) -> None:
    """Refuse what config.json cannot hold, naming the path to the value."""
    if isinstance(value, Mapping):
        for k, v in value.items():
            if not isinstance(k, _JSON_SCALARS):  # JSON writes scalar keys as strings
                raise RegistryError(f"{where}: key {k!r} must be a string")
            check_json(v, f"{where}.{k}")
    elif isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            check_json(v, f"{where}[{i}]")
    elif not isinstance(value, _JSON_SCALARS):
        raise RegistryError(f"{where}: {type(value).__name__} value {value!r} cannot be stored "
                            f"in config.json; use a string, number, bool, list or table")


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k if isinstance(k, str) else str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def capture(component: Any, kwargs: Mapping[str, Any], what: str, kind: str) -> None:
    """Remember the JSON arguments ``component`` (a ``kind``) was built with (``what``
    names it in errors: ``fusion 'film' (plugin 'tv')``)."""
    skip = FRAMEWORK_ARGS.get(kind, ())
    stored = {k: v for k, v in kwargs.items() if k not in skip}
    for k, v in stored.items():
        check_json(v, f"{what}: argument {k!r}")
    try:
        object.__setattr__(component, "_zoo_kwargs", _plain(stored))
    except (AttributeError, TypeError):
        pass


def config_of(component: Any, what: str = "component") -> dict[str, Any]:
    """The kwargs that rebuild ``component``: its own ``config()`` when it defines one,
    else the captured arguments."""
    fn = getattr(component, "config", None)
    cfg = fn() if callable(fn) else getattr(component, "_zoo_kwargs", None)
    if cfg is None:
        cfg = getattr(component, "_zoo_kwargs", {})
    check_json(cfg, f"{what}: config()")
    return _plain(dict(cfg))
