"""zoo-plugin-legacy: FROZEN. Written against zoo 0.1's plugin contract (docs/plugins.md of
2026-11-30) and kept exactly as it was, so the test suite proves a plugin of that release
still installs, passes `zoo plugins check` and trains. Do not update it to a newer contract.

It registers a hashed bag-of-words text encoder, a fusion that subclasses zoo's Fusion
base and uses its null embeddings and pooled(), a head, a task of its own ("topic", target
key "topic"), a model composing them, and a training logger.
"""
from zoo.plugin import hookimpl


@hookimpl
def register_encoders(register):
    register("legacy-bow", "zoo_plugin_legacy.parts:build_encoder", modality="text",
             outputs=("pooled", "sequence"), dim=24, defaults={"dim": 24, "buckets": 512},
             description="Hashed bag of words (a frozen plugin of contract 1).")


@hookimpl
def register_fusions(register):
    register("legacy-scale", "zoo_plugin_legacy.parts:ScaleFusion", accepts=("pooled",),
             defaults={"dim": 16}, description="Null embeddings + pooled(), a gate, a linear.")


@hookimpl
def register_heads(register):
    register("legacy-topic-head", "zoo_plugin_legacy.parts:TopicHead", tasks=("topic",),
             description="Softmax over topics; decode option top_k.")


@hookimpl
def register_tasks(register):
    register("topic", "zoo_plugin_legacy.parts:Topic", targets=("topic",),
             description="One topic per text (target key 'topic'); accuracy by scikit-learn.")


@hookimpl
def register_models(register):
    register("legacy-topic-clf", {
        "task": "topic", "description": "legacy-bow -> legacy-scale -> legacy-topic-head",
        "encoders": {"text": "legacy-bow"},
        "fusion": {"name": "legacy-scale", "dim": 16},
        "head": {"name": "legacy-topic-head", "topics": ["a", "b"]}})


@hookimpl
def register_loggers(register):
    register("legacy-lines", "zoo_plugin_legacy.parts:LinesLogger",
             description="Counts the records it was sent into legacy_lines.txt.")
