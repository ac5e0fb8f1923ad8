"""Fine-tuning: ``zoo.train`` / ``zoo train``, single process or DDP under torchrun.

Transfer learning as it is usually done: pretrained encoders frozen by default (their
features computed once and cached, so later epochs run only fusion and head) or fine-tuned
with a lower learning rate than the new layers; AdamW with linear warm-up and cosine decay;
the best checkpoint by the task's eval metric saved as a loadable zoo model; exact resume.

Output folder::

    config.json, model.safetensors, preprocessor/   the best model (zoo.load(out))
    eval_results.json                                its eval metrics (for the model card)
    metrics.jsonl                                    one line per logged step / epoch
    training_curves.png (+ the task's pictures)      e.g. confusion_matrix.png
    train_state/                                     for --resume (weights, optimizer, RNG)

Modules: ``config`` (options), ``data`` (splits, order), ``cache`` (frozen features),
``checkpoint`` (resume state), ``plots``, ``dist`` (torchrun), ``loop`` (the steps).
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any

__all__ = ["TrainConfig", "train"]

from zoo.training.config import TrainConfig


def _seed_everything(seed: int) -> None:
    """torch, Python and numpy: augmentation draws from all three."""
    import random

    import numpy as np
    import torch

    torch.manual_seed(seed)
    random.seed(seed)
    np.random.seed(seed)


def train(model: Any, train: Any, eval: Any = None, out: str | Path = "out", *,
          resume: bool = False, **options: Any) -> dict[str, Any]:
    """Fine-tune ``model`` (a model, a folder or a registry name) on ``train`` (a JSONL
    manifest, a COCO file or a list of examples); pick the best epoch on ``eval``; write
    the best model and the training record to ``out``. Options: see :class:`TrainConfig`.
    Returns ``{"best": metrics, "best_epoch": n, "out": path, ...}``."""
    from zoo.training.config import make_config
    from zoo.training.dist import Dist
    from zoo.training.loop import (Run, begin_finetune, consider_start, end_epoch, finish,
                                   last_epoch, start, train_epoch)

    cfg = make_config(options)
    dist = Dist.from_env(cfg.device)
    _seed_everything(cfg.seed)
    out = Path(out)
    if dist.main:
        out.mkdir(parents=True, exist_ok=True)
    model, train_ex, eval_ex, eval_cats = _prepare(model, train, eval, cfg, dist.main)
    run = start(Run(model=model, cfg=cfg, dist=dist, out=out, task=model.task_impl,
                    train_ex=train_ex, eval_ex=eval_ex, eval_cats=eval_cats,
                    sources=(train, eval)), resume)
    t0 = time.perf_counter()
    consider_start(run)  # a closed-form probe start competes for best as epoch 0
    while True:  # the probe, then (LP-FT, when the probe is weak) the fine-tuning stage
        for epoch in range(run.state["epoch"], last_epoch(run)):
            train_epoch(run, epoch)
            if run.state.get("abandoned") and run.best_state is not None:
                # an automatic stage that does not fit the budget: its measured steps are
                # undone (the best probe is what was saved) and nothing more is spent
                run.model.load_state_dict(run.best_state, strict=False)
                break
            end_epoch(run, epoch, t0)
            if run.stop:
                break
        run.stop = False
        if run.state["stage"] != "probe" or not begin_finetune(run):
            return finish(run)


def _prepare_head(task: Any, model: Any, examples: list, categories: Any, force: bool) -> None:
    """``task.prepare``; a :class:`~zoo.errors.DataWarning` it raises (data nothing useful is
    learnt from: one class only) stops the run unless ``force``."""
    import warnings

    from zoo.errors import DataError, DataWarning

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", DataWarning)
        task.prepare(model, examples, categories)
    for w in caught:
        if issubclass(w.category, DataWarning) and not force:
            raise DataError(f"{w.message} (or pass --force / force=True to train anyway)")
        warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)


def _prepare(model: Any, train: Any, eval: Any, cfg: Any, main: bool) -> tuple:
    """Read and check both splits, build the model for its task, fit its encoders'
    preprocessing and its head to the data: (model, train examples, eval
    examples or None, eval categories)."""
    from zoo.data.rows import resolve_file_targets
    from zoo.io.hub import load
    from zoo.training.data import check_targets, for_task, pick_model, read_split

    train_ex, cats = read_split(train, "train", cfg.on_bad_data, main, cfg.columns)
    eval_ex, eval_cats = (read_split(eval, "eval", cfg.on_bad_data, main, cfg.columns)
                          if eval is not None else (None, None))
    if isinstance(model, (str, Path)):  # a registry name may pick its fallback by the data
        model = load(pick_model(model, train_ex, main))
    model = for_task(model, cfg.task, train_ex)
    task = model.task_impl
    resolve_file_targets([*train_ex, *(eval_ex or [])], task.file_targets)
    train_ex = check_targets(train_ex, task, "train", cfg.on_bad_data, main, train)
    if eval_ex is not None:
        eval_ex = check_targets(eval_ex, task, "eval", cfg.on_bad_data, main, eval)
    for m, enc in model.encoders.items():  # on resume too: the same data fits the same
        enc.fit([ex.inputs[m] for ex in train_ex if ex.inputs.get(m) is not None])
    _prepare_head(task, model, train_ex, cats, cfg.force)  # same seed: same head on every rank
    if cfg.adapter and not model.config.get("adapter"):
        from zoo.build.adapters import add_lora

        add_lora(model, r=cfg.lora_r, alpha=cfg.lora_alpha, dropout=cfg.lora_dropout)
    return model, train_ex, eval_ex, eval_cats
