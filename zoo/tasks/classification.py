"""Classification: single-label or multi-label, on any modalities."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from ..errors import DataError
from .base import Task

_TAGS = {"image": "image-classification", "text": "text-classification",
         "audio": "audio-classification"}


class Classification(Task):
    targets = ("label",)
    outputs = ("label", "score", "scores")
    metric, higher_is_better = "accuracy", True
    metric_names = {"accuracy": "Accuracy", "f1_macro": "Macro F1"}
    metrics_library = "zoo.metrics"
    limitations = ("Predicts only the labels it was trained on; scores are not calibrated "
                   "probabilities. Inputs far from the training data (other domains, "
                   "languages or image styles) degrade accuracy without warning.")
    example_output = "[{'label': ..., 'score': ..., 'scores': {...}}]"

    def pipeline_tag(self, modalities: Sequence[str]) -> str | None:
        return _TAGS.get(modalities[0]) if len(modalities) == 1 else None

    def prepare(self, model: Any, examples: Sequence[Any], categories: Any = None) -> bool:
        from ..compose import replace_head

        self.check_targets(examples)
        seen: set[str] = set()
        multi = False
        for ex in examples:
            lab = ex.targets["label"]
            if isinstance(lab, list):
                multi = True
                seen.update(map(str, lab))
            else:
                seen.add(str(lab))
        labels = sorted(seen)
        if labels != model.labels or multi != getattr(model.head, "multi_label", False):
            replace_head(model, labels=labels, multi_label=multi)
            return True
        return False

    def metrics(self, model: Any, examples: Sequence[Any], predictions: Sequence[dict],
                categories: Any = None) -> dict[str, float]:
        from .. import metrics

        for ex in examples:
            if "label" not in ex.targets:
                raise DataError(f"line {ex.line}: no 'label' to evaluate against")
        return metrics.classification_metrics([ex.targets["label"] for ex in examples],
                                              [p["label"] for p in predictions], model.labels)

    def report(self, model: Any, examples: Sequence[Any], predictions: Sequence[dict],
               out: Path) -> list[str]:
        from ..training.plots import plot_confusion

        if getattr(model.head, "multi_label", False):
            return []
        plot_confusion(model.labels, [str(ex.targets["label"]) for ex in examples],
                       [str(p["label"]) for p in predictions], out / "confusion_matrix.png")
        return ["confusion_matrix.png"]
