"""Commands on models: create, predict, train, pretrain (eval: ``eval_cmds``)."""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import click

from zoo.cli.base import _columns, _echo_json, _json_options, _pairs, cli, device_options
from zoo.errors import ZooError
from zoo.training.config import TrainConfig

#: training defaults are TrainConfig's, defined once: the flags show and pass them
_D = TrainConfig()


@cli.command()
@click.argument("name")
@click.option("--out", "out", required=True, type=click.Path(file_okay=False),
              help="Folder to save the model to.")
@click.option("--pretrained/--no-pretrained", default=True, show_default=True,
              help="Initialise encoders from their pretrained weights.")
@click.option("--labels", help="Comma-separated labels for a classification head.")
def create(name: str, out: str, pretrained: bool, labels: str | None) -> None:
    """Build model NAME from the registry and save it to --out."""
    from zoo.build.compose import create_model

    kw = {"labels": [x.strip() for x in labels.split(",") if x.strip()]} if labels else {}
    model = create_model(name, pretrained=pretrained, **kw)
    model.save_pretrained(out)
    click.echo(f"saved {model!r} to {out}")


def parse_input(arg: str) -> dict[str, Any]:
    """One CLI input: a JSON object, a file of a file-based modality (by its suffix:
    an image, a recording), or a plain string (text)."""
    if arg.lstrip().startswith("{"):
        try:
            obj = json.loads(arg)
        except ValueError as e:
            raise ZooError(f"input {arg[:40]!r} is not valid JSON: {e}") from None
        if not isinstance(obj, dict):
            raise ZooError("a JSON input must be an object such as {\"text\": \"...\"}")
        return obj
    from zoo.data.formats import modality_of_file
    from zoo.registry import modalities

    kind = modality_of_file(arg)
    if kind is not None:
        if not Path(arg).is_file():
            raise ZooError(f"no such file: {arg}")
        return {kind: arg}
    plain = next((n for n, m in modalities().items() if m.plain_string), None)
    if plain is None:
        raise ZooError(f"input {arg[:40]!r}: no modality takes a plain string; pass a JSON "
                       f"object such as '{{\"<modality>\": ...}}'")
    return {plain: arg}


def read_inputs(args: tuple[str, ...]) -> list[dict[str, Any]]:
    from zoo.data.manifest import read_manifest

    inputs: list[dict[str, Any]] = []
    for a in args:
        if a.endswith(".jsonl"):
            inputs += [ex.inputs for ex in read_manifest(a)]
        else:
            inputs.append(parse_input(a))
    return inputs


@cli.command()
@click.argument("model")
@click.argument("inputs", nargs=-1, required=True)
@click.option("--batch-size", default=32, show_default=True)
@click.option("--option", "options", multiple=True, metavar="KEY=VALUE",
              help="A decode option of the model's head (JSON or text), e.g. --option "
                   "beam_size=5 --option language=fr (a wrong key's error lists them).")
@click.option("--format", "fmt", default="json", show_default=True,
              help="json, or a text format of the task (speech recognition: txt, srt, vtt).")
@click.option("--quantize", type=click.Choice(["int8"]), default=None,
              help="Dynamic int8 for the CPU: every linear layer's weights in int8 "
                   "(faster; outputs may move a little). Runs on the CPU (--device auto "
                   "or cpu).")
@device_options()
def predict(model: str, inputs: tuple[str, ...], batch_size: int, options: tuple[str, ...],
            fmt: str, device: str = "auto", precision: str = "auto",
            quantize: str | None = None) -> None:
    """Predict with MODEL (a folder, hf-hub:org/name or a registry name).

    Each INPUT is a JSON object ('{"text": "...", "image": "cat.png"}'), an image or audio
    file, a .jsonl manifest, or plain text. Prints a JSON list, one output per input.
    """
    from zoo.io.hub import load

    examples = read_inputs(inputs)
    m = load(model, device=device, precision=precision, quantize=quantize)
    task = m.task_impl
    if fmt != "json" and fmt not in task.output_formats:
        raise ZooError(f"--format {fmt}: a {task.name} model writes json"
                       + "".join(f", {f}" for f in task.output_formats))
    preds = m.predict(examples, batch_size=batch_size, **_json_options(options))
    if fmt == "json":
        _echo_json(preds)
    else:
        click.echo(task.format_outputs(preds, fmt), nl=False)


