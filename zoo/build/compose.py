"""Building models: from a registry name (``create_model``), from components
(``compose``); ``zoo.build.from_config`` rebuilds one from a saved config.

Every component is built through :func:`build_component`, which captures the JSON
arguments it was built with (its config), and checks what it built against what was
registered (an encoder's modality and ``dim``), naming the plugin on a mismatch.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

from zoo.base.config import config_of
from zoo.errors import RegistryError, UnknownNameError, ZooError
from zoo.build.components import (FORMAT_VERSION, as_ref, build_component, compose_parts,
                                   head_inputs, lookup_for_load, provider, spec_name)
from zoo.registry import ComponentSpec, ModelSpec, get_registry, get_task, split_tag

__all__ = ["create_model", "compose", "build_component", "encoder_ref", "with_encoders",
           "replace_head", "derive_model", "FORMAT_VERSION"]


_OVERRIDES = ("labels", "encoders", "fusion", "head")














def _build_encoder(spec: ComponentSpec, *, tag: str | None, pretrained: bool,
                   kwargs: Mapping[str, Any], assets_dir: Path | None = None) -> Any:
    # an explicit source (a folder, a Hub id) is the weights, unless a tag names others
    weights = tag or (None if kwargs.get("source") else spec.weights)
    if pretrained and not weights and not kwargs.get("source"):
        raise ZooError(f"encoder {spec.name!r} has no pretrained weights; use "
                       f"pretrained=False (see `zoo list --pretrained`)")
    return build_component(spec, pretrained=bool(pretrained),
                           weights=weights if pretrained else None,
                           assets_dir=str(assets_dir) if assets_dir else None, **kwargs)


def _encoder_entry(spec: ComponentSpec, enc: Any, tag: str | None) -> dict[str, Any]:
    return {"name": spec.name, **provider(spec), "weights": tag,
            "kwargs": config_of(enc, spec_name(spec))}




def _load_part_weights(model: Any, refs: Mapping[str, Any], pretrained: bool) -> None:
    """Pretrained weights of the fusion and head (``pretrained = "tag"`` in their entries):
    loaded when the model is built pretrained and recorded as the part's ``weights`` in
    config.json."""
    from zoo.weights import load_weights

    for part in ("fusion", "head"):
        ref, module = refs.get(part), getattr(model, part)
        tag = ref.get("pretrained") if isinstance(ref, Mapping) else None
        if tag is not None and not isinstance(tag, str):
            raise ZooError(f"{part}: pretrained= must name registered weights (a tag), "
                           f"got {tag!r}")
        if module is None or not tag:
            continue
        if pretrained:
            load_weights(module, tag)
        model.config[part]["weights"] = tag if pretrained else None






def create_model(name: str, pretrained: bool = False, **overrides: Any) -> Any:
    """A model by registry name; an encoder name gives an encoder-only model (``embed``),
    and then ``overrides`` are the encoder's own keyword arguments (``source=``, ``arch=``).

    ``overrides``: ``labels=[...]`` (classification), ``encoders={modality: name-or-table}``,
    ``fusion=name-or-table``, ``head=table`` (merged into the registry's head kwargs).
    """
    reg = get_registry()
    kind, spec = reg.find(name)
    if kind == "encoder":  # overrides are the encoder factory's kwargs (timm style)
        from zoo.base.config import check_json

        try:
            check_json(overrides, f"create_model({name!r}) kwargs")
        except RegistryError as e:
            raise ZooError(str(e)) from None
        base, tag = split_tag(name)
        if tag and not reg.has("weights", f"{spec.name}.{tag}"):
            raise UnknownNameError(f"unknown weights {name!r} for encoder {spec.name!r} "
                                   f"(see `zoo list --kind weights`)")
        enc = _build_encoder(spec, tag=f"{spec.name}.{tag}" if tag else None,
                             pretrained=pretrained, kwargs=overrides)
        wtag = enc_tag(spec, tag, pretrained, overrides.get("source"))
        return compose_parts(spec.name, _encoder_only_task(reg), {spec.modality: enc},
                        {spec.modality: _encoder_entry(spec, enc, wtag)},
                        None, None, spec.description)
    if kind != "model":
        raise ZooError(f"{name!r} is a {kind}, not a model or encoder; compose it in a model "
                       f"(registry.toml) or pass it as an override, e.g. fusion={name!r}")
    bad = set(overrides) - set(_OVERRIDES)
    if bad:
        raise ZooError(f"create_model: unknown argument(s) {sorted(bad)} (allowed: "
                       f"{', '.join(_OVERRIDES)})")
    mspec: ModelSpec = spec
    if mspec.unavailable:
        raise ZooError(f"model {name!r} cannot be built here: {mspec.unavailable}")
    # the qualified names the registry resolved (a clash elsewhere changes nothing here)
    enc_refs = {m: {**r, "name": _qualified(mspec, f"encoders.{m}", r["name"])}
                for m, r in mspec.encoders.items()}
    for m, r in (overrides.get("encoders") or {}).items():
        enc_refs[m] = as_ref(r)
    fusion_ref = ({**mspec.fusion, "name": _qualified(mspec, "fusion", mspec.fusion["name"])}
                  if mspec.fusion else None)
    if overrides.get("fusion") is not None:
        fusion_ref = as_ref(overrides["fusion"])
    head_ref = {**mspec.head, "name": _qualified(mspec, "head", mspec.head["name"]),
                **(overrides.get("head") or {})}
    if overrides.get("labels") is not None:
        head_ref["labels"] = list(overrides["labels"])
    if overrides.get("labels") is not None or overrides.get("head"):
        head_ref.pop("pretrained", None)  # a changed head: its pretrained weights do not fit
    return compose(mspec.resolved.get("task", mspec.task), enc_refs, head_ref, fusion_ref,
                   name=mspec.name, pretrained=pretrained, description=mspec.description)


def _encoder_only_task(reg: Any) -> str:
    """The registered task of models built from an encoder alone (``Task.encoder_only``:
    embeddings, no head)."""
    for spec in reg.all("task"):
        if getattr(get_task(spec.qualified_name), "encoder_only", False):
            return spec.qualified_name
    raise ZooError("no installed plugin registers a task for encoder-only models "
                   "(Task.encoder_only); zoo's own 'zoo.tasks' plugin does")


def _qualified(spec: ModelSpec, part: str, name: str) -> str:
    qn = spec.resolved.get(part)
    if qn is None:
        return name
    _, tag = split_tag(name)
    return f"{qn}.{tag}" if tag else qn


def compose(task: str, encoders: Mapping[str, Any], head: Any, fusion: Any = None, *,
            name: str = "custom", pretrained: bool = False, description: str = "") -> Any:
    """A model from components, without a registry entry::

        compose("classification", {"text": "bert-tiny", "image": "timm-tiny"},
                head={"name": "classification", "labels": ["a", "b"]}, fusion="gated")
    """
    from zoo.registry import check_model, parse_model_spec

    raw = {"task": task, "encoders": dict(encoders), "head": head}
    if fusion is not None:
        raw["fusion"] = fusion
    spec = parse_model_spec(name, raw, where="compose", plugin="user", distribution="user",
                            version="")
    reg = get_registry()
    resolved = check_model(reg, spec, "compose")  # names as resolved (clashes decided once)
    encs, entries = {}, {}
    for m, ref in spec.encoders.items():
        base, tag = split_tag(ref["name"])
        espec = reg.lookup("encoder", resolved[f"encoders.{m}"])
        kwargs = {k: v for k, v in ref.items() if k not in ("name", "pretrained")}
        # a `source` (hf-text's folder or Hub id) counts as weights: loaded, not random
        use = bool(pretrained and ref.get("pretrained", True)
                   and (tag or espec.weights or kwargs.get("source")))
        encs[m] = _build_encoder(espec, tag=f"{espec.name}.{tag}" if tag else None,
                                 pretrained=use, kwargs=kwargs)
        entries[m] = _encoder_entry(espec, encs[m],
                                    enc_tag(espec, tag, use, kwargs.get("source")))
    fusion_ref = {**spec.fusion, "name": resolved["fusion"]} if spec.fusion else None
    head_ref = {**spec.head, "name": resolved["head"]}
    model = compose_parts(name, resolved["task"], encs, entries, fusion_ref, head_ref, description)
    _load_part_weights(model, {"fusion": spec.fusion, "head": spec.head}, pretrained)
    return model


def enc_tag(spec: ComponentSpec, tag: str | None, pretrained: bool,
            source: str | None = None) -> str | None:
    """The weights an encoder was initialised from (recorded for the model card): its tag,
    or ``source:<folder or Hub id>`` when an explicit source gave them."""
    if not pretrained:
        return None
    if tag:
        return f"{spec.name}.{tag}"
    return f"source:{source}" if source else spec.weights


def encoder_ref(modality: str, value: str) -> Any:
    """What ``zoo train --encoder MODALITY=VALUE`` puts in place of a model's encoder: a
    registry name as it is, or a folder ``zoo pretrain`` wrote as the registry encoder its
    objective names in ``zoo_pretrain.json`` (``folder_encoder``), loading that folder's
    weights with the settings it was pretrained with (``encoder_kwargs``)."""
    import json

    path = Path(value)
    if not path.is_dir():
        return value
    try:
        record = json.loads((path / "zoo_pretrain.json").read_text(encoding="utf-8"))
        name = record["folder_encoder"]
        kwargs = dict(record.get("encoder_kwargs") or {})
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        raise ZooError(f"--encoder {modality}={value}: no zoo_pretrain.json naming the encoder "
                       f"that loads this folder; pass a folder `zoo pretrain --objective ...` "
                       f"wrote, or a registry encoder name") from None
    try:
        spec = get_registry().encoder(str(name))
    except RegistryError as e:
        raise ZooError(f"--encoder {modality}={value}: {e}") from None
    if spec.modality != modality:
        raise ZooError(f"--encoder {modality}={value}: the folder holds a {spec.modality} "
                       f"encoder ({spec.name}), not a {modality} one")
    return {"name": spec.name, **kwargs, "source": str(path.absolute())}


def with_encoders(model: str, encoders: Mapping[str, str], *, seed: int = 0) -> Any:
    """Registry model ``model`` built pretrained with some encoders replaced (``zoo train
    --encoder MODALITY=NAME_OR_FOLDER``): each value a registry encoder name or a
    transformers text folder (see :func:`encoder_ref`), loaded with its weights."""
    import torch

    if Path(str(model)).exists():
        raise ZooError(f"--encoder replaces encoders of a registry model, and {model} is a "
                       f"folder (a saved model keeps its own); name a registry model")
    spec = get_registry().model(model)
    for m in encoders:
        if m not in spec.encoders:
            raise ZooError(f"--encoder {m}=...: model {model!r} has no {m} encoder (it has "
                           f"{', '.join(spec.encoders)})")
    torch.manual_seed(seed)  # the fresh fusion and head: the same on every run and rank
    built = create_model(model, pretrained=True,
                         encoders={m: encoder_ref(m, v) for m, v in encoders.items()})
    for m, v in encoders.items():  # a folder's base model and licence carry through
        built.config["encoders"][m].update(_adapted_from(v))
        if Path(v).is_dir():  # its weights: the folder by name, never its local path
            built.config["encoders"][m]["weights"] = f"source:{Path(v).name}"
    return built


def _adapted_from(value: str) -> dict[str, Any]:
    """What an encoder folder ``zoo pretrain`` wrote was adapted from (its
    ``zoo_pretrain.json``): ``base_model`` and ``license`` of the weights it started from,
    and the folder's name (never its local path). Empty for a registry name."""
    import json

    path = Path(value)
    if not path.is_dir():
        return {}
    try:
        enc = json.loads((path / "zoo_pretrain.json").read_text(encoding="utf-8"))["encoder"]
    except (OSError, ValueError, KeyError, TypeError):
        return {}
    if not isinstance(enc, dict):
        return {}
    out = {"adapted_from": path.name}
    for key in ("base_model", "license"):
        if isinstance(enc.get(key), str) and enc[key]:
            out[key] = enc[key]
    return out


def replace_head(model: Any, **head_kwargs: Any) -> None:
    """Rebuild the head with new kwargs (new labels from a training set): a fresh head on
    the same encoders and fusion."""
    cfg = model.config["head"]
    hspec = lookup_for_load("head", cfg, "head")
    kwargs = {**config_of(model.head, spec_name(hspec)), **head_kwargs}
    model.head = build_component(hspec, **head_inputs(model.encoders, model.fusion),
                                 **kwargs).to(model.device)
    model.config["head"]["weights"] = None  # a fresh head: untrained until trained
    model.config = model.component_config()


def derive_model(model: Any, modalities: Sequence[str], *, task: str, head: Any,
                 fusion: Any = "concat-mlp", suffix: str = "") -> Any:
    """A ``task`` model on (some of) another model's encoders, their weights kept (how a
    pretrained alignment seeds a classifier): a new fusion and ``head`` (a name or a table
    of its kwargs). The task's ``prepare`` then fits the head to the training data."""
    missing = [m for m in modalities if m not in model.encoders]
    if missing or not modalities:
        raise ZooError(f"the model has no {', '.join(missing) or 'usable'} encoder "
                       f"(it has {', '.join(model.modalities)})")
    encs = {m: model.encoders[m] for m in modalities}
    entries = {m: dict(model.config["encoders"][m]) for m in modalities}
    for m in modalities:  # its weights are the aligned ones now: record where they came from
        entries[m]["weights"] = entries[m].get("weights") or f"aligned:{model.config.get('name')}"
    name = f"{model.config.get('name', 'model')}{suffix or '-' + task}"
    return compose_parts(name, task, encs, entries, as_ref(fusion), as_ref(head))
