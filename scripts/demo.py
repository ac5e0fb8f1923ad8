"""The main job of `make demo`: list the registry, build a multimodal model by name with
real pretrained encoders, predict on a real photo and sentences, save it and load it back."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_XET", "1")  # the local stand-in Hub has no Xet
OUT = Path(os.environ.get("ZOO_DEMO_OUT", "out/demo"))


def step(title: str) -> None:
    print(f"\n== {title}", flush=True)


def main() -> None:
    import numpy as np
    import torch
    from PIL import Image
    from skimage import data

    import zoo

    OUT.mkdir(parents=True, exist_ok=True)
    step("zoo list --kind model   (the registry; no torch imported for this)")
    zoo_exe = Path(sys.executable).with_name("zoo")
    subprocess.run([str(zoo_exe), "list", "--kind", "model"], check=True)

    cat, coffee = OUT / "cat.png", OUT / "coffee.png"
    Image.fromarray(data.chelsea()).save(cat)
    Image.fromarray(data.coffee()).save(coffee)
    step("zoo list --ready   (models whose every part, head included, has real weights)")
    subprocess.run([str(zoo_exe), "list", "--ready"], check=True)
    step("zoo.create_model('efficientnet-lite0-imagenet', pretrained=True).predict(...)")
    ready = zoo.create_model("efficientnet-lite0-imagenet", pretrained=True)
    for path, p in zip((cat, coffee), ready.predict([{"image": str(cat)}, {"image": str(coffee)}])):
        print(f"  {path.name:11} -> {p['label']!r} ({p['score']:.2f})")

    step("zoo.create_model('minilm-effnet-clf', pretrained=True)")
    t = time.perf_counter()
    model = zoo.create_model("minilm-effnet-clf", pretrained=True, labels=["cat", "coffee"])
    print(f"{model!r}  built in {time.perf_counter() - t:.1f}s")

    inputs = [
        {"text": "a tabby cat resting", "image": str(cat)},
        {"text": "a cup of espresso on a saucer", "image": str(coffee)},
        {"text": "only a sentence, no picture"},  # a missing modality is fine
    ]
    step("model.predict(...)   (untrained head: scores are near 0.5 until `zoo train`)")
    import warnings

    warnings.filterwarnings("ignore", message=".*never trained")  # said just above
    preds = model.predict(inputs)
    for x, p in zip(inputs, preds):
        print(f"  {x['text']!r:38} -> {p['label']:6} {p['score']:.3f}")

    emb = zoo.create_model("minilm-l6", pretrained=True).embed(
        [{"text": "A cat sits on the mat."}, {"text": "A kitten is sitting on a rug."},
         {"text": "The stock market fell sharply today."}])["text"]
    emb = torch.nn.functional.normalize(emb, dim=-1)
    step("zoo.create_model('minilm-l6', pretrained=True).embed(...)   (real MiniLM weights)")
    print(f"  cos(cat, kitten) = {float(emb[0] @ emb[1]):.3f}   "
          f"cos(cat, stocks) = {float(emb[0] @ emb[2]):.3f}")

    step(f"model.save_pretrained('{OUT / 'model'}')  then  zoo.load(...)")
    model.save_pretrained(OUT / "model")
    for p in sorted((OUT / "model").rglob("*")):
        if p.is_file():
            print(f"  {p.relative_to(OUT / 'model')}  ({p.stat().st_size:,} bytes)")
    t = time.perf_counter()
    loaded = zoo.load(OUT / "model")
    print(f"loaded in {time.perf_counter() - t:.1f}s")
    same_weights = all(torch.equal(a, b) for a, b in
                       zip(model.state_dict().values(), loaded.state_dict().values()))
    same_preds = loaded.predict(inputs) == preds
    print(f"bit-identical weights: {same_weights}   identical predictions: {same_preds}")
    if not (same_weights and same_preds):
        sys.exit("demo failed: the loaded model differs")
    step("model.push_to_hub(...) then zoo.load('hf-hub:...')   (a local Hub-compatible server "
         "on 127.0.0.1: the offline stand-in for huggingface.co)")
    import huggingface_hub.constants

    from zoo.testing.hubserver import serve_in_thread

    with serve_in_thread(OUT / "hub", token="demo-token") as hub:
        os.environ.update(HF_ENDPOINT=hub.url, HF_TOKEN="demo-token", HF_HUB_OFFLINE="0",
                          HF_HUB_DISABLE_XET="1", HF_HUB_CACHE=str(OUT / "hf-cache"))
        huggingface_hub.constants.HF_HUB_OFFLINE = False  # only 127.0.0.1 is reachable
        url = model.push_to_hub("demo/minilm-effnet-clf", commit_message="demo upload")
        print(f"pushed: {url}")
        from_hub = zoo.load("hf-hub:demo/minilm-effnet-clf")
        same = from_hub.predict(inputs) == preds
        print(f"zoo.load('hf-hub:demo/minilm-effnet-clf'): identical predictions: {same}")
        if not same:
            sys.exit("demo failed: the model from the hub differs")
    print(json.dumps(preds[0], indent=1)[:300])
    print("\ndemo finished: see", OUT)
    del np


if __name__ == "__main__":
    main()
