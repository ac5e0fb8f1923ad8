"""``zoo.calibrate(model, data)``: fit how sure a model says it is to held-out labels.

Classifiers get temperature scaling (one scalar dividing the logits: the labels chosen never
change). The fitted value is saved with the model (config.json), so predict, serve and
export apply it; ``calibration.json`` records the data it was fitted on and the expected
calibration error before and after, and ``calibration.png`` shows both reliability diagrams.
"""
from __future__ import annotations

import datetime as _dt
from pathlib import Path
from typing import Any

from zoo.errors import DataError, ZooError

__all__ = ["calibrate", "CALIBRATION"]

CALIBRATION = "calibration.json"


def calibrate(model: Any, data: Any, *, out: str | Path | None = None, batch_size: int = 32,
              on_bad_data: str = "fail", columns: dict[str, str] | None = None
              ) -> dict[str, Any]:
    """Fit ``model``'s confidence on labelled ``data`` (held out from training) and save the
    model with it: into ``out``, else into the folder it was loaded from. Returns the record
    (what was fitted, the data, the metrics before and after)."""
    from zoo.data.rows import resolve_file_targets
    from zoo.evaluation import load_examples
    from zoo.io.card import write_card
    from zoo.io.hub import load
    from zoo.io.records import write_record
    from zoo.weights import sha256_file

    if isinstance(model, (str, Path)):
        model = load(model)
    target = Path(out) if out is not None else None
    source = getattr(model, "source", None)
    if target is None:
        if not source or not Path(source).is_dir():
            raise ZooError("zoo calibrate saves the calibrated model: this one was not loaded "
                           "from a folder (a registry name), so pass --out DIR")
        target = Path(source)
    examples, categories, name = load_examples(data, on_bad_data=on_bad_data, columns=columns)
    if len(examples) < 10:
        raise DataError(f"{len(examples)} examples in {data}: calibration needs a held-out "
                        f"labelled set of at least 10 (a few hundred is better)")
    task = model.task_impl
    resolve_file_targets(examples, task.file_targets)
    for ex in examples:  # before any work: the data must use the model's own labels
        problem = task.target_problem(ex.targets, f"line {ex.line}", model.labels, ex.inputs)
        if problem:
            raise DataError(f"{problem}; calibrate on held-out data the model was trained for")
    inputs = [ex.inputs for ex in examples]
    before_preds = model.predict(inputs, batch_size=batch_size)
    before = task.metrics(model, examples, before_preds, categories)
    fitted = task.calibrate(model, examples, batch_size)
    after_preds = model.predict(inputs, batch_size=batch_size)
    after = task.metrics(model, examples, after_preds, categories)
    path = Path(data) if isinstance(data, (str, Path)) else None
    record = {"task": model.task, **fitted, "dataset": name,
              "data_sha256": sha256_file(path) if path and path.is_file() else None,
              "n": len(examples),
              "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
              "before": _flat(before), "after": _flat(after)}
    model.save_pretrained(target, card=False)
    write_record(target, CALIBRATION, record)
    _picture(examples, before_preds, after_preds, target / "calibration.png")
    write_card(target)
    return record


def _flat(metrics: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in metrics.items() if isinstance(v, (int, float))}


def _picture(examples: list, before: list, after: list, path: Path) -> None:
    from zoo.metrics import reliability_panel
    from zoo.plots import plot_reliability

    truth = [ex.targets.get("label") for ex in examples]
    panels = []
    for title, preds in (("before", before), ("after", after)):
        if not all(isinstance(p.get("score"), (int, float)) for p in preds):
            return
        panels.append(reliability_panel(
            title, [float(p["score"]) for p in preds],
            [str(p.get("label")) == str(y) for p, y in zip(preds, truth)]))
    plot_reliability(panels, path)
