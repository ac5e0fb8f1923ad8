"""The hooks a zoo plugin may implement, and the typed ``register`` callbacks they receive.

Every ``register_*`` hook receives a ``register`` callback (the ``llm`` style) instead of
returning a list: the core collects what is registered and remembers which plugin did it.
The callback types below (``RegisterEncoder``, ...) are the one source of truth for what
each takes: the core's callbacks have exactly these signatures (a test checks it), IDEs
show them, and docs/plugins.md documents them. A plugin module implements the hooks it
needs with ``@zoo.plugin.hookimpl``, declares the contract it was written for, and is found
through the ``zoo`` entry-point group::

    [project.entry-points.zoo]
    my_plugin = "my_plugin_module"

    # my_plugin_module/__init__.py
    zoo_contract = 2

Registration is metadata only. Factories are import strings (``"pkg.module:attr"``) or
callables that import their heavy dependencies when called, so that ``zoo list`` never
imports torch or a modality library.

Contract versions: ``CONTRACT`` is the one this zoo implements; a plugin that declares no
``zoo_contract`` targets contract 1 (zoo 0.1), which keeps working until zoo 0.3 with a
DeprecationWarning naming each replacement (docs/plugins.md, "Contract versions").
"""
from __future__ import annotations

from typing import Any, Callable, Iterable, Mapping, Protocol, Union

import pluggy

__all__ = ["hookspec", "hookimpl", "HOOKS", "CALLBACKS", "CONTRACT", "SUPPORTED_CONTRACTS",
           "RegisterEncoder", "RegisterFusion", "RegisterHead", "RegisterTask",
           "RegisterModality", "RegisterModel", "RegisterWeights", "RegisterLogger",
           "RegisterObjective", "Factory"]

hookspec = pluggy.HookspecMarker("zoo")
hookimpl = pluggy.HookimplMarker("zoo")

#: the plugin contract this zoo implements
CONTRACT = 2
#: contracts whose plugins load (1: until zoo 0.3, with DeprecationWarnings)
SUPPORTED_CONTRACTS = (1, 2)

#: ``"package.module:callable"`` (imported only when building) or a callable
Factory = Union[str, Callable[..., Any]]


class RegisterModality(Protocol):
    def __call__(self, name: str, factory: Factory, *, description: str = "") -> None:
        """Register a modality: the input key (``"tabular"``) and the factory of its
        :class:`zoo.plugin.Modality` (called with no arguments)."""


class RegisterEncoder(Protocol):
    def __call__(self, name: str, factory: Factory, *, modality: str,
                 outputs: Iterable[str], dim: int | None = None, description: str = "",
                 defaults: Mapping[str, Any] | None = None, weights: str | None = None,
                 tasks: Iterable[str] = (), languages: Iterable[str] = ()) -> None:
        """Register an encoder.

        - ``name``: registry name, lower-case with dashes (``"minilm-l6"``).
        - ``factory``: called as ``factory(pretrained=..., weights=..., assets_dir=...,
          **kwargs)``; returns a :class:`zoo.plugin.Encoder`. The JSON ``kwargs`` are
          captured as its config.
        - ``modality``: a registered modality (``zoo list --kind modality``).
        - ``outputs``: contracts it can give: ``"pooled"`` (B, D), ``"sequence"`` (B, T,
          D) + mask (+ ``word_ids`` for text), ``"features"`` (multi-scale maps).
        - ``dim``: pooled / sequence width when known without building (checked).
        - ``defaults``: keyword arguments for the factory (JSON values only).
        - ``weights``: the default pretrained tag (``"minilm-l6.sbert"``).
        - ``tasks``: tasks it is meant for (informative); ``languages``: for text, the
          languages its weights know (empty: any)."""


class RegisterFusion(Protocol):
    def __call__(self, name: str, factory: Factory, *, accepts: Iterable[str],
                 description: str = "", defaults: Mapping[str, Any] | None = None) -> None:
        """Register a fusion: ``factory(inputs={modality: {"dim", "outputs"}}, **kwargs)``
        returns a module with an int ``out_dim`` whose ``forward(encoded, batch_size)``
        gives (B, out_dim). ``accepts``: the encoder output contracts it consumes."""


class RegisterHead(Protocol):
    def __call__(self, name: str, factory: Factory, *, tasks: Iterable[str],
                 accepts: Iterable[str] = ("fused",), description: str = "",
                 defaults: Mapping[str, Any] | None = None) -> None:
        """Register a head for ``tasks``: ``factory(in_dim=int | None, inputs={modality:
        description}, **kwargs)`` returns a :class:`zoo.plugin.Head`. ``accepts``:
        ``("fused",)`` after a fusion, or encoder contracts it reads itself."""


class RegisterTask(Protocol):
    def __call__(self, name: str, factory: Factory, *, targets: Iterable[str] = (),
                 description: str = "") -> None:
        """Register a task: ``targets`` are the example keys holding its targets; the
        factory (no arguments) returns a :class:`zoo.plugin.Task`."""


