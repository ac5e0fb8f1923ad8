"""Image classification on scikit-learn's digits (8x8 scans, upscaled), a fixed 60/20/20
split: the registry's pretrained EfficientNet-Lite0 classifier against an SVC on raw pixels.

    .venv/bin/python bench/bench_image.py [--epochs 8] [--finetune]
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
    ap.add_argument("--epochs", type=int, default=8)
    ap.add_argument("--finetune", action="store_true", help="train the encoder too")
    ap.add_argument("--size", type=int, default=224, help="network input size")
    args = ap.parse_args()
    data = digits_manifests(WORK / "digits32", size=32)
    svc = svc_baseline(data)
    out = WORK / "image-run"
    model = zoo.create_model("effnet-lite0-image-clf", pretrained=True, encoders={
        "image": {"name": "efficientnet-lite0",
                  "data_config": {"input_size": [3, args.size, args.size]}}})
    with Timer() as t:
        s = zoo.train(model, data["train"], data["val"], out, epochs=args.epochs,
                      freeze="none" if args.finetune else "all", lr=2e-3, batch_size=32,
                      encoder_lr=3e-4)
    test = zoo.evaluate(out, data["test"])
    print(f"zoo effnet-lite0 ({'fine-tuned' if args.finetune else 'frozen'}): val "
          f"{s['best']['accuracy']:.4f}, test accuracy {test['accuracy']:.4f} "
          f"(f1 {test['f1_macro']:.4f}); SVC on raw pixels {svc:.4f}; train {t.s:.0f}s")
    report("image", {"test_accuracy": round(test["accuracy"], 4), "svc": round(svc, 4),
                     "finetune": args.finetune, "epochs": args.epochs, "size": args.size,
                     "train_s": round(t.s)})


if __name__ == "__main__":
    main()
