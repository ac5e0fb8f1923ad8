"""Typed batches: what ``ZooModel.preprocess`` gives and encoders, fusions and heads receive.

A batch holds ``size`` examples; each modality present in at least one of them has a
:class:`ModalityBatch`: the positions of the examples that have it (``index``) and the
tensors its encoder's ``preprocess`` returned (``tensors``, passed to the encoder's
``forward`` as keyword arguments and read by nothing else).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterator

__all__ = ["Batch", "ModalityBatch"]


@dataclass
class ModalityBatch:
    index: Any  # LongTensor (b,): positions in the batch of the examples with this modality
    tensors: dict[str, Any] = field(default_factory=dict)  # the encoder's preprocess output


@dataclass
class Batch:
    size: int  # number of examples
    modalities: dict[str, ModalityBatch] = field(default_factory=dict)

    def __contains__(self, modality: object) -> bool:
        return modality in self.modalities

    def __getitem__(self, modality: str) -> ModalityBatch:
        return self.modalities[modality]

    def __iter__(self) -> Iterator[str]:
        return iter(self.modalities)
