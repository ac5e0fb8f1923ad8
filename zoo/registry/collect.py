"""Building the registry: the ``register`` callbacks handed to plugin hooks, and the
registry files (``registry.toml`` shipped with zoo, then ``ZOO_REGISTRY``).

One bad registration never takes more than itself: a hook that raises drops that plugin's
registrations from that hook (reported by ``zoo plugins``); a model whose components are
missing is kept aside as unavailable, with a warning naming the model and the component.
``ZOO_STRICT_PLUGINS=1`` turns each of these into an error.
"""
from __future__ import annotations

import dataclasses
import os
import threading
import tomllib
import warnings
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

from zoo.base.config import check_json
from zoo.errors import PluginError, RegistryError
from zoo.hookspecs import Factory
from zoo.registry import manager
from zoo.registry.specs import (CONTRACTS, NAME_RE, ComponentSpec, LoggerSpec, ModalitySpec,
                                ModelSpec, ObjectiveSpec, TaskSpec, WeightSpec,
                                parse_model_spec, split_tag)
from zoo.registry.store import Registry
from zoo.registry.validate import UnresolvedError, check_model

__all__ = ["get_registry", "reset", "registry_files", "HOOK_ORDER", "plugin_infos", "Registrar"]


def _name_ok(name: Any, what: str) -> str:
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise RegistryError(f"{what} name {name!r} must be lower-case letters, digits, '-' or "
                            f"'_' (no '.', which separates a pretrained tag)")
    return name


def _tuple(value: Any, what: str, allowed: Iterable[str] | None = None) -> tuple[str, ...]:
    value = (value,) if isinstance(value, str) else tuple(value)
    if allowed is not None:
        bad = [v for v in value if v not in allowed]
        if bad:
            raise RegistryError(f"{what}: unknown value(s) {bad} (allowed: {', '.join(allowed)})")
    return value


def _factory_ok(factory: Any, what: str) -> Any:
    if callable(factory) or (isinstance(factory, str) and ":" in factory):
        return factory
    raise RegistryError(f"{what}: factory must be 'package.module:callable' or a callable, "
                        f"got {factory!r}")


def _defaults(defaults: Mapping[str, Any] | None, what: str) -> dict[str, Any]:
    check_json(dict(defaults or {}), f"{what} defaults")
    return dict(defaults or {})


