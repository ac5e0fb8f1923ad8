"""Speech recognition on sentences spoken by espeak-ng (several voices and speeds): the
registry's conformer-CTC trained from scratch; CER/WER by jiwer on held-out sentences with
voices seen in training, and on a voice never seen in training.

    apt-get install espeak-ng fortunes
    .venv/bin/python bench/bench_asr.py [--utterances 3000 --epochs 12 --no-spec-augment]
"""
from __future__ import annotations

import argparse
import json
import random
import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from _common import WORK, Timer, report

import zoo
from zoo.testing.synthetic import speak

SEEN = ["en-us", "en-gb", "en-us+f3", "en-gb+m3", "en-029"]
UNSEEN = "en-gb-scotland+f2"


def sentences(n: int, seed: int = 0) -> list[str]:
    text = ""
    for f in ("fortunes", "cookie", "computers", "science", "literature", "people", "wisdom"):
        p = Path("/usr/share/games/fortunes") / f
        if p.exists():
            text += p.read_text(encoding="utf-8", errors="replace") + "\n"
    out = set()
    for chunk in re.split(r"[\n%]+|(?<=[.!?])\s+", text):
        s = " ".join(chunk.split())
        if 15 <= len(s) <= 70 and re.fullmatch(r"[A-Za-z ,.'?!]+", s):
            out.add(s)
    items = sorted(out)
    random.Random(seed).shuffle(items)
    return items[:n]


def synth(w: Path, rows: list[tuple[str, str, int]], name: str) -> Path:
    (w / name).mkdir(parents=True, exist_ok=True)

    def one(args):
        i, (text, voice, speed) = args
        f = w / name / f"{i:05d}.wav"
        if not f.exists():
            speak(text, f, voice=voice, speed=speed)
        return {"audio": f"{name}/{i:05d}.wav", "transcript": text, "voice": voice}

    with ThreadPoolExecutor(4) as pool:
        lines = list(pool.map(one, enumerate(rows)))
    path = w / f"{name}.jsonl"
    path.write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    return path


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--utterances", type=int, default=3000)
    ap.add_argument("--epochs", type=int, default=12)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--no-spec-augment", action="store_true",
                    help="train without SpecAugment (on by default for conformer-small)")
    args = ap.parse_args()
    rng = random.Random(0)
    sents = sentences(args.utterances + 400)
    train_s, test_s = sents[: args.utterances], sents[args.utterances:]
    w = WORK / "asr"
    pick = lambda s: (s, rng.choice(SEEN), rng.randrange(130, 191, 10))  # noqa: E731
    train = synth(w, [pick(s) for s in train_s], "train")
    val = synth(w, [pick(s) for s in test_s[:100]], "val")
    test_seen = synth(w, [pick(s) for s in test_s[100:300]], "test_seen")
    test_unseen = synth(w, [(s, UNSEEN, 160) for s in test_s[100:300]], "test_unseen")
    out = w / ("run-no-specaug" if args.no_spec_augment else "run")
    model = zoo.create_model("conformer-ctc-small", encoders={"audio": {
        "name": "conformer-small", "spec_augment": not args.no_spec_augment}})
    with Timer() as t:
        zoo.train(model, train, val, out, epochs=args.epochs, lr=2e-3,
                  batch_size=args.batch_size, warmup=0.08, freeze="none")
    seen = zoo.evaluate(out, test_seen, write=False)
    unseen = zoo.evaluate(out, test_unseen, write=False)
    zoo.evaluate(out, test_seen)  # eval_results.json: the seen-voice figures
    print(f"conformer-ctc-small{' (no SpecAugment)' if args.no_spec_augment else ''}, "
          f"{args.utterances} utterances x {args.epochs} epochs "
          f"({t.s / 60:.1f} min): held-out sentences, seen voices CER {seen['cer']:.4f} "
          f"WER {seen['wer']:.4f}; unseen voice ({UNSEEN}) CER {unseen['cer']:.4f} "
          f"WER {unseen['wer']:.4f}")
    report("asr", {"cer_seen": round(seen["cer"], 4), "wer_seen": round(seen["wer"], 4),
                   "cer_unseen": round(unseen["cer"], 4), "wer_unseen": round(unseen["wer"], 4),
                   "utterances": args.utterances, "epochs": args.epochs,
                   "spec_augment": not args.no_spec_augment,
                   "train_min": round(t.s / 60, 1)})


if __name__ == "__main__":
    main()
