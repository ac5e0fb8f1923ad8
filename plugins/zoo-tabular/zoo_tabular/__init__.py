"""zoo-tabular: tabular columns beside text and images.

- modality ``tabular``: one row of named columns, numbers or categories (``{"age": 41,
  "city": "Oslo"}``). A data file gives it as a JSON object under ``tabular``, or as
  columns of a CSV / TSV / Parquet named by ``--column tabular=age,income,city`` (any
  other column stays a target, or another modality's: ``text``, ``image``).
- encoder ``tabular-mlp``: fitted on the training split (``Encoder.fit``): a column whose
  values are all numbers is numeric (standardised with the training mean and standard
  deviation, a missing-value flag beside it), any other is categorical (a vocabulary of
  its most frequent values, an embedding each; unseen and missing values have their own
  rows). What it fitted is saved in ``config.json`` with the model.
- models: ``tabular-clf`` (columns alone) and ``minilm-tabular-clf`` (text + columns).
"""
from zoo.plugin import hookimpl

zoo_contract = 2


@hookimpl
def register_modalities(register):
    register("tabular", "zoo_tabular.modality:Tabular",
             description="A row of named numeric / categorical columns (a JSON object, or "
                         "CSV / Parquet columns named by --column tabular=a,b,c).")


@hookimpl
def register_encoders(register):
    register("tabular-mlp", "zoo_tabular.encoder:build_encoder", modality="tabular",
             outputs=("pooled",), dim=64,
             defaults={"dim": 64, "hidden": 128, "max_categories": 64, "dropout": 0.1},
             description="Numeric columns standardised and categorical ones embedded, both "
                         "fitted on the training split; an MLP to a 64-d vector.")


@hookimpl
def register_models(register):
    register("tabular-clf", {
        "task": "classification",
        "description": "Classifier on tabular columns (tabular-mlp, trained from scratch): "
                       "numeric and categorical columns of a CSV / Parquet.",
        "encoders": {"tabular": "tabular-mlp"},
        "fusion": {"name": "concat-mlp", "dim": 64},
        "head": {"name": "classification", "labels": ["negative", "positive"]}})
    register("minilm-tabular-clf", {
        "task": "classification",
        "description": "Text + tabular columns classifier: pretrained MiniLM (frozen by "
                       "default) and tabular-mlp, concat-MLP fusion.",
        "encoders": {"text": "minilm-l6", "tabular": "tabular-mlp"},
        "fusion": {"name": "concat-mlp", "dim": 128},
        "head": {"name": "classification", "labels": ["negative", "positive"]}})
