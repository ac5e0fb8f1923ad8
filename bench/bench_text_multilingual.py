"""Text classification in another language: the topic (file) of Debian's Russian fortunes
(`apt-get install fortunes-ru`; `--lang de` for fortunes-de), a fixed stratified 60/20/20
split. `zoo train text-clf` with no flags (it sees Russian text and trains its fallback,
tfidf-text-clf: TF-IDF character 2-5 grams, vocabulary capped at 32,768, and word lemmas
at a quarter or half their scale; the probe started as logistic regression with C and the
lemma weight chosen on the validation split) against TF-IDF + logistic
regression on the same split (words 1-2, as in bench_text.py; and character 2-5 grams,
uncapped), C tuned on the validation split too. Also the English MiniLM classifier forced
onto the same data, to show why the fallback exists.

The test split has ~590 texts: one standard error of an accuracy near 0.6 is ~0.02 (12
texts), so gaps of a few texts between zoo and the character peer are noise. On Russian no
feature variant tried (words + characters, char 1-5 / 2-6 / not word-bounded, uncapped,
no sublinear tf, balanced classes; C 0.3-100 each) beat zoo's features on validation by
more than one text (scikit-learn replica: 0.6265 at C 3; the peer's uncapped vocabulary
0.6231 at its C 30), and German agreed (words + characters lost ~0.02 there).

    .venv/bin/python bench/bench_text_multilingual.py [--lang ru] [--splits 5]
        [--first-seed 5] [--minilm]
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

from _common import WORK, Timer, fortune_splits, report

import zoo

TOPICS = {"ru": ["computer", "education", "love", "polit", "war", "work", "wealth",
                 "friendship", "knowledge", "murphy"],
          "de": ["computer", "fussball", "letzteworte", "ms", "namen", "regeln", "sprueche",
                 "warmduscher", "witze", "woerterbuch"]}
FORTUNES = Path("/usr/share/games/fortunes")


def build(lang: str, w: Path, cap: int = 300, seed: int = 0) -> dict[str, Path]:
    return fortune_splits({t: FORTUNES / lang / t for t in TOPICS[lang]}, w, cap, seed)


def tfidf(paths, analyzer: str, ngrams: tuple[int, int]) -> float:
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    def load(p):
        r = [json.loads(x) for x in p.read_text().splitlines()]
        return [x["text"] for x in r], [x["label"] for x in r]

    (xtr, ytr), (xva, yva), (xte, yte) = (load(paths[k]) for k in ("train", "val", "test"))

    def fit(c):
        return make_pipeline(TfidfVectorizer(sublinear_tf=True, analyzer=analyzer,
                                             ngram_range=ngrams),
                             LogisticRegression(C=c, max_iter=3000)).fit(xtr, ytr)
    best_c = max((1, 3, 10, 30), key=lambda c: fit(c).score(xva, yva))
    return float(fit(best_c).score(xte, yte))


def zoo_train(model: str, paths, out: Path) -> tuple[dict, float]:
    cmd = [sys.executable, "-m", "zoo", "train", model, "--train", str(paths["train"]),
           "--eval", str(paths["val"]), "--out", str(out), "--quiet"]
    print("$", " ".join(cmd[2:]), flush=True)
    with Timer() as t:
        subprocess.run(cmd, check=True)
    return json.loads((out / "training.json").read_text()), t.s


def one_split(lang: str, seed: int, minilm: bool) -> dict:
    w = WORK / f"fortunes-{lang}" if seed == 0 else WORK / f"fortunes-{lang}-s{seed}"
    run = WORK / (f"text-{lang}-run" if seed == 0 else f"text-{lang}-run-s{seed}")
    paths = build(lang, w, seed=seed)
    words, chars = tfidf(paths, "word", (1, 2)), tfidf(paths, "char_wb", (2, 5))
    rec, secs = zoo_train("text-clf", paths, run)
    acc = zoo.evaluate(run, paths["test"])
    picked = json.loads((run / "config.json").read_text())
    figures = {"seed": seed, "n_train": rec["n_train"], "n_test": acc.get("n"),
               "encoder": picked["encoders"]["text"]["name"],
               "test_accuracy": round(acc["accuracy"], 4), "f1_macro": round(acc["f1_macro"], 4),
               "tfidf_words_lr": round(words, 4), "tfidf_chars_lr": round(chars, 4),
               "train_s": round(secs), "epochs_run": rec["epochs_run"]}
    print(f"split {seed}: fortunes-{lang} topics ({len(TOPICS[lang])} classes, "
          f"{rec['n_train']} train): zoo train text-clf -> {figures['encoder']}: test accuracy "
          f"{acc['accuracy']:.4f} (f1 {acc['f1_macro']:.4f}), {secs:.0f}s; TF-IDF words + LR "
          f"{words:.4f}; TF-IDF chars + LR {chars:.4f}", flush=True)
    if minilm:
        rec_m, secs_m = zoo_train("minilm-text-clf", paths, WORK / f"text-{lang}-minilm-s{seed}")
        m = zoo.evaluate(WORK / f"text-{lang}-minilm-s{seed}", paths["test"])
        figures.update(minilm_test_accuracy=round(m["accuracy"], 4), minilm_s=round(secs_m),
                       minilm_finetuned=rec_m.get("finetuned"))
        print(f"minilm-text-clf (English MiniLM, LP-FT) on the same split: test accuracy "
              f"{m['accuracy']:.4f}, {secs_m:.0f}s")
    return figures


def main() -> None:
    import statistics

    ap = argparse.ArgumentParser()
    ap.add_argument("--lang", choices=sorted(TOPICS), default="ru")
    ap.add_argument("--splits", type=int, default=1,
                    help="how many seeded splits (seed 0 is the README's split)")
    ap.add_argument("--first-seed", type=int, default=0,
                    help="seeds first-seed .. first-seed + splits - 1 (fresh splits to "
                         "confirm a choice made on seeds 0-4)")
    ap.add_argument("--minilm", action="store_true", help="also force minilm-text-clf")
    args = ap.parse_args()
    rows = [one_split(args.lang, seed, args.minilm)
            for seed in range(args.first_seed, args.first_seed + args.splits)]
    figures = dict(rows[0], lang=args.lang)
    if len(rows) > 1:
        zs = [r["test_accuracy"] for r in rows]
        cs = [r["tfidf_chars_lr"] for r in rows]
        ahead = sum(z >= c for z, c in zip(zs, cs))
        figures.update(splits=rows, mean_zoo=round(statistics.mean(zs), 4),
                       mean_chars=round(statistics.mean(cs), 4),
                       median_zoo=round(statistics.median(zs), 4),
                       median_chars=round(statistics.median(cs), 4), zoo_at_least_chars=ahead)
        print(f"{len(rows)} splits: zoo mean {figures['mean_zoo']:.4f} median "
              f"{figures['median_zoo']:.4f}; TF-IDF chars + LR mean {figures['mean_chars']:.4f} "
              f"median {figures['median_chars']:.4f}; zoo >= chars on {ahead}/{len(rows)}")
    report(f"text-{args.lang}" + (f"-from{args.first_seed}" if args.first_seed else ""),
           figures)


if __name__ == "__main__":
    main()
