"""``zoo plugin new NAME``: a plugin package that installs, registers through the entry
point and passes ``zoo plugins check`` and its own tests as generated."""
from __future__ import annotations

import re
from pathlib import Path

from zoo.errors import ZooError

__all__ = ["new_plugin"]

_PYPROJECT = '''[build-system]
requires = ["setuptools>=68"]
build-backend = "setuptools.build_meta"

[project]
name = "{dist}"
version = "0.0.1"
description = "A zoo plugin: {what}."
requires-python = ">=3.10"
dependencies = ["zoo-mm"]

[project.entry-points.zoo]
{ep} = "{module}"

[tool.setuptools]
packages = ["{module}"]
'''

_INIT_ENCODER = '''"""{dist}: registration only (no torch here; the factory imports it when building)."""
from zoo.plugin import hookimpl


@hookimpl
def register_encoders(register):
    register("{short}-encoder", "{module}.encoder:{cls}", modality="{modality}",
             outputs=("pooled",), dim=64, defaults={{"dim": 64}},
             description="{what} (random init: train it with `zoo train`).")
'''

_INIT_FUSION = '''"""{dist}: registration only (no torch here; the factory imports it when building)."""
from zoo.plugin import hookimpl


@hookimpl
def register_fusions(register):
    register("{short}-sum", "{module}.fusion:SumFusion", accepts=("pooled",),
             defaults={{"dim": 64}}, description="{what}.")
'''

_ENCODERS = {
    "text": '''"""A bag-of-hashed-words text encoder: replace the network with yours."""
import zlib

import torch
from torch import nn

from zoo.plugin import DataError, Encoder, EncoderOutput


class {cls}(Encoder):
    modality = "text"
    outputs = ("pooled",)

    def __init__(self, dim=64, buckets=4096, pretrained=False, weights=None, assets_dir=None):
        super().__init__()
        self.dim, self.buckets = dim, buckets
        self.embed = nn.Embedding(buckets, dim, padding_idx=0)

    def preprocess(self, values):
        ids = []
        for v in values:
            if not isinstance(v, str):
                raise DataError(f"text input must be a string, got {{type(v).__name__}}")
            words = v.lower().split() or [""]
            ids.append([1 + zlib.crc32(w.encode()) % (self.buckets - 1) for w in words])
        width = max(len(x) for x in ids)
        return {{"input_ids": torch.tensor([x + [0] * (width - len(x)) for x in ids])}}

    def forward(self, input_ids):
        mask = (input_ids > 0).unsqueeze(-1).float()  # (B, T, 1)
        pooled = (self.embed(input_ids) * mask).sum(1) / mask.sum(1).clamp(min=1)  # (B, D)
        return EncoderOutput(pooled=pooled)
''',
    "image": '''"""A small convolutional image encoder: replace the network with yours."""
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
''',
    "audio": '''"""A framed log-energy audio encoder: replace the network with yours."""
import numpy as np
import torch
from torch import nn

from zoo.plugin import DataError, Encoder, EncoderOutput


class {cls}(Encoder):
    modality = "audio"
    outputs = ("pooled",)

    def __init__(self, dim=64, sample_rate=16000, frame=400, pretrained=False, weights=None,
                 assets_dir=None):
        super().__init__()
        self.dim, self.sample_rate, self.frame = dim, sample_rate, frame
        self.proj = nn.Sequential(nn.Linear(frame, dim), nn.Tanh())

    def preprocess(self, values):
        frames = []
        for v in values:
            if isinstance(v, str):
                import soundfile as sf

                v = sf.read(v, dtype="float32")
            wave, rate = v if isinstance(v, tuple) else (v, self.sample_rate)
            if rate != self.sample_rate:
                raise DataError(f"audio must be at {{self.sample_rate}} Hz, got {{rate}}")
            wave = np.asarray(wave, dtype=np.float32).reshape(-1)
            n = max(1, len(wave) // self.frame)
            wave = np.pad(wave, (0, n * self.frame - len(wave)))[: n * self.frame]
            frames.append(torch.from_numpy(wave.reshape(n, self.frame)))
        width = max(f.shape[0] for f in frames)
        batch = torch.zeros(len(frames), width, self.frame)  # (B, T, frame)
        mask = torch.zeros(len(frames), width, dtype=torch.bool)
        for i, f in enumerate(frames):
            batch[i, : f.shape[0]], mask[i, : f.shape[0]] = f, True
        return {{"frames": batch, "mask": mask}}

    def forward(self, frames, mask):
        h = self.proj(frames)  # (B, T, D)
        w = mask.unsqueeze(-1).float()
        return EncoderOutput(pooled=(h * w).sum(1) / w.sum(1).clamp(min=1))  # (B, D)

    def preprocessor_config(self):
        return {{"sample_rate": self.sample_rate, "frame": self.frame}}
''',
}

