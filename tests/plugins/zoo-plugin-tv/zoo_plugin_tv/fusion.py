"""film: feature-wise linear modulation, a plain torch.nn.Module (no zoo base class)."""
from __future__ import annotations

import torch
from torch import nn


class FiLMFusion(nn.Module):
    """The `condition` modality's pooled vector gives a per-channel scale and shift for the
    `target` modality's pooled vector, then a linear projection to `dim`.

    Missing modalities: an example without the condition is left unmodulated (scale 1,
    shift 0); an example without the target gets a learned null target vector, so it is
    still modulated by its condition.
    """

    def __init__(self, inputs, dim=32, condition="text", target="image"):
        super().__init__()
        if target not in inputs:
            raise ValueError(f"film needs a {target!r} encoder, got {sorted(inputs)}")
        self.condition = condition if condition in inputs else None
        self.target = target
        d = int(inputs[target]["dim"])
        self.target_dim = d
        if self.condition is not None:
            self.film = nn.Linear(int(inputs[condition]["dim"]), 2 * d)
            nn.init.zeros_(self.film.weight)
            nn.init.zeros_(self.film.bias)
        self.null_target = nn.Parameter(torch.zeros(d))
        self.norm = nn.LayerNorm(d)
        self.proj = nn.Linear(d, int(dim))
        self.out_dim = int(dim)

    def forward(self, encoded, batch_size):
        ref = self.null_target
        x = ref.unsqueeze(0).expand(batch_size, -1)
        if self.target in encoded:
            out, index = encoded[self.target]
            x = x.index_copy(0, index.to(ref.device), out.pooled.to(ref.dtype))
        x = self.norm(x)
        if self.condition is not None and self.condition in encoded:
            out, index = encoded[self.condition]
            gb = torch.zeros(batch_size, 2 * self.target_dim, device=ref.device, dtype=ref.dtype)
            gb = gb.index_copy(0, index.to(ref.device), self.film(out.pooled.to(ref.dtype)))
            gamma, beta = gb.chunk(2, dim=-1)
            x = x * (1 + gamma) + beta
        return self.proj(torch.relu(x))