def _seconds(value: str | None) -> float | None:
    """--max-time: seconds as a number, or with a unit: 90s, 15m, 2h."""
    if value is None:
        return None
    import re

    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smh]?)\s*", str(value))
    if not m or float(m.group(1)) <= 0:
        raise click.BadParameter(f"{value!r}: give seconds (90) or a duration (90s, 15m, 2h)",
                                 param_hint="--max-time")
    return float(m.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600}[m.group(2)]


def _freeze_arg(freeze: str) -> Any:
    """--freeze: auto, none, all, or comma-separated modalities / encoder names."""
    if freeze in ("auto", "none", "all"):
        return freeze
    return [x.strip() for x in freeze.split(",") if x.strip()]


@cli.command("train")
@click.argument("model")
@click.option("--train", "train_data", required=True, type=click.Path(exists=True),
              help="Training data: JSONL, CSV/TSV/Parquet, an ImageFolder tree, an "
                   "audiofolder (metadata.csv), a datasets folder, or COCO JSON.")
@click.option("--eval", "eval_data", type=click.Path(exists=True),
              help="Eval data (any of those); picks the best epoch.")
@click.option("--column", "column", multiple=True, metavar="KEY=NAME",
              help="Map zoo's keys to the data's columns, e.g. --column text=review "
                   "--column label=sentiment.")
@click.option("--out", required=True, type=click.Path(file_okay=False),
              help="Output folder: the best model, metrics.jsonl, plots, resume state.")
@click.option("--epochs", type=int, default=_D.epochs, show_default=True)
@click.option("--lr", type=float, default=_D.lr, show_default=True,
              help="Learning rate of new layers (fusion, head) and from-scratch encoders.")
@click.option("--encoder-lr", type=float, help="For fine-tuned pretrained encoders [lr/10].")
@click.option("--batch-size", type=int, default=_D.batch_size, show_default=True)
@click.option("--freeze", default=_D.freeze, show_default=True,
              help="auto (pretrained encoders), none, all, or comma-separated modalities/names.")
@click.option("--seed", type=int, default=_D.seed, show_default=True)
@click.option("--resume", is_flag=True, help="Continue from OUT/train_state.")
@click.option("--on-bad-data", type=click.Choice(["fail", "skip"]), default=_D.on_bad_data,
              show_default=True)
@click.option("--max-steps", type=int,
              help="Stop after N optimizer steps (all stages); the best model so far is saved.")
@click.option("--max-time", callback=lambda c, p, v: _seconds(v), metavar="DURATION",
              help="Stop after this much training (90, 90s, 15m, 2h); the epoch under way is "
                   "evaluated and the best model so far saved. Also lets the automatic "
                   "fine-tuning stage use what is left (on a CPU it otherwise runs only when "
                   "its measured cost fits 10 minutes).")
@click.option("--force", is_flag=True,
              help="Train on data the task warns about (one class only): a warning, not an "
                   "error.")
@click.option("--checkpoint-every", type=int, default=_D.checkpoint_every,
              help="Also save the resume state every N steps.")
@click.option("--warmup", type=float, default=_D.warmup, show_default=True)
@click.option("--no-cache", is_flag=True, help="Recompute frozen encoders every epoch.")
@click.option("--probe-init", type=click.Choice(["lbfgs", "random"]), default=_D.probe_init,
              show_default=True,
              help="Frozen, cached encoders + concat-mlp + classification: start the probe "
                   "from a logistic regression fitted by L-BFGS (C chosen on --eval), "
                   "refined at lr/3; random: the usual random start.")
@click.option("--group-by-length", type=click.Choice(["auto", "on", "off"]), default="auto",
              show_default=True,
              help="Batch examples of similar length (less padding); auto: on for audio.")
