"""Object detection: boxes in pixels of the input image, with labels and scores."""
from __future__ import annotations

from typing import Any, Sequence

from zoo.errors import DataError
from zoo.base.task import Task


class Detection(Task):
    targets = ("boxes", "labels")
    outputs = ("boxes", "labels", "scores")
    metric, higher_is_better = "map", True
    requires = ("image",)
    metric_names = {"map": "mAP@[.5:.95]", "map_50": "mAP@0.5", "map_75": "mAP@0.75"}
    metrics_library = "pycocotools"
    limitations = ("Trained on the categories listed above; small, overlapping or truncated "
                   "objects are harder. Boxes are in pixels of the input image.")
    example_output = "[{'boxes': [[x1, y1, x2, y2], ...], 'labels': [...], 'scores': [...]}]"

    def pipeline_tag(self, modalities: Sequence[str]) -> str | None:
        return "object-detection"

    def check_targets(self, examples: Sequence[Any]) -> None:
        super().check_targets(examples)
        for ex in examples:
            boxes, labels = ex.targets["boxes"], ex.targets["labels"]
            if not isinstance(boxes, list) or not isinstance(labels, list):
                raise DataError(f"line {ex.line}: 'boxes' and 'labels' must be lists")
            if len(boxes) != len(labels):
                raise DataError(f"line {ex.line}: {len(boxes)} boxes but {len(labels)} labels")
            for b in boxes:
                if not (isinstance(b, list) and len(b) == 4
                        and all(isinstance(v, (int, float)) for v in b)):
                    raise DataError(f"line {ex.line}: a box must be [x1, y1, x2, y2] in "
                                    f"pixels, got {b!r}")

    def prepare(self, model: Any, examples: Sequence[Any], categories: Any = None) -> bool:
        from zoo.build.compose import replace_head

        self.check_targets(examples)
        labels = list(categories or sorted({str(n) for ex in examples
                                            for n in ex.targets["labels"]}))
        if labels != model.labels:
            replace_head(model, labels=labels)
            return True
        return False

    def metrics(self, model: Any, examples: Sequence[Any], predictions: Sequence[dict],
                categories: Any = None) -> dict[str, float]:
        import zoo.metrics as metrics

        self.check_targets(examples)
        return metrics.detection_metrics([ex.targets for ex in examples], predictions,
                                         categories or model.labels)
