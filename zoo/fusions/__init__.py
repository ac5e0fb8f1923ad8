"""The core's fusions, registered through the same hook as any plugin (no torch here)."""
from __future__ import annotations

from ..hookspecs import hookimpl


@hookimpl
def register_fusions(register):
    register("concat-mlp", "zoo.fusions.concat:ConcatMLP", accepts=("pooled",),
             description="Concatenate pooled embeddings (layer-normed), then an MLP.",
             defaults={"dim": 256, "dropout": 0.1})
    register("gated", "zoo.fusions.gated:GatedFusion", accepts=("pooled",),
             description="Gated multimodal unit: per-modality tanh projections mixed by "
                         "learned softmax gates.",
             defaults={"dim": 256, "dropout": 0.1})
