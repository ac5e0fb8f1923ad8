"""The hooks a zoo plugin may implement.

Every ``register_*`` hook receives a ``register`` callback (the ``llm`` style) instead of
returning a list: the core collects what is registered and remembers which plugin did it.
A plugin module implements the hooks it needs with ``@zoo.hookimpl`` and is found through
the ``zoo`` entry-point group::

    [project.entry-points.zoo]
    my_plugin = "my_plugin_module"

Registration is metadata only. Factories are import strings (``"pkg.module:attr"``) or
callables that import their heavy dependencies when called, so that ``zoo list`` never
imports torch or a modality library.
"""
from __future__ import annotations

from typing import Any, Callable

import pluggy

__all__ = ["hookspec", "hookimpl", "HOOKS"]

hookspec = pluggy.HookspecMarker("zoo")
hookimpl = pluggy.HookimplMarker("zoo")


@hookspec
def register_encoders(register: Callable[..., None]) -> None:
    """Register encoder components.

    Call ``register(name, factory, *, modality, outputs, dim=None, description="",
    defaults=None, weights=None, tasks=(), languages=())`` once per encoder.

    - ``name``: registry name, lower-case with dashes (``"minilm-l6"``).
    - ``factory``: ``"module:callable"`` or a callable; called as
      ``factory(pretrained=..., weights=..., assets_dir=..., **kwargs)`` and returns a
      :class:`zoo.plugin.Encoder`. The JSON ``kwargs`` are captured as its config.
    - ``modality``: ``"text"``, ``"image"`` or ``"audio"``.
    - ``outputs``: the output contracts the encoder can give: ``"pooled"`` (B, D),
      ``"sequence"`` (B, T, D) + mask, ``"features"`` (multi-scale maps with strides).
    - ``dim``: width of the pooled / sequence output when known without building; checked
      against the built encoder's ``dim``.
    - ``defaults``: keyword arguments passed to the factory (JSON values only).
    - ``weights``: default pretrained tag (``"minilm-l6.sbert"``), see ``register_weights``.
    - ``languages``: text encoders: the languages their weights know (``("en",)``); empty:
      any. A model entry's ``fallback`` is trained instead on text in other languages.

    Returns nothing; not firstresult: every plugin's implementation is called.
    """


@hookspec
def register_fusions(register: Callable[..., None]) -> None:
    """Register fusion modules that combine encoder outputs into one representation.

    Call ``register(name, factory, *, accepts, description="", defaults=None)``.
    ``accepts`` lists the encoder output contracts the fusion can consume
    (``("pooled",)``, ``("sequence",)``); the registry refuses a composition whose
    encoders provide none of them. The factory is called as
    ``factory(inputs={modality: {"dim": int, "outputs": [...]}}, **kwargs)`` and returns a
    ``torch.nn.Module`` with an ``out_dim`` attribute whose ``forward(encoded, batch_size)``
    gives (B, out_dim); subclassing :class:`zoo.plugin.Fusion` is optional.

    Returns nothing; not firstresult.
    """


@hookspec
def register_heads(register: Callable[..., None]) -> None:
    """Register task heads (classification, detection, asr, ...).

    Call ``register(name, factory, *, tasks, accepts=("fused",), description="",
    defaults=None)``. ``tasks`` names the tasks the head serves; the factory is called as
    ``factory(in_dim=int, **kwargs)`` after a fusion, or ``factory(inputs={modality:
    description}, **kwargs)`` when ``accepts`` names encoder contracts, and returns a
    :class:`zoo.plugin.Head` (``encode_targets``, ``loss``, ``decode``).

    Returns nothing; not firstresult.
    """


@hookspec
def register_tasks(register: Callable[..., None]) -> None:
    """Register tasks (what a model is trained and evaluated for).

    Call ``register(name, factory, *, targets=(), description="")``. ``targets`` are the
    example keys holding the task's targets (``("label",)``); the factory is called with no
    arguments and returns a :class:`zoo.plugin.Task` (metrics, main metric, head fitting,
    pipeline tag, card text, required inputs).

    Returns nothing; not firstresult.
    """


