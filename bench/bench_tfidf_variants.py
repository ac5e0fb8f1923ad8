"""Classical variants of the character TF-IDF + logistic regression peer, on the seeded
splits of bench_text_multilingual.py: is there a model that beats the peer on Debian's
Russian (or German) fortunes by more than the noise, for zoo's fallback to adopt?

Each variant chooses its settings on the validation split, as the peer does (C among 1, 3,
10, 30), and is scored on test; the table gives the mean and median over the splits, on how
many splits it is >= the peer, and the mean difference in points. Variants:

- peer: TfidfVectorizer(char_wb 2-5, sublinear tf), uncapped, float32 features (the
  bench's peer uses float64: its own figure moves with that alone);
- capped: the same, 32,768 n-grams (zoo's width);
- word: word 1-2 grams alone;
- avgC-capped / avgC-uncapped: the probabilities of the four C's averaged (no choice);
- ens-cap+word{w}: capped characters + w x the words model's probabilities;
- cat-word{s}: one regression on [characters, s x words];
- cnb{a}: ComplementNB on the capped characters; mnb-val: MultinomialNB, alpha on val;
  ens-cap+mnb0.5: capped characters + 0.5 x MultinomialNB.

scikit-learn only, no zoo: a few minutes for five splits.

    .venv/bin/python bench/bench_tfidf_variants.py [--lang ru] [--splits 5]
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from _common import WORK, report
from bench_text_multilingual import TOPICS, build

GRID = (1, 3, 10, 30)


def load(p: Path) -> tuple[list[str], np.ndarray]:
    r = [json.loads(x) for x in p.read_text().splitlines()]
    return [x["text"] for x in r], np.array([x["label"] for x in r])


def one_split(lang: str, seed: int) -> dict[str, float]:
    from scipy.sparse import hstack
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.naive_bayes import ComplementNB, MultinomialNB

    w = WORK / (f"fortunes-{lang}" if seed == 0 else f"fortunes-{lang}-s{seed}")
    paths = build(lang, w, seed=seed)
    (xtr, ytr), (xva, yva), (xte, yte) = (load(paths[k]) for k in ("train", "val", "test"))

    def feats(**kw):
        v = TfidfVectorizer(sublinear_tf=True, dtype=np.float32, **kw).fit(xtr)
        return [v.transform(t) for t in (xtr, xva, xte)]

    unc = feats(analyzer="char_wb", ngram_range=(2, 5))
    cap = feats(analyzer="char_wb", ngram_range=(2, 5), max_features=32768)
    words = feats(analyzer="word", ngram_range=(1, 2))

    def fits(f):  # (C, val probabilities, test probabilities) for each C
        out = []
        for c in GRID:
            m = LogisticRegression(C=c, max_iter=3000).fit(f[0], ytr)
            out.append((c, m.predict_proba(f[1]), m.predict_proba(f[2])))
        return out

    classes = np.array(sorted(set(ytr)))

    def acc(p, y):
        return float(np.mean(classes[p.argmax(1)] == y))

    def best(fitted):  # the first C with the best val accuracy, as max() picks it
        return max(fitted, key=lambda t: acc(t[1], yva))

    f_unc, f_cap, f_w = fits(unc), fits(cap), fits(words)
    b_unc, b_cap, b_w = best(f_unc), best(f_cap), best(f_w)
    res = {"peer": acc(b_unc[2], yte), "capped": acc(b_cap[2], yte), "word": acc(b_w[2], yte),
           "avgC-capped": acc(sum(t[2] for t in f_cap), yte),
           "avgC-uncapped": acc(sum(t[2] for t in f_unc), yte)}
    for wt in (0.3, 0.5):
        res[f"ens-cap+word{wt}"] = acc(b_cap[2] + wt * b_w[2], yte)
    for s in (0.3, 0.5):
        cat = [hstack([a, s * b]).tocsr() for a, b in zip(cap, words)]
        res[f"cat-word{s}"] = acc(best(fits(cat))[2], yte)
    for a in (0.1, 0.3, 1.0):
        res[f"cnb{a}"] = float(ComplementNB(alpha=a).fit(cap[0], ytr).score(cap[2], yte))
    nb = max((MultinomialNB(alpha=a).fit(cap[0], ytr) for a in (0.03, 0.1, 0.3, 1.0)),
             key=lambda m: m.score(cap[1], yva))
    res["mnb-val"] = float(nb.score(cap[2], yte))
    res["ens-cap+mnb0.5"] = acc(b_cap[2] + 0.5 * nb.predict_proba(cap[2]), yte)
    print(seed, {k: round(v, 4) for k, v in res.items()}, flush=True)
    return res


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--lang", choices=sorted(TOPICS), default="ru")
    ap.add_argument("--splits", type=int, default=5)
    args = ap.parse_args()
    rows = [one_split(args.lang, seed) for seed in range(args.splits)]
    peer = np.array([r["peer"] for r in rows])
    table = {}
    for k in rows[0]:
        v = np.array([r[k] for r in rows])
        table[k] = {"mean": round(float(v.mean()), 4), "median": round(float(np.median(v)), 4),
                    "at_least_peer": int((v >= peer - 1e-9).sum()),
                    "diff_points": round(float(100 * (v - peer).mean()), 2)}
        print(f"{k:16s} mean {v.mean():.4f} median {np.median(v):.4f} >= peer "
              f"{table[k]['at_least_peer']}/{len(rows)} diff {table[k]['diff_points']:+.2f}")
    report(f"tfidf-variants-{args.lang}", {"splits": len(rows), "variants": table})


if __name__ == "__main__":
    main()
