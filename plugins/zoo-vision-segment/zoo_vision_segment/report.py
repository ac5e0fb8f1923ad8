"""Pictures for the model card: a few eval images with the true and the predicted masks laid
over them (matplotlib, Agg backend)."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np

from zoo.plugin import DataError, read_image
from zoo_vision_segment.masks import IGNORE, read_inline, read_mask

__all__ = ["colours", "draw_overlays", "overlay"]

FILE = "segmentation_examples.png"


def colours(n: int) -> np.ndarray:
    """(n, 3) uint8: class 0 (background) black, the others distinct: tab10 up to 10,
    tab20 (its dark shades first) up to 20, then evenly spaced hues."""
    import matplotlib

    k = n - 1
    if k <= 10:
        rows = [matplotlib.colormaps["tab10"](i)[:3] for i in range(k)]
    elif k <= 20:
        order = [*range(0, 20, 2), *range(1, 20, 2)]
        rows = [matplotlib.colormaps["tab20"](order[i])[:3] for i in range(k)]
    else:
        rows = [matplotlib.colormaps["hsv"](i / k)[:3] for i in range(k)]
    return (np.array([(0.0, 0.0, 0.0), *rows]) * 255).astype(np.uint8)


def overlay(image: np.ndarray, mask: np.ndarray, palette: np.ndarray,
            alpha: float = 0.55) -> np.ndarray:
    """The image with each non-background class painted at ``alpha`` (ignored pixels grey)."""
    out = image.astype(np.float32).copy()
    paint = (mask > 0) & (mask != IGNORE) & (mask < len(palette))
    out[paint] = (1 - alpha) * out[paint] + alpha * palette[mask[paint]]
    out[mask == IGNORE] = 0.5 * out[mask == IGNORE] + 64
    return out.clip(0, 255).astype(np.uint8)


def _picked(n: int, k: int) -> list[int]:
    """Up to ``k`` of ``n`` eval examples, spread over the split."""
    return sorted({int(i) for i in np.linspace(0, n - 1, num=min(k, n))}) if n else []


def _iou(truth: np.ndarray, pred: np.ndarray) -> float:
    """Mean IoU of one image over the classes in its truth or prediction (for the title)."""
    valid = truth != IGNORE
    t, p = truth[valid].astype(np.int64), pred[valid].astype(np.int64)
    ious = []
    for c in np.union1d(np.unique(t), np.unique(p)):
        union = np.count_nonzero((t == c) | (p == c))
        ious.append(np.count_nonzero((t == c) & (p == c)) / union)
    return float(np.mean(ious)) if ious else float("nan")


def draw_overlays(labels: Sequence[str], examples: Sequence[Any],
                  predictions: Sequence[dict], out: Path, k: int = 4) -> list[str]:
    """``out/segmentation_examples.png``: per example the image, the truth and the
    prediction; a legend of the classes shown. Its file name, or nothing for no examples."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    picked = _picked(len(examples), k)
    if not picked:
        return []
    palette = colours(len(labels))
    fig, axes = plt.subplots(len(picked), 3, figsize=(9, 3 * len(picked)), squeeze=False)
    shown: set[int] = set()
    for row, i in zip(axes, picked):
        ex, p = examples[i], predictions[i]
        try:
            image = np.asarray(read_image(ex.inputs["image"]))
            truth = read_mask(ex.targets["mask"], f"line {ex.line}")
        except DataError:
            continue
        pred = read_inline(p["mask"], f"line {ex.line}: the prediction")
        for ax, (title, picture) in zip(row, (
                ("image", image), ("truth", overlay(image, truth, palette)),
                (f"prediction (IoU {_iou(truth, pred):.2f})",
                 overlay(image, pred, palette)))):
            ax.imshow(picture)
            ax.set_title(title, fontsize=9)
            ax.axis("off")
        shown |= {int(c) for c in np.union1d(np.unique(truth), np.unique(pred))
                  if 0 < c < len(labels)}
    if shown:
        handles = [Patch(color=palette[c] / 255, label=labels[c]) for c in sorted(shown)]
        fig.legend(handles=handles, loc="lower center", ncol=min(6, len(handles)),
                   fontsize=8, frameon=False)
    fig.suptitle("eval examples: truth vs prediction", fontsize=10)
    fig.tight_layout(rect=(0, 0.05 if shown else 0, 1, 0.97))
    fig.savefig(out / FILE, dpi=90)
    plt.close(fig)
    return [FILE]
