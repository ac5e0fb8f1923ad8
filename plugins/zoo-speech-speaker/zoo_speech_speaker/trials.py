"""Verification trials and their error rates.

A trial is a score (a cosine) and whether both sides are the same speaker (a *target*
trial). From the ROC of the trials (scikit-learn's ``roc_curve``, every threshold kept):

- **EER**, the equal error rate: where the miss rate (targets rejected) equals the false
  alarm rate (non-targets accepted), linearly interpolated between the two ROC points the
  rates cross between; its threshold likewise;
- **minDCF**, NIST SRE's normalised minimum detection cost: the least over thresholds of
  ``(C_miss * P_miss * P_target + C_fa * P_fa * (1 - P_target)) / min(C_miss * P_target,
  C_fa * (1 - P_target))``, here with ``P_target = 0.01`` and ``C_miss = C_fa = 1``
  (1.0 is the cost of always rejecting).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

__all__ = ["P_TARGET", "C_MISS", "C_FA", "ErrorRates", "error_rates", "pair_trials",
           "enrolled_trials"]

P_TARGET, C_MISS, C_FA = 0.01, 1.0, 1.0


@dataclass(frozen=True)
class ErrorRates:
    eer: float
    eer_threshold: float
    min_dcf: float
    min_dcf_threshold: float
    targets: int
    nontargets: int


def _roc(scores: np.ndarray, same: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(false alarm rate, miss rate, threshold) at every distinct score, highest first;
    the first point accepts nothing (threshold +inf)."""
    from sklearn.metrics import roc_curve

    fpr, tpr, thresholds = roc_curve(same, scores, drop_intermediate=False)
    return fpr, 1.0 - tpr, thresholds


def error_rates(scores: Sequence[float], same: Sequence[bool], p_target: float = P_TARGET,
                c_miss: float = C_MISS, c_fa: float = C_FA) -> ErrorRates:
    """EER and minDCF of trials ``scores`` (higher: more alike) with ``same`` (target
    trial or not). Needs at least one target and one non-target trial."""
    s = np.asarray(scores, dtype=np.float64)
    y = np.asarray(same, dtype=bool)
    n_t, n_n = int(y.sum()), int((~y).sum())
    if not n_t or not n_n:
        raise ValueError(f"EER needs target and non-target trials (got {n_t} and {n_n})")
    fa, miss, thr = _roc(s, y)
    top = float(s.max()) + 1e-6
    thr = np.where(np.isfinite(thr), thr, top)  # "accept nothing": just above every score
    gap = miss - fa  # falls from 1 (accept nothing) to -1 (accept all)
    k = int(np.argmax(gap <= 0))  # the first point where misses no longer exceed alarms
    t = gap[k - 1] / (gap[k - 1] - gap[k]) if k > 0 else 0.0
    eer = fa[k - 1] + t * (fa[k] - fa[k - 1]) if k > 0 else fa[0]
    eer_thr = thr[k - 1] + t * (thr[k] - thr[k - 1]) if k > 0 else thr[0]
    lo, hi = float(s[~y].max()), float(s[y].min())
    if hi > lo:  # separable: any threshold in (lo, hi] errs on none; the middle generalises
        eer, eer_thr = 0.0, (lo + hi) / 2
    cost = (c_miss * miss * p_target + c_fa * fa * (1 - p_target)) \
        / min(c_miss * p_target, c_fa * (1 - p_target))
    best = int(np.argmin(cost))
    return ErrorRates(float(eer), float(eer_thr), float(cost[best]), float(thr[best]), n_t, n_n)


def pair_trials(embeddings: np.ndarray, speakers: Sequence[str]
                ) -> tuple[np.ndarray, np.ndarray]:
    """Every unordered pair of utterances: (cosine scores, same speaker)."""
    e = np.asarray(embeddings, dtype=np.float64)
    e = e / np.linalg.norm(e, axis=1, keepdims=True).clip(min=1e-12)
    i, j = np.triu_indices(len(e), k=1)
    spk = np.asarray([str(x) for x in speakers], dtype=object)
    return np.einsum("nd,nd->n", e[i], e[j]), spk[i] == spk[j]


def enrolled_trials(predictions: Sequence[dict], speakers: Sequence[str],
                    enrolled: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """Every eval utterance against every enrolled speaker, from the predictions' per
    speaker ``scores``: (scores, same speaker)."""
    scores, same = [], []
    for p, spk in zip(predictions, speakers):
        table = p.get("scores") or {}
        for name in enrolled:
            scores.append(float(table[name]))
            same.append(str(spk) == name)
    return np.asarray(scores), np.asarray(same, dtype=bool)
