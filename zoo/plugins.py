"""The plugin manager: entry points, built-in plugins, isolation and the allow-list.

Switches (environment variables):

- ``ZOO_PLUGINS=a,b``: load only these external plugins (entry-point or distribution
  names); an empty value loads none. Built-in plugins always load.
- ``ZOO_STRICT_PLUGINS=1``: a plugin that fails to import or register is an error
  instead of a warning.
"""
from __future__ import annotations

import importlib
import os
import warnings
from dataclasses import dataclass, field
from importlib import metadata

import pluggy

from . import hookspecs
from .errors import PluginError

__all__ = ["DEFAULT_PLUGINS", "PluginInfo", "get_plugin_manager", "plugin_infos", "reset",
           "strict"]

#: The core's own fusions and heads, registered exactly like external plugins.
DEFAULT_PLUGINS = ("zoo.fusions", "zoo.heads")

ENTRY_POINT_GROUP = "zoo"


@dataclass
class PluginInfo:
    """What ``zoo plugins`` reports about one plugin."""

    name: str  # entry-point name, or the module name of a built-in plugin
    distribution: str  # providing distribution ("zoo" for built-ins)
    version: str
    builtin: bool = False
    error: str | None = None  # "ExceptionType: message" when loading failed
    registered: dict[str, list[str]] = field(default_factory=dict)  # kind -> names


_pm: pluggy.PluginManager | None = None
_infos: dict[str, PluginInfo] = {}  # plugin name -> info, in load order


def strict() -> bool:
    return os.environ.get("ZOO_STRICT_PLUGINS", "").lower() in ("1", "true", "yes")


def _allowed() -> set[str] | None:
    raw = os.environ.get("ZOO_PLUGINS")
    if raw is None:
        return None
    return {p.strip() for p in raw.split(",") if p.strip()}


def report_failure(info: PluginInfo, stage: str, exc: BaseException) -> None:
    """Record a plugin failure; warn, or raise when ZOO_STRICT_PLUGINS=1."""
    info.error = f"{type(exc).__name__}: {exc}"
    msg = (f"plugin {info.name!r} (distribution {info.distribution} {info.version}) failed "
           f"during {stage}: {info.error}; it is skipped (run `zoo plugins` for details, "
           f"ZOO_STRICT_PLUGINS=1 to make this fatal)")
    if strict():
        raise PluginError(msg) from exc
    warnings.warn(msg, RuntimeWarning, stacklevel=3)


def get_plugin_manager() -> pluggy.PluginManager:
    """The process-wide plugin manager, built on first use."""
    global _pm
    if _pm is not None:
        return _pm
    pm = pluggy.PluginManager("zoo")
    pm.add_hookspecs(hookspecs)
    from . import __version__

    for modname in DEFAULT_PLUGINS:
        mod = importlib.import_module(modname)
        pm.register(mod, name=modname)
        _infos[modname] = PluginInfo(modname, "zoo", __version__, builtin=True)

    allowed = _allowed()
    for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
        dist = ep.dist.name if ep.dist is not None else "?"
        version = ep.dist.version if ep.dist is not None else "?"
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
    return pm


def plugin_infos() -> list[PluginInfo]:
    """Every plugin seen, after the registry has collected their registrations."""
    from .registry import get_registry

    get_registry()
    return list(_infos.values())


def info_for(plugin_name: str) -> PluginInfo:
    return _infos[plugin_name]


def reset() -> None:
    """Forget the plugin manager and the registry (tests, and after ``zoo install``)."""
    global _pm
    _pm = None
    _infos.clear()
    from . import registry

    registry.reset()
