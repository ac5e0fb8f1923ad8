"""A task that needs both modalities: a digit image plus a text instruction ("add three",
"plus two", ...) -> the resulting digit mod 10. Neither modality alone says anything about
the answer (the added number is uniform), so each alone stays at chance.

Two stages, as one adapts encoders to a domain: (1) fine-tune EfficientNet-Lite0 (ImageNet)
on the digits of the training split (128 px, as bench_image.py --finetune); (2) compose it
with pretrained MiniLM, both frozen (features cached), and train each of the four fusions.
The frozen ImageNet features alone cap digit accuracy near 0.95, and the fused answer needs
the digit right.

    .venv/bin/python bench/bench_multimodal.py [--epochs 40] [--fusions concat-mlp,...]
        [--probe-init lbfgs|random] [--no-single]
"""
from __future__ import annotations

import argparse
import json
import random

from _common import WORK, Timer, report

import zoo
from zoo.testing.synthetic import NUMBER_WORDS, digits_manifests

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


def image_encoder(size: int, epochs: int):
    """Stage 1: EfficientNet-Lite0 fine-tuned on the digits of the training split (reused
    when a previous run trained it with the same settings)."""
    data = digits_manifests(WORK / "digits32", size=32)
    out = WORK / f"mm-stage1-{size}px-{epochs}ep"
    if not (out / "training.json").exists():
        model = zoo.create_model("effnet-lite0-image-clf", pretrained=True, encoders={
            "image": {"name": "efficientnet-lite0",
                      "data_config": {"input_size": [3, size, size]}}})
        with Timer() as t:
            zoo.train(model, data["train"], data["val"], out, epochs=epochs, freeze="none",
                      lr=2e-3, encoder_lr=3e-4, batch_size=32, progress=False)
        print(f"stage 1: image encoder fine-tuned on digits ({t.s:.0f}s)", flush=True)
    model = zoo.load(out)
    acc = zoo.evaluate(model, data["test"], write=False)["accuracy"]
    print(f"stage 1: digit test accuracy {acc:.4f}", flush=True)
    return model


def compose_with(name: str, image_model, size: int, **overrides):
    """Stage 2 model: the stage-1 image encoder (+ pretrained MiniLM), a new fusion and head."""
    model = zoo.create_model(name, pretrained=True, **overrides,
                             encoders={"image": {"name": "efficientnet-lite0",
                                                 "data_config": {"input_size": [3, size, size]}}})
    model.encoders["image"].load_state_dict(image_model.encoders["image"].state_dict())
    model.config["encoders"]["image"]["weights"] = "fine-tuned on digits (bench stage 1)"
    return model


def run(name, model, paths, epochs, probe_init="lbfgs"):
    out = WORK / f"mm-{name}"
    with Timer() as t:
        zoo.train(model, paths["train"], paths["val"], out, epochs=epochs, freeze="all",
                  lr=2e-3, batch_size=64, progress=False, probe_init=probe_init)
    acc = zoo.evaluate(out, paths["test"])["accuracy"]
    print(f"{name:28} test accuracy {acc:.4f}   ({t.s:.0f}s)", flush=True)
    return acc


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--epochs", type=int, default=40, help="stage 2 (fusion) epochs")
    ap.add_argument("--image-epochs", type=int, default=6, help="stage 1 epochs")
    ap.add_argument("--size", type=int, default=128, help="image input size")
    ap.add_argument("--fusions", default="concat-mlp,gated,cross-attention,late")
    ap.add_argument("--probe-init", default="lbfgs", choices=["lbfgs", "random"],
                    help="stage 2's probe start (zoo train --probe-init)")
    ap.add_argument("--no-single", action="store_true", help="skip the one-modality runs")
    args = ap.parse_args()
    paths = build()
    image_model = image_encoder(args.size, args.image_epochs)
    results = {}
    for fusion in args.fusions.split(","):
        model = compose_with("minilm-effnet-clf", image_model, args.size,
                             fusion={"name": fusion, "dim": 256})
        results[fusion] = run(f"image+text, {fusion}", model, paths, args.epochs,
                              args.probe_init)
    if not args.no_single:
        image_only = compose_with("effnet-lite0-image-clf", image_model, args.size)
        for modality, model in (("image", image_only), ("text", "minilm-text-clf")):
            results[f"{modality} only"] = run(f"{modality} only", model,
                                              only(paths, modality), args.epochs,
                                              args.probe_init)
    report("multimodal", {**{k: round(v, 4) for k, v in results.items()},
                          "probe_init": args.probe_init})


if __name__ == "__main__":
    main()
