"""``zoo.evaluate(model, data)``: predictions on a labelled set and the task's metrics.

Evaluating never changes a model: ``record=True`` (``zoo eval --record``) writes the
figures into the model's folder (``eval_results.json``, the card's ``model-index``)."""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Sequence

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
             write: bool | None = None, robustness: bool | Sequence[str] = False,
             slices: Sequence[str] = (), seed: int = 0, out: str | Path | None = None,
             device: Any = None, precision: str = "auto", quantize: str | None = None,
             **decode_kwargs: Any) -> dict[str, Any]:
    """Metrics as a flat dict (``accuracy``, ``f1_macro``, ``map``, ``wer``, ..., plus
    ``n``). Read-only: with ``record=True`` a model loaded from a folder gets the figures
    written there (``eval_results.json``) and its card re-rendered. (``write=`` is the old
    name of ``record=``.)

    ``robustness=True`` (or a list of corruption names) adds ``"robustness"``: the metrics
    under each corruption of each input modality at severities 1-3 and their drop from the
    clean figures (``zoo.robustness.run``; seeded by ``seed``). ``slices=[column, ...]``
    adds ``"slices"``: the metrics per value of each data column with its count, and the
    largest gap between groups (``zoo.slices.slice_metrics``). ``out=DIR`` writes them as
    ``robustness.json``, ``robustness.png`` and ``slices.json``; ``record=True`` writes
    those into the model's folder too. ``device`` (``"auto"``, ``"cpu"``, ``"cuda[:N]"``,
    ``"mps"``): the model runs there, in ``precision`` (``ZooModel.place``); None: where it
    is. ``quantize="int8"``: a model named by ``model`` is loaded quantized for the CPU
    (``zoo.load``), to measure what int8 costs; its figures are not recorded."""
    record = bool(write) if write is not None else record
    model = _model_for_eval(model, device, precision, quantize, record)
    errors: list[tuple[int, str]] = []
    examples, categories, name = load_examples(data, on_bad_data=on_bad_data, errors=errors,
                                               columns=columns)
    if not examples:
        raise DataError(f"no examples to evaluate in {data}")
    from zoo.data.rows import resolve_file_targets

    resolve_file_targets(examples, model.task_impl.file_targets)
    _check_trust(model, examples, robustness, slices, data)  # before the costly predictions
    import time

    t0 = time.perf_counter()
    preds = model.predict([ex.inputs for ex in examples], batch_size=batch_size,
                          **decode_kwargs)
    clean_s = time.perf_counter() - t0
    result: dict[str, Any] = model.task_impl.metrics(model, examples, preds, categories)
    result["n"] = len(examples)
    if errors:
        result["skipped"] = len(errors)
    extra = _trust(model, examples, preds, categories, result, robustness=robustness,
                   slices=slices, seed=seed, batch_size=batch_size, decoding=decode_kwargs,
                   clean_s=clean_s)
    if extra:
        _write_trust(model, data, name, result, extra, out=out, record=record)
    if record:
        _record(model, data, name, result, decode_kwargs)
    return {**result, **extra}


def _model_for_eval(model: Any, device: Any, precision: str, quantize: str | None,
                    record: bool) -> Any:
    """The model to evaluate: loaded (placed, quantized) when named, else placed."""
    from zoo.io.hub import load

    if quantize is not None:
        if not isinstance(model, (str, Path)):
            raise ZooError("quantize= loads the model it evaluates: pass its name or folder, "
                           "or evaluate a model you quantized (model.quantize('int8'))")
        if record:
            raise ZooError("--record writes a saved model's own figures, not its int8 "
                           "copy's: evaluate with --quantize without --record")
    if isinstance(model, (str, Path)):
        return load(model, device=device, precision=precision, quantize=quantize)
    if device is not None:
        model.place(device, precision)
    return model


def _record(model: Any, data: Any, name: str, result: dict[str, Any],
            decoding: dict[str, Any]) -> None:
    """The figures into the model's folder, and its card re-rendered with them."""
    from zoo.io.card import write_card
    from zoo.io.records import eval_record, record_eval
    from zoo.weights import sha256_file

    source = getattr(model, "source", None)
    if not source or not Path(source).is_dir():
        raise ZooError("--record writes into the model's folder, and this model was not "
                       "loaded from one (a registry name or a model in memory)")
    path = Path(data) if isinstance(data, (str, Path)) else None
    record_eval(source, eval_record(
        model.task, result, dataset=name, data=path.name if path else None,
        data_sha256=sha256_file(path) if path and path.is_file() else None,
        decoding=decoding or None))
    write_card(source)


