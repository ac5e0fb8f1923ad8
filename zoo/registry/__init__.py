"""Registry state: modalities, tasks, components (encoders, fusions, heads), named models,
pretrained weights, training loggers and pretraining objectives. Everything here is
metadata: nothing is built and no heavy library is imported until a factory is called, so
listing stays fast.

- ``specs``: one dataclass per kind, and the shape check of a model entry;
- ``store``: lookup by bare / ``plugin:`` / ``distribution:`` name, listing rows;
- ``validate``: a model's components exist and fit each other;
- ``collect``: the ``register`` callbacks and the registry files;
- ``manager``: the plugin manager (entry points, contract versions, isolation);
- ``listing``: ``list_models`` and ``model_info``.
"""
from __future__ import annotations

from typing import Any

from zoo.registry.collect import get_registry, plugin_infos, registry_files, reset
from zoo.registry.specs import (CONTRACTS, KINDS, ComponentSpec, ModalitySpec, ModelSpec,
                                ObjectiveSpec, TaskSpec, WeightSpec, parse_model_spec,
                                resolve_import, split_tag)
from zoo.registry.store import AmbiguousNameError, Registry
from zoo.registry.validate import FIRST_PARTY, UnresolvedError, check_model

__all__ = ["get_registry", "plugin_infos", "registry_files", "reset", "CONTRACTS", "KINDS",
           "ComponentSpec", "ModalitySpec", "ModelSpec", "ObjectiveSpec", "TaskSpec",
           "WeightSpec", "parse_model_spec", "resolve_import", "split_tag",
           "AmbiguousNameError", "Registry", "FIRST_PARTY", "UnresolvedError", "check_model",
           "get_task", "get_modality", "modalities"]


def get_task(name: str) -> Any:
    """The :class:`zoo.plugin.Task` registered as ``name`` (built once per registry)."""
    reg = get_registry()
    spec = reg.task(name)
    if spec.qualified_name not in reg.task_cache:
        reg.task_cache[spec.qualified_name] = spec.build()
    return reg.task_cache[spec.qualified_name]


def get_modality(name: str) -> Any:
    """The :class:`zoo.plugin.Modality` registered as ``name`` (built once per registry)."""
    return get_registry().modality(name)


def modalities() -> dict[str, Any]:
    """Every registered modality, name -> :class:`zoo.plugin.Modality`, in order."""
    return get_registry().modalities()
