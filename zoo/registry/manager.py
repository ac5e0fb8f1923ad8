"""The plugin manager: entry points, built-in plugins, isolation and the allow-list.

Switches (environment variables):

- ``ZOO_PLUGINS=a,b``: load only these external plugins (entry-point or distribution
  names); an empty value loads none. Built-in plugins always load. A name no installed
  plugin has is a warning (an error when strict).
- ``ZOO_STRICT_PLUGINS=1``: a plugin that fails to import or register, a name clash and a
  model whose components are missing are errors instead of warnings.
"""
from __future__ import annotations

import contextlib
import importlib
import os
import warnings
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any, Iterator

import pluggy

import zoo.hookspecs as hookspecs
from zoo.errors import PluginError

__all__ = ["DEFAULT_PLUGINS", "CORE_DISTRIBUTION", "PluginInfo", "get_plugin_manager",
           "plugin_infos_raw", "reset", "strict", "lenient"]

#: the core's own tasks, fusions and heads, registered exactly like external plugins
DEFAULT_PLUGINS = ("zoo.modalities", "zoo.tasks", "zoo.fusions", "zoo.heads",
                   "zoo.training.loggers")

#: the distribution that provides the import package ``zoo`` (``pip install zoo-mm``)
CORE_DISTRIBUTION = "zoo-mm"

ENTRY_POINT_GROUP = "zoo"


@dataclass
class PluginInfo:
    """What ``zoo plugins`` reports about one plugin."""

    name: str  # entry-point name, or the module name of a built-in plugin
    distribution: str  # providing distribution (CORE_DISTRIBUTION for built-ins)
    version: str
    builtin: bool = False
    error: str | None = None  # "ExceptionType: message" when loading failed
    failed_at: str | None = None  # "import" or the hook that failed
    registered: dict[str, list[str]] = field(default_factory=dict)  # kind -> names
    contract: int = hookspecs.CONTRACT  # the plugin contract it declares (zoo_contract)
    # hook-like functions zoo will never call: misspelled hook names, unmarked functions
    unknown_hooks: list[str] = field(default_factory=list)


_pm: pluggy.PluginManager | None = None
_infos: dict[str, PluginInfo] = {}  # plugin name -> info, in load order
_lenient = False


def strict() -> bool:
    if _lenient:
        return False
    return os.environ.get("ZOO_STRICT_PLUGINS", "").lower() in ("1", "true", "yes")


@contextlib.contextmanager
def lenient() -> Iterator[None]:
    """Collect plugins without strictness (``zoo plugins`` must report, not fail)."""
    global _lenient
    saved, _lenient = _lenient, True
    try:
        yield
    finally:
        _lenient = saved


def _allowed() -> set[str] | None:
    raw = os.environ.get("ZOO_PLUGINS")
    if raw is None:
        return None
    return {p.strip() for p in raw.split(",") if p.strip()}


def report_failure(info: PluginInfo, stage: str, exc: BaseException) -> None:
    """Record a plugin failure; warn, or raise when ZOO_STRICT_PLUGINS=1."""
    info.error, info.failed_at = f"{type(exc).__name__}: {exc}", stage
    what = (f"plugin {info.name!r} (distribution {info.distribution} {info.version}) failed "
            f"during {stage}: {info.error}")
    if strict():
        raise PluginError(f"{what} (ZOO_STRICT_PLUGINS=1 makes this an error; fix or "
                          f"uninstall the plugin, or unset it)") from exc
    warnings.warn(f"{what}; it is skipped (see `zoo plugins`; ZOO_STRICT_PLUGINS=1 makes "
                  f"this an error)", RuntimeWarning, stacklevel=3)


def _warn_or_raise(msg: str) -> None:
    if strict():
        raise PluginError(msg + " (ZOO_STRICT_PLUGINS=1 makes this an error)")
    warnings.warn(msg, RuntimeWarning, stacklevel=3)


