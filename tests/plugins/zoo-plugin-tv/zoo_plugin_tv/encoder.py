"""tv-convnet: a tiny image encoder built from torchvision blocks."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn
from torchvision.ops import Conv2dNormActivation
from torchvision.transforms import v2
from zoo.plugin import DataError, Encoder, EncoderOutput, load_weights

MEAN = [0.5, 0.5, 0.5]
STD = [0.5, 0.5, 0.5]


class TVConvNet(Encoder):
    modality = "image"
    outputs = ("pooled",)

    def __init__(self, dim=32, size=32):
        super().__init__()
        self.dim = int(dim)
        self.size = int(size)
        self.body = nn.Sequential(
            Conv2dNormActivation(3, 16, kernel_size=3, stride=2),
            Conv2dNormActivation(16, 32, kernel_size=3, stride=2),
            Conv2dNormActivation(32, self.dim, kernel_size=3, stride=2),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
        )
        self.transform = v2.Compose([
            v2.ToImage(),
            v2.Resize((self.size, self.size), antialias=True),
            v2.ToDtype(torch.float32, scale=True),
            v2.Normalize(MEAN, STD),
        ])

    def _to_pil(self, value):
        from PIL import Image, UnidentifiedImageError

        if isinstance(value, Image.Image):
            return value.convert("RGB")
        if isinstance(value, (str, Path)):
            try:
                with Image.open(value) as im:
                    return im.convert("RGB")
            except (OSError, UnidentifiedImageError) as e:
                raise DataError(f"cannot read image {value}: {e}") from None
        if isinstance(value, np.ndarray) or torch.is_tensor(value):
            arr = np.asarray(value)
            if arr.ndim == 3 and arr.shape[0] in (1, 3) and arr.shape[-1] not in (1, 3):
                arr = arr.transpose(1, 2, 0)
            if arr.ndim == 3 and arr.shape[-1] == 1:
                arr = arr[..., 0]
            if arr.ndim not in (2, 3):
                raise DataError(f"image array must be HxW or HxWxC, got shape {arr.shape}")
            if arr.dtype != np.uint8:
                arr = arr.astype(np.float32)
                if arr.max(initial=0) <= 1.0:
                    arr = arr * 255.0
                arr = arr.clip(0, 255).astype(np.uint8)
            return Image.fromarray(arr).convert("RGB")
        raise DataError(f"image input must be a path, PIL image or array, got {type(value).__name__}")

    def preprocess(self, values):
        return {"pixel_values": torch.stack([self.transform(self._to_pil(v)) for v in values])}

    def preprocessor_config(self):
        return {"size": self.size, "mean": MEAN, "std": STD}

    def forward(self, pixel_values):
        return EncoderOutput(pooled=self.body(pixel_values))


def build(*, pretrained=False, weights=None, assets_dir=None, dim=32, size=32):
    enc = TVConvNet(dim=dim, size=size)
    if pretrained and weights:
        load_weights(enc, weights)
    return enc
