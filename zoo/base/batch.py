"""Typed batches: what ``ZooModel.preprocess`` gives and encoders, fusions and heads receive.

A batch holds ``size`` examples and the raw ``inputs`` they came from (None for batches
built from cached features, which carry no raw values); each modality present in at least
one of them has a :class:`ModalityBatch`: the positions of the examples that have it
(``index``), the tensors its encoder's ``preprocess`` returned (``tensors``, passed to the
encoder's ``forward`` as keyword arguments and read by nothing else) and, for sequences of
words, the word of every token (``word_ids``).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterator

__all__ = ["Batch", "ModalityBatch"]


@dataclass
class ModalityBatch:
    index: Any  # LongTensor (b,): positions in the batch of the examples with this modality
    tensors: dict[str, Any] = field(default_factory=dict)  # the encoder's preprocess output
    word_ids: Any = None  # LongTensor (b, T): each token's word, -1 for none (text encoders)


@dataclass
class Batch:
    size: int  # number of examples
    modalities: dict[str, ModalityBatch] = field(default_factory=dict)
    inputs: Any = None  # the raw input dicts, one per example (None from cached features)

    def __contains__(self, modality: object) -> bool:
        return modality in self.modalities

    def __getitem__(self, modality: str) -> ModalityBatch:
        return self.modalities[modality]

    def __iter__(self) -> Iterator[str]:
        return iter(self.modalities)
