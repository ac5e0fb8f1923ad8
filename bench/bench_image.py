"""Image classification on scikit-learn's digits (8x8 scans, upscaled), a fixed 60/20/20
split: the registry's pretrained EfficientNet-Lite0 classifier against an SVC on raw pixels.

    .venv/bin/python bench/bench_image.py                 # `zoo train` with no flags
    .venv/bin/python bench/bench_image.py --mode frozen   # probe only, --epochs 10
    .venv/bin/python bench/bench_image.py --mode finetune --size 128 --epochs 6

The default runs the command a user would type, ``zoo train effnet-lite0-image-clf
--train train.jsonl --eval val.jsonl --out DIR`` (LP-FT: the probe, then fine-tuning when
the probe is weak), and scores the saved model on the test split it never saw.
"""
from __future__ import annotations

import argparse
import json

from _common import WORK, Timer, report

import zoo
from zoo.testing.synthetic import digits_manifests


def svc_baseline(data) -> float:
    import numpy as np
    from sklearn.datasets import load_digits
    from sklearn.svm import SVC

    d = load_digits()

    def xy(path):
        rows = [json.loads(x) for x in path.read_text().splitlines()]
        idx = [int(r["image"].split("/")[-1][:4]) for r in rows]
        return d.data[idx] / 16.0, d.target[idx]

    (xtr, ytr), (xte, yte) = xy(data["train"]), xy(data["test"])
    return float(np.mean(SVC().fit(xtr, ytr).predict(xte) == yte))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--mode", choices=["default", "frozen", "finetune"], default="default")
    ap.add_argument("--epochs", type=int, default=10, help="frozen / finetune modes")
    ap.add_argument("--size", type=int, default=224, help="network input size (not default)")
    ap.add_argument("--probe-init", choices=["lbfgs", "random"], default="lbfgs",
                    help="frozen mode: the probe's start (zoo train --probe-init)")
    args = ap.parse_args()
    data = digits_manifests(WORK / "digits32", size=32)
    svc = svc_baseline(data)
    out = WORK / f"image-run-{args.mode}"
    if args.mode == "default":
        import subprocess
        import sys

        cmd = [sys.executable, "-m", "zoo", "train", "effnet-lite0-image-clf", "--train",
               str(data["train"]), "--eval", str(data["val"]), "--out", str(out), "--quiet"]
        print("$", " ".join(cmd[2:]), flush=True)
        with Timer() as t:
            subprocess.run(cmd, check=True)
        s = json.loads((out / "training.json").read_text())
    else:
        model = zoo.create_model("effnet-lite0-image-clf", pretrained=True, encoders={
            "image": {"name": "efficientnet-lite0",
                      "data_config": {"input_size": [3, args.size, args.size]}}})
        with Timer() as t:
            s = zoo.train(model, data["train"], data["val"], out, epochs=args.epochs,
                          freeze="none" if args.mode == "finetune" else "all", lr=2e-3,
                          batch_size=32, encoder_lr=3e-4, probe_init=args.probe_init)
    test = zoo.evaluate(out, data["test"])
    probe = (s.get("probe_best") or {}).get("accuracy")
    init = s.get("probe_init") or {}
    print(f"zoo effnet-lite0 ({args.mode}): val {s['best']['accuracy']:.4f}"
          + (f" (closed-form probe start: val {init['eval_accuracy']:.4f})"
             if init.get("eval_accuracy") is not None else "")
          + (f" (probe {probe:.4f}, then fine-tuned)" if s.get("finetuned") else "")
          + f", test accuracy {test['accuracy']:.4f} (f1 {test['f1_macro']:.4f}); SVC on raw "
          f"pixels {svc:.4f}; train {t.s:.0f}s (epochs run: {s['epochs_run']})")
    report(f"image-{args.mode}", {
        "test_accuracy": round(test["accuracy"], 4), "f1_macro": round(test["f1_macro"], 4),
        "svc": round(svc, 4), "mode": args.mode, "epochs_run": s["epochs_run"],
        "finetuned": s.get("finetuned"), "probe_val": probe, "train_s": round(t.s),
        "probe_init": args.probe_init})


if __name__ == "__main__":
    main()
