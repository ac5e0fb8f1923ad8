"""The head contract: what turns fused (or encoded) features into a loss and task outputs.

A head is built with one signature::

    factory(in_dim=int | None, inputs={modality: encoder description}, **kwargs)

``in_dim`` is the fusion's width (None when the model has no fusion and the head reads
encoder outputs itself: detection on feature maps, CTC or tagging on sequences); ``inputs``
describes every encoder (``dim``, ``outputs``, ...). A head after a fusion always gets
``in_dim``, one reading encoder outputs always gets ``inputs``; the other is passed when the
factory names it.

Per batch::

    outputs = head(fused)                  # after a fusion: fused is (B, in_dim)
    outputs = head(encoded, batch)         # without one: Encoded + Batch
    targets = head.encode_targets(target_dicts, batch)   # one dict per example
    loss    = head.loss(outputs, targets)  # a scalar tensor
    results = head.decode(outputs, batch, **options)     # one dict per example

``decode`` returns what ``predict`` gives the user; its keys are the task's output schema
(``Task.outputs``). ``batch.inputs`` holds the raw inputs and ``batch[m].word_ids`` the
word of every token, so per-word and span tasks answer in words and characters.
``decode_options`` names the keyword options ``predict`` may pass.

Abilities the core uses, each a documented Protocol a head may implement:
:class:`Labelled` (``labels``), :class:`Prompted` (label prompts read through an encoder),
:class:`OpenVocabulary` (new labels at predict time).
"""
from __future__ import annotations

from typing import Any, Mapping, Protocol, Sequence, runtime_checkable

from torch import nn

from zoo.errors import ZooError

__all__ = ["Head", "Labelled", "Prompted", "OpenVocabulary"]


class Head(nn.Module):
    """Base class of task heads: implement ``forward``, ``encode_targets``, ``loss`` and
    ``decode`` (see the module docstring for when each is called)."""

    #: names of the keyword options ``decode`` takes (``predict(..., **options)``)
    decode_options: tuple[str, ...] = ()
    #: the label names a classifier-like head predicts; None for other heads
    labels: Sequence[str] | None = None
    #: True when ``forward`` may run in two threads at once (see ``Encoder``'s; contract 2,
    #: optional)
    concurrent_forward: bool = False

    def encode_targets(self, targets: Sequence[Mapping[str, Any]], batch: Any = None) -> Any:
        """One target dict per example (keys from the task's ``targets``) -> what ``loss``
        takes. Raise :class:`zoo.plugin.DataError` naming the example on a bad target."""
        raise NotImplementedError

    def loss(self, outputs: Any, targets: Any) -> Any:
        """A scalar tensor to minimise."""
        raise NotImplementedError

    def decode(self, outputs: Any, batch: Any = None, **options: Any) -> list[dict[str, Any]]:
        """One result dict per example (the task's output schema)."""
        raise NotImplementedError

    def check_decode_kwargs(self, kwargs: Mapping[str, Any]) -> None:
        bad = set(kwargs) - set(self.decode_options)
        if bad:
            allowed = ", ".join(self.decode_options) or "none"
            raise ZooError(f"unknown predict option(s) {sorted(bad)} for head "
                           f"{type(self).__name__} (allowed: {allowed})")

    def probe_layer(self) -> nn.Linear | None:
        """The ``nn.Linear`` whose outputs are this head's logits, when the head is a
        single-label softmax classifier over its input features: the closed-form probe
        start fits a logistic regression on what that layer sees and writes it there.
        None (the default): the probe starts at random."""
        return None

    def config(self) -> dict[str, Any]:
        """The kwargs it was built with (captured by the core)."""
        return dict(getattr(self, "_zoo_kwargs", {}))


@runtime_checkable
class Labelled(Protocol):
    """A head that predicts from a fixed list of labels: ``model.labels``, config.json's
    ``labels``, the card's label list, ``/feedback`` corrections checked against them."""

    labels: Sequence[str]


@runtime_checkable
class Prompted(Protocol):
    """A head whose labels are text prompts embedded by one of the model's encoders
    (open-vocabulary detection): the model calls ``head(encoded, batch,
    prompt_encoder=model.encoders[head.prompt_modality])``."""

    prompt_modality: str | None


@runtime_checkable
class OpenVocabulary(Protocol):
    """A head that takes new labels at predict time: ``predict(..., labels=[...])`` sets
    ``active_labels`` for that call (and resets it to None after)."""

    active_labels: list[str] | None
