"""Audio corruptions for ``zoo eval --robustness``: white noise and babble at an SNR of 20,
10 and 0 dB, speed (tempo and pitch together, as sox ``speed``) and pitch (duration kept, by
a phase vocoder), at three severities.

Babble is a mix of four other clips of the same eval set (speech behind speech); with no
other clip to mix it is synthesised: voiced harmonics with drifting pitch, gated at a
syllable rate. Noise is scaled so the SNR against the clip's own power is exact. The
direction of speed and pitch changes (up or down) is drawn from the generator."""
from __future__ import annotations

from typing import Any, Callable, Sequence

__all__ = ["audio_corruptions", "white_noise", "speed", "pitch", "babble", "add_at_snr",
           "SNR_DB"]

SNR_DB = (20.0, 10.0, 0.0)
#: speed factor - 1 at severity 1, 2, 3 (up by it, or down by its inverse)
SPEED = (0.1, 0.25, 0.5)
#: pitch shift in semitones at severity 1, 2, 3
SEMITONES = (2, 4, 8)
BABBLE_TALKERS = 4


def _wave(value: Any) -> tuple[Any, int]:
    import numpy as np

    from zoo.plugin import read_audio

    if hasattr(value, "seek"):  # an embedded file: read from its start
        value.seek(0)
    wave, rate = read_audio(value)
    return np.asarray(wave, dtype=np.float64), rate


def add_at_snr(wave: Any, noise: Any, snr_db: float) -> Any:
    """``wave`` + ``noise`` scaled so that power(wave) / power(noise) is ``snr_db``."""
    import numpy as np

    p_signal = max(float(np.mean(wave ** 2)), 1e-12)
    p_noise = max(float(np.mean(noise ** 2)), 1e-12)
    return wave + noise * np.sqrt(p_signal / (p_noise * 10 ** (snr_db / 10)))


def white_noise(value: Any, severity: int, rng: Any) -> Any:
    wave, rate = _wave(value)
    noisy = add_at_snr(wave, rng.standard_normal(len(wave)), SNR_DB[severity - 1])
    return noisy.astype("float32"), rate


def _resample(wave: Any, factor: float) -> Any:
    """``wave`` played ``factor`` times as fast (length / factor), polyphase filtered."""
    from fractions import Fraction

    from scipy.signal import resample_poly

    f = Fraction(factor).limit_denominator(200)
    return resample_poly(wave, f.denominator, f.numerator)


def speed(value: Any, severity: int, rng: Any) -> Any:
    wave, rate = _wave(value)
    factor = 1.0 + SPEED[severity - 1]
    factor = factor if rng.random() < 0.5 else 1.0 / factor
    return _resample(wave, factor).astype("float32"), rate


def _stretch(wave: Any, rate: float, n_fft: int = 1024, hop: int = 256) -> Any:
    """Phase-vocoder time stretch (as librosa's): ``rate`` > 1 shortens, pitch kept."""
    import numpy as np

    window = np.hanning(n_fft + 1)[:-1]
    x = np.pad(wave, (n_fft // 2, n_fft // 2 + n_fft))
    starts = np.arange(0, len(x) - n_fft, hop)
    spec = np.fft.rfft(x[starts[:, None] + np.arange(n_fft)] * window, axis=1).T  # (F, T)
    steps = np.arange(0, spec.shape[1] - 1, rate)
    idx, frac = steps.astype(int), (steps % 1.0)[None, :]
    mag = (1 - frac) * np.abs(spec[:, idx]) + frac * np.abs(spec[:, idx + 1])  # (F, T')
    omega = 2 * np.pi * hop * np.arange(spec.shape[0])[:, None] / n_fft  # (F, 1)
    dphi = np.angle(spec[:, idx + 1]) - np.angle(spec[:, idx]) - omega
    dphi -= 2 * np.pi * np.round(dphi / (2 * np.pi))
    phase = np.angle(spec[:, :1]) + np.cumsum(omega + dphi, axis=1) - (omega + dphi)[:, :1]
    frames = np.fft.irfft(mag * np.exp(1j * phase), n=n_fft, axis=0).T * window  # (T', n_fft)
    out = np.zeros(len(frames) * hop + n_fft)
    norm = np.zeros_like(out)
    for t, frame in enumerate(frames):  # overlap-add
        out[t * hop:t * hop + n_fft] += frame
        norm[t * hop:t * hop + n_fft] += window ** 2
    out = out / np.maximum(norm, 1e-8)
    return out[n_fft // 2:n_fft // 2 + int(round(len(wave) / rate))]


def pitch(value: Any, severity: int, rng: Any) -> Any:
    import numpy as np

    wave, rate = _wave(value)
    steps = SEMITONES[severity - 1] * (1 if rng.random() < 0.5 else -1)
    ratio = 2.0 ** (steps / 12)
    shifted = _resample(_stretch(wave, 1.0 / ratio), ratio)  # longer, then sped up
    out = shifted[:len(wave)]
    if len(out) < len(wave):
        out = np.pad(out, (0, len(wave) - len(out)))
    return out.astype("float32"), rate


def _synthetic_babble(n: int, rate: int, rng: Any) -> Any:
    """Speech-shaped babble: talkers of voiced harmonics (drifting F0 of 90-250 Hz, a 1/k
    spectrum) gated on and off at 3-6 syllables a second."""
    import numpy as np

    t = np.arange(n) / rate
    mix = np.zeros(n)
    for _ in range(BABBLE_TALKERS):
        f0 = rng.uniform(90, 250) * (1 + 0.1 * np.sin(2 * np.pi * rng.uniform(0.2, 1) * t))
        phase = 2 * np.pi * np.cumsum(f0) / rate
        voice = sum(np.sin(k * phase) / k for k in range(1, 16) if k * f0.max() < rate / 2)
        gate = np.clip(np.sin(2 * np.pi * rng.uniform(3, 6) * t + rng.uniform(0, 6.3)), 0, 1)
        mix += voice * gate
    return mix


def babble(values: Sequence[Any]) -> Callable[[Any, int, Any], Any]:
    """Babble noise mixing other clips of ``values`` (the eval set's audio)."""
    from functools import lru_cache

    pool = list(values)
    talker_wave = lru_cache(maxsize=64)(lambda i: _wave(pool[i]))  # decoded once, mostly

    def corrupt(value: Any, severity: int, rng: Any) -> Any:
        import numpy as np

        wave, rate = _wave(value)
        others = [i for i, v in enumerate(pool) if v is not value
                  and not (isinstance(v, str) and v == value)]
        if not others:
            noise = _synthetic_babble(len(wave), rate, rng)
        else:
            noise = np.zeros(len(wave))
            picks = rng.choice(len(others), size=min(BABBLE_TALKERS, len(others)), replace=False)
            for i in picks:
                talker, r = talker_wave(others[int(i)])
                if r != rate:
                    talker = _resample(talker, r / rate)
                talker = np.resize(talker, len(wave) + len(talker))  # repeated to cover
                start = int(rng.integers(len(talker) - len(wave) + 1))
                part = talker[start:start + len(wave)]
                noise += part / np.sqrt(max(np.mean(part ** 2), 1e-12))  # equal loudness
        return add_at_snr(wave, noise, SNR_DB[severity - 1]).astype("float32"), rate

    return corrupt


def audio_corruptions(values: Sequence[Any] = ()) -> dict[str, Callable[[Any, int, Any], Any]]:
    return {"white_noise": white_noise, "babble": babble(values), "speed": speed,
            "pitch": pitch}
