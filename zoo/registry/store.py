"""The registry's store: every spec by qualified name (``plugin:name``), lookup by bare,
plugin-qualified or distribution-qualified name, and listing rows.

When two plugins register one name, both stay reachable by their qualified names and the
bare name is an :class:`AmbiguousNameError` naming both: never a silent overwrite.
"""
from __future__ import annotations

import difflib
import fnmatch
import warnings
from pathlib import Path
from typing import Any

from zoo.errors import PluginError, RegistryError, UnknownNameError
from zoo.registry.specs import KINDS, split_tag

__all__ = ["Registry", "AmbiguousNameError"]


class AmbiguousNameError(RegistryError):
    """A bare name that two or more plugins registered."""

    def __init__(self, message: str, specs: list[Any]) -> None:
        super().__init__(message)
        self.specs = specs


class Registry:
    """All registered components, tasks, models and weights (see ``get_registry``)."""

    def __init__(self) -> None:
        # kind -> qualified name ("plugin:name") -> spec
        self._items: dict[str, dict[str, Any]] = {k: {} for k in KINDS}
        # kind -> bare name -> qualified names registered under it (two = ambiguous)
        self._bare: dict[str, dict[str, list[str]]] = {k: {} for k in KINDS}
        # registry files that were read, for `zoo info` and error messages
        self.files: list[Path] = []
        # model name -> measured figures (params, metrics, the command), from results.toml
        self.results: dict[str, dict[str, Any]] = {}
        # built once per registry: qualified task name -> Task; keys inputs may carry
        self.task_cache: dict[str, Any] = {}
        # built once per registry: modality name -> Modality
        self.modality_cache: dict[str, Any] = {}

    # ---- adding ---------------------------------------------------------------------
    def add(self, kind: str, spec: Any, *, strict: bool = False) -> None:
        qn = spec.qualified_name
        if qn in self._items[kind]:
            raise RegistryError(f"{kind} {spec.name!r} registered twice by plugin "
                                f"{spec.plugin!r}")
        if kind == "modality" and self._bare[kind].get(spec.name):
            # a modality is an input key: two meanings of one key cannot both be reachable
            first = self._items[kind][self._bare[kind][spec.name][0]]
            raise RegistryError(f"modality {spec.name!r} is registered already by plugin "
                                f"{first.plugin!r} ({first.distribution}); a modality name is "
                                f"an input key and must be unique: rename yours")
        self._items[kind][qn] = spec
        others = self._bare[kind].setdefault(spec.name, [])
        others.append(qn)
        if len(others) >= 2:
            specs = [self._items[kind][q] for q in others]
            msg = (f"{kind} {spec.name!r} is registered by {len(specs)} plugins: "
                   + " and ".join(f"{s.plugin!r} ({s.distribution})" for s in specs)
                   + "; each stays reachable as "
                   + ", ".join(repr(s.qualified_name) for s in specs))
            if strict:
                raise PluginError(msg + " (ZOO_STRICT_PLUGINS=1 makes a clash an error; "
                                  "uninstall one, or unset it)")
            warnings.warn(msg, RuntimeWarning, stacklevel=3)

    def remove(self, kind: str, spec: Any) -> None:
        qn = spec.qualified_name
        if self._items[kind].pop(qn, None) is not None:
            self._bare[kind][spec.name].remove(qn)
            if not self._bare[kind][spec.name]:
                del self._bare[kind][spec.name]

    def remove_plugin(self, plugin: str) -> None:
        for kind, items in self._items.items():
            for spec in [s for s in items.values() if s.plugin == plugin]:
                self.remove(kind, spec)

    # ---- lookup ---------------------------------------------------------------------
    def lookup(self, kind: str, name: str) -> Any:
        """A spec by ``name``, ``plugin:name`` or ``distribution:name``."""
        items = self._items[kind]
        if ":" in name:
            if name in items:
                return items[name]
            owner, bare = name.split(":", 1)
            for qn in self._bare[kind].get(bare, []):
                if items[qn].distribution == owner:
                    return items[qn]
            raise self._unknown(kind, name)
        qns = self._bare[kind].get(name, [])
        if len(qns) == 1:
            return items[qns[0]]
        if len(qns) > 1:
            specs = [items[q] for q in qns]
            raise AmbiguousNameError(
                f"{kind} name {name!r} is ambiguous: registered by "
                + " and ".join(f"plugin {s.plugin!r} ({s.distribution})" for s in specs)
                + f"; use one of {', '.join(repr(s.qualified_name) for s in specs)}", specs)
        raise self._unknown(kind, name)

    def _unknown(self, kind: str, name: str) -> UnknownNameError:
        owner, _, bare = name.rpartition(":")
        if owner:  # "dup:bert-tiny" when no plugin "dup" has it: offer who does
            close = [q for q in self._bare[kind].get(bare, [])]
            close += [n for n in difflib.get_close_matches(bare, list(self._bare[kind]), n=3)
                      if n != bare]
        else:
            close = [n for n in difflib.get_close_matches(bare, list(self._bare[kind]), n=3)
                     if n != bare]
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        return UnknownNameError(f"unknown {kind} {name!r}{hint} (see `zoo list --kind {kind}`)")

    def component(self, kind: str, name: str) -> Any:
        return self.lookup(kind, name)

    def encoder(self, name: str) -> Any:
        return self.lookup("encoder", split_tag(name)[0])

    def model(self, name: str) -> Any:
        return self.lookup("model", name)

    def weights(self, tag: str) -> Any:
        return self.lookup("weights", tag)

    def task(self, name: str) -> Any:
        return self.lookup("task", name)

    def has(self, kind: str, name: str) -> bool:
        try:
            self.lookup(kind, name)
            return True
        except RegistryError:
            return False

    def resolved(self, model: Any, part: str, kind: str, name: str) -> Any:
        """The spec a model's part resolved to when it was checked (None if missing)."""
        qn = model.resolved.get(part)
        if qn is not None and qn in self._items[kind]:
            return self._items[kind][qn]
        try:
            return self.lookup(kind, name)
        except RegistryError:
            return None

    def find(self, name: str) -> tuple[str, Any]:
        """Any kind by name, models first: ``(kind, spec)``."""
        base = split_tag(name)[0]
        for kind in KINDS:
            n = name if kind in ("model", "weights") else base
            bare = n.split(":")[-1]
            if self._bare[kind].get(bare):
                try:
                    return kind, self.lookup(kind, n)
                except UnknownNameError:
                    continue
        known = sorted({n for k in KINDS for n in self._bare[k]})
        bare = base.split(":")[-1]
        close = [n for n in difflib.get_close_matches(bare, known, n=3) if n != bare]
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise UnknownNameError(f"unknown name {name!r}{hint} (see `zoo list`)")

    def modality(self, name: str) -> Any:
        """The :class:`zoo.plugin.Modality` registered as ``name`` (built once)."""
        if name not in self.modality_cache:
            self.modality_cache[name] = self.lookup("modality", name).build()
        return self.modality_cache[name]

    def modalities(self) -> dict[str, Any]:
        """Every registered modality, name -> Modality, in registration order."""
        return {spec.name: self.modality(spec.name) for spec in self.all("modality")}

    def sort_modalities(self, names: Any) -> list[str]:
        """``names`` in the order their modalities were registered (unknown ones last)."""
        order = [spec.name for spec in self.all("modality")]
        return sorted(names, key=lambda m: (order.index(m) if m in order else len(order), m))

    def all(self, kind: str) -> list[Any]:
        return list(self._items[kind].values())

    # ---- listing --------------------------------------------------------------------
    def display_name(self, kind: str, spec: Any) -> str:
        return spec.name if len(self._bare[kind][spec.name]) == 1 else spec.qualified_name

    def rows(self, pattern: str | None = None, *, kind: str | None = None,
             task: str | None = None, modality: str | None = None,
             pretrained: bool | None = None, ready: bool | None = None
             ) -> list[dict[str, Any]]:
        rows = []
        for k in KINDS:
            if (kind is None and k in ("task", "modality", "weights", "logger", "objective")) \
                    or (kind and k != kind):
                continue  # tasks, weights, loggers, objectives: listed when asked for by --kind
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
        if ready is not None:
            rows = [r for r in rows if r.get("ready", False) == ready]
        return rows
