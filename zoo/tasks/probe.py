"""Classification's closed-form probe start (``Classification.probe_start``): before the
probe's epochs, a multinomial logistic regression is fitted on the cached features by L-BFGS
and written exactly into the concat-MLP fusion and the classification head; the epochs then
refine it at a third of the learning rate.

Logistic regression is convex, so this start depends on neither learning rate, epochs nor
seed; its L2 strength is chosen on the eval split as a user would tune scikit-learn's ``C``.
It is written into the network without approximation because GELU(z) - GELU(-z) = z: hidden
unit k computes w_k·x and unit K + k computes -w_k·x, and the head takes their difference
(the other hidden units start with zero output weights and learn from there).

Used when every encoder is frozen and cached, the fusion is concat-mlp with room for 2 units
per class, and the head is single-label classification. Any other single-label head whose
logits come from one linear layer (``Head.probe_layer``: the ready classifiers' linear heads,
a classification head after another fusion) gets the regression fitted on what that layer
sees (standardised for the fit, written back exactly in the raw scale). Otherwise the usual
random start.
Measured: ``bench/bench_frozen_peers.py`` (README)."""
from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

__all__ = ["LR_SCALE", "closed_form_start", "eligible", "fit_logistic", "pick_c"]

# inverse L2 strengths tried, as scikit-learn's C on unit-norm features: LayerNorm'd features
# have norm ~sqrt(dim), so each is divided by dim
C_GRID = (0.3, 1.0, 3.0, 10.0, 30.0, 100.0)
C_DEFAULT = 3.0  # no eval split to choose on
LR_SCALE = 1 / 3  # the epochs refine the fitted start (lr / 3 beat lr on val: bench above)


def eligible(model: Any) -> bool:
    """True when the fitted regression can be written exactly into fusion + head."""
    from zoo.fusions.concat import ConcatMLP
    from zoo.heads.classification import ClassificationHead

    fusion, head = model.fusion, model.head
    # exact types: a subclass may compute something else around the MLP
    if type(fusion) is not ConcatMLP or type(head) is not ClassificationHead:
        return False
    mlp = fusion.mlp
    return (not head.multi_label and len(mlp) >= 2 and isinstance(mlp[0], nn.Linear)
            and isinstance(mlp[1], nn.GELU) and mlp[1].approximate == "none"
            and all(isinstance(m, nn.Dropout) for m in list(mlp)[2:])
            and mlp[0].out_features >= 2 * len(head.labels)
            and head.proj.in_features == mlp[0].out_features)


def _fusion_inputs(model: Any, rows: list, batch_size: int, collate: Any) -> torch.Tensor:
    """(N, D): what the fusion's first linear layer sees for each cached row (the
    normalised, concatenated pooled features, null embeddings where a modality is absent)."""
    return _layer_inputs(model.fusion.mlp[0], model, rows, batch_size, collate)


def fit_logistic(x: torch.Tensor, y: torch.Tensor, n_classes: int, c: float,
                 init: tuple[torch.Tensor, torch.Tensor] | None = None,
                 max_iter: int = 200) -> tuple[torch.Tensor, torch.Tensor]:
    """Multinomial logistic regression by L-BFGS: mean cross-entropy + ||W||² / (2 c N)
    (scikit-learn's objective divided by c N). Returns W (K, D) and b (K,)."""
    n, d = x.shape
    w = (init[0].clone() if init else torch.zeros(n_classes, d, device=x.device)).requires_grad_()
    b = (init[1].clone() if init else torch.zeros(n_classes, device=x.device)).requires_grad_()
    opt = torch.optim.LBFGS([w, b], lr=1, max_iter=max_iter, history_size=20,
                            tolerance_grad=1e-6, tolerance_change=1e-9,
                            line_search_fn="strong_wolfe")
    lam = 1.0 / (c * n)

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = F.cross_entropy(x @ w.T + b, y) + 0.5 * lam * (w * w).sum()
        loss.backward()
        return loss

    with torch.enable_grad():
        opt.step(closure)
    return w.detach(), b.detach()


def _linear(model: Any) -> nn.Linear | None:
    """The head's logit layer for a linear-probe start (``Head.probe_layer``), or None."""
    head = model.head
    layer = head.probe_layer() if hasattr(head, "probe_layer") else None
    labels = getattr(head, "labels", None)
    if (not isinstance(layer, nn.Linear) or not labels or getattr(head, "multi_label", False)
            or layer.out_features != len(labels)):
        return None
    return layer


