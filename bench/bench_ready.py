"""The ready models on real data, offline: parameters, build time, latency, peak memory and
the task's figure on real inputs; writes zoo/results.toml (what `zoo list --json` shows as
params / metrics) and prints the README table.

- image classifiers: top-1 on four real photos with known contents (scikit-image's chelsea,
  coffee, rocket; matplotlib's grace_hopper), a sanity check of the pretrained head, not an
  ImageNet accuracy (ImageNet is not available offline);
- face detection: one face (score >= 0.9) found on scikit-image's astronaut and on Grace
  Hopper, none on the cat and the coffee;
- speech recognition: WER / CER (jiwer) on the five LibriVox clips of Debian's
  pocketsphinx-testdata, normalised as bench_whisper.py does (lower case, punctuation
  removed, numbers in words as the references write them).

    ../.venv/bin/python bench_ready.py [--models a,b] [--no-write]
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import resource
import statistics
import time
from pathlib import Path

import _common  # noqa: F401  (offline switches)
from bench_whisper import clips as librivox, normalize  # one normalisation for both benches

ROOT = Path(__file__).resolve().parent.parent
# expected top-1 (any of these ImageNet classes) for each photo
PHOTOS = {"chelsea": ("tabby, tabby cat", "tiger cat", "Egyptian cat", "Persian cat"),
          "coffee": ("espresso", "cup", "coffee mug"),
          "rocket": ("missile", "projectile, missile", "space shuttle"),
          "grace_hopper": ("military uniform",)}


def photos() -> dict[str, object]:
    import matplotlib.cbook as cbook
    from PIL import Image
    from skimage import data

    out = {n: Image.fromarray(getattr(data, n)()) for n in ("chelsea", "coffee", "rocket")}
    with cbook.get_sample_data("grace_hopper.jpg") as f:
        out["grace_hopper"] = Image.open(f).convert("RGB")
    return out


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measure(name: str) -> dict:
    import torch

    import zoo

    t = time.perf_counter()
    model = zoo.create_model(name, pretrained=True)
    build = time.perf_counter() - t
    params = sum(p.numel() for p in model.parameters())
    if model.task == "classification":
        imgs = photos()
        inputs = [{"image": im} for im in imgs.values()]
        times = []
        for _ in range(5):
            t = time.perf_counter()
            preds = model.predict(inputs)
            times.append(time.perf_counter() - t)
        hits = sum(p["label"] in PHOTOS[n] for n, p in zip(imgs, preds))
        metrics = {"photos_top1": hits / len(imgs),
                   "ms_per_image": round(1000 * statistics.median(times) / len(inputs), 1)}
        detail = {n: p["label"] for n, p in zip(imgs, preds)}
    elif model.task == "detection":  # faces: two photos with one face, two with none
        from PIL import Image
        from skimage import data

        imgs = photos()
        imgs = {"astronaut": Image.fromarray(data.astronaut()),
                "grace_hopper": imgs["grace_hopper"], "chelsea": imgs["chelsea"],
                "coffee": imgs["coffee"]}
        times = []
        for _ in range(3):
            t = time.perf_counter()
            preds = model.predict([{"image": im} for im in imgs.values()])
            times.append(time.perf_counter() - t)
        found = [sum(s >= 0.9 for s in p["scores"]) for p in preds]
        metrics = {"faces_found": sum(n == 1 for n in found[:2]) / 2,
                   "false_faces": sum(found[2:]),
                   "ms_per_image": round(1000 * statistics.median(times) / len(imgs), 1)}
        detail = {n: [[round(v) for v in b] for b in p["boxes"]] for n, p in zip(imgs, preds)}
    else:
        import jiwer

        clips = librivox()
        t = time.perf_counter()
        preds = model.predict([{"audio": str(p)} for p, _ in clips])
        seconds = time.perf_counter() - t
        audio = sum(__import__("soundfile").info(str(p)).duration for p, _ in clips)
        refs = [normalize(r) for _, r in clips]
        hyps = [normalize(p["text"]) for p in preds]
        metrics = {"librivox_wer": round(float(jiwer.wer(refs, hyps)), 4),
                   "librivox_cer": round(float(jiwer.cer(refs, hyps)), 4),
                   "real_time_factor": round(seconds / audio, 3)}
        detail = dict(zip([p.stem[-4:] for p, _ in clips], hyps))
    del torch
    return {"params": params, "build_s": round(build, 2),
            "peak_rss_mb": round(rss_mb(), 0), "metrics": metrics, "detail": detail}


def write_results(rows: dict[str, dict]) -> Path:
    path = ROOT / "zoo" / "results.toml"
    date = dt.date.today().isoformat()
    lines = ["# Measured by bench/bench_ready.py (do not edit by hand; rerun it).", ""]
    for name, r in sorted(rows.items()):
        lines.append(f"[models.{name}]")
        lines.append(f"params = {r['params']}")
        metrics = ", ".join(f"{k} = {json.dumps(v)}" for k, v in r["metrics"].items())
        lines.append(f"metrics = {{ {metrics} }}")
        lines.append(f'measured_by = "bench/bench_ready.py, {date}, 2-core CPU"')
        lines.append("")
    path.write_text("\n".join(lines))
    return path


def main() -> None:
    import zoo

    ap = argparse.ArgumentParser()
    ap.add_argument("--models", help="comma-separated; default: every ready model")
    ap.add_argument("--no-write", action="store_true", help="do not rewrite zoo/results.toml")
    ap.add_argument("--one", help=argparse.SUPPRESS)  # measure one model in this process
    args = ap.parse_args()
    if args.one:
        print("ROW", json.dumps(measure(args.one)), flush=True)
        return
    import subprocess
    import sys

    names = args.models.split(",") if args.models else zoo.list_models(ready=True)
    rows = {}
    for name in names:  # one process per model: its peak RSS is its own
        out = subprocess.run([sys.executable, __file__, "--one", name], capture_output=True,
                             text=True, check=True).stdout
        rows[name] = json.loads(next(x[4:] for x in out.splitlines() if x.startswith("ROW ")))
        print(name, json.dumps(rows[name]), flush=True)
    print("\n| model | params | figure on real data | latency | peak RSS (process) |")
    print("| --- | --- | --- | --- | --- |")
    for name, r in rows.items():
        m = r["metrics"]
        if "photos_top1" in m:
            fig = f"top-1 on 4 real photos: {m['photos_top1']:.2f}"
            lat = f"{m['ms_per_image']} ms/image"
        elif "faces_found" in m:
            fig = f"faces found {m['faces_found']:.2f}, false faces {m['false_faces']}"
            lat = f"{m['ms_per_image']} ms/image"
        else:
            fig = f"LibriVox WER {m['librivox_wer']:.3f} (CER {m['librivox_cer']:.3f})"
            lat = f"RTF {m['real_time_factor']}"
        print(f"| `{name}` | {r['params'] / 1e6:.1f} M | {fig} | {lat} | "
              f"{r['peak_rss_mb']:.0f} MB |")
    if not args.no_write:
        print("wrote", write_results(rows))


if __name__ == "__main__":
    main()
