"""Registry state: components (encoders, fusions, heads), named models and pretrained weights.

Everything here is metadata. Nothing is built and no heavy library is imported until a
factory is called, so listing stays fast.

Names are found bare (``"minilm-l6"``) or namespaced by plugin (``"text_hf:minilm-l6"``).
When two plugins register one name, both stay reachable by their namespaced names and the
bare name becomes an error that names both — never a silent overwrite.
"""
from __future__ import annotations

import difflib
import fnmatch
import importlib
import os
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

from .errors import PluginError, RegistryError, UnknownNameError

__all__ = ["ComponentSpec", "ModelSpec", "WeightSpec", "Registry", "get_registry", "reset",
           "split_tag", "MODALITIES", "KINDS", "CONTRACTS", "parse_model_spec"]

MODALITIES = ("text", "image", "audio")
KINDS = ("model", "encoder", "fusion", "head")
#: Encoder output contracts; "fused" is what a fusion gives a head.
CONTRACTS = ("pooled", "sequence", "features", "fused")

_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]*$")
_JSON_TYPES = (str, int, float, bool, type(None), list, dict)


def split_tag(name: str) -> tuple[str, str | None]:
    """``"efficientnet-lite0.in1k"`` -> ``("efficientnet-lite0", "in1k")`` (timm style)."""
    base, _, tag = name.partition(".")
    return base, (tag or None)


def _check_json(value: Any, where: str) -> None:
    """Kwargs must survive config.json: refuse what JSON cannot hold, with the path to it."""
    if isinstance(value, dict):
        for k, v in value.items():
            if not isinstance(k, str):
                raise RegistryError(f"{where}: key {k!r} must be a string")
            _check_json(v, f"{where}.{k}")
    elif isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            _check_json(v, f"{where}[{i}]")
    elif not isinstance(value, _JSON_TYPES):
        raise RegistryError(f"{where}: {type(value).__name__} value {value!r} cannot be stored "
                            f"in config.json; use a string, number, bool, list or table")


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

    @property
    def qualified_name(self) -> str:
        return f"{self.plugin}:{self.name}"

    def build(self, **kwargs: Any) -> Any:
        fn = resolve_import(self.factory)
        return fn(**{**self.defaults, **kwargs})

    def row(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "task": None,
            "modalities": [self.modality] if self.modality else [],
            "description": self.description,
            "source": self.distribution,
            "plugin": self.plugin,
            "version": self.version,
            "outputs": list(self.outputs),
            "accepts": list(self.accepts),
            "tasks": list(self.tasks),
            "dim": self.dim,
            "pretrained": self.weights is not None,
            "weights": self.weights,
            "defaults": dict(self.defaults),
        }


@dataclass(frozen=True)
class WeightSpec:
    """Pretrained weights described as data (timm's pretrained cfg, in our own shape)."""

    tag: str  # "encoder-name.tag"
    sources: tuple[str, ...]  # tried in order: hf-hub:..., pip:DIST:path, file:...
    plugin: str
    distribution: str
    sha256: str | None = None  # of the resolved file (``file`` inside a folder)
    file: str | None = None  # the file the checksum covers, inside a folder source
    key_map: str | None = None  # "by-order" for foreign checkpoints with other names
    license: str | None = None
    description: str = ""

    @property
    def name(self) -> str:
        return self.tag

    @property
    def qualified_name(self) -> str:
        return f"{self.plugin}:{self.tag}"


@dataclass(frozen=True)
class ModelSpec:
    """A named composition: encoders + fusion + head for one task."""

    name: str
    task: str
    encoders: Mapping[str, Mapping[str, Any]]  # modality -> {"name": ..., **kwargs}
    fusion: Mapping[str, Any] | None  # {"name": ..., **kwargs}
    head: Mapping[str, Any]  # {"name": ..., **kwargs}
    plugin: str
    distribution: str  # "registry.toml" or the plugin's distribution
    version: str
    description: str = ""
    unavailable: str | None = None  # why it cannot be built here (a plugin is missing)

    @property
    def qualified_name(self) -> str:
        return f"{self.plugin}:{self.name}"

    def row(self, registry: "Registry") -> dict[str, Any]:
        pretrained = False
        for enc in self.encoders.values():
            base, tag = split_tag(enc["name"])
            if enc.get("pretrained", True):
                try:
                    pretrained |= bool(tag or registry.component("encoder", base).weights)
                except (UnknownNameError, RegistryError):
                    pass
        return {
            "name": self.name,
            "kind": "model",
            "task": self.task,
            "modalities": sorted(self.encoders, key=MODALITIES.index),
            "description": self.description,
            "source": self.distribution,
            "plugin": self.plugin,
            "encoders": {k: dict(v) for k, v in self.encoders.items()},
            "fusion": dict(self.fusion) if self.fusion else None,
            "head": dict(self.head),
            "pretrained": pretrained,
        }


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
        _check_json(dict(value), where)
        return dict(value)
    raise RegistryError(f"{where}: expected a component name or a table with 'name', got "
                        f"{type(value).__name__}")


