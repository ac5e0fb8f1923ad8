"""Per-example checks that catch bad data before it reaches a batch: each modality says
why a value of its own cannot be used (a missing file, one that does not decode, empty
text), reading headers only."""
from __future__ import annotations

from typing import Any

from zoo.registry import modalities

__all__ = ["example_problem"]


def example_problem(inputs: dict[str, Any]) -> str | None:
    """Why this example's inputs cannot be used, or None. Cheap: reads headers only."""
    reg = modalities()
    for key, value in inputs.items():
        modality = reg.get(key)
        problem = modality.check(value) if modality is not None else None
        if problem:
            return problem
    return None
