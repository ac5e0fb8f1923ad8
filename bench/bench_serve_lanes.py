"""Does a large image request hold up text requests when batches run in a child process
(`zoo serve --inference process`, the default for the torch runtime on a CPU)? A text
request every 5 ms and a ticker on the event loop every 1 ms, while three requests of 16
decoded 1024x1024 images (50 MB each) go to the child; prints the event loop's longest
stall and the text requests' median and worst latency, with large requests sent from a
thread (as served) and, for comparison, from the event loop.

    .venv/bin/python bench/bench_serve_lanes.py [--rounds 2]
"""
from __future__ import annotations

import argparse
import asyncio
import tempfile
import time

import numpy as np
from PIL import Image

import zoo
from zoo.serve import worker


async def _round(proc, big):
    gaps, lat, stop = [], [], [False]

    async def ticker():
        t = time.perf_counter()
        while not stop[0]:
            await asyncio.sleep(0.001)
            now = time.perf_counter()
            gaps.append(now - t)
            t = now

    async def texts():
        while not stop[0]:
            t = time.perf_counter()
            await proc.submit("text", [{"text": "a cat"}])
            lat.append(time.perf_counter() - t)
            await asyncio.sleep(0.005)

    tasks = [asyncio.ensure_future(ticker()), asyncio.ensure_future(texts())]
    await asyncio.sleep(0.3)
    for _ in range(3):
        await proc.submit("image", big)
    stop[0] = True
    await asyncio.gather(*tasks)
    return max(gaps), sorted(lat)[len(lat) // 2], max(lat)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args()
    folder = tempfile.mkdtemp(prefix="zoo-lanes-") + "/model"
    zoo.create_model("tiny-text-image-clf", labels=["cat", "dog"]).save_pretrained(folder)
    rng = np.random.default_rng(0)
    big = [{"image": Image.fromarray(rng.integers(0, 255, (1024, 1024, 3), np.uint8))}
           for _ in range(16)]
    proc = worker.InferenceProcess({"source": folder, "place": {"device": "cpu"},
                                    "chunk": 8, "lanes": ["text", "image"], "max_batch": 8,
                                    "max_wait": 0.005})
    served = worker.OFF_LOOP_BYTES
    try:
        for _ in range(args.rounds):
            for name, threshold in (("from a thread (served)", served),
                                    ("from the event loop", 1 << 62)):
                worker.OFF_LOOP_BYTES = threshold
                gap, med, worst = asyncio.run(_round(proc, big))
                print(f"large requests sent {name}: event loop's longest stall "
                      f"{gap * 1000:.0f} ms; text requests median {med * 1000:.1f} ms, "
                      f"worst {worst * 1000:.0f} ms")
    finally:
        worker.OFF_LOOP_BYTES = served
        proc.close()


if __name__ == "__main__":
    main()
