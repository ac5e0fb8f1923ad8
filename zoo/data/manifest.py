"""JSONL manifests: one example a line; inputs under the modalities' keys (``text``,
``image``, ``audio``, or a plugin's; file paths relative to the manifest); every other key
is a target, read by the model's task (``label`` for classification, ``boxes`` + ``labels``
for detection, ``transcript`` for ASR, ...). Bad lines are reported with their number."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterator

from zoo.base.example import Example
from zoo.data.rows import example_from_row
from zoo.errors import DataError

__all__ = ["Example", "read_manifest", "iter_manifest", "json_object"]


def json_object(line: str, lineno: int, where: str) -> dict[str, Any]:
    """One manifest line as a dict, or a DataError naming file and line."""
    try:
        obj = json.loads(line)
    except ValueError as e:
        raise DataError(f"{where}:{lineno}: not valid JSON ({e.msg}); fix or remove the line")
    if not isinstance(obj, dict):
        raise DataError(f"{where}:{lineno}: expected a JSON object, got {type(obj).__name__}")
    return obj


def iter_manifest(path: str | Path, *, on_error: str = "fail",
                  errors: list[tuple[int, str]] | None = None,
                  columns: dict[str, Any] | None = None) -> Iterator[Example]:
    """Examples of a manifest. ``on_error="skip"`` collects ``(line, message)`` of bad
    lines into ``errors``."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"manifest not found: {path}")
    root = path.parent
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                obj = json_object(line, lineno, str(path))
                yield example_from_row(obj, lineno, root, f"{path}:{lineno}", columns)
            except DataError as e:
                if on_error != "skip":
                    raise
                if errors is not None:
                    errors.append((lineno, str(e)))


def read_manifest(path: str | Path, **kwargs: Any) -> list[Example]:
    return list(iter_manifest(path, **kwargs))
