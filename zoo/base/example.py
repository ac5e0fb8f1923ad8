"""One example of a data set, as every reader gives it and tasks receive it."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["Example"]


@dataclass
class Example:
    line: int | str  # 1-based line number in the file (or a row / image label)
    inputs: dict[str, Any]  # modality -> value (paths made absolute)
    targets: dict[str, Any] = field(default_factory=dict)  # every key that is not an input
    raw: dict[str, Any] = field(default_factory=dict)
    # the data file's folder: where relative paths in it point (None for in-memory data);
    # a task's file targets (Task.file_targets: a segmentation mask) resolve against it
    root: Any = None
