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
from typing import Iterator

import pluggy

import zoo.hookspecs as hookspecs
from zoo.errors import PluginError

__all__ = ["DEFAULT_PLUGINS", "CORE_DISTRIBUTION", "PluginInfo", "get_plugin_manager",
           "plugin_infos_raw", "reset", "strict", "lenient"]

#: the core's own tasks, fusions and heads, registered exactly like external plugins
DEFAULT_PLUGINS = ("zoo.tasks", "zoo.fusions", "zoo.heads", "zoo.training.loggers")

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
            pm.register(mod, name=ep.name)
        except Exception as exc:  # one broken plugin never breaks the host
            report_failure(info, "import", exc)
    _pm = pm
    unknown = sorted((allowed or set()) - seen)
    if unknown:
        installed = sorted(i.name for i in _infos.values() if not i.builtin) or ["none"]
        _warn_or_raise(f"ZOO_PLUGINS names {', '.join(map(repr, unknown))}, which no "
                       f"installed plugin has (loaded: {', '.join(installed)}; see "
                       f"`zoo plugins`)")
    return pm


def plugin_infos_raw() -> list[PluginInfo]:
    return list(_infos.values())


def info_for(plugin_name: str) -> PluginInfo:
    return _infos[plugin_name]


def reset() -> None:
    """Forget the plugin manager (``zoo.registry.reset`` forgets the registry too)."""
    global _pm
    _pm = None
    _infos.clear()
