"""Building the model a saved ``config.json`` describes (without weights): every part
looked up by the distribution that provided it, its kwargs checked, the saved preprocessing
compared with the rebuilt one. The file is untrusted: every malformed value is one line."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

from zoo.build.components import FORMAT_VERSION, build_component, compose_parts, lookup_for_load
from zoo.errors import LoadError, ZooError
from zoo.registry import get_registry
from zoo.weights import offline_scope

__all__ = ["build_from_config", "lookup_for_load"]







def _check_preprocessing(encoder: Any, assets: Path, modality: str) -> None:
    """The preprocessing the rebuilt encoder will apply must be the one that was saved:
    a silent mismatch (open_clip#1068) gives wrong predictions that look plausible."""
    import json

    from zoo.base.encoder import PREPROCESSOR_FILE

    path = assets / PREPROCESSOR_FILE
    if not path.is_file():
        raise LoadError(f"preprocessor/{modality}/{PREPROCESSOR_FILE} is missing; the model "
                        f"folder is incomplete (download or save it again)")
    try:
        saved = json.loads(path.read_text(encoding="utf-8"))
    except RecursionError:
        raise LoadError(f"preprocessor/{modality}/{PREPROCESSOR_FILE} is nested too deeply"
                        ) from None
    except ValueError as e:  # UnicodeDecodeError too
        raise LoadError(f"preprocessor/{modality}/{PREPROCESSOR_FILE} is not valid JSON: {e}"
                        ) from None
    if not isinstance(saved, dict):
        raise LoadError(f"preprocessor/{modality}/{PREPROCESSOR_FILE} must hold a JSON object")
    now = json.loads(json.dumps({"modality": encoder.modality, **encoder.preprocessor_config()}))
    for key in sorted(set(saved) | set(now)):
        if saved.get(key) != now.get(key):
            raise LoadError(f"preprocessor/{modality}/{PREPROCESSOR_FILE}: {key} is "
                            f"{saved.get(key)!r} but config.json rebuilds {now.get(key)!r}; "
                            f"the files disagree (edited by hand?): fix one or save again")


def _check_top(config: Any) -> None:
    """The file's outline: a JSON object of this format, with a task (installed) and
    encoders."""
    if not isinstance(config, Mapping):
        raise LoadError("config.json must hold a JSON object")
    fmt = config.get("zoo_format")
    if fmt != FORMAT_VERSION:
        raise LoadError(f"config.json has zoo_format {fmt!r}; this zoo reads format "
                        f"{FORMAT_VERSION} (upgrade: pip install -U zoo-mm)")
    for key in ("task", "encoders"):
        if key not in config:
            raise LoadError(f"config.json: missing key {key!r}")
    if not isinstance(config["task"], str):
        raise LoadError("config.json: 'task' must be a string")
    provider = config.get("task_provider") or {}
    if not isinstance(provider, Mapping):
        raise LoadError("config.json: 'task_provider' must be an object")
    lookup_for_load("task", {"name": config["task"], **provider}, "task")
    if not isinstance(config["encoders"], Mapping) or not config["encoders"]:
        raise LoadError("config.json: 'encoders' must be a non-empty object")


def _encoder(m: Any, entry: Any, assets_root: Path | None) -> tuple[Any, dict[str, Any]]:
    """One encoder of the file, rebuilt offline from its kwargs and checked against its
    saved preprocessing: (encoder, its config entry)."""
    from zoo.registry.specs import NAME_RE

    # it names a folder under preprocessor/: a plain name, never a path
    if not isinstance(m, str) or not NAME_RE.match(m):
        raise LoadError(f"config.json: encoders has key {str(m)[:40]!r}, which is no "
                        f"modality name (lower-case letters, digits, '-', '_')")
    espec = lookup_for_load("encoder", entry, f"encoders.{m}")  # names what to install
    if not get_registry().has("modality", m):
        raise LoadError(f"config.json: encoders has key {m!r}, which no installed plugin "
                        f"registers as a modality (see `zoo list --kind modality`)")
    if espec.modality != m:
        raise LoadError(f"config.json: encoders.{m} names {espec.name!r}, a "
                        f"{espec.modality} encoder")
    kwargs = entry.get("kwargs") or {}
    if not isinstance(kwargs, Mapping):
        raise LoadError(f"config.json: encoders.{m}.kwargs must be an object")
    _no_locations(kwargs, f"encoders.{m}.kwargs")
    assets = assets_root / m if assets_root is not None else None
    try:
        with offline_scope():  # an "hf-hub:" kwarg may be provenance, never a download
            encoder = build_component(espec, check=False, saved=True, pretrained=False,
                                      weights=None, assets_dir=str(assets) if assets else None,
                                      **kwargs)
    except ZooError as e:
        raise LoadError(f"config.json: encoders.{m}.kwargs do not fit encoder "
                        f"{espec.name!r}: {e}") from None
    except _BUILD_ERRORS as e:  # a size torch refuses, a value out of range
        raise LoadError(f"config.json: encoders.{m}.kwargs cannot build encoder "
                        f"{espec.name!r}: {_first_line(e)}") from None
    if assets is not None:
        _check_preprocessing(encoder, assets, m)
    return encoder, {**entry, "name": espec.name}


#: what building from edited kwargs raises (negative or huge sizes, a NaN probability)
_BUILD_ERRORS = (RuntimeError, ValueError, TypeError, OverflowError, MemoryError)


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0][:200] if text else ''}"


