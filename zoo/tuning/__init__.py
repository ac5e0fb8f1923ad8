"""``zoo tune`` / ``zoo.tune``: the optimisation step of the lifecycle. Optuna searches
``zoo.train`` options; each trial is one training run, pruned early on its per-epoch eval
metric, and the best model lands in ``OUT/best`` with the search recorded in its card.

Output folder::

    study.db                   the Optuna study (SQLite; --storage for another database)
    trials/<number>/           a trial's run; only the best finished one is kept
    best/                      the best trial's model (zoo.load(OUT/best)); its card lists
                               the search
    tune.json                  the space, every trial (params, value, state), the best
    tune_history.png           value per trial and best so far
    tune_importance.png        parameter importance (from 2 completed trials on)

The study is plain Optuna (``optuna.load_study(study_name=..., storage=...)``). Rerunning
the same command continues it: ``--trials N`` counts finished (completed or pruned) trials
in the whole study. Several processes on the same storage are parallel workers. A worker
killed mid-trial leaves that trial RUNNING; the next worker to start on the same host sees
that its owner (pid and process start time, kept in the trial's user attrs) is gone, marks
it FAIL and enqueues its parameters again, so nothing waits on a heartbeat.
"""
from __future__ import annotations

import json
import shutil
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from zoo.errors import ZooError
from zoo.tuning.space import check_fixed, default_space, parse_space, require_optuna
from zoo.tuning.trials import (PruningLogger, Search, best_number, clean_stale_stages, counts,
                     place_best, prune_folders, recover_stale_trials, run_trial)

__all__ = ["tune", "PruningLogger", "recover_stale_trials"]


def _model_facts(model: Any) -> tuple[Any, str, bool, str]:
    """(model as training takes it, task, has pretrained encoders, a study name), without
    building the model when it is a registry name or a folder."""
    if isinstance(model, (str, Path)) and (Path(model) / "config.json").is_file():
        cfg = json.loads((Path(model) / "config.json").read_text())
        encs = cfg.get("encoders") or {}
    elif isinstance(model, str) and not model.startswith("hf-hub:"):
        from zoo.registry.listing import model_info

        info = model_info(model)
        if info.get("kind") != "model":
            raise ZooError(f"{model!r} is a {info.get('kind')}, not a model: zoo tune "
                           f"trains models (zoo list)")
        return model, info["task"], bool(info.get("pretrained")), model
    else:
        if isinstance(model, str):
            from zoo.io.hub import load

            model = load(model)
        cfg = getattr(model, "config", None) or {}
        encs = cfg.get("encoders") or {}
    pretrained = any(isinstance(e.get("weights"), str) and not e["weights"].startswith(
        ("trained", "unknown")) for e in encs.values() if isinstance(e, dict))
    name = cfg.get("name") or (Path(str(model)).name if isinstance(model, (str, Path))
                               else "model")
    return model, cfg.get("task") or getattr(model, "task", None), pretrained, name


def _open_study(out: Path, storage: str | None, name: str, direction: str) -> tuple[Any, str]:
    """The study, created or loaded (``load_if_exists``); one line when the storage cannot
    be opened."""
    optuna = require_optuna()
    url = storage or f"sqlite:///{(out / 'study.db').resolve()}"
    if "://" not in url:  # a plain path: an SQLite file
        url = f"sqlite:///{Path(url).resolve()}"
    from zoo.tuning.report import public_url

    kwargs = {"connect_args": {"timeout": 60}} if url.startswith("sqlite") else None
    for attempt in range(3):  # workers starting together race to create the tables
        try:
            rdb = optuna.storages.RDBStorage(url, engine_kwargs=kwargs)
            study = optuna.create_study(storage=rdb, study_name=name, direction=direction,
                                        load_if_exists=True)
            break
        except Exception as e:  # sqlalchemy's errors, a missing driver, a malformed URL
            if attempt < 2 and not isinstance(e, (ImportError, ValueError)):
                time.sleep(0.5 + attempt)
                continue
            first = (str(e).strip().splitlines() or [type(e).__name__])[0][:160]
            raise ZooError(f"cannot open the study storage {public_url(url)} ({first}); "
                           f"give --storage a reachable database URL, e.g. "
                           f"sqlite:///tune/study.db") from None
    if study.direction.name.lower() != direction:
        raise ZooError(f"study {name!r} was created to {study.direction.name.lower()} its "
                       f"value, but this task's metric is to be {direction}d: use another "
                       f"--study-name")
    return study, url


def _check_same_search(study: Any, space: dict[str, Any], fixed: dict[str, Any],
                       out: Path, url: str) -> None:
    """A continued study must search the same space with the same fixed options (else its
    trials are not comparable), and one OUT folder holds one study's trials."""
    from zoo.tuning.report import public_url

    rec = out / "tune.json"
    if rec.is_file():
        try:
            prev = json.loads(rec.read_text())
        except ValueError:
            prev = {}
        if (prev.get("study_name"), prev.get("storage")) not in (
                (None, None), (study.study_name, public_url(url))):
            raise ZooError(f"{out} holds the trials of study {prev.get('study_name')!r}: "
                           f"give study {study.study_name!r} its own --out")
    space, fixed = json.loads(json.dumps(space)), json.loads(json.dumps(fixed))  # as stored
    before = study.user_attrs.get("zoo_space")
    if before is None:
        study.set_user_attr("zoo_space", space)
        study.set_user_attr("zoo_fixed", fixed)
    elif before != space or study.user_attrs.get("zoo_fixed", {}) != fixed:
        raise ZooError(f"study {study.study_name!r} was searched over another space or "
                       f"fixed options (it searched {', '.join(before) or 'nothing'}); rerun "
                       f"with the same --param/--space/--set, or start a new study with "
                       f"--study-name")


