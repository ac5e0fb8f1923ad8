"""What the registry holds: one frozen dataclass per kind, all metadata (nothing built)."""
from __future__ import annotations

import importlib
import re
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

from zoo.base.config import check_json
from zoo.errors import RegistryError

__all__ = ["ComponentSpec", "ModelSpec", "WeightSpec", "TaskSpec", "LoggerSpec",
           "ObjectiveSpec", "ModalitySpec", "split_tag", "resolve_import", "parse_model_spec",
           "KINDS", "CONTRACTS", "NAME_RE"]

#: kinds in lookup order (a bare name is tried as a model first)
KINDS = ("model", "encoder", "fusion", "head", "task", "modality", "weights", "logger",
         "objective")
#: encoder output contracts; "fused" is what a fusion gives a head
CONTRACTS = ("pooled", "sequence", "features", "fused")
NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]*$")


def split_tag(name: str) -> tuple[str, str | None]:
    """``"efficientnet-lite0.in1k"`` -> ``("efficientnet-lite0", "in1k")`` (timm style)."""
    base, _, tag = name.partition(".")
    return base, (tag or None)


def resolve_import(target: str | Callable) -> Callable:
    """``"pkg.mod:attr"`` -> the object; callables pass through."""
    if callable(target):
        return target
    module, _, attr = target.partition(":")
    obj = importlib.import_module(module)
    for part in attr.split(".") if attr else ():
        obj = getattr(obj, part)
    return obj


@dataclass(frozen=True)
class ComponentSpec:
    """One registered encoder, fusion or head."""

    name: str
    kind: str  # "encoder" | "fusion" | "head"
    factory: str | Callable  # "module:callable", imported only when building
    plugin: str  # plugin (entry-point) name that registered it
    distribution: str  # distribution that provides it, recorded in config.json
    version: str
    modality: str | None = None  # encoders: "text" | "image" | "audio"
    outputs: tuple[str, ...] = ()  # encoders: contracts they can give
    accepts: tuple[str, ...] = ()  # fusions / heads: contracts they take
    tasks: tuple[str, ...] = ()  # heads: tasks served
    dim: int | None = None  # encoders: pooled width, when known without building
    description: str = ""
    defaults: Mapping[str, Any] = field(default_factory=dict)  # factory kwargs
    weights: str | None = None  # encoders: default pretrained tag
    # text encoders: the languages they were trained on ("en"); empty: any language
    languages: tuple[str, ...] = ()

    @property
    def qualified_name(self) -> str:
        return f"{self.plugin}:{self.name}"

    def build(self, **kwargs: Any) -> Any:
        fn = resolve_import(self.factory)
        return fn(**{**self.defaults, **kwargs})

    def rebuild(self, **kwargs: Any) -> Any:
        """Build a saved component from its saved kwargs alone: the registered ``defaults``
        are not merged in (a default added after the save reaches new models only; the saved
        one gets the factory's own default for it, as it did when it was saved)."""
        return resolve_import(self.factory)(**kwargs)

    def row(self) -> dict[str, Any]:
        return {"name": self.name, "kind": self.kind, "task": None,
                "modalities": [self.modality] if self.modality else [],
                "description": self.description, "source": self.distribution,
                "plugin": self.plugin, "version": self.version,
                "outputs": list(self.outputs), "accepts": list(self.accepts),
                "tasks": list(self.tasks), "dim": self.dim,
                "pretrained": self.weights is not None, "weights": self.weights,
                "defaults": dict(self.defaults)}


@dataclass(frozen=True)
class TaskSpec:
    """A registered task: its targets and the factory of its :class:`zoo.plugin.Task`."""

    name: str
    factory: str | Callable
    plugin: str
    distribution: str
    version: str
    targets: tuple[str, ...] = ()  # example keys that hold the targets
    description: str = ""
    kind: str = "task"

    @property
    def qualified_name(self) -> str:
        return f"{self.plugin}:{self.name}"

    def build(self) -> Any:
        task = resolve_import(self.factory)()
        task.name = self.name
        task.targets = tuple(self.targets)
        return task

    def row(self) -> dict[str, Any]:
        return {"name": self.name, "kind": "task", "task": self.name, "modalities": [],
                "description": self.description, "source": self.distribution,
                "plugin": self.plugin, "version": self.version,
                "targets": list(self.targets), "pretrained": False}


@dataclass(frozen=True)
class ModalitySpec:
    """A registered modality: the input key and the factory of its
    :class:`zoo.plugin.Modality` (how its values are read, bounded, checked and served)."""

    name: str
    factory: str | Callable
    plugin: str
    distribution: str
    version: str
    description: str = ""
    kind: str = "modality"

    @property
    def qualified_name(self) -> str:
        return f"{self.plugin}:{self.name}"

    def build(self) -> Any:
        modality = resolve_import(self.factory)()
        modality.name = self.name
        return modality

    def row(self) -> dict[str, Any]:
        return {"name": self.name, "kind": "modality", "task": None, "modalities": [self.name],
                "description": self.description, "source": self.distribution,
                "plugin": self.plugin, "version": self.version, "pretrained": False}


