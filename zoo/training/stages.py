"""The stages of a run: the probe (frozen pretrained encoders, features cached) and, when
the probe is weak, LP-FT's fine-tuning stage; setting each up, and resuming into it."""
from __future__ import annotations

import math
from pathlib import Path

import torch

from zoo.training.cache import encode_all
from zoo.training.data import adapted, frozen_modalities
from zoo.training.engine import Stepper
from zoo.training.optim import lr_factor, make_optimizer, precision_of
from zoo.training.run import Run

__all__ = ["configure", "show_progress", "saved_stage", "stage_epochs", "last_epoch",
           "begin_finetune"]


def configure(run: Run, stage: str, fresh: bool = True) -> None:
    """Set a stage up: "probe" freezes as ``freeze`` says (caches frozen features and,
    ``fresh`` (not resumed) and where it applies, starts from a closed-form probe);
    "finetune" (LP-FT's second stage) trains the encoders the probe kept frozen, every
    parameter at the fine-tuning learning rate."""
    model, cfg, dist = run.model, run.cfg, run.dist
    if stage == "probe":
        # adapted encoders (LoRA) keep their own split: base frozen, adapters trained
        run.frozen = frozen_modalities(model, cfg.freeze) - set(adapted(model))
        for m in run.frozen:
            model.encoders[m].requires_grad_(False)
    else:
        probed = frozen_modalities(model, cfg.freeze)  # also right after a resume
        for m in probed:
            model.encoders[m].requires_grad_(True)
        # their BatchNorm layers keep the statistics the probe's head was fitted on: batch
        # statistics of a far-off domain (upscaled 8x8 digits) would shift every feature
        # under the head at once and undo the probe (tested: accuracy 0.95 -> 0.35)
        run.stats_frozen = probed
        run.frozen, run.cached, run.eval_cached = set(), None, None
    run.state["stage"] = stage
    model.to(dist.device)
    model.precision = "fp32"  # the eval predictions of a run, as ever: full precision
    if stage == "probe" and cfg.cache_features and run.frozen == set(model.encoders):
        run.cached = _encode(run, run.train_ex, "cache train features")
        if run.eval_ex is not None:
            run.eval_cached = _encode(run, run.eval_ex, "cache eval features")
    run.opt = make_optimizer(model, cfg, finetune=stage == "finetune")
    if stage == "probe" and fresh:  # (a resumed run restores its weights and rates)
        run.state["probe_init"] = _probe_start(run)
        if run.state["probe_init"] is not None:  # the epochs refine the fitted start
            for group in run.opt.param_groups:
                if group.get("name") == "new layers":
                    group["lr"] *= float(run.state["probe_init"].get("lr_scale", 1.0))
    run.per_rank = max(1, cfg.batch_size // dist.world)
    n_batches = math.ceil(math.ceil(len(run.train_ex) / dist.world) / run.per_rank)
    run.total = max(1, n_batches * stage_epochs(run, stage))
    run.sched = torch.optim.lr_scheduler.LambdaLR(run.opt, lr_factor(run.total, cfg.warmup,
                                                                     cfg.scheduler))
    precision = precision_of(cfg, dist.device)
    if precision == "fp16" and run.scaler is None:
        run.scaler = torch.amp.GradScaler("cuda")
    run.stepper = Stepper(list(model.parameters()), run.opt, run.sched, precision, dist.device,
                          cfg.accumulate, cfg.grad_clip, run.scaler)
    run.net = model
    from zoo.training.budget import stage_started

    stage_started(run)
    if dist.world > 1:
        from torch.nn.parallel import DistributedDataParallel as DDP

        # a batch without some modality leaves that modality's fusion parameters unused (a
        # null embedding, a branch, a projection), and trained encoders may skip parts of
        # themselves (BERT's pooler): DDP must look for unused parameters
        run.net = DDP(model, find_unused_parameters=True)


def _probe_start(run: Run) -> dict | None:
    """The task's closed-form start of a frozen, cached probe (``--probe-init lbfgs``), or
    None: the usual random start."""
    if run.cfg.probe_init != "lbfgs" or run.cached is None:
        return None
    from zoo.base.task import Probe
    from zoo.training.cache import apply_scales, collate_cached

    model = run.model
    record = run.task.probe_start(Probe(
        model=model, train_rows=run.cached, train_targets=[ex.targets for ex in run.train_ex],
        eval_rows=run.eval_cached,
        eval_targets=[ex.targets for ex in run.eval_ex] if run.eval_cached is not None
        else None,
        collate=lambda rows: collate_cached(rows, model.modalities, model.device),
        batch_size=run.cfg.eval_batch_size, say=run.say))
    if record and record.get("scales"):  # block weights the start chose: encoder and cache
        apply_scales(model, record["scales"], run.cached, run.eval_cached)
    return record


def show_progress(run: Run) -> None:
    if run.progress is not None:
        run.progress.close()
        run.progress = None
    if run.cfg.progress and run.dist.main:
        from tqdm.auto import tqdm

        first = run.cfg.epochs if run.state["stage"] == "finetune" else 0
        done = run.state["global_step"] - (run.state.get("probe_steps") or 0) * (first > 0)
        run.progress = tqdm(total=run.total, initial=max(0, done), unit="step",
                            dynamic_ncols=True,
                            desc="fine-tune" if first else "train")


def saved_stage(path: Path) -> str:
    """The stage a saved resume state was in ("probe" when it predates stages)."""
    from zoo.training.checkpoint import read_meta

    if not (path / "latest").is_file():
        return "probe"
    return read_meta(path).get("stage", "probe")


def stage_epochs(run: Run, stage: str) -> int:
    """Epochs of a stage: ``epochs`` for the probe; ``finetune_epochs`` after it (None:
    as many as the probe's. Half as many left digits at 64 px short: 5 epochs 0.958 test
    accuracy, 10 epochs 0.975, 20 epochs 0.989; the stage runs unasked on a CPU only when
    its measured cost fits the budget)."""
    if stage == "probe":
        return run.cfg.epochs
    n = run.cfg.finetune_epochs
    return max(1, run.cfg.epochs) if n is None else n


def last_epoch(run: Run) -> int:
    """The epoch number the current stage ends at."""
    end = run.cfg.epochs
    if run.state["stage"] == "finetune":
        end += stage_epochs(run, "finetune")
    return end


def begin_finetune(run: Run) -> bool:
    """LP-FT: after the probe, fine-tune the pretrained encoders it kept frozen when the
    probe is weak — ``freeze="auto"``, eval data given, and the best probe metric below
    the task's ``finetune_below`` — starting from the best probe. False: the run is done
    (also when the frozen encoders have no parameters, like a fitted TF-IDF: a second stage
    would train the same fusion and head again, without the feature cache)."""
    task, cfg, state = run.task, run.cfg, run.state
    threshold = getattr(task, "finetune_below", None)
    best = state["best"]
    if (cfg.freeze != "auto" or not run.frozen or threshold is None or best is None
            or run.eval_ex is None or stage_epochs(run, "finetune") <= 0
            or task.metric not in best or state.get("stopped")):  # (a budget ran out)
        return False
    from zoo.training.budget import tunable

    if not tunable(run):
        return False  # fitted encoders (tfidf-ngram): nothing to fine-tune, the probe is all
    value = best[task.metric]
    weak = value < threshold if task.higher_is_better else value > threshold
    if not weak:
        run.say(f"probe eval {task.metric} {value:.4f} reaches {threshold}: the pretrained "
                f"encoders stay frozen")
        return False
    n = stage_epochs(run, "finetune")
    run.say(f"probe eval {task.metric} {value:.4f} < {threshold}: fine-tuning "
            f"{', '.join(sorted(run.frozen))} for {n} epochs from the best probe (LP-FT; "
            f"finetune_epochs=0 / --finetune-epochs 0 keeps the probe)")
    from zoo.io.hub import load

    run.dist.barrier()  # the best probe is on disk: fine-tune from it, not the last epoch
    if run.best_state is not None:  # in memory (the frozen encoders have not moved)
        run.model.load_state_dict(run.best_state, strict=False)
    else:  # resumed: from the saved best
        run.model.load_state_dict(load(run.out).state_dict(), strict=True)
    state["probe_best"], state["probe_steps"] = best, state["global_step"]
    configure(run, "finetune")
    run.snapshot()  # the encoders will move: the best so far keeps their probe weights
    show_progress(run)
    return True


def _encode(run: Run, examples: list, desc: str) -> list:
    bar = run.bar(desc, sum(ex.inputs.get(m) is not None for ex in examples
                            for m in run.model.encoders))
    try:
        return encode_all(run.model, examples, run.cfg.eval_batch_size,
                          tick=bar.update if bar is not None else None)
    finally:
        if bar is not None:
            bar.close()
