"""The record files a model folder holds beside the model, one schema and one writer each:

- ``eval_results.json``: the figures the card's ``model-index`` shows: at the top level the
  training's eval split at the best epoch (written by ``zoo train``), and under ``others``
  one entry per other data set ``zoo eval --record`` measured. A recorded result replaces
  only the entry of the same data (the same sha256, else the same name);
- ``training.json``: how the model was trained (data, options, stages, best epoch).

Writes are atomic (a temporary file moved into place), so a reader never sees half a file.
"""
from __future__ import annotations

import datetime as _dt
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Mapping

__all__ = ["EVAL_RESULTS", "TRAINING", "eval_record", "write_record", "read_record",
           "RECORD_FILES", "record_eval", "eval_entries"]

EVAL_RESULTS = "eval_results.json"
TRAINING = "training.json"
#: what a model folder holds besides the model itself, published with it
RECORD_FILES = (TRAINING, EVAL_RESULTS, "calibration.json", "robustness.json", "slices.json",
                "*.png")


def eval_record(task: str, metrics: Mapping[str, Any], *, dataset: str | None,
                data: str | None = None, data_sha256: str | None = None,
                epoch: int | None = None, decoding: Mapping[str, Any] | None = None
                ) -> dict[str, Any]:
    """``eval_results.json``'s one schema: the task, the data the figures were measured on
    (a name, the file, its sha256), the epoch (from training) or decoding options (from
    ``zoo eval``), the date and the metrics (``n`` among them)."""
    return {"task": task, "dataset": dataset, "data": data, "data_sha256": data_sha256,
            "epoch": epoch, "decoding": dict(decoding) if decoding else None,
            "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "metrics": dict(metrics)}


def write_record(folder: str | Path, name: str, record: Mapping[str, Any]) -> Path:
    """Write one record file atomically."""
    folder = Path(folder)
    fd, tmp = tempfile.mkstemp(prefix=f".{name}.", dir=folder)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(json.dumps(record, indent=2) + "\n")
        os.replace(tmp, folder / name)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return folder / name


def read_record(folder: str | Path, name: str) -> dict[str, Any] | None:
    """A record file's object, or None when it is missing or unreadable."""
    try:
        value = json.loads((Path(folder) / name).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def _same_data(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    """Two records measured on the same data: the same content hash when both have one,
    else the same name (a Hub data set id, or a local name)."""
    if a.get("data_sha256") and b.get("data_sha256"):
        return a["data_sha256"] == b["data_sha256"]
    return a.get("dataset") == b.get("dataset")


def record_eval(folder: str | Path, record: Mapping[str, Any]) -> Path:
    """Merge one ``zoo eval --record`` result into ``eval_results.json``: it replaces the
    entry measured on the same data (the training's, at the top level, or one under
    ``others``) and leaves every other entry as it was."""
    current = read_record(folder, EVAL_RESULTS)
    if current is None or not current.get("metrics") or _same_data(current, record):
        others = (current or {}).get("others") or []
        merged = {**record, "others": others} if others else dict(record)
        if current and current.get("epoch") is not None and _same_data(current, record):
            merged["epoch"] = current["epoch"]  # still the best epoch's weights
        return write_record(folder, EVAL_RESULTS, merged)
    others = [o for o in current.get("others") or []
              if isinstance(o, dict) and not _same_data(o, record)]
    return write_record(folder, EVAL_RESULTS, {**current, "others": [*others, dict(record)]})


def eval_entries(evals: Mapping[str, Any] | None) -> list[dict[str, Any]]:
    """Every result an ``eval_results.json`` object holds, the training's first."""
    if not evals:
        return []
    head = {k: v for k, v in evals.items() if k != "others"}
    rest = [o for o in evals.get("others") or [] if isinstance(o, dict)]
    return ([head] if head.get("metrics") else []) + rest
