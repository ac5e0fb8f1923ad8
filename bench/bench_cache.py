"""Frozen encoders: one fusion-only epoch (features cached) against one epoch that
recomputes the encoders, same model, same data. Target: >= 10x.

    .venv/bin/python bench/bench_cache.py
"""
from __future__ import annotations

import json

from _common import WORK, report

import zoo
from zoo.testing.synthetic import digits_manifests


def epoch_seconds(out) -> list[float]:
    rows = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    secs = [r["seconds"] for r in rows if "train_loss" in r]
    return [b - a for a, b in zip([0.0] + secs[:-1], secs)]


def main() -> None:
    data = digits_manifests(WORK / "digits32", size=32, limit=400)
    runs = {}
    for cache in (True, False):
        out = WORK / f"cache-{cache}"
        zoo.train("effnet-lite0-image-clf", data["train"], None, out, epochs=3, freeze="all",
                  cache_features=cache, progress=False, batch_size=32)
        runs[cache] = epoch_seconds(out)
        print(f"cache={cache}: epoch seconds {[round(s, 2) for s in runs[cache]]}")
    import statistics

    cached, full = statistics.median(runs[True]), statistics.median(runs[False])
    print(f"fusion-only epoch (cached features): {cached:.3f} s; recomputing encoders: "
          f"{full:.2f} s; ratio {full / cached:.1f}x (target >= 10x)")
    report("cache", {"cached_epoch_s": round(cached, 3), "full_epoch_s": round(full, 2),
                     "ratio": round(full / cached, 1)})


if __name__ == "__main__":
    main()
