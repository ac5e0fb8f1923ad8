"""The pretraining objective contract: what ``zoo pretrain --objective NAME`` drives.

An objective pretrains one encoder on unlabeled data of one modality (zoo-text-hf's
``mlm``: masked-language modelling, as BERT). The core's driver (:mod:`zoo.pretraining`)
reads and splits the data, seeds, batches, optimises (AdamW, warm-up then linear decay),
evaluates before and after training on the same fixed held-out batches, and saves the
folder atomically with a model card and a record; the objective knows its model, how to
turn raw values into a batch (masking included), its loss, its figures and its files.

An objective is a ``torch.nn.Module`` (its ``parameters()`` are what the driver
optimises; ``train()`` / ``eval()`` switch dropout) registered through the
``register_objectives`` hook.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import torch

__all__ = ["Objective"]


class Objective(torch.nn.Module):
    """Base class of self-supervised pretraining objectives (subclass it; implement
    ``encode``, ``collate``, ``loss`` and ``save``).

    - ``encode(values)``: raw values of the modality (texts) -> one item per value
      (tokenised once, before any epoch).
    - ``collate(items, seed=None)``: items -> a batch (a dict of tensors). With a ``seed``
      the random parts (masks) are drawn from that seed alone: the trainer passes one per
      step (so a resumed run draws what the uninterrupted one drew) and builds the
      held-out batches once this way (so "before" and "after" score the same positions).
    - ``loss(batch)``: a scalar tensor to minimise.
    - ``evaluate(batches)``: figures on held-out batches, ``metric`` among them (default:
      the mean loss). Called under ``torch.no_grad()`` in eval mode.
    - ``plan(steps)``: told once, before training, how many optimisation steps will run
      (for a schedule of the objective's own, such as a head warm-up); optional.
    - ``param_groups()``: the trainable parameters in groups, each ``{"name", "params"}``
      plus, optionally, its own ``"lr"``, ``"warmup"`` (share of its steps) and ``"start"``
      (the step its schedule begins; 0 before it), None meaning the run's: e.g. a fresh
      head learning fast beside a pretrained encoder learning slowly. Default: one group,
      every trainable parameter, at the run's settings; optional.
    - ``save(out, record)``: write the pretrained encoder into the folder ``out`` (it is
      moved into place only when everything is written); ``record`` is what the driver
      will store beside it (``zoo_pretrain.json``).
    - ``settings()``, ``stats(items)``, ``base()``: JSON facts for the record and card:
      the objective's options, corpus figures (``{"examples", "tokens"}``), and what the
      encoder started from (``{"encoder", "weights", "sha256", "base_model"}``).
    - ``notes``: lines the driver prints before training (e.g. a head that starts fresh).
    - ``default_lr``: the run's learning rate when the user gives no ``--lr`` (None: the
      driver's 5e-5); optional, set by the factory when the right rate depends on what was
      built.
    """

    #: the figure ``evaluate`` reports that says how well the objective is met
    metric: str = "loss"
    #: lower is better for losses and perplexities
    higher_is_better: bool = False
    #: the registry encoder that loads the folder ``save`` writes (``zoo train --encoder
    #: MODALITY=FOLDER`` builds it with ``source=FOLDER`` and ``encoder_kwargs``)
    folder_encoder: str | None = None
    #: keyword arguments that encoder needs to read the folder as it was pretrained
    encoder_kwargs: dict[str, Any] = {}
    #: model-card tags and the Hub pipeline tag of the saved folder
    tags: tuple[str, ...] = ()
    pipeline_tag: str | None = None
    #: the run's learning rate when none is given (None: the driver's, 5e-5)
    default_lr: float | None = None

    def __init__(self) -> None:
        super().__init__()
        self.notes: list[str] = []

    def encode(self, values: Sequence[Any]) -> list[Any]:
        raise NotImplementedError(f"{type(self).__name__} must implement encode(values)")

    def collate(self, items: Sequence[Any], seed: int | None = None) -> dict[str, Any]:
        raise NotImplementedError(f"{type(self).__name__} must implement collate(items)")

    def loss(self, batch: dict[str, Any]) -> torch.Tensor:
        raise NotImplementedError(f"{type(self).__name__} must implement loss(batch)")

    def save(self, out: Path, record: dict[str, Any]) -> None:
        raise NotImplementedError(f"{type(self).__name__} must implement save(out, record)")

    def param_groups(self) -> list[dict[str, Any]]:
        return [{"name": "all", "params": [p for p in self.parameters() if p.requires_grad]}]

    def forward(self, batch: dict[str, Any]) -> torch.Tensor:
        """The loss of a batch: how the trainer calls the objective (through DDP's
        wrapper when several processes train), so gradients are synchronised."""
        return self.loss(batch)

    def evaluate(self, batches: Sequence[dict[str, Any]]) -> dict[str, float]:
        losses = [float(self.loss(b)) for b in batches]
        return {"loss": sum(losses) / max(1, len(losses))}

    def plan(self, steps: int) -> None:
        return None

    def settings(self) -> dict[str, Any]:
        return {}

    def stats(self, items: Sequence[Any]) -> dict[str, Any]:
        return {"examples": len(items)}

    def base(self) -> dict[str, Any]:
        return {}
