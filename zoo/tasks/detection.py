"""Object detection: boxes in pixels of the input image, with labels and scores."""
from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any, Mapping, Sequence

from zoo.plugin import DataError, Task, replace_head


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

    def check_target(self, targets: Mapping[str, Any], where: str,
                     labels: Sequence[str] | None = None,
                     inputs: Mapping[str, Any] | None = None) -> None:
        super().check_target(targets, where, labels, inputs)
        boxes, names = targets["boxes"], targets["labels"]
        if not isinstance(boxes, list) or not isinstance(names, list):
            raise DataError(f"{where}: 'boxes' and 'labels' must be lists")
        if len(boxes) != len(names):
            raise DataError(f"{where}: {len(boxes)} boxes but {len(names)} labels")
        for b in boxes:
            if not (isinstance(b, list) and len(b) == 4
                    and all(isinstance(v, (int, float)) and not isinstance(v, bool)
                            for v in b)):
                raise DataError(f"{where}: a box must be [x1, y1, x2, y2] in pixels, got {b!r}")
        unknown = [str(n) for n in names if labels is not None and str(n) not in labels]
        if unknown:
            raise DataError(f"{where}: label {unknown[0]!r} is not one of the detector's labels")

    def read_file(self, path: Path) -> tuple[list[Any], list[str] | None] | None:
        from zoo.tasks.coco import looks_like_coco, read_coco

        return read_coco(path) if looks_like_coco(path) else None

    def prepare(self, model: Any, examples: Sequence[Any], categories: Any = None) -> bool:
        labels = list(categories or sorted({str(n) for ex in examples
                                            for n in ex.targets["labels"]}))
        if labels != model.labels:
            replace_head(model, labels=labels)
            return True
        return False

    def metrics(self, model: Any, examples: Sequence[Any], predictions: Sequence[dict],
                categories: Any = None) -> dict[str, float]:
        from zoo.metrics import detection_metrics

        self.check_targets(examples)
        return detection_metrics([ex.targets for ex in examples], predictions,
                                 categories or model.labels)

    def describe_targets(self, targets: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        counts = Counter(str(n) for t in targets for n in (t.get("labels") or []))
        return {"labels": dict(sorted(counts.items())),
                "boxes_per_image": round(sum(counts.values()) / max(1, len(targets)), 3)}