def build_from_config(config: Mapping[str, Any], assets_root: Path | None) -> Any:
    """The architecture a config.json describes, without weights (nothing is downloaded)."""
    _check_top(config)
    encoders, entries = {}, {}
    for m, entry in config["encoders"].items():
        encoders[m], entries[m] = _encoder(m, entry, assets_root)
    refs = {}
    for part in ("fusion", "head"):
        if config.get(part):
            spec = lookup_for_load(part, config[part], part)
            refs[part] = {"name": spec.qualified_name, "kwargs": _kwargs(config[part], part)}
    try:
        model = compose_parts(config.get("name") or "model", config["task"], encoders, entries,
                              refs.get("fusion"), refs.get("head"),
                              str(config.get("description") or ""), saved=True)
    except ZooError as e:
        raise LoadError(f"config.json: component kwargs do not fit: {e}") from None
    except _BUILD_ERRORS as e:
        raise LoadError(f"config.json: the fusion / head kwargs cannot build: "
                        f"{_first_line(e)}") from None
    # keep what the file said (weights tags, provenance), with kwargs as rebuilt
    saved = dict(config)
    for part in ("encoders", "fusion", "head"):
        rebuilt = model.config[part]
        if part != "encoders" and rebuilt is not None and isinstance(config.get(part), Mapping):
            rebuilt = {**rebuilt, "weights": config[part].get("weights", "unknown")}
        saved[part] = rebuilt
    model.config = saved
    return model


#: a saved model is rebuilt from its own folder only: kwargs naming another place are refused
_LOCATION_PREFIXES = ("local-dir:", "file:", "http://", "https://", "s3://", "gs://")


def _no_locations(value: Any, where: str, depth: int = 0) -> None:
    if depth > 20:
        raise LoadError(f"config.json: {where} is nested too deeply")
    if isinstance(value, str):
        if value.lower().startswith(_LOCATION_PREFIXES):
            raise LoadError(f"config.json: {where} names a location ({value[:60]!r}); a saved "
                            f"model is rebuilt only from its own folder, so this file was "
                            f"edited or comes from an untrusted source")
    elif isinstance(value, Mapping):
        for k, v in value.items():
            _no_locations(v, f"{where}.{k}", depth + 1)
    elif isinstance(value, list):
        for i, v in enumerate(value):
            _no_locations(v, f"{where}[{i}]", depth + 1)


def _kwargs(entry: Mapping[str, Any], where: str) -> Mapping[str, Any]:
    kwargs = entry.get("kwargs") or {}
    _no_locations(kwargs, f"{where}.kwargs")
    if not isinstance(kwargs, Mapping):
        raise LoadError(f"config.json: {where}.kwargs must be an object")
    return kwargs
