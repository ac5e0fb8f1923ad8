"""Explaining images (``zoo explain``): a grid of patches is the units; a removed patch is
filled with the image's mean colour (occlusion); the explanation is drawn as a heat map
over the image (a PNG)."""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Sequence

__all__ = ["GRID", "MAX_SIDE", "image_load", "image_units", "image_ablate", "image_heatmap"]

#: patches per side at most (8 x 8 = 64 units), fewer when the unit budget is smaller
GRID = 8
#: larger images are perturbed at this longest side (encoders shrink them further anyway),
#: so a batch of perturbed copies of a 16 Mpx photo stays small; boxes keep full pixels
MAX_SIDE = 1024


def image_load(value: Any) -> Any:
    """An RGB PIL image, shrunk to ``MAX_SIDE`` on its longest side when larger (its full
    size kept in ``info["zoo_full_size"]``)."""
    from PIL import Image

    from zoo.plugin import read_image

    image = read_image(value)
    full = image.size
    if max(full) > MAX_SIDE:
        scale = MAX_SIDE / max(full)
        image = image.resize((max(1, round(full[0] * scale)), max(1, round(full[1] * scale))),
                             Image.Resampling.BILINEAR)
    image.info["zoo_full_size"] = full
    return image


def _full_size(image: Any) -> tuple[int, int]:
    return tuple(image.info.get("zoo_full_size", image.size))


def image_units(image: Any, max_units: int) -> list[dict[str, Any]]:
    """``{"box": [x0, y0, x1, y1], "row", "col"}`` per patch (pixels of the full image, x1
    and y1 excluded) of a grid of up to ``GRID`` x ``GRID`` patches within ``max_units``."""
    w, h = _full_size(image)
    side = max(1, min(GRID, math.isqrt(max_units), w, h))
    xs = [round(i * w / side) for i in range(side + 1)]
    ys = [round(i * h / side) for i in range(side + 1)]
    return [{"box": [xs[c], ys[r], xs[c + 1], ys[r + 1]], "row": r, "col": c}
            for r in range(side) for c in range(side)]


def image_ablate(image: Any, units: Sequence[dict[str, Any]], keep: Sequence[bool]) -> Any:
    """The image with each removed patch filled with the image's mean colour."""
    import numpy as np
    from PIL import Image

    pixels = np.array(image)  # (H, W, 3) uint8, a copy
    mean = pixels.reshape(-1, 3).mean(axis=0).round().astype(np.uint8)
    sx, sy = (a / b for a, b in zip(image.size, _full_size(image)))  # full -> these pixels
    for u, k in zip(units, keep):
        if not k:
            x0, y0, x1, y1 = u["box"]
            pixels[round(y0 * sy):round(y1 * sy), round(x0 * sx):round(x1 * sx)] = mean
    return Image.fromarray(pixels)


def image_heatmap(image: Any, units: Sequence[dict[str, Any]], attributions: Sequence[float],
                  stem: Path, title: str) -> list[str]:
    """``STEM.png``: the image under its patches' attributions (red raised the score, blue
    lowered it; bilinear between patch centres), with a colour bar."""
    import numpy as np
    from matplotlib.figure import Figure

    rows = 1 + max(u["row"] for u in units)
    cols = 1 + max(u["col"] for u in units)
    grid = np.zeros((rows, cols))  # (rows, cols): one attribution per patch
    for u, a in zip(units, attributions):
        grid[u["row"], u["col"]] = a
    scale = float(np.abs(grid).max()) or 1.0
    w, h = _full_size(image)
    fig = Figure(figsize=(6, 6 * h / w + 0.6))
    ax = fig.add_subplot()
    ax.imshow(np.asarray(image), extent=(0, w, h, 0))
    shown = ax.imshow(grid, cmap="bwr", vmin=-scale, vmax=scale, alpha=0.5,
                      interpolation="bilinear", extent=(0, w, h, 0))
    fig.colorbar(shown, ax=ax, fraction=0.046, pad=0.04, label="attribution")
    ax.set_title(title)
    ax.set_axis_off()
    fig.tight_layout()
    path = stem.with_name(stem.name + ".png")
    fig.savefig(path, dpi=100)
    return [str(path)]
