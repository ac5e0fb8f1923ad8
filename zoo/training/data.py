"""The data side of training: reading and checking a split, fitting the task, choosing the
frozen encoders, and the order of examples in each epoch (random, seeded, optionally
grouped by length, sharded across processes)."""
from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any, Sequence

import torch

from zoo.errors import DataError, ZooError

__all__ = ["read_split", "for_task", "check_targets", "frozen_modalities", "epoch_batches",
           "example_length", "group_by_length"]


def read_split(data: Any, what: str, on_bad_data: str, main: bool,
               columns: dict | None = None) -> tuple[list, Any]:
    """(examples, categories) of a split; bad examples fail, or are skipped with a warning
    that names each file:line."""
    from zoo.data.check import example_problem
    from zoo.data.formats import read_any

    errors: list[tuple[Any, str]] = []  # (line, message), from parsing and from checks
    examples, cats, _ = read_any(data, columns=columns, on_bad_data="skip", errors=errors)
    good = []
    for ex in examples:
        problem = example_problem(ex.inputs)
        if problem is None:
            good.append(ex)
        else:
            errors.append((ex.line, f"{data}:{ex.line}: {problem}"))
    errors.sort(key=lambda e: (str(type(e[0])), e[0]))
    _report([m for _, m in errors], what, on_bad_data, main)
    if not good:
        raise DataError(f"no usable {what} examples in {data}")
    return good, cats


def pick_model(name: Any, examples: Sequence[Any], main: bool) -> Any:
    """A registry model whose text encoder knows only some languages (its registration's
    ``languages``) and whose entry names a ``fallback``: the fallback when the training
    text is in another language. Anything else is returned as it is."""
    import sys

    from zoo.registry import get_registry
    from zoo.registry.specs import split_tag

    if not isinstance(name, str) or Path(name).exists():
        return name
    reg = get_registry()
    try:
        spec = reg.lookup("model", name)
    except ZooError:
        return name  # not a registry name: loading it says what is wrong
    if not spec.fallback:
        return name
    from zoo.data.language import text_language

    for m, ref in spec.encoders.items():  # an encoder whose weights know some languages
        enc = reg.resolved(spec, f"encoders.{m}", "encoder", split_tag(ref["name"])[0])
        if enc is None or not enc.languages:
            continue
        lang, share = text_language(ex.inputs[m] for ex in examples
                                    if isinstance(ex.inputs.get(m), str))
        if lang is not None and lang not in enc.languages:
            break
    else:
        return name
    reg.lookup("model", spec.fallback)  # an unknown fallback is one line
    if main:
        sys.stderr.write(f"{name}: the training text is not in {enc.name}'s languages "
                         f"({', '.join(enc.languages)}; {share:.0%} English function words): "
                         f"training {spec.fallback} instead (the entry's fallback)\n")
    return spec.fallback


def for_task(model: Any, task: str | None, examples: Sequence[Any]) -> Any:
    """The model to train for ``task`` (None: the model's own): another task only when the
    model's task converts to it (an aligned model seeds a classifier), and only when asked."""
    if task is not None and task != model.task:
        model = model.task_impl.convert(model, task, examples)
    return model


def check_targets(examples: list, task: Any, what: str, on_bad_data: str, main: bool,
                  source: Any = None) -> list:
    """The examples whose targets the model's task accepts; the others fail the run, or
    are skipped with a warning naming each (``--on-bad-data skip``)."""
    good, errors = [], []
    for ex in examples:
        where = f"{source}:{ex.line}" if isinstance(source, (str, Path)) else f"line {ex.line}"
        problem = task.target_problem(ex.targets, where, None, ex.inputs)
        if problem is None:
            good.append(ex)
        else:
            errors.append(problem)
    _report(errors, what, on_bad_data, main)
    if not good:
        raise DataError(f"no usable {what} examples in {source}: {errors[0]}")
    return good


def _report(errors: list[str], what: str, on_bad_data: str, main: bool) -> None:
    if errors and on_bad_data != "skip":
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        raise DataError(f"{errors[0]}{more}; fix it, or pass --on-bad-data skip to leave "
                        f"bad examples out")
    if errors and main:
        warnings.warn(f"{what}: skipped {len(errors)} bad example(s): "
                      + "; ".join(errors[:5]) + (" ..." if len(errors) > 5 else ""),
                      RuntimeWarning, stacklevel=4)


def adapted(model: Any) -> list[str]:
    """The modalities whose encoders carry LoRA adapters (``zoo train --adapter lora``)."""
    return list((model.config.get("adapter") or {}).get("base") or {})


def frozen_modalities(model: Any, freeze: Any) -> set[str]:
    if freeze in (None, "none", False):
        return set()
    if freeze in ("all", True):
        return set(model.encoders)
    if freeze == "auto":  # pretrained weights, or nothing to train (a fitted TF-IDF)
        return {m for m, e in model.config["encoders"].items() if e.get("weights")
                or not any(True for _ in model.encoders[m].parameters())}
    names = [freeze] if isinstance(freeze, str) else list(freeze)
    out = set()
    for n in names:
        hits = [m for m, e in model.config["encoders"].items() if n in (m, e["name"])]
        if not hits:
            raise ZooError(f"--freeze {n!r} names no encoder of this model (modalities: "
                           f"{', '.join(model.encoders)})")
        out.update(hits)
    return out


def example_length(ex: Any, reg: dict[str, Any] | None = None) -> float:
    """A sort key for length grouping: the length (seconds, characters) of the example's
    costliest variable-length input (audio before text)."""
    from zoo.registry import modalities

    reg = modalities() if reg is None else reg
    present = [m for m in ex.inputs if m in reg and reg[m].variable_length]
    if not present:
        return 0.0
    m = max(present, key=lambda k: reg[k].cost)
    return float(reg[m].length(ex.inputs[m]))


def group_by_length(order: list[int], lengths: Sequence[float], batch: int,
                    g: torch.Generator) -> list[int]:
    """Reorder a random permutation so that each run of ``batch`` indices has similar
    lengths: sort within mega-batches of 50 batches, then shuffle the batches (the
    sampler of HF's ``group_by_length``, with the batch order randomised too)."""
    mega = batch * 50
    chunks = []
    for i in range(0, len(order), mega):
        part = sorted(order[i:i + mega], key=lambda j: lengths[j], reverse=True)
        chunks += [part[k:k + batch] for k in range(0, len(part), batch)]
    full = [c for c in chunks if len(c) == batch]
    rest = [c for c in chunks if len(c) < batch]  # at most one: keep it last
    perm = torch.randperm(len(full), generator=g).tolist()
    return [j for k in perm for j in full[k]] + [j for c in rest for j in c]


def epoch_batches(n: int, epoch: int, seed: int, per_rank: int, rank: int, world: int,
                  lengths: Sequence[float] | None) -> list[list[int]]:
    """This process's batches (example indices) for one epoch: the same seeded global
    order on every process, padded to equal shards, then split by rank."""
    g = torch.Generator().manual_seed(seed * 1000 + epoch)
    order = torch.randperm(n, generator=g).tolist()
    if lengths is not None:
        order = group_by_length(order, lengths, per_rank * world, g)
    order += order[: (-len(order)) % world]  # equal shards
    mine = order[rank::world]
    return [mine[i:i + per_rank] for i in range(0, len(mine), per_rank)]
