"""Length-grouped batches for speech: epoch time of conformer-ctc-small on espeak-ng
sentences with batches grouped by length against plain random batches (padded to their
longest utterance), same data, same model, same seed. Prints the ratio.

    apt-get install espeak-ng fortunes
    .venv/bin/python bench/bench_group_length.py [--utterances 480 --epochs 3]
"""
from __future__ import annotations

import argparse
import random
import statistics

from _common import WORK, report
from bench_asr import SEEN, sentences, synth
from bench_cache import epoch_seconds

import zoo


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--utterances", type=int, default=480)
    ap.add_argument("--epochs", type=int, default=3)
    args = ap.parse_args()
    rng = random.Random(0)
    w = WORK / "asr-group"
    rows = [(s, rng.choice(SEEN), rng.randrange(130, 191, 10))
            for s in sentences(args.utterances)]
    train = synth(w, rows, "train")
    secs = {}
    for group in (False, True):
        out = w / f"run-{group}"
        zoo.train("conformer-ctc-small", train, None, out, epochs=args.epochs, lr=2e-3,
                  batch_size=16, freeze="none", group_by_length=group, progress=False)
        secs[group] = statistics.median(epoch_seconds(out))
        print(f"group_by_length={group}: epoch seconds "
              f"{[round(s, 1) for s in epoch_seconds(out)]}", flush=True)
    ratio = secs[False] / secs[True]
    print(f"median epoch: grouped {secs[True]:.1f} s vs random batches {secs[False]:.1f} s: "
          f"{ratio:.2f}x faster")
    report("group_length", {"grouped_epoch_s": round(secs[True], 1),
                            "random_epoch_s": round(secs[False], 1), "ratio": round(ratio, 2)})


if __name__ == "__main__":
    main()