class RegisterModel(Protocol):
    def __call__(self, name: str, spec: Mapping[str, Any]) -> None:
        """Register a named composition, shaped as a ``registry.toml`` entry: ``task``,
        ``encoders`` (modality -> name or table), ``fusion``, ``head``, optional
        ``description`` and ``fallback``."""


class RegisterWeights(Protocol):
    def __call__(self, tag: str, *, sources: Iterable[str], sha256: str | None = None,
                 file: str | None = None, key_map: str | None = None,
                 license: str | None = None, description: str = "",
                 base_model: str | None = None) -> None:
        """Register pretrained weights ``"encoder-name.tag"``: ``sources`` tried in order
        (``"hf-hub:org/repo@revision"``, ``"pip:DIST:module/path"``, ``"file:/path"``),
        ``sha256`` of the resolved file (``file`` names it inside a folder source),
        ``key_map`` (``"by-order"``, ``"tail-by-order"``) for foreign checkpoints,
        ``license``, and ``base_model`` (the Hub id the weights are, for cards)."""


class RegisterLogger(Protocol):
    def __call__(self, name: str, factory: Factory, *, description: str = "") -> None:
        """Register a training logger: ``factory(out_dir, config)`` returns an object
        with ``log(record)`` (every metrics.jsonl line) and ``close()``."""


class RegisterObjective(Protocol):
    def __call__(self, name: str, factory: Factory, *, modality: str,
                 description: str = "", defaults: Mapping[str, Any] | None = None) -> None:
        """Register a self-supervised pretraining objective for one encoder of
        ``modality``: ``factory(encoder=description, seed=int, **defaults, **options)``
        returns a :class:`zoo.plugin.Objective`."""


@hookspec
def register_modalities(register: RegisterModality) -> None:
    """Register modalities (kinds of input: text, image, audio, tabular, ...). Call
    ``register`` (:class:`RegisterModality`) once per modality; collected before every
    other hook, so encoders and models may name it.

    Returns nothing; not firstresult: every plugin's implementation is called.
    """


@hookspec
def register_encoders(register: RegisterEncoder) -> None:
    """Register encoder components: call ``register`` (:class:`RegisterEncoder`) once per
    encoder.

    Returns nothing; not firstresult: every plugin's implementation is called.
    """


@hookspec
def register_fusions(register: RegisterFusion) -> None:
    """Register fusion modules that combine encoder outputs into one representation: call
    ``register`` (:class:`RegisterFusion`); the registry refuses a composition whose
    encoders give none of the contracts a fusion ``accepts``.

    Returns nothing; not firstresult.
    """


@hookspec
def register_heads(register: RegisterHead) -> None:
    """Register task heads (classification, detection, asr, ...): call ``register``
    (:class:`RegisterHead`).

    Returns nothing; not firstresult.
    """


@hookspec
def register_tasks(register: RegisterTask) -> None:
    """Register tasks (what a model is trained and evaluated for): call ``register``
    (:class:`RegisterTask`).

    Returns nothing; not firstresult.
    """


@hookspec
def register_loggers(register: RegisterLogger) -> None:
    """Register training loggers (where ``zoo train`` sends its metrics besides
    ``metrics.jsonl``; zoo's own: ``tensorboard``): call ``register``
    (:class:`RegisterLogger`). On the main process of a run with ``loggers=[name]``,
    ``factory(out_dir, config)`` is called once (``config``: the run's options plus
    ``resume_step``); ``log(record)`` gets step records ``{"step", "epoch", "loss",
    "lr"}`` and epoch records ``{"epoch", "step", "train_loss", "seconds", "eval"}``.

    Returns nothing; not firstresult.
    """


@hookspec
def register_objectives(register: RegisterObjective) -> None:
    """Register self-supervised pretraining objectives (``zoo pretrain --objective
    NAME``; zoo-text-hf's ``mlm`` is one): call ``register`` (:class:`RegisterObjective`).

    Returns nothing; not firstresult.
    """


@hookspec
def register_models(register: RegisterModel) -> None:
    """Register named model compositions, in the same shape as a ``registry.toml``
    entry: call ``register`` (:class:`RegisterModel`).

    Returns nothing; not firstresult.
    """


@hookspec
def register_weights(register: RegisterWeights) -> None:
    """Register pretrained weights as data: call ``register`` (:class:`RegisterWeights`).

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
    for f in (register_modalities, register_encoders, register_fusions, register_heads,
              register_tasks, register_loggers, register_objectives, register_models,
              register_weights, register_commands)
}

#: hook name -> the type of the ``register`` callback it receives
CALLBACKS = {"register_modalities": RegisterModality, "register_encoders": RegisterEncoder,
             "register_fusions": RegisterFusion, "register_heads": RegisterHead,
             "register_tasks": RegisterTask, "register_loggers": RegisterLogger,
             "register_objectives": RegisterObjective, "register_models": RegisterModel,
             "register_weights": RegisterWeights}
