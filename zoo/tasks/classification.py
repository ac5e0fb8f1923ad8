"""Classification: single-label or multi-label, on any modalities."""
from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any, Mapping, Sequence

from zoo.plugin import DataError, DataWarning, Task, replace_head

_TAGS = {"image": "image-classification", "text": "text-classification",
         "audio": "audio-classification"}


class Classification(Task):
    targets = ("label",)
    outputs = ("label", "score", "scores")
    metric, higher_is_better = "accuracy", True
    finetune_below = 0.98  # a weaker probe is fine-tuned after (LP-FT)
    metric_names = {"accuracy": "Accuracy", "f1_macro": "Macro F1",
                    "ece": "Expected calibration error (15 bins)"}
    metrics_library = "scikit-learn"
    limitations = ("Predicts only the labels it was trained on; scores are not calibrated "
                   "probabilities. Inputs far from the training data (other domains, "
                   "languages or image styles) degrade accuracy without warning.")
    example_output = "[{'label': ..., 'score': ..., 'scores': {...}}]"
    exportable = True

    def pipeline_tag(self, modalities: Sequence[str]) -> str | None:
        return _TAGS.get(modalities[0]) if len(modalities) == 1 else None

    def check_target(self, targets: Mapping[str, Any], where: str,
                     labels: Sequence[str] | None = None,
                     inputs: Mapping[str, Any] | None = None) -> None:
        if targets.get("label") is None:
            raise DataError(f"{where}: a classification example needs 'label'")
        label = targets["label"]
        values = label if isinstance(label, list) else [label]
        # a multi-label example may hold no label ([]: none of them applies)
        if (not values and not isinstance(label, list)) or not all(
                isinstance(v, (str, int)) and not isinstance(v, bool) and str(v).strip()
                for v in values):
            raise DataError(f"{where}: 'label' must be a label (a string) or a list of "
                            f"labels, got {label!r}")
        unknown = [str(v) for v in values if labels is not None and str(v) not in labels]
        if unknown:
            shown = ", ".join(list(labels)[:10]) + (", ..." if len(labels) > 10 else "")
            raise DataError(f"{where}: unknown label {unknown[0]!r} (allowed: {shown})")

    def prepare(self, model: Any, examples: Sequence[Any], categories: Any = None) -> bool:
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
        if len(labels) < 2 and not multi:
            import warnings

            warnings.warn(f"the training data holds one class only ({labels[0]}): the model "
                          f"can only ever predict it; add examples of other classes",
                          DataWarning, stacklevel=3)
        have = set(model.labels or ())
        same = set(labels) <= have if multi else set(labels) == have
        if not same or multi != getattr(model.head, "multi_label", False):
            # the same labels in another order keep the head (and its pretrained weights),
            # and so do multi-label data that use some of the head's labels only
            replace_head(model, labels=labels, multi_label=multi)
            return True
        return False

    def probe_start(self, probe: Any) -> dict[str, Any] | None:
        from zoo.tasks.probe import closed_form_start

        return closed_form_start(probe)

    def metrics(self, model: Any, examples: Sequence[Any], predictions: Sequence[dict],
                categories: Any = None) -> dict[str, float]:
        from zoo.metrics import classification_metrics

        self.check_targets(examples)
        truth = [ex.targets["label"] for ex in examples]
        _warn_about(truth, model.labels)
        result = classification_metrics(truth, [p["label"] for p in predictions],
                                        model.labels)
        confident = _confidences(truth, predictions)
        if confident is not None:  # single-label: how far confidence is from accuracy
            from zoo.metrics import calibration_error

            result["ece"] = calibration_error(*confident)
        return result

    def report(self, model: Any, examples: Sequence[Any], predictions: Sequence[dict],
               out: Path) -> list[str]:
        from zoo.plots import plot_confusion

        if getattr(model.head, "multi_label", False):
            return []
        plot_confusion(model.labels, [str(ex.targets["label"]) for ex in examples],
                       [str(p["label"]) for p in predictions], out / "confusion_matrix.png")
        confident = _confidences([ex.targets["label"] for ex in examples], predictions)
        if confident is None:
            return ["confusion_matrix.png"]
        from zoo.metrics import reliability_panel
        from zoo.plots import plot_reliability

        plot_reliability([reliability_panel("eval, best epoch", *confident)],
                         out / "reliability_diagram.png")
        return ["confusion_matrix.png", "reliability_diagram.png"]

    def calibrate(self, model: Any, examples: Sequence[Any], batch_size: int = 32
                  ) -> dict[str, Any]:
        """Temperature scaling: T fitted to ``examples``' negative log-likelihood; the head
        divides its logits by T from now on (predict, serve, export alike)."""
        from zoo.tasks.calibration import collect_logits, fit_temperature

        head = model.head
        if getattr(head, "multi_label", False) or not hasattr(head, "temperature"):
            raise DataError("zoo calibrate fits a temperature to single-label classifiers "
                            "with zoo's classification head; this model has another head")
        head.temperature = 1.0
        logits, targets = collect_logits(model, examples, batch_size)
        head.temperature = fit_temperature(logits, targets)
        return {"method": "temperature scaling", "temperature": round(head.temperature, 6)}

    def pseudo_label(self, prediction: Mapping[str, Any]) -> tuple[dict[str, Any], float]:
        score = prediction["score"]
        if isinstance(score, list):  # multi-label: the least sure chosen label
            score = min(score) if score else 0.0
        return {"label": prediction["label"]}, round(float(score), 6)

    def explain_target(self, model: Any, prediction: Mapping[str, Any],
                       target: Any = None) -> Any:
        scores = prediction["scores"]
        if target is None:  # the predicted label (multi-label: the highest-scoring one)
            return max(scores, key=scores.__getitem__)
        if str(target) not in scores:
            shown = ", ".join(list(scores)[:10]) + (", ..." if len(scores) > 10 else "")
            raise DataError(f"target {str(target)[:40]!r} is not a label of this model "
                            f"(labels: {shown})")
        return str(target)

    def explain_score(self, prediction: Mapping[str, Any], target: Any) -> float:
        return float(prediction["scores"][target])

    def sample_targets(self, n: int) -> list[dict[str, Any]]:
        return [{"label": "a" if i % 4 in (0, 3) else "b"} for i in range(n)]

    def describe_targets(self, targets: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        counts: Counter = Counter()
        for t in targets:
            label = t.get("label")
            for lab in (label if isinstance(label, list) else [label] if label is not None
                        else []):
                counts[str(lab)] += 1
        return {"labels": dict(sorted(counts.items()))}


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


def _confidences(truth: Sequence[Any], predictions: Sequence[Mapping[str, Any]]
                 ) -> tuple[list[float], list[bool]] | None:
    """Top-label confidences and whether each was right, for single-label predictions with
    a score (None for multi-label)."""
    if any(isinstance(y, list) for y in truth) or not all(
            isinstance(p.get("score"), (int, float)) for p in predictions):
        return None
    return ([float(p["score"]) for p in predictions],
            [str(p["label"]) == str(y) for p, y in zip(predictions, truth)])
