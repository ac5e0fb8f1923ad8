"""What ``zoo tune`` leaves behind besides the model: ``tune.json`` (the space, every
trial, the best) and two pictures drawn with matplotlib (optimisation history, parameter
importance). Everything is read back from the study, so any worker can write it."""
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

__all__ = ["study_record", "param_importances", "plot_history", "plot_importance",
           "public_url", "write_outputs", "HISTORY_PNG", "IMPORTANCE_PNG"]

HISTORY_PNG = "tune_history.png"
IMPORTANCE_PNG = "tune_importance.png"


def public_url(url: str) -> str:
    """A storage URL fit to record: a password in it is masked."""
    return re.sub(r"(://[^:/@]+):[^@/]*@", r"\1:***@", url)


def _trial_row(t: Any) -> dict[str, Any]:
    row = {"number": t.number, "state": t.state.name.lower(),
           "value": t.value, "params": dict(t.params),
           "epochs_reported": len(t.intermediate_values),
           "seconds": round(t.duration.total_seconds(), 1) if t.duration else None}
    if "retry_of" in t.user_attrs:
        row["retry_of"] = t.user_attrs["retry_of"]
    return row


def param_importances(study: Any) -> tuple[dict[str, float] | None, str | None]:
    """optuna's importances (PED-ANOVA by default), or None and why: they need at least
    two completed trials and a parameter that varies between them."""
    import optuna

    done = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    if len(done) < 2:
        return None, f"needs at least 2 completed trials ({len(done)} so far)"
    varying = [n for n in {k for t in done for k in t.params}
               if len({repr(t.params.get(n)) for t in done}) > 1]
    if not varying:
        return None, "no parameter varied between the completed trials"
    try:
        imp = optuna.importance.get_param_importances(study)
    except (RuntimeError, ValueError, ZeroDivisionError) as e:
        return None, f"optuna could not compute them ({str(e).splitlines()[0][:120]})"
    return {k: float(v) for k, v in imp.items()}, None


def study_record(study: Any, meta: dict[str, Any]) -> dict[str, Any]:
    """tune.json: ``meta`` (space, options, sampler, ...) plus every trial and the best."""
    import optuna

    trials = study.get_trials(deepcopy=False)
    states = [t.state for t in trials]
    S = optuna.trial.TrialState
    record = {**meta, "counts": {"complete": states.count(S.COMPLETE),
                                 "pruned": states.count(S.PRUNED),
                                 "failed": states.count(S.FAIL),
                                 "running": states.count(S.RUNNING),
                                 "waiting": states.count(S.WAITING)},
              "trials": [_trial_row(t) for t in trials], "best": None}
    try:
        best = study.best_trial
    except ValueError:  # no completed trial yet
        return record
    record["best"] = {"number": best.number, "value": best.value, "params": dict(best.params)}
    imp, why = param_importances(study)
    record["importance"], record["importance_note"] = imp, why
    return record


def plot_history(record: dict[str, Any], path: Path) -> None:
    """Each trial's value by trial number (pruned ones at their last reported epoch) and
    the best so far, as optuna's plot_optimization_history draws it."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    higher = record.get("direction") == "maximize"
    rows = [r for r in record["trials"] if r["value"] is not None]
    done = [r for r in rows if r["state"] == "complete"]
    pruned = [r for r in rows if r["state"] == "pruned"]
    fig, ax = plt.subplots(figsize=(6.4, 4.0), dpi=100)
    ax.scatter([r["number"] for r in done], [r["value"] for r in done], color="C0",
               label="completed", zorder=3)
    if pruned:
        ax.scatter([r["number"] for r in pruned], [r["value"] for r in pruned], color="0.6",
                   marker="x", label="pruned (last epoch)", zorder=3)
    best, xs, ys = None, [], []
    for r in sorted(done, key=lambda r: r["number"]):
        if best is None or (r["value"] > best if higher else r["value"] < best):
            best = r["value"]
        xs.append(r["number"])
        ys.append(best)
    last = max((r["number"] for r in rows), default=0)
    if xs and last > xs[-1]:  # the best so far holds through later (pruned) trials
        xs, ys = xs + [last], ys + [ys[-1]]
    ax.step(xs, ys, where="post", color="C3", label="best so far")
    ax.set_xlabel("trial")
    ax.set_ylabel(f"eval {record.get('metric', 'value')}")
    ax.set_title("zoo tune: optimisation history")
    ax.grid(alpha=0.3)
    ax.legend(loc="best", fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def plot_importance(importance: dict[str, float], path: Path) -> None:
    """Horizontal bars, most important on top."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(importance)[::-1]
    fig, ax = plt.subplots(figsize=(6.4, 0.5 * len(names) + 1.4), dpi=100)
    ax.barh(names, [importance[n] for n in names], color="C0")
    for i, n in enumerate(names):
        ax.text(importance[n], i, f" {importance[n]:.2f}", va="center", fontsize=8)
    ax.set_xlabel("importance (optuna, normalised)")
    ax.set_xlim(0, max(1e-9, max(importance.values())) * 1.2)
    ax.set_title("zoo tune: parameter importance")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def write_outputs(out: Path, record: dict[str, Any]) -> list[Path]:
    """tune.json and the pictures in ``out``; a stale importance picture is removed when
    importances cannot be computed. Returns the files written."""
    written = [out / "tune.json"]
    (out / "tune.json").write_text(json.dumps(record, indent=2, default=str) + "\n")
    if record.get("best") is not None:
        plot_history(record, out / HISTORY_PNG)
        written.append(out / HISTORY_PNG)
    if record.get("importance"):
        plot_importance(record["importance"], out / IMPORTANCE_PNG)
        written.append(out / IMPORTANCE_PNG)
    elif (out / IMPORTANCE_PNG).exists():
        (out / IMPORTANCE_PNG).unlink()
    return written
