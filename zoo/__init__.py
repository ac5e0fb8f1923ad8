"""zoo: a multimodal model zoo and plugin registry.

The public API is imported lazily: ``import zoo`` is cheap and pulls in torch only when a
model is built.
"""
from __future__ import annotations

from typing import Any

from .hookspecs import hookimpl

__version__ = "0.1.0"

__all__ = ["hookimpl", "list_models", "model_info", "create_model", "load", "train",
           "evaluate", "tune", "ZooError", "__version__"]

from .errors import ZooError  # noqa: E402  (cheap, no torch)


def list_models(pattern: str | None = None, *, task: str | None = None,
                modality: str | None = None, kind: str | None = "model",
                pretrained: bool | None = None, ready: bool | None = None) -> list[str]:
    """Names of registered models (``kind=None`` for every kind), filtered like ``zoo list``
    (``ready=True``: models whose every trained part, head included, has real weights)."""
    from .registry import get_registry

    rows = get_registry().rows(pattern, kind=kind, task=task, modality=modality,
                               pretrained=pretrained, ready=ready)
    return sorted(r["name"] for r in rows)


def model_info(name: str) -> dict[str, Any]:
    """Metadata of a model or component: what it is, which plugin provides it."""
    from .registry import get_registry

    reg = get_registry()
    kind, spec = reg.find(name)
    if kind != "model":
        return spec.row()
    row = spec.row(reg)
    row["weights"] = _provenance(reg, spec)
    return row


def _provenance(reg: Any, spec: Any) -> dict[str, Any]:
    """part -> where its pretrained weights come from (tag, sources, sha256, licence)."""
    from .registry import split_tag

    tags = {}
    for m, enc in spec.encoders.items():
        base, tag = split_tag(enc["name"])
        espec = reg.resolved(spec, f"encoders.{m}", "encoder", base)
        if enc.get("pretrained", True) and espec is not None:
            tags[f"encoder {m}"] = f"{espec.name}.{tag}" if tag else espec.weights
    for part in ("fusion", "head"):
        tags[part] = (getattr(spec, part) or {}).get("pretrained")
    out = {}
    for part, tag in tags.items():
        if tag and reg.has("weights", tag):
            w = reg.weights(tag)
            out[part] = {"tag": tag, "license": w.license, "sources": list(w.sources),
                         "sha256": w.sha256, "base_model": w.base_model}
        else:
            out[part] = None  # random initialisation
    return out


def create_model(name: str, pretrained: bool = False, **overrides: Any) -> Any:
    """Build a model (or an encoder-only model) by registry name. See ``zoo.compose``."""
    from .compose import create_model as _create

    return _create(name, pretrained=pretrained, **overrides)


def load(name_or_path: Any, **kwargs: Any) -> Any:
    """Load a model from a folder, ``hf-hub:org/name[@rev]`` or a registry name."""
    from .hub import load as _load

    return _load(name_or_path, **kwargs)


def evaluate(model: Any, data: Any, **kwargs: Any) -> dict[str, Any]:
    """Metrics of ``model`` (a model, folder or name) on ``data`` (a manifest, a COCO file
    or a list of examples). See ``zoo.evaluation.evaluate`` for the options."""
    from .evaluation import evaluate as _evaluate

    return _evaluate(model, data, **kwargs)


def __getattr__(name: str) -> Any:
    if name == "train":
        from .training import train as _train

        return _train
    if name == "tune":  # optuna is imported when a search starts, not here
        from .tuning import tune as _tune

        return _tune
    raise AttributeError(f"module 'zoo' has no attribute {name!r}")
