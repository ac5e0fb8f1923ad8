"""Audio input -> a mono float32 waveform at Whisper's 16 kHz (read by zoo's own
``read_audio``, resampled here), and Whisper's log-mel spectrogram of a whole recording.

The log-mel is computed as openai-whisper and faster-whisper compute it: a 400-point STFT
every 160 samples (10 ms), Slaney mel filters, log10, floored 8 below the recording's
maximum and scaled to about [-1, 1]. It is computed once per recording, so every 30 s
window cut from it (at any offset) shares one normalisation; a window that runs past the
end is padded with zeros in log-mel space, as both of them pad.
"""
from __future__ import annotations

from functools import lru_cache
from typing import Any

import numpy as np
import torch

from zoo.plugin import DataError, read_audio

__all__ = ["load_audio", "log_mel", "SAMPLE_RATE", "HOP"]

SAMPLE_RATE = 16000
HOP = 160  # samples per mel frame: 10 ms
_N_FFT = 400


def load_audio(value: Any) -> torch.Tensor:
    """A path, ``(array, rate)``, ``{"array", "sampling_rate"}`` or an array at 16 kHz ->
    (N,) float32 at 16 kHz (other rates resampled with torchaudio)."""
    arr, rate = read_audio(value, SAMPLE_RATE)
    if not np.isfinite(arr).all():
        raise DataError("audio input has NaN or infinite samples")
    if not 1000 <= int(rate) <= 384000:
        raise DataError(f"audio sample rate {rate} is out of range (1 kHz..384 kHz)")
    wav = torch.from_numpy(np.ascontiguousarray(arr, dtype=np.float32))
    if int(rate) != SAMPLE_RATE:
        import torchaudio.functional as AF

        wav = AF.resample(wav, int(rate), SAMPLE_RATE)
    return wav


@lru_cache(maxsize=4)
def _mel_filters(n_mels: int) -> torch.Tensor:
    import torchaudio.functional as AF

    fb = AF.melscale_fbanks(_N_FFT // 2 + 1, 0.0, SAMPLE_RATE / 2, n_mels, SAMPLE_RATE,
                            norm="slaney", mel_scale="slaney")  # (201, n_mels)
    return fb.T.contiguous()  # (n_mels, 201)


def log_mel(wav: torch.Tensor, n_mels: int = 80) -> torch.Tensor:
    """(N,) samples at 16 kHz -> (n_mels, N // 160) log-mel frames, one every 10 ms."""
    frames = wav.numel() // HOP
    if frames == 0:  # under 10 ms: nothing to transcribe
        return torch.zeros(n_mels, 0)
    x = torch.nn.functional.pad(wav.float(), (0, HOP))  # as faster-whisper pads
    spec = torch.stft(x, _N_FFT, HOP, window=torch.hann_window(_N_FFT),
                      return_complex=True)  # (201, frames + 2)
    power = spec[:, :-1].abs() ** 2  # (201, frames + 1)
    mel = (_mel_filters(n_mels) @ power).clamp(min=1e-10).log10()  # (n_mels, frames + 1)
    mel = torch.maximum(mel, mel.max() - 8.0)  # the floor over all, as faster-whisper
    return ((mel + 4.0) / 4.0)[:, :frames]  # (n_mels, frames)
