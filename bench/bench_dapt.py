"""Domain-adaptive pretraining (DAPT), measured honestly: does continuing MiniLM's
pretraining with MLM on unlabeled in-domain text help a few-shot classifier?

Data: Debian's categorised fortunes, 10 topics, bench_text.py's fixed 60/20/20 split.
Unlabeled corpus: every fortune of those 10 files (20-600 characters) except the val and
test ones (so no evaluation text is ever seen, not even unlabeled). MLM perplexity is
measured on the val fortunes (held out from the corpus) before and after, with the same
seeded masks. Then, for each seed, 16 labelled fortunes per topic are drawn from the train
split and `minilm-text-clf` is trained on them twice, identical but for the text encoder:
the registry's all-MiniLM-L6-v2, and the DAPT folder (`--encoder text=FOLDER`); the fusion
and head start from the same weights and see the same batches. Test accuracy on the test
split: mean ± sd over seeds, and the paired difference.

    .venv/bin/python bench/bench_dapt.py [--per-class 16] [--seeds 0,1,2] [--mlm-epochs 3] [--mlm-lr LR]
        [--ft-epochs 4] [--mode finetune|probe] [--corpus-cap 0] [--ppl-texts 200] [--control]
        [--head-warmup SHARE] [--head-lr LR] [--head-init identity|random] [--anchor W]
        [--no-classifier]

Fill-mask: the folder written before training (0 epochs: MiniLM and its fresh head) and
after, each loaded by transformers' own `pipeline("fill-mask", model=FOLDER)`, complete
in-domain sentences whose masked word is obvious (a bug in the program, the court's
judge, ...); the top 5 of each, and how many have the expected word among them.
`--no-classifier` stops there (perplexity and fill-mask only, a few minutes).

`--control` also runs MLM with the encoder frozen (only the fresh MLM head trains): the
sentence-transformers checkpoint has no MLM head, so the "before" perplexity is that of a
random head, and the control says how much of the drop the head alone explains.
"""
from __future__ import annotations

import argparse
import json
import random
import statistics
from pathlib import Path

from _common import WORK, Timer, report
from bench_text import FORTUNES, TOPICS, build

import zoo


def read(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text().splitlines()]


def corpus_without(held: set[str], cap: int, seed: int) -> list[str]:
    """Every fortune of the topic files (20-600 characters) not in ``held``, deduplicated."""
    texts: list[str] = []
    seen = set(held)
    for t in TOPICS:
        raw = (FORTUNES / t).read_text(encoding="utf-8", errors="replace")
        for x in (" ".join(y.split()) for y in raw.split("\n%\n")):
            if 20 <= len(x) <= 600 and x not in seen:
                seen.add(x)
                texts.append(x)
    random.Random(seed).shuffle(texts)
    return texts[:cap] if cap else texts


#: in-domain sentences (the fortunes' topics) with an obvious masked word: (text, accepted)
FILL = [("there is always one more [MASK] in the program.", {"bug", "error", "line"}),
        ("my [MASK] crashed and i lost all my files.", {"computer", "disk", "system", "pc",
                                                        "machine", "laptop", "drive"}),
        ("unix is a multi-user operating [MASK].", {"system"}),
        ("the [MASK] refused to compile my program.", {"compiler", "computer", "machine",
                                                       "system"}),
        ("the lawyer argued the case before the [MASK].", {"judge", "court", "jury",
                                                           "supreme"}),
        ("the scientist tested the theory with an [MASK].", {"experiment", "equation",
                                                             "instrument", "observation"}),
        ("the politician promised lower [MASK] if elected.", {"taxes", "tax", "prices",
                                                              "rates", "wages"}),
        ("the doctor gave the patient some [MASK] for the pain.", {"medicine", "pills",
                                                                   "medication", "morphine",
                                                                   "aspirin", "drugs"})]


def fill_mask(folder: Path) -> list[list[str]]:
    """The top 5 words for each FILL sentence, the folder read by transformers' pipeline."""
    from transformers import pipeline

    fill = pipeline("fill-mask", model=str(folder), top_k=5, device="cpu")
    mask = fill.tokenizer.mask_token
    return [[r["token_str"].strip() for r in fill(text.replace("[MASK]", mask))]
            for text, _ in FILL]


def show_fill(label: str, tops: list[list[str]]) -> int:
    hits = sum(bool(set(top) & ok) for top, (_, ok) in zip(tops, FILL))
    print(f"fill-mask {label}: expected word in the top 5 for {hits}/{len(FILL)}", flush=True)
    for top, (text, _) in zip(tops, FILL):
        print(f"  {text}  ->  {' | '.join(top)}", flush=True)
    return hits


