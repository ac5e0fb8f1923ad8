"""The optimisation step every training zoo runs shares, supervised models and pretraining
objectives alike: the batch computed in ``accumulate`` chunks (losses weighted by their
share, so the gradients sum to the whole batch's), under the run's precision (autocast;
loss scaling for fp16 on CUDA), gradients clipped, then the optimizer and the schedule."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Sequence

import torch

from zoo.training.optim import autocast_for

__all__ = ["Stepper", "chunks"]


def chunks(idx: Sequence[int], n: int) -> list[Sequence[int]]:
    """``idx`` in at most ``n`` chunks, none empty."""
    size = -(-len(idx) // n)  # ceil
    return [idx[i:i + size] for i in range(0, len(idx), size)]


@dataclass
class Stepper:
    """One optimizer step on a batch of example indices; ``loss_of(part)`` computes the
    loss of a chunk of them (the forward, through the DDP wrapper when there is one)."""

    params: list
    opt: Any
    sched: Any
    precision: str  # "fp32", "bf16" or "fp16"
    device: torch.device
    accumulate: int = 1
    grad_clip: float = 1.0
    scaler: Any = None  # torch.amp.GradScaler for fp16

    def step(self, loss_of: Callable[[Sequence[int]], torch.Tensor], idx: Sequence[int]
             ) -> float:
        self.opt.zero_grad(set_to_none=True)
        total = 0.0
        for part in chunks(idx, self.accumulate):
            with autocast_for(self.precision, self.device):
                loss = loss_of(part) * (len(part) / len(idx))
            (self.scaler.scale(loss) if self.scaler is not None else loss).backward()
            total += float(loss.detach())
        if self.scaler is not None:
            self.scaler.unscale_(self.opt)
        if self.grad_clip:
            torch.nn.utils.clip_grad_norm_(self.params, self.grad_clip)
        if self.scaler is not None:
            self.scaler.step(self.opt)
            self.scaler.update()
        else:
            self.opt.step()
        self.sched.step()
        return total
