"""Concat + MLP: the strong, simple baseline of multimodal fusion."""
from __future__ import annotations

from typing import Any, Mapping

import torch
from torch import nn

from zoo.plugin import Encoded, Fusion


class ConcatMLP(Fusion):
    concurrent_forward = True  # forward keeps no state: batches may run side by side

    def __init__(self, inputs: Mapping[str, Mapping[str, Any]], dim: int = 256,
                 dropout: float = 0.1) -> None:
        super().__init__(inputs)
        self.add_null_embeddings()
        self.dim, self.dropout = dim, dropout
        # LayerNorm per modality: encoders differ in scale (a BERT mean-pool vs a CNN pool)
        self.norms = nn.ModuleDict({m: nn.LayerNorm(d) for m, d in self.in_dims.items()})
        self.mlp = nn.Sequential(nn.Linear(sum(self.in_dims.values()), dim), nn.GELU(),
                                 nn.Dropout(dropout))
        self.out_dim = dim

    def forward(self, encoded: Encoded, batch_size: int) -> torch.Tensor:
        pooled = self.pooled(encoded, batch_size)
        x = torch.cat([self.norms[m](pooled[m]) for m in self.modalities], dim=-1)  # (B, ΣD)
        return self.mlp(x)  # (B, dim)
