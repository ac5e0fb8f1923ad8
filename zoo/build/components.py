"""Components from their registrations, and a model from built components: every
component is built through :func:`build_component`, which captures the JSON arguments it
was built with (its config) and checks what it built against what was registered (an
encoder's modality and ``dim``), naming the plugin on a mismatch; :func:`compose_parts`
puts encoders, fusion and head together into a :class:`zoo.model.ZooModel` of a task.
Rebuilding from a saved config looks components up by the distribution that provided them
(:func:`lookup_for_load`)."""
from __future__ import annotations

import re
import warnings
from typing import Any, Mapping

from zoo.base.config import capture, config_of
from zoo.errors import LoadError, RegistryError, ZooError
from zoo.registry import ComponentSpec, get_registry, get_task

__all__ = ["FORMAT_VERSION", "build_component", "compose_parts", "lookup_for_load",
           "head_inputs", "provider", "spec_name", "as_ref", "ref_kwargs"]

#: config.json's format; bumped when a saved model would be read differently.
FORMAT_VERSION = 1

_noted: set[tuple[str, str, str]] = set()
#: what a distribution name looks like (PEP 508); anything else is not echoed as a command
_DIST_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")


def spec_name(spec: ComponentSpec) -> str:
    return f"{spec.kind} {spec.name!r} (plugin {spec.plugin!r}, {spec.distribution})"

def build_component(spec: ComponentSpec, *, check: bool = True, saved: bool = False,
                    **kwargs: Any) -> Any:
    """Call ``spec``'s factory with its defaults and ``kwargs``; capture the config; check
    the result against the registration. ``saved``: ``kwargs`` are a saved model's (complete
    when it was saved), passed as they are, without today's registered defaults."""
    if spec.kind == "head":  # the framework arguments it takes (see _accepted)
        kwargs = _accepted(spec, kwargs)
    try:
        built = spec.rebuild(**kwargs) if saved else spec.build(**kwargs)
    except TypeError as e:
        raise ZooError(f"{spec_name(spec)} does not take these arguments: {e}") from None
    capture(built, kwargs if saved else {**spec.defaults, **kwargs}, spec_name(spec),
            spec.kind)
    if check:
        _check_built(spec, built, user_kwargs=kwargs)
    return built

def _accepted(spec: ComponentSpec, kwargs: dict[str, Any]) -> dict[str, Any]:
    """A head's framework arguments: after a fusion it gets ``in_dim``, reading encoder
    outputs it gets ``inputs`` (as always); the other one only when its factory names it
    (``factory(in_dim=None, inputs=..., **kw)`` gets both)."""
    import inspect

    from zoo.registry import resolve_import

    main = "in_dim" if "fused" in spec.accepts else "inputs"
    other = "inputs" if main == "in_dim" else "in_dim"
    try:
        named = inspect.signature(resolve_import(spec.factory)).parameters
    except (TypeError, ValueError):
        named = {}
    if other in kwargs and other not in named:
        kwargs = {k: v for k, v in kwargs.items() if k != other}
    return kwargs

def _check_built(spec: ComponentSpec, built: Any, user_kwargs: Mapping[str, Any]) -> None:
    what = spec_name(spec)
    if spec.kind == "encoder":
        for attr in ("preprocess", "forward", "modality", "dim", "outputs"):
            if not hasattr(built, attr):
                raise RegistryError(f"{what}: the factory returned a {type(built).__name__} "
                                    f"without {attr!r}; return a zoo.plugin.Encoder")
        if built.modality != spec.modality:
            raise RegistryError(f"{what}: registered as a {spec.modality} encoder but built "
                                f"a {built.modality or 'modality-less'} one; set the class's "
                                f"modality = {spec.modality!r}")
        own = {k for k in user_kwargs if k not in ("pretrained", "weights", "assets_dir")}
        if spec.dim is not None and not own and int(built.dim) != spec.dim:
            raise RegistryError(f"{what}: registered dim={spec.dim} but the built encoder "
                                f"has dim {built.dim}; fix dim= in register_encoders")
    elif spec.kind == "fusion":
        if not isinstance(getattr(built, "out_dim", None), int):
            raise RegistryError(f"{what}: the built fusion has no int 'out_dim' attribute "
                                f"(the width of its output, which the head needs)")
    elif spec.kind == "head":
        for attr in ("loss", "decode", "encode_targets"):
            if not callable(getattr(built, attr, None)):
                raise RegistryError(f"{what}: the built head has no {attr}(); subclass "
                                    f"zoo.plugin.Head")

def provider(spec: Any) -> dict[str, str]:
    return {"distribution": spec.distribution, "version": spec.version}

def as_ref(value: Any) -> dict[str, Any]:
    return {"name": value} if isinstance(value, str) else dict(value)

