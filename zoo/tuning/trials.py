"""One trial and the workers around it: the pruning logger, the owner of a running trial
(so a killed worker's trial is found and retried), the trial folders kept on disk, and the
best trial's model placed in ``OUT/best``."""
from __future__ import annotations

import copy
import json
import os
import shutil
import socket
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Callable

from zoo.tuning.space import Param

__all__ = ["PruningLogger", "Search", "recover_stale_trials", "run_trial", "prune_folders",
           "place_best", "clean_stale_stages", "counts", "best_number"]

_OWNERLESS_GRACE_S = 60  # a RUNNING trial without an owner yet: killed between ask and attr


class PruningLogger:
    """A training logger that reports each epoch's eval metric to an Optuna trial and
    stops the run (``optuna.TrialPruned``) when the pruner says so. The step counts eval
    records from 0, not epoch numbers: monotonic across LP-FT's two stages (and early
    stopping), so the pruner's ``n_warmup_steps=k`` spares a trial's first k epochs."""

    def __init__(self, trial: Any, metric: str) -> None:
        self.trial, self.metric = trial, metric
        self.values: list[float] = []

    def log(self, record: dict[str, Any]) -> None:
        metrics = record.get("eval")
        if "epoch" not in record or not isinstance(metrics, dict) or self.metric not in metrics:
            return  # a per-step line (loss, lr), or a run without eval
        value = float(metrics[self.metric])
        self.trial.report(value, len(self.values))
        self.values.append(value)
        if self.trial.should_prune():
            import optuna

            raise optuna.TrialPruned(f"pruned after epoch {len(self.values)}: eval "
                                     f"{self.metric} {value:.4f}")

    def close(self) -> None:
        pass