def _fit(probe: Any, x: torch.Tensor, xv: torch.Tensor | None, k: int) -> tuple:
    """(eval accuracy or None, C, (W, b)): C chosen on the eval split, warm-started along
    the grid; without one, the default C."""
    head, d = probe.model.head, x.shape[1]
    y = head.encode_targets(probe.train_targets).to(x.device)
    if xv is None:
        return None, C_DEFAULT, fit_logistic(x, y, k, C_DEFAULT / d)
    yv = head.encode_targets(probe.eval_targets).to(x.device)
    fits, right, fit = [], [], None
    for c in C_GRID:
        fit = fit_logistic(x, y, k, c / d, init=fit)
        fits.append((c, fit))
        right.append((xv @ fit[0].T + fit[1]).argmax(1) == yv)
    i = pick_c(right)
    return float(right[i].float().mean()), fits[i][0], fits[i][1]


def pick_c(right: list[torch.Tensor]) -> int:
    """The index of the C to keep, given each C's right/wrong on the eval rows (C_GRID
    order: the smallest C, the strongest regularisation, first): the most regularised C whose eval accuracy is within half a
    paired standard error of the best one's (sqrt(discordant rows) / n: the rows one fit
    gets right and the other wrong). A near-tie on eval is noise, and the plain argmax
    then drifts to the weakest regularisation: on Russian fortunes it picked C 100 by one
    eval text on 2 of 5 splits, 1.5 and 2.2 points below C 30 and C 3 on test
    (``bench_text_multilingual.py``)."""
    n = max(1, int(right[0].numel()))
    acc = [float(r.float().sum()) / n for r in right]
    best = max(range(len(acc)), key=lambda j: (acc[j], -j))
    for j in range(best + 1):
        discordant = float((right[j] != right[best]).sum())
        if acc[j] >= acc[best] - 0.5 * discordant ** 0.5 / n:
            return j
    return best


def _layer_inputs(layer: nn.Module, model: Any, rows: list, batch_size: int, collate: Any
                  ) -> torch.Tensor:
    """(N, D): what ``layer`` sees for each cached row (the model in eval mode)."""
    seen: list[torch.Tensor] = []
    hook = layer.register_forward_pre_hook(lambda m, args: seen.append(args[0].detach()))
    was = model.training
    model.eval()
    try:
        with torch.no_grad():
            for start in range(0, len(rows), batch_size):
                encoded, batch = collate(rows[start:start + batch_size])
                model(batch, encoded=encoded)
    finally:
        hook.remove()
        model.train(was)
    return torch.cat(seen).float()


def closed_form_start(probe: Any) -> dict[str, Any] | None:
    """Fit the regression on the probe's cached features and write it into fusion + head
    (a :class:`zoo.plugin.Probe`); None when the model does not allow it. Returns what to
    record."""
    model = probe.model
    if eligible(model):
        x = _fusion_inputs(model, probe.train_rows, probe.batch_size, probe.collate)
        xv = (_fusion_inputs(model, probe.eval_rows, probe.batch_size, probe.collate)
              if probe.eval_rows is not None else None)
        acc, c, (w, b) = _fit(probe, x, xv, len(model.head.labels))
        _write(model, w, b)
        where = "the concat-MLP fusion and the head"
    else:
        layer = _linear(model)
        if layer is None:
            return None
        x = _layer_inputs(layer, model, probe.train_rows, probe.batch_size, probe.collate)
        xv = (_layer_inputs(layer, model, probe.eval_rows, probe.batch_size, probe.collate)
              if probe.eval_rows is not None else None)
        mu, sd = x.mean(0), x.std(0, unbiased=False).clamp_min(1e-6)  # standardised fit
        acc, c, (w, b) = _fit(probe, (x - mu) / sd, None if xv is None else (xv - mu) / sd,
                              layer.out_features)
        with torch.no_grad():
            layer.weight.copy_(w / sd)
            layer.bias.copy_(b - (w / sd) @ mu)
        where = "the head's linear layer"
    probe.say(f"closed-form probe: logistic regression on the cached features (L-BFGS, C {c:g}"
              + (f", eval accuracy {acc:.4f}" if acc is not None else "")
              + f") written into {where}; the epochs refine it at lr x {LR_SCALE:.2g}")
    return {"method": "lbfgs", "C": c, "eval_accuracy": acc, "lr_scale": LR_SCALE,
            "description": f"logistic regression fitted by L-BFGS (C {c}"
                           + (f", eval accuracy {acc:.4f}" if acc is not None else "")
                           + f"), refined at lr / {1 / LR_SCALE:g}"}


def _write(model: Any, w: torch.Tensor, b: torch.Tensor) -> None:
    """Unit j: w_j·x, unit k+j: -w_j·x; the head takes their difference (GELU(z) - GELU(-z)
    = z), so fusion + head compute the regression exactly."""
    lin, proj = model.fusion.mlp[0], model.head.proj
    k = w.shape[0]
    eye = torch.eye(k, device=w.device)
    with torch.no_grad():
        lin.weight[:k], lin.weight[k:2 * k] = w, -w
        lin.bias[:2 * k] = 0.0
        proj.weight.zero_()
        proj.weight[:, :k], proj.weight[:, k:2 * k] = eye, -eye
        proj.bias.copy_(b)
