"""Robustness on real data, offline: accuracy under each corruption of ``zoo eval
--robustness`` at severities 1-3.

(a) the registry's ready ImageNet classifier (efficientnet-lite0-imagenet) on the real
    photos that ship with scikit-image and matplotlib, each with the ImageNet classes that
    name what it shows (written out below; top-1 counts when it is one of them), under
    ImageNet-C's noise, blur, JPEG, brightness and contrast: top-1 hits and the mean
    probability on the right classes (a smoother figure on seven photos);
(b) text classifiers trained here on Debian's fortunes (10 topics, the split of
    bench_text.py): the frozen MiniLM probe (``minilm-text-clf --freeze all``) and, with
    ``--text-models minilm-text-clf,char-text-clf`` (3 more minutes), ``char-text-clf``
    (hashed word + character n-grams from scratch), evaluated with
    ``zoo.evaluate(..., robustness=True, slices=["length"])`` on the test fortunes.

Prints the tables, the medians of the timings and one RESULT line; writes
robustness_imagenet.png and each text model's robustness.json / .png / slices.json under
$ZOO_BENCH_DIR (/tmp/zoo-bench).

    ../.venv/bin/python bench_robustness.py [--text-models minilm-text-clf,char-text-clf]
                                            [--no-image]
"""
from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

from _common import WORK, Timer, report

#: what each photo shows, as ImageNet-1k class names: top-1 is right when it is one of them
#: (astronaut is left out: ImageNet has no class for a person or a space suit)
PHOTOS = {
    "chelsea": ("tabby, tabby cat", "tiger cat", "Egyptian cat"),
    "coffee": ("espresso", "cup", "coffee mug"),
    "rocket": ("missile", "projectile, missile", "space shuttle"),
    "grace_hopper": ("military uniform", "bow tie, bow-tie, bowtie", "Windsor tie"),
    "camera": ("tripod", "reflex camera", "Polaroid camera, Polaroid Land camera"),
    "motorcycle_left": ("moped", "motor scooter, scooter", "disk brake, disc brake"),
    "clock_motion": ("wall clock", "analog clock"),  # a photo already motion-blurred
}


def save_photos(folder: Path) -> dict[str, Path]:
    """The photos as PNG files (grey ones as RGB)."""
    import os

    import matplotlib.cbook as cbook
    import skimage.data
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    root = Path(os.path.dirname(skimage.data.__file__))
    out = {}
    for name in PHOTOS:
        if name == "grace_hopper":
            with cbook.get_sample_data("grace_hopper.jpg") as f:
                im = Image.open(f).convert("RGB")
        else:
            im = Image.open(next(root.glob(f"{name}.*"))).convert("RGB")
        out[name] = folder / f"{name}.png"
        im.save(out[name])
    return out


def imagenet(model_name: str = "efficientnet-lite0-imagenet") -> dict:
    import zoo
    from zoo.plugin import Example
    from zoo.robustness import plot_robustness, run

    files = save_photos(WORK / "robust-photos")
    examples = [Example(i + 1, {"image": str(p)}, {"label": n})
                for i, (n, p) in enumerate(files.items())]
    right = [PHOTOS[n] for n in files]
    model = zoo.create_model(model_name, pretrained=True)
    predict_s: list[float] = []

    def score(inputs):
        t = time.perf_counter()
        preds = model.predict(inputs)
        predict_s.append((time.perf_counter() - t) / len(inputs))
        return {"top1": sum(p["label"] in ok for p, ok in zip(preds, right)) / len(preds),
                "right_prob": statistics.mean(sum(p["scores"].get(c, 0.0) for c in ok)
                                              for p, ok in zip(preds, right))}

    clean = score([ex.inputs for ex in examples])
    marks: list[float] = []
    with Timer() as t:
        result = run(model.modalities, examples, score, clean, metric="top1",
                     higher_is_better=True, progress=lambda _: marks.append(time.perf_counter()))
    marks.append(time.perf_counter())
    per_run = [(b - a) / len(examples) for a, b in zip(marks, marks[1:])]  # corrupt + predict
    plot_robustness(result, WORK / "robustness_imagenet.png")
    return {"model": model_name, "photos": len(examples), "result": result,
            "seconds": round(t.s, 1),
            "ms_predict_per_image": round(1000 * statistics.median(predict_s[1:]), 1),
            "ms_corrupt_per_image": round(1000 * (statistics.median(per_run)
                                                  - statistics.median(predict_s[1:])), 1)}