def _finish(search: Search, study: Any, meta: dict[str, Any]) -> dict[str, Any]:
    """OUT/best, tune.json and the pictures (in OUT and OUT/best), the card re-rendered."""
    from zoo.io.card import write_card
    from zoo.tuning.report import study_record, write_outputs

    if best_number(study) is None:
        raise ZooError(f"no trial of study {study.study_name!r} completed (all pruned or "
                       f"failed): widen the space or raise --trials")
    how = place_best(search, study)
    origin = how
    if how == "kept":  # the card keeps saying where the model came from
        try:
            origin = json.loads((search.out / "best" / "tune.json").read_text())["best_from"]
        except (OSError, ValueError, KeyError):
            pass
    record = study_record(study, {**meta, "best_out": str(search.out / "best"),
                                  "best_from": origin})
    for path in write_outputs(search.out, record):
        shutil.copy2(path, search.out / "best" / path.name)
    if not record.get("importance"):
        (search.out / "best" / "tune_importance.png").unlink(missing_ok=True)
    write_card(search.out / "best")
    prune_folders(search, study)
    best = record["best"]
    return {"study": study.study_name, "storage": meta["storage"], "metric": search.metric,
            "direction": meta["direction"], "best": best, "counts": record["counts"],
            "out": str(search.out / "best"), "best_from": how,
            "record": str(search.out / "tune.json"),
            "seconds": round(time.perf_counter() - search.started, 1)}


def tune(model: Any, train: Any, eval: Any, out: str | Path = "tune", *, trials: int = 20,
         space: Any = None, seed: int = 0, storage: str | None = None,
         study_name: str | None = None, pruner: str = "median", progress: bool = True,
         columns: dict[str, str] | None = None, **fixed: Any) -> dict[str, Any]:
    """Search ``zoo.train`` options for ``model`` on ``train``, comparing trials on
    ``eval``'s task metric. ``space``: None for the default space, a dict (name -> flag
    string such as ``"1e-4:1e-2:log"``, a list of choices, or a table), or a TOML path.
    ``fixed``: train options held constant (``zoo tune --set``; the training seed too:
    ``seed`` seeds only the sampler, so parallel workers may differ in it). ``trials``:
    finished trials wanted in the whole study (a rerun runs only the rest). Returns a summary:
    ``{"best": {"number", "value", "params"}, "out": OUT/best, "counts", ...}``."""
    from zoo.registry import get_task
    from zoo.tuning.report import public_url, study_record

    if eval is None:
        raise ZooError("zoo tune needs eval data (--eval): trials are compared on it")
    if not isinstance(trials, int) or trials < 1:
        raise ZooError(f"--trials must be a whole number >= 1, not {trials!r}")
    if pruner not in ("median", "none"):
        raise ZooError(f"--pruner must be median or none, not {pruner!r}")
    params = parse_space(space) if space is not None else None  # a bad space: fail first
    optuna = require_optuna()
    model, task, pretrained, name = _model_facts(model)
    params = params or [p for p in default_space(pretrained) if p.name not in fixed]
    check_fixed(fixed, params)
    spec = get_task(fixed.get("task") or task)
    direction = "maximize" if spec.higher_is_better else "minimize"
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    say = (lambda s: print(s, file=sys.stderr, flush=True)) if progress else (lambda s: None)
    search = Search(model=model, train=train, eval=eval, out=out, params=params, fixed=fixed,
                    metric=spec.metric, say=say, columns=columns)
    space = {p.name: p.record() for p in params}
    with _optuna_quiet(optuna):  # our one line per trial instead of optuna's
        study, url = _open_study(out, storage, study_name or name, direction)
        _check_same_search(study, space, fixed, out, url)
        sampler, pruning = _configure(optuna, study, seed, trials, pruner, spec.metric)
        meta = {"study_name": study.study_name, "storage": public_url(url), "model": name,
                "task": fixed.get("task") or task, "metric": spec.metric,
                "direction": direction, "trials_wanted": trials, "space": space,
                "space_text": {p.name: p.describe() for p in params},
                "fixed": fixed, "seed": seed, "sampler": sampler, "pruner": pruning}
        (out / "tune.json").write_text(json.dumps(study_record(study, meta), indent=2,
                                                  default=str) + "\n")
        clean_stale_stages(out)
        while True:
            recover_stale_trials(study, say)
            finished, running = counts(study)
            if finished + running >= trials:
                break
            run_trial(search, study)
        return _finish(search, study, meta)


@contextmanager
def _optuna_quiet(optuna: Any) -> Iterator[None]:
    level = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        yield
    finally:
        optuna.logging.set_verbosity(level)


def _configure(optuna: Any, study: Any, seed: int, trials: int, pruner: str,
               metric: str) -> tuple[str, str]:
    """TPE and the pruner (neither is stored in the study: each worker sets its own).
    TPE's seed is offset by the trials already in the study, so a resumed run draws new
    points instead of replaying its first random ones. Returns both, described."""
    n_startup = min(10, max(4, trials // 3))  # random points before TPE models the space
    study.sampler = optuna.samplers.TPESampler(
        seed=seed + len(study.get_trials(deepcopy=False)), n_startup_trials=n_startup,
        multivariate=True)
    study.pruner = (optuna.pruners.MedianPruner(n_startup_trials=4, n_warmup_steps=3)
                    if pruner == "median" else optuna.pruners.NopPruner())
    return (f"TPE (multivariate, {n_startup} random startup trials, seed {seed} + trials "
            f"already in the study)",
            f"median of completed trials at the same epoch of eval {metric}, from 4 "
            f"completed trials on, never in a trial's first 3 epochs"
            if pruner == "median" else "none")
