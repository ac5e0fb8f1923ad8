"""Shared by the quality benches: a work folder, timing, a results line."""
from __future__ import annotations

import json
import os
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

WORK = Path(os.environ.get("ZOO_BENCH_DIR", "/tmp/zoo-bench"))


class Timer:
    def __enter__(self):
        self.t = time.perf_counter()
        return self

    def __exit__(self, *exc):
        self.s = time.perf_counter() - self.t


def report(name: str, figures: dict) -> None:
    """Print one JSON line (for the README table) and keep it under WORK/results."""
    line = json.dumps({"bench": name, **figures})
    print("RESULT", line, flush=True)
    (WORK / "results").mkdir(parents=True, exist_ok=True)
    (WORK / "results" / f"{name}.json").write_text(line + "\n")


def fortune_splits(files: dict, w: Path, cap: int = 350, seed: int = 0) -> dict:
    """A fixed stratified 60/20/20 split of Debian fortunes: ``files`` maps each label to
    its fortune file; at most ``cap`` fortunes of 20-600 characters per label."""
    import random

    rng = random.Random(seed)
    rows: dict = {"train": [], "val": [], "test": []}
    for label, path in files.items():
        text = Path(path).read_text(encoding="utf-8", errors="replace")
        items = [" ".join(x.split()) for x in text.split("\n%\n")]
        items = [x for x in items if 20 <= len(x) <= 600]
        rng.shuffle(items)
        items = items[:cap]
        a, b = int(0.6 * len(items)), int(0.8 * len(items))
        for name, part in (("train", items[:a]), ("val", items[a:b]), ("test", items[b:])):
            rows[name] += [{"text": x, "label": label} for x in part]
    w.mkdir(parents=True, exist_ok=True)
    paths = {}
    for name, r in rows.items():
        rng.shuffle(r)
        paths[name] = w / f"{name}.jsonl"
        paths[name].write_text("".join(json.dumps(x, ensure_ascii=False) + "\n" for x in r))
    return paths