class Registrar:
    """The ``register`` callbacks one plugin's hooks receive, collecting into ``pending``.
    Each method's signature is exactly its type in :mod:`zoo.hookspecs` (``encoder`` is
    a :class:`~zoo.hookspecs.RegisterEncoder`, ...; a test checks it)."""

    def __init__(self, pending: list[tuple[str, Any]], plugin: str, dist: str, version: str,
                 modalities: Iterable[str]) -> None:
        self.pending = pending
        self.common = {"plugin": plugin, "distribution": dist, "version": version}
        self.plugin = plugin
        self.known_modalities = modalities  # what register_modalities collected

    def _modality_ok(self, modality: Any, what: str) -> str:
        known = list(self.known_modalities)
        if modality not in known:
            raise RegistryError(f"{what}: modality {modality!r} is not registered (registered: "
                                f"{', '.join(known) or 'none'}; a plugin adds one with "
                                f"register_modalities)")
        return modality

    def modality(self, name: str, factory: Factory, *, description: str = "") -> None:
        what = f"modality {_name_ok(name, 'modality')!r}"
        self.pending.append(("modality", ModalitySpec(
            name=name, factory=_factory_ok(factory, what), description=description,
            **self.common)))

    def encoder(self, name: str, factory: Factory, *, modality: str,
                outputs: Iterable[str], dim: int | None = None, description: str = "",
                defaults: Mapping[str, Any] | None = None, weights: str | None = None,
                tasks: Iterable[str] = (), languages: Iterable[str] = ()) -> None:
        what = f"encoder {_name_ok(name, 'encoder')!r}"
        self._modality_ok(modality, what)
        if dim is not None and (not isinstance(dim, int) or dim <= 0):
            raise RegistryError(f"{what}: dim must be a positive int or None, got {dim!r}")
        self.pending.append(("encoder", ComponentSpec(
            name=name, kind="encoder", factory=_factory_ok(factory, what), modality=modality,
            outputs=_tuple(outputs, f"{what} outputs", CONTRACTS[:3]), dim=dim,
            description=description, defaults=_defaults(defaults, what), weights=weights,
            tasks=_tuple(tasks, "tasks"), languages=_tuple(languages, f"{what} languages"),
            **self.common)))

    def fusion(self, name: str, factory: Factory, *, accepts: Iterable[str],
               description: str = "", defaults: Mapping[str, Any] | None = None) -> None:
        what = f"fusion {_name_ok(name, 'fusion')!r}"
        self.pending.append(("fusion", ComponentSpec(
            name=name, kind="fusion", factory=_factory_ok(factory, what),
            accepts=_tuple(accepts, f"{what} accepts", CONTRACTS[:3]),
            description=description, defaults=_defaults(defaults, what), **self.common)))

    def head(self, name: str, factory: Factory, *, tasks: Iterable[str],
             accepts: Iterable[str] = ("fused",), description: str = "",
             defaults: Mapping[str, Any] | None = None) -> None:
        what = f"head {_name_ok(name, 'head')!r}"
        self.pending.append(("head", ComponentSpec(
            name=name, kind="head", factory=_factory_ok(factory, what),
            tasks=_tuple(tasks, "tasks"), accepts=_tuple(accepts, f"{what} accepts", CONTRACTS),
            description=description, defaults=_defaults(defaults, what), **self.common)))

    def task(self, name: str, factory: Factory, *, targets: Iterable[str] = (),
             description: str = "") -> None:
        what = f"task {_name_ok(name, 'task')!r}"
        self.pending.append(("task", TaskSpec(name=name, factory=_factory_ok(factory, what),
                                              targets=_tuple(targets, f"{what} targets"),
                                              description=description, **self.common)))

    def logger(self, name: str, factory: Factory, *, description: str = "") -> None:
        what = f"logger {_name_ok(name, 'logger')!r}"
        self.pending.append(("logger", LoggerSpec(name=name, factory=_factory_ok(factory, what),
                                                  description=description, **self.common)))

    def objective(self, name: str, factory: Factory, *, modality: str,
                  description: str = "", defaults: Mapping[str, Any] | None = None) -> None:
        what = f"objective {_name_ok(name, 'objective')!r}"
        self._modality_ok(modality, what)
        self.pending.append(("objective", ObjectiveSpec(
            name=name, factory=_factory_ok(factory, what), modality=modality,
            description=description, defaults=_defaults(defaults, what), **self.common)))

    def model(self, name: str, spec: Mapping[str, Any]) -> None:
        self.pending.append(("model", parse_model_spec(name, spec, where=f"plugin "
                                                       f"{self.plugin!r}", **self.common)))

    def weights(self, tag: str, *, sources: Iterable[str], sha256: str | None = None,
                file: str | None = None, key_map: str | None = None,
                license: str | None = None, description: str = "",
                base_model: str | None = None) -> None:
        base, t = split_tag(tag)
        _name_ok(base, "weights")
        if not t:
            raise RegistryError(f"weights {tag!r}: expected 'encoder-name.tag'")
        srcs = _tuple(sources, f"weights {tag!r} sources")
        for s in srcs:
            if not isinstance(s, str) or not s.startswith(("hf-hub:", "pip:", "file:")):
                raise RegistryError(f"weights {tag!r}: source {s!r} must start with hf-hub:, "
                                    f"pip: or file:")
        if key_map not in (None, "by-order", "tail-by-order"):
            raise RegistryError(f"weights {tag!r}: key_map must be None, 'by-order' or "
                                f"'tail-by-order'")
        self.pending.append(("weights", WeightSpec(
            tag=tag, sources=srcs, sha256=sha256, file=file, key_map=key_map,
            license=license, description=description, base_model=base_model, **self.common)))

    def for_hook(self, hook: str) -> Callable[..., None]:
        """The callback a hook receives."""
        return getattr(self, _HOOK_KIND[hook])


#: hooks in the order they are collected: what a model refers to comes before models
HOOK_ORDER = ("register_modalities", "register_tasks", "register_weights", "register_encoders",
              "register_fusions", "register_heads", "register_models", "register_loggers",
              "register_objectives")
_HOOK_KIND = {"register_modalities": "modality", "register_tasks": "task",
              "register_weights": "weights",
              "register_loggers": "logger", "register_objectives": "objective",
              "register_encoders": "encoder", "register_fusions": "fusion",
              "register_heads": "head", "register_models": "model"}


def _add_model(reg: Registry, spec: ModelSpec, where: str, *, strict: bool,
               expected_missing: str | None) -> None:
    """Check a model and add it; one that cannot be built here is kept aside, alone."""
    try:
        spec = dataclasses.replace(spec, resolved=check_model(reg, spec, where))
    except UnresolvedError as e:
        ambiguous = "ambiguous" in str(e)
        if spec.plugin == "registry" and not ambiguous and expected_missing is None:
            raise  # a typo in a registry file is an error that names model and key
        why = f"{e}" + (f" ({expected_missing})" if expected_missing else "")
        if strict:
            raise PluginError(f"{why} (ZOO_STRICT_PLUGINS=1 makes this an error)") from None
        if expected_missing is None:  # filtered plugins are expected: no noise then
            warnings.warn(f"{why}; model {spec.name!r} is skipped, the rest of its plugin "
                          f"is kept", RuntimeWarning, stacklevel=4)
        spec = dataclasses.replace(spec, unavailable=why)
    except RegistryError as e:
        if spec.plugin == "registry" or strict:
            raise
        warnings.warn(f"{e}; model {spec.name!r} is skipped", RuntimeWarning, stacklevel=4)
        spec = dataclasses.replace(spec, unavailable=str(e))
    reg.add("model", spec, strict=strict)


