"""Checking a model composition against the registry: its task and components exist and
fit each other. The result says which registered component each part resolved to.

A bare name that two plugins registered resolves, inside a model spec, to the one from the
model's own distribution, else to zoo's first-party distributions, so installing a plugin
that clashes with ours changes no model that was there before; otherwise it is ambiguous.
"""
from __future__ import annotations

from typing import Any

from zoo.errors import RegistryError
from zoo.registry.specs import ModelSpec, split_tag
from zoo.registry.store import AmbiguousNameError, Registry

__all__ = ["check_model", "UnresolvedError", "FIRST_PARTY"]

#: the distributions written together with the core; they win a clash inside model specs
FIRST_PARTY = ("zoo-mm", "zoo-text-hf", "zoo-vision-timm", "zoo-speech-torchaudio")


class UnresolvedError(RegistryError):
    """A model names a component that is not there (or ambiguous) in this environment."""


def _pick(reg: Registry, kind: str, name: str, prefer: str) -> Any:
    try:
        return reg.lookup(kind, name)
    except AmbiguousNameError as e:
        for dist in (prefer, *FIRST_PARTY):
            hits = [s for s in e.specs if s.distribution == dist]
            if len(hits) == 1:
                return hits[0]
        raise


def _check_part_weights(reg: Registry, spec: ModelSpec, w: str) -> None:
    """Pretrained weights named for the fusion or head themselves are registered."""
    for part in ("fusion", "head"):  # pretrained weights named for the part itself
        tag = (getattr(spec, part) or {}).get("pretrained")
        if tag is not None and not (isinstance(tag, str) and reg.has("weights", tag)):
            raise RegistryError(f"{w}: key '{part}.pretrained': unknown weights {tag!r} "
                                f"(see `zoo list --kind weights`)")


def check_model(reg: Registry, spec: ModelSpec, where: str) -> dict[str, str]:
    """Raise RegistryError (UnresolvedError for a missing component) when ``spec`` cannot
    be built here; else return part -> qualified name of the component it uses."""
    w = f"{where}: model {spec.name!r}"
    resolved: dict[str, str] = {}

    def find(kind: str, name: str, key: str) -> Any:
        try:
            found = _pick(reg, kind, name, spec.distribution)
        except RegistryError as e:
            raise UnresolvedError(f"{w}: key {key!r}: {e}") from None
        resolved[key] = found.qualified_name
        return found

    task = find("task", spec.task, "task")
    encs = {}
    for modality, ref in spec.encoders.items():
        if not reg.has("modality", modality):
            raise UnresolvedError(f"{w}: key 'encoders.{modality}': unknown modality "
                                  f"{modality!r}: no installed plugin registers it (see `zoo "
                                  f"list --kind modality`)")
        base, tag = split_tag(ref["name"])
        enc = find("encoder", base, f"encoders.{modality}")
        if enc.modality != modality:
            raise RegistryError(f"{w}: key 'encoders.{modality}': encoder {base!r} is a "
                                f"{enc.modality} encoder, not {modality}")
        if tag and not reg.has("weights", f"{base}.{tag}"):
            raise RegistryError(f"{w}: key 'encoders.{modality}': unknown weights "
                                f"{base}.{tag!s} (see `zoo list --kind weights`)")
        encs[modality] = enc
    _check_part_weights(reg, spec, w)
    head = find("head", spec.head["name"], "head")
    if task.name not in head.tasks:
        raise RegistryError(f"{w}: key 'head': head {head.name!r} serves "
                            f"{', '.join(head.tasks)}, not {task.name!r}")
    if spec.fusion is None:
        if "fused" in head.accepts:
            raise RegistryError(f"{w}: missing key 'fusion' (head {head.name!r} needs a "
                                f"fused input; e.g. fusion = \"concat-mlp\")")
        # a head without fusion reads encoder outputs itself; at least one encoder must
        # give what it takes (a text encoder beside a detector embeds its label prompts)
        if not any(set(enc.outputs) & set(head.accepts) for enc in encs.values()):
            given = ", ".join(f"{e.name!r} ({m}) gives {'/'.join(e.outputs)}"
                              for m, e in encs.items())
            raise RegistryError(f"{w}: key 'head': head {head.name!r} takes "
                                f"{'/'.join(head.accepts)} outputs but {given}")
        return resolved
    fusion = find("fusion", spec.fusion["name"], "fusion")
    if "fused" not in head.accepts:
        raise RegistryError(f"{w}: key 'head': head {head.name!r} reads encoder outputs "
                            f"({'/'.join(head.accepts)}), not a fusion's: drop the fusion")
    for modality, enc in encs.items():
        if not set(enc.outputs) & set(fusion.accepts):
            raise RegistryError(
                f"{w}: key 'fusion': fusion {fusion.name!r} takes "
                f"{'/'.join(fusion.accepts)} outputs but encoder {enc.name!r} "
                f"({modality}) gives {'/'.join(enc.outputs)}")
    return resolved
