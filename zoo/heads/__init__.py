"""The core's task heads, registered through the same hook as any plugin (no torch here)."""
from __future__ import annotations

from ..hookspecs import hookimpl


@hookimpl
def register_heads(register):
    register("classification", "zoo.heads.classification:ClassificationHead",
             tasks=("classification",), accepts=("fused",),
             description="Linear classifier: softmax (single-label) or sigmoid with a "
                         "threshold (multi-label); labels stored in config.json.",
             defaults={"multi_label": False, "threshold": 0.5})
