"""``zoo.evaluate(model, data)``: predictions on a labelled set and the task's metrics."""
from __future__ import annotations

import datetime as _dt
import json
from pathlib import Path
from typing import Any, Sequence

from zoo.errors import DataError

__all__ = ["evaluate", "load_examples", "EVAL_RESULTS"]

EVAL_RESULTS = "eval_results.json"


def load_examples(data: Any, *, on_bad_data: str = "fail",
                  errors: list[tuple[int, str]] | None = None,
                  columns: dict[str, str] | None = None
                  ) -> tuple[list[Any], list[str] | None, str]:
    """Any data shape ``zoo.data.formats.read_any`` reads (JSONL, COCO, CSV/TSV/Parquet,
    ImageFolder, audiofolder, Hugging Face datasets, torch datasets, lists of dicts) ->
    (examples, categories or None, dataset name). ``columns`` maps zoo's keys (text, image,
    audio, label, ...) to the data's column names."""
    from zoo.data.formats import read_any

    return read_any(data, columns=columns, on_bad_data=on_bad_data, errors=errors)



def metrics_for(task: str, model: Any, examples: Sequence[Any],
                preds: Sequence[dict[str, Any]], categories: Sequence[str] | None
                ) -> dict[str, float]:
    """The registered task's metrics of ``preds`` against the examples' targets."""
    from zoo.registry import get_task

    return get_task(task).metrics(model, examples, preds, categories)


def evaluate(model: Any, data: Any, *, batch_size: int = 32, write: bool = True,
             on_bad_data: str = "fail", columns: dict[str, str] | None = None,
             **decode_kwargs: Any) -> dict[str, Any]:
    """Metrics as a flat dict (``accuracy``, ``f1_macro``, ``map``, ``map_50``, ``wer``,
    ``cer``, ..., plus ``n``). For a model loaded from a folder, also writes
    ``eval_results.json`` there, which the model card reads."""
    from zoo.io.hub import load

    if isinstance(model, (str, Path)):
        model = load(model)
    errors: list[tuple[int, str]] = []
    examples, categories, name = load_examples(data, on_bad_data=on_bad_data, errors=errors,
                                               columns=columns)
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
        from zoo.io.card import write_card

        write_card(source)  # the card's model-index now carries these figures
    return result
