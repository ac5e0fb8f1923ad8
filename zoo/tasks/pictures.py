"""Pictures the first-party tasks draw for the model card (matplotlib, Agg backend)."""
from __future__ import annotations

from pathlib import Path

__all__ = ["plot_confusion", "plot_counts"]


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
