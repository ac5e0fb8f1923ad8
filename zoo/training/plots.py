"""Pictures of a training run: loss and eval-metric curves (a task draws its own, e.g. the
confusion matrix)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["plot_curves"]


def plot_curves(history: list[dict[str, Any]], metric: str, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = [h for h in history if "loss" in h]
    epochs = [h for h in history if "eval" in h]
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.6))
    if steps:
        a.plot([h["step"] for h in steps], [h["loss"] for h in steps], lw=1, label="train loss")
    if epochs and any("train_loss" in h for h in epochs):
        a.plot([h["step"] for h in epochs], [h["train_loss"] for h in epochs], "o-",
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
