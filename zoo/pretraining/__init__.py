"""Self-supervised pretraining of one encoder (``zoo pretrain --objective NAME``).

The driver is the same for every registered objective (zoo-text-hf's ``mlm``, or a
plugin's): read unlabeled data, hold some out, seed, evaluate on fixed held-out batches,
train (AdamW, warm-up then linear decay, clipped gradients), evaluate again on the very
same batches, then let the objective write the encoder into a staging folder that is
moved into place only when complete, beside a model card (``README.md``) and a record
(``zoo_pretrain.json``). What the objective does is described in :mod:`zoo.base.objective`.
The optimisation (parameter groups, schedules, the epoch loop) is in
:mod:`zoo.pretraining.loop`.

Data: a plain text file (``.txt``, ``.text``) holds one example per non-empty line; JSONL,
CSV / TSV, Parquet and ``datasets`` folders are read as ``zoo train`` reads them, the
modality's column (``text``, or ``columns={"text": NAME}``) giving the examples.
"""
from __future__ import annotations

import hashlib
import json
import sys
import time
from pathlib import Path
from typing import Any, Callable

from zoo.errors import DataError, UnknownNameError, ZooError
from zoo.pretraining.loop import evaluate, fit
from zoo.pretraining.loop import build_optimizer as _optimizer  # noqa: F401  (its old name)
from zoo.weights import sha256_file

__all__ = ["pretrain", "read_values", "describe_encoder", "RECORD_NAME", "PLAIN_TEXT"]

#: the record written beside the pretrained encoder
RECORD_NAME = "zoo_pretrain.json"
DEFAULT_LR = 5e-5  # the run's --lr when neither the user nor the objective sets one
#: suffixes read as plain text: one example per non-empty line
PLAIN_TEXT = (".txt", ".text")


def _say(line: str) -> None:
    sys.stderr.write(line + "\n")


def _objective_spec(name: str) -> Any:
    from zoo.registry import get_registry

    reg = get_registry()
    try:
        return reg.lookup("objective", name)
    except UnknownNameError:
        known = ", ".join(["contrastive", *sorted(s.name for s in reg.all("objective"))])
        raise ZooError(f"unknown objective {name!r} (objectives: {known}; see `zoo list "
                       f"--kind objective`, or install the plugin that provides it)") from None


def describe_encoder(encoder: str, modality: str) -> dict[str, Any]:
    """What an objective's factory receives about the encoder to pretrain: a registry
    encoder (``name``, ``factory``, ``defaults``, ``weights``, its plugin) or a folder
    (``path``). A registered encoder of another modality is refused here."""
    from zoo.registry import get_registry, split_tag

    path = Path(encoder)
    if path.is_dir():
        return {"name": path.absolute().name, "path": str(path.absolute()), "modality": None,
                "factory": None, "defaults": {}, "weights": None, "distribution": None}
    reg = get_registry()
    try:
        spec = reg.encoder(encoder)
    except UnknownNameError as e:
        raise ZooError(f"{e}; --encoder takes a registry encoder name or a folder") from None
    if spec.modality != modality:
        article = "an" if str(spec.modality)[:1] in "aeiou" else "a"
        raise ZooError(f"encoder {spec.name!r} is {article} {spec.modality} encoder; this "
                       f"objective pretrains {modality} encoders (`zoo list --kind encoder "
                       f"--modality {modality}`)")
    _, tag = split_tag(encoder)
    return {"name": spec.name, "path": None, "modality": spec.modality,
            "factory": spec.factory if isinstance(spec.factory, str) else None,
            "defaults": dict(spec.defaults),
            "weights": f"{spec.name}.{tag}" if tag else spec.weights,
            "distribution": spec.distribution, "plugin": spec.plugin}


