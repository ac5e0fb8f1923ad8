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
