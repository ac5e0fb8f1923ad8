"""Contrastive alignment (CLIP, Radford et al. 2021): two encoders' pooled outputs are
projected into one space and pulled together for pairs, apart for non-pairs (symmetric
InfoNCE with a learned temperature). Under DDP the embeddings of every process join the
loss, so the effective batch is the global one.

The result embeds both modalities comparably: retrieval, and zero-shot classification by
comparing an input with text prompts (``model.zero_shot(inputs, labels=[...])``).
"""
from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

import torch
from torch import nn
from torch.nn import functional as F

from zoo.plugin import DataError, ZooError
from zoo.plugin import Head

__all__ = ["ContrastiveHead"]


class ContrastiveHead(Head):
    def __init__(self, inputs: Mapping[str, Mapping[str, Any]], dim: int = 256,
                 hidden: int = 512, temperature: float = 0.07) -> None:
        super().__init__()
        if len(inputs) != 2:
            raise ZooError(f"contrastive alignment takes exactly two encoders, got "
                           f"{', '.join(inputs) or 'none'}")
        self.modalities = sorted(inputs)
        self.dim, self.hidden, self.temperature = dim, hidden, temperature
        self.proj = nn.ModuleDict({
            m: nn.Sequential(nn.LayerNorm(int(inputs[m]["dim"])),
                             nn.Linear(int(inputs[m]["dim"]), hidden), nn.GELU(),
                             nn.Linear(hidden, dim))
            for m in self.modalities})
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1 / temperature)))

    @property
    def labels(self) -> None:
        return None

    def project(self, modality: str, pooled: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.proj[modality](pooled), dim=-1)  # (B, dim), unit length

    def forward(self, encoded: Mapping[str, Any], batch: Mapping[str, Any]) -> dict[str, Any]:
        emb, index = {}, {}
        for m in self.modalities:
            if m in encoded:
                out, idx = encoded[m]
                emb[m], index[m] = self.project(m, out.pooled), idx
        # the temperature is used in forward, not in loss: DDP only tracks what forward uses
        scale = self.logit_scale.clamp(max=math.log(100)).exp()
        return {"emb": emb, "index": index, "size": batch.size, "scale": scale}

    def encode_targets(self, targets: Sequence[Any], batch: Any = None) -> None:
        return None  # self-supervised: the pairing is the target

    def loss(self, outputs: Mapping[str, Any], targets: Any = None) -> torch.Tensor:
        a, b = self.modalities
        n = outputs["size"]
        if a not in outputs["emb"] or b not in outputs["emb"] or \
                outputs["index"][a].numel() != n or outputs["index"][b].numel() != n:
            raise DataError(f"contrastive pretraining needs both {a} and {b} in every pair")
        ea, eb = _gather(outputs["emb"][a]), _gather(outputs["emb"][b])  # (N, dim) global
        logits = outputs["scale"] * ea @ eb.T  # (N, N): pairs on the diagonal
        labels = torch.arange(len(ea), device=ea.device)
        return (F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels)) / 2

    def decode(self, outputs: Mapping[str, Any], batch: Any = None) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = [{"embedding": {}} for _ in range(outputs["size"])]
        for m, e in outputs["emb"].items():
            for j, i in enumerate(outputs["index"][m].tolist()):
                rows[i]["embedding"][m] = e[j].tolist()
        return rows

    def config(self) -> dict[str, Any]:
        return {"dim": self.dim, "hidden": self.hidden, "temperature": self.temperature}


def _gather(x: torch.Tensor) -> torch.Tensor:
    """Concatenate ``x`` from every DDP process, keeping gradients for the local part."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return x
    from torch.distributed.nn.functional import all_gather

    return torch.cat(all_gather(x), dim=0)
