"""Gated multimodal unit (Arevalo et al., 2017), for any number of modalities.

Each modality is projected to ``dim`` with a tanh; a gate network that sees all modalities
gives softmax weights over them per example, so the model learns which input to trust. As in
the paper, where a maxout MLP classifies the gated vector, a hidden layer follows the gate:
with a linear head straight on the gated sum the modalities could only add their evidence,
never combine it (an instruction that changes what the image means).
"""
from __future__ import annotations

from typing import Any, Mapping

import torch
from torch import nn

from zoo.plugin import Encoded, Fusion


class GatedFusion(Fusion):
    concurrent_forward = True  # forward keeps no state: batches may run side by side

    def __init__(self, inputs: Mapping[str, Mapping[str, Any]], dim: int = 256,
                 dropout: float = 0.1) -> None:
        super().__init__(inputs)
        self.add_null_embeddings()
        self.dim, self.dropout = dim, dropout
        self.norms = nn.ModuleDict({m: nn.LayerNorm(d) for m, d in self.in_dims.items()})
        self.proj = nn.ModuleDict({m: nn.Linear(d, dim) for m, d in self.in_dims.items()})
        self.gate = nn.Linear(sum(self.in_dims.values()), len(self.modalities))
        self.mlp = nn.Sequential(nn.Dropout(dropout), nn.Linear(dim, dim), nn.GELU(),
                                 nn.Dropout(dropout))
        self.out_dim = dim

    def forward(self, encoded: Encoded, batch_size: int) -> torch.Tensor:
        pooled = self.pooled(encoded, batch_size)
        xs = [self.norms[m](pooled[m]) for m in self.modalities]
        h = torch.stack([torch.tanh(self.proj[m](x)) for m, x in zip(self.modalities, xs)],
                        dim=1)  # (B, M, dim)
        z = torch.softmax(self.gate(torch.cat(xs, dim=-1)), dim=-1)  # (B, M)
        return self.mlp((z.unsqueeze(-1) * h).sum(dim=1))  # (B, dim)
