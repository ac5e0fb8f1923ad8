"""The picture of an evaluation for the model card (matplotlib's Agg backend): the cosine
scores of target and non-target pairs with the pair threshold, and the DET curve."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np

from .trials import error_rates, pair_trials

__all__ = ["draw_report", "FILE"]

FILE = "speaker_scores.png"


def _histograms(ax: Any, scores: np.ndarray, same: np.ndarray, threshold: float) -> None:
    bins = np.linspace(min(scores.min(), threshold) - 0.01, max(scores.max(), threshold) + 0.01,
                       40)
    ax.hist(scores[~same], bins=bins, alpha=0.6, density=True,
            label=f"different speakers ({int((~same).sum())})")
    ax.hist(scores[same], bins=bins, alpha=0.6, density=True,
            label=f"same speaker ({int(same.sum())})")
    ax.axvline(threshold, color="black", linestyle="--", label=f"threshold {threshold:.3f}")
    ax.set_xlabel("cosine score of a pair of utterances")
    ax.set_ylabel("density")
    ax.set_title("eval pairs")
    ax.legend(fontsize=8)


def _det(ax: Any, scores: np.ndarray, same: np.ndarray, eer: float) -> None:
    from scipy.stats import norm
    from sklearn.metrics import det_curve

    fa, miss, _ = det_curve(same, scores)
    lo = 1e-3
    ax.plot(norm.ppf(np.clip(fa, lo, 1 - lo)), norm.ppf(np.clip(miss, lo, 1 - lo)))
    ticks = [0.001, 0.01, 0.05, 0.2, 0.5]
    where = norm.ppf(ticks)
    ax.set_xticks(where)
    ax.set_xticklabels([f"{t:.1%}" for t in ticks], fontsize=8)
    ax.set_yticks(where)
    ax.set_yticklabels([f"{t:.1%}" for t in ticks], fontsize=8)
    ax.plot(where, where, color="grey", linewidth=0.5)
    ax.plot([norm.ppf(max(eer, lo))], [norm.ppf(max(eer, lo))], "o", label=f"EER {eer:.2%}")
    ax.set_xlabel("false alarm rate")
    ax.set_ylabel("miss rate")
    ax.set_title("DET curve")
    ax.legend(fontsize=8)


def draw_report(model: Any, speakers: Sequence[str], predictions: Sequence[dict],
                out: Path) -> list[str]:
    """``speaker_scores.png`` in ``out``; nothing when the eval split makes no target or
    no non-target pair."""
    scores, same = pair_trials(np.asarray([p["embedding"] for p in predictions]), speakers)
    if not same.any() or same.all():
        return []
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    head = getattr(model, "head", None)
    rates = error_rates(scores, same)
    threshold = float(head.pair_threshold) if head is not None and \
        hasattr(head, "pair_threshold") else rates.eer_threshold
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    try:
        _histograms(left, scores, same, threshold)
        _det(right, scores, same, rates.eer)
        fig.tight_layout()
        out.mkdir(parents=True, exist_ok=True)
        fig.savefig(out / FILE, dpi=110)
    finally:
        plt.close(fig)
    return [FILE]
