"""Building models: from a registry name (``create_model``) or from a saved config."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

from .errors import LoadError, RegistryError, UnknownNameError, ZooError
from .registry import ComponentSpec, ModelSpec, get_registry, split_tag

__all__ = ["create_model", "compose", "build_from_config", "FORMAT_VERSION"]

#: config.json's format; bumped when a saved model would be read differently.
FORMAT_VERSION = 1

_OVERRIDES = ("labels", "encoders", "fusion", "head")


def _provider(spec: ComponentSpec) -> dict[str, str]:
    return {"distribution": spec.distribution, "version": spec.version}


def _ref(value: Any) -> dict[str, Any]:
    return {"name": value} if isinstance(value, str) else dict(value)


def _build_encoder(spec: ComponentSpec, *, tag: str | None, pretrained: bool,
                   kwargs: Mapping[str, Any], assets_dir: Path | None = None) -> Any:
    weights = tag or spec.weights
    if pretrained and not weights:
        raise ZooError(f"encoder {spec.name!r} has no pretrained weights; use "
                       f"pretrained=False (see `zoo list --pretrained`)")
    enc = spec.build(pretrained=bool(pretrained), weights=weights if pretrained else None,
                     assets_dir=str(assets_dir) if assets_dir else None, **kwargs)
    return enc


def _encoder_entry(spec: ComponentSpec, enc: Any, tag: str | None) -> dict[str, Any]:
    return {"name": spec.name, **_provider(spec), "weights": tag, "kwargs": enc.config()}


def _compose(name: str, task: str, encoders: dict[str, Any], enc_entries: dict[str, Any],
             fusion_ref: Mapping[str, Any] | None, head_ref: Mapping[str, Any] | None,
             description: str = "") -> Any:
    from .model import ZooModel

    reg = get_registry()
    config: dict[str, Any] = {"zoo_format": FORMAT_VERSION, "name": name, "task": task,
                              "description": description, "encoders": enc_entries,
                              "fusion": None, "head": None}
    fusion = head = None
    inputs = {m: {"dim": e.dim, "outputs": list(e.outputs)} for m, e in encoders.items()}
    if fusion_ref is not None:
        fspec = reg.component("fusion", fusion_ref["name"])
        kwargs = {k: v for k, v in fusion_ref.items() if k not in ("name", "kwargs")}
        kwargs.update(fusion_ref.get("kwargs", {}))
        fusion = fspec.build(inputs=inputs, **kwargs)
        config["fusion"] = {"name": fspec.name, **_provider(fspec), "kwargs": fusion.config()}
    if head_ref is not None:
        hspec = reg.component("head", head_ref["name"])
        kwargs = {k: v for k, v in head_ref.items() if k not in ("name", "kwargs")}
        kwargs.update(head_ref.get("kwargs", {}))
        if fusion is not None:
            kwargs["in_dim"] = fusion.out_dim
        else:
            kwargs["inputs"] = {m: e.describe() for m, e in encoders.items()}
        head = hspec.build(**kwargs)
        config["head"] = {"name": hspec.name, **_provider(hspec), "kwargs": head.config()}
    model = ZooModel(config, encoders, fusion, head)
    model.config = model.component_config()
    model.eval()
    return model


def create_model(name: str, pretrained: bool = False, **overrides: Any) -> Any:
    """A model by registry name; an encoder name gives an encoder-only model (``embed``),
    and then ``overrides`` are the encoder's own keyword arguments (``source=``, ``arch=``).

    ``overrides``: ``labels=[...]`` (classification), ``encoders={modality: name-or-table}``,
    ``fusion=name-or-table``, ``head=table`` (merged into the registry's head kwargs).
    """
    reg = get_registry()
    kind, spec = reg.find(name)
    if kind == "encoder":  # overrides are the encoder factory's kwargs (timm style)
        from .registry import _check_json

        try:
            _check_json(overrides, f"create_model({name!r}) kwargs")
        except RegistryError as e:
            raise ZooError(str(e)) from None
        base, tag = split_tag(name)
        if tag and not reg.has("weights", f"{spec.name}.{tag}"):
            raise UnknownNameError(f"unknown weights {name!r} for encoder {spec.name!r}")
        try:
            enc = _build_encoder(spec, tag=f"{spec.name}.{tag}" if tag else None,
                                 pretrained=pretrained, kwargs=overrides)
        except TypeError as e:
            raise ZooError(f"encoder {spec.name!r} does not take these arguments: {e}") from None
        return _compose(spec.name, "embedding", {spec.modality: enc},
                        {spec.modality: _encoder_entry(spec, enc, enc_tag(spec, tag, pretrained))},
                        None, None, spec.description)
    bad = set(overrides) - set(_OVERRIDES)
    if bad and kind == "model":
        raise ZooError(f"create_model: unknown argument(s) {sorted(bad)} (allowed: "
                       f"{', '.join(_OVERRIDES)})")
    if kind != "model":
        raise ZooError(f"{name!r} is a {kind}, not a model or encoder; compose it in a model "
                       f"(registry.toml) or pass it as an override, e.g. fusion={name!r}")
    mspec: ModelSpec = spec
    if mspec.unavailable:
        raise ZooError(f"model {name!r} cannot be built here: {mspec.unavailable}")
    enc_refs = {m: dict(r) for m, r in mspec.encoders.items()}
    for m, r in (overrides.get("encoders") or {}).items():
        enc_refs[m] = _ref(r)
    fusion_ref = dict(mspec.fusion) if mspec.fusion else None
    if overrides.get("fusion") is not None:
        fusion_ref = _ref(overrides["fusion"])
    head_ref = {**mspec.head, **(overrides.get("head") or {})}
    if overrides.get("labels") is not None:
        head_ref["labels"] = list(overrides["labels"])
    return compose(mspec.task, enc_refs, head_ref, fusion_ref, name=mspec.name,
                   pretrained=pretrained, description=mspec.description)


def compose(task: str, encoders: Mapping[str, Any], head: Any, fusion: Any = None, *,
            name: str = "custom", pretrained: bool = False, description: str = "") -> Any:
    """A model from components, without a registry entry::

        compose("classification", {"text": "bert-tiny", "image": "timm-tiny"},
                head={"name": "classification", "labels": ["a", "b"]}, fusion="gated")
    """
    from .registry import parse_model_spec

    raw = {"task": task, "encoders": dict(encoders), "head": head}
    if fusion is not None:
        raw["fusion"] = fusion
    spec = parse_model_spec(name, raw, where="compose", plugin="user", distribution="user",
                            version="")
    get_registry().check_model(spec, "compose")
    encs, entries = {}, {}
    for m, ref in spec.encoders.items():
        base, tag = split_tag(ref["name"])
        espec = get_registry().encoder(base)
        use = bool(pretrained and ref.get("pretrained", True) and (tag or espec.weights))
        kwargs = {k: v for k, v in ref.items() if k not in ("name", "pretrained")}
        encs[m] = _build_encoder(espec, tag=f"{espec.name}.{tag}" if tag else None,
                                 pretrained=use, kwargs=kwargs)
        entries[m] = _encoder_entry(espec, encs[m], enc_tag(espec, tag, use))
    return _compose(name, task, encs, entries, spec.fusion, spec.head, description)


def enc_tag(spec: ComponentSpec, tag: str | None, pretrained: bool) -> str | None:
    """The weights tag an encoder was initialised from (recorded for the model card)."""
    if not pretrained:
        return None
    return f"{spec.name}.{tag}" if tag else spec.weights


def _lookup_for_load(kind: str, entry: Mapping[str, Any], where: str) -> ComponentSpec:
    if not isinstance(entry, Mapping) or not isinstance(entry.get("name"), str):
        raise LoadError(f"config.json: {where} must be an object with a 'name'")
    reg = get_registry()
    name = entry["name"]
    dist = entry.get("distribution")
    try:
        spec = reg.component(kind, f"{dist}:{name}" if dist and reg.has(kind, f"{dist}:{name}")
                             else name)
    except (UnknownNameError, RegistryError):
        if dist and dist != "zoo":
            version = entry.get("version")
            raise LoadError(
                f"this model needs {kind} {name!r} from the plugin distribution {dist}"
                f"{' ' + version if version else ''}, which is not installed: "
                f"`pip install {dist}` (or `zoo install {dist}`)") from None
        raise LoadError(f"config.json names {kind} {name!r}, which no installed plugin "
                        f"provides (see `zoo list --kind {kind}`)") from None
    return spec


def _check_preprocessing(encoder: Any, assets: Path, modality: str) -> None:
    """The preprocessing the rebuilt encoder will apply must be the one that was saved:
    a silent mismatch (open_clip#1068) gives wrong predictions that look plausible."""
    import json

    from .encoders import PREPROCESSOR_FILE

    path = assets / PREPROCESSOR_FILE
    if not path.is_file():
        raise LoadError(f"preprocessor/{modality}/{PREPROCESSOR_FILE} is missing; the model "
                        f"folder is incomplete (download or save it again)")
    try:
        saved = json.loads(path.read_text())
    except ValueError as e:
        raise LoadError(f"preprocessor/{modality}/{PREPROCESSOR_FILE} is not valid JSON: {e}"
                        ) from None
    now = json.loads(json.dumps({"modality": encoder.modality, **encoder.preprocessor_config()}))
    for key in sorted(set(saved) | set(now)):
        if saved.get(key) != now.get(key):
            raise LoadError(f"preprocessor/{modality}/{PREPROCESSOR_FILE}: {key} is "
                            f"{saved.get(key)!r} but config.json rebuilds {now.get(key)!r}; "
                            f"the files disagree (edited by hand?): fix one or save again")


def build_from_config(config: Mapping[str, Any], assets_root: Path | None) -> Any:
    """The architecture a config.json describes, without weights (nothing is downloaded)."""
    if not isinstance(config, Mapping):
        raise LoadError("config.json must hold a JSON object")
    fmt = config.get("zoo_format")
    if fmt != FORMAT_VERSION:
        raise LoadError(f"config.json has zoo_format {fmt!r}; this zoo reads format "
                        f"{FORMAT_VERSION} (upgrade zoo: pip install -U zoo)")
    for key in ("task", "encoders"):
        if key not in config:
            raise LoadError(f"config.json: missing key {key!r}")
    if not isinstance(config["encoders"], Mapping) or not config["encoders"]:
        raise LoadError("config.json: 'encoders' must be a non-empty object")
    encoders, entries = {}, {}
    for m, entry in config["encoders"].items():
        espec = _lookup_for_load("encoder", entry, f"encoders.{m}")
        kwargs = entry.get("kwargs") or {}
        if not isinstance(kwargs, Mapping):
            raise LoadError(f"config.json: encoders.{m}.kwargs must be an object")
        assets = assets_root / m if assets_root is not None else None
        try:
            encoders[m] = espec.build(pretrained=False, weights=None,
                                      assets_dir=str(assets) if assets else None, **kwargs)
        except TypeError as e:
            raise LoadError(f"config.json: encoders.{m}.kwargs do not fit encoder "
                            f"{espec.name!r}: {e}") from None
        if assets is not None:
            _check_preprocessing(encoders[m], assets, m)
        entries[m] = {**entry, "name": espec.name}
    fusion_ref = head_ref = None
    if config.get("fusion"):
        fspec = _lookup_for_load("fusion", config["fusion"], "fusion")
        fusion_ref = {"name": fspec.qualified_name, "kwargs": config["fusion"].get("kwargs") or {}}
    if config.get("head"):
        hspec = _lookup_for_load("head", config["head"], "head")
        head_ref = {"name": hspec.qualified_name, "kwargs": config["head"].get("kwargs") or {}}
    try:
        model = _compose(config.get("name") or "model", config["task"], encoders, entries,
                         fusion_ref, head_ref, str(config.get("description") or ""))
    except TypeError as e:
        raise LoadError(f"config.json: component kwargs do not fit: {e}") from None
    # keep what the file said (weights tags, provenance), with kwargs as rebuilt
    saved = dict(config)
    saved.update({k: model.config[k] for k in ("encoders", "fusion", "head")})
    model.config = saved
    return model


def replace_head(model: Any, **head_kwargs: Any) -> None:
    """Rebuild the head with new kwargs (new labels from a training set): a fresh head on
    the same encoders and fusion."""
    cfg = model.config["head"]
    hspec = _lookup_for_load("head", cfg, "head")
    kwargs = {**model.head.config(), **head_kwargs}
    if model.fusion is not None:
        kwargs["in_dim"] = model.fusion.out_dim
    else:
        kwargs["inputs"] = {m: e.describe() for m, e in model.encoders.items()}
    model.head = hspec.build(**kwargs).to(model.device)
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
