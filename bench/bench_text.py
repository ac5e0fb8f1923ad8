"""Text classification on real text: the topic (file) of Debian's categorised fortunes
(`apt-get install fortunes`), a fixed stratified 60/20/20 split; the registry's pretrained
MiniLM classifier against TF-IDF + logistic regression (scikit-learn) on the same split.

    .venv/bin/python bench/bench_text.py [--epochs 4] [--frozen]
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from _common import WORK, Timer, fortune_splits, report

import zoo

TOPICS = ["computers", "politics", "science", "art", "law", "food", "education", "love",
          "sports", "medicine"]
FORTUNES = Path("/usr/share/games/fortunes")


def build(w: Path, cap: int = 350, seed: int = 0) -> dict[str, Path]:
    return fortune_splits({t: FORTUNES / t for t in TOPICS}, w, cap, seed)


def tfidf_baseline(paths) -> float:
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    def load(p):
        r = [json.loads(x) for x in p.read_text().splitlines()]
        return [x["text"] for x in r], [x["label"] for x in r]

    (xtr, ytr), (xva, yva), (xte, yte) = load(paths["train"]), load(paths["val"]), load(paths["test"])
    best, best_c = -1.0, None
    for c in (1, 3, 10, 30):  # tuned on val, as zoo's best epoch is
        clf = make_pipeline(TfidfVectorizer(sublinear_tf=True, ngram_range=(1, 2), min_df=1),
                            LogisticRegression(C=c, max_iter=2000)).fit(xtr, ytr)
        acc = clf.score(xva, yva)
        if acc > best:
            best, best_c = acc, c
    clf = make_pipeline(TfidfVectorizer(sublinear_tf=True, ngram_range=(1, 2), min_df=1),
                        LogisticRegression(C=best_c, max_iter=2000)).fit(xtr, ytr)
    return float(clf.score(xte, yte))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--frozen", action="store_true")
    args = ap.parse_args()
    paths = build(WORK / "fortunes")
    base = tfidf_baseline(paths)
    out = WORK / "text-run"
    with Timer() as t:
        zoo.train("minilm-text-clf", paths["train"], paths["val"], out, epochs=args.epochs,
                  freeze="all" if args.frozen else "none", lr=1e-3, encoder_lr=5e-5,
                  batch_size=32)
    m = zoo.evaluate(out, paths["test"])
    n = sum(1 for _ in paths["train"].open())
    print(f"fortunes topics ({len(TOPICS)} classes, {n} train): zoo MiniLM "
          f"({'frozen' if args.frozen else 'fine-tuned'}) test accuracy {m['accuracy']:.4f} "
          f"(f1 {m['f1_macro']:.4f}); TF-IDF + LR {base:.4f}; train {t.s:.0f}s")
    report("text", {"test_accuracy": round(m["accuracy"], 4), "f1_macro": round(m["f1_macro"], 4),
                    "tfidf_lr": round(base, 4), "frozen": args.frozen, "epochs": args.epochs,
                    "train_s": round(t.s)})


if __name__ == "__main__":
    main()
