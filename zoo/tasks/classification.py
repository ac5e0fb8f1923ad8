"""Classification: single-label or multi-label, on any modalities."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from zoo.errors import DataError
from zoo.base.task import Task

_TAGS = {"image": "image-classification", "text": "text-classification",
         "audio": "audio-classification"}


class Classification(Task):
    targets = ("label",)
    outputs = ("label", "score", "scores")
    metric, higher_is_better = "accuracy", True
    finetune_below = 0.98  # a weaker probe is fine-tuned after (LP-FT)
    metric_names = {"accuracy": "Accuracy", "f1_macro": "Macro F1"}
    limitations = ("Predicts only the labels it was trained on; scores are not calibrated "
                   "probabilities. Inputs far from the training data (other domains, "
                   "languages or image styles) degrade accuracy without warning.")
    example_output = "[{'label': ..., 'score': ..., 'scores': {...}}]"

    def pipeline_tag(self, modalities: Sequence[str]) -> str | None:
        return _TAGS.get(modalities[0]) if len(modalities) == 1 else None

    def prepare(self, model: Any, examples: Sequence[Any], categories: Any = None) -> bool:
        from zoo.build.compose import replace_head

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
        import zoo.metrics as metrics

        for ex in examples:
            if "label" not in ex.targets:
                raise DataError(f"line {ex.line}: no 'label' to evaluate against")
        truth = [ex.targets["label"] for ex in examples]
        _warn_about(truth, model.labels)
        return metrics.classification_metrics(truth, [p["label"] for p in predictions],
                                              model.labels)

    metrics_library = "scikit-learn"

    def report(self, model: Any, examples: Sequence[Any], predictions: Sequence[dict],
               out: Path) -> list[str]:
        from zoo.training.plots import plot_confusion

        if getattr(model.head, "multi_label", False):
            return []
        plot_confusion(model.labels, [str(ex.targets["label"]) for ex in examples],
                       [str(p["label"]) for p in predictions], out / "confusion_matrix.png")
        return ["confusion_matrix.png"]


def _warn_about(truth: Sequence[Any], model_labels: Sequence[str] | None) -> None:
    """Say when the figures will mislead: labels the model cannot predict, or one class."""
    import warnings

    seen = {str(v) for y in truth for v in (y if isinstance(y, list) else [y])}
    unknown = sorted(seen - set(model_labels or ()))
    if unknown:
        warnings.warn(f"the eval data holds {len(unknown)} label(s) the model cannot predict "
                      f"({', '.join(unknown[:5])}{', ...' if len(unknown) > 5 else ''}): they "
                      f"count as errors in accuracy and macro-F1", UserWarning, stacklevel=4)
    if len(seen) == 1:
        warnings.warn(f"the eval data holds one class only ({next(iter(seen))}): accuracy and "
                      f"macro-F1 say little about the model", UserWarning, stacklevel=4)
