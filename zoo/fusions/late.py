"""Late (score) fusion: one small network per modality, combined by weights.

Every modality gets its own MLP to ``dim``; the fused vector is their weighted mean, with
``weights="mean"`` (equal) or ``"learned"`` (softmax over learned logits). Because task heads
on a fused vector are linear, this is exactly averaging per-modality logits (score fusion).
Missing modalities drop out and the weights renormalise over the ones present.
"""
from __future__ import annotations

from typing import Any, Mapping

import torch
from torch import nn

from zoo.plugin import ZooError
from zoo.plugin import Encoded, Fusion


class LateFusion(Fusion):
    concurrent_forward = True  # forward keeps no state: batches may run side by side

    def __init__(self, inputs: Mapping[str, Mapping[str, Any]], dim: int = 256,
                 weights: str = "learned", dropout: float = 0.1) -> None:
        super().__init__(inputs)
        if weights not in ("mean", "learned"):
            raise ZooError(f"late fusion weights must be 'mean' or 'learned', got {weights!r}")
        self.dim, self.weights, self.dropout = dim, weights, dropout
        self.branches = nn.ModuleDict({
            m: nn.Sequential(nn.LayerNorm(d), nn.Linear(d, dim), nn.GELU(), nn.Dropout(dropout))
            for m, d in self.in_dims.items()})
        self.logit_weights = nn.Parameter(torch.zeros(len(self.modalities)),
                                          requires_grad=weights == "learned")
        self.out_dim = dim

    def forward(self, encoded: Encoded, batch_size: int) -> torch.Tensor:
        device = self.logit_weights.device
        hs, present = [], []
        for m in self.modalities:
            h = torch.zeros(batch_size, self.dim, device=device)
            p = torch.zeros(batch_size, dtype=torch.bool, device=device)
            if m in encoded:
                out, index = encoded[m]
                h = h.index_copy(0, index, self.branches[m](out.pooled))
                p = p.index_fill(0, index, True)
            hs.append(h)
            present.append(p)
        h = torch.stack(hs, dim=1)  # (B, M, dim)
        logits = self.logit_weights.expand(batch_size, -1)  # (B, M)
        logits = logits.masked_fill(~torch.stack(present, dim=1), float("-inf"))
        w = torch.softmax(logits, dim=-1)  # (B, M), zero for absent modalities
        return (w.unsqueeze(-1) * h).sum(dim=1)  # (B, dim)
