"""``zoo.evaluate(model, data)``: predictions on a labelled set and the task's metrics.

Evaluating never changes a model: ``record=True`` (``zoo eval --record``) writes the
figures into the model's folder (``eval_results.json``, the card's ``model-index``)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from zoo.errors import DataError, ZooError
from zoo.io.records import EVAL_RESULTS

__all__ = ["evaluate", "load_examples", "EVAL_RESULTS"]


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


def evaluate(model: Any, data: Any, *, batch_size: int = 32, record: bool = False,
             on_bad_data: str = "fail", columns: dict[str, str] | None = None,
             write: bool | None = None, **decode_kwargs: Any) -> dict[str, Any]:
    """Metrics as a flat dict (``accuracy``, ``f1_macro``, ``map``, ``wer``, ..., plus
    ``n``). Read-only: with ``record=True`` a model loaded from a folder gets the figures
    written there (``eval_results.json``) and its card re-rendered. (``write=`` is the old
    name of ``record=``.)"""
    from zoo.io.hub import load

    record = bool(write) if write is not None else record
    if isinstance(model, (str, Path)):
        model = load(model)
    errors: list[tuple[int, str]] = []
    examples, categories, name = load_examples(data, on_bad_data=on_bad_data, errors=errors,
                                               columns=columns)
    if not examples:
        raise DataError(f"no examples to evaluate in {data}")
    from zoo.data.rows import resolve_file_targets

    resolve_file_targets(examples, model.task_impl.file_targets)
    preds = model.predict([ex.inputs for ex in examples], batch_size=batch_size,
                          **decode_kwargs)
    result: dict[str, Any] = model.task_impl.metrics(model, examples, preds, categories)
    result["n"] = len(examples)
    if errors:
        result["skipped"] = len(errors)
    if record:
        _record(model, data, name, result, decode_kwargs)
    return result


def _record(model: Any, data: Any, name: str, result: dict[str, Any],
            decoding: dict[str, Any]) -> None:
    """The figures into the model's folder, and its card re-rendered with them."""
    from zoo.io.card import write_card
    from zoo.io.records import eval_record, write_record
    from zoo.weights import sha256_file

    source = getattr(model, "source", None)
    if not source or not Path(source).is_dir():
        raise ZooError("--record writes into the model's folder, and this model was not "
                       "loaded from one (a registry name or a model in memory)")
    path = Path(data) if isinstance(data, (str, Path)) else None
    write_record(source, EVAL_RESULTS, eval_record(
        model.task, result, dataset=name, data=str(data) if path else None,
        data_sha256=sha256_file(path) if path and path.is_file() else None,
        decoding=decoding or None))
    write_card(source)
