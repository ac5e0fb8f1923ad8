"""A task that needs both modalities: a digit image plus a text instruction ("add three",
"plus two", ...) -> the resulting digit mod 10. Pretrained EfficientNet-Lite0 + MiniLM,
frozen (features cached), each of the four fusions; and each modality alone.

    .venv/bin/python bench/bench_multimodal.py [--epochs 30]
"""
from __future__ import annotations

import argparse
import json
import random

from _common import WORK, Timer, report

import zoo
from zoo.data.synthetic import NUMBER_WORDS, digits_manifests

TEMPLATES = ["add {}", "plus {}", "increase it by {}", "{} more", "count up {}"]


def build(seed: int = 0, per_image: int = 3):
    base = digits_manifests(WORK / "digits32", size=32)
    rng = random.Random(seed)
    w = WORK / "multimodal"
    w.mkdir(parents=True, exist_ok=True)
    paths = {}
    for split in ("train", "val", "test"):
        rows = []
        for line in base[split].read_text().splitlines():
            r = json.loads(line)
            for _ in range(per_image if split == "train" else 1):
                k = rng.randrange(10)
                rows.append({"image": str(base[split].parent / r["image"]),
                             "text": rng.choice(TEMPLATES).format(NUMBER_WORDS[k]),
                             "label": str((int(r["label"]) + k) % 10)})
        paths[split] = w / f"{split}.jsonl"
        paths[split].write_text("\n".join(json.dumps(x) for x in rows) + "\n")
    return paths


def only(paths, modality):
    out = {}
    for split, p in paths.items():
        rows = [json.loads(x) for x in p.read_text().splitlines()]
        out[split] = p.with_name(f"{split}-{modality}.jsonl")
        out[split].write_text("\n".join(json.dumps({modality: r[modality], "label": r["label"]})
                                        for r in rows) + "\n")
    return out


def run(name, model, paths, epochs):
    out = WORK / f"mm-{name}"
    with Timer() as t:
        zoo.train(model, paths["train"], paths["val"], out, epochs=epochs, freeze="all",
                  lr=2e-3, batch_size=64, progress=False)
    acc = zoo.evaluate(out, paths["test"])["accuracy"]
    print(f"{name:28} test accuracy {acc:.4f}   ({t.s:.0f}s)", flush=True)
    return acc


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--epochs", type=int, default=30)
    args = ap.parse_args()
    paths = build()
    results = {}
    for fusion in ("concat-mlp", "gated", "cross-attention", "late"):
        model = zoo.create_model("minilm-effnet-clf", pretrained=True,
                                 fusion={"name": fusion, "dim": 256})
        results[fusion] = run(f"image+text, {fusion}", model, paths, args.epochs)
    for modality, name in (("image", "effnet-lite0-image-clf"), ("text", "minilm-text-clf")):
        results[f"{modality} only"] = run(f"{modality} only", name, only(paths, modality),
                                          args.epochs)
    report("multimodal", {k: round(v, 4) for k, v in results.items()})


if __name__ == "__main__":
    main()
