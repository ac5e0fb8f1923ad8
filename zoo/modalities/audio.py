"""Audio: a path, ``(array, rate)``, ``{"array", "sampling_rate"}`` or an array at the
model's rate. Data files hold paths; requests carry base64 WAV / FLAC / OGG, multipart
parts or ``audio/*`` bodies, whose rate, length and channels are read from the header
before any sample is decoded."""
from __future__ import annotations

import io
from typing import Any, Sequence

from zoo.plugin import DataError, Modality, RequestError

__all__ = ["Audio", "read_audio"]


def read_audio(value: Any, rate: int | None = None) -> tuple[Any, int]:
    """A path, ``(array, rate)``, ``{"array", "sampling_rate"}`` or an array (at ``rate``)
    -> ``(wave, rate)``: a mono float32 numpy array (N,) and its sample rate (not
    resampled: the encoder resamples to what it needs). A one-line DataError otherwise."""
    import numpy as np

    if isinstance(value, (str, bytes)) or hasattr(value, "__fspath__") or hasattr(value, "read"):
        import soundfile as sf

        try:
            data, sr = sf.read(value, dtype="float32", always_2d=True)  # (N, C)
        except FileNotFoundError:
            raise DataError(f"audio file not found: {value}") from None
        except Exception as e:  # soundfile raises several types for bad files
            import os

            if isinstance(value, (str, bytes)) and not os.path.exists(value):
                raise DataError(f"audio file not found: {value}") from None
            raise DataError(f"cannot decode audio {value}: {e}") from None
        wave = data.mean(axis=1)  # mono mixdown, (N,)
    else:
        sr = rate
        if isinstance(value, dict):
            value, sr = value.get("array"), value.get("sampling_rate", rate)
        elif isinstance(value, (tuple, list)) and len(value) == 2 and np.isscalar(value[1]):
            value, sr = value
        if hasattr(value, "detach"):
            value = value.detach().cpu().numpy()
        arr = np.asarray(value)
        if arr.dtype.kind not in "fiu" or arr.ndim not in (1, 2) or arr.size == 0:
            raise DataError(f"audio array must be a non-empty (N,) or (N, C) numeric array, "
                            f"got {arr.dtype} {arr.shape}")
        if arr.dtype.kind in "iu":
            arr = arr / float(np.iinfo(arr.dtype).max)
        if arr.ndim == 2:
            arr = arr.mean(axis=1 if arr.shape[1] < arr.shape[0] else 0)
        wave = arr.astype(np.float32)
        if sr is None:
            raise DataError("an audio array needs its sample rate: pass (array, rate)")
    if wave.size == 0:
        raise DataError(f"audio input is empty: {value if isinstance(value, str) else ''}")
    if not np.isfinite(wave).all():
        raise DataError(f"audio {value if isinstance(value, str) else 'input'} holds NaN or "
                        f"infinite samples")
    return wave, int(sr)