def load_file(reg: Registry, path: Path, *, strict: bool, expected_missing: str | None,
              shipped: bool) -> None:
    """Read one registry TOML file into ``reg``."""
    where = path.name if shipped else str(path)
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
    reg.files.append(path)
    for name, raw in models.items():
        spec = parse_model_spec(name, raw, where=where, plugin="registry",
                                distribution="registry.toml" if shipped else str(path),
                                version="")
        _add_model(reg, spec, where, strict=strict, expected_missing=expected_missing)


_registry: Registry | None = None
_lock = threading.RLock()


def load_results(path: Path) -> dict[str, dict[str, Any]]:
    """Measured figures of models (``bench/bench_ready.py`` writes the file): model name ->
    ``{"params", "metrics", "measured_by"}``; an unreadable file gives none."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError):
        return {}
    models = data.get("models")
    return {k: dict(v) for k, v in models.items() if isinstance(v, Mapping)} \
        if isinstance(models, Mapping) else {}


def registry_files() -> list[Path]:
    """The shipped registry.toml, then any in ZOO_REGISTRY (os.pathsep-separated)."""
    files = [Path(__file__).parent.parent / "registry.toml"]
    extra = os.environ.get("ZOO_REGISTRY")
    if extra:
        files += [Path(p) for p in extra.split(os.pathsep) if p]
    return files


def _collect(reg: Registry, pm: Any, plugins: Any, strict: bool) -> None:
    for hook in HOOK_ORDER:
        for impl in reversed(getattr(pm.hook, hook).get_hookimpls()):  # registration order
            info = plugins.info_for(impl.plugin_name)
            if info.error:
                continue
            pending: list[tuple[str, Any]] = []
            registrar = Registrar(pending, info.name, info.distribution, info.version,
                                  [m.name for m in reg.all("modality")])
            added: list[tuple[str, Any]] = []
            try:
                impl.function(registrar.for_hook(hook))
                for kind, spec in pending:
                    if kind == "model":
                        _add_model(reg, spec, f"plugin {info.name!r}", strict=strict,
                                   expected_missing=None)
                    else:
                        reg.add(kind, spec, strict=strict)
                    added.append((kind, spec))
                    info.registered.setdefault(_HOOK_KIND[hook], []).append(spec.name)
            except PluginError:
                raise
            except Exception as exc:  # this hook's registrations are rolled back, alone
                for kind, spec in added:
                    reg.remove(kind, spec)
                info.registered.pop(_HOOK_KIND[hook], None)
                plugins.report_failure(info, hook, exc)


def get_registry() -> Registry:
    """Collect every plugin's registrations (once per process) and read the registry
    files. Thread-safe: serving threads may ask while another builds it."""
    if _registry is not None:
        return _registry
    with _lock:
        return _registry if _registry is not None else _build()


def _build() -> Registry:
    global _registry
    plugins = manager
    pm = plugins.get_plugin_manager()
    strict = plugins.strict()
    for info in plugins.plugin_infos_raw():  # a rebuilt registry starts from the imports
        info.registered = {}
        if info.failed_at not in (None, "import"):
            info.error = info.failed_at = None
    reg = Registry()
    _collect(reg, pm, plugins, strict)
    failed = [i.name for i in plugins.plugin_infos_raw() if i.error]
    expected = None
    if failed:
        expected = f"plugin(s) {', '.join(failed)} failed to load; see `zoo plugins`"
    elif os.environ.get("ZOO_PLUGINS") is not None:
        expected = "ZOO_PLUGINS limits which plugins load"
    for i, path in enumerate(registry_files()):
        load_file(reg, path, strict=strict, expected_missing=expected, shipped=i == 0)
    reg.results = load_results(Path(__file__).parent.parent / "results.toml")
    _registry = reg
    return reg


def reset() -> None:
    """Forget the registry and the plugin manager (tests, and after ``zoo install``)."""
    global _registry
    with _lock:
        _registry = None
        manager.reset()


def plugin_infos() -> list[Any]:
    """Every plugin seen, after the registry has collected their registrations."""
    get_registry()
    return manager.plugin_infos_raw()
