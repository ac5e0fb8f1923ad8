"""What every fusion shares: the inputs it was built for and, for fusions that use it, the
null-embedding policy for a missing modality.

A fusion is an ``nn.Module`` built as ``factory(inputs={modality: {"dim", "outputs", ...}},
**kwargs)`` with an ``out_dim`` attribute; ``forward(encoded, batch_size)`` gives (B,
out_dim). Subclassing :class:`Fusion` is optional and gives the helpers below.

Null embeddings (concat-mlp, gated): an absent modality's pooled vector is replaced by a
learned vector of that modality, so the model still predicts and training can teach it what
"absent" means. Only fusions that call :meth:`Fusion.add_null_embeddings` own these
parameters; without them :meth:`Fusion.pooled` puts zeros in an absent modality's place.
"""
from __future__ import annotations

from typing import Any, Mapping

import torch
from torch import nn

from zoo.base.encoder import EncoderOutput

__all__ = ["Fusion", "Encoded"]

#: modality -> (encoder output over the examples that have it, their indices in the batch)
Encoded = Mapping[str, tuple[EncoderOutput, torch.Tensor]]


class Fusion(nn.Module):
    """Optional base class of fusions: ``modalities``, ``in_dims``, null embeddings and
    ``pooled()``. Set ``out_dim`` and implement ``forward(encoded, batch_size)``."""

    out_dim: int
    #: True when ``forward`` may run in two threads at once (see ``Encoder``'s; contract 2,
    #: optional)
    concurrent_forward: bool = False

    def __init__(self, inputs: Mapping[str, Mapping[str, Any]]) -> None:
        super().__init__()
        self.modalities = sorted(inputs)  # fixed order: weights do not depend on dict order
        self.in_dims = {m: int(inputs[m]["dim"]) for m in self.modalities}

    def add_null_embeddings(self) -> None:
        """Give each modality a learned stand-in for examples that lack it."""
        self.null = nn.ParameterDict(
            {m: nn.Parameter(torch.zeros(self.in_dims[m])) for m in self.modalities})

    def pooled(self, encoded: Encoded, batch_size: int) -> dict[str, torch.Tensor]:
        """Every modality's (B, D_m) pooled vectors; where an example lacks a modality, its
        null embedding (after :meth:`add_null_embeddings`), else zeros."""
        out = {}
        nulls = getattr(self, "null", None)
        for m in self.modalities:
            null = self._absent(nulls, m, encoded).unsqueeze(0).expand(batch_size, -1)
            if m not in encoded:
                out[m] = null
                continue
            enc, index = encoded[m]
            if index.numel() == batch_size:
                out[m] = enc.pooled
            else:
                out[m] = null.index_copy(0, index, enc.pooled.to(null.dtype))
        return out

    def _absent(self, nulls: Any, m: str, encoded: Encoded) -> torch.Tensor:
        """(D_m,): what stands in for modality ``m`` where an example lacks it."""
        if nulls is not None:
            return nulls[m]
        ref = next((enc.pooled for enc, _ in encoded.values() if enc.pooled is not None), None)
        device = ref.device if ref is not None else next(
            (p.device for p in self.parameters()), torch.device("cpu"))
        dtype = ref.dtype if ref is not None else torch.float32
        return torch.zeros(self.in_dims[m], device=device, dtype=dtype)

    def config(self) -> dict[str, Any]:
        """The kwargs it was built with (captured by the core)."""
        return dict(getattr(self, "_zoo_kwargs", {}))
