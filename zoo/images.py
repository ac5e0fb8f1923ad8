"""Reading an image input the way every image encoder takes it: a path, a PIL image or an
array (H, W[, C] or C, H, W; uint8, or float in [0, 1]) -> an RGB PIL image, or a one-line
DataError. Exposed to plugins as ``zoo.plugin.read_image``."""
from __future__ import annotations

from typing import Any

import numpy as np
import torch

from .errors import DataError

__all__ = ["read_image"]


def read_image(value: Any) -> Any:
    """A path, a PIL image or an array (H, W[, C]; uint8, or float in [0, 1]) -> RGB PIL."""
    from PIL import Image, UnidentifiedImageError

    if isinstance(value, Image.Image):
        return value.convert("RGB")
    if isinstance(value, (str, bytes)) or hasattr(value, "__fspath__"):
        try:
            with Image.open(value) as im:
                return im.convert("RGB")
        except FileNotFoundError:
            raise DataError(f"image file not found: {value}") from None
        except (UnidentifiedImageError, OSError) as e:
            raise DataError(f"cannot decode image {value}: {e}") from None
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().numpy()
    if isinstance(value, np.ndarray):
        a = value
        if a.ndim == 3 and a.shape[0] in (1, 3) and a.shape[-1] not in (1, 3):
            a = a.transpose(1, 2, 0)  # (C, H, W) -> (H, W, C)
        if a.ndim == 3 and a.shape[-1] == 1:
            a = a[..., 0]
        if a.ndim not in (2, 3):
            raise DataError(f"image array must be (H, W) or (H, W, 3), got shape {a.shape}")
        if a.dtype != np.uint8:
            a = np.clip(a * (255.0 if a.max() <= 1.0 else 1.0), 0, 255).astype(np.uint8)
        return Image.fromarray(a).convert("RGB")
    raise DataError(f"image input must be a path, a PIL image or an array, got "
                    f"{type(value).__name__}")
