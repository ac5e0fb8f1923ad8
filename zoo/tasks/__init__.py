"""The core's tasks, registered through the same hook as any plugin's (no torch here)."""
from __future__ import annotations

from zoo.plugin import hookimpl

zoo_contract = 2  # the plugin contract this module is written for


@hookimpl
def register_tasks(register):
    register("classification", "zoo.tasks.classification:Classification",
             targets=("label",),
             description="One label per example (a string), or a list of labels "
                         "(multi-label); accuracy and macro-F1.")
    register("detection", "zoo.tasks.detection:Detection", targets=("boxes", "labels"),
             description="Boxes (xyxy pixels) with a label each; COCO mAP by pycocotools.")
    register("asr", "zoo.tasks.asr:SpeechRecognition", targets=("transcript",),
             description="Speech to text; WER and CER by jiwer.")
    register("retrieval", "zoo.tasks.retrieval:Retrieval", targets=(),
             description="Two modalities aligned in one space (pairs); recall@k, zero-shot.")
    register("embedding", "zoo.tasks.retrieval:Embedding", targets=(),
             description="An encoder's embeddings, no head.")
