"""zoo-plugin-tabtag: a new modality and a new per-word task, through zoo.plugin alone.

- modality ``readings``: a row of named columns, numbers or categories (``{"age": 41,
  "city": "Oslo"}``); data files give it as a JSON object under ``readings`` or as columns
  named by ``--column readings=age,income,city``.
- encoder ``tab-mlp``: numeric columns squashed (sign * log1p), categories hashed into
  embeddings, an MLP to a pooled vector.
- task ``tagging``: one tag per word of a text (``{"text": ..., "tags": [...]}``, or CoNLL
  files: ``word tag`` lines, a blank line between sentences); token accuracy and macro-F1
  by scikit-learn.
- head ``word-tagger``: a linear layer over a text encoder's sequence output, trained on
  the first piece of each word, decoded as exactly one tag per word.
"""
from zoo.plugin import hookimpl

zoo_contract = 2


@hookimpl
def register_modalities(register):
    register("readings", "zoo_plugin_tabtag.tabular:Tabular",
             description="A row of named numeric / categorical columns (a JSON object).")


@hookimpl
def register_encoders(register):
    register("tab-mlp", "zoo_plugin_tabtag.tabular:build_encoder", modality="readings",
             outputs=("pooled",), dim=32,
             defaults={"numeric": ["x"], "categorical": [], "dim": 32, "buckets": 64},
             description="Numeric columns (sign * log1p) and hashed categories -> an MLP.")


@hookimpl
def register_tasks(register):
    register("tagging", "zoo_plugin_tabtag.tagging:Tagging", targets=("tags",),
             description="One tag per word of a text; token accuracy and macro-F1.")


@hookimpl
def register_heads(register):
    register("word-tagger", "zoo_plugin_tabtag.tagging:WordTagger", tasks=("tagging",),
             accepts=("sequence",), defaults={"modality": "text"},
             description="Linear over the first piece of each word; one tag per word.")


@hookimpl
def register_models(register):
    register("tab-clf", {
        "task": "classification", "description": "tab-mlp -> concat-mlp -> classification",
        "encoders": {"readings": {"name": "tab-mlp", "numeric": ["age", "income"],
                                 "categorical": ["city"]}},
        "fusion": {"name": "concat-mlp", "dim": 32},
        "head": {"name": "classification", "labels": ["high", "low"]}})
    register("minilm-tagger", {
        "task": "tagging", "description": "all-MiniLM-L6-v2 word tagger (subword pieces)",
        "encoders": {"text": "minilm-l6"},
        "head": {"name": "word-tagger", "labels": ["O", "X"]}})
