"""Offline data sets built from what ships with pip packages and Debian: scikit-learn's
digits (8x8 scans of handwritten digits), digits pasted on canvases with exact boxes (COCO),
sentences spoken by espeak-ng. Used by the tests, the benches and the demo; nothing is
downloaded."""
from __future__ import annotations

import json
import random
import shutil
import subprocess
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

__all__ = ["digit_images", "digits_manifests", "digit_detection", "speak", "NUMBER_WORDS"]

NUMBER_WORDS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]


def digit_images(size: int = 32) -> tuple[np.ndarray, np.ndarray]:
    """All 1,797 scikit-learn digits as (N, size, size) uint8 images (white on black,
    bilinear upscaling) and their labels (N,)."""
    from PIL import Image
    from sklearn.datasets import load_digits

    d = load_digits()
    imgs = (d.images / 16.0 * 255).astype(np.uint8)
    up = np.stack([np.asarray(Image.fromarray(im).resize((size, size), Image.BILINEAR))
                   for im in imgs])
    return up, d.target


def _split(n: int, fractions: Sequence[float], seed: int) -> list[list[int]]:
    idx = list(range(n))
    random.Random(seed).shuffle(idx)
    cuts = np.cumsum([int(round(f * n)) for f in fractions[:-1]]).tolist()
    bounds = [0, *cuts, n]
    return [idx[a:b] for a, b in zip(bounds[:-1], bounds[1:])]


def digits_manifests(out: str | Path, *, size: int = 32, seed: int = 0,
                     fractions: Sequence[float] = (0.6, 0.2, 0.2), limit: int | None = None,
                     text: bool = False) -> dict[str, Path]:
    """PNG files + train/val/test JSONL manifests (a fixed shuffled split)."""
    from PIL import Image

    out = Path(out)
    (out / "img").mkdir(parents=True, exist_ok=True)
    imgs, labels = digit_images(size)
    n = len(imgs) if limit is None else min(limit, len(imgs))
    paths = {}
    for name, part in zip(("train", "val", "test"), _split(n, fractions, seed)):
        lines = []
        for i in part:
            f = out / "img" / f"{i:04d}.png"
            if not f.exists():
                Image.fromarray(imgs[i]).save(f)
            row = {"image": f"img/{i:04d}.png", "label": str(int(labels[i]))}
            if text:
                row["text"] = f"the digit {NUMBER_WORDS[int(labels[i])]}"
            lines.append(json.dumps(row))
        paths[name] = out / f"{name}.jsonl"
        paths[name].write_text("\n".join(lines) + "\n")
    return paths


def digit_detection(out: str | Path, n_images: int, *, canvas: int = 128,
                    per_image: tuple[int, int] = (1, 3), digit_size: tuple[int, int] = (20, 44),
                    seed: int = 0, name: str = "data", pool: Iterable[int] | None = None) -> Path:
    """Digits pasted on dark noisy canvases, without overlap, with exact boxes: COCO JSON."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    out = Path(out)
    (out / name).mkdir(parents=True, exist_ok=True)
    small, labels = digit_images(8)
    from sklearn.datasets import load_digits

    raw = load_digits().images / 16.0
    pool = list(pool) if pool is not None else list(range(len(raw)))
    images, anns = [], []
    for k in range(n_images):
        img = rng.normal(20, 8, (canvas, canvas)).clip(0, 255)
        boxes: list[list[int]] = []
        for _ in range(int(rng.integers(per_image[0], per_image[1] + 1))):
            for _try in range(30):
                s = int(rng.integers(digit_size[0], digit_size[1] + 1))
                x, y = int(rng.integers(0, canvas - s)), int(rng.integers(0, canvas - s))
                if all(x + s <= bx or bx + bw <= x or y + s <= by or by + bh <= y
                       for bx, by, bw, bh in boxes):
                    break
            else:
                continue
            i = pool[int(rng.integers(0, len(pool)))]
            d = np.asarray(Image.fromarray((raw[i] * 255).astype(np.uint8)).resize(
                (s, s), Image.BILINEAR), dtype=float)
            img[y:y + s, x:x + s] = np.maximum(img[y:y + s, x:x + s], d)
            boxes.append([x, y, s, s])
            anns.append({"id": len(anns) + 1, "image_id": k + 1,
                         "category_id": int(labels[i]) + 1, "bbox": [x, y, s, s],
                         "area": s * s, "iscrowd": 0})
        f = f"{name}/{k:05d}.png"
        Image.fromarray(img.astype(np.uint8)).convert("RGB").save(out / f)
        images.append({"id": k + 1, "file_name": f, "width": canvas, "height": canvas})
    coco = {"images": images, "annotations": anns,
            "categories": [{"id": d + 1, "name": str(d)} for d in range(10)]}
    path = out / f"{name}.json"
    path.write_text(json.dumps(coco))
    return path


def speak(text: str, path: str | Path, *, voice: str = "en", speed: int = 160,
          pitch: int = 50) -> Path:
    """Synthesize ``text`` with espeak-ng into a 22.05 kHz WAV file."""
    exe = shutil.which("espeak-ng")
    if exe is None:
        raise RuntimeError("espeak-ng is not installed: apt-get install espeak-ng")
    subprocess.run([exe, "-v", voice, "-s", str(speed), "-p", str(pitch), "-w", str(path),
                    text], check=True, capture_output=True)
    return Path(path)
