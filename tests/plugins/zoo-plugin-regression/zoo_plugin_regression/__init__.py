"""A new task end to end, through the plugin contract only: a regression task (targets
under "target", MAE and R² by scikit-learn), its head, a text encoder and a model."""
from zoo.plugin import hookimpl


@hookimpl
def register_tasks(register):
    register("regression", "zoo_plugin_regression.parts:Regression", targets=("target",),
             description="One number per example; MAE and R² (scikit-learn).")


@hookimpl
def register_heads(register):
    register("regression", "zoo_plugin_regression.parts:RegressionHead",
             tasks=("regression",), description="A linear layer, mean squared error.")


@hookimpl
def register_fusions(register):
    register("sum-mlp", "zoo_plugin_regression.parts:SumMLP", accepts=("pooled",),
             defaults={"dim": 16}, description="Per-modality MLPs, summed (keeps scale).")


@hookimpl
def register_encoders(register):
    register("word-lengths", "zoo_plugin_regression.parts:WordLengths", modality="text",
             outputs=("pooled",), dim=8, description="Counts of words by length (1-8+).")


@hookimpl
def register_models(register):
    register("length-regressor", {
        "task": "regression", "description": "Predicts a number from word lengths.",
        "encoders": {"text": "word-lengths"},
        "fusion": {"name": "sum-mlp", "dim": 16}, "head": "regression"})
