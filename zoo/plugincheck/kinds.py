"""Conformance checks of the other kinds a plugin registers: modalities, tasks (their
metrics run on a sample), models, weights, loggers and pretraining objectives."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from zoo.errors import WeightsError, ZooError
from zoo.plugincheck.base import CheckResult, Skip, run_check
from zoo.plugincheck.components import samples
from zoo.registry import get_registry, get_task

__all__ = ["check_modality", "check_task", "check_model", "check_weights", "check_logger",
           "check_objective"]


def check_modality(spec: Any, results: list[CheckResult]) -> None:
    from zoo.base.modality import Modality

    subject = f"modality {spec.name}"

    def build() -> Any:
        modality = spec.build()
        if not isinstance(modality, Modality):
            raise AssertionError(f"factory returned {type(modality).__name__}, not a "
                                 f"zoo.plugin.Modality")
        return modality
    modality = run_check(results, subject, "builds", build)
    if modality is None:
        return

    def values() -> str:
        vals = list(modality.samples())
        if len(vals) < 2:
            raise AssertionError("samples() must give at least two values")
        for v in vals:
            problem = modality.check(v)
            if problem:
                raise AssertionError(f"check() refuses its own sample: {problem}")
            float(modality.length(v))
            modality.digest(v)
        modality.describe(vals)
        return f"{len(vals)} samples checked, measured, hashed"
    run_check(results, subject, "samples + check/length/digest", values)

    def request() -> str:
        import json

        from zoo.serve.limits import Limits

        limits = Limits()
        for i, v in enumerate(modality.samples()):
            sent = json.loads(json.dumps(modality.to_request(v)))  # a JSON value
            modality.from_request(sent, f"inputs[{i}].{spec.name}", limits)
        return "to_request -> JSON -> from_request"
    run_check(results, subject, "request round trip", request)
    run_check(results, subject, "explanation units",
              lambda: _explain_units(modality, spec.name))
    run_check(results, subject, "corruptions", lambda: _corruptions(modality, spec.name))


def _explain_units(modality: Any, name: str) -> str:
    """``zoo explain``'s hooks on the samples: units within the budget, as JSON objects;
    every unit kept gives a value, one removed a value or None (absent)."""
    import json

    counts = []
    for v in modality.samples():
        value = modality.explain_load(v)
        units = list(modality.explain_units(value, 4))
        if not 1 <= len(units) <= 4 or not all(isinstance(u, dict) for u in units):
            raise AssertionError(f"explain_units(value, 4) must give 1 to 4 dicts, got "
                                 f"{units!r:.80}")
        json.dumps(units)
        if modality.explain_ablate(value, units, [True] * len(units)) is None:
            raise AssertionError("explain_ablate with every unit kept gave None")
        modality.explain_ablate(value, units, [False] + [True] * (len(units) - 1))
        counts.append(len(units))
    return f"{name}: {counts} units of its samples (budget 4)"


def _same(a: Any, b: Any) -> bool:
    """Two input values are equal (arrays and images by their contents)."""
    import numpy as np

    if isinstance(a, (tuple, list)) and isinstance(b, (tuple, list)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if hasattr(a, "shape") or hasattr(a, "getdata") or hasattr(b, "getdata"):
        x, y = np.asarray(a), np.asarray(b)
        return x.shape == y.shape and bool((x == y).all())
    return bool(a == b)


def _corruptions(modality: Any, name: str) -> str:
    """``zoo eval --robustness``'s hook on the samples: each corruption, at severities 1
    and 3, gives a value the modality accepts, the same one twice from the same seed."""
    import numpy as np

    vals = list(modality.samples())
    suite = dict(modality.corruptions(vals) or {})
    if not suite:
        return f"{name}: none (zoo eval --robustness lists it as skipped)"
    for cname, corrupt in suite.items():
        for v in vals:
            for severity in (1, 3):
                a, b = (corrupt(v, severity, np.random.default_rng(7)) for _ in range(2))
                if not _same(a, b):
                    raise AssertionError(f"{cname}: the same seed gave two different values "
                                         f"(draw every random number from rng)")
                problem = modality.check(a)
                if problem:
                    raise AssertionError(f"{cname}: check() refuses its result: {problem}")
    return f"{name}: {', '.join(suite)} (deterministic under a seed)"


def _model_for(task: str, plugin: str) -> Any:
    """A registered model of ``task`` (the plugin's own first), built."""
    from zoo.build.compose import create_model

    reg = get_registry()
    specs = sorted((m for m in reg.all("model")
                    if not m.unavailable and m.resolved.get("task") == task),
                   key=lambda m: m.plugin != plugin)
    for spec in specs:
        try:
            return create_model(spec.qualified_name)
        except ZooError:
            continue
    return None


def check_task(spec: Any, results: list[CheckResult]) -> None:
    from zoo.base.task import Task

    subject = f"task {spec.name}"

    def build() -> Any:
        task = spec.build()
        if not isinstance(task, Task):
            raise AssertionError(f"factory returned {type(task).__name__}, not a "
                                 f"zoo.plugin.Task")
        if type(task).metrics is Task.metrics:
            raise AssertionError("metrics() is not implemented")
        if not task.metric:
            raise AssertionError("no 'metric' to choose the best epoch by")
        return task
    task = run_check(results, subject, "builds", build)
    if task is None:
        return
    run_check(results, subject, "metrics on a sample", lambda: _metrics(spec, task))


def _metrics(spec: Any, task: Any) -> str:
    """A model of the task predicts on samples; its predictions, read back as targets
    (``pseudo_label``), are scored by the task's metrics."""
    from zoo.base.example import Example
    from zoo.base.task import Task

    if type(task).pseudo_label is Task.pseudo_label:
        raise Skip("the task reads no targets from predictions (pseudo_label), so no sample "
                   "targets to score against")
    model = _model_for(spec.qualified_name, spec.plugin)
    if model is None:
        raise Skip("no registered model of this task builds here")
    task = get_task(spec.qualified_name)
    values = {m: samples(m) for m in model.modalities}
    inputs = [{m: v[k] for m, v in values.items()} for k in range(2)]
    preds = model.predict(inputs)
    examples = []
    for i, (x, p) in enumerate(zip(inputs, preds)):
        labelled = task.pseudo_label(p)
        if labelled is None:
            raise Skip("its predictions give no targets to score against (pseudo_label)")
        targets, _ = labelled
        task.check_target(targets, f"sample {i}", model.labels, x)
        examples.append(Example(i + 1, x, targets))
    figures = task.metrics(model, examples, preds)
    if task.metric != "loss" and task.metric not in figures:
        raise AssertionError(f"metrics() gave {sorted(figures)}, not the task's metric "
                             f"{task.metric!r}")
    return ", ".join(f"{k} {v:.3f}" for k, v in figures.items()
                     if isinstance(v, float))[:100] or "ok"


def check_model(spec: Any, results: list[CheckResult], tmp: Path) -> None:
    import torch

    from zoo.build.compose import create_model
    from zoo.io.hub import load

    subject = f"model {spec.name}"
    if spec.unavailable:
        results.append(CheckResult(subject, "resolves", "fail", spec.unavailable[:300]))
        return
    model = run_check(results, subject, "builds", lambda: create_model(spec.qualified_name))
    if model is None:
        return
    for m, enc in model.encoders.items():  # fitted as a training run fits them
        enc.fit(samples(m))
    sample = [{m: samples(m)[0] for m in model.encoders}]

    def round_trip() -> str:
        before = model.predict(sample)
        back = load(model.save_pretrained(tmp / spec.name))
        if back.predict(sample) != before:
            raise AssertionError("predictions differ after save + load")
        if any(not torch.equal(a, b) for a, b in zip(model.state_dict().values(),
                                                      back.state_dict().values())):
            raise AssertionError("weights differ after save + load")
        return "predict + save/load identical"
    run_check(results, subject, "predict + save/load", round_trip)


def check_weights(spec: Any, results: list[CheckResult]) -> None:
    from zoo.weights import resolve

    def found() -> str:
        try:
            return f"found: {resolve(spec)}"[:100]
        except WeightsError as e:
            if "sha256 mismatch" in str(e):
                raise
            raise Skip(f"not available here: {str(e)[:150]}") from None
    run_check(results, f"weights {spec.tag}", "resolves offline", found)


def check_logger(spec: Any, results: list[CheckResult], tmp: Path) -> None:
    from zoo.registry import resolve_import

    def logs() -> str:
        logger = resolve_import(spec.factory)(tmp / f"logger-{spec.name}",
                                              {"epochs": 1, "resume_step": 0})
        (tmp / f"logger-{spec.name}").mkdir(exist_ok=True)
        logger.log({"step": 1, "epoch": 1, "loss": 0.5, "lr": 1e-3})
        logger.log({"epoch": 1, "step": 1, "train_loss": 0.5, "seconds": 0.1,
                    "eval": {"accuracy": 0.5}})
        logger.close()
        return "log(step), log(epoch), close()"
    run_check(results, f"logger {spec.name}", "logs a run", logs)


def check_objective(spec: Any, results: list[CheckResult]) -> None:
    """Built on a registered encoder of its modality (the plugin's own first), it encodes
    and collates samples into a batch whose loss is finite and has a gradient."""
    def step() -> str:
        import torch

        from zoo.pretraining import describe_encoder

        reg = get_registry()
        encoders = sorted((e for e in reg.all("encoder") if e.modality == spec.modality),
                          key=lambda e: (e.plugin != spec.plugin, e.weights is not None))
        for enc in encoders:
            try:
                obj = spec.build(encoder=describe_encoder(enc.qualified_name, spec.modality),
                                 seed=0)
            except ZooError:
                continue  # an encoder this objective cannot pretrain
            batch = obj.collate(obj.encode(samples(spec.modality) * 2), seed=0)
            loss = obj.loss(batch)
            if not torch.isfinite(loss):
                raise AssertionError(f"the loss is {float(loss)}")
            loss.backward()
            if not any(p.grad is not None for p in obj.parameters()):
                raise AssertionError("no parameter received a gradient")
            return f"on {enc.name}: loss {float(loss):.3f}, gradients flow"
        raise Skip(f"no registered {spec.modality} encoder it builds on")
    run_check(results, f"objective {spec.name}", "encode + collate + loss + backward", step)
