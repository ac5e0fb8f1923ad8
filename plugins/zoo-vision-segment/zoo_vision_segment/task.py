"""The semantic-segmentation task: a mask of class indices per image.

Data: ``{"image": "img/1.png", "mask": "masks/1.png"}`` (the mask a PNG beside the images,
its path relative to the data file; in CSV a ``mask`` column), optionally with
``"labels": ["background", "cat", ...]`` (the name of each mask index; every line that has
it must give the same list). Labels, decided by ``prepare`` before training: the data's
``labels`` list; else the model's labels when they cover every index seen; else
``["background", "1", ..., "K"]`` for the largest index K seen.

Outputs per image (``Segmentation.outputs``): ``mask``, base64 of a single-channel PNG at
the image's original size whose pixels are label indices; ``classes``, ``{label: {"index",
"fraction", "score"}}`` for each label present (its share of the image's pixels, and the
mean winning-class probability over its pixels at the model's input size); ``size``,
``[height, width]``.

Metrics (torchmetrics, at each image's original size, pixels marked 255 left out): ``miou``
(mean IoU over the classes present in the truth or the prediction: torchmetrics'
``MulticlassJaccardIndex(average="macro")``), ``pixel_accuracy`` and ``iou_<label>`` for
each class present.
"""
from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from zoo.plugin import DataError, Task, ZooError, replace_head
from zoo_vision_segment.masks import (
    DATA_URI,
    IGNORE,
    as_data_uri,
    describe_value,
    image_size,
    read_inline,
    read_mask,
)

__all__ = ["Segmentation"]

_OUTPUT = ("[{'mask': '<base64 PNG, class index per pixel>', 'classes': {'background': "
           "{'index': 0, 'fraction': 0.82, 'score': 0.97}, 'cat': {'index': 1, 'fraction': "
           "0.18, 'score': 0.88}}, 'size': [height, width]}]")


def _row_labels(targets: Mapping[str, Any], where: str) -> list[str] | None:
    """A line's optional ``labels`` (the name of each mask index), checked."""
    names = targets.get("labels")
    if names is None:
        return None
    if (not isinstance(names, list) or not names or len(names) > IGNORE
            or not all(isinstance(n, str) and n.strip() for n in names)
            or len(set(names)) != len(names)):
        raise DataError(f"{where}: 'labels' must be a list of 1 to {IGNORE} distinct names, the "
                        f"name of each mask index in order (0 first)")
    return list(names)


def _class_ids(mask: np.ndarray) -> np.ndarray:
    ids = np.flatnonzero(np.bincount(mask.ravel(), minlength=256))
    return ids[ids != IGNORE]


def _ids_within(mask: np.ndarray, names: Sequence[str] | None, where: str, what: str) -> None:
    ids = _class_ids(mask)
    if names is not None and ids.size and int(ids.max()) >= len(names):
        raise DataError(f"{where}: the mask holds class index {int(ids.max())}, beyond {what} "
                        f"({len(names)} classes: 0..{len(names) - 1}; 255 = ignore)")


def _pixel_chunks(examples: Sequence[Any], predictions: Sequence[dict],
                  labels: Sequence[str], chunk: int = 1 << 22) -> Any:
    """(truth, prediction) int64 pixel vectors, about ``chunk`` pixels each, over the whole
    eval set (one metric update per chunk, not per image); sizes and indices checked."""
    parts: list[tuple[np.ndarray, np.ndarray]] = []
    size = 0
    for ex, p in zip(examples, predictions):
        where = f"line {ex.line}"
        truth = read_mask(ex.targets.get("mask"), where)
        _ids_within(truth, labels, where, "the model's labels")
        pred = read_inline(p["mask"], f"{where}: the prediction")
        if pred.shape != truth.shape:
            raise DataError(f"{where}: the predicted mask is {pred.shape[1]}x{pred.shape[0]} but "
                            f"the true one is {truth.shape[1]}x{truth.shape[0]}")
        parts.append((truth.ravel(), pred.ravel()))
        size += truth.size
        if size >= chunk:
            yield (np.concatenate([t for t, _ in parts]).astype(np.int64),
                   np.concatenate([q for _, q in parts]).astype(np.int64))
            parts, size = [], 0
    if parts:
        yield (np.concatenate([t for t, _ in parts]).astype(np.int64),
               np.concatenate([q for _, q in parts]).astype(np.int64))


