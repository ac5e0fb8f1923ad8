"""``ge2e-speaker``: the GE2E speaker encoder (Wan et al. 2018) as resemblyzer 0.1.4 ships
it, on zoo's audio modality.

A 3-layer LSTM (40 -> 256) reads each 1.6 s partial utterance of mel frames; its last
hidden state goes through Linear(256, 256) and ReLU and is L2-normalised. An utterance's
embedding is the L2-normalised mean of its partials' embeddings (``pooled``, (B, 256)).
The pretrained weights are resemblyzer's ``pretrained.pt``, read with
``torch.load(weights_only=True)`` from its ``model_state``.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from zoo.plugin import Encoder, EncoderOutput

from .audio import HOP, load_wave, mel_frames, normalize_volume, partial_slices, \
    trim_long_silences

__all__ = ["GE2EEncoder", "build", "read_checkpoint"]


class GE2EEncoder(Encoder):
    modality = "audio"
    outputs = ("pooled",)

    def __init__(self, n_mels: int = 40, hidden: int = 256, layers: int = 3, dim: int = 256,
                 partial_frames: int = 160, rate: float = 1.3, min_coverage: float = 0.75,
                 target_dbfs: float | None = -30.0, trim_silences: bool = True) -> None:
        super().__init__()
        self.dim = int(dim)
        self.n_mels, self.partial_frames = int(n_mels), int(partial_frames)
        self.rate, self.min_coverage = float(rate), float(min_coverage)
        self.target_dbfs = None if target_dbfs is None else float(target_dbfs)
        self.trim_silences = bool(trim_silences)
        partial_slices(HOP * partial_frames, partial_frames, rate, min_coverage)  # checks
        self.lstm = nn.LSTM(n_mels, hidden, layers, batch_first=True)
        self.linear = nn.Linear(hidden, dim)

    def preprocessor_config(self) -> dict[str, Any]:
        return {"sample_rate": 16000, "n_fft": 400, "hop_length": HOP, "n_mels": self.n_mels,
                "mel": "power 2, slaney scale and norm, centred, zero padded",
                "partial_frames": self.partial_frames, "rate": self.rate,
                "min_coverage": self.min_coverage, "target_dbfs": self.target_dbfs,
                "trim_silences": "webrtcvad mode 3, 30 ms" if self.trim_silences else None}

    def prepare_wave(self, value: Any) -> np.ndarray:
        """An audio value -> the 16 kHz waveform the encoder reads (louder, pauses cut)."""
        wave = load_wave(value)
        if self.target_dbfs is not None:
            wave = normalize_volume(wave, self.target_dbfs)
        if self.trim_silences:
            wave = trim_long_silences(wave)
        return wave

    def partials(self, wave: np.ndarray) -> torch.Tensor:
        """(N,) prepared samples -> (P, partial_frames, n_mels) partial utterances."""
        slices = partial_slices(len(wave), self.partial_frames, self.rate, self.min_coverage)
        need = slices[-1][1] * HOP
        if need >= len(wave):  # cover the last partial with zeros
            wave = np.pad(wave, (0, need - len(wave)))
        mel = mel_frames(wave, self.n_mels)  # (frames, n_mels)
        return torch.stack([mel[a:b] for a, b in slices])

    def preprocess(self, values: Sequence[Any]) -> dict[str, torch.Tensor]:
        parts = [self.partials(self.prepare_wave(v)) for v in values]
        return {"mels": torch.cat(parts),  # (P, frames, n_mels), every utterance's partials
                "counts": torch.tensor([len(p) for p in parts], dtype=torch.long)}  # (B,)

    def embed_partials(self, mels: torch.Tensor) -> torch.Tensor:
        """(P, frames, n_mels) -> (P, dim) L2-normalised partial embeddings."""
        _, (hidden, _) = self.lstm(mels)  # hidden: (layers, P, hidden)
        return F.normalize(F.relu(self.linear(hidden[-1])), dim=1)

    def forward(self, mels: torch.Tensor, counts: torch.Tensor) -> EncoderOutput:
        partial = self.embed_partials(mels)  # (P, dim)
        owner = torch.repeat_interleave(torch.arange(len(counts), device=mels.device),
                                        counts.to(mels.device))  # (P,)
        total = partial.new_zeros(len(counts), self.dim).index_add(0, owner, partial)
        mean = total / counts.to(partial.dtype).clamp(min=1)[:, None]  # (B, dim)
        return EncoderOutput(pooled=F.normalize(mean, dim=1))


def read_checkpoint(tag: str) -> dict[str, torch.Tensor]:
    """The encoder's tensors from registered weights ``tag``: resemblyzer's training
    checkpoint (``{"step", "model_state", "optimizer_state"}``) read with
    ``weights_only=True``, or a plain state dict."""
    from zoo.plugin import ZooError, weights_path

    path = weights_path(tag)
    try:
        ckpt = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as e:
        raise ZooError(f"cannot read GE2E checkpoint {path}: {type(e).__name__}: {e}") from None
    state = ckpt.get("model_state", ckpt) if isinstance(ckpt, dict) else None
    if not isinstance(state, dict):
        raise ZooError(f"{path} holds no state dict (expected resemblyzer's pretrained.pt)")
    return {k: v for k, v in state.items() if k.startswith(("lstm.", "linear."))}


def build(*, pretrained: bool = False, weights: str | None = None,
          assets_dir: str | None = None, **kwargs: Any) -> GE2EEncoder:
    enc = GE2EEncoder(**kwargs)
    if pretrained and weights:
        state = read_checkpoint(weights)
        missing, unexpected = enc.load_state_dict(state, strict=False)
        if missing or unexpected:
            from zoo.plugin import ZooError

            raise ZooError(f"weights {weights!r} do not fit this GE2E encoder ({kwargs}): "
                           f"missing {missing[:4]}, unexpected {unexpected[:4]}")
    enc.eval()
    return enc
