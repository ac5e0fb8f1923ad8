"""zoo: a multimodal model zoo and plugin registry.

The public API is imported lazily: ``import zoo`` is cheap and pulls in torch only when a
model is built. Nothing inside zoo imports this module: it sits on top of every layer.
"""
from __future__ import annotations

from typing import Any

from zoo.errors import ZooError
from zoo.hookspecs import hookimpl
from zoo.version import __version__

__all__ = ["hookimpl", "list_models", "model_info", "create_model", "compose", "load",
           "train", "evaluate", "calibrate", "explain", "tune", "ZooError", "__version__"]

# public name -> (module, attribute), imported on first use
_LAZY = {
    "list_models": ("zoo.registry.listing", "list_models"),
    "model_info": ("zoo.registry.listing", "model_info"),
    "create_model": ("zoo.build.compose", "create_model"),
    "compose": ("zoo.build.compose", "compose"),
    "load": ("zoo.io.hub", "load"),
    "evaluate": ("zoo.evaluation", "evaluate"),
    "explain": ("zoo.explanation", "explain"),  # captum is imported when one runs
    "calibrate": ("zoo.calibration", "calibrate"),
    "train": ("zoo.training", "train"),
    "tune": ("zoo.tuning", "tune"),  # optuna is imported when a search starts
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        module, attr = _LAZY[name]
        value = getattr(importlib.import_module(module), attr)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'zoo' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
