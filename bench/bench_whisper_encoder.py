"""A pretrained Whisper encoder in a composition vs a speech encoder trained from scratch:
spoken-digit classification (the ten words "zero".."nine", espeak-ng) with the test voices
never heard in training. Same split, same head and fusion, same epochs for both:

- whisper: `whisper-tiny-en-encoder` (pretrained, frozen: features cached once) + concat-MLP;
- scratch: `conformer-tiny` trained from scratch + concat-MLP.

    apt-get install espeak-ng
    ../.venv/bin/python bench_whisper_encoder.py [--per-voice 6 --epochs 20]
"""
from __future__ import annotations

import argparse
import json
import random
from concurrent.futures import ThreadPoolExecutor

from _common import WORK, Timer, report

import zoo
from zoo.build.compose import compose
from zoo.testing.synthetic import NUMBER_WORDS, speak

TRAIN_VOICES = ["en-us", "en-gb", "en-us+f3", "en-gb+m3", "en-029", "en-gb-x-rp"]
TEST_VOICES = ["en-gb-scotland+f2", "en-us+m5"]  # held out: never heard in training


def build(per_voice: int, seed: int = 0) -> dict:
    rng = random.Random(seed)
    w = WORK / "spoken-digits"
    (w / "wav").mkdir(parents=True, exist_ok=True)
    jobs = [(word, voice, rng.randrange(120, 201, 10), k)
            for voice in TRAIN_VOICES + TEST_VOICES for word in NUMBER_WORDS
            for k in range(per_voice)]

    def one(job):
        word, voice, speed, k = job
        f = w / "wav" / f"{word}-{voice.replace('+', '_')}-{k}.wav"
        if not f.exists():
            speak(word, f, voice=voice, speed=speed)
        return {"audio": f"wav/{f.name}", "label": word, "voice": voice}

    with ThreadPoolExecutor(4) as pool:
        rows = list(pool.map(one, jobs))
    train = [r for r in rows if r["voice"] in TRAIN_VOICES]
    rng.shuffle(train)
    n_val = len(train) // 6
    parts = {"train": train[n_val:], "val": train[:n_val],
             "test": [r for r in rows if r["voice"] in TEST_VOICES]}
    out = {}
    for k, part in parts.items():
        out[k] = w / f"{k}.jsonl"
        out[k].write_text("".join(json.dumps({"audio": r["audio"], "label": r["label"]}) + "\n"
                                  for r in part))
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--per-voice", type=int, default=6, help="clips per word and voice")
    ap.add_argument("--epochs", type=int, default=20)
    args = ap.parse_args()
    data = build(args.per_voice)
    results = {}
    for name, encoder, freeze, lr in (("whisper", "whisper-tiny-en-encoder", "all", 2e-3),
                                      ("scratch", "conformer-tiny", "none", 2e-3)):
        model = compose("classification", {"audio": encoder},
                        head={"name": "classification", "labels": NUMBER_WORDS},
                        fusion={"name": "concat-mlp", "dim": 128}, pretrained=True,
                        name=f"digits-{name}")
        out = WORK / f"spoken-digits-{name}"
        with Timer() as t:
            zoo.train(model, data["train"], data["val"], out, epochs=args.epochs, lr=lr,
                      freeze=freeze, batch_size=32, progress=False)
        test = zoo.evaluate(out, data["test"], write=False)
        results[name] = {"test_accuracy": round(test["accuracy"], 3),
                         "f1_macro": round(test["f1_macro"], 3), "seconds": round(t.s)}
        print(name, results[name], flush=True)
    n = {k: sum(1 for _ in open(v)) for k, v in data.items()}
    report("whisper_encoder", {**results, "n": n, "epochs": args.epochs,
                               "test_voices": TEST_VOICES})


if __name__ == "__main__":
    main()
