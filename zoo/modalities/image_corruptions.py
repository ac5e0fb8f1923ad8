"""Image corruptions for ``zoo eval --robustness``: ImageNet-C's formulas (Hendrycks &
Dietterich, "Benchmarking Neural Network Robustness to Common Corruptions and
Perturbations", ICLR 2019) for Gaussian noise, Gaussian blur, JPEG, brightness and
contrast, in numpy, SciPy and Pillow. Our severities 1, 2, 3 are ImageNet-C's 1, 3 and 5.

ImageNet-C corrupts 224 px crops. A larger photo keeps its size (boxes and masks stay in its
pixels) and gets the corruption as it would look at 224 px once the encoder resizes it: the
blur sigma and the grain of the noise (one draw per 224-scale pixel) scaled by its short
side / 224. JPEG compresses at the photo's own size, as ``imagecorruptions`` does.
Why not a library: ``imagecorruptions`` 1.1.2 (PyPI's latest) still calls scikit-image's
removed ``gaussian(multichannel=True)`` (a TypeError with scikit-image >= 0.22), draws from
NumPy's global random state and needs opencv-python; ``albumentations`` installs but is
archived upstream, brings OpenCV and is not parameterised as ImageNet-C."""
from __future__ import annotations

from typing import Any, Callable

__all__ = ["image_corruptions", "gaussian_noise", "gaussian_blur", "jpeg", "brightness",
           "contrast"]

#: ImageNet-C's parameters at its severities 1, 3, 5 (our 1, 2, 3)
NOISE_STD = (0.08, 0.18, 0.38)  # Gaussian noise, of the [0, 1] range
BLUR_SIGMA = (1.0, 3.0, 6.0)  # Gaussian blur, pixels at 224 px
JPEG_QUALITY = (25, 15, 7)
BRIGHTNESS = (0.1, 0.3, 0.5)  # added to HSV value
CONTRAST = (0.4, 0.2, 0.05)  # the deviation from the channel means kept


def _read(value: Any) -> Any:
    """An image value -> an RGB PIL image (an embedded file read from its start)."""
    from zoo.plugin import read_image

    if hasattr(value, "seek"):
        value.seek(0)
    return read_image(value)


def _pixels(value: Any) -> Any:
    """An image value -> (H, W, 3) float64 in [0, 1]."""
    import numpy as np

    return np.asarray(_read(value), dtype=np.float64) / 255.0


def _image(x: Any) -> Any:
    import numpy as np
    from PIL import Image

    return Image.fromarray(np.uint8(np.clip(x, 0.0, 1.0) * 255.0 + 0.5))  # rounded


def _scale(x: Any) -> float:
    """How many of the image's pixels one pixel of a 224-px short side covers (>= 1)."""
    return max(1.0, min(x.shape[:2]) / 224.0)


def gaussian_noise(value: Any, severity: int, rng: Any) -> Any:
    import math

    import numpy as np

    x = _pixels(value)
    h, w = x.shape[:2]
    k = _scale(x)
    nh, nw = math.ceil(h / k), math.ceil(w / k)
    field = rng.normal(0.0, NOISE_STD[severity - 1], size=(nh, nw, x.shape[2]))
    rows, cols = np.arange(h) * nh // h, np.arange(w) * nw // w  # each draw covers k x k
    return _image(x + field[rows][:, cols])


def gaussian_blur(value: Any, severity: int, rng: Any) -> Any:
    from scipy.ndimage import gaussian_filter

    x = _pixels(value)
    sigma = BLUR_SIGMA[severity - 1] * min(x.shape[:2]) / 224.0
    return _image(gaussian_filter(x, sigma=(sigma, sigma, 0), mode="nearest"))  # as skimage


def jpeg(value: Any, severity: int, rng: Any) -> Any:
    import io

    from PIL import Image

    buf = io.BytesIO()
    _read(value).save(buf, format="JPEG", quality=JPEG_QUALITY[severity - 1])
    buf.seek(0)
    with Image.open(buf) as im:
        return im.convert("RGB")


def brightness(value: Any, severity: int, rng: Any) -> Any:
    """HSV value + c, hue and saturation kept: each pixel's RGB scaled by V'/V (a black
    pixel becomes grey V'), what ImageNet-C's rgb2hsv -> hsv2rgb round trip gives."""
    import numpy as np

    x = _pixels(value)
    v = x.max(axis=2, keepdims=True)  # (H, W, 1)
    lifted = np.clip(v + BRIGHTNESS[severity - 1], 0.0, 1.0)
    scaled = np.where(v > 0, x * lifted / np.where(v > 0, v, 1.0), lifted)
    return _image(scaled)


def contrast(value: Any, severity: int, rng: Any) -> Any:
    x = _pixels(value)
    means = x.mean(axis=(0, 1), keepdims=True)  # (1, 1, 3)
    return _image((x - means) * CONTRAST[severity - 1] + means)


def image_corruptions() -> dict[str, Callable[[Any, int, Any], Any]]:
    return {"gaussian_noise": gaussian_noise, "gaussian_blur": gaussian_blur, "jpeg": jpeg,
            "brightness": brightness, "contrast": contrast}
