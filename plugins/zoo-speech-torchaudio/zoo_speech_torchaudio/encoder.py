"""Log-mel front end + convolutional subsampling + torchaudio Conformer."""
from __future__ import annotations

from typing import Any, Sequence

import torch
from torch import nn

from zoo.plugin import Encoder, EncoderOutput, sequence_output

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


class SpecAugment(nn.Module):
    """SpecAugment (Park et al., 2019) without time warping, in training mode only: per
    utterance, ``freq_masks`` bands of up to ``freq_width`` mel bins and ``time_masks``
    spans of up to ``time_ratio`` of its frames are zeroed (the mean, after normalisation)."""

    def __init__(self, freq_masks: int = 2, freq_width: int = 27, time_masks: int = 2,
                 time_ratio: float = 0.05) -> None:
        super().__init__()
        self.freq_masks, self.freq_width = freq_masks, freq_width
        self.time_masks, self.time_ratio = time_masks, time_ratio

    @staticmethod
    def _spans(n: int, limit: torch.Tensor, size: torch.Tensor, device: torch.device
               ) -> torch.Tensor:
        """(B, n) boolean mask: one random span of width < ``limit`` per example, in
        [0, size)."""
        b = limit.shape[0]
        width = (torch.rand(b, device=device) * limit).long()  # (B,)
        start = (torch.rand(b, device=device) * (size - width).clamp(min=1)).long()  # (B,)
        pos = torch.arange(n, device=device)[None]  # (1, n)
        return (pos >= start[:, None]) & (pos < (start + width)[:, None])

    def forward(self, x: torch.Tensor, frames: torch.Tensor) -> torch.Tensor:
        if not self.training:
            return x
        b, t, f = x.shape  # (B, F, n_mels)
        keep = torch.ones(b, t, f, dtype=torch.bool, device=x.device)
        mels = torch.full((b,), f, device=x.device)
        for _ in range(self.freq_masks):
            band = self._spans(f, torch.full((b,), self.freq_width + 1, device=x.device),
                               mels, x.device)  # (B, n_mels)
            keep &= ~band[:, None, :]
        for _ in range(self.time_masks):
            span = self._spans(t, frames * self.time_ratio + 1, frames, x.device)  # (B, F)
            keep &= ~span[:, :, None]
        return x * keep


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
                 dropout: float = 0.1, spec_augment: bool = False) -> None:
        super().__init__()
        from torchaudio.models import Conformer

        self.kwargs = dict(sample_rate=sample_rate, n_mels=n_mels, win_length=win_length,
                           hop_length=hop_length, dim=dim, num_layers=num_layers,
                           num_heads=num_heads, ffn_dim=ffn_dim, kernel_size=kernel_size,
                           dropout=dropout, spec_augment=spec_augment)
        self.sample_rate = sample_rate
        self.dim = dim
        self.frontend = LogMel(sample_rate, n_mels, win_length, hop_length)
        self.augment = SpecAugment() if spec_augment else None
        self.subsample = ConvSubsample(n_mels, dim)
        self.conformer = Conformer(input_dim=dim, num_heads=num_heads, ffn_dim=ffn_dim,
                                   num_layers=num_layers,
                                   depthwise_conv_kernel_size=kernel_size, dropout=dropout)

    def preprocess(self, values: Sequence[Any]) -> dict[str, torch.Tensor]:
        return _pad_batch([load_audio(v, self.sample_rate) for v in values])

    def forward(self, waveform: torch.Tensor, lengths: torch.Tensor) -> EncoderOutput:
        feats, frames = self.frontend(waveform, lengths)  # (B, F, n_mels)
        if self.augment is not None:
            feats = self.augment(feats, frames)
        x, out_lengths = self.subsample(feats, frames)  # (B, T, dim)
        x, out_lengths = self.conformer(x, out_lengths)  # (B, T, dim)
        return sequence_output(x, out_lengths)

    def config(self) -> dict[str, Any]:
        return dict(self.kwargs)

    def preprocessor_config(self) -> dict[str, Any]:
        k = self.kwargs
        return {"sample_rate": k["sample_rate"], "n_mels": k["n_mels"],
                "win_length": k["win_length"], "hop_length": k["hop_length"], "mono": True}