def _with_length(src: Path, dst: Path) -> Path:
    """The test fortunes with a ``length`` column to slice by."""
    rows = [json.loads(x) for x in src.read_text().splitlines()]
    for r in rows:
        n = len(r["text"])
        r["length"] = "short (<100)" if n < 100 else "medium (100-249)" if n < 250 \
            else "long (250+)"
    dst.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    return dst


def text(model_name: str, paths: dict) -> dict:
    import zoo

    out = WORK / f"robust-{model_name}"
    with Timer() as train_t:
        kw = {"freeze": "all"} if model_name.startswith("minilm") else {}
        zoo.train(model_name, paths["train"], paths["val"], out, progress=False, **kw)
    test = _with_length(paths["test"], WORK / "fortunes-test-length.jsonl")
    with Timer() as eval_t:
        m = zoo.evaluate(out, test, robustness=True, slices=["length"],
                         out=WORK / f"robust-{model_name}-report")
    passes = 1 + sum(len(s) * 3 for s in m["robustness"]["corruptions"].values())
    return {"model": model_name, "result": m["robustness"], "slices": m["slices"],
            "n": m["n"], "train_s": round(train_t.s, 1), "eval_s": round(eval_t.s, 1),
            "ms_per_text_pass": round(1000 * eval_t.s / (passes * m["n"]), 1)}


def table(result: dict, metric: str) -> list[str]:
    lines = [f"  {'corruption':16} {'clean':>7} {'sev 1':>7} {'sev 2':>7} {'sev 3':>7}"]
    for suite in result["corruptions"].values():
        for name, by_sev in suite.items():
            lines.append(f"  {name:16} {result['clean'][metric]:7.3f}" + "".join(
                f" {by_sev[s][metric]:7.3f}" for s in ("1", "2", "3")))
    return lines


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--text-models", default="minilm-text-clf")
    ap.add_argument("--no-image", action="store_true")
    args = ap.parse_args()
    figures: dict = {}
    if not args.no_image:
        img = imagenet()
        print(f"\n{img['model']} on {img['photos']} real photos: top-1 (right-class probability)"
              f" under each corruption; {img['seconds']} s")
        for line in table(img["result"], "top1"):
            print(line)
        for line in table(img["result"], "right_prob"):
            print(line)
        print(f"  median ms per image: predict {img['ms_predict_per_image']}, corrupt "
              f"{img['ms_corrupt_per_image']}")
        figures["imagenet"] = {k: v for k, v in img.items() if k != "result"}
        figures["imagenet"]["top1"] = _compact(img["result"], "top1")
        figures["imagenet"]["right_prob"] = _compact(img["result"], "right_prob")
    from bench_text import build

    paths = build(WORK / "fortunes")
    for name in [m for m in args.text_models.split(",") if m]:
        res = text(name, paths)
        print(f"\n{name} on {res['n']} test fortunes (10 topics): accuracy under each "
              f"corruption; train {res['train_s']} s, robustness eval {res['eval_s']} s "
              f"({res['ms_per_text_pass']} ms per text and pass, corruption included)")
        for line in table(res["result"], "accuracy"):
            print(line)
        for group, f in res["slices"]["columns"]["length"].items():
            print(f"  length {group:18} n={f['n']:4} accuracy {f['accuracy']:.3f}")
        figures[name] = {"n": res["n"], "train_s": res["train_s"], "eval_s": res["eval_s"],
                         "ms_per_text_pass": res["ms_per_text_pass"],
                         "accuracy": _compact(res["result"], "accuracy"),
                         "length_gap": res["slices"]["gap"]["length"].get("accuracy")}
    report("robustness", figures)


def _compact(result: dict, metric: str) -> dict:
    out = {"clean": round(result["clean"][metric], 4)}
    for suite in result["corruptions"].values():
        for name, by_sev in suite.items():
            out[name] = [round(by_sev[s][metric], 4) for s in ("1", "2", "3")]
    return out


if __name__ == "__main__":
    main()
