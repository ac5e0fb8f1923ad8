"""Whisper's audio encoder as a zoo encoder: 30 s windows of log-mel in, a sequence out.

Whisper encodes fixed 30 s windows (3000 mel frames -> 1500 positions of 20 ms). The log-mel
of a whole recording is computed once (``audio.log_mel``) and cut into consecutive 30 s
windows, the last one padded with zeros; their outputs are concatenated in time, so one
example stays one row:

- ``sequence`` (B, W * 1500, D) with W the most windows of an example in the batch;
- ``mask`` (B, W * 1500): True over every window that holds audio of that example (the whole
  window, its silent padding included: the decoder attends to all of it, as Whisper does);
- ``pooled`` (B, D): the mean over the positions that hold audio.

The preprocessed ``features`` laid end to end are the recording's whole log-mel, so the
``whisper-decoder`` head cuts 30 s windows at any offset from them and encodes those with
:meth:`WhisperAudioEncoder.encode_windows` (the seek of long-form transcription).
"""
from __future__ import annotations

import math
from typing import Any, Sequence

import torch
from torch import nn

from zoo.plugin import DataError, Encoder, EncoderOutput

from .audio import HOP, SAMPLE_RATE, load_audio, log_mel
from .modules import WhisperEncoderNet

__all__ = ["WhisperAudioEncoder", "build_encoder", "WINDOW_SAMPLES", "WINDOW_FRAMES", "MEL_FRAMES"]

WINDOW_SAMPLES = 30 * SAMPLE_RATE  # 480,000 samples
WINDOW_FRAMES = 1500  # encoder positions per window
MEL_FRAMES = WINDOW_SAMPLES // HOP  # 3000 log-mel frames (10 ms) per window
SAMPLES_PER_FRAME = WINDOW_SAMPLES // WINDOW_FRAMES  # 320 (20 ms)
MAX_WINDOWS = 240  # two hours in one input: a bound on the memory one example can ask for


class WhisperAudioEncoder(Encoder):
    modality = "audio"
    outputs = ("pooled", "sequence")

    def __init__(self, *, d_model: int = 384, layers: int = 4, heads: int = 6,
                 ffn_dim: int = 1536, n_mels: int = 80, window_batch: int = 4) -> None:
        super().__init__()
        self.dim = d_model
        self.n_mels = n_mels
        self.window_batch = window_batch
        # parameters named as transformers' WhisperForConditionalGeneration: model.encoder.*
        self.model = nn.Module()
        self.model.encoder = WhisperEncoderNet(d_model, layers, heads, ffn_dim, n_mels,
                                               WINDOW_FRAMES)

    def preprocess(self, values: Sequence[Any]) -> dict[str, torch.Tensor]:
        chunks, windows, samples = [], [], []
        for v in values:
            wav = load_audio(v)
            n = max(1, math.ceil(wav.numel() / WINDOW_SAMPLES))
            if n > MAX_WINDOWS:
                raise DataError(f"audio of {wav.numel() / SAMPLE_RATE:.0f} s is longer than "
                                f"{MAX_WINDOWS * 30 // 60} minutes; split it first")
            mel = log_mel(wav, self.n_mels)  # (n_mels, N // 160)
            mel = torch.nn.functional.pad(mel, (0, n * MEL_FRAMES - mel.shape[1]))
            chunks.append(mel.reshape(self.n_mels, n, MEL_FRAMES).transpose(0, 1))
            windows.append(n)
            samples.append(wav.numel())
        return {"features": torch.cat(chunks),  # (sum of windows, n_mels, 3000)
                "windows": torch.tensor(windows, dtype=torch.long),
                "samples": torch.tensor(samples, dtype=torch.long)}

    def encode_windows(self, features: torch.Tensor) -> torch.Tensor:
        """(N, n_mels, 3000) log-mel windows -> (N, 1500, D), ``window_batch`` at a time."""
        k = max(1, int(self.window_batch))
        return torch.cat([self.model.encoder(features[i:i + k])
                          for i in range(0, features.shape[0], k)])

    def forward(self, features: torch.Tensor, windows: torch.Tensor,
                samples: torch.Tensor) -> EncoderOutput:
        enc = self.encode_windows(features)  # (sum W, 1500, D)
        b, d = windows.numel(), enc.shape[-1]
        t = int(windows.max()) * WINDOW_FRAMES
        seq = enc.new_zeros(b, t, d)  # (B, W_max * 1500, D)
        start = 0
        for i, n in enumerate(windows.tolist()):
            seq[i, :n * WINDOW_FRAMES] = enc[start:start + n].reshape(n * WINDOW_FRAMES, d)
            start += n
        pos = torch.arange(t, device=seq.device)[None]  # (1, T)
        mask = pos < (windows * WINDOW_FRAMES)[:, None]  # (B, T): whole windows
        last = samples - (windows - 1) * WINDOW_SAMPLES  # samples in each last window
        real = (windows - 1) * WINDOW_FRAMES + (last + SAMPLES_PER_FRAME - 1) // SAMPLES_PER_FRAME
        w = (pos < real[:, None]).unsqueeze(-1).to(seq.dtype)  # (B, T, 1): frames with audio
        pooled = (seq * w).sum(1) / w.sum(1).clamp(min=1)  # (B, D)
        return EncoderOutput(pooled=pooled, sequence=seq, mask=mask)

    def preprocessor_config(self) -> dict[str, Any]:
        return {"sample_rate": SAMPLE_RATE, "mono": True, "n_mels": self.n_mels,
                "window_seconds": 30, "features": "Whisper log-mel (STFT 400 / hop 160, Slaney mel, "
                            "per-recording floor), windows zero-padded"}


def build_encoder(*, pretrained: bool = False, weights: str | None = None,
                  assets_dir: str | None = None, **kwargs: Any) -> WhisperAudioEncoder:
    enc = WhisperAudioEncoder(**kwargs)
    if pretrained:
        from .cache import load_encoder

        if not weights:
            from zoo.plugin import ZooError

            raise ZooError("a pretrained Whisper encoder needs a weights tag")
        load_encoder(enc, weights)  # converted from the model.bin once, then cached
    return enc
