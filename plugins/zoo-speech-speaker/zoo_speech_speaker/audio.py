"""From an audio value to the GE2E encoder's input: the steps resemblyzer 0.1.4 takes
(``preprocess_wav``, ``wav_to_mel_spectrogram``, ``VoiceEncoder.compute_partial_slices``),
written here on torch / numpy.

1. read (zoo's ``read_audio``: mono float32) and resample to 16 kHz (torchaudio, a
   Kaiser-windowed sinc; resemblyzer resamples with librosa / soxr);
2. raise the loudness to -30 dBFS (RMS over the whole recording; never lowered);
3. drop long pauses: WebRTC's voice activity detector (mode 3) on 30 ms windows, its
   flags smoothed over 8 windows and widened by 3 windows each side; what is not voiced
   after that is cut out;
4. a 40-band mel power spectrogram: 25 ms Hann windows every 10 ms (400-point FFT,
   centred, zero padded), Slaney mel scale and area normalisation, as librosa computes it;
5. 160-frame (1.6 s) partial utterances, 1.3 per second, the last kept when at least 75 %
   of it is real audio (the waveform is zero-padded to cover it).
"""
from __future__ import annotations

from functools import lru_cache
from typing import Any

import numpy as np
import torch

from zoo.plugin import DataError, read_audio

__all__ = ["SAMPLE_RATE", "HOP", "load_wave", "normalize_volume", "trim_long_silences",
           "mel_frames", "partial_slices"]

SAMPLE_RATE = 16000
HOP = 160  # samples per mel frame: 10 ms
N_FFT = 400  # 25 ms windows
INT16_MAX = 2 ** 15 - 1
VAD_WINDOW = 480  # samples: 30 ms, one of the three sizes WebRTC's VAD accepts
VAD_SMOOTHING = 8  # windows averaged
VAD_MAX_PAUSE = 6  # windows: longer unvoiced stretches are cut


def load_wave(value: Any) -> np.ndarray:
    """A path, ``(array, rate)``, ``{"array", "sampling_rate"}`` or an array at 16 kHz ->
    (N,) float32 at 16 kHz."""
    arr, rate = read_audio(value, SAMPLE_RATE)
    if not np.isfinite(arr).all():
        raise DataError("audio input has NaN or infinite samples")
    if not 1000 <= int(rate) <= 384000:
        raise DataError(f"audio sample rate {rate} is out of range (1 kHz..384 kHz)")
    wave = np.ascontiguousarray(arr, dtype=np.float32)
    if int(rate) != SAMPLE_RATE:
        with torch.no_grad():
            wave = _resampler(int(rate))(torch.from_numpy(wave)).numpy()
    return wave


@lru_cache(maxsize=8)
def _resampler(rate: int) -> torch.nn.Module:
    """A resampler from ``rate`` to 16 kHz, its kernel computed once: a Kaiser-windowed
    sinc of 64 zero crossings ("kaiser_best"), closer to what librosa (soxr) gives
    resemblyzer than torchaudio's default (3.5x lower RMS difference on espeak speech)."""
    import torchaudio.transforms as AT

    return AT.Resample(rate, SAMPLE_RATE, lowpass_filter_width=64,
                       rolloff=0.9475937167399596, resampling_method="sinc_interp_kaiser",
                       beta=14.769656459379492)


def normalize_volume(wave: np.ndarray, target_dbfs: float = -30.0) -> np.ndarray:
    """Scale a quieter recording up to ``target_dbfs`` (RMS of 16-bit samples); a louder
    one, or pure silence, is left as it is."""
    rms = float(np.sqrt(np.mean((wave.astype(np.float64) * INT16_MAX) ** 2)))
    if rms == 0.0:
        return wave
    change = target_dbfs - 20.0 * np.log10(rms / INT16_MAX)  # dB
    if change < 0:
        return wave
    return wave * np.float32(10.0 ** (change / 20.0))