def read_values(data: Any, modality: str, columns: dict[str, str] | None = None
                ) -> tuple[list[Any], dict[str, Any]]:
    """The examples of unlabeled ``data`` (values of ``modality``) and a description of the
    corpus (name, sha256, how it was split into examples). A ``.txt`` file is plain text
    unless ``columns`` are given (then it is read as a table, as ``zoo train`` reads it).
    Empty data is one line."""
    from zoo.data.formats import read_any

    path = Path(data) if isinstance(data, (str, Path)) else None
    if path is not None and path.is_file() and path.suffix.lower() in PLAIN_TEXT \
            and not columns:
        from zoo.registry import get_modality

        if not get_modality(modality).plain_string:
            raise DataError(f"{path}: a plain text file holds strings, and this objective "
                            f"pretrains {modality} encoders")
        with open(path, encoding="utf-8", errors="replace") as f:
            values = [ln.strip() for ln in f if ln.strip()]
        info = {"name": path.name, "sha256": sha256_file(path), "sha256_of": "file",
                "unit": "one example per non-empty line"}
    else:
        examples, _, name = read_any(data, columns=columns)
        values = [ex.inputs.get(modality) for ex in examples]
        values = [v for v in values if v is not None and not (isinstance(v, str)
                                                              and not v.strip())]
        from zoo.registry import get_modality

        where = f"{data}"
        values = [get_modality(modality).from_data(v, None, where) for v in values]
        file = path is not None and path.is_file()
        digest = sha256_file(path) if file else hashlib.sha256(
            "\n".join(map(str, values)).encode("utf-8")).hexdigest()
        info = {"name": path.name if path is not None else name, "sha256": digest,
                "sha256_of": "file" if file else "values joined by newlines",
                "unit": f"one example per row ({modality!r} column)"}
    if not values:
        hint = ("one example per non-empty line" if info["unit"].startswith("one example per "
                                                                            "non-empty")
                else f"map your column with --column {modality}=NAME")
        raise DataError(f"{data}: no {modality} to pretrain on (empty corpus); {hint}")
    return values, info


def split_eval(values: list[Any], eval_values: list[Any] | None, fraction: float, seed: int
               ) -> tuple[list[Any], list[Any]]:
    """(train, held-out): the given held-out values, else a seeded ``fraction`` of the data
    (at least one example; none when the fraction is 0 or there is one example)."""
    import random

    if eval_values is not None:
        return values, eval_values
    if not 0 <= fraction < 1:
        raise ZooError(f"--eval-fraction must be in [0, 1), not {fraction}")
    n_eval = 0 if fraction == 0 or len(values) < 2 else max(1, round(fraction * len(values)))
    order = list(range(len(values)))
    random.Random(seed).shuffle(order)
    held = set(order[:n_eval])
    return ([v for i, v in enumerate(values) if i not in held],
            [values[i] for i in sorted(held)])


def check_out(out: Path) -> None:
    """Refuse, before any work, to replace a folder that is not a pretraining output."""
    out = Path(out)
    if out.exists() and (not out.is_dir() or (any(out.iterdir())
                                              and not (out / RECORD_NAME).is_file())):
        raise ZooError(f"{out} exists and is not a `zoo pretrain` output; pass a new or "
                       f"empty --out folder")


def save_folder(out: Path, write: Callable[[Path], None]) -> None:
    """Write a folder atomically: everything goes into a hidden staging folder beside
    ``out``, which replaces ``out`` (renames) once complete. A kill leaves the old folder
    (or, between the two renames, the old one aside, put back by the next save); never a
    half-written one. Refuses to replace a folder that is not a pretraining output."""
    import os
    import shutil
    import uuid

    from zoo.io.atomic import fsync_tree

    out = Path(out).absolute()
    parent = out.parent
    parent.mkdir(parents=True, exist_ok=True)
    for old in parent.glob(f".{out.name}.zoo-save-*"):  # a killed save's leftovers
        shutil.rmtree(old, ignore_errors=True)
    aside = sorted(parent.glob(f".{out.name}.zoo-old-*"))
    if aside and not out.exists():
        os.replace(aside[-1], out)  # killed between the renames: the old one comes back
    check_out(out)
    token = uuid.uuid4().hex[:8]
    staging = parent / f".{out.name}.zoo-save-{token}"
    staging.mkdir()
    try:
        write(staging)
        fsync_tree(staging)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    if out.exists():
        old = parent / f".{out.name}.zoo-old-{token}"
        os.replace(out, old)
        os.replace(staging, out)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(staging, out)
    fsync_tree(parent, files=False)


