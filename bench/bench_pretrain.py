"""Contrastive pretraining on digit images with captions that name the digit: recall@1 and
zero-shot classification of held-out digits from ten text prompts, before and after
pretraining (pretrained EfficientNet-Lite0 + MiniLM, frozen; projections trained).

    .venv/bin/python bench/bench_pretrain.py [--epochs 30]
"""
from __future__ import annotations

import argparse
import json
import random

from _common import WORK, Timer, report

import zoo
from zoo.build.compose import compose
from zoo.testing.synthetic import NUMBER_WORDS, digits_manifests

CAPTIONS = ["a photo of the digit {}", "the number {}", "a handwritten {}", "{} written by hand"]
PROMPT = "a photo of the digit {}"


def pairs(seed: int = 0):
    base = digits_manifests(WORK / "digits32", size=32)
    rng = random.Random(seed)
    out = {}
    for split in ("train", "val", "test"):
        rows = [json.loads(x) for x in base[split].read_text().splitlines()]
        path = WORK / "pretrain" / f"{split}.jsonl"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("".join(json.dumps({
            "image": str(base[split].parent / r["image"]),
            "text": rng.choice(CAPTIONS).format(NUMBER_WORDS[int(r["label"])]),
            "label": r["label"]}) + "\n" for r in rows))
        out[split] = path
    return out


def zero_shot(model, path) -> float:
    rows = [json.loads(x) for x in path.read_text().splitlines()]
    preds = model.zero_shot([{"image": r["image"]} for r in rows],
                            labels=[PROMPT.format(w) for w in NUMBER_WORDS])
    return sum(p["label"] == PROMPT.format(NUMBER_WORDS[int(r["label"])])
               for p, r in zip(preds, rows)) / len(rows)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--epochs", type=int, default=30)
    args = ap.parse_args()
    data = pairs()
    # pairs only for pretraining: no labels are used
    for split in ("train", "val"):
        rows = [json.loads(x) for x in data[split].read_text().splitlines()]
        data[split].write_text("".join(json.dumps({k: r[k] for k in ("image", "text")}) + "\n"
                                       for r in rows))
    model = compose("retrieval", {"image": "efficientnet-lite0", "text": "minilm-l6"},
                    {"name": "contrastive", "dim": 256}, pretrained=True, name="digits-clip")
    before_zs = zero_shot(model, data["test"])
    before = zoo.evaluate(model, data["test"], write=False)
    out = WORK / "pretrain-run"
    with Timer() as t:
        zoo.train(model, data["train"], data["val"], out, epochs=args.epochs, lr=1e-3,
                  batch_size=128, progress=False)
    after_model = zoo.load(out)
    after_zs = zero_shot(after_model, data["test"])
    after = zoo.evaluate(out, data["test"])
    print(f"before pretraining: zero-shot accuracy {before_zs:.4f}, recall@1 "
          f"{before['recall_at_1']:.4f}")
    print(f"after  pretraining: zero-shot accuracy {after_zs:.4f}, recall@1 "
          f"{after['recall_at_1']:.4f} (image->text {after['image_to_text_r1']:.4f}, "
          f"text->image {after['text_to_image_r1']:.4f}); {t.s:.0f}s")
    report("pretrain", {"zero_shot_before": round(before_zs, 4),
                        "zero_shot_after": round(after_zs, 4),
                        "recall_at_1_before": round(before["recall_at_1"], 4),
                        "recall_at_1_after": round(after["recall_at_1"], 4),
                        "i2t_r1_after": round(after["image_to_text_r1"], 4),
                        "epochs": args.epochs, "train_s": round(t.s)})


if __name__ == "__main__":
    main()
