"""The optimizer, its learning-rate schedule and the numeric precision of a run."""
from __future__ import annotations

import math
from typing import Any

import torch

from zoo.devices import autocast_for, resolve_precision
from zoo.training.config import TrainConfig

__all__ = ["make_optimizer", "lr_factor", "precision_of", "autocast", "autocast_for",
           "resolve_precision"]


def make_optimizer(model: Any, cfg: TrainConfig, *, finetune: bool = False
                   ) -> torch.optim.Optimizer:
    """New layers at ``lr``; fine-tuned pretrained encoders lower (``encoder_lr``). In
    LP-FT's fine-tuning stage the probed layers take the encoders' rate too (the lowest,
    with several). Without ``encoder_lr`` an encoder fine-tunes at ``lr`` times its
    ``finetune_lr_scale`` (``Encoder``'s default 0.1)."""
    def enc_lr(enc: Any) -> float:
        if cfg.encoder_lr is not None:
            return cfg.encoder_lr
        return cfg.lr * float(getattr(enc, "finetune_lr_scale", 0.1))

    pretrained = {m for m in model.encoders if model.config["encoders"][m].get("weights")}
    probed_lr = min((enc_lr(model.encoders[m]) for m in pretrained), default=enc_lr(None))
    groups = [{"params": [p for n, p in model.named_parameters()
                          if not n.startswith("encoders.") and p.requires_grad],
               "lr": probed_lr if finetune else cfg.lr, "name": "new layers"}]
    adapters = (model.config.get("adapter") or {}).get("base") or {}
    for m, enc in model.encoders.items():
        params = [p for p in enc.parameters() if p.requires_grad]
        lr = enc_lr(enc) if m in pretrained else cfg.lr
        if m in adapters:  # LoRA's new matrices learn at the new layers' rate (or encoder_lr)
            lr = cfg.encoder_lr if cfg.encoder_lr is not None else cfg.lr
        groups.append({"params": params, "lr": lr, "name": f"encoder {m}"})
    return torch.optim.AdamW([g for g in groups if g["params"]], weight_decay=cfg.weight_decay)


def lr_factor(total: int, warmup: float, kind: str = "cosine") -> Any:
    """Linear warm-up over ``warmup`` of the steps, then ``kind``: cosine or linear decay
    to zero, or constant."""
    warm = max(1, int(warmup * total))

    def factor(step: int) -> float:
        if step < warm:
            return (step + 1) / warm
        done = min(1.0, (step - warm) / max(1, total - warm))
        if kind == "constant":
            return 1.0
        if kind == "linear":
            return 1.0 - done
        return 0.5 * (1 + math.cos(math.pi * done))

    return factor


def precision_of(cfg: TrainConfig, device: torch.device) -> str:
    """The precision a run uses (``cfg.precision`` resolved on ``device``)."""
    return resolve_precision(cfg.precision, device)


def autocast(cfg: TrainConfig, device: torch.device) -> Any:
    return autocast_for(precision_of(cfg, device), device)
