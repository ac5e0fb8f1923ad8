"""LoRA against full fine-tuning and the frozen probe (issue #17): MiniLM on Debian fortunes
topics, the same split, seed, epochs and batches; trainable parameters, saved size, wall
time, peak memory (RSS) and test accuracy.

- frozen: ``zoo.train(..., freeze="all")`` (encoder frozen, features cached, head trained)
- full:   ``freeze="none"``, encoder at ``encoder_lr`` 5e-5, new layers at 1e-3
- lora:   ``adapter="lora"``, r 8, alpha 16, adapters and new layers at 1e-3

Each run is its own subprocess (peak RSS is that process's ``ru_maxrss``); the order rotates
each round; medians over rounds. Then serving memory: three copies of the full fine-tuned
model vs three of the LoRA model loaded into one process (adapters share their base).

    HF_HUB_OFFLINE=1 .venv/bin/python bench/bench_lora.py [--cap 120] [--epochs 3] [--rounds 1]
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
HERE = Path(__file__).resolve().parent
MODES = {"frozen": {"freeze": "all"},
         "full": {"freeze": "none", "encoder_lr": 5e-5},
         "lora": {"adapter": "lora", "lora_r": 8}}


def child(mode: str, data: Path, out: Path, epochs: int) -> dict:
    import zoo

    import torch

    t = time.perf_counter()
    torch.manual_seed(0)  # the fusion's initial weights: the same for every mode
    model = zoo.create_model("minilm-text-clf", pretrained=True)
    zoo.train(model, data / "train.jsonl", data / "val.jsonl", out, epochs=epochs, lr=1e-3,
              batch_size=32, seed=0, progress=False, loggers=[], **MODES[mode])
    train_s = time.perf_counter() - t
    acc = zoo.evaluate(out, data / "test.jsonl")["accuracy"]
    return {"train_s": train_s, "accuracy": acc,
            "trainable": sum(p.numel() for p in model.parameters() if p.requires_grad),
            "total": sum(p.numel() for p in model.parameters()),
            "saved_mb": sum(p.stat().st_size for p in out.glob("model*.safetensors")) / 2**20,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def _rss_mb() -> float:
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def child_memory(folder: Path, copies: int) -> dict:
    """Resident memory after loading ``folder`` ``copies`` times into one process (what
    `zoo serve A --mount b=A2 ...` holds) and predicting once with each."""
    import gc

    import zoo

    models, rss = [], [_rss_mb()]
    for _ in range(copies):
        models.append(zoo.load(folder))
        models[-1].predict([{"text": "a fortune"}])
        gc.collect()
        rss.append(_rss_mb())
    return {"rss_mb": rss, "per_extra_model_mb": (rss[-1] - rss[1]) / max(1, copies - 1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cap", type=int, default=120, help="fortunes per topic before the split")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--child", nargs=3, metavar=("MODE", "DATA", "OUT"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child and args.child[0] == "memory":
        print("CHILD", json.dumps(child_memory(Path(args.child[1]), int(args.child[2]))))
        return
    if args.child:
        mode, data, out = args.child
        print("CHILD", json.dumps(child(mode, Path(data), Path(out), args.epochs)))
        return
    sys.path.insert(0, str(HERE))
    from _common import WORK, report
    from bench_text import TOPICS, build

    data = WORK / f"fortunes-cap{args.cap}"
    build(data, cap=args.cap)
    n = {s: sum(1 for _ in open(data / f"{s}.jsonl")) for s in ("train", "val", "test")}
    print(f"fortunes, {len(TOPICS)} topics, cap {args.cap}: {n['train']} train / {n['val']} "
          f"val / {n['test']} test; {args.epochs} epochs, batch 32, seed 0", flush=True)
    runs: dict[str, list[dict]] = {m: [] for m in MODES}
    order = list(MODES)
    for r in range(args.rounds):
        for mode in order[r % 3:] + order[:r % 3]:
            out = WORK / f"lora-bench-{mode}"
            shutil.rmtree(out, ignore_errors=True)
            proc = subprocess.run([sys.executable, __file__, "--epochs", str(args.epochs),
                                   "--child", mode, str(data), str(out)],
                                  capture_output=True, text=True)
            line = next((x for x in proc.stdout.splitlines() if x.startswith("CHILD ")), None)
            if proc.returncode or line is None:
                sys.exit(f"{mode} failed:\n{proc.stderr[-3000:]}")
            runs[mode].append(json.loads(line[6:]))
            print(f"round {r + 1} {mode}: {runs[mode][-1]}", flush=True)
            if r < args.rounds - 1 or mode == "frozen":
                shutil.rmtree(out, ignore_errors=True)
    memory = {}
    for mode in ("full", "lora"):  # three models of one base in one process, as served
        out = WORK / f"lora-bench-{mode}"
        proc = subprocess.run([sys.executable, __file__, "--child", "memory", str(out), "3"],
                              capture_output=True, text=True)
        line = next((x for x in proc.stdout.splitlines() if x.startswith("CHILD ")), None)
        if proc.returncode or line is None:
            sys.exit(f"memory ({mode}) failed:\n{proc.stderr[-3000:]}")
        memory[mode] = json.loads(line[6:])
        shutil.rmtree(out, ignore_errors=True)
        print(f"three {mode} models in one process: RSS after each load "
              f"{[round(x) for x in memory[mode]['rss_mb']]} MB; each extra model "
              f"+{memory[mode]['per_extra_model_mb']:.0f} MB", flush=True)
    med = {m: {k: statistics.median(x[k] for x in rs) for k in rs[0]} for m, rs in runs.items()}
    print(f"\n{'':8}{'trainable':>12}{'share':>8}{'saved MB':>10}{'train s':>9}"
          f"{'peak RSS MB':>13}{'test acc':>10}")
    for m, f in med.items():
        print(f"{m:8}{int(f['trainable']):>12,}{f['trainable'] / f['total']:>8.2%}"
              f"{f['saved_mb']:>10.1f}{f['train_s']:>9.1f}{f['peak_rss_mb']:>13.0f}"
              f"{f['accuracy']:>10.3f}")
    lo, fu = med["lora"], med["full"]
    print(f"lora/full: trainable {lo['trainable'] / fu['trainable']:.3f}x, saved "
          f"{lo['saved_mb'] / fu['saved_mb']:.3f}x, time {lo['train_s'] / fu['train_s']:.2f}x, "
          f"peak RSS {lo['peak_rss_mb'] / fu['peak_rss_mb']:.2f}x, accuracy "
          f"{lo['accuracy'] - fu['accuracy']:+.3f}")
    report("lora", {m: {k: round(v, 4) for k, v in f.items()} for m, f in med.items()}
           | {"rounds": args.rounds, "epochs": args.epochs, "cap": args.cap,
              "extra_model_mb": {m: round(x["per_extra_model_mb"], 1)
                                 for m, x in memory.items()}})


if __name__ == "__main__":
    main()
