"""Explaining audio (``zoo explain``): time windows are the units; a removed window is
silenced; the explanation is drawn as the waveform over its windows' attributions (a
PNG)."""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Sequence

__all__ = ["WINDOWS", "MIN_WINDOW_S", "audio_units", "audio_ablate", "audio_plot"]

#: windows per recording at most, and the shortest window (seconds)
WINDOWS = 32
MIN_WINDOW_S = 0.05


def audio_units(value: tuple[Any, int], max_units: int) -> list[dict[str, Any]]:
    """``{"start", "end"}`` (seconds) and ``frames`` (sample indices, end excluded) per
    window: equal windows of at least ``MIN_WINDOW_S``, at most ``WINDOWS`` and
    ``max_units`` of them."""
    wave, rate = value
    seconds = len(wave) / rate
    n = max(1, min(WINDOWS, max_units, math.ceil(seconds / MIN_WINDOW_S)))
    edges = [round(i * len(wave) / n) for i in range(n + 1)]
    return [{"start": round(edges[i] / rate, 4), "end": round(edges[i + 1] / rate, 4),
             "frames": [edges[i], edges[i + 1]]} for i in range(n)]


def audio_ablate(value: tuple[Any, int], units: Sequence[dict[str, Any]],
                 keep: Sequence[bool]) -> tuple[Any, int]:
    """The recording with each removed window silenced (zeros)."""
    wave, rate = value
    out = wave.copy()
    for u, k in zip(units, keep):
        if not k:
            a, b = u["frames"]
            out[a:b] = 0.0
    return out, rate


def audio_plot(value: tuple[Any, int], units: Sequence[dict[str, Any]],
               attributions: Sequence[float], stem: Path, title: str) -> list[str]:
    """``STEM.png``: the waveform on its windows coloured by attribution (red raised the
    score, blue lowered it), and the attribution of each window as bars over time."""
    import numpy as np
    from matplotlib import colormaps
    from matplotlib.figure import Figure

    wave, rate = value
    scale = max((abs(a) for a in attributions), default=0.0) or 1.0
    cmap = colormaps["bwr"]
    fig = Figure(figsize=(10, 4.5))
    top, bottom = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [3, 2]})
    step = max(1, len(wave) // 20000)  # at most ~20k points drawn
    t = np.arange(0, len(wave), step) / rate
    for u, a in zip(units, attributions):
        top.axvspan(u["start"], u["end"], color=cmap(0.5 + 0.5 * a / scale), alpha=0.6, lw=0)
    top.plot(t, wave[::step], color="black", lw=0.5)
    top.set_ylabel("amplitude")
    top.set_title(title)
    centres = [(u["start"] + u["end"]) / 2 for u in units]
    widths = [u["end"] - u["start"] for u in units]
    bottom.bar(centres, attributions, width=widths,
               color=[cmap(0.5 + 0.5 * a / scale) for a in attributions], edgecolor="grey")
    bottom.axhline(0, color="grey", lw=0.5)
    bottom.set_ylabel("attribution")
    bottom.set_xlabel("time (s)")
    fig.tight_layout()
    path = stem.with_name(stem.name + ".png")
    fig.savefig(path, dpi=100)
    return [str(path)]
