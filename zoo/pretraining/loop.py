"""The optimisation half of ``zoo pretrain``: the objective's parameter groups, AdamW with
a warm-up-then-linear-decay schedule per group, the epoch loop on the trainer's machinery
(:class:`zoo.training.engine.Stepper`, DDP, resume) and the held-out evaluation. The
driver, the corpus and the output folder are in :mod:`zoo.pretraining`."""
from __future__ import annotations

import math
import sys
from pathlib import Path
from typing import Any, Sequence

from zoo.errors import ZooError

__all__ = ["param_groups", "build_optimizer", "fit", "evaluate"]


def _to(batch: dict[str, Any], device: Any) -> dict[str, Any]:
    return {k: v.to(device) if hasattr(v, "to") else v for k, v in batch.items()}


def evaluate(obj: Any, batches: Sequence[dict[str, Any]], device: Any) -> dict[str, float]:
    import torch

    if not batches:
        return {}
    obj.eval()
    with torch.no_grad():
        figures = obj.evaluate([_to(b, device) for b in batches])
    return {k: v if isinstance(v, int) else float(v) for k, v in figures.items()}


def param_groups(obj: Any, lr: float, warmup: float) -> list[dict[str, Any]]:
    """The objective's parameter groups (``Objective.param_groups``), each with its learning
    rate, warm-up share and first step filled in from the run's where it leaves them out."""
    own = obj.param_groups() if hasattr(obj, "param_groups") else [
        {"name": "all", "params": [p for p in obj.parameters() if p.requires_grad]}]
    groups = []
    for g in own:
        params = [p for p in g["params"] if p.requires_grad]
        if params:
            groups.append({**g, "params": params,
                           "lr": lr if g.get("lr") is None else float(g["lr"]),
                           "warmup": warmup if g.get("warmup") is None else float(g["warmup"]),
                           "start": int(g.get("start") or 0)})
    if not groups:
        raise ZooError("the objective has no trainable parameters")
    return groups


def build_optimizer(obj: Any, lr: float, weight_decay: float, warmup: float, total: int
               ) -> tuple[Any, Any, list[dict[str, Any]]]:
    """AdamW over the objective's parameter groups, each with its own learning rate and
    schedule (linear warm-up over its ``warmup`` share of the steps from its ``start``, then
    linear decay to 0 at the end; nothing before ``start``); no weight decay on biases and
    norms (1-d tensors), as BERT was trained. (optimizer, LambdaLR, what each group got)."""
    import torch

    from zoo.training.optim import lr_factor

    groups = param_groups(obj, lr, warmup)
    torch_groups, factors = [], []
    for g in groups:
        f = lr_factor(max(1, total - g["start"]), g["warmup"], "linear")
        factor = (lambda step, f=f, start=g["start"]: 0.0 if step < start else f(step - start))
        for decay, params in ((weight_decay, [p for p in g["params"] if p.ndim >= 2]),
                              (0.0, [p for p in g["params"] if p.ndim < 2])):
            if params:
                torch_groups.append({"params": params, "lr": g["lr"], "weight_decay": decay})
                factors.append(factor)
    opt = torch.optim.AdamW(torch_groups, lr=lr)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, factors)
    described = [{"name": g["name"], "lr": g["lr"], "warmup": g["warmup"],
                  "start_step": g["start"], "tensors": len(g["params"]),
                  "parameters": sum(p.numel() for p in g["params"])} for g in groups]
    return opt, sched, described


def fit(obj: Any, items: list[Any], *, epochs: int, lr: float, batch_size: int,
         warmup: float, weight_decay: float, seed: int, progress: bool, dist: Any,
         precision: str, accumulate: int, state_dir: Path, resume: bool
         ) -> tuple[list[float], list[dict[str, Any]]]:
    """Train for ``epochs`` on the trainer's machinery (the shared :class:`Stepper`:
    precision, accumulation, clipping; seeded epochs sharded across torchrun processes under
    DDP; a resume state after every epoch); the mean training loss of each epoch, and the
    parameter groups with their learning rates and schedules."""
    import torch
    from tqdm.auto import tqdm

    from zoo.training.checkpoint import load_state, save_state
    from zoo.training.data import epoch_batches
    from zoo.training.engine import Stepper
    from zoo.training.optim import resolve_precision

    net = obj
    if dist.world > 1:  # forward(batch) is the loss: DDP syncs gradients on backward
        from torch.nn.parallel import DistributedDataParallel as DDP

        net = DDP(obj, find_unused_parameters=True)
    per_rank = max(1, batch_size // dist.world)
    per_epoch = math.ceil(math.ceil(len(items) / dist.world) / per_rank)
    obj.plan(epochs * per_epoch)  # before the groups: a head-only phase sets their starts
    opt, sched, groups = build_optimizer(obj, lr, weight_decay, warmup, epochs * per_epoch)
    mode = resolve_precision(precision, dist.device)
    stepper = Stepper([p for p in obj.parameters() if p.requires_grad], opt, sched, mode,
                      dist.device, accumulate, 1.0,
                      torch.amp.GradScaler("cuda") if mode == "fp16" else None)
    state = {"epoch": 0, "batch": 0, "global_step": 0, "losses": [], "epoch_loss": 0.0}
    if resume:
        state = load_state(state_dir, obj, opt, sched)
    bar = tqdm(total=epochs * per_epoch, initial=state["global_step"], desc="pretrain",
               unit="step", dynamic_ncols=True, disable=not (progress and dist.main),
               file=sys.stderr)
    for epoch in range(state["epoch"], epochs):
        obj.train()
        batches = epoch_batches(len(items), epoch, seed, per_rank, dist.rank, dist.world, None)
        for bi in range(state["batch"], len(batches)):
            # each step's random parts (masks) from a seed of its own: a resumed run draws
            # what the uninterrupted one drew, and each process its own
            step_seed = ((seed * 1009 + epoch) * 100_003 + bi) * 257 + dist.rank
            value = stepper.step(lambda part: net(_to(obj.collate(
                [items[k] for k in part], seed=step_seed), dist.device)), batches[bi])
            if not math.isfinite(value):
                raise ZooError(f"the loss became {value} at epoch {epoch + 1}; lower --lr "
                               f"(now {lr})")
            state.update(batch=bi + 1, global_step=state["global_step"] + 1,
                         epoch_loss=state["epoch_loss"] + value)
            bar.update(1)
            bar.set_postfix(epoch=epoch + 1, loss=f"{value:.3f}")
        mean = sum(dist.gather(state["epoch_loss"] / max(1, len(batches)))) / dist.world
        state.update(epoch=epoch + 1, batch=0, epoch_loss=0.0, losses=[*state["losses"], mean])
        if dist.main:
            save_state(state_dir, obj, opt, sched, state)
        dist.barrier()
    bar.close()
    return state["losses"], groups