def _record(spec: Any, obj: Any, encoder: dict[str, Any], corpus: dict[str, Any],
            held: dict[str, Any], options: dict[str, Any], before: dict[str, float],
            after: dict[str, float], losses: list[float], seconds: float) -> dict[str, Any]:
    from zoo.version import __version__

    return {"zoo_pretrain": 1, "objective": spec.name,
            "objective_provider": {"distribution": spec.distribution, "version": spec.version},
            "encoder": {"name": encoder["name"], "registry": encoder["path"] is None,
                        **obj.base()},
            "encoder_kwargs": getattr(obj, "encoder_kwargs", {}),
            "folder_encoder": obj.folder_encoder,
            "settings": obj.settings(), "corpus": corpus, "eval": held,
            "training": {**options, "train_loss": [round(x, 4) for x in losses],
                         "seconds": round(seconds, 1), "device": str(options.get("device"))},
            "metrics": {"metric": obj.metric, "before": before, "after": after},
            "zoo_version": __version__,
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}


def _figures(metrics: dict[str, float], metric: str) -> str:
    return f"{metric} {metrics[metric]:.3f}" if metric in metrics else \
        ", ".join(f"{k} {v:.4g}" for k, v in metrics.items()) or "not measured"


def _prepare(spec: Any, encoder: str, data: Any, eval_data: Any, eval_fraction: float,
             columns: dict[str, str] | None, seed: int, options: dict[str, Any]
             ) -> tuple[Any, dict[str, Any], list, list, dict[str, Any], dict[str, Any]]:
    """The objective built on its encoder and the corpus read, split and encoded:
    (objective, encoder description, train items, held-out items, corpus, held-out)."""
    enc = describe_encoder(str(encoder), spec.modality)
    values, corpus = read_values(data, spec.modality, columns)
    given = read_values(eval_data, spec.modality, columns)[0] if eval_data is not None else None
    train_values, eval_values = split_eval(values, given, eval_fraction, seed)
    if not train_values:
        raise DataError(f"{data}: nothing left to train on after holding out "
                        f"{len(eval_values)} example(s); lower --eval-fraction")
    from zoo.training import _seed_everything

    _seed_everything(seed)
    try:
        obj = spec.build(encoder=enc, seed=seed, **options)
    except TypeError as e:
        raise ZooError(f"objective {spec.name!r} (plugin {spec.plugin!r}) does not take "
                       f"these options: {e}") from None
    items, held_items = obj.encode(train_values), obj.encode(eval_values)
    # the corpus is --data: the held-out split of it included, an --eval file not
    corpus = {**corpus, **obj.stats(items + held_items if eval_data is None else items)}
    held = {"source": Path(str(eval_data)).name if eval_data is not None else
            f"a seeded {eval_fraction:g} of the corpus", **obj.stats(held_items)}
    return obj, enc, items, held_items, corpus, held