class Audio(Modality):
    file_based = True
    suffixes = (".wav", ".flac", ".ogg", ".mp3", ".opus", ".m4a", ".aac", ".aiff", ".aif")
    media_types = ("audio/",)
    cost = 2
    group_by_length = True
    variable_length = True
    limits = {"max_audio_seconds": 120.0, "min_sample_rate": 4000,
              "max_sample_rate": 192000, "max_audio_channels": 8}
    card_example = '"audio": "speech.wav"'

    def check(self, value: Any) -> str | None:
        if not isinstance(value, str) and not hasattr(value, "__fspath__"):
            return None
        missing = super().check(value)
        if missing:
            return missing
        import soundfile as sf

        try:
            if sf.info(str(value)).frames == 0:
                return f"audio file is empty: {value}"
        except Exception as e:
            return f"cannot decode audio {value}: {type(e).__name__}"
        return None

    def length(self, value: Any) -> float:
        if isinstance(value, str) or hasattr(value, "__fspath__"):
            import soundfile as sf

            info = sf.info(str(value))
            return info.frames / info.samplerate
        if isinstance(value, (tuple, list)) and len(value) == 2:
            return float(len(value[0])) / float(value[1] or 1)
        return float(len(value)) if hasattr(value, "__len__") else 0.0

    def describe(self, values: Sequence[Any]) -> dict[str, Any] | None:
        import soundfile as sf

        secs, rates = [], {}
        for v in values:
            if isinstance(v, str):
                info = sf.info(v)
                secs.append(info.frames / info.samplerate)
                rates[str(info.samplerate)] = rates.get(str(info.samplerate), 0) + 1
        if not secs:
            return None
        secs.sort()
        return {"n": len(secs), "min_s": round(secs[0], 3), "median_s":
                round(secs[len(secs) // 2], 3), "max_s": round(secs[-1], 3),
                "sample_rates": rates}

    def from_bytes(self, data: bytes, where: str, limits: Any) -> Any:
        import soundfile as sf

        unreadable = f"{where} is not a readable audio file (WAV, FLAC or OGG)"
        try:
            info = sf.info(io.BytesIO(data))  # the header: rate, length, channels
        except Exception:
            raise RequestError(unreadable) from None
        if not limits.min_sample_rate <= info.samplerate <= limits.max_sample_rate:
            raise RequestError(f"{where} has a sample rate of {info.samplerate} Hz; accepted: "
                               f"{limits.min_sample_rate:g}-{limits.max_sample_rate:g} Hz", 422)
        if info.channels > limits.max_audio_channels:
            raise RequestError(f"{where} has {info.channels} channels; the limit is "
                               f"{limits.max_audio_channels:g} (ZOO_SERVE_MAX_AUDIO_CHANNELS)",
                               413)
        seconds = info.frames / info.samplerate
        if seconds > limits.max_audio_seconds:
            raise RequestError(f"{where} is {seconds:.1f} s; the limit is "
                               f"{limits.max_audio_seconds:g} s (ZOO_SERVE_MAX_AUDIO_SECONDS, or "
                               f"zoo serve --limit max_audio_seconds=...)", 413)
        limits.charge(info.frames * info.channels * 4, where)  # float32 samples
        try:
            wav, rate = sf.read(io.BytesIO(data), dtype="float32", always_2d=True)
        except Exception:
            raise RequestError(unreadable) from None
        if not len(wav):
            raise RequestError(f"{where} has no samples")
        import numpy as np

        mono = wav.mean(axis=1)
        if not np.isfinite(mono).all():
            raise RequestError(f"{where} holds NaN or infinite samples; send finite audio", 422)
        return (mono, rate)

    def to_request(self, value: Any) -> Any:
        """A path, or ``(array, rate)``, as base64 of an audio file (WAV for in-memory)."""
        if isinstance(value, str) or hasattr(value, "__fspath__"):
            return super().to_request(value)
        import base64

        import soundfile as sf

        wave, rate = read_audio(value)
        buf = io.BytesIO()
        sf.write(buf, wave, rate, format="WAV")
        return base64.b64encode(buf.getvalue()).decode()

    def explain_load(self, value: Any) -> Any:
        return read_audio(value)

    def explain_units(self, value: Any, max_units: int) -> list[dict[str, Any]]:
        from zoo.modalities.audio_explain import audio_units

        return audio_units(value, max_units)

    def explain_ablate(self, value: Any, units: Sequence[dict[str, Any]],
                       keep: Sequence[bool]) -> Any:
        from zoo.modalities.audio_explain import audio_ablate

        return audio_ablate(value, units, keep)

    def explain_render(self, value: Any, units: Sequence[dict[str, Any]],
                       attributions: Sequence[float], stem: Any, title: str) -> list[str]:
        from zoo.modalities.audio_explain import audio_plot

        return audio_plot(value, units, attributions, stem, title)

    def sniff(self, data: bytes) -> str:
        for magic, suffix in ((b"RIFF", ".wav"), (b"fLaC", ".flac"), (b"OggS", ".ogg")):
            if data[:4] == magic:
                return suffix
        return ".wav"

    def corruptions(self, values: Sequence[Any] = ()) -> dict[str, Any]:
        """White and babble noise at 20 / 10 / 0 dB SNR, speed and pitch."""
        from zoo.modalities.audio_corruptions import audio_corruptions

        return audio_corruptions(values)

    def samples(self) -> list[Any]:
        import numpy as np

        t = np.arange(16000) / 16000
        return [((0.1 * np.sin(2 * np.pi * f * t[:n])).astype("float32"), 16000)
                for f, n in ((220, 16000), (330, 12000))]

    scaffold_encoder = '''"""A framed log-energy audio encoder: replace the network with yours."""
import numpy as np
import torch
from torch import nn

from zoo.plugin import DataError, Encoder, EncoderOutput


class {cls}(Encoder):
    modality = "audio"
    outputs = ("pooled",)

    def __init__(self, dim=64, sample_rate=16000, frame=400, pretrained=False, weights=None,
                 assets_dir=None):
        super().__init__()
        self.dim, self.sample_rate, self.frame = dim, sample_rate, frame
        self.proj = nn.Sequential(nn.Linear(frame, dim), nn.Tanh())

    def preprocess(self, values):
        frames = []
        for v in values:
            if isinstance(v, str):
                import soundfile as sf

                v = sf.read(v, dtype="float32")
            wave, rate = v if isinstance(v, tuple) else (v, self.sample_rate)
            if rate != self.sample_rate:
                raise DataError(f"audio must be at {{self.sample_rate}} Hz, got {{rate}}")
            wave = np.asarray(wave, dtype=np.float32).reshape(-1)
            n = max(1, len(wave) // self.frame)
            wave = np.pad(wave, (0, n * self.frame - len(wave)))[: n * self.frame]
            frames.append(torch.from_numpy(wave.reshape(n, self.frame)))
        width = max(f.shape[0] for f in frames)
        batch = torch.zeros(len(frames), width, self.frame)  # (B, T, frame)
        mask = torch.zeros(len(frames), width, dtype=torch.bool)
        for i, f in enumerate(frames):
            batch[i, : f.shape[0]], mask[i, : f.shape[0]] = f, True
        return {{"frames": batch, "mask": mask}}

    def forward(self, frames, mask):
        h = self.proj(frames)  # (B, T, D)
        w = mask.unsqueeze(-1).float()
        return EncoderOutput(pooled=(h * w).sum(1) / w.sum(1).clamp(min=1))  # (B, D)

    def preprocessor_config(self):
        return {{"sample_rate": self.sample_rate, "frame": self.frame}}
'''
