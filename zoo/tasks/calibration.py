"""Temperature scaling (Guo et al., 2017): one scalar T > 0 that divides a classifier's
logits, fitted by L-BFGS to the negative log-likelihood of held-out labels. The labels a
model chooses never change; only how sure it says it is."""
from __future__ import annotations

from typing import Any, Sequence

__all__ = ["collect_logits", "fit_temperature"]


def collect_logits(model: Any, examples: Sequence[Any], batch_size: int = 32) -> tuple:
    """(logits (N, C), target class indices (N,)) of ``examples`` through ``model``."""
    import torch

    was = model.training
    model.eval()
    parts, targets = [], []
    try:
        with torch.inference_mode():
            for i in range(0, len(examples), batch_size):
                chunk = examples[i:i + batch_size]
                batch = model.preprocess([ex.inputs for ex in chunk])
                parts.append(model(batch).float().cpu())  # fitted on the host
                targets.append(model.head.encode_targets([ex.targets for ex in chunk]))
    finally:
        model.train(was)
    return torch.cat(parts), torch.cat(targets)


def fit_temperature(logits: Any, targets: Any) -> float:
    """The T minimising the mean cross-entropy of ``softmax(logits / T)`` (log T is
    optimised, so T stays positive), bounded to [0.05, 100]."""
    import torch
    from torch.nn import functional as F

    logits, targets = logits.detach().float(), targets.detach()
    log_t = torch.zeros(1, requires_grad=True)
    opt = torch.optim.LBFGS([log_t], lr=0.1, max_iter=200, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = F.cross_entropy(logits / log_t.exp(), targets)
        loss.backward()
        return loss

    opt.step(closure)
    return float(log_t.detach().exp().clamp(0.05, 100.0))
