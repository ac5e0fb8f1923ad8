"""Images: a path, a PIL image or an array. Data files hold paths; requests carry base64,
multipart parts or ``image/*`` bodies, whose size is read from the header before any pixel
is decoded."""
from __future__ import annotations

import io
from typing import Any, Sequence

from zoo.plugin import DataError, Modality, RequestError

__all__ = ["Image", "read_image"]


def read_image(value: Any) -> Any:
    """A path, a PIL image or an array (H, W[, C] or C, H, W; uint8, or float in [0, 1])
    -> an RGB PIL image, or a one-line DataError."""
    import numpy as np
    from PIL import Image as PILImage, UnidentifiedImageError

    if isinstance(value, PILImage.Image):
        return value.convert("RGB")
    if isinstance(value, (str, bytes)) or hasattr(value, "__fspath__") or hasattr(value, "read"):
        try:
            with PILImage.open(value) as im:
                return im.convert("RGB")
        except FileNotFoundError:
            raise DataError(f"image file not found: {value}") from None
        except (UnidentifiedImageError, OSError) as e:
            raise DataError(f"cannot decode image {value}: {e}") from None
    if hasattr(value, "detach"):  # a torch tensor
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
        return PILImage.fromarray(a).convert("RGB")
    raise DataError(f"image input must be a path, a PIL image or an array, got "
                    f"{type(value).__name__}")


class Image(Modality):
    file_based = True
    suffixes = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm",
                ".pgm")
    media_types = ("image/",)
    cost = 1
    exportable = True
    limits = {"max_pixels": 4096 * 4096}
    card_example = '"image": "photo.png"'

    def check(self, value: Any) -> str | None:
        if not isinstance(value, str) and not hasattr(value, "__fspath__"):
            return None  # in memory: read when used
        from PIL import Image as PILImage

        missing = super().check(value)
        if missing:
            return missing
        try:
            with PILImage.open(value) as im:
                im.verify()
        except Exception as e:  # PIL raises many types for corrupt files
            return f"cannot decode image {value}: {type(e).__name__}"
        return None

    def describe(self, values: Sequence[Any]) -> dict[str, Any] | None:
        from collections import Counter

        from PIL import Image as PILImage

        sizes: Counter = Counter()
        for v in values:
            if isinstance(v, str):
                with PILImage.open(v) as im:
                    sizes[f"{im.width}x{im.height}"] += 1
        return {"sizes": dict(sizes.most_common(10))} if sizes else None

    def from_bytes(self, data: bytes, where: str, limits: Any) -> Any:
        from PIL import Image as PILImage, UnidentifiedImageError

        try:
            with PILImage.open(io.BytesIO(data)) as im:  # reads the header only
                w, h = im.size
                if w * h > limits.max_pixels:
                    raise RequestError(
                        f"{where} is {w}x{h} ({w * h / 1e6:.1f} Mpx); the limit is "
                        f"{limits.max_pixels / 1e6:.1f} Mpx (ZOO_SERVE_MAX_PIXELS, or zoo serve "
                        f"--limit max_pixels=...)", 413)
                limits.charge(w * h * 3, where)  # decoded to RGB bytes
                return im.convert("RGB")
        except RequestError:
            raise
        except PILImage.DecompressionBombError:
            raise RequestError(f"{where} decompresses to too many pixels", 413) from None
        except (UnidentifiedImageError, OSError, ValueError):
            raise RequestError(f"{where} is not a readable image") from None

    def explain_load(self, value: Any) -> Any:
        from zoo.modalities.image_explain import image_load

        return image_load(value)

    def explain_units(self, value: Any, max_units: int) -> list[dict[str, Any]]:
        from zoo.modalities.image_explain import image_units

        return image_units(value, max_units)

    def explain_ablate(self, value: Any, units: Sequence[dict[str, Any]],
                       keep: Sequence[bool]) -> Any:
        from zoo.modalities.image_explain import image_ablate

        return image_ablate(value, units, keep)

    def explain_render(self, value: Any, units: Sequence[dict[str, Any]],
                       attributions: Sequence[float], stem: Any, title: str) -> list[str]:
        from zoo.modalities.image_explain import image_heatmap

        return image_heatmap(value, units, attributions, stem, title)

    def to_request(self, value: Any) -> Any:
        """A path, PIL image or array as base64 of an image file (PNG for in-memory)."""
        if isinstance(value, str) or hasattr(value, "__fspath__"):
            return super().to_request(value)
        import base64

        buf = io.BytesIO()
        read_image(value).save(buf, format="PNG")
        return base64.b64encode(buf.getvalue()).decode()

    def sniff(self, data: bytes) -> str:
        if data[:8] == b"\x89PNG\r\n\x1a\n":
            return ".png"
        if data[:3] == b"\xff\xd8\xff":
            return ".jpg"
        return ".bin"

    def corruptions(self, values: Sequence[Any] = ()) -> dict[str, Any]:
        """ImageNet-C's Gaussian noise, Gaussian blur, JPEG, brightness and contrast."""
        from zoo.modalities.image_corruptions import image_corruptions

        return image_corruptions()

    def samples(self) -> list[Any]:
        import numpy as np
        from PIL import Image as PILImage

        rng = np.random.default_rng(0)
        return [PILImage.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8))
                for h, w in ((48, 64), (80, 40))]

    scaffold_encoder = '''"""A small convolutional image encoder: replace the network with yours."""
import numpy as np
import torch
from PIL import Image
from torch import nn

from zoo.plugin import DataError, Encoder, EncoderOutput


class {cls}(Encoder):
    modality = "image"
    outputs = ("pooled",)

    def __init__(self, dim=64, size=64, pretrained=False, weights=None, assets_dir=None):
        super().__init__()
        self.dim, self.size = dim, size
        self.net = nn.Sequential(nn.Conv2d(3, 32, 3, 2, 1), nn.ReLU(),
                                 nn.Conv2d(32, dim, 3, 2, 1), nn.ReLU(),
                                 nn.AdaptiveAvgPool2d(1), nn.Flatten())

    def preprocess(self, values):
        pixels = []
        for v in values:
            if isinstance(v, (str, bytes)) or hasattr(v, "__fspath__"):
                try:
                    v = Image.open(v)
                except OSError as e:
                    raise DataError(f"cannot read image {{v}}: {{e}}") from None
            if isinstance(v, np.ndarray):
                v = Image.fromarray(v)
            if not isinstance(v, Image.Image):
                raise DataError(f"image input must be a path, PIL image or array, got "
                                f"{{type(v).__name__}}")
            a = np.asarray(v.convert("RGB").resize((self.size, self.size)), dtype=np.float32)
            pixels.append(torch.from_numpy(a / 255.0).permute(2, 0, 1))  # (3, H, W)
        return {{"pixel_values": torch.stack(pixels)}}  # (B, 3, H, W)

    def forward(self, pixel_values):
        return EncoderOutput(pooled=self.net(pixel_values))  # (B, D)

    def preprocessor_config(self):
        return {{"size": self.size}}
'''
