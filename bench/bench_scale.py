"""Cost and scale: memory per ready model, and epoch time against the amount of data.

1. Memory (psutil RSS, one fresh process per model): after `import torch, zoo` alone, then
   after `zoo.create_model(name, pretrained=True)` and one `predict` on a real input
   (scikit-image's chelsea photo; a sentence; the shortest LibriVox clip of Debian's
   pocketsphinx-testdata, else 3 s of a synthetic vowel), and the process's peak. Models:
   every `zoo list --ready` model plus minilm-text-clf (text; its head is untrained, so
   its prediction means nothing, but its memory is real).
2. Epoch time at 1x, 2x, 4x training examples (distinct examples, the first N of one pool;
   medians over epochs; ratio to 1x, linear scaling gives 2.0 and 4.0):
   - frozen: effnet-lite0-image-clf, freeze="all", on scikit-learn digits upscaled to 32 px
     as bench_cache.py does; the feature cache is on (zoo's default), so an epoch is fusion
     and head only, and the one-off encoding pass is timed apart (it scales too);
   - unfrozen: char-text-clf (hashed n-grams, from scratch), freeze="none", on Debian's
     categorised fortunes (the split of bench_text.py; `apt-get install fortunes`).
   Epoch time is zoo.training.loop.train_epoch alone (wrapped here), without the per-epoch
   eval and checkpoint writing, which metrics.jsonl's "seconds" include.

Writes WORK/scale/memory.png and WORK/scale/epoch_scaling.png.

    .venv/bin/python bench/bench_scale.py [--image-n 80 --text-n 200 --epochs 4
        --frozen-epochs 12]
        [--scales 1,2,4] [--models a,b] [--skip-memory] [--skip-epochs]
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

from _common import WORK, report

SENTENCE = "The film was a delight from start to finish, and I would watch it again."
LIBRIVOX = Path("/usr/share/pocketsphinx/test/data/librivox")
TOPICS = ["computers", "politics", "science", "art", "law", "food", "education", "love",
          "sports", "medicine"]
FORTUNES = Path("/usr/share/games/fortunes")


# ---------------------------------------------------------------- 1. memory, one model
def real_input(model, w: Path) -> tuple[dict, str]:
    if "image" in model.modalities:
        from skimage import data

        return {"image": data.chelsea()}, "chelsea photo"
    if "audio" in model.modalities:
        clips = sorted(LIBRIVOX.glob("*.wav"), key=lambda p: p.stat().st_size)
        if clips:
            return {"audio": str(clips[0])}, f"LibriVox clip {clips[0].stem[-4:]}"
        import numpy as np
        import soundfile as sf

        t = np.arange(3 * 16000) / 16000
        wave = sum(np.sin(2 * np.pi * f * t) / k for k, f in enumerate((150, 300, 450), 1))
        path = w / "vowel.wav"
        sf.write(path, (0.2 * wave).astype("float32"), 16000)
        return {"audio": str(path)}, "synthetic 3 s vowel"
    return {"text": SENTENCE}, "a sentence"


def memory_one(name: str) -> dict:
    import os
    import resource

    import psutil

    proc = psutil.Process(os.getpid())
    mb = lambda: proc.memory_info().rss / 2**20  # noqa: E731
    python_mb = mb()
    import torch  # noqa: F401

    import zoo

    import_mb = mb()
    t = time.perf_counter()
    model = zoo.create_model(name, pretrained=True)
    (WORK / "scale").mkdir(parents=True, exist_ok=True)
    inp, what = real_input(model, WORK / "scale")
    pred = model.predict([inp])[0]
    ready_s = time.perf_counter() - t
    ready_mb = mb()
    if "text" in pred:
        out = repr(pred["text"][:40])
    elif "boxes" in pred:
        out = f"{len(pred['boxes'])} box(es)"
    else:
        out = f"{pred['label']} {pred['score']:.2f}"
    return {"params_m": round(sum(p.numel() for p in model.parameters()) / 1e6, 1),
            "python_mb": round(python_mb), "import_mb": round(import_mb),
            "ready_mb": round(ready_mb),
            "peak_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
            "ready_s": round(ready_s, 1), "input": what, "prediction": out}


def memory(names: list[str]) -> dict[str, dict]:
    rows = {}
    for name in names:  # a fresh process each: nothing of the previous model stays
        p = subprocess.run([sys.executable, __file__, "--memory-one", name],
                           capture_output=True, text=True)
        line = next((x for x in p.stdout.splitlines() if x.startswith("ROW ")), None)
        if p.returncode or line is None:
            print(f"{name}: failed\n{p.stderr[-2000:]}", flush=True)
            continue
        rows[name] = json.loads(line[4:])
        print(name, line[4:], flush=True)
    return rows


# ---------------------------------------------------------------- 2. epoch time vs data
def timed_train(model: str, rows: list[dict], out: Path, epochs: int, **options) -> dict:
    """zoo.train with train_epoch and the encoding pass timed from outside zoo."""
    import zoo
    import zoo.training.loop as loop
    import zoo.training.stages as stages

    epoch_s, encode_s = [], []
    orig_epoch, orig_encode = loop.train_epoch, stages._encode

    def train_epoch(*a, **k):
        t = time.perf_counter()
        orig_epoch(*a, **k)
        epoch_s.append(time.perf_counter() - t)

    def encode(*a, **k):
        t = time.perf_counter()
        r = orig_encode(*a, **k)
        encode_s.append(time.perf_counter() - t)
        return r

    loop.train_epoch, stages._encode = train_epoch, encode
    try:
        zoo.train(model, rows, None, out, epochs=epochs, progress=False, loggers=[],
                  seed=0, **options)
    finally:
        loop.train_epoch, stages._encode = orig_epoch, orig_encode
    return {"epoch_s": statistics.median(epoch_s), "epochs": [round(s, 3) for s in epoch_s],
            "encode_s": sum(encode_s) if encode_s else None}


def image_pool(n: int) -> list[dict]:
    from zoo.testing.synthetic import digits_manifests

    # a folder of its own: bench_cache.py rewrites WORK/digits32 with 400 examples
    data = digits_manifests(WORK / "scale" / "digits32", size=32)
    base = data["train"].parent
    rows = [json.loads(x) for p in ("train", "val", "test") for x in data[p].read_text()
            .splitlines()]
    if len(rows) < n:
        raise SystemExit(f"--image-n x the largest scale needs {n} digits, there are "
                         f"{len(rows)}")
    return [{"image": str(base / r["image"]), "label": r["label"]} for r in rows[:n]]


def text_pool(n: int) -> list[dict]:
    from _common import fortune_splits

    missing = [t for t in TOPICS if not (FORTUNES / t).is_file()]
    if missing:
        raise SystemExit(f"fortunes missing ({missing}): apt-get install fortunes")
    paths = fortune_splits({t: FORTUNES / t for t in TOPICS}, WORK / "scale" / "fortunes")
    rows = [json.loads(x) for p in ("train", "val", "test") for x in paths[p].read_text()
            .splitlines()]
    if len(rows) < n:
        raise SystemExit(f"--text-n x the largest scale needs {n} fortunes, there are "
                         f"{len(rows)}")
    return rows[:n]


def scaling(args) -> dict[str, dict]:
    import zoo

    scales = [int(s) for s in args.scales.split(",")]
    setups = {
        "frozen effnet-lite0 (digits)": ("effnet-lite0-image-clf", image_pool(
            args.image_n * max(scales)), args.image_n, args.frozen_epochs,
            {"freeze": "all", "batch_size": 32}),
        "unfrozen char-text-clf (fortunes)": ("char-text-clf", text_pool(
            args.text_n * max(scales)), args.text_n, args.epochs,
            {"freeze": "none", "batch_size": 32}),
    }
    # warm-up: imports, weight files and first-call costs land before the clock
    zoo.train("char-text-clf", setups["unfrozen char-text-clf (fortunes)"][1][:64], None,
              WORK / "scale" / "warm", epochs=1, progress=False, loggers=[])
    zoo.create_model("effnet-lite0-image-clf", pretrained=True).predict(
        [{"image": setups["frozen effnet-lite0 (digits)"][1][0]["image"]}])
    res: dict[str, dict] = {}
    for label, (model, pool, n1, epochs, opts) in setups.items():
        res[label] = {"n1": n1, "points": {}}
        for k in scales:
            r = timed_train(model, pool[:n1 * k], WORK / "scale" / f"run-{model}-{k}x",
                            epochs, **opts)
            res[label]["points"][k] = r
            print(f"{label} {k}x ({n1 * k} examples): epochs {r['epochs']} s"
                  + (f", encoding pass {r['encode_s']:.1f} s" if r["encode_s"] else ""),
                  flush=True)
    return res


# ---------------------------------------------------------------- pictures
def plot_memory(rows: dict[str, dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(rows)
    imp = [rows[n]["import_mb"] for n in names]
    model = [rows[n]["ready_mb"] - rows[n]["import_mb"] for n in names]
    peak = [rows[n]["peak_mb"] for n in names]
    fig, ax = plt.subplots(figsize=(9, 4.5))
    x = range(len(names))
    ax.bar(x, imp, color="#bbbbbb", label="after import torch, zoo")
    ax.bar(x, model, bottom=imp, color="#4c72b0", label="+ model built, one prediction")
    ax.scatter(x, peak, marker="_", s=600, color="#c44e52", zorder=3, label="peak RSS")
    ax.set_xticks(list(x), [f"{n}\n{rows[n]['params_m']} M" for n in names], fontsize=8)
    ax.set_ylabel("RSS (MB)")
    ax.set_title("Memory per model (one fresh process each, CPU)")
    ax.set_ylim(0, 1.3 * max(peak))
    ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_scaling(res: dict[str, dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(res), figsize=(5 * len(res), 4), squeeze=False)
    for ax, (label, r) in zip(axes[0], res.items()):
        ks = sorted(r["points"])
        n = [r["n1"] * k for k in ks]
        t = [r["points"][k]["epoch_s"] for k in ks]
        ax.plot(n, t, "o-", label="median epoch (measured)")
        ax.plot(n, [t[0] * k / ks[0] for k in ks], "--", color="gray",
                label="linear from the smallest")
        enc = [r["points"][k]["encode_s"] for k in ks]
        if all(e is not None for e in enc):
            ax2 = ax.twinx()
            ax2.plot(n, enc, "s:", color="#55a868", label="encoding pass (once)")
            ax2.set_ylabel("encoding pass (s)", color="#55a868")
            ax2.legend(loc="lower right", fontsize=8)
        ax.set_xlabel("training examples")
        ax.set_ylabel("seconds per epoch")
        ax.set_title(label, fontsize=10)
        ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", help="comma-separated; default: the ready ones + "
                                     "minilm-text-clf")
    ap.add_argument("--image-n", type=int, default=80, help="digits at 1x")
    ap.add_argument("--text-n", type=int, default=200, help="fortunes at 1x")
    ap.add_argument("--scales", default="1,2,4")
    ap.add_argument("--epochs", type=int, default=4,
                    help="epochs per unfrozen run (the median is taken)")
    ap.add_argument("--frozen-epochs", type=int, default=12,
                    help="epochs per frozen run: cached epochs are short, so more of them")
    ap.add_argument("--skip-memory", action="store_true")
    ap.add_argument("--skip-epochs", action="store_true")
    ap.add_argument("--memory-one", help=argparse.SUPPRESS)  # one model in this process
    args = ap.parse_args()
    if args.memory_one:
        print("ROW", json.dumps(memory_one(args.memory_one)), flush=True)
        return
    import os

    import zoo

    w = WORK / "scale"
    w.mkdir(parents=True, exist_ok=True)
    figures: dict = {"loadavg_start": round(os.getloadavg()[0], 1)}
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs (a shared machine "
          f"makes sub-second epochs noisy)", flush=True)
    if not args.skip_memory:
        names = (args.models.split(",") if args.models
                 else zoo.list_models(ready=True) + ["minilm-text-clf"])
        mem = memory(names)
        print(f"\n{'model':28} {'params':>7} {'import':>7} {'ready':>7} {'model':>7} "
              f"{'peak':>7}  prediction on a real input")
        print(f"{'':28} {'(M)':>7} {'(MB)':>7} {'(MB)':>7} {'(+MB)':>7} {'(MB)':>7}")
        for n, r in mem.items():
            print(f"{n:28} {r['params_m']:7.1f} {r['import_mb']:7d} {r['ready_mb']:7d} "
                  f"{r['ready_mb'] - r['import_mb']:7d} {r['peak_mb']:7d}  "
                  f"{r['input']} -> {r['prediction']}")
        if mem:
            plot_memory(mem, w / "memory.png")
            print("wrote", w / "memory.png")
        figures["memory_mb"] = {n: {"import": r["import_mb"], "ready": r["ready_mb"],
                                    "peak": r["peak_mb"]} for n, r in mem.items()}
    if not args.skip_epochs:
        res = scaling(args)
        print(f"\n{'setup':36} {'scale':>5} {'examples':>8} {'epoch s':>8} {'ratio':>6} "
              f"{'encode s':>9} {'ratio':>6}")
        figures["epoch_ratio"] = {}
        for label, r in res.items():
            pts = r["points"]
            k0 = min(pts)
            for k, p in sorted(pts.items()):
                ratio = p["epoch_s"] / pts[k0]["epoch_s"]
                enc = (f"{p['encode_s']:9.2f} {p['encode_s'] / pts[k0]['encode_s']:6.2f}"
                       if p["encode_s"] else f"{'-':>9} {'-':>6}")
                print(f"{label:36} {k:4d}x {r['n1'] * k:8d} {p['epoch_s']:8.3f} "
                      f"{ratio:6.2f} {enc}")
            figures["epoch_ratio"][label] = {f"{k}x": round(p["epoch_s"] / pts[k0]["epoch_s"],
                                                            2) for k, p in sorted(pts.items())}
        plot_scaling(res, w / "epoch_scaling.png")
        print("wrote", w / "epoch_scaling.png")
    figures["loadavg_end"] = round(os.getloadavg()[0], 1)
    report("scale", figures)


if __name__ == "__main__":
    main()
