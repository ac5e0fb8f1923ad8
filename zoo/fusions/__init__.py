"""The core's fusions, registered through the same hook as any plugin (no torch here).

Missing-modality policy, per fusion: concat-mlp and gated replace an absent modality's
vector by a learned null embedding; cross-attention masks its tokens out; late fusion
renormalises its weights over the modalities present.
"""
from __future__ import annotations

from zoo.plugin import hookimpl

zoo_contract = 2  # the plugin contract this module is written for


@hookimpl
def register_fusions(register):
    register("concat-mlp", "zoo.fusions.concat:ConcatMLP", accepts=("pooled",),
             description="Concatenate pooled embeddings (layer-normed), then an MLP; a learned "
                         "null embedding stands in for a missing modality.",
             defaults={"dim": 256, "dropout": 0.1})
    register("gated", "zoo.fusions.gated:GatedFusion", accepts=("pooled",),
             description="Gated multimodal unit: per-modality tanh projections mixed by "
                         "learned softmax gates.",
             defaults={"dim": 256, "dropout": 0.1})
    register("cross-attention", "zoo.fusions.attention:CrossAttentionFusion",
             accepts=("sequence", "pooled"),
             description="A small transformer over all encoders' tokens with modality "
                         "embeddings; [CLS] is the fused vector; missing modalities masked.",
             defaults={"dim": 256, "num_layers": 2, "num_heads": 4, "dropout": 0.1})
    register("late", "zoo.fusions.late:LateFusion", accepts=("pooled",),
             description="Late / score fusion: a branch per modality, averaged with equal or "
                         "learned weights (renormalised when a modality is missing).",
             defaults={"dim": 256, "weights": "learned", "dropout": 0.1})
