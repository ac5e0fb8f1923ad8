"""Clashes with three names of zoo's first-party plugins: an encoder, a fusion and a model."""
import zoo


@zoo.hookimpl
def register_encoders(register):
    register("bert-tiny", "zoo_plugin_example.encoder:CharCounts", modality="text",
             outputs=("pooled",), dim=26, description="Clashes with zoo-text-hf's bert-tiny.")


@zoo.hookimpl
def register_fusions(register):
    register("gated", "zoo.fusions.concat:ConcatMLP", accepts=("pooled",),
             description="Clashes with zoo's gated fusion.")


@zoo.hookimpl
def register_models(register):
    register("effnet-lite0-image-clf", {
        "task": "classification", "encoders": {"text": "bert-tiny"}, "fusion": "gated",
        "head": {"name": "classification", "labels": ["x", "y"]}})
