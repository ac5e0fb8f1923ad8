"""``zoo.evaluate(model, data)``: predictions on a labelled set and the task's metrics."""
from __future__ import annotations

import datetime as _dt
import json
from pathlib import Path
from typing import Any, Sequence

from .errors import DataError

__all__ = ["evaluate", "load_examples", "EVAL_RESULTS"]

EVAL_RESULTS = "eval_results.json"


def load_examples(data: Any, *, on_bad_data: str = "fail",
                  errors: list[tuple[int, str]] | None = None
                  ) -> tuple[list[Any], list[str] | None, str]:
    """A manifest (.jsonl), a COCO file (.json) or a list of Examples / dicts ->
    (examples, categories or None, dataset name)."""
    from .data.coco import read_coco
    from .data.manifest import MODALITY_KEYS, Example, read_manifest

    if isinstance(data, (str, Path)):
        p = Path(data)
        if p.suffix == ".json":
            examples, cats = read_coco(p)
            return examples, cats, p.stem
        return read_manifest(p, on_error=on_bad_data, errors=errors), None, p.stem
    examples = []
    for i, x in enumerate(data):
        if isinstance(x, Example):
            examples.append(x)
        elif isinstance(x, dict):
            inputs = {k: x[k] for k in MODALITY_KEYS if x.get(k) is not None}
            targets = {k: v for k, v in x.items() if k not in MODALITY_KEYS}
            examples.append(Example(i + 1, inputs, targets, x))
        else:
            raise DataError(f"example {i}: expected a dict, got {type(x).__name__}")
    return examples, None, "data"


def metrics_for(task: str, model: Any, examples: Sequence[Any],
                preds: Sequence[dict[str, Any]], categories: Sequence[str] | None
                ) -> dict[str, float]:
    """The registered task's metrics of ``preds`` against the examples' targets."""
    from .registry import get_task

    return get_task(task).metrics(model, examples, preds, categories)


def evaluate(model: Any, data: Any, *, batch_size: int = 32, write: bool = True,
             on_bad_data: str = "fail", **decode_kwargs: Any) -> dict[str, Any]:
    """Metrics as a flat dict (``accuracy``, ``f1_macro``, ``map``, ``map_50``, ``wer``,
    ``cer``, ..., plus ``n``). For a model loaded from a folder, also writes
    ``eval_results.json`` there, which the model card reads."""
    from . import load

    if isinstance(model, (str, Path)):
        model = load(model)
    errors: list[tuple[int, str]] = []
    examples, categories, name = load_examples(data, on_bad_data=on_bad_data, errors=errors)
    if not examples:
        raise DataError(f"no examples to evaluate in {data}")
    preds = model.predict([ex.inputs for ex in examples], batch_size=batch_size,
                          **decode_kwargs)
    result: dict[str, Any] = metrics_for(model.task, model, examples, preds, categories)
    result["n"] = len(examples)
    if errors:
        result["skipped"] = len(errors)
    source = getattr(model, "source", None)
    if write and source and Path(source).is_dir():
        record = {"task": model.task, "dataset": name, "data": str(data)
                  if isinstance(data, (str, Path)) else None,
                  "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
                  "decoding": decode_kwargs or None, "metrics": result}
        (Path(source) / EVAL_RESULTS).write_text(json.dumps(record, indent=2) + "\n")
        from .cards import write_card

        write_card(source)  # the card's model-index now carries these figures
    return result
