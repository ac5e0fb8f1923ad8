"""Audio input: files through soundfile, arrays with their rate; mono, resampled."""
from __future__ import annotations

from typing import Any

import numpy as np
import torch

from zoo.plugin import DataError


def load_audio(value: Any, sample_rate: int) -> torch.Tensor:
    """A path, ``(array, rate)``, ``{"array", "sampling_rate"}`` or an array at the model's
    rate -> a mono float32 waveform (N,) at ``sample_rate``."""
    import soundfile as sf

    rate = sample_rate
    if isinstance(value, (str, bytes)) or hasattr(value, "__fspath__"):
        try:
            data, rate = sf.read(value, dtype="float32", always_2d=True)  # (N, C)
        except FileNotFoundError:
            raise DataError(f"audio file not found: {value}") from None
        except (sf.LibsndfileError, RuntimeError, OSError) as e:
            if not __import__("os").path.exists(value):
                raise DataError(f"audio file not found: {value}") from None
            raise DataError(f"cannot decode audio {value}: {e}") from None
        wav = torch.from_numpy(data.mean(axis=1))  # mono mixdown, (N,)
    else:
        if isinstance(value, dict):
            value, rate = value.get("array"), value.get("sampling_rate", sample_rate)
        elif isinstance(value, (tuple, list)) and len(value) == 2 and np.isscalar(value[1]):
            value, rate = value
        arr = value.detach().cpu().numpy() if isinstance(value, torch.Tensor) else np.asarray(value)
        if arr.dtype.kind not in "fiu" or arr.ndim not in (1, 2) or arr.size == 0:
            raise DataError(f"audio array must be a non-empty (N,) or (N, C) numeric array, "
                            f"got {arr.dtype} {arr.shape}")
        if arr.dtype.kind in "iu":
            arr = arr / float(np.iinfo(arr.dtype).max)
        if arr.ndim == 2:
            arr = arr.mean(axis=1 if arr.shape[1] < arr.shape[0] else 0)
        wav = torch.as_tensor(arr, dtype=torch.float32)
    if wav.numel() == 0:
        raise DataError(f"audio input is empty: {value if isinstance(value, str) else ''}")
    if int(rate) != sample_rate:
        import torchaudio.functional as AF

        wav = AF.resample(wav, int(rate), sample_rate)
    return wav