@dataclass(frozen=True)
class LoggerSpec:
    """A registered training logger: ``factory(out_dir, config)`` returns an object with
    ``log(record)`` and ``close()`` (the records are the lines of metrics.jsonl)."""

    name: str
    factory: str | Callable
    plugin: str
    distribution: str
    version: str
    description: str = ""
    kind: str = "logger"

    @property
    def qualified_name(self) -> str:
        return f"{self.plugin}:{self.name}"

    def row(self) -> dict[str, Any]:
        return {"name": self.name, "kind": "logger", "task": None, "modalities": [],
                "description": self.description, "source": self.distribution,
                "plugin": self.plugin, "version": self.version, "pretrained": False}


@dataclass(frozen=True)
class ObjectiveSpec:
    """A registered self-supervised pretraining objective (``zoo pretrain --objective``):
    ``factory(encoder=..., seed=..., **options)`` returns a :class:`zoo.plugin.Objective`
    that pretrains one encoder of ``modality``."""

    name: str
    factory: str | Callable  # "module:callable", imported only when pretraining
    plugin: str
    distribution: str
    version: str
    modality: str = ""  # the modality of the encoder it pretrains
    description: str = ""
    defaults: Mapping[str, Any] = field(default_factory=dict)  # factory kwargs (JSON)
    kind: str = "objective"

    @property
    def qualified_name(self) -> str:
        return f"{self.plugin}:{self.name}"

    def build(self, **kwargs: Any) -> Any:
        return resolve_import(self.factory)(**{**self.defaults, **kwargs})

    def row(self) -> dict[str, Any]:
        return {"name": self.name, "kind": "objective", "task": None,
                "modalities": [self.modality], "description": self.description,
                "source": self.distribution, "plugin": self.plugin, "version": self.version,
                "defaults": dict(self.defaults), "pretrained": False}


@dataclass(frozen=True)
class WeightSpec:
    """Pretrained weights described as data (timm's pretrained cfg, in our own shape)."""

    tag: str  # "encoder-name.tag"
    sources: tuple[str, ...]  # tried in order: hf-hub:..., pip:DIST:path, file:...
    plugin: str
    distribution: str
    version: str = ""
    sha256: str | None = None  # of the resolved file (``file`` inside a folder source)
    file: str | None = None  # the file the checksum covers, inside a folder source
    key_map: str | None = None  # "by-order" for foreign checkpoints with other names
    license: str | None = None
    description: str = ""
    base_model: str | None = None  # the Hub id of the model these weights are (model cards)
    kind: str = "weights"

    @property
    def name(self) -> str:
        return self.tag

    @property
    def qualified_name(self) -> str:
        return f"{self.plugin}:{self.tag}"

    def row(self) -> dict[str, Any]:
        base, _ = split_tag(self.tag)
        return {"name": self.tag, "kind": "weights", "task": None, "modalities": [],
                "description": self.description, "source": self.distribution,
                "plugin": self.plugin, "version": self.version, "encoder": base,
                "sources": list(self.sources), "sha256": self.sha256,
                "license": self.license, "key_map": self.key_map,
                "base_model": self.base_model, "pretrained": True}


