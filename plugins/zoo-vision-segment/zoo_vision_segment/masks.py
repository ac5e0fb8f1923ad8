"""Segmentation masks: read, checked and written as single-channel PNGs of class indices.

A mask value is one of

- a path to a PNG file (a data file's ``mask`` column, made absolute by zoo against the data
  file's folder);
- an inline PNG: a ``data:image/png;base64,...`` URI (what a ``/feedback`` correction becomes
  and what ``zoo data from-feedback`` writes), or bare base64 where a correction gives one;
- in memory (the Python API): a PIL image or a 2-d integer array.

Pixel values are class indices (0 = background by default) and 255 means "ignore" (not
scored, no loss). A palette ("P") PNG reads as its indices, an 8-bit grey ("L") or 1-bit
("1") one as its values, a 16-bit grey one as its values when they fit in 0..255. Colour
(RGB/RGBA) masks are refused: their colours are not class indices.
"""
from __future__ import annotations

import base64
import binascii
import io
import os
import threading
from collections import OrderedDict
from typing import Any

import numpy as np

from zoo.plugin import DataError

__all__ = [
    "DATA_URI",
    "IGNORE",
    "as_data_uri",
    "describe_value",
    "image_size",
    "mask_to_base64",
    "read_inline",
    "read_mask",
]

IGNORE = 255  # a pixel no loss and no metric looks at
DATA_URI = "data:image/png;base64,"
_PNG = b"\x89PNG\r\n\x1a\n"
_MODES = ("L", "P", "1", "I;16", "I;16B", "I;16L", "I")
MAX_PIXELS = 1 << 26  # a mask's header is checked against this before its pixels are read


def describe_value(value: Any) -> str:
    """A short name of a mask value for messages (never a whole base64 string)."""
    if isinstance(value, str):
        if value.startswith("data:"):
            return "the inline mask (data: URI)"
        return os.path.basename(value) if len(value) < 300 else "the base64 mask"
    return f"the {type(value).__name__} mask"


def _pixels(im: Any, name: str, where: str) -> np.ndarray:
    """A decoded PIL image -> (H, W) uint8 class indices, or a one-line DataError."""
    if im.mode not in _MODES:
        raise DataError(f"{where}: {name} is a {im.mode} image; a mask must be a single-channel "
                        f"(L) or palette (P) PNG whose pixel values are class indices (255 = "
                        f"ignore), e.g. Image.fromarray(ids.astype('uint8')).save(...)")
    a = np.asarray(im)
    if a.ndim != 2:
        raise DataError(f"{where}: {name} has shape {a.shape}; a mask is one channel (H, W)")
    if a.dtype != np.uint8:
        if a.size and (a.min() < 0 or a.max() > IGNORE):
            raise DataError(f"{where}: {name} holds values up to {int(a.max())}; class indices "
                            f"must be 0..254 (255 = ignore)")
        a = a.astype(np.uint8)
    return a


def _decode_png(data: bytes, name: str, where: str) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    if not data.startswith(_PNG):
        raise DataError(f"{where}: {name} is not a PNG; a mask must be a lossless PNG of class "
                        f"indices (JPEG would blur the indices)")
    try:
        with Image.open(io.BytesIO(data)) as im:
            if im.width * im.height > MAX_PIXELS:
                raise DataError(f"{where}: {name} is {im.width}x{im.height}, over "
                                f"{MAX_PIXELS} pixels")
            im.load()
            return _pixels(im, name, where)
    except DataError:
        raise
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as e:
        raise DataError(f"{where}: {name} cannot be decoded as a PNG ({type(e).__name__})") \
            from None


