"""bench/gpu.sh: the dry run (CPU, tiny sizes) exits 0 and prints its table; without CUDA and
without --dry-run it refuses in one line with exit status 2."""
from __future__ import annotations

import pytest

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "bench" / "gpu.sh"
STEPS = ["data", "encoders", "cache", "image-finetune", "train-bf16", "train-ddp", "serve",
         *(f"{what}-{device}" for what in ("train", "predict", "eval", "serve")
           for device in ("cuda", "cpu"))]


def _env() -> dict:
    # CPU whatever the machine has: the dry run's DDP step then runs 2 gloo processes
    return {**os.environ, "PYTHON": sys.executable, "HF_HUB_OFFLINE": "1",
            "CUDA_VISIBLE_DEVICES": ""}


@pytest.mark.slow
def test_dry_run_prints_the_table():
    proc = subprocess.run(["bash", str(SCRIPT), "--dry-run"], capture_output=True, text=True,
                          env=_env(), cwd=ROOT, timeout=3600)  # a safety net, not a speed bar
    out = proc.stdout
    assert proc.returncode == 0, out[-3000:] + proc.stderr[-2000:]
    lines = out.splitlines()
    head = next(i for i, x in enumerate(lines) if x.split() == ["bench", "figure", "seconds"])
    rows = {x.split()[0]: x for x in lines[head + 2:] if x.strip()}
    assert list(rows) == STEPS + ["total", "cuda/cpu:"]
    assert not any("FAILED" in r for r in rows.values())
    # on each device: the cuda rows' flags checked, the cpu rows run on tiny data
    assert all("flags ok" in rows[f"{w}-cuda"] for w in ("train", "predict", "eval", "serve"))
    assert "ex/s (fp32" in rows["train-cpu"] and "ex/s (cpu" in rows["predict-cpu"]
    assert "accuracy" in rows["eval-cpu"] and "req/s (cpu, fp32" in rows["serve-cpu"]
    assert "$ " + sys.executable + " bench_device.py serve --device cuda --model" in out
    assert "bf16, world 1" in rows["train-bf16"] and "bf16, world 2" in rows["train-ddp"]
    assert "flags ok" in rows["encoders"] and "flags ok" in rows["serve"]
    # the exact GPU commands are printed, sizes aside
    assert "$ " + sys.executable + " bench_serve.py --requests 256 --clients 32" in out
    assert "--nproc-per-node=2 -m zoo train effnet-lite0-image-clf" in out


def test_refuses_without_cuda():
    proc = subprocess.run(["bash", str(SCRIPT)], capture_output=True, text=True, env=_env(),
                          cwd=ROOT, timeout=120)
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert proc.stderr.strip().count("\n") == 0 and "no CUDA device" in proc.stderr