_MODEL_KEYS = ("task", "description", "encoders", "fusion", "head")


def parse_model_spec(name: str, raw: Any, *, where: str, plugin: str, distribution: str,
                     version: str) -> ModelSpec:
    """Check one model entry's shape (keys and types). Components are checked later."""
    w = f"{where}: model {name!r}"
    if not _NAME_RE.match(name):
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
        if modality not in MODALITIES:
            raise RegistryError(f"{w}: key 'encoders.{modality}': unknown modality (use one of "
                                f"{', '.join(MODALITIES)})")
        encoders[modality] = _ref(ref, f"{w}: key 'encoders.{modality}'")
    fusion = _ref(raw["fusion"], f"{w}: key 'fusion'") if raw.get("fusion") is not None else None
    head = _ref(raw["head"], f"{w}: key 'head'")
    return ModelSpec(name=name, task=task, encoders=encoders, fusion=fusion, head=head,
                     plugin=plugin, distribution=distribution, version=version,
                     description=desc)


class UnresolvedError(RegistryError):
    """A model names a component that is not there (or ambiguous) in this environment."""


class Registry:
    """All registered components, models and weights. Build with :func:`get_registry`."""

    def __init__(self) -> None:
        # kind -> qualified name ("plugin:name") -> spec
        self._items: dict[str, dict[str, Any]] = {k: {} for k in (*KINDS, "weights")}
        # kind -> bare name -> qualified names registered under it (two = ambiguous)
        self._bare: dict[str, dict[str, list[str]]] = {k: {} for k in (*KINDS, "weights")}
        # registry files that were read, for `zoo info` and error messages
        self.files: list[Path] = []

    # ---- adding ---------------------------------------------------------------------
    def add(self, kind: str, spec: Any) -> None:
        qn = spec.qualified_name
        if qn in self._items[kind]:
            raise RegistryError(f"{kind} {spec.name!r} registered twice by plugin "
                                f"{spec.plugin!r}")
        self._items[kind][qn] = spec
        others = self._bare[kind].setdefault(spec.name, [])
        others.append(qn)
        if len(others) > 1:
            import warnings

            a, b = (self._items[kind][q] for q in others[:2])
            msg = (f"{kind} {spec.name!r} is registered by two plugins: {a.plugin!r} "
                   f"({a.distribution}) and {b.plugin!r} ({b.distribution}); use "
                   f"{a.qualified_name!r} or {b.qualified_name!r}, or uninstall one")
            from .plugins import strict

            if strict():
                raise PluginError(msg)
            warnings.warn(msg, RuntimeWarning, stacklevel=2)

    def remove_plugin(self, plugin: str) -> None:
        for kind, items in self._items.items():
            for qn in [q for q, s in items.items() if s.plugin == plugin]:
                del items[qn]
                bare = self._bare[kind][qn.split(":", 1)[1]]
                bare.remove(qn)

    # ---- lookup ---------------------------------------------------------------------
    def _lookup(self, kind: str, name: str) -> Any:
        items = self._items[kind]
        if ":" in name:
            if name in items:
                return items[name]
            # "distribution:name" also works
            plugin_part, bare = name.split(":", 1)
            for qn in self._bare[kind].get(bare, []):
                if items[qn].distribution == plugin_part:
                    return items[qn]
            raise self._unknown(kind, name)
        qns = self._bare[kind].get(name, [])
        if len(qns) == 1:
            return items[qns[0]]
        if len(qns) > 1:
            specs = [items[q] for q in qns]
            raise RegistryError(
                f"{kind} name {name!r} is ambiguous: registered by "
                + " and ".join(f"{s.plugin!r} ({s.distribution})" for s in specs)
                + f"; use one of {', '.join(repr(s.qualified_name) for s in specs)}")
        raise self._unknown(kind, name)

    def _unknown(self, kind: str, name: str) -> UnknownNameError:
        known = sorted(self._bare[kind])
        close = difflib.get_close_matches(name.split(":")[-1], known, n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        listing = "zoo list" + ("" if kind == "weights" else f" --kind {kind}")
        return UnknownNameError(f"unknown {kind} {name!r}{hint} (see `{listing}`)")

    def component(self, kind: str, name: str) -> ComponentSpec:
        return self._lookup(kind, name)

    def encoder(self, name: str) -> ComponentSpec:
        return self._lookup("encoder", split_tag(name)[0])

    def model(self, name: str) -> ModelSpec:
        return self._lookup("model", name)

    def weights(self, tag: str) -> WeightSpec:
        return self._lookup("weights", tag)

    def has(self, kind: str, name: str) -> bool:
        try:
            self._lookup(kind, name)
            return True
        except (UnknownNameError, RegistryError):
            return False

    def find(self, name: str) -> tuple[str, Any]:
        """Any kind by name, models first: ``(kind, spec)``."""
        base = split_tag(name)[0]
        for kind in KINDS:
            n = base if kind == "encoder" else name
            if self._bare[kind].get(n.split(":")[-1]):
                return kind, self._lookup(kind, n)
        known = sorted({n for k in KINDS for n in self._bare[k]})
        close = difflib.get_close_matches(base.split(":")[-1], known, n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise UnknownNameError(f"unknown name {name!r}{hint} (see `zoo list`)")

    def all(self, kind: str) -> list[Any]:
        return list(self._items[kind].values())

    # ---- listing --------------------------------------------------------------------
    def display_name(self, kind: str, spec: Any) -> str:
        return spec.name if len(self._bare[kind][spec.name]) == 1 else spec.qualified_name

    def rows(self, pattern: str | None = None, *, kind: str | None = None,
             task: str | None = None, modality: str | None = None,
             pretrained: bool | None = None) -> list[dict[str, Any]]:
        rows = []
        for k in KINDS:
            if kind and k != kind:
                continue
            for spec in self._items[k].values():
                if k == "model" and spec.unavailable:
                    continue
                row = spec.row(self) if k == "model" else spec.row()
                row["name"] = self.display_name(k, spec)
                rows.append(row)
        if pattern:
            pats = [pattern] if any(c in pattern for c in "*?[") else [f"*{pattern}*"]
            rows = [r for r in rows if any(fnmatch.fnmatchcase(r["name"], p) for p in pats)]
        if task:
            rows = [r for r in rows if r["task"] == task or task in r.get("tasks", ())]
        if modality:
            rows = [r for r in rows if modality in r["modalities"]]
        if pretrained is not None:
            rows = [r for r in rows if r["pretrained"] == pretrained]
        return rows

    # ---- model checks ---------------------------------------------------------------
    def check_model(self, spec: ModelSpec, where: str) -> None:
        """Components exist, fit each other and the task; raises RegistryError otherwise."""
        w = f"{where}: model {spec.name!r}"
        known_tasks = sorted({t for h in self.all("head") for t in h.tasks})
        if spec.task not in known_tasks:
            raise RegistryError(f"{w}: key 'task': unknown task {spec.task!r} "
                                f"(known: {', '.join(known_tasks)})")
        encs = {}
        for modality, ref in spec.encoders.items():
            base, tag = split_tag(ref["name"])
            try:
                enc = self.component("encoder", base)
            except RegistryError as e:
                raise UnresolvedError(f"{w}: key 'encoders.{modality}': {e}") from None
            if enc.modality != modality:
                raise RegistryError(f"{w}: key 'encoders.{modality}': encoder {base!r} is a "
                                    f"{enc.modality} encoder, not {modality}")
            if tag and not self.has("weights", f"{base}.{tag}"):
                raise RegistryError(f"{w}: key 'encoders.{modality}': unknown weights "
                                    f"{base}.{tag!s}")
            encs[modality] = enc
        try:
            head = self.component("head", spec.head["name"])
        except RegistryError as e:
            raise UnresolvedError(f"{w}: key 'head': {e}") from None
        if spec.task not in head.tasks:
            raise RegistryError(f"{w}: key 'head': head {head.name!r} serves "
                                f"{', '.join(head.tasks)}, not {spec.task!r}")
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
            return
        try:
            fusion = self.component("fusion", spec.fusion["name"])
        except RegistryError as e:
            raise UnresolvedError(f"{w}: key 'fusion': {e}") from None
        for modality, enc in encs.items():
            if not set(enc.outputs) & set(fusion.accepts):
                raise RegistryError(
                    f"{w}: key 'fusion': fusion {fusion.name!r} takes "
                    f"{'/'.join(fusion.accepts)} outputs but encoder {enc.name!r} "
                    f"({modality}) gives {'/'.join(enc.outputs)}")

    def load_file(self, path: Path, *, incomplete: str | None = None) -> None:
        """Read one registry.toml. ``incomplete`` says why unknown components are expected
        (a plugin failed or was filtered out): such models are kept as unavailable."""
        where = path.name if path.parent == Path(__file__).parent else str(path)
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as e:
            raise RegistryError(f"{where}: not valid TOML: {e}") from None
        except OSError as e:
            raise RegistryError(f"{where}: cannot read: {e.strerror}") from None
        for key in data:
            if key != "models":
                raise RegistryError(f"{where}: unknown top-level table {key!r} (only [models.NAME])")
        models = data.get("models", {})
        if not isinstance(models, Mapping):
            raise RegistryError(f"{where}: 'models' must be a table of [models.NAME] tables")
        self.files.append(path)
        for name, raw in models.items():
            spec = parse_model_spec(name, raw, where=where, plugin="registry",
                                    distribution="registry.toml", version="")
            try:
                self.check_model(spec, where)
            except UnresolvedError as e:
                # a typo is an error; a component that a failed, filtered or clashing
                # plugin would provide only makes this model unavailable here
                if "ambiguous" in str(e):
                    spec = _replace(spec, unavailable=str(e))
                elif incomplete is not None:
                    spec = _replace(spec, unavailable=f"{e} ({incomplete})")
                else:
                    raise
            self.add("model", spec)


def _replace(spec: Any, **changes: Any) -> Any:
    import dataclasses

    return dataclasses.replace(spec, **changes)


# ---- the register callbacks handed to plugins ---------------------------------------------

def _name_ok(name: Any, what: str) -> str:
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise RegistryError(f"{what} name {name!r} must be lower-case letters, digits, '-' or "
                            f"'_' (no '.', which separates a pretrained tag)")
    return name


def _tuple(value: Any, what: str, allowed: Iterable[str] | None = None) -> tuple[str, ...]:
    if isinstance(value, str):
        value = (value,)
    value = tuple(value)
    if allowed is not None:
        bad = [v for v in value if v not in allowed]
        if bad:
            raise RegistryError(f"{what}: unknown value(s) {bad} (allowed: {', '.join(allowed)})")
    return value


def _make_callbacks(pending: list[tuple[str, Any]], plugin: str, dist: str, version: str
                    ) -> dict[str, Callable[..., None]]:
    def encoder(name: str, factory: str | Callable, *, modality: str, outputs: Iterable[str],
                dim: int | None = None, description: str = "",
                defaults: Mapping[str, Any] | None = None, weights: str | None = None,
                tasks: Iterable[str] = ()) -> None:
        _name_ok(name, "encoder")
        if modality not in MODALITIES:
            raise RegistryError(f"encoder {name!r}: modality {modality!r} is not one of "
                                f"{', '.join(MODALITIES)}")
        _check_json(dict(defaults or {}), f"encoder {name!r} defaults")
        pending.append(("encoder", ComponentSpec(
            name=name, kind="encoder", factory=factory, plugin=plugin, distribution=dist,
            version=version, modality=modality,
            outputs=_tuple(outputs, f"encoder {name!r} outputs", CONTRACTS[:3]), dim=dim,
            description=description, defaults=dict(defaults or {}), weights=weights,
            tasks=_tuple(tasks, "tasks"))))

    def fusion(name: str, factory: str | Callable, *, accepts: Iterable[str],
               description: str = "", defaults: Mapping[str, Any] | None = None) -> None:
        _name_ok(name, "fusion")
        _check_json(dict(defaults or {}), f"fusion {name!r} defaults")
        pending.append(("fusion", ComponentSpec(
            name=name, kind="fusion", factory=factory, plugin=plugin, distribution=dist,
            version=version, accepts=_tuple(accepts, f"fusion {name!r} accepts", CONTRACTS[:3]),
            description=description, defaults=dict(defaults or {}))))

    def head(name: str, factory: str | Callable, *, tasks: Iterable[str],
             accepts: Iterable[str] = ("fused",), description: str = "",
             defaults: Mapping[str, Any] | None = None) -> None:
        _name_ok(name, "head")
        _check_json(dict(defaults or {}), f"head {name!r} defaults")
        pending.append(("head", ComponentSpec(
            name=name, kind="head", factory=factory, plugin=plugin, distribution=dist,
            version=version, tasks=_tuple(tasks, "tasks"),
            accepts=_tuple(accepts, f"head {name!r} accepts", CONTRACTS),
            description=description, defaults=dict(defaults or {}))))

    def model(name: str, spec: Mapping[str, Any]) -> None:
        pending.append(("model", parse_model_spec(
            name, spec, where=f"plugin {plugin!r}", plugin=plugin, distribution=dist,
            version=version)))

    def weights(tag: str, *, sources: Iterable[str], sha256: str | None = None,
                file: str | None = None, key_map: str | None = None,
                license: str | None = None, description: str = "") -> None:
        base, t = split_tag(tag)
        _name_ok(base, "weights")
        if not t:
            raise RegistryError(f"weights {tag!r}: expected 'encoder-name.tag'")
        srcs = _tuple(sources, f"weights {tag!r} sources")
        for s in srcs:
            if not s.startswith(("hf-hub:", "pip:", "file:")):
                raise RegistryError(f"weights {tag!r}: source {s!r} must start with hf-hub:, "
                                    f"pip: or file:")
        pending.append(("weights", WeightSpec(
            tag=tag, sources=srcs, plugin=plugin, distribution=dist, sha256=sha256,
            file=file, key_map=key_map, license=license, description=description)))

    return {"register_encoders": encoder, "register_fusions": fusion,
            "register_heads": head, "register_models": model, "register_weights": weights}


_HOOK_ORDER = ("register_weights", "register_encoders", "register_fusions", "register_heads",
               "register_models")
_HOOK_KIND = {"register_weights": "weights", "register_encoders": "encoder",
              "register_fusions": "fusion", "register_heads": "head",
              "register_models": "model"}

_registry: Registry | None = None


def registry_files() -> list[Path]:
    """The shipped registry.toml, then any in ZOO_REGISTRY (os.pathsep-separated)."""
    files = [Path(__file__).parent / "registry.toml"]
    extra = os.environ.get("ZOO_REGISTRY")
    if extra:
        files += [Path(p) for p in extra.split(os.pathsep) if p]
    return files


def get_registry() -> Registry:
    """Collect every plugin's registrations (once per process) and read registry.toml."""
    global _registry
    if _registry is not None:
        return _registry
    from . import plugins

    pm = plugins.get_plugin_manager()
    reg = Registry()
    for hook in _HOOK_ORDER:
        for impl in reversed(getattr(pm.hook, hook).get_hookimpls()):  # registration order
            info = plugins.info_for(impl.plugin_name)
            if info.error:
                continue
            pending: list[tuple[str, Any]] = []
            callbacks = _make_callbacks(pending, info.name, info.distribution, info.version)
            try:
                impl.function(callbacks[hook])
                for kind, spec in pending:
                    if kind == "model":
                        reg.check_model(spec, f"plugin {info.name!r}")
                    reg.add(kind, spec)
                    info.registered.setdefault(_HOOK_KIND[hook], []).append(spec.name)
            except Exception as exc:
                if isinstance(exc, PluginError):
                    raise
                reg.remove_plugin(info.name)
                info.registered.clear()
                plugins.report_failure(info, hook, exc)
    infos = plugins._infos.values()
    failed = [i.name for i in infos if i.error]
    incomplete = None
    if failed:
        incomplete = f"plugin(s) {', '.join(failed)} failed to load; see `zoo plugins`"
    elif os.environ.get("ZOO_PLUGINS") is not None:
        incomplete = "ZOO_PLUGINS limits which plugins load"
    for path in registry_files():
        reg.load_file(path, incomplete=incomplete)
    _registry = reg
    return reg


def reset() -> None:
    global _registry
    _registry = None

