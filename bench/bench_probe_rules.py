"""How the closed-form probe chooses C and the lemma weight, on the fortunes splits of
bench_text_multilingual.py (German and Russian): the same features and fits as `zoo train
text-clf` (tfidf-ngram's TF-IDF, the concat-MLP fusion's layer norm, zoo's L-BFGS
``fit_logistic`` along ``C_GRID``, lemma weight 0.25 or 0.5), replayed without the CLI, and
three rules for picking among the 12 fits on the validation split:

- ``log-loss``: the least eval cross-entropy (zoo's ``pick_c`` now);
- ``half-SE``: the most regularised fit within half a paired standard error of the best eval
  accuracy (the previous rule), C first, then the weight;
- ``argmax``: the best eval accuracy (ties to the stronger regularisation).

Each against TF-IDF character 2-5 grams + logistic regression (C tuned on val), the peer of
bench_text_multilingual.py, on the same split. Per split ~45 s (the peer included).

    .venv/bin/python bench/bench_probe_rules.py [--lang de,ru] [--seeds 0-14]
"""
from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

from _common import WORK, report
from bench_text_multilingual import build, tfidf

WEIGHTS = (0.25, 0.5)


def _load(path: Path) -> tuple[list[str], list[str]]:
    rows = [json.loads(x) for x in path.read_text().splitlines()]
    return [r["text"] for r in rows], [r["label"] for r in rows]


def fits(paths: dict) -> dict:
    """(weight, C) -> (eval logits, test logits), and the eval / test targets."""
    import torch
    from torch.nn import functional as F
    from zoo_text_hf.tfidf import TfidfEncoder

    from zoo.tasks.probe import C_GRID, fit_logistic

    (xa, ya), (xb, yb), (xc, yc) = (_load(paths[k]) for k in ("train", "val", "test"))
    labels = sorted(set(ya))
    ya, yb, yc = (torch.tensor([labels.index(v) for v in y]) for y in (ya, yb, yc))
    enc = TfidfEncoder(char_features=32768, lemma_features=16384, lemma_weight=1.0)
    enc.fit(xa)
    raw = [enc.preprocess(t)["tfidf"] for t in (xa, xb, xc)]
    out = {"yv": yb, "yt": yc}
    for w in WEIGHTS:
        z = [F.layer_norm(torch.cat([x[:, :32768], w * x[:, 32768:]], 1), (x.shape[1],))
             for x in raw]
        fit = None
        for c in C_GRID:
            fit = fit_logistic(z[0], ya, len(labels), c / z[0].shape[1], init=fit)
            out[(w, c)] = (z[1] @ fit[0].T + fit[1], z[2] @ fit[0].T + fit[1])
    return out


def rules(row: dict) -> dict[str, float]:
    """Each rule's test accuracy on one split."""
    from torch.nn import functional as F

    from zoo.tasks.probe import C_GRID

    keys = [(w, c) for w in WEIGHTS for c in C_GRID]  # the stronger regularisation first
    right = {k: row[k][0].argmax(1) == row["yv"] for k in keys}
    n = len(row["yv"])

    def test(k):
        return float((row[k][1].argmax(1) == row["yt"]).float().mean())

    def half_se(cands):
        acc = [float(right[k].sum()) / n for k in cands]
        best = max(range(len(cands)), key=lambda j: (acc[j], -j))
        return next(cands[j] for j in range(best + 1) if acc[j] >= acc[best] - 0.5 * float(
            (right[cands[j]] != right[cands[best]]).sum()) ** 0.5 / n)

    loss = min(keys, key=lambda k: float(F.cross_entropy(row[k][0], row["yv"])))
    argmax = max(keys, key=lambda k: (float(right[k].sum()), -keys.index(k)))
    se = half_se([half_se([(w, c) for c in C_GRID]) for w in WEIGHTS])
    return {"log-loss": test(loss), "half-SE": test(se), "argmax": test(argmax)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--lang", default="de,ru")
    ap.add_argument("--seeds", default="0-14", help="a range, first-last")
    args = ap.parse_args()
    first, last = (int(s) for s in args.seeds.split("-"))
    for lang in args.lang.split(","):
        per = []
        for seed in range(first, last + 1):
            paths = build(lang, WORK / (f"fortunes-{lang}" if seed == 0
                                        else f"fortunes-{lang}-s{seed}"), seed=seed)
            row = {**rules(fits(paths)), "peer": tfidf(paths, "char_wb", (2, 5))}
            per.append({"seed": seed, **{k: round(v, 4) for k, v in row.items()}})
            print(lang, per[-1], flush=True)
        summary = {}
        for rule in ("log-loss", "half-SE", "argmax"):
            ours = [r[rule] for r in per]
            summary[rule] = {"mean": round(statistics.mean(ours), 4),
                             "vs_peer_points": round(100 * statistics.mean(
                                 r[rule] - r["peer"] for r in per), 2),
                             "at_least_peer": sum(r[rule] >= r["peer"] for r in per)}
        peer = round(statistics.mean(r["peer"] for r in per), 4)
        print(f"{lang}, {len(per)} splits: peer {peer:.4f}; " + "; ".join(
            f"{k} {v['mean']:.4f} ({v['vs_peer_points']:+.2f} points, >= on "
            f"{v['at_least_peer']}/{len(per)})" for k, v in summary.items()), flush=True)
        report(f"probe-rules-{lang}-{first}-{last}", {"peer": peer, "rules": summary,
                                                      "splits": per})


if __name__ == "__main__":
    main()
