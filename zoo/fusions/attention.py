"""Cross-modal attention: a small transformer over every encoder's tokens.

Each modality's tokens (its sequence when the encoder gives one, else its pooled vector as a
single token) are projected to ``dim`` and tagged with a learned modality embedding; a [CLS]
token attends over all of them and becomes the fused vector. Missing modalities are masked
out of attention, so an example with only text attends over text alone.
"""
from __future__ import annotations

from typing import Any, Mapping

import torch
from torch import nn

from zoo.plugin import Encoded, Fusion


class CrossAttentionFusion(Fusion):
    concurrent_forward = True  # forward keeps no state: batches may run side by side

    def __init__(self, inputs: Mapping[str, Mapping[str, Any]], dim: int = 256,
                 num_layers: int = 2, num_heads: int = 4, dropout: float = 0.1,
                 max_tokens: int = 256) -> None:
        super().__init__(inputs)
        self.dim, self.num_layers, self.num_heads = dim, num_layers, num_heads
        self.dropout, self.max_tokens = dropout, max_tokens
        self.use_sequence = {m: "sequence" in inputs[m].get("outputs", ()) for m in self.modalities}
        self.proj = nn.ModuleDict({m: nn.Linear(d, dim) for m, d in self.in_dims.items()})
        self.modality_embed = nn.ParameterDict(
            {m: nn.Parameter(torch.randn(dim) * 0.02) for m in self.modalities})
        self.cls = nn.Parameter(torch.randn(dim) * 0.02)
        layer = nn.TransformerEncoderLayer(dim, num_heads, dim * 2, dropout, batch_first=True,
                                           norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, num_layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(dim)
        self.out_dim = dim

    def _tokens(self, m: str, encoded: Encoded, batch_size: int
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, T_m, dim) tokens and (B, T_m) validity for one modality."""
        device = self.cls.device
        if m not in encoded:
            return (torch.zeros(batch_size, 1, self.dim, device=device),
                    torch.zeros(batch_size, 1, dtype=torch.bool, device=device))
        out, index = encoded[m]
        if self.use_sequence[m] and out.sequence is not None:
            seq, mask = out.sequence[:, : self.max_tokens], out.mask[:, : self.max_tokens]
        else:
            seq, mask = out.pooled.unsqueeze(1), torch.ones(len(index), 1, dtype=torch.bool,
                                                            device=device)
        tok = self.proj[m](seq) + self.modality_embed[m]  # (b, T_m, dim)
        if index.numel() == batch_size:
            return tok, mask
        full = tok.new_zeros(batch_size, tok.shape[1], self.dim)  # absent rows: masked out
        full_mask = mask.new_zeros(batch_size, mask.shape[1])
        return full.index_copy(0, index, tok), full_mask.index_copy(0, index, mask)

    def forward(self, encoded: Encoded, batch_size: int) -> torch.Tensor:
        toks, masks = [self.cls.expand(batch_size, 1, -1)], [
            torch.ones(batch_size, 1, dtype=torch.bool, device=self.cls.device)]
        for m in self.modalities:
            t, k = self._tokens(m, encoded, batch_size)
            toks.append(t)
            masks.append(k)
        x = torch.cat(toks, dim=1)  # (B, 1 + ΣT_m, dim)
        valid = torch.cat(masks, dim=1)  # (B, 1 + ΣT_m)
        x = self.encoder(x, src_key_padding_mask=~valid)
        return self.norm(x[:, 0])  # (B, dim): the [CLS] token