class Segmentation(Task):
    targets = ("mask",)
    outputs = ("mask", "classes", "size")
    file_targets = ("mask",)
    metric, higher_is_better = "miou", True
    requires = ("image",)
    exportable = True  # the head gives one (B, C, H, W) tensor
    metric_names = {"miou": "mIoU", "pixel_accuracy": "Pixel accuracy"}
    metrics_library = "torchmetrics (MulticlassJaccardIndex, MulticlassAccuracy; ignore_index=255)"
    limitations = ("Labels every pixel with one of the classes listed above; thin structures "
                   "and objects a few pixels wide are hard at the model's input size (masks are "
                   "predicted there and upsampled to the image's size).")
    example_output = _OUTPUT

    def pipeline_tag(self, modalities: Sequence[str]) -> str | None:
        return "image-segmentation"

    # ---- targets ----------------------------------------------------------------------
    def check_target(self, targets: Mapping[str, Any], where: str,
                     labels: Sequence[str] | None = None,
                     inputs: Mapping[str, Any] | None = None) -> None:
        super().check_target(targets, where, labels, inputs)
        names = _row_labels(targets, where)
        mask = read_mask(targets["mask"], where)
        if names is not None:
            _ids_within(mask, names, where, "its 'labels'")
        if labels is not None:
            _ids_within(mask, list(labels), where, "the model's labels")
        size = image_size((inputs or {}).get("image"))
        if size is not None and tuple(mask.shape) != tuple(size):
            raise DataError(f"{where}: {describe_value(targets['mask'])} is {mask.shape[1]}x"
                            f"{mask.shape[0]} but its image is {size[1]}x{size[0]} (width x "
                            f"height); a mask must have its image's size")

    def targets_from_correction(self, correction: Any, labels: Sequence[str] | None,
                                where: str = "correction",
                                inputs: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """A ``/feedback`` correction: the mask as base64 of a PNG or a ``data:`` URI (bare,
        or ``{"mask": ...}``) -> ``{"mask": "data:image/png;base64,..."}``, re-encoded as a
        single-channel PNG and checked against the image's size and the model's labels.
        Never a path: a request does not make the server read its files."""
        if isinstance(correction, Mapping):
            extra = sorted(set(correction) - {"mask"})
            if extra or "mask" not in correction:
                raise DataError(f"{where} must be a base64 PNG mask or {{\"mask\": ...}}, not "
                                f"an object with {', '.join(map(str, extra)) or 'no mask'}")
            correction = correction["mask"]
        targets = {"mask": as_data_uri(read_inline(correction, where))}
        self.check_target(targets, where, labels, inputs)
        return targets

    def describe_targets(self, targets: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        """``zoo data check``: per class, the masks that hold it (``labels``, drawn) and its
        share of the labelled pixels (``pixel_share``); the ignored share."""
        names = next((t["labels"] for t in targets if isinstance(t.get("labels"), list)), None)
        pixels, images = np.zeros(256, dtype=np.int64), Counter()
        for i, t in enumerate(targets):
            try:
                counts = np.bincount(read_mask(t.get("mask"), f"mask {i}").ravel(),
                                     minlength=256)
            except DataError:
                continue  # reported by check_target already
            pixels += counts
            images.update(np.flatnonzero(counts[:IGNORE]).tolist())
        name = (lambda k: names[k] if names and k < len(names) else str(k))
        labelled = int(pixels[:IGNORE].sum())
        ids = sorted(images)
        return {"labels": {name(k): images[k] for k in ids},
                "pixel_share": {name(k): round(int(pixels[k]) / max(1, labelled), 6)
                                for k in ids},
                "ignored_share": round(int(pixels[IGNORE]) / max(1, int(pixels.sum())), 6),
                "masks": len(targets)}

    # ---- training -----------------------------------------------------------------------
    def prepare(self, model: Any, examples: Sequence[Any], categories: Any = None) -> bool:
        """The labels (see the module docstring); the head is rebuilt when they change."""
        names = None
        for ex in examples:
            row = _row_labels(ex.targets, f"line {ex.line}")
            if row is not None and names is not None and row != names:
                raise DataError(f"line {ex.line}: its 'labels' differ from an earlier line's; "
                                f"every line must name the same classes in the same order")
            names = row if row is not None else names
        if categories:
            names = [str(c) for c in categories]
        if names is None:
            top = max((int(ids.max()) for ex in examples
                       if (ids := _class_ids(read_mask(ex.targets["mask"], f"line {ex.line}"))
                           ).size), default=0)
            current = list(model.labels or [])
            names = current if top < len(current) else \
                ["background", *(str(k) for k in range(1, top + 1))]
        if names != model.labels:
            replace_head(model, labels=names)
            return True
        return False

    # ---- evaluation -----------------------------------------------------------------------
    def metrics(self, model: Any, examples: Sequence[Any], predictions: Sequence[dict],
                categories: Any = None) -> dict[str, float]:
        try:
            import torch
            from torchmetrics.classification import (
                MulticlassAccuracy,
                MulticlassJaccardIndex,
            )
        except ImportError:
            raise ZooError("segmentation metrics need torchmetrics: pip install "
                           "'torchmetrics>=1.4,<2'") from None
        labels = list(model.labels)
        n = len(labels)
        kw = {"num_classes": n, "ignore_index": IGNORE, "validate_args": False}
        per_class = MulticlassJaccardIndex(average="none", **kw)
        accuracy = MulticlassAccuracy(average="micro", **kw)
        for t, q in _pixel_chunks(examples, predictions, labels):
            per_class.update(torch.from_numpy(q), torch.from_numpy(t))
            accuracy.update(torch.from_numpy(q), torch.from_numpy(t))
        cm = per_class.confmat  # (C, C): truth x prediction over the scored pixels
        present = (cm.sum(0) + cm.sum(1)) > 0
        if not bool(present.any()):
            raise DataError("no labelled pixels to score: every mask pixel is 255 (ignore)")
        ious = per_class.compute()
        # torchmetrics' average="macro": the mean over classes with any true or predicted pixel
        out = {"miou": float(ious[present].mean()), "pixel_accuracy": float(accuracy.compute())}
        out.update({f"iou_{labels[k]}": float(ious[k]) for k in range(n) if present[k]})
        return out

    def report(self, model: Any, examples: Sequence[Any], predictions: Sequence[dict],
               out: Path) -> list[str]:
        from zoo_vision_segment.report import draw_overlays

        return draw_overlays(model.labels, examples, predictions, Path(out))

    # ---- data tools, card -----------------------------------------------------------------
    def pseudo_label(self, prediction: Mapping[str, Any]) -> tuple[dict[str, Any], float]:
        """A prediction as training targets (the mask inline) and its confidence: the
        pixel-weighted mean of the classes' scores."""
        classes = prediction.get("classes") or {}
        conf = sum(c["fraction"] * c["score"] for c in classes.values())
        return {"mask": DATA_URI + prediction["mask"]}, round(float(conf), 6)

    def sample_targets(self, n: int) -> list[dict[str, Any]] | None:
        """None: a mask has its image's size, so no targets fit arbitrary inputs (the
        contract's answer for targets that depend on the inputs)."""
        return None

    def card_section(self, config: dict[str, Any]) -> str:
        from zoo.plugin import markdown_code

        labels = ((config.get("head") or {}).get("kwargs") or {}).get("labels") or []
        rows = "".join(f"| {i} | {markdown_code(name)} |\n" for i, name in enumerate(labels[:64]))
        more = f"| ... | {len(labels) - 64} more |\n" if len(labels) > 64 else ""
        return (
            "### Segmentation output\n\n"
            "Each prediction holds `mask`: base64 of a single-channel PNG at the image's "
            "original size whose pixel values are the class indices below; `classes`: for each "
            "class present, `{\"index\", \"fraction\", \"score\"}` (its share of the image's "
            "pixels; the mean probability of the winning class over its pixels, at the model's "
            "input size); `size`: `[height, width]`.\n\n"
            "```python\nimport base64, io\nimport numpy as np\nfrom PIL import Image\n"
            "mask = np.array(Image.open(io.BytesIO(base64.b64decode(pred[\"mask\"]))))"
            "  # (H, W) class indices\n```\n\n"
            "Training masks are PNGs of the same kind (palette PNGs read as their indices); "
            "255 marks pixels to ignore (no loss, not scored). mIoU is the mean IoU over the "
            "classes present in the truth or the prediction, at the images' original size; "
            "`iou_<label>` is each class's IoU.\n\n"
            "| index | label |\n| --- | --- |\n" + rows + more)
