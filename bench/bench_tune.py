"""Does ``zoo tune`` pay for itself? `zoo train char-text-clf` with its default options
(10 epochs, lr 1e-3, weight decay 0.01, best epoch on val) against `zoo tune
char-text-clf` (Optuna TPE + median pruning) on the Russian fortunes topics split of
bench_text_multilingual.py (10 topics, 60/20/20). The search chooses on the validation
split only; both models are scored on the held-out test split, which the search never sees.

The space is bounded for a CPU budget (12 trials in about the time of 3-4 default runs):
lr and weight decay on log scales around the defaults, 2-6 epochs (val accuracy plateaus
by epoch 3-5 on this data: a first run with zoo tune's default space, 3-15 epochs, took
80-250 s per trial on the shared cores). ``--default-space`` uses zoo tune's own.

    .venv/bin/python bench/bench_tune.py [--trials 12] [--lang ru] [--default-space]
"""
from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys

from _common import WORK, Timer, report
from bench_text_multilingual import TOPICS, build

import zoo

MODEL = "char-text-clf"
SPACE = ["lr=3e-4:3e-2:log", "epochs=2:6:int", "weight_decay=1e-4:0.3:log"]


def run(cmd: list[str]) -> float:
    print("$ zoo", " ".join(cmd[3:]), flush=True)
    with Timer() as t:
        subprocess.run(cmd, check=True)
    return t.s


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--lang", choices=sorted(TOPICS), default="ru")
    ap.add_argument("--trials", type=int, default=12)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--param", action="append",
                    help=f"a searched option as for zoo tune (default: {' '.join(SPACE)})")
    ap.add_argument("--default-space", action="store_true", help="zoo tune's default space")
    args = ap.parse_args()
    paths = build(args.lang, WORK / f"fortunes-{args.lang}")
    zoo_cmd = [sys.executable, "-m", "zoo"]
    default_out, tune_out = WORK / "tune-default", WORK / "tune-search"
    for folder in (default_out, tune_out):  # fresh: zoo tune would continue an old study
        shutil.rmtree(folder, ignore_errors=True)
    default_s = run([*zoo_cmd, "train", MODEL, "--train", str(paths["train"]), "--eval",
                     str(paths["val"]), "--out", str(default_out), "--quiet"])
    space = [] if args.default_space else (args.param or SPACE)
    flags = [x for p in space for x in ("--param", p)]
    tune_s = run([*zoo_cmd, "tune", MODEL, "--train", str(paths["train"]), "--eval",
                  str(paths["val"]), "--out", str(tune_out), "--trials", str(args.trials),
                  "--seed", str(args.seed), *flags])
    # write=False: eval_results.json keeps the val metrics the cards report
    default_test = zoo.evaluate(default_out, paths["test"], write=False)
    tuned_test = zoo.evaluate(tune_out / "best", paths["test"], write=False)
    record = json.loads((tune_out / "tune.json").read_text())
    default_val = json.loads((default_out / "eval_results.json").read_text())["metrics"]
    figures = {"lang": args.lang, "model": MODEL, "trials": args.trials,
               "complete": record["counts"]["complete"], "pruned": record["counts"]["pruned"],
               "space": {k: v for k, v in record["space"].items()},
               "best_params": record["best"]["params"],
               "default_val_accuracy": round(default_val["accuracy"], 4),
               "tuned_val_accuracy": round(record["best"]["value"], 4),
               "default_test_accuracy": round(default_test["accuracy"], 4),
               "tuned_test_accuracy": round(tuned_test["accuracy"], 4),
               "default_test_f1": round(default_test["f1_macro"], 4),
               "tuned_test_f1": round(tuned_test["f1_macro"], 4),
               "default_s": round(default_s), "tune_s": round(tune_s),
               "time_ratio": round(tune_s / default_s, 1)}
    gain = tuned_test["accuracy"] - default_test["accuracy"]
    print(f"fortunes-{args.lang} topics, {MODEL}: default zoo train test accuracy "
          f"{default_test['accuracy']:.4f} (val {default_val['accuracy']:.4f}, "
          f"{default_s:.0f} s); zoo tune, {args.trials} trials ({figures['complete']} "
          f"completed, {figures['pruned']} pruned): test accuracy "
          f"{tuned_test['accuracy']:.4f} (val {record['best']['value']:.4f}, {tune_s:.0f} s, "
          f"{tune_s / default_s:.1f}x the default's time); "
          f"{'gain' if gain > 0 else 'NO GAIN'} {gain:+.4f}; best {record['best']['params']}")
    report(f"tune-{args.lang}", figures)


if __name__ == "__main__":
    main()
