"""Audio input: read by zoo's own ``read_audio`` (files through soundfile, arrays with their
rate; mono), resampled here to the encoder's rate."""
from __future__ import annotations

from typing import Any

import torch

from zoo.plugin import read_audio


def load_audio(value: Any, sample_rate: int) -> torch.Tensor:
    """A path, ``(array, rate)``, ``{"array", "sampling_rate"}`` or an array at the model's
    rate -> a mono float32 waveform (N,) at ``sample_rate``."""
    arr, rate = read_audio(value, sample_rate)
    wav = torch.as_tensor(arr, dtype=torch.float32)
    if int(rate) != sample_rate:
        import torchaudio.functional as AF

        wav = AF.resample(wav, int(rate), sample_rate)
    return wav
