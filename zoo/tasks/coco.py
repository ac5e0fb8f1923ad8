"""COCO detection JSON: images, annotations (xywh boxes) and categories -> examples with
xyxy boxes and category names; paths relative to the JSON file."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from zoo.plugin import DataError, Example

__all__ = ["read_coco", "looks_like_coco"]


def looks_like_coco(path: Path) -> bool:
    """A .json file whose first bytes hold an object (a COCO file is one object with
    images, annotations and categories)."""
    if path.suffix.lower() != ".json" or not path.is_file():
        return False
    with open(path, "rb") as f:
        return f.read(64).lstrip()[:1] == b"{"


def read_coco(path: str | Path) -> tuple[list[Example], list[str]]:
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError(f"COCO file not found: {path}") from None
    except ValueError as e:
        raise DataError(f"{path}: not valid JSON ({e})") from None
    for key in ("images", "annotations", "categories"):
        if not isinstance(data.get(key), list):
            raise DataError(f"{path}: a COCO file needs a list under {key!r}")
    try:
        cats = {c["id"]: str(c["name"]) for c in data["categories"]}
        by_image: dict[Any, list[dict]] = {img["id"]: [] for img in data["images"]}
    except (KeyError, TypeError) as e:
        raise DataError(f"{path}: category or image without {e}") from None
    for i, ann in enumerate(data["annotations"]):
        try:
            x, y, w, h = (float(v) for v in ann["bbox"])
            by_image[ann["image_id"]].append({"box": [x, y, x + w, y + h],
                                              "label": cats[ann["category_id"]]})
        except (KeyError, TypeError, ValueError) as e:
            raise DataError(f"{path}: annotation {i} is malformed ({type(e).__name__}: {e}); "
                            f"it needs image_id, category_id and bbox [x, y, w, h]") from None
    examples = []
    for n, img in enumerate(data["images"]):
        if "file_name" not in img:
            raise DataError(f"{path}: image {n} has no file_name")
        anns = by_image[img["id"]]
        examples.append(Example(line=n + 1, inputs={"image": str(path.parent / img["file_name"])},
                                targets={"boxes": [a["box"] for a in anns],
                                         "labels": [a["label"] for a in anns]},
                                raw=img))
    return examples, [cats[k] for k in sorted(cats)]
