"""The record files a model folder holds beside the model, one schema and one writer each:

- ``eval_results.json``: the figures the card's ``model-index`` shows, written by
  ``zoo train`` for its best epoch and by ``zoo eval --record``;
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
           "RECORD_FILES"]

EVAL_RESULTS = "eval_results.json"
TRAINING = "training.json"
#: what a model folder holds besides the model itself, published with it
RECORD_FILES = (TRAINING, EVAL_RESULTS, "*.png")


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