@click.option("--precision", type=click.Choice(["auto", "fp32", "bf16", "fp16"]),
              default=_D.precision,
              show_default=True, help="auto: bf16 autocast on a CUDA GPU, fp32 on CPU.")
@click.option("--accumulate", type=int, default=_D.accumulate, show_default=True,
              help="Compute each batch in N chunks (same update, less memory).")
@click.option("--patience", type=int, default=_D.patience, show_default=True,
              help="Stop after N epochs without improvement of the eval metric (0: never, "
                   "except that a probe started closed-form stops after 3).")
@click.option("--finetune-epochs", type=int, default=_D.finetune_epochs,
              help="LP-FT (--freeze auto): epochs of fine-tuning after a weak probe "
                   "[as many as --epochs]; 0 keeps the probe.")
@click.option("--scheduler", type=click.Choice(["cosine", "linear", "constant"]),
              default=_D.scheduler, show_default=True,
              help="Learning rate after the warm-up: cosine or linear decay to zero, or "
                   "constant.")
@click.option("--logger", "loggers", multiple=True, metavar="NAME",
              help="Send metrics to this registered logger too (zoo list --kind logger); "
                   "repeatable; 'none' for none. Default: tensorboard when installed.")
@click.option("--task", help="Train for another task than the model's: only 'classification' "
                             "from an aligned (retrieval) model.")
@click.option("--adapter", type=click.Choice(["lora"]),
              help="Train LoRA adapters on the pretrained encoders (their weights frozen) "
                   "instead of probing/fine-tuning them; saves only the adapter, fusion and "
                   "head over the pinned base (pip install peft).")