def _b64(text: str, name: str, where: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise DataError(f"{where}: {name} is not valid base64 of a PNG file") from None


class _Cache:
    """Decoded mask files by (path, mtime, size), least recently used dropped first once
    they hold more than ``budget`` bytes (training reads every mask each epoch)."""

    def __init__(self, budget: int = 256 << 20) -> None:
        self.budget, self.used = budget, 0
        self.items: OrderedDict[tuple, np.ndarray] = OrderedDict()
        self.lock = threading.Lock()

    def get(self, key: tuple) -> np.ndarray | None:
        with self.lock:
            if key in self.items:
                self.items.move_to_end(key)
                return self.items[key]
        return None

    def put(self, key: tuple, value: np.ndarray) -> None:
        with self.lock:
            if key in self.items or value.nbytes > self.budget:
                return
            self.items[key] = value
            self.used += value.nbytes
            while self.used > self.budget:
                self.used -= self.items.popitem(last=False)[1].nbytes


_CACHE = _Cache()


def _read_file(path: str, where: str) -> np.ndarray:
    """A mask file's indices (read-only: callers copy before changing)."""
    try:
        st = os.stat(path)
    except OSError:
        raise DataError(f"{where}: mask file not found: {path} (a mask path is relative to "
                        f"the data file)") from None
    key = (os.path.abspath(path), st.st_mtime_ns, st.st_size)
    cached = _CACHE.get(key)
    if cached is not None:
        return cached
    with open(path, "rb") as f:
        a = _decode_png(f.read(), os.path.basename(path), where)
    a.setflags(write=False)
    _CACHE.put(key, a)
    return a


def read_inline(value: Any, where: str) -> np.ndarray:
    """An inline mask only: a ``data:image/png;base64,...`` URI or bare base64 of a PNG (a
    ``/feedback`` correction, a prediction). Never a path: a request must not make the
    server read its own files."""
    if not isinstance(value, str) or not value:
        raise DataError(f"{where}: a mask correction is a base64 PNG of class indices (or a "
                        f"data:image/png;base64,... URI), got {type(value).__name__}")
    name = describe_value(value)
    if value.startswith("data:"):
        head, _, payload = value.partition(",")
        if not head.endswith(";base64") or not payload:
            raise DataError(f"{where}: an inline mask must be a data:image/png;base64,... URI")
        value = payload
    return _decode_png(_b64(value, name, where), name, where)


def read_mask(value: Any, where: str) -> np.ndarray:
    """A mask value (see the module docstring) -> (H, W) uint8 class indices (read-only)."""
    name = describe_value(value)
    if isinstance(value, str):
        if value.startswith("data:"):
            return read_inline(value, where)
        return _read_file(value, where)
    if hasattr(value, "mode") and hasattr(value, "size"):  # a PIL image
        return _pixels(value, name, where)
    if isinstance(value, np.ndarray) or hasattr(value, "detach"):
        a = np.asarray(value.detach().cpu() if hasattr(value, "detach") else value)
        if a.ndim != 2 or not (np.issubdtype(a.dtype, np.integer) or a.dtype == bool):
            raise DataError(f"{where}: a mask array must be 2-d integers (H, W), got "
                            f"{a.dtype} {a.shape}")
        if a.size and (a.min() < 0 or a.max() > IGNORE):
            raise DataError(f"{where}: mask values must be class indices 0..254 (255 = ignore)")
        return a.astype(np.uint8)
    raise DataError(f"{where}: 'mask' must be a PNG path, a data:image/png;base64 URI, a PIL "
                    f"image or an array, got {type(value).__name__}")


def mask_to_base64(mask: np.ndarray) -> str:
    """(H, W) uint8 class indices -> base64 of a single-channel ("L") PNG."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(mask, dtype=np.uint8)).save(  # 2-d uint8: "L"
        buf, format="PNG", optimize=False, compress_level=6)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def as_data_uri(mask: np.ndarray) -> str:
    return DATA_URI + mask_to_base64(mask)


def image_size(value: Any) -> tuple[int, int] | None:
    """(height, width) of an image input without decoding its pixels (a path: the header;
    a PIL image; an array), or None when it cannot be told."""
    if isinstance(value, (str, os.PathLike)):
        from PIL import Image

        try:
            with Image.open(value) as im:
                return im.height, im.width
        except (OSError, ValueError):
            return None  # the image modality reports an unreadable image itself
    if hasattr(value, "size") and hasattr(value, "mode"):
        return value.height, value.width
    if hasattr(value, "detach"):
        value = value.detach().cpu().numpy()
    if isinstance(value, np.ndarray) and value.ndim in (2, 3):
        if value.ndim == 3 and value.shape[0] in (1, 3) and value.shape[-1] not in (1, 3):
            return int(value.shape[1]), int(value.shape[2])  # (C, H, W)
        return int(value.shape[0]), int(value.shape[1])
    return None