def pretrain(objective: str, encoder: str, data: Any, out: str | Path, *,
             eval_data: Any = None, eval_fraction: float = 0.05,
             columns: dict[str, str] | None = None, epochs: int = 3, lr: float | None = None,
             batch_size: int = 32, warmup: float = 0.06, weight_decay: float = 0.01,
             seed: int = 0, progress: bool = True, precision: str = "auto",
             accumulate: int = 1, resume: bool = False, **options: Any) -> dict[str, Any]:
    """Pretrain ``encoder`` (a registry name or a folder) with the registered
    ``objective`` on unlabeled ``data``; write it to ``out``. ``options`` go to the
    objective's factory (``mlm``: ``mlm_probability``, ``whole_word``, ``max_length``,
    ``head_lr``: the MLM head's own learning rate, ``head_warmup``, ``head_init``,
    ``freeze_encoder``, ``anchor``; see ``zoo_text_hf.mlm.build_mlm``). ``lr`` and
    ``warmup`` are those of every parameter group that does not set its own
    (``Objective.param_groups``); ``lr`` None: the objective's ``default_lr``, else 5e-5.
    Runs on the trainer's machinery: ``precision``, ``accumulate``, DDP under torchrun, and
    ``resume`` from the state kept beside ``out`` after every epoch. Returns the record
    also written as ``out/zoo_pretrain.json``."""
    from zoo.training.dist import Dist

    if batch_size < 1 or epochs < 0 or accumulate < 1:
        raise ZooError(f"--batch-size and --accumulate must be >= 1 and --epochs >= 0 (got "
                       f"{batch_size}, {accumulate}, {epochs})")
    spec = _objective_spec(objective)
    check_out(Path(out))
    dist = Dist.from_env()
    obj, enc, items, held_items, corpus, held = _prepare(
        spec, encoder, data, eval_data, eval_fraction, columns, seed, options)
    if lr is None:
        lr = float(getattr(obj, "default_lr", None) or DEFAULT_LR)
    for note in obj.notes if dist.main else ():
        _say(f"note: {note}")
    obj.to(dist.device)
    # the held-out batches are drawn once: before and after score the same masks
    fixed = [obj.collate(held_items[i:i + batch_size], seed=seed + 1 + i // batch_size)
             for i in range(0, len(held_items), batch_size)]
    before = evaluate(obj, fixed, dist.device)
    if dist.main:
        _say(f"{spec.name}: {len(items)} train / {len(held_items)} held-out examples; "
             f"before: {_figures(before, obj.metric)}")
    state_dir = _state_dir(Path(out))
    t0 = time.perf_counter()
    losses, groups = fit(obj, items, epochs=epochs, lr=lr, batch_size=batch_size,
                         warmup=warmup, weight_decay=weight_decay, seed=seed,
                         progress=progress, dist=dist, precision=precision,
                         accumulate=accumulate, state_dir=state_dir, resume=resume)
    seconds = time.perf_counter() - t0
    after = evaluate(obj, fixed, dist.device)
    train_opts = {"epochs": epochs, "lr": lr, "batch_size": batch_size, "warmup": warmup,
                  "weight_decay": weight_decay, "seed": seed, "optimizer": "AdamW",
                  "schedule": "linear warm-up, then linear decay to 0 (each parameter group "
                              "from its start step, at its lr)", "param_groups": groups,
                  "grad_clip": 1.0,
                  "precision": precision, "accumulate": accumulate, "processes": dist.world,
                  "train_examples": len(items), "device": dist.device.type}
    record = _record(spec, obj, enc, corpus, held, train_opts, before, after, losses, seconds)
    if dist.main:
        _say(f"{spec.name}: after {epochs} epoch(s): {_figures(after, obj.metric)} "
             f"(before: {_figures(before, obj.metric)}), {seconds:.0f} s")
        _write(obj, record, Path(out), state_dir)
    dist.barrier()
    return record


def _write(obj: Any, record: dict[str, Any], out: Path, state_dir: Path) -> None:
    """The pretrained encoder, its record and card, atomically; then the resume state
    goes (nothing left to resume)."""
    import shutil

    from zoo.io.pretrain_card import write_card

    def write(folder: Path) -> None:
        obj.cpu().save(folder, record)
        (folder / RECORD_NAME).write_text(json.dumps(record, indent=2) + "\n")
        write_card(folder, record, obj, out.name)

    save_folder(out, write)
    shutil.rmtree(state_dir, ignore_errors=True)


def _state_dir(out: Path) -> Path:
    """Where a pretraining run keeps its resume state: beside ``out`` (which is replaced
    whole when the run ends), hidden."""
    return out.absolute().parent / f".{out.name}.zoo-pretrain-state"
