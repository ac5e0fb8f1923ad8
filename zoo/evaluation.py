"""``zoo.evaluate(model, data)``: predictions on a labelled set and the task's metrics."""
from __future__ import annotations

import datetime as _dt
import json
from pathlib import Path
from typing import Any, Sequence

from .errors import DataError, ZooError

__all__ = ["evaluate", "load_examples", "EVAL_RESULTS"]

EVAL_RESULTS = "eval_results.json"


def load_examples(data: Any, *, on_bad_data: str = "fail",
                  errors: list[tuple[int, str]] | None = None
                  ) -> tuple[list[Any], list[str] | None, str]:
    """A manifest (.jsonl), a COCO file (.json) or a list of Examples / dicts ->
    (examples, categories or None, dataset name)."""
    from .data.coco import read_coco
    from .data.manifest import Example, read_manifest

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
            inputs = {k: x[k] for k in ("text", "image", "audio") if x.get(k) is not None}
            targets = {k: x[k] for k in ("label", "transcript", "boxes", "labels") if k in x}
            examples.append(Example(i + 1, inputs, targets, x))
        else:
            raise DataError(f"example {i}: expected a dict, got {type(x).__name__}")
    return examples, None, "data"


def metrics_for(task: str, model: Any, examples: Sequence[Any],
                preds: Sequence[dict[str, Any]], categories: Sequence[str] | None
                ) -> dict[str, float]:
    from . import metrics

    if task == "classification":
        for ex in examples:
            if "label" not in ex.targets:
                raise DataError(f"line {ex.line}: no 'label' to evaluate against")
        return metrics.classification_metrics([ex.targets["label"] for ex in examples],
                                              [p["label"] for p in preds], model.labels)
    if task == "detection":
        return metrics.detection_metrics([ex.targets for ex in examples], preds,
                                         categories or model.labels)
    if task == "asr":
        from .heads.asr import normalize_text

        refs = []
        for ex in examples:
            if "transcript" not in ex.targets:
                raise DataError(f"line {ex.line}: no 'transcript' to evaluate against")
            refs.append(normalize_text(ex.targets["transcript"], model.head.vocabulary))
        return metrics.asr_metrics(refs, [p["text"] for p in preds])
    if task == "retrieval":
        from .heads.contrastive import require_pairs

        mods = model.head.modalities
        require_pairs(examples, mods)
        emb = {m: [p["embedding"][m] for p in preds] for m in mods}
        keys = {m: [str(ex.inputs[m]) for ex in examples] for m in mods}
        return metrics.retrieval_metrics(emb, keys)
    raise ZooError(f"no metrics for task {task!r}")


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