def few_shot(train: list[dict], per_class: int, seed: int) -> list[dict]:
    rng = random.Random(seed)
    out = []
    for label in TOPICS:
        rows = [r for r in train if r["label"] == label]
        out += rng.sample(rows, min(per_class, len(rows)))
    rng.shuffle(out)
    return out


def classifier(encoder: Path | None, seed: int):
    """minilm-text-clf with the registry MiniLM or the DAPT folder; fusion from the same
    seed (copied, since loading the two encoders draws different random numbers)."""
    import torch

    from zoo.build.compose import with_encoders

    torch.manual_seed(seed)
    base = zoo.create_model("minilm-text-clf", pretrained=True)
    if encoder is None:
        return base
    model = with_encoders("minilm-text-clf", {"text": str(encoder)}, seed=seed)
    model.fusion.load_state_dict(base.fusion.state_dict())
    return model


def mlm(corpus: Path, val: Path, out: Path, args, **options) -> dict:
    from zoo.pretraining import pretrain

    return pretrain("mlm", "minilm-l6", corpus, out, eval_data=val, epochs=args.mlm_epochs,
                    lr=args.mlm_lr, batch_size=32, seed=0, progress=False,
                    max_length=args.max_length, **options)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--per-class", type=int, default=16)
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--mlm-epochs", type=int, default=3, help="zoo pretrain's default")
    ap.add_argument("--mlm-lr", type=float, default=None,
                    help="the encoder's rate [zoo pretrain's default: 2e-4 with MiniLM's "
                         "sentence anchor; --anchor 0: 5e-5]; 2e-4 unanchored fills domain "
                         "words but costs the few-shot classifier ~9 points")
    ap.add_argument("--max-length", type=int, default=128)
    ap.add_argument("--ft-epochs", type=int, default=4)
    ap.add_argument("--ppl-texts", type=int, default=200,
                    help="val fortunes scored for perplexity (0: all)")
    ap.add_argument("--mode", choices=["finetune", "probe"], default="finetune")
    ap.add_argument("--corpus-cap", type=int, default=0, help="0: the whole corpus")
    ap.add_argument("--control", action="store_true")
    ap.add_argument("--head-warmup", type=float, default=None,
                    help="share of the MLM steps training the fresh head only, before the "
                         "encoder joins [mlm's default: 0.5 for MiniLM's fresh head]")
    ap.add_argument("--head-lr", type=float, default=None,
                    help="the fresh MLM head's learning rate [mlm's default: 2e-3]; 5e-5 "
                         "with --head-init random is the earlier behaviour")
    ap.add_argument("--head-init", choices=["identity", "random"], default=None,
                    help="the fresh head's transform [mlm's default: identity]")
    ap.add_argument("--anchor", type=float, default=None,
                    help="weight of the sentence anchor: 1 - cosine to MiniLM's mean-pooled "
                         "vectors, added to the MLM loss [mlm's default]")
    ap.add_argument("--no-classifier", action="store_true",
                    help="perplexity and fill-mask only")
    args = ap.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    w = WORK / "dapt"
    paths = build(WORK / "fortunes")
    train, val, test = read(paths["train"]), read(paths["val"]), read(paths["test"])
    held = {r["text"] for r in val + test}
    texts = corpus_without(held, args.corpus_cap, seed=0)
    assert not held & set(texts)
    w.mkdir(parents=True, exist_ok=True)
    corpus, val_txt = w / "corpus.txt", w / "val.txt"
    corpus.write_text("\n".join(texts) + "\n")
    scored = val[:args.ppl_texts] if args.ppl_texts else val
    val_txt.write_text("\n".join(r["text"] for r in scored) + "\n")
    print(f"settings: {vars(args)}; corpus {len(texts)} fortunes (val/test removed), "
          f"held-out perplexity on {len(scored)} val fortunes; labelled {args.per_class}/class "
          f"x {len(TOPICS)} from {len(train)} train; test {len(test)}", flush=True)
    enc = w / "minilm-dapt"
    head = {k: getattr(args, k) for k in ("head_warmup", "head_lr", "head_init", "anchor")
            if getattr(args, k) is not None}
    untrained = w / "minilm-mlm-untrained"  # 0 epochs: MiniLM and its fresh head, as built
    pretrain_zero = argparse.Namespace(**{**vars(args), "mlm_epochs": 0})
    mlm(corpus, val_txt, untrained, pretrain_zero, **head)
    with Timer() as t_mlm:
        rec = mlm(corpus, val_txt, enc, args, **head)
    before, after = rec["metrics"]["before"], rec["metrics"]["after"]
    print(f"MLM {args.mlm_epochs} epochs, {rec['corpus']['tokens']} tokens, encoder lr "
          f"{rec['training']['lr']:g}, head lr "
          f"{rec['settings']['head_lr']}, head init {rec['settings']['head_init']}: perplexity "
          f"{before['perplexity']:.1f} -> {after['perplexity']:.2f} "
          f"({after['masked_tokens']} masked val tokens)"
          + (f", sentence drift (1 - cosine to MiniLM) {after['sentence_drift']:.4f}"
             if "sentence_drift" in after else "") + f", {t_mlm.s:.0f} s", flush=True)
    hits_before = show_fill("before (MiniLM, fresh head)", fill_mask(untrained))
    hits_after = show_fill(f"after {args.mlm_epochs} epochs", fill_mask(enc))
    control = None
    if args.control:
        ctl = mlm(corpus, val_txt, w / "minilm-head-only", args, freeze_encoder=True,
                  **{k: v for k, v in head.items() if k not in ("head_warmup", "anchor")})
        control = ctl["metrics"]["after"]["perplexity"]
        print(f"control, encoder frozen (MLM head only): perplexity -> {control:.2f}",
              flush=True)
        show_fill("control (head only)", fill_mask(w / "minilm-head-only"))
    if args.no_classifier:
        report("dapt_mlm", {"ppl_before": round(before["perplexity"], 2),
                            "ppl_after": round(after["perplexity"], 2),
                            "ppl_head_only": round(control, 2) if control else None,
                            "fill_before": hits_before, "fill_after": hits_after,
                            "fill_examples": len(FILL), **rec["settings"],
                            "encoder_lr": rec["training"]["lr"],
                            "corpus_texts": len(texts), "mlm_s": round(t_mlm.s)})
        return
    acc: dict[str, list[float]] = {"base": [], "dapt": []}
    with Timer() as t_ft:
        for seed in seeds:
            labelled = w / f"labelled-{seed}.jsonl"
            labelled.write_text("".join(json.dumps(r) + "\n"
                                        for r in few_shot(train, args.per_class, seed)))
            for cond, folder in (("base", None), ("dapt", enc)):
                out = w / f"clf-{cond}-{seed}"
                zoo.train(classifier(folder, seed), labelled, None, out,
                          epochs=args.ft_epochs, lr=1e-3, encoder_lr=5e-5, batch_size=16,
                          freeze="none" if args.mode == "finetune" else "all", seed=seed,
                          group_by_length=True, progress=False, loggers=[])
                acc[cond].append(zoo.evaluate(out, paths["test"], write=False)["accuracy"])
                print(f"seed {seed} {cond}: test accuracy {acc[cond][-1]:.4f}", flush=True)
    diff = [d - b for b, d in zip(acc["base"], acc["dapt"])]

    def ms(xs):
        return statistics.mean(xs), statistics.stdev(xs) if len(xs) > 1 else 0.0

    (mb, sb), (md, sd), (mdf, sdf) = ms(acc["base"]), ms(acc["dapt"]), ms(diff)
    print(f"fortunes, {args.per_class}/class, {args.mode}, {len(seeds)} seeds: test accuracy "
          f"MiniLM {mb:.4f} ± {sb:.4f}, MiniLM + DAPT {md:.4f} ± {sd:.4f}; paired "
          f"difference {mdf:+.4f} ± {sdf:.4f}; MLM perplexity {before['perplexity']:.1f} -> "
          f"{after['perplexity']:.2f}" + (f" (head-only control {control:.2f})" if control
                                           else "")
          + f"; MLM {t_mlm.s:.0f} s, classifiers {t_ft.s:.0f} s", flush=True)
    report("dapt", {"per_class": args.per_class, "mode": args.mode, "seeds": seeds,
                    "acc_base": [round(x, 4) for x in acc["base"]],
                    "acc_dapt": [round(x, 4) for x in acc["dapt"]],
                    "mean_base": round(mb, 4), "sd_base": round(sb, 4),
                    "mean_dapt": round(md, 4), "sd_dapt": round(sd, 4),
                    "diff": round(mdf, 4), "sd_diff": round(sdf, 4),
                    "ppl_before": round(before["perplexity"], 2),
                    "ppl_after": round(after["perplexity"], 2),
                    "ppl_head_only": round(control, 2) if control else None,
                    "corpus_texts": len(texts), "corpus_tokens": rec["corpus"]["tokens"],
                    "mlm_epochs": args.mlm_epochs, "ft_epochs": args.ft_epochs,
                    "head_warmup": rec["settings"]["head_warmup"],
                    "head_warmup_steps": rec["settings"]["head_warmup_steps"],
                    "head_lr": rec["settings"]["head_lr"], "encoder_lr": rec["training"]["lr"],
                    "head_init": rec["settings"]["head_init"],
                    "anchor": rec["settings"]["anchor"],
                    "sentence_drift": after.get("sentence_drift"),
                    "fill_before": hits_before, "fill_after": hits_after,
                    "mlm_s": round(t_mlm.s), "ft_s": round(t_ft.s)})


if __name__ == "__main__":
    main()
