"""A pretraining objective written from docs/plugins.md alone: registration only, no torch."""
from zoo.plugin import hookimpl


@hookimpl
def register_objectives(register):
    register("char-denoise", "zoo_plugin_objective.toy:build", modality="text",
             defaults={"width": 16},
             description="Predicts each text's hidden characters from the others (a toy).")
