"""`zoo list` wall time against `python -c "import torch"` on the same machine, same run.

Issue target: median(zoo list) <= 0.4 x median(import torch). Prints medians and the ratio.
    .venv/bin/python bench/bench_list.py [--runs 15]
"""
from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path


def wall(cmd: list[str], runs: int) -> list[float]:
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
        times.append(time.perf_counter() - t)
    return times


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=15)
    args = ap.parse_args()
    zoo_exe = str(Path(sys.executable).with_name("zoo"))
    wall([zoo_exe, "list"], 2)  # warm the page cache for both
    wall([sys.executable, "-c", "import torch"], 2)
    zl, zj, tt = [], [], []
    for _ in range(args.runs):  # interleaved, so machine noise hits both alike
        zl += wall([zoo_exe, "list"], 1)
        zj += wall([zoo_exe, "list", "--json"], 1)
        tt += wall([sys.executable, "-c", "import torch"], 1)
    m_list, m_json, m_torch = (statistics.median(x) for x in (zl, zj, tt))
    print(f"zoo list          median {m_list * 1000:7.1f} ms  ({args.runs} runs)")
    print(f"zoo list --json   median {m_json * 1000:7.1f} ms")
    print(f"import torch      median {m_torch * 1000:7.1f} ms")
    print(f"ratio zoo list / import torch = {m_list / m_torch:.3f}  (target <= 0.4)")
    sys.exit(0 if m_list / m_torch <= 0.4 else 1)


if __name__ == "__main__":
    main()
