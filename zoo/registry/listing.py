"""What ``zoo list`` and ``zoo info`` say: names by pattern and filters, and a model's or
component's metadata with where its weights come from. Metadata only: nothing is built."""
from __future__ import annotations

from typing import Any

from zoo.registry.collect import get_registry
from zoo.registry.specs import split_tag

__all__ = ["list_models", "model_info"]


def list_models(pattern: str | None = None, *, task: str | None = None,
                modality: str | None = None, kind: str | None = "model",
                pretrained: bool | None = None, ready: bool | None = None) -> list[str]:
    """Names of registered models (``kind=None`` for every kind), filtered like ``zoo list``
    (``ready=True``: models whose every trained part, head included, has real weights)."""
    rows = get_registry().rows(pattern, kind=kind, task=task, modality=modality,
                               pretrained=pretrained, ready=ready)
    return sorted(r["name"] for r in rows)


def model_info(name: str) -> dict[str, Any]:
    """Metadata of a model or component: what it is, which plugin provides it."""
    reg = get_registry()
    kind, spec = reg.find(name)
    if kind != "model":
        return spec.row()
    row = spec.row(reg)
    row["weights"] = _provenance(reg, spec)
    return row


def _provenance(reg: Any, spec: Any) -> dict[str, Any]:
    """part -> where its pretrained weights come from (tag, sources, sha256, licence)."""
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
