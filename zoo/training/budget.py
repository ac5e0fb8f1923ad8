"""Say what a run will cost before it costs it, and keep to a budget.

Before the first step the plan is said (stages, epochs, steps). Each stage's cost is then
measured on its first steps and said as a plan line ("fine-tune: 170 steps, ~48 min at
16.9 s/step"); ``max_steps`` and ``max_time`` stop the run on time (the epoch under way is
evaluated and the best model saved, as at any epoch end). A stage zoo chose by itself
(LP-FT's fine-tuning after a weak probe) runs on a CPU only when its measured cost fits
``AUTO_STAGE_SECONDS`` (or what is left of ``max_time``); asked for (``--finetune-epochs``)
it always runs."""
from __future__ import annotations

import time
from typing import Any

__all__ = ["AUTO_STAGE_SECONDS", "PLAN_STEPS", "say_plan", "tunable", "stage_started",
           "after_step", "fmt_seconds"]

#: the longest a stage zoo chose by itself may take on a CPU unless asked (10 minutes)
AUTO_STAGE_SECONDS = 600.0
#: steps measured before a stage's plan line (at least this much is spent to know the cost),
#: after a first step that is not counted: it pays one-off costs (kernel selection, the
#: first backward through an encoder, allocations) several times a usual step's
PLAN_STEPS = 2


def fmt_seconds(s: float) -> str:
    if s < 90:
        return f"{s:.0f} s"
    if s < 5400:
        return f"{s / 60:.0f} min"
    return f"{s / 3600:.1f} h"


def tunable(run: Any) -> bool:
    """Whether the encoders the probe keeps frozen have parameters LP-FT could fine-tune
    (a fitted TF-IDF encoder has none)."""
    return any(p.numel() for m in run.frozen for p in run.model.encoders[m].parameters())


def say_plan(run: Any, steps_per_epoch: int, epochs: int, finetune_epochs: int) -> None:
    """The run's stages before any work: epochs and steps, and when LP-FT may follow
    (``epochs`` of the current stage, ``finetune_epochs`` of LP-FT's)."""
    cfg, state = run.cfg, run.state
    stage = state["stage"]
    parts = [f"{stage} {epochs} epochs x {steps_per_epoch} steps"]
    if run.cached is not None:
        parts[0] += " on cached features"
    threshold = getattr(run.task, "finetune_below", None)
    if (stage == "probe" and cfg.freeze == "auto" and tunable(run) and run.eval_ex is not None
            and threshold is not None and finetune_epochs > 0):
        asked = cfg.finetune_epochs is not None
        parts.append(f"then, if eval {run.task.metric} < {threshold}: fine-tune "
                     f"{', '.join(sorted(run.frozen))} {finetune_epochs} epochs"
                     + ("" if asked or run.dist.device.type != "cpu" else
                        f" when it fits {fmt_seconds(_auto_budget(run))} on this CPU"))
    limits = [f"max {cfg.max_steps} steps"] if cfg.max_steps else []
    limits += [f"max {fmt_seconds(cfg.max_time)}"] if cfg.max_time else []
    run.say("plan: " + "; ".join(parts) + (f" ({', '.join(limits)})" if limits else "")
            + "; each stage's time is measured on its first steps")


def stage_started(run: Any) -> None:
    run.stage_clock = (time.perf_counter(), run.state["global_step"])
    run.planned = run.warm = False


def _auto_budget(run: Any) -> float:
    """What a stage zoo chose by itself may take: the default, or what max_time leaves."""
    if run.cfg.max_time:
        return max(0.0, run.cfg.max_time - (time.perf_counter() - run.t_start))
    return AUTO_STAGE_SECONDS


def after_step(run: Any, steps_left: int) -> None:
    """After each optimizer step: the plan line once the stage's cost is measured, the
    automatic stage's budget, and the run's limits (``run.stop`` + ``state["stopped"]``)."""
    cfg, state = run.cfg, run.state
    t0, step0 = run.stage_clock or (run.t_start, 0)
    done = state["global_step"] - step0
    if not run.planned and not run.warm and done == 1 and steps_left > PLAN_STEPS:
        run.warm = True
        run.stage_clock = (time.perf_counter(), state["global_step"])  # warm: start timing
        t0, step0, done = run.stage_clock[0], state["global_step"], 0
    elif not run.planned and (done >= PLAN_STEPS or steps_left == 0):
        run.planned = True
        # rank 0's clock decides for every process (DDP ranks must stop at the same step)
        per_step = run.dist.broadcast((time.perf_counter() - t0) / max(1, done))
        cost = per_step * steps_left
        stage = "fine-tune" if state["stage"] == "finetune" else state["stage"]
        run.say(f"plan: {stage}: {steps_left} more steps, ~{fmt_seconds(cost)} at "
                f"{per_step:.2f} s/step")
        if (state["stage"] == "finetune" and cfg.finetune_epochs is None
                and run.dist.device.type == "cpu" and cost > _auto_budget(run)):
            state["stopped"] = (f"fine-tuning would take ~{fmt_seconds(cost)} more on this "
                                f"CPU, beyond the {fmt_seconds(_auto_budget(run))} an "
                                f"automatic stage may take: the probe is kept "
                                f"(--finetune-epochs N or a larger --max-time runs it)")
            run.say(state["stopped"])
            state["abandoned"] = True
            run.stop = True
            return
    if cfg.max_steps and state["global_step"] >= cfg.max_steps:
        state["stopped"] = f"max_steps {cfg.max_steps} reached"
    elif cfg.max_time and run.dist.broadcast(time.perf_counter() - run.t_start
                                             >= cfg.max_time):
        state["stopped"] = f"max_time {fmt_seconds(cfg.max_time)} reached"
    else:
        return
    run.say(f"{state['stopped']}: stopping after step {state['global_step']}; the best "
            f"model so far is saved")
    run.stop = True