def _check_trust(model: Any, examples: list[Any], robustness: bool | Sequence[str],
                 slices: Sequence[str], data: Any) -> None:
    """A slice column the data lacks, or a corruption no input modality has: one line."""
    if slices:
        from zoo.slices import check_columns

        check_columns(examples, slices, str(data))
    if robustness and robustness is not True:
        from zoo.robustness import suites

        suites(model.modalities, examples, [str(c) for c in robustness])


def _trust(model: Any, examples: list[Any], preds: list[Any], categories: Any,
           clean: dict[str, Any], *, robustness: bool | Sequence[str], slices: Sequence[str],
           seed: int, batch_size: int, decoding: dict[str, Any], clean_s: float = 0.0
           ) -> dict[str, Any]:
    """``{"robustness": ..., "slices": ...}``, each only when asked. Robustness says first
    how many passes it will make and about how long they take (on stderr)."""
    task = model.task_impl
    extra: dict[str, Any] = {}
    if slices:
        from zoo.slices import slice_metrics

        extra["slices"] = slice_metrics(
            examples, preds, list(slices),
            lambda exs, ps: task.metrics(model, exs, ps, categories))
    if robustness:
        from zoo import robustness as rb

        def score(inputs: list[dict[str, Any]]) -> dict[str, Any]:
            import warnings

            with warnings.catch_warnings():  # said once, on the clean run
                warnings.simplefilter("ignore", UserWarning)
                got = model.predict(inputs, batch_size=batch_size, **decoding)
                return task.metrics(model, examples, got, categories)

        only = None if robustness is True else [str(c) for c in robustness]
        found, _ = rb.suites(model.modalities, examples, only)
        passes = sum(len(s) for s in found.values()) * len(rb.SEVERITIES)
        say = lambda line: sys.stderr.write(line + "\n")  # noqa: E731
        say(f"robustness: {passes} more passes over the {len(examples)} examples (each "
            f"corruption x {len(rb.SEVERITIES)} severities), ~{passes * clean_s:.0f} s at the "
            f"clean pass's {clean_s:.1f} s")
        extra["robustness"] = rb.run(model.modalities, examples, score, clean,
                                     metric=task.metric,
                                     higher_is_better=task.higher_is_better,
                                     only=only, seed=seed,
                                     progress=lambda what: say(f"robustness: {what}"))
    return extra


def _write_trust(model: Any, data: Any, name: str, clean: dict[str, Any],
                 extra: dict[str, Any], *, out: str | Path | None, record: bool) -> None:
    """robustness.json + robustness.png and slices.json into ``out`` and, with ``record``,
    into the model's folder (the card shows them)."""
    import datetime as dt

    from zoo.io.records import write_record
    from zoo.robustness import ROBUSTNESS_FILE, ROBUSTNESS_PLOT, plot_robustness
    from zoo.slices import SLICES_FILE
    from zoo.weights import sha256_file

    source = getattr(model, "source", None)
    folders = [Path(out)] if out is not None else []
    if record and source and Path(source).is_dir():
        folders.append(Path(source))
    path = Path(data) if isinstance(data, (str, Path)) else None
    about = {"task": model.task, "dataset": name, "data": str(data) if path else None,
             "data_sha256": sha256_file(path) if path and path.is_file() else None,
             "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
             "n": clean["n"]}
    for folder in folders:
        folder.mkdir(parents=True, exist_ok=True)
        if "robustness" in extra:
            write_record(folder, ROBUSTNESS_FILE, {**about, **extra["robustness"]})
            tmp = folder / f".{ROBUSTNESS_PLOT}.tmp.png"
            plot_robustness(extra["robustness"], tmp)
            tmp.replace(folder / ROBUSTNESS_PLOT)
        if "slices" in extra:
            write_record(folder, SLICES_FILE, {**about, **extra["slices"]})