@dataclass(frozen=True)
class ModelSpec:
    """A named composition: encoders + fusion + head for one task."""

    name: str
    task: str
    encoders: Mapping[str, Mapping[str, Any]]  # modality -> {"name": ..., **kwargs}
    fusion: Mapping[str, Any] | None  # {"name": ..., **kwargs}
    head: Mapping[str, Any]  # {"name": ..., **kwargs}
    plugin: str
    distribution: str  # the plugin's distribution, or the registry file it came from
    version: str
    description: str = ""
    unavailable: str | None = None  # why it cannot be built here (a component is missing)
    # the model `zoo train` uses instead when the training text is in a language the text
    # encoder was not trained on (its `languages`)
    fallback: str | None = None
    # part ("encoders.text", "fusion", "head") -> the qualified name it resolved to
    resolved: Mapping[str, str] = field(default_factory=dict)
    kind: str = "model"

    @property
    def qualified_name(self) -> str:
        return f"{self.plugin}:{self.name}"

    def row(self, registry: Any) -> dict[str, Any]:
        pretrained = False
        for m, enc in self.encoders.items():
            base, tag = split_tag(enc["name"])
            if enc.get("pretrained", True):
                espec = registry.resolved(self, f"encoders.{m}", "encoder", base)
                pretrained |= bool(tag or (espec is not None and espec.weights))
        return {"name": self.name, "kind": "model", "task": self.task,
                "modalities": registry.sort_modalities(self.encoders),
                "description": self.description, "source": self.distribution,
                "plugin": self.plugin,
                "encoders": {k: dict(v) for k, v in self.encoders.items()},
                "fusion": dict(self.fusion) if self.fusion else None,
                "head": dict(self.head), "pretrained": pretrained,
                "ready": self.ready(registry), "license": self.licenses(registry),
                **registry.results.get(self.name, {})}

    def licenses(self, registry: Any) -> list[str]:
        """The licences of the weights every part of the model loads."""
        tags = []
        for m, enc in self.encoders.items():
            base, tag = split_tag(enc["name"])
            espec = registry.resolved(self, f"encoders.{m}", "encoder", base)
            tags.append(f"{espec.name}.{tag}" if tag and espec else
                        espec.weights if espec else None)
        tags += [(part or {}).get("pretrained") for part in (self.fusion, self.head)]
        out = []
        for t in tags:
            if t and registry.has("weights", t):
                lic = registry.weights(t).license
                if lic and lic not in out:
                    out.append(lic)
        return out

    def ready(self, registry: Any) -> bool:
        """Every trained part carries real weights: each encoder (its tag or default
        weights), the fusion if any, and the head (a ``pretrained`` tag in their entries)."""
        for m, enc in self.encoders.items():
            base, tag = split_tag(enc["name"])
            espec = registry.resolved(self, f"encoders.{m}", "encoder", base)
            if not enc.get("pretrained", True) or not (tag or (espec and espec.weights)):
                return False
        if self.fusion is not None and not isinstance(self.fusion.get("pretrained"), str):
            return False
        return isinstance(self.head.get("pretrained"), str)


def _ref(value: Any, where: str) -> dict[str, Any]:
    """A component reference: ``"name"`` or a table ``{name = "...", kwarg = ...}``."""
    if isinstance(value, str):
        return {"name": value}
    if isinstance(value, Mapping):
        if "name" not in value:
            raise RegistryError(f"{where}: missing key 'name' (the component to use)")
        if not isinstance(value["name"], str):
            raise RegistryError(f"{where}.name: expected a string, got "
                                f"{type(value['name']).__name__}")
        check_json(dict(value), where)
        return dict(value)
    raise RegistryError(f"{where}: expected a component name or a table with 'name', got "
                        f"{type(value).__name__}")


_MODEL_KEYS = ("task", "description", "encoders", "fusion", "head", "fallback")


def parse_model_spec(name: str, raw: Any, *, where: str, plugin: str, distribution: str,
                     version: str) -> ModelSpec:
    """Check one model entry's shape (keys and types). Components are checked later."""
    w = f"{where}: model {name!r}"
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise RegistryError(f"{w}: name must be lower-case letters, digits, '-' or '_'")
    if not isinstance(raw, Mapping):
        raise RegistryError(f"{w}: expected a table, got {type(raw).__name__}")
    for key in raw:
        if key not in _MODEL_KEYS:
            raise RegistryError(f"{w}: unknown key {key!r} (allowed: {', '.join(_MODEL_KEYS)})")
    for key in ("task", "encoders", "head"):
        if key not in raw:
            raise RegistryError(f"{w}: missing key {key!r}")
    task = raw["task"]
    if not isinstance(task, str):
        raise RegistryError(f"{w}: key 'task': expected a string, got {type(task).__name__}")
    desc = raw.get("description", "")
    if not isinstance(desc, str):
        raise RegistryError(f"{w}: key 'description': expected a string, got "
                            f"{type(desc).__name__}")
    encs = raw["encoders"]
    if not isinstance(encs, Mapping) or not encs:
        raise RegistryError(f"{w}: key 'encoders': expected a table modality -> encoder, e.g. "
                            f"encoders = {{ text = \"minilm-l6\" }}")
    encoders = {}
    for modality, ref in encs.items():
        if not isinstance(modality, str) or not NAME_RE.match(modality):
            raise RegistryError(f"{w}: key 'encoders.{modality}': a modality name is lower-case "
                                f"letters, digits, '-' or '_' (see `zoo list --kind modality`)")
        encoders[modality] = _ref(ref, f"{w}: key 'encoders.{modality}'")
    fusion = _ref(raw["fusion"], f"{w}: key 'fusion'") if raw.get("fusion") is not None else None
    head = _ref(raw["head"], f"{w}: key 'head'")
    fallback = raw.get("fallback")
    if fallback is not None and not (isinstance(fallback, str) and NAME_RE.match(fallback)):
        raise RegistryError(f"{w}: key 'fallback': expected a model name, got {fallback!r}")
    return ModelSpec(name=name, task=task, encoders=encoders, fusion=fusion, head=head,
                     plugin=plugin, distribution=distribution, version=version,
                     description=desc, fallback=fallback)
