"""Detection: digits pasted on 128x128 canvases with exact boxes (COCO JSON); the
registry's FCOS detector on pretrained EfficientNet-Lite0; mAP by pycocotools on held-out
images drawn from held-out digit scans.

    .venv/bin/python bench/bench_detection.py [--train 800 --epochs 25]
"""
from __future__ import annotations

import argparse

from _common import WORK, Timer, report

import zoo
from zoo.testing.synthetic import digit_detection


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--train", type=int, default=800)
    ap.add_argument("--test", type=int, default=200)
    ap.add_argument("--epochs", type=int, default=25)
    ap.add_argument("--finetune", action="store_true")
    args = ap.parse_args()
    w = WORK / "detection"
    pool = list(range(1797))
    train = digit_detection(w, args.train, seed=1, name="train", pool=pool[:1200])
    val = digit_detection(w, 100, seed=2, name="val", pool=pool[1200:1500])
    test = digit_detection(w, args.test, seed=3, name="test", pool=pool[1500:])
    out = w / "run"
    with Timer() as t:
        s = zoo.train("effnet-lite0-fcos", train, val, out, epochs=args.epochs, lr=2e-3,
                      batch_size=16, freeze="none" if args.finetune else "all",
                      encoder_lr=2e-4)
    m = zoo.evaluate(out, test)
    print(f"FCOS on EfficientNet-Lite0: val map {s['best']['map']:.4f}; test mAP@0.5 "
          f"{m['map_50']:.4f}, mAP@[.5:.95] {m['map']:.4f} on {m['n']} images; "
          f"train {t.s:.0f}s")
    report("detection", {"map_50": round(m["map_50"], 4), "map": round(m["map"], 4),
                         "epochs": args.epochs, "n_train": args.train, "train_s": round(t.s)})
    _picture(out, test)


def _picture(out, test) -> None:
    """A PNG of test images with predicted boxes (green) and true boxes (white)."""
    import json

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from PIL import Image

    model = zoo.load(out)
    coco = json.loads(test.read_text())
    fig, axes = plt.subplots(2, 4, figsize=(12, 6.4))
    for ax, img in zip(axes.flat, coco["images"][:8]):
        path = test.parent / img["file_name"]
        pred = model.predict([{"image": str(path)}], score_threshold=0.3)[0]
        ax.imshow(Image.open(path))
        for a in coco["annotations"]:
            if a["image_id"] == img["id"]:
                x, y, w, h = a["bbox"]
                ax.add_patch(plt.Rectangle((x, y), w, h, fill=False, ec="white", lw=1, ls="--"))
        for (x1, y1, x2, y2), lab, sc in zip(pred["boxes"], pred["labels"], pred["scores"]):
            ax.add_patch(plt.Rectangle((x1, y1), x2 - x1, y2 - y1, fill=False, ec="lime", lw=1.5))
            ax.text(x1, y1 - 2, f"{lab} {sc:.2f}", color="lime", fontsize=8)
        ax.axis("off")
    fig.suptitle("held-out test images: predictions (green), truth (dashed white)")
    fig.tight_layout()
    fig.savefig(out / "detection_examples.png", dpi=100)


if __name__ == "__main__":
    main()