@click.option("--lora-r", type=int, default=_D.lora_r, show_default=True, help="LoRA rank.")
@click.option("--lora-alpha", type=float, help="LoRA scale numerator [2 * r].")
@click.option("--encoder", "encoder_overrides", multiple=True, metavar="MODALITY=NAME_OR_FOLDER",
              help="Replace the model's encoder of MODALITY: a registry encoder name, or a "
                   "folder from `zoo pretrain --objective mlm` (any transformers text folder), "
                   "loaded with its weights; repeatable.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
@device_options(precision=False)
def train_cmd(model: str, train_data: str, eval_data: str | None, out: str, epochs: int,
              lr: float, encoder_lr: float | None, batch_size: int, freeze: str, seed: int,
              resume: bool, on_bad_data: str, checkpoint_every: int, warmup: float,
              no_cache: bool, group_by_length: str, precision: str, accumulate: int,
              patience: int, task: str | None, quiet: bool, column: tuple[str, ...],
              scheduler: str, loggers: tuple[str, ...], finetune_epochs: int | None,
              adapter: str | None = None, lora_r: int = 8,
              lora_alpha: float | None = None,
              encoder_overrides: tuple[str, ...] = (), probe_init: str = "lbfgs",
              force: bool = False, device: str = "auto", max_steps: int | None = None,
              max_time: float | None = None) -> None:
    """Fine-tune MODEL (registry name or folder) and save the best epoch to --out.

    Under `torchrun --nproc_per_node=N -m zoo train ...` it runs DDP (gloo on CPU)."""
    from zoo.training import train

    if encoder_overrides:  # a registry model with, e.g., a pretrained text encoder folder
        from zoo.build.compose import with_encoders

        model = with_encoders(model, _pairs(encoder_overrides, "--encoder"), seed=seed)

    summary = train(model, train_data, eval_data, out, resume=resume, epochs=epochs, lr=lr,
                    encoder_lr=encoder_lr, batch_size=batch_size, freeze=_freeze_arg(freeze),
                    seed=seed,
                    on_bad_data=on_bad_data, checkpoint_every=checkpoint_every, force=force,
                    max_steps=max_steps, max_time=max_time,
                    warmup=warmup, cache_features=not no_cache, probe_init=probe_init,
                    progress=not quiet, task=task, device=device,
                    precision=precision, accumulate=accumulate, patience=patience,
                    columns=_columns(column), scheduler=scheduler,
                    finetune_epochs=finetune_epochs, adapter=adapter, lora_r=lora_r,
                    lora_alpha=lora_alpha,
                    loggers=("auto" if not loggers else
                             [x for x in loggers if x != "none"]),
                    group_by_length={"on": True, "off": False}.get(group_by_length, "auto"))
    if int(os.environ.get("RANK", "0")) == 0:
        _echo_json({"best": summary["best"], "best_epoch": summary["best_epoch"],
                    "out": summary["out"]})


_OBJECTIVE_DEFAULTS = {"contrastive": {"epochs": 10, "lr": 1e-3, "batch_size": 128},
                       None: {"epochs": 3, "lr": None, "batch_size": 32}}  # lr: the objective's


@cli.command("pretrain")
@click.option("--objective", default="contrastive", show_default=True,
              help="contrastive (two encoders aligned on pairs) or a registered "
                   "self-supervised objective for one encoder, e.g. mlm (zoo list --kind "
                   "objective).")
@click.option("--encoders", "encoders",
              help="contrastive: two encoders by modality, e.g. "
                   "image=efficientnet-lite0,text=minilm-l6")
@click.option("--encoder", "encoder",
              help="mlm and other objectives: the one encoder to pretrain, a registry name "
                   "(minilm-l6) or a transformers folder.")
@click.option("--data", required=True, type=click.Path(exists=True),
              help="contrastive: pairs, JSONL lines such as {\"image\": path, \"text\": "
                   "\"...\"}. mlm: unlabeled text: a .txt file (one example per non-empty "
                   "line), JSONL/CSV/Parquet with a text column, or a datasets folder.")
@click.option("--eval", "eval_data", type=click.Path(exists=True),
              help="Held-out data (mlm: perplexity before and after).")
@click.option("--eval-fraction", type=float, default=0.05, show_default=True,
              help="mlm: without --eval, hold out this seeded fraction of --data.")
@click.option("--column", "column", multiple=True, metavar="KEY=NAME",
              help="mlm: the data's text column, e.g. --column text=body.")
@click.option("--out", required=True, type=click.Path(file_okay=False))
@click.option("--epochs", type=int, help="[contrastive: 10; mlm: 3]")
@click.option("--lr", type=float,
              help="[contrastive: 1e-3; mlm: 2e-4 for a fresh head on pretrained weights "
                   "(minilm-l6's, with the sentence anchor), else 5e-5]")
@click.option("--batch-size", type=int,
              help="[contrastive: 128, large batches give more negatives; mlm: 32]")
@click.option("--warmup", type=float, default=0.06, show_default=True,
              help="mlm: share of the steps warming up, then linear decay to 0.")
@click.option("--mlm-probability", type=float, help="mlm: share of tokens chosen [0.15].")
@click.option("--whole-word/--no-whole-word", default=None,
              help="mlm: choose whole words (all their WordPieces) [whole words].")
@click.option("--max-length", type=int, help="mlm: tokens per example [the encoder's].")
@click.option("--head-lr", type=float,
              help="mlm: the MLM head's own learning rate, its optimizer group apart from "
                   "the encoder's --lr [2e-3 for a fresh head on pretrained weights, as "
                   "minilm-l6's; else --lr].")
@click.option("--option", "objective_options", multiple=True, metavar="KEY=VALUE",
              help="Another option of the objective (a JSON value or a string); repeatable.")
@click.option("--freeze", default="auto", show_default=True, help="contrastive only.")
@click.option("--dim", type=int, default=256, show_default=True,
              help="contrastive: shared space width.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--resume", is_flag=True,
              help="Continue from the state the interrupted run kept (after each epoch).")
@click.option("--precision", type=click.Choice(["auto", "fp32", "bf16", "fp16"]),
              default="auto", show_default=True, help="auto: bf16 on a CUDA GPU, fp32 on CPU.")
@click.option("--accumulate", type=int, default=1, show_default=True,
              help="Compute each batch in N chunks (same update, less memory).")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def pretrain_cmd(objective: str, encoders: str | None, encoder: str | None, data: str,
                 eval_data: str | None, eval_fraction: float, column: tuple[str, ...],
                 out: str, epochs: int | None, lr: float | None, batch_size: int | None,
                 warmup: float, mlm_probability: float | None, whole_word: bool | None,
                 max_length: int | None, objective_options: tuple[str, ...], freeze: str,
                 dim: int, seed: int, resume: bool, quiet: bool, precision: str = "auto",
                 accumulate: int = 1, head_lr: float | None = None) -> None:
    """Pretrain encoders. --objective contrastive (default) aligns two encoders on paired
    data (CLIP-style InfoNCE): a retrieval model with embed, recall@k and zero-shot
    classification. --objective mlm (or another registered objective) pretrains one
    encoder on unlabeled data and writes it as a transformers folder that `zoo train
    --encoder text=OUT` composes into task models."""
    d = _OBJECTIVE_DEFAULTS.get(objective, _OBJECTIVE_DEFAULTS[None])
    epochs = d["epochs"] if epochs is None else epochs
    lr = d["lr"] if lr is None else lr
    batch_size = d["batch_size"] if batch_size is None else batch_size
    if objective == "contrastive":
        if encoder or not encoders:
            raise ZooError("--objective contrastive aligns two encoders: pass --encoders "
                           "image=efficientnet-lite0,text=minilm-l6 (for one encoder: "
                           "--objective mlm --encoder NAME)")
        _contrastive(encoders, data, eval_data, out, epochs=epochs, lr=lr,
                     batch_size=batch_size, freeze=freeze, dim=dim, seed=seed, resume=resume,
                     quiet=quiet)
        return
    if encoders or not encoder:
        raise ZooError(f"--objective {objective} pretrains one encoder: pass --encoder NAME "
                       f"or a folder, e.g. --encoder minilm-l6 (--encoders is for "
                       f"--objective contrastive)")
    from zoo.pretraining import pretrain

    options = {k: v for k, v in (("mlm_probability", mlm_probability),
                                 ("whole_word", whole_word), ("max_length", max_length),
                                 ("head_lr", head_lr))
               if v is not None}
    options.update(_json_options(objective_options))
    record = pretrain(objective, encoder, data, out, eval_data=eval_data,
                      eval_fraction=eval_fraction, columns=_columns(column), epochs=epochs,
                      lr=lr, batch_size=batch_size, warmup=warmup, seed=seed,
                      progress=not quiet, precision=precision, accumulate=accumulate,
                      resume=resume, **options)
    if int(os.environ.get("RANK", "0")) != 0:
        return
    _echo_json({"objective": record["objective"], "metric": record["metrics"]["metric"],
                "before": record["metrics"]["before"], "after": record["metrics"]["after"],
                "out": str(Path(out))})


def _contrastive(encoders: str, data: str, eval_data: str | None, out: str, *, epochs: int,
                 lr: float, batch_size: int, freeze: str, dim: int, seed: int, resume: bool,
                 quiet: bool) -> None:
    from zoo.build.compose import compose
    from zoo.training import train

    pairs = dict(x.split("=", 1) for x in encoders.split(",") if "=" in x)
    if len(pairs) != 2:
        raise ZooError("--encoders takes two modality=encoder pairs, e.g. "
                       "image=efficientnet-lite0,text=minilm-l6")
    from zoo.registry import get_registry

    task = get_registry().component("head", "contrastive").tasks[0]  # what it aligns for
    model = compose(task, pairs, {"name": "contrastive", "dim": dim},
                    name="aligned-" + "-".join(pairs[m] for m in sorted(pairs)), pretrained=True,
                    description=f"{' and '.join(sorted(pairs))} aligned by contrastive pretraining")
    summary = train(model, data, eval_data, out, resume=resume, epochs=epochs, lr=lr,
                    batch_size=batch_size, freeze=_freeze_arg(freeze), seed=seed,
                    progress=not quiet)
    if int(os.environ.get("RANK", "0")) == 0:
        _echo_json({"best": summary["best"], "best_epoch": summary["best_epoch"],
                    "out": summary["out"]})
