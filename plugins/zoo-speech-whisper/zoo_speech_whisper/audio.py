"""Audio input -> a mono float32 waveform at Whisper's 16 kHz (read by zoo's own
``read_audio``, resampled here)."""
from __future__ import annotations

from typing import Any

import numpy as np
import torch

from zoo.plugin import DataError, read_audio

__all__ = ["load_audio", "SAMPLE_RATE"]

SAMPLE_RATE = 16000


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