def build_conformer(*, pretrained: bool = False, weights: str | None = None,
                    assets_dir: str | None = None, **kwargs: Any) -> ConformerEncoder:
    _from_scratch(pretrained, "no pretrained conformer weights install from pip; train one "
                              "with `zoo train` (pretrained=False)")
    return ConformerEncoder(**kwargs)


def _from_scratch(pretrained: bool, message: str) -> None:
    """These encoders have no weights to load: asking for them is an error that says why."""
    if pretrained:
        from zoo.plugin import ZooError

        raise ZooError(message)


def _pad_batch(wavs: list[torch.Tensor]) -> dict[str, torch.Tensor]:
    lengths = torch.tensor([w.numel() for w in wavs], dtype=torch.long)
    batch = torch.zeros(len(wavs), int(lengths.max()))  # (B, N), zero-padded
    for i, w in enumerate(wavs):
        batch[i, : w.numel()] = w
    return {"waveform": batch, "lengths": lengths}


class Wav2Vec2Encoder(Encoder):
    """torchaudio's wav2vec 2.0 architecture: conv feature extractor on the raw waveform,
    then a transformer. Gives the last layer's sequence and its masked mean."""

    modality = "audio"
    outputs = ("pooled", "sequence")

    def __init__(self, *, sample_rate: int = 16000, encoder_embed_dim: int = 768,
                 encoder_num_layers: int = 12, encoder_num_heads: int = 12,
                 encoder_ff_interm_features: int = 3072, conv_channels: int = 512,
                 dropout: float = 0.1) -> None:
        super().__init__()
        from torchaudio.models import wav2vec2_model

        self.kwargs = dict(sample_rate=sample_rate, encoder_embed_dim=encoder_embed_dim,
                           encoder_num_layers=encoder_num_layers,
                           encoder_num_heads=encoder_num_heads,
                           encoder_ff_interm_features=encoder_ff_interm_features,
                           conv_channels=conv_channels, dropout=dropout)
        self.sample_rate = sample_rate
        self.dim = encoder_embed_dim
        # wav2vec 2.0's extractor: 7 convs, 320x downsampling (20 ms frames at 16 kHz)
        convs = [(conv_channels, 10, 5)] + [(conv_channels, 3, 2)] * 4 + [(conv_channels, 2, 2)] * 2
        self.model = wav2vec2_model(
            extractor_mode="group_norm", extractor_conv_layer_config=convs,
            extractor_conv_bias=False, encoder_embed_dim=encoder_embed_dim,
            encoder_projection_dropout=dropout, encoder_pos_conv_kernel=128,
            encoder_pos_conv_groups=16, encoder_num_layers=encoder_num_layers,
            encoder_num_heads=encoder_num_heads, encoder_attention_dropout=dropout,
            encoder_ff_interm_features=encoder_ff_interm_features,
            encoder_ff_interm_dropout=dropout, encoder_dropout=dropout,
            encoder_layer_norm_first=False, encoder_layer_drop=0.0, aux_num_out=None)

    def preprocess(self, values: Sequence[Any]) -> dict[str, torch.Tensor]:
        wavs = []
        for v in values:
            w = load_audio(v, self.sample_rate)
            wavs.append((w - w.mean()) / w.std().clamp(min=1e-5))  # zero-mean, unit-variance
        return _pad_batch(wavs)

    def forward(self, waveform: torch.Tensor, lengths: torch.Tensor) -> EncoderOutput:
        x, out_lengths = self.model(waveform, lengths)  # (B, T, D), (B,)
        return sequence_output(x, out_lengths)

    def config(self) -> dict[str, Any]:
        return dict(self.kwargs)

    def preprocessor_config(self) -> dict[str, Any]:
        return {"sample_rate": self.sample_rate, "mono": True, "normalize": "per-utterance"}


def build_wav2vec2(*, pretrained: bool = False, weights: str | None = None,
                   assets_dir: str | None = None, **kwargs: Any) -> Wav2Vec2Encoder:
    _from_scratch(pretrained, "no torchaudio wav2vec2 weights install from pip; use "
                              "wav2vec2-base-hf (Hub, online) or train from scratch")
    return Wav2Vec2Encoder(**kwargs)
