"""Audio input -> a mono float32 waveform at Whisper's 16 kHz."""
from __future__ import annotations

import os
from typing import Any

import numpy as np
import torch

from zoo.plugin import DataError

__all__ = ["load_audio", "SAMPLE_RATE"]

SAMPLE_RATE = 16000


def _read_file(path: Any) -> tuple[np.ndarray, int]:
    import soundfile as sf

    try:
        data, rate = sf.read(path, dtype="float32", always_2d=True)  # (N, C)
    except Exception as e:  # soundfile's errors vary by version: report one line
        if not os.path.exists(path):
            raise DataError(f"audio file not found: {path}") from None
        raise DataError(f"cannot decode audio {path}: {str(e).splitlines()[0]}") from None
    return data.mean(axis=1), int(rate)  # mono mixdown, (N,)


def _as_array(value: Any) -> np.ndarray:
    arr = value.detach().cpu().numpy() if isinstance(value, torch.Tensor) else np.asarray(value)
    if arr.dtype.kind not in "fiu" or arr.ndim not in (1, 2) or arr.size == 0:
        raise DataError(f"audio array must be a non-empty (N,) or (N, C) numeric array, got "
                        f"{arr.dtype} {arr.shape}")
    if arr.dtype.kind in "iu":
        arr = arr / float(np.iinfo(arr.dtype).max)
    if arr.ndim == 2:  # channels are the shorter axis
        arr = arr.mean(axis=1 if arr.shape[1] < arr.shape[0] else 0)
    return arr.astype(np.float32, copy=False)


def load_audio(value: Any) -> torch.Tensor:
    """A path, ``(array, rate)``, ``{"array", "sampling_rate"}`` or an array at 16 kHz ->
    (N,) float32 at 16 kHz (other rates resampled with torchaudio)."""
    if isinstance(value, (str, bytes)) or hasattr(value, "__fspath__"):
        arr, rate = _read_file(value)
    else:
        rate = SAMPLE_RATE
        if isinstance(value, dict):
            value, rate = value.get("array"), value.get("sampling_rate", SAMPLE_RATE)
        elif isinstance(value, (tuple, list)) and len(value) == 2 and np.isscalar(value[1]):
            value, rate = value
        arr = _as_array(value)
    if arr.size == 0:
        raise DataError("audio input is empty")
    if not np.isfinite(arr).all():
        raise DataError("audio input has NaN or infinite samples")
    if not 1000 <= int(rate) <= 384000:
        raise DataError(f"audio sample rate {rate} is out of range (1 kHz..384 kHz)")
    wav = torch.from_numpy(np.ascontiguousarray(arr, dtype=np.float32))
    if int(rate) != SAMPLE_RATE:
        import torchaudio.functional as AF

        wav = AF.resample(wav, int(rate), SAMPLE_RATE)
    return wav