def _proc_start(pid: int) -> str | None:
    """The process start time (Linux /proc): a pid reused by another process is not it."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()
    return fields[19] if len(fields) > 19 else None


def _owner() -> dict[str, Any]:
    return {"host": socket.gethostname(), "pid": os.getpid(), "start": _proc_start(os.getpid())}


def _alive(owner: dict[str, Any]) -> bool:
    """Is the process that owns a trial still running (on this host)?"""
    pid = owner.get("pid")
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # another user's process: alive
    try:  # a zombie (killed, not yet reaped) is dead
        if Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
            return False
    except (OSError, IndexError):
        pass
    start = owner.get("start")
    return start is None or _proc_start(pid) in (None, start)


def recover_stale_trials(study: Any, say: Callable[[str], None] = lambda s: None) -> list[int]:
    """Mark FAIL the RUNNING trials whose worker on this host is gone, and enqueue their
    parameters again (once). Trials owned on other hosts are left to their own hosts."""
    import optuna

    host, now = socket.gethostname(), datetime.now()
    trials = study.get_trials(deepcopy=False)
    retried = {t.user_attrs.get("retry_of") for t in trials}
    failed = []
    for t in trials:
        if t.state != optuna.trial.TrialState.RUNNING:
            continue
        owner = t.user_attrs.get("owner")
        if owner is None:
            started = t.datetime_start or now
            if (now - started).total_seconds() < _OWNERLESS_GRACE_S:
                continue
        elif owner.get("host") != host or _alive(owner):
            continue
        study.tell(t.number, state=optuna.trial.TrialState.FAIL, skip_if_finished=True)
        failed.append(t.number)
        if t.params and t.number not in retried:
            study.enqueue_trial(dict(t.params), user_attrs={"retry_of": t.number})
        say(f"trial {t.number}: its worker (pid {(owner or {}).get('pid', '?')}) is gone: "
            f"marked FAIL, its parameters queued again")
    return failed


@dataclass
class Search:
    """What every trial of one ``tune`` call shares."""

    model: Any
    train: Any
    eval: Any
    out: Path
    params: list[Param]
    fixed: dict[str, Any]
    metric: str
    say: Callable[[str], None]
    columns: dict[str, str] | None = None
    started: float = field(default_factory=time.perf_counter)

    def options(self, params: dict[str, Any]) -> dict[str, Any]:
        return {**self.fixed, **params, "columns": self.columns}

    def fresh_model(self) -> Any:
        """A model object is trained in place: each trial gets its own copy."""
        return self.model if isinstance(self.model, (str, Path)) else copy.deepcopy(self.model)


def counts(study: Any) -> tuple[int, int]:
    """(finished: completed or pruned, running) trials in the study."""
    import optuna

    S = optuna.trial.TrialState
    states = [t.state for t in study.get_trials(deepcopy=False)]
    return states.count(S.COMPLETE) + states.count(S.PRUNED), states.count(S.RUNNING)


def best_number(study: Any) -> int | None:
    try:
        return study.best_trial.number
    except ValueError:
        return None


def prune_folders(search: Search, study: Any) -> None:
    """Keep disk bounded: a finished trial's folder goes unless it is the best so far;
    running trials' folders (other workers') stay."""
    folder = search.out / "trials"
    if not folder.is_dir():
        return
    trials = {t.number: t for t in study.get_trials(deepcopy=False)}
    keep = best_number(study)
    for p in folder.iterdir():
        t = trials.get(int(p.name)) if p.name.isdigit() else None
        if t is not None and t.state.is_finished() and t.number != keep:
            shutil.rmtree(p, ignore_errors=True)


def _describe(params: dict[str, Any]) -> str:
    return " ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}"
                    for k, v in params.items())


def run_trial(search: Search, study: Any) -> None:
    """Ask, train, tell: one trial, its folder removed unless it is the best so far."""
    import optuna

    from zoo.training import train

    trial = study.ask()
    trial.set_user_attr("owner", _owner())
    params = {p.name: p.suggest(trial) for p in search.params}
    out = search.out / "trials" / str(trial.number)
    shutil.rmtree(out, ignore_errors=True)  # a number is never reused; leftovers are junk
    pruner = PruningLogger(trial, search.metric)
    t0 = time.perf_counter()
    try:
        summary = train(search.fresh_model(), search.train, search.eval, out, progress=False,
                        loggers=[pruner], **{"save_state": False, **search.options(params)})
    except optuna.TrialPruned as e:
        study.tell(trial, state=optuna.trial.TrialState.PRUNED)
        search.say(f"trial {trial.number}: {e} ({time.perf_counter() - t0:.1f} s)  "
                   f"{_describe(params)}")
    except KeyboardInterrupt:  # as after kill -9: the next run retries these parameters
        study.tell(trial, state=optuna.trial.TrialState.FAIL)
        study.enqueue_trial(params, user_attrs={"retry_of": trial.number})
        raise
    except BaseException:
        study.tell(trial, state=optuna.trial.TrialState.FAIL)
        shutil.rmtree(out, ignore_errors=True)
        raise
    else:
        value = float(summary["best"][search.metric])
        study.tell(trial, value)
        shutil.rmtree(out / "train_state", ignore_errors=True)  # resume state: not needed
        best = study.best_trial
        search.say(f"trial {trial.number}: eval {search.metric} {value:.4f} "
                   f"({time.perf_counter() - t0:.1f} s)  {_describe(params)}  "
                   f"[best #{best.number}: {best.value:.4f}]")
    prune_folders(search, study)


def _swap_in(stage: Path, dest: Path) -> None:
    old = dest.with_name(f".best-old-{os.getpid()}")
    if dest.exists():
        os.replace(dest, old)
    os.replace(stage, dest)
    shutil.rmtree(old, ignore_errors=True)


def place_best(search: Search, study: Any) -> str:
    """OUT/best holds the best trial's model: moved from its trial folder when that is
    here, else (its folder is on another machine) trained again from its parameters and
    the same seed. Returns how: "kept", "moved" or "retrained"."""
    from zoo.training import train

    best, dest = study.best_trial, search.out / "best"
    try:
        placed = json.loads((dest / "tune.json").read_text())["best"]["number"]
    except (OSError, ValueError, KeyError, TypeError):
        placed = None
    if placed == best.number and (dest / "config.json").is_file():
        return "kept"
    stage = search.out / f".best-{os.getpid()}"
    shutil.rmtree(stage, ignore_errors=True)
    try:
        os.replace(search.out / "trials" / str(best.number), stage)
        how = "moved"
    except OSError:
        search.say(f"training trial {best.number}'s parameters again into {dest} "
                   f"(its folder is not here)")
        train(search.fresh_model(), search.train, search.eval, stage, progress=False,
              loggers=[], **{"save_state": False, **search.options(dict(best.params))})
        shutil.rmtree(stage / "train_state", ignore_errors=True)
        how = "retrained"
    _swap_in(stage, dest)
    return how


def clean_stale_stages(out: Path) -> None:
    """Staging folders of workers killed while placing the best model."""
    for p in out.glob(".best-*"):
        pid = p.name.rsplit("-", 1)[-1]
        if pid.isdigit() and not _alive({"pid": int(pid)}):
            shutil.rmtree(p, ignore_errors=True)