@hookspec
def register_loggers(register: Callable[..., None]) -> None:
    """Register training loggers (where ``zoo train`` sends its metrics besides
    ``metrics.jsonl``; zoo's own: ``tensorboard``).

    Call ``register(name, factory, *, description="")``. On the main process of a run with
    ``loggers=[name]`` (``zoo train --logger NAME``), ``factory(out_dir, config)`` is called
    once (``config``: the run's options as a dict plus ``resume_step``, the global step a
    resumed run continues from, 0 for a new run; ``out_dir``: the run's output folder)
    and returns an object with ``log(record)`` — called with every line written to
    ``metrics.jsonl`` (step records ``{"step", "epoch", "loss", "lr"}``, epoch records
    ``{"epoch", "step", "train_loss", "seconds", "eval": {metric: value}}``) — and
    ``close()``, called when the run ends.

    Returns nothing; not firstresult.
    """


@hookspec
def register_objectives(register: Callable[..., None]) -> None:
    """Register self-supervised pretraining objectives (``zoo pretrain --objective NAME``;
    zoo-text-hf's ``mlm`` is one).

    Call ``register(name, factory, *, modality, description="", defaults=None)``.
    ``modality`` is the modality of the one encoder the objective pretrains; ``defaults``
    are the factory's keyword arguments (JSON values). ``zoo pretrain`` calls
    ``factory(encoder=description, seed=int, **defaults, **options)`` once, where
    ``description`` is a dict naming the encoder to pretrain (``name``, ``path`` for a
    folder, ``factory``, ``defaults``, ``weights``, ``distribution``), and gets back a
    :class:`zoo.plugin.Objective`: ``encode``, ``collate``, ``loss``, ``evaluate``,
    ``parameters`` and ``save`` (see docs/plugins.md).

    Returns nothing; not firstresult.
    """


@hookspec
def register_models(register: Callable[..., None]) -> None:
    """Register named model compositions, in the same shape as a ``registry.toml`` entry.

    Call ``register(name, spec)`` where ``spec`` is a dict with ``task``, ``encoders``
    (modality -> encoder name or ``{"name": ..., **kwargs}``), ``fusion`` and ``head``
    (name or ``{"name": ..., **kwargs}``) and an optional ``description``.

    Returns nothing; not firstresult.
    """


@hookspec
def register_weights(register: Callable[..., None]) -> None:
    """Register pretrained weights as data.

    Call ``register(tag, *, sources, sha256=None, file=None, key_map=None, license=None,
    description="", base_model=None)``. ``base_model`` is the Hub id of the model the
    weights are (listed under ``base_model`` on model cards). ``tag`` is ``"encoder-name.tag"``. ``sources`` are tried in order:
    ``"hf-hub:org/repo@revision"``, ``"pip:DIST:module/path/in/package"``,
    ``"file:/path"``. ``sha256`` is checked on the resolved file (``file`` names it inside
    a folder source). ``key_map`` names how foreign checkpoint keys map to ours
    (``"by-order"``: same order and shapes, other names; ``"tail-by-order"``: the module
    loading them is the checkpoint's last tensors, e.g. a classifier head).

    Returns nothing; not firstresult.
    """


@hookspec
def register_commands(cli: Any) -> None:
    """Add sub-commands to the ``zoo`` command line.

    ``cli`` is the ``click.Group`` behind ``zoo``; decorate new commands with
    ``@cli.command()``. Keep heavy imports inside the command functions.

    Returns nothing; not firstresult.
    """


#: name -> hook function, for documentation checks and for the plugin manager.
HOOKS = {
    f.__name__: f
    for f in (
        register_encoders,
        register_fusions,
        register_heads,
        register_tasks,
        register_loggers,
        register_objectives,
        register_models,
        register_weights,
        register_commands,
    )
}
