"""Building models: from a registry name (``create_model``), from components
(``compose``); ``zoo.build.from_config`` rebuilds one from a saved config.

Every component is built through :func:`build_component`, which captures the JSON
arguments it was built with (its config), and checks what it built against what was
registered (an encoder's modality and ``dim``), naming the plugin on a mismatch.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

from zoo.base.config import capture, config_of
from zoo.errors import RegistryError, UnknownNameError, ZooError
from zoo.registry import ComponentSpec, ModelSpec, get_registry, get_task, split_tag

__all__ = ["create_model", "compose", "build_component", "encoder_ref", "with_encoders",
           "replace_head", "classifier_from", "FORMAT_VERSION"]

#: config.json's format; bumped when a saved model would be read differently.
FORMAT_VERSION = 1

_OVERRIDES = ("labels", "encoders", "fusion", "head")


def _what(spec: ComponentSpec) -> str:
    return f"{spec.kind} {spec.name!r} (plugin {spec.plugin!r}, {spec.distribution})"


def build_component(spec: ComponentSpec, *, check: bool = True, **kwargs: Any) -> Any:
    """Call ``spec``'s factory with its defaults and ``kwargs``; capture the config; check
    the result against the registration."""
    if spec.kind == "head":  # pass only the framework arguments the factory names
        kwargs = _accepted(spec, kwargs, ("in_dim", "inputs"))
    try:
        built = spec.build(**kwargs)
    except TypeError as e:
        raise ZooError(f"{_what(spec)} does not take these arguments: {e}") from None
    capture(built, {**spec.defaults, **kwargs}, _what(spec), spec.kind)
    if check:
        _check_built(spec, built, user_kwargs=kwargs)
    return built


def _accepted(spec: ComponentSpec, kwargs: dict[str, Any], framework: tuple[str, ...]
              ) -> dict[str, Any]:
    """``kwargs`` without the framework arguments the factory takes neither by name nor
    through ``**kwargs`` (a head after a fusion needs ``in_dim`` alone, a head on encoder
    outputs ``inputs`` alone: both are offered, each takes what it names)."""
    import inspect

    from zoo.registry import resolve_import

    fn = resolve_import(spec.factory)
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return kwargs
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return kwargs
    return {k: v for k, v in kwargs.items() if k not in framework or k in params}


def _check_built(spec: ComponentSpec, built: Any, user_kwargs: Mapping[str, Any]) -> None:
    what = _what(spec)
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


def _provider(spec: Any) -> dict[str, str]:
    return {"distribution": spec.distribution, "version": spec.version}


def _ref(value: Any) -> dict[str, Any]:
    return {"name": value} if isinstance(value, str) else dict(value)


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
    return {"name": spec.name, **_provider(spec), "weights": tag,
            "kwargs": config_of(enc, _what(spec))}


def _split_ref(ref: Mapping[str, Any]) -> dict[str, Any]:
    """A fusion / head entry -> its factory kwargs (``pretrained`` names pretrained weights
    for the part itself and is not an argument)."""
    kwargs = {k: v for k, v in ref.items() if k not in ("name", "kwargs", "pretrained")}
    kwargs.update(ref.get("kwargs") or {})
    return kwargs


def _load_part_weights(model: Any, refs: Mapping[str, Any], pretrained: bool) -> None:
    """Pretrained weights of the fusion and head (``pretrained = "tag"`` in their entries):
    loaded when the model is built pretrained and recorded as the part's ``weights`` in
    config.json."""
    from zoo.plugin import load_weights

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


def _compose(name: str, task: str, encoders: dict[str, Any], enc_entries: dict[str, Any],
             fusion_ref: Mapping[str, Any] | None, head_ref: Mapping[str, Any] | None,
             description: str = "") -> Any:
    from zoo.model import ZooModel

    reg = get_registry()
    tspec = reg.task(task)
    config: dict[str, Any] = {"zoo_format": FORMAT_VERSION, "name": name, "task": tspec.name,
                              "task_provider": _provider(tspec), "description": description,
                              "encoders": enc_entries, "fusion": None, "head": None}
    fusion = head = None
    inputs = {m: {"dim": e.dim, "outputs": list(e.outputs)} for m, e in encoders.items()}
    if fusion_ref is not None:
        fspec = reg.component("fusion", fusion_ref["name"])
        fusion = build_component(fspec, inputs=inputs, **_split_ref(fusion_ref))
        config["fusion"] = {"name": fspec.name, **_provider(fspec), "weights": None,
                            "kwargs": config_of(fusion, _what(fspec))}
    if head_ref is not None:
        hspec = reg.component("head", head_ref["name"])
        head = build_component(hspec, **_head_inputs(encoders, fusion), **_split_ref(head_ref))
        config["head"] = {"name": hspec.name, **_provider(hspec), "weights": None,
                          "kwargs": config_of(head, _what(hspec))}
    model = ZooModel(config, encoders, fusion, head, task=get_task(tspec.qualified_name))
    model.config = model.component_config()
    model.eval()
    return model


def _head_inputs(encoders: Mapping[str, Any], fusion: Any) -> dict[str, Any]:
    """The head factory's framework arguments (one signature for every head): the
    fusion's width (None without a fusion) and every encoder's description."""
    return {"in_dim": fusion.out_dim if fusion is not None else None,
            "inputs": {m: e.describe() for m, e in encoders.items()}}


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
        return _compose(spec.name, "embedding", {spec.modality: enc},
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
        enc_refs[m] = _ref(r)
    fusion_ref = ({**mspec.fusion, "name": _qualified(mspec, "fusion", mspec.fusion["name"])}
                  if mspec.fusion else None)
    if overrides.get("fusion") is not None:
        fusion_ref = _ref(overrides["fusion"])
    head_ref = {**mspec.head, "name": _qualified(mspec, "head", mspec.head["name"]),
                **(overrides.get("head") or {})}
    if overrides.get("labels") is not None:
        head_ref["labels"] = list(overrides["labels"])
    if overrides.get("labels") is not None or overrides.get("head"):
        head_ref.pop("pretrained", None)  # a changed head: its pretrained weights do not fit
    return compose(mspec.resolved.get("task", mspec.task), enc_refs, head_ref, fusion_ref,
                   name=mspec.name, pretrained=pretrained, description=mspec.description)


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
    model = _compose(name, resolved["task"], encs, entries, fusion_ref, head_ref, description)
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
    registry name as it is, or a transformers text folder (``zoo pretrain --objective
    mlm`` writes one) as ``hf-text`` loading that folder's weights, with the pooling and
    length it was pretrained for (its ``zoo_pretrain.json``)."""
    import json

    path = Path(value)
    if not path.is_dir():
        return value
    if modality != "text":
        raise ZooError(f"--encoder {modality}={value}: a folder stands for a transformers "
                       f"text encoder; for {modality}, name a registry encoder "
                       f"(`zoo list --kind encoder --modality {modality}`)")
    try:
        hf = json.loads((path / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        raise ZooError(f"--encoder text={value}: no readable config.json there; expected a "
                       f"transformers folder (as `zoo pretrain --objective mlm` writes)") from None
    if not isinstance(hf, dict) or "zoo_format" in hf or "model_type" not in hf:
        raise ZooError(f"--encoder text={value}: not a transformers encoder folder (a saved "
                       f"zoo model or another file); pass a folder from `zoo pretrain "
                       f"--objective mlm` or a registry encoder name")
    ref: dict[str, Any] = {"name": "hf-text", "source": str(path.absolute())}
    try:
        record = json.loads((path / "zoo_pretrain.json").read_text(encoding="utf-8"))
        ref.update({k: v for k, v in (record.get("encoder_kwargs") or {}).items()
                    if k in ("pooling", "max_length", "normalize")})
    except (OSError, ValueError, AttributeError):
        pass  # any transformers folder: hf-text's own defaults
    return ref


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
    return create_model(model, pretrained=True,
                        encoders={m: encoder_ref(m, v) for m, v in encoders.items()})


def replace_head(model: Any, **head_kwargs: Any) -> None:
    """Rebuild the head with new kwargs (new labels from a training set): a fresh head on
    the same encoders and fusion."""
    from zoo.build.from_config import lookup_for_load

    cfg = model.config["head"]
    hspec = lookup_for_load("head", cfg, "head")
    kwargs = {**config_of(model.head, _what(hspec)), **head_kwargs}
    model.head = build_component(hspec, **_head_inputs(model.encoders, model.fusion),
                                 **kwargs).to(model.device)
    model.config["head"]["weights"] = None  # a fresh head: untrained until trained
    model.config = model.component_config()


def classifier_from(model: Any, modalities: Sequence[str], fusion: Any = "concat-mlp") -> Any:
    """A classification model on (some of) another model's encoders, weights kept: how a
    pretrained alignment seeds a classifier. Labels come from the training data."""
    missing = [m for m in modalities if m not in model.encoders]
    if missing or not modalities:
        raise ZooError(f"the model has no {', '.join(missing) or 'usable'} encoder "
                       f"(it has {', '.join(model.modalities)})")
    encs = {m: model.encoders[m] for m in modalities}
    entries = {m: dict(model.config["encoders"][m]) for m in modalities}
    for m in modalities:  # its weights are the aligned ones now: record where they came from
        entries[m]["weights"] = entries[m].get("weights") or f"aligned:{model.config.get('name')}"
    return _compose(f"{model.config.get('name', 'model')}-clf", "classification", encs,
                    entries, _ref(fusion), {"name": "classification", "labels": ["?"]})
