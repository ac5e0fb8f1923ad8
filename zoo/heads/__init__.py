"""The core's task heads, registered through the same hook as any plugin (no torch here)."""
from __future__ import annotations

from zoo.plugin import hookimpl

zoo_contract = 2  # the plugin contract this module is written for


@hookimpl
def register_heads(register):
    register("classification", "zoo.heads.classification:ClassificationHead",
             tasks=("classification",), accepts=("fused",),
             description="Linear classifier: softmax (single-label) or sigmoid with a "
                         "threshold (multi-label); labels stored in config.json.",
             defaults={"multi_label": False, "threshold": 0.5})
    register("detection", "zoo.heads.detection:DetectionHead", tasks=("detection",),
             accepts=("features",),
             description="FCOS anchor-free detector on an FPN over multi-scale feature maps; "
                         "NMS; text_prompts=true makes labels text prompts (open vocabulary).",
             defaults={"dim": 128, "num_convs": 2})
    register("ctc", "zoo.heads.asr:CTCHead", tasks=("asr",), accepts=("sequence",),
             description="CTC over the audio encoder's sequence; character vocabulary; greedy "
                         "or beam search (flashlight, optional lexicon + KenLM).",
             defaults={})
    register("contrastive", "zoo.heads.contrastive:ContrastiveHead", tasks=("retrieval",),
             accepts=("pooled",),
             description="CLIP-style alignment of two encoders: projection heads, symmetric "
                         "InfoNCE with a learned temperature (gathered across DDP processes).",
             defaults={"dim": 256, "hidden": 512, "temperature": 0.07})
