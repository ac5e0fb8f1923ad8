"""Frozen encoders: training with the feature cache against recomputing the encoders every
epoch, same model, same data, 3 epochs. Two figures, because the cache costs one encoding
pass up front: the median epoch (fusion and head only vs everything; target >= 10x) and the
whole `zoo.train` call end to end, the encoding pass included. Two input sizes: the
encoder's own 224 px (``size_from_data`` off: an encoder as costly as the cache is for), and
the default on these 32 px digits, where training matches the input to the images (64 px)
and the encoder is cheap enough that the cache matters less.

    .venv/bin/python bench/bench_cache.py
"""
from __future__ import annotations

import json

from _common import WORK, Timer, report

import zoo
from zoo.testing.synthetic import digits_manifests


def epoch_seconds(out) -> list[float]:
    rows = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    secs = [r["seconds"] for r in rows if "train_loss" in r]
    return [b - a for a, b in zip([0.0] + secs[:-1], secs)]


def main() -> None:
    data = digits_manifests(WORK / "digits32", size=32, limit=400)
    # warm-up: imports, weight files and first-call costs land before either timed run
    warm = zoo.create_model("effnet-lite0-image-clf", pretrained=True)
    warm.predict([{"image": str(data["train"].parent / json.loads(
        data["train"].read_text().splitlines()[0])["image"])}])
    import statistics

    figures = {}
    for size, own in (("224px", True), ("matched", False)):
        runs, whole = {}, {}
        for cache in (True, False):
            out = WORK / f"cache-{size}-{cache}"
            model = zoo.create_model("effnet-lite0-image-clf", pretrained=True)
            if own:  # keep the encoder's own input size
                model.encoders["image"].size_from_data = False
            with Timer() as t:
                zoo.train(model, data["train"], None, out, epochs=3, freeze="all",
                          cache_features=cache, progress=False, batch_size=32, loggers=[])
            runs[cache], whole[cache] = epoch_seconds(out), t.s
            print(f"{size} cache={cache}: epoch seconds {[round(s, 2) for s in runs[cache]]}; "
                  f"whole zoo.train {t.s:.1f} s")
        cached, full = statistics.median(runs[True]), statistics.median(runs[False])
        print(f"{size}: median epoch: fusion-only (cached features) {cached:.3f} s vs "
              f"recomputing encoders {full:.2f} s: {full / cached:.1f}x (target >= 10x at "
              f"224 px); whole zoo.train, 3 epochs incl. the encoding pass: "
              f"{whole[True]:.1f} s vs {whole[False]:.1f} s: {whole[False] / whole[True]:.2f}x")
        figures[size] = {"cached_epoch_s": round(cached, 3), "full_epoch_s": round(full, 2),
                         "ratio": round(full / cached, 1),
                         "whole_cached_s": round(whole[True], 1),
                         "whole_full_s": round(whole[False], 1),
                         "whole_ratio": round(whole[False] / whole[True], 2)}
    report("cache", figures)


if __name__ == "__main__":
    main()
