"""Log-mel front end + convolutional subsampling + torchaudio Conformer."""
from __future__ import annotations

from typing import Any, Sequence

import torch
from torch import nn

from zoo.encoders import Encoder, EncoderOutput

from .audio import load_audio


class LogMel(nn.Module):
    """Waveform (B, N) -> log-mel (B, F, n_mels), per-utterance normalised over valid frames."""

    def __init__(self, sample_rate: int, n_mels: int, win_length: int, hop_length: int) -> None:
        super().__init__()
        import torchaudio

        self.hop_length = hop_length
        self.mel = torchaudio.transforms.MelSpectrogram(
            sample_rate=sample_rate, n_fft=win_length, win_length=win_length,
            hop_length=hop_length, n_mels=n_mels)

    def forward(self, wav: torch.Tensor, lengths: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor]:
        x = (self.mel(wav) + 1e-6).log().transpose(1, 2)  # (B, F, n_mels)
        frames = lengths // self.hop_length + 1  # (B,) valid frames (center=True)
        mask = torch.arange(x.shape[1], device=x.device)[None] < frames[:, None]  # (B, F)
        w = mask.unsqueeze(-1).to(x.dtype)
        n = w.sum(1, keepdim=True).clamp(min=1)
        mean = (x * w).sum(1, keepdim=True) / n  # (B, 1, n_mels)
        std = (((x - mean) ** 2 * w).sum(1, keepdim=True) / n).sqrt().clamp(min=1e-5)
        return (x - mean) / std * w, frames


class ConvSubsample(nn.Module):
    """Two stride-2 convolutions: (B, F, n_mels) -> (B, F/4, dim)."""

    def __init__(self, n_mels: int, dim: int) -> None:
        super().__init__()
        self.conv = nn.Sequential(nn.Conv2d(1, dim, 3, 2, 1), nn.GELU(),
                                  nn.Conv2d(dim, dim, 3, 2, 1), nn.GELU())
        self.proj = nn.Linear(dim * ((n_mels + 3) // 4), dim)

    def forward(self, x: torch.Tensor, frames: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.conv(x.unsqueeze(1))  # (B, dim, F/4, n_mels/4)
        b, c, t, f = x.shape
        x = self.proj(x.permute(0, 2, 1, 3).reshape(b, t, c * f))  # (B, F/4, dim)
        lengths = ((frames - 1) // 2 + 1 - 1) // 2 + 1  # each conv: floor((L-1)/2)+1
        return x, lengths.clamp(max=t)


class ConformerEncoder(Encoder):
    modality = "audio"
    outputs = ("pooled", "sequence")

    def __init__(self, *, sample_rate: int = 16000, n_mels: int = 80, win_length: int = 400,
                 hop_length: int = 160, dim: int = 144, num_layers: int = 6,
                 num_heads: int = 4, ffn_dim: int = 576, kernel_size: int = 31,
                 dropout: float = 0.1) -> None:
        super().__init__()
        from torchaudio.models import Conformer

        self.kwargs = dict(sample_rate=sample_rate, n_mels=n_mels, win_length=win_length,
                           hop_length=hop_length, dim=dim, num_layers=num_layers,
                           num_heads=num_heads, ffn_dim=ffn_dim, kernel_size=kernel_size,
                           dropout=dropout)
        self.sample_rate = sample_rate
        self.dim = dim
        self.frontend = LogMel(sample_rate, n_mels, win_length, hop_length)
        self.subsample = ConvSubsample(n_mels, dim)
        self.conformer = Conformer(input_dim=dim, num_heads=num_heads, ffn_dim=ffn_dim,
                                   num_layers=num_layers,
                                   depthwise_conv_kernel_size=kernel_size, dropout=dropout)

    def preprocess(self, values: Sequence[Any]) -> dict[str, torch.Tensor]:
        wavs = [load_audio(v, self.sample_rate) for v in values]
        lengths = torch.tensor([w.numel() for w in wavs], dtype=torch.long)
        batch = torch.zeros(len(wavs), int(lengths.max()))  # (B, N), zero-padded
        for i, w in enumerate(wavs):
            batch[i, : w.numel()] = w
        return {"waveform": batch, "lengths": lengths}

    def forward(self, waveform: torch.Tensor, lengths: torch.Tensor) -> EncoderOutput:
        feats, frames = self.frontend(waveform, lengths)  # (B, F, n_mels)
        x, out_lengths = self.subsample(feats, frames)  # (B, T, dim)
        x, out_lengths = self.conformer(x, out_lengths)  # (B, T, dim)
        mask = torch.arange(x.shape[1], device=x.device)[None] < out_lengths[:, None]  # (B, T)
        w = mask.unsqueeze(-1).to(x.dtype)
        pooled = (x * w).sum(1) / w.sum(1).clamp(min=1)  # (B, dim)
        return EncoderOutput(pooled=pooled, sequence=x, mask=mask)

    def config(self) -> dict[str, Any]:
        return dict(self.kwargs)

    def preprocessor_config(self) -> dict[str, Any]:
        k = self.kwargs
        return {"sample_rate": k["sample_rate"], "n_mels": k["n_mels"],
                "win_length": k["win_length"], "hop_length": k["hop_length"], "mono": True}


def build_conformer(*, pretrained: bool = False, weights: str | None = None,
                    assets_dir: str | None = None, **kwargs: Any) -> ConformerEncoder:
    if pretrained:
        from zoo.errors import ZooError

        raise ZooError("no pretrained conformer weights install from pip; train one with "
                       "`zoo train` (pretrained=False)")
    return ConformerEncoder(**kwargs)