def ref_kwargs(ref: Mapping[str, Any]) -> dict[str, Any]:
    """A fusion / head entry -> its factory kwargs (``pretrained`` names pretrained weights
    for the part itself and is not an argument)."""
    kwargs = {k: v for k, v in ref.items() if k not in ("name", "kwargs", "pretrained")}
    kwargs.update(ref.get("kwargs") or {})
    return kwargs

def compose_parts(name: str, task: str, encoders: dict[str, Any], enc_entries: dict[str, Any],
             fusion_ref: Mapping[str, Any] | None, head_ref: Mapping[str, Any] | None,
             description: str = "", saved: bool = False) -> Any:
    """``saved``: the fusion / head kwargs are a saved model's (see build_component)."""
    from zoo.model import ZooModel

    reg = get_registry()
    tspec = reg.task(task)
    config: dict[str, Any] = {"zoo_format": FORMAT_VERSION, "name": name, "task": tspec.name,
                              "task_provider": provider(tspec), "description": description,
                              "encoders": enc_entries, "fusion": None, "head": None}
    fusion = head = None
    inputs = {m: {"dim": e.dim, "outputs": list(e.outputs)} for m, e in encoders.items()}
    if fusion_ref is not None:
        fspec = reg.component("fusion", fusion_ref["name"])
        fusion = build_component(fspec, saved=saved, inputs=inputs, **ref_kwargs(fusion_ref))
        config["fusion"] = {"name": fspec.name, **provider(fspec), "weights": None,
                            "kwargs": config_of(fusion, spec_name(fspec))}
    if head_ref is not None:
        hspec = reg.component("head", head_ref["name"])
        head = build_component(hspec, saved=saved, **head_inputs(encoders, fusion),
                               **ref_kwargs(head_ref))
        config["head"] = {"name": hspec.name, **provider(hspec), "weights": None,
                          "kwargs": config_of(head, spec_name(hspec))}
    model = ZooModel(config, encoders, fusion, head, task=get_task(tspec.qualified_name))
    model.config = model.component_config()
    model.eval()
    return model

def head_inputs(encoders: Mapping[str, Any], fusion: Any) -> dict[str, Any]:
    """The head factory's framework arguments (one signature for every head): the
    fusion's width (None without a fusion) and every encoder's description."""
    return {"in_dim": fusion.out_dim if fusion is not None else None,
            "inputs": {m: e.describe() for m, e in encoders.items()}}


def lookup_for_load(kind: str, entry: Mapping[str, Any], where: str) -> Any:
    from zoo.registry.manager import CORE_DISTRIBUTION

    if not isinstance(entry, Mapping) or not isinstance(entry.get("name"), str):
        raise LoadError(f"config.json: {where} must be an object with a 'name'")
    reg = get_registry()
    name = entry["name"]
    dist = entry.get("distribution")
    if dist == "zoo":  # saved before the core distribution had its own name
        dist = CORE_DISTRIBUTION
    try:
        spec = reg.lookup(kind, f"{dist}:{name}" if dist and reg.has(kind, f"{dist}:{name}")
                          else name)
    except RegistryError:
        if isinstance(dist, str) and dist != CORE_DISTRIBUTION and _DIST_RE.match(dist):
            version = entry.get("version")
            filtered = _filtered_out(dist)
            if filtered:
                raise LoadError(f"this model needs {kind} {name!r} from {dist}, which is "
                                f"installed but not loaded: {filtered}") from None
            raise LoadError(
                f"this model needs {kind} {name!r} from the plugin distribution {dist}"
                f"{' ' + str(version) if version else ''}, which is not installed: "
                f"`pip install {dist}` (or `zoo install {dist}`)") from None
        raise LoadError(f"config.json names {kind} {name!r}, which no installed plugin "
                        f"provides (see `zoo list --kind {kind}`)") from None
    saved = entry.get("version")
    key = (spec.distribution, str(saved), spec.version)
    if saved and spec.version and str(saved) != spec.version and key not in _noted:
        _noted.add(key)
        warnings.warn(f"this model was saved with {spec.distribution} {saved}; {spec.version} "
                      f"is installed ({kind} {name!r}): check its changelog if predictions "
                      f"differ", UserWarning, stacklevel=3)
    return spec

def _filtered_out(dist: str) -> str | None:
    """Why an installed plugin distribution did not load (ZOO_PLUGINS leaves it out, or it
    failed), or None when it is not installed."""
    import os
    from importlib import metadata

    try:
        eps = [ep.name for ep in metadata.distribution(dist).entry_points if ep.group == "zoo"]
    except metadata.PackageNotFoundError:
        return None
    from zoo.registry import plugin_infos

    failed = [i for i in plugin_infos() if i.distribution == dist and i.error]
    if failed:
        return f"it failed to load ({failed[0].error[:120]}; see `zoo plugins`)"
    allowed = os.environ.get("ZOO_PLUGINS")
    if allowed is not None:
        return (f"ZOO_PLUGINS={allowed!r} leaves it out: add {eps[0] if eps else dist!r} to "
                f"ZOO_PLUGINS, or unset it")
    return None
