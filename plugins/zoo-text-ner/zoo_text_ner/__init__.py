"""zoo plugin: token classification / named-entity recognition. Registration only: torch,
transformers and seqeval are imported when a model is built or scored.

- task ``token-classification``: one IOB2 tag per whitespace-separated word (target
  ``tags``; or ``entities``, character spans, converted over the words); predictions give
  ``entities`` (``text``, ``label``, ``start``, ``end``, ``score``: character offsets into
  the input), ``tags`` and per-word ``scores``; entity-level precision / recall / F1 and F1
  per type by seqeval. Reads CoNLL column files (``.conll``, ``.iob``, ``.iob2``,
  ``.bio``) and JSONL of ``{"tokens", "tags"}`` or ``{"text", "entities"}`` lines.
- head ``token-classifier``: a linear layer (or an MLP) over a text encoder's sequence
  output, trained and read at each word's first sub-word piece.
- models ``minilm-ner`` (all-MiniLM-L6-v2, pretrained) and ``bert-tiny-ner`` (a 2-layer
  BERT from scratch, for fast tests).
"""
from __future__ import annotations

from zoo.plugin import hookimpl

zoo_contract = 2  # the plugin contract this module is written for

TASK = "token-classification"
# CoNLL-2003's types: the head's labels until training data brings its own (Task.prepare)
LABELS = ["O", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC", "I-LOC", "B-MISC", "I-MISC"]


@hookimpl
def register_tasks(register):
    register(TASK, "zoo_text_ner.task:TokenClassification", targets=("tags",),
             description="Named entities / per-word IOB2 tags of a text, with character "
                         "offsets; entity-level F1 by seqeval.")


@hookimpl
def register_heads(register):
    register("token-classifier", "zoo_text_ner.head:TokenClassifierHead", tasks=(TASK,),
             accepts=("sequence",), defaults={"modality": "text"},
             description="Per-token logits over a text encoder's sequence, read at each "
                         "word's first sub-word piece; one IOB2 tag per word.")


@hookimpl
def register_models(register):
    register("minilm-ner", {
        "task": TASK,
        "description": "all-MiniLM-L6-v2 (pretrained, uncased) -> token classifier: named "
                       "entities in English text.",
        # 256 pieces: what all-MiniLM-L6-v2 was trained with; longer texts are cut
        "encoders": {"text": {"name": "minilm-l6", "max_length": 256}},
        "head": {"name": "token-classifier", "labels": LABELS}})
    register("bert-tiny-ner", {
        "task": TASK,
        "description": "A 2-layer, 64-d BERT (random init, MiniLM's vocabulary) -> token "
                       "classifier; trains in seconds, for tests.",
        "encoders": {"text": "bert-tiny"},
        "head": {"name": "token-classifier", "labels": LABELS}})
