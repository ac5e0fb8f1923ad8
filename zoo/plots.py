"""Pictures for model cards and reports, drawn with matplotlib's Agg backend: training curves,
a confusion matrix, counts per label. Imported by whoever draws (the trainer, tasks, the data
tools); it imports nothing of zoo."""
from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["plot_curves", "plot_confusion", "plot_counts"]


def plot_curves(history: list[dict[str, Any]], metric: str, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = [h for h in history if "loss" in h]
    epochs = [h for h in history if "eval" in h]
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.6))
    if steps:
        a.plot([h["step"] for h in steps], [h["loss"] for h in steps], lw=1, label="train loss")
    means = [h for h in epochs if "train_loss" in h]  # (epoch 0, a closed-form start, has none)
    if means:
        a.plot([h["step"] for h in means], [h["train_loss"] for h in means], "o-",
               label="epoch mean")
    a.set_xlabel("step")
    a.set_ylabel("loss")
    a.set_yscale("log")
    if a.lines:
        a.legend()
    a.set_title("training loss")
    if epochs:
        b.plot([h["epoch"] for h in epochs], [h["eval"].get(metric) for h in epochs], "o-",
               color="C2")
    b.set_xlabel("epoch")
    b.set_ylabel(metric)
    b.set_title(f"eval {metric}")
    b.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_confusion(labels: list[str], y_true: list[str], y_pred: list[str], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    index = {lab: i for i, lab in enumerate(labels)}
    cm = np.zeros((len(labels), len(labels)), dtype=int)
    for t, p in zip(y_true, y_pred):
        if t in index and p in index:
            cm[index[t], index[p]] += 1
    size = max(4.0, 0.45 * len(labels) + 2)
    fig, ax = plt.subplots(figsize=(size, size))
    ax.imshow(cm, cmap="Blues")
    ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    for i in range(len(labels)):
        for j in range(len(labels)):
            if cm[i, j]:
                ax.text(j, i, str(cm[i, j]), ha="center", va="center", fontsize=8,
                        color="white" if cm[i, j] > cm.max() / 2 else "black")
    ax.set_title(f"confusion matrix (eval, n={cm.sum()})")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_counts(counts: dict[str, int], out: Path, title: str) -> None:
    """A bar chart of label counts (``zoo data check --plot``)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    items = sorted(counts.items())
    fig, ax = plt.subplots(figsize=(max(4, 0.5 * len(items) + 2), 3.2))
    ax.bar([k for k, _ in items], [v for _, v in items], color="C0")
    ax.set_title(title)
    ax.set_ylabel("examples")
    plt.setp(ax.get_xticklabels(), rotation=45, ha="right")
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=100)
    plt.close(fig)


def plot_reliability(panels: list[tuple[str, list[tuple[float, float, int]], float]],
                     path: Path, n_bins: int = 15) -> None:
    """Reliability diagrams side by side, one per (title, bins, ECE) panel (bins as
    ``zoo.metrics.reliability_bins`` gives them): accuracy per confidence bin against the
    diagonal, the bin counts below, and the expected calibration error in each title."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    width = 1.0 / n_bins
    fig, axes = plt.subplots(2, len(panels), figsize=(4.4 * len(panels), 5.2), squeeze=False,
                             sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    for col, (title, bins, ece) in enumerate(panels):
        a, b = axes[0][col], axes[1][col]
        a.plot([0, 1], [0, 1], "--", color="grey", lw=1, label="perfectly calibrated")
        a.bar([c for c, _, _ in bins], [acc for _, acc, _ in bins], width=width * 0.9,
              color="C0", alpha=0.8, label="accuracy in bin")
        a.set_ylabel("accuracy")
        a.set_ylim(0, 1)
        a.legend(loc="upper left", fontsize=8)
        a.set_title(f"{title}: ECE {ece:.3f} (n={sum(n for _, _, n in bins)})")
        b.bar([c for c, _, _ in bins], [n for _, _, n in bins], width=width * 0.9, color="C1")
        b.set_xlabel("confidence (top label's score)")
        b.set_ylabel("count")
        b.set_xlim(0, 1)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