_FUSION = '''"""A fusion that projects each modality's pooled vector and sums them: replace it with
yours. Its config is captured from the constructor arguments: no config() needed."""
import torch
from torch import nn


class SumFusion(nn.Module):
    def __init__(self, inputs, dim=64):
        super().__init__()
        self.proj = nn.ModuleDict({{m: nn.Linear(spec["dim"], dim) for m, spec in inputs.items()}})
        self.out_dim = dim

    def forward(self, encoded, batch_size):
        out = None
        for m, (enc, index) in encoded.items():  # examples that lack m get nothing from it
            part = torch.zeros(batch_size, self.out_dim, device=enc.pooled.device)
            part = part.index_add(0, index, self.proj[m](enc.pooled))
            out = part if out is None else out + part
        return out  # (B, dim)
'''

_TEST = '''"""Tests of {dist}, as generated by `zoo plugin new`: keep them passing."""
import subprocess
import sys


def test_the_plugin_passes_zoo_plugins_check():
    proc = subprocess.run([sys.executable, "-m", "zoo", "plugins", "check", "{ep}"],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert " FAIL " not in proc.stdout


def test_it_is_listed_under_its_distribution():
    import zoo

    info = zoo.model_info("{name}")
    assert info["source"] == "{dist}"
'''


def _names(name: str) -> dict[str, str]:
    short = name.removeprefix("zoo-")
    if not re.match(r"^[a-z][a-z0-9]*(-[a-z0-9]+)*$", name) or not short[:1].isalpha():
        raise ZooError(f"plugin name {name!r}: use lower-case words of letters and digits "
                       f"joined by '-', starting with a letter (e.g. zoo-my-encoder)")
    module = name.replace("-", "_")
    return {"dist": name, "module": module, "ep": module, "short": short,
            "cls": "".join(p.title() for p in short.split("-")) + "Encoder"}


def new_plugin(name: str, *, kind: str = "encoder", modality: str = "text",
               out: str | Path = ".") -> Path:
    """Write the package ``out/name`` and return its path."""
    n = _names(name)
    root = Path(out) / name
    if root.exists():
        raise ZooError(f"{root} already exists; choose another name or --out")
    pkg = root / n["module"]
    (pkg).mkdir(parents=True)
    (root / "tests").mkdir()
    if kind == "encoder":
        what = f"a {modality} encoder"
        n["name"] = f"{n['short']}-encoder"
        (pkg / "__init__.py").write_text(_INIT_ENCODER.format(what=what, modality=modality, **n))
        (pkg / "encoder.py").write_text(_ENCODERS[modality].format(**n))
    else:
        what = "a fusion that sums projected modalities"
        n["name"] = f"{n['short']}-sum"
        (pkg / "__init__.py").write_text(_INIT_FUSION.format(what=what, **n))
        (pkg / "fusion.py").write_text(_FUSION.format(**n))
    (root / "pyproject.toml").write_text(_PYPROJECT.format(what=what, **n))
    (root / "tests" / "test_plugin.py").write_text(_TEST.format(**n))
    (root / "README.md").write_text(
        f"# {name}\n\nA zoo plugin: {what}.\n\n```bash\npip install -e .\n"
        f"zoo plugins check {n['ep']}\npytest tests\n```\n\nSee zoo's docs/plugins.md for the "
        f"hooks and contracts.\n")
    return root
