"""What every fusion shares: the inputs it was built for and the missing-modality policy.

Policy for a modality that an example lacks (a text+image model given only text): its
pooled vector is replaced by a learned null embedding of that modality, so the model still
predicts and training can teach it what "absent" means.
"""
from __future__ import annotations

from typing import Any, Mapping

import torch
from torch import nn

from ..encoders import EncoderOutput

__all__ = ["Fusion", "Encoded"]

#: modality -> (encoder output over the examples that have it, their indices in the batch)
Encoded = Mapping[str, tuple[EncoderOutput, torch.Tensor]]


class Fusion(nn.Module):
    out_dim: int

    def __init__(self, inputs: Mapping[str, Mapping[str, Any]]) -> None:
        super().__init__()
        self.modalities = sorted(inputs)  # fixed order: weights do not depend on dict order
        self.in_dims = {m: int(inputs[m]["dim"]) for m in self.modalities}
        self.null = nn.ParameterDict(
            {m: nn.Parameter(torch.zeros(self.in_dims[m])) for m in self.modalities})

    def pooled(self, encoded: Encoded, batch_size: int) -> dict[str, torch.Tensor]:
        """Every modality's (B, D_m) pooled vectors, null embeddings where missing."""
        out = {}
        for m in self.modalities:
            null = self.null[m].unsqueeze(0).expand(batch_size, -1)  # (B, D_m)
            if m not in encoded:
                out[m] = null
                continue
            enc, index = encoded[m]
            if index.numel() == batch_size:
                out[m] = enc.pooled
            else:
                out[m] = null.index_copy(0, index, enc.pooled.to(null.dtype))
        return out

    def config(self) -> dict[str, Any]:
        raise NotImplementedError
