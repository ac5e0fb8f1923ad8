"""JSONL manifests: one example a line; inputs under ``text``/``image``/``audio`` (paths
relative to the manifest); every other key is a target, read by the model's task (``label``
for classification, ``boxes`` + ``labels`` for detection, ``transcript`` for ASR, ...). Bad
lines are reported with their line number."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from zoo.errors import DataError

__all__ = ["Example", "read_manifest", "iter_manifest", "MODALITY_KEYS"]

MODALITY_KEYS = ("text", "image", "audio")
_PATH_KEYS = ("image", "audio")


@dataclass
class Example:
    line: int  # 1-based line number in the manifest
    inputs: dict[str, Any]  # modality -> value (paths made absolute)
    targets: dict[str, Any] = field(default_factory=dict)  # every key that is not an input
    raw: dict[str, Any] = field(default_factory=dict)


def json_object(line: str, lineno: int, where: str) -> dict[str, Any]:
    """One manifest line as a dict, or a DataError naming file and line."""
    try:
        obj = json.loads(line)
    except ValueError as e:
        raise DataError(f"{where}:{lineno}: not valid JSON ({e.msg}); fix or remove the line")
    if not isinstance(obj, dict):
        raise DataError(f"{where}:{lineno}: expected a JSON object, got {type(obj).__name__}")
    return obj


def _parse(line: str, lineno: int, root: Path, where: str) -> Example:
    obj = json_object(line, lineno, where)
    inputs = {}
    for k in MODALITY_KEYS:
        v = obj.get(k)
        if v is None:
            continue
        if not isinstance(v, str):
            raise DataError(f"{where}:{lineno}: {k!r} must be a string"
                            f"{' (a path relative to the manifest)' if k in _PATH_KEYS else ''}")
        inputs[k] = str(root / v) if k in _PATH_KEYS else v
    if not inputs:
        raise DataError(f"{where}:{lineno}: no input (expected one of {', '.join(MODALITY_KEYS)})")
    targets = {k: v for k, v in obj.items() if k not in MODALITY_KEYS}
    return Example(lineno, inputs, targets, obj)


def iter_manifest(path: str | Path, *, on_error: str = "fail",
                  errors: list[tuple[int, str]] | None = None) -> Iterator[Example]:
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
                yield _parse(line, lineno, root, str(path))
            except DataError as e:
                if on_error != "skip":
                    raise
                if errors is not None:
                    errors.append((lineno, str(e)))


def read_manifest(path: str | Path, **kwargs: Any) -> list[Example]:
    return list(iter_manifest(path, **kwargs))
