"""A tiny self-supervised objective: a bag of character counts with some characters hidden
must predict the hidden ones' counts (a masked-prediction toy on any text encoder)."""
import json

import torch
from safetensors.torch import save_file

from zoo.plugin import Objective, ZooError

ALPHABET = "abcdefghijklmnopqrstuvwxyz "


class CharDenoise(Objective):
    metric = "loss"
    tags = ("denoising",)

    def __init__(self, encoder, seed, width, crash_after=None):
        super().__init__()
        self.crash_after, self.calls = crash_after, 0  # a run killed mid-way, for tests
        self.encoder_name = encoder["name"]
        self.net = torch.nn.Sequential(torch.nn.Linear(len(ALPHABET), width), torch.nn.ReLU(),
                                       torch.nn.Linear(width, len(ALPHABET)))
        self.generator = torch.Generator().manual_seed(seed)
        self.notes = [f"a toy: {encoder['name']} is not used, only its name"]

    def encode(self, values):
        return [torch.tensor([v.lower().count(c) for c in ALPHABET], dtype=torch.float32)
                for v in values]

    def collate(self, items, seed=None):
        g = self.generator if seed is None else torch.Generator().manual_seed(seed)
        counts = torch.stack(list(items))  # (B, 27)
        hide = torch.rand(counts.shape, generator=g) < 0.3  # (B, 27)
        return {"inputs": counts.masked_fill(hide, 0.0), "targets": counts, "hide": hide}

    def loss(self, batch):
        if self.training and self.crash_after is not None:
            self.calls += 1
            if self.calls > self.crash_after:
                raise SystemExit(f"crashed after {self.crash_after} steps")
        pred = self.net(batch["inputs"])
        err = (pred - batch["targets"]) ** 2
        return (err * batch["hide"]).sum() / batch["hide"].sum().clamp(min=1)

    def settings(self):
        return {"hidden_share": 0.3, "width": self.net[0].out_features}

    def base(self):
        return {"weights": None, "sha256": None, "base_model": None}

    def save(self, out, record):
        save_file({k: v.contiguous() for k, v in self.net.state_dict().items()},
                  str(out / "char_denoise.safetensors"))
        (out / "config.json").write_text(json.dumps({"alphabet": ALPHABET}))


def build(*, encoder, seed=0, width=16, crash_after=None):
    if not isinstance(width, int) or width < 1:
        raise ZooError(f"width must be a positive whole number, not {width!r}")
    return CharDenoise(encoder, seed, width, crash_after)