def get_plugin_manager() -> pluggy.PluginManager:
    """The process-wide plugin manager, built on first use."""
    global _pm
    if _pm is not None:
        return _pm
    pm = pluggy.PluginManager("zoo")
    pm.add_hookspecs(hookspecs)
    from zoo.version import __version__

    for modname in DEFAULT_PLUGINS:
        mod = importlib.import_module(modname)
        pm.register(mod, name=modname)
        _infos[modname] = PluginInfo(modname, CORE_DISTRIBUTION, __version__, builtin=True)
        _check_hooks(pm, mod, _infos[modname])

    allowed = _allowed()
    seen: set[str] = set()
    for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
        dist = ep.dist.name if ep.dist is not None else "?"
        version = ep.dist.version if ep.dist is not None else "?"
        seen.update((ep.name, dist))
        if allowed is not None and ep.name not in allowed and dist not in allowed:
            continue
        if ep.name in _infos:  # the same distribution seen twice on sys.path
            continue
        info = PluginInfo(ep.name, dist, version)
        _infos[ep.name] = info
        try:
            mod = ep.load()
            info.contract = _contract(mod, info)
            pm.register(mod, name=ep.name)
        except Exception as exc:  # one broken plugin never breaks the host
            report_failure(info, "import", exc)
            continue
        _check_hooks(pm, mod, info)
    _pm = pm
    unknown = sorted((allowed or set()) - seen)
    if unknown:
        installed = sorted(i.name for i in _infos.values() if not i.builtin) or ["none"]
        _warn_or_raise(f"ZOO_PLUGINS names {', '.join(map(repr, unknown))}, which no "
                       f"installed plugin has (loaded: {', '.join(installed)}; see "
                       f"`zoo plugins`)")
    return pm


def _contract(module: Any, info: PluginInfo) -> int:
    """The plugin contract a plugin module declares (``zoo_contract = 2``); none declared is
    contract 1 (zoo 0.1), which loads with a DeprecationWarning. An unsupported one fails
    the plugin with a line saying what to upgrade."""
    declared = getattr(module, "zoo_contract", None)
    version = 1 if declared is None else declared
    if version not in hookspecs.SUPPORTED_CONTRACTS:
        newer = isinstance(version, int) and version > hookspecs.CONTRACT
        raise PluginError(f"it targets plugin contract {version!r}; this zoo supports "
                          f"{', '.join(map(str, hookspecs.SUPPORTED_CONTRACTS))}: "
                          + ("upgrade zoo (pip install -U zoo-mm)" if newer else
                             f"upgrade {info.distribution}"))
    if version < hookspecs.CONTRACT:
        warnings.warn(f"plugin {info.name!r} ({info.distribution} {info.version}) targets plugin "
                      f"contract {version}" + (" (it declares no zoo_contract)" if declared is
                                               None else "")
                      + f"; it works until zoo 0.3: move it to contract {hookspecs.CONTRACT} "
                      f"and declare zoo_contract = {hookspecs.CONTRACT} (docs/plugins.md, "
                      f"'Contract versions')", DeprecationWarning, stacklevel=4)
    return int(version)


def unknown_hooks(pm: pluggy.PluginManager, module: Any, plugin: str) -> list[str]:
    """Hook-like functions of a plugin that zoo will never call: hook implementations
    whose name no hook has (``register_encoder``: a typo), and ``register_*`` functions
    not marked ``@hookimpl``; each with the fix."""
    import difflib

    problems = []
    for name in list(pm.hook.__dict__):
        caller = getattr(pm.hook, name)
        if name.startswith("_") or not isinstance(caller, pluggy.HookCaller) or \
                caller.has_spec():
            continue
        if any(impl.plugin_name == plugin for impl in caller.get_hookimpls()):
            close = difflib.get_close_matches(name, list(hookspecs.HOOKS), n=1)
            problems.append(f"unknown hook {name!r}" + (f" (did you mean {close[0]!r}?)"
                                                         if close else ""))
    for name, fn in vars(module).items():
        if name.startswith("register_") and callable(fn) and \
                not hasattr(fn, "zoo_impl") and name in hookspecs.HOOKS:
            problems.append(f"{name} is not marked @hookimpl, so zoo never calls it")
    return problems


def _check_hooks(pm: pluggy.PluginManager, module: Any, info: PluginInfo) -> None:
    info.unknown_hooks = unknown_hooks(pm, module, info.name)
    for problem in info.unknown_hooks:
        _warn_or_raise(f"plugin {info.name!r} ({info.distribution}): {problem}; see "
                       f"`zoo plugins check {info.name}`")


def plugin_infos_raw() -> list[PluginInfo]:
    return list(_infos.values())


def info_for(plugin_name: str) -> PluginInfo:
    return _infos[plugin_name]


def reset() -> None:
    """Forget the plugin manager (``zoo.registry.reset`` forgets the registry too)."""
    global _pm
    _pm = None
    _infos.clear()