def _vad():
    try:
        import webrtcvad
    except ImportError:
        from zoo.plugin import ZooError

        raise ZooError("trimming pauses needs WebRTC's voice activity detector: pip install "
                       "webrtcvad-wheels (or build the encoder with trim_silences=False)"
                       ) from None
    return webrtcvad.Vad(3)  # the most aggressive mode, as resemblyzer


def trim_long_silences(wave: np.ndarray) -> np.ndarray:
    """The voiced part of ``wave``: pauses longer than ~0.2 s are cut. The tail shorter
    than one 30 ms window is dropped. When the detector hears no voice at all (a tone,
    noise), the recording is returned whole rather than emptied."""
    usable = len(wave) - len(wave) % VAD_WINDOW
    if usable == 0:
        return wave
    wave = wave[:usable]
    pcm = np.clip(np.round(wave * INT16_MAX), -INT16_MAX - 1, INT16_MAX).astype("<i2")
    raw, vad = pcm.tobytes(), _vad()
    step = VAD_WINDOW * 2  # bytes per window
    voiced = np.array([vad.is_speech(raw[i:i + step], SAMPLE_RATE)
                       for i in range(0, len(raw), step)], dtype=np.float64)
    # mean over 8 windows: 3 before, the window itself and 4 after (zeros past the ends)
    width = VAD_SMOOTHING
    smooth = np.convolve(np.pad(voiced, ((width - 1) // 2, width // 2)), np.ones(width),
                         "valid") / width
    keep = np.round(smooth).astype(bool)  # half-way (4 of 8) rounds to even: unvoiced
    # widen each voiced stretch by 3 windows each side (a dilation over 7 windows)
    reach = np.ones(VAD_MAX_PAUSE + 1)
    keep = np.convolve(keep.astype(np.float64), reach, "same") > 0.5
    if not keep.any():
        return wave
    return wave[np.repeat(keep, VAD_WINDOW)]


@lru_cache(maxsize=2)
def _mel_filters(n_mels: int) -> torch.Tensor:
    import torchaudio.functional as AF

    fb = AF.melscale_fbanks(N_FFT // 2 + 1, 0.0, SAMPLE_RATE / 2, n_mels, SAMPLE_RATE,
                            norm="slaney", mel_scale="slaney")  # (201, n_mels)
    return fb.T.contiguous()  # (n_mels, 201)


def mel_frames(wave: np.ndarray, n_mels: int = 40) -> torch.Tensor:
    """(N,) samples at 16 kHz -> (1 + N // 160, n_mels) mel power frames (not log)."""
    x = torch.from_numpy(np.ascontiguousarray(wave, dtype=np.float32))
    spec = torch.stft(x, N_FFT, HOP, window=torch.hann_window(N_FFT), center=True,
                      pad_mode="constant", return_complex=True)  # (201, frames)
    power = spec.real ** 2 + spec.imag ** 2
    return (_mel_filters(n_mels) @ power).T.contiguous()  # (frames, n_mels)


def partial_slices(n_samples: int, frames: int = 160, rate: float = 1.3,
                   min_coverage: float = 0.75) -> list[tuple[int, int]]:
    """Where the partial utterances of a recording of ``n_samples`` lie, as mel frame
    ranges ``(start, stop)`` of ``frames`` each, ``rate`` per second. The last one is
    dropped when less than ``min_coverage`` of it is real audio, unless it is the only
    one. Ranges may reach past the end: pad the waveform to ``stop * 160`` samples."""
    if not 0 < min_coverage <= 1:
        raise ValueError("min_coverage must be in (0, 1]")
    total = int(np.ceil((n_samples + 1) / HOP))  # mel frames of the recording
    step = int(np.round(SAMPLE_RATE / rate / HOP))  # frames between partial starts
    if not 0 < step <= frames:
        raise ValueError(f"rate {rate} must give 1..{frames} frames between partials")
    last = max(1, total - frames + step + 1)
    slices = [(s, s + frames) for s in range(0, last, step)]
    start = slices[-1][0] * HOP
    covered = (n_samples - start) / (frames * HOP)
    if covered < min_coverage and len(slices) > 1:
        slices.pop()
    return slices
