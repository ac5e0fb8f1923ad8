"""One data row -> one :class:`Example`: every registered modality claims its column(s)
and reads its value (file-based modalities resolve paths against the file's folder); every
other column is a target. ``columns`` maps zoo's keys to the data's column names
(``{"text": "review", "label": "sentiment"}``; a modality may claim several:
``{"tabular": ["age", "city"]}``, or ``"*"``: every column no other modality claims and no
task's target is in). One place for JSONL, CSV / TSV, Parquet, datasets and
in-memory rows alike."""
from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any, Iterable, Mapping

from zoo.base.example import Example
from zoo.errors import DataError
from zoo.registry import modalities

__all__ = ["example_from_row", "check_columns", "modality_columns", "input_keys",
           "resolve_file_targets"]


#: ``--column MODALITY='*'``: the modality takes every column that no other modality
#: claims and that holds no task's targets (AutoGluon's "all but the label")
WILDCARD = "*"


def _target_keys(columns: Mapping[str, Any]) -> set[str]:
    """Columns that hold targets: every registered task's target keys, as renamed by
    ``columns`` (``--column label=sentiment``)."""
    from zoo.registry import get_registry

    keys = {t for spec in get_registry().all("task") for t in spec.targets}
    return keys | {str(columns[k]) for k in keys if isinstance(columns.get(k), str)}


def input_keys() -> list[str]:
    """The registered modalities' names: the keys an example's inputs use."""
    return list(modalities())


def _names(value: Any) -> list[str]:
    return [str(c) for c in value] if isinstance(value, (list, tuple)) else [str(value)]


def check_columns(columns: Mapping[str, Any] | None, present: Iterable[str],
                  where: str) -> None:
    """Every column ``columns`` names exists in the data, or a one-line DataError."""
    present = [str(p) for p in present]
    reg = modalities()
    for ours, theirs in (columns or {}).items():
        cols = reg[ours].columns(theirs) if ours in reg else _names(theirs)
        for col in cols:
            if col == WILDCARD:
                continue
            if col not in present:
                close = difflib.get_close_matches(col, present, n=1, cutoff=0.5)
                raise DataError(f"{where}: no column {col!r} (given for {ours!r} in columns); "
                                f"columns: {', '.join(present) or '(none)'}"
                                + (f"; did you mean {close[0]!r}?" if close else ""))


def modality_columns(columns: Mapping[str, Any] | None) -> dict[str, list[str]]:
    """modality -> the data columns it claims (after ``columns``)."""
    columns = columns or {}
    return {name: m.columns(columns.get(name)) for name, m in modalities().items()}


def example_from_row(row: Mapping[str, Any], line: Any, root: Path | None, where: str,
                     columns: Mapping[str, Any] | None = None, *,
                     require_input: bool = True) -> Example:
    """One example from a data row. ``root``: the data file's folder (relative paths of
    file-based modalities resolve against it; None for in-memory data). ``where`` locates
    the row in messages (``file:line``)."""
    columns = dict(columns or {})
    inputs: dict[str, Any] = {}
    claimed: set[str] = set()
    wild = []
    for name, modality in modalities().items():
        col = columns.get(name)
        cols = modality.columns(col)
        if cols == [WILDCARD]:
            wild.append(name)
            continue
        claimed.update(cols)
        value = modality.from_row(row, col)
        if value is not None:
            inputs[name] = modality.from_data(value, root, where)
    for name in wild:  # --column tabular='*': every column no one else takes
        rest = [k for k in row if k not in claimed and k not in _target_keys(columns)]
        claimed.update(rest)
        value = modalities()[name].from_row(row, rest) if rest else None
        if value is not None:
            inputs[name] = modalities()[name].from_data(value, root, where)
    if not inputs and require_input:
        raise DataError(f"{where}: no input (expected one of {', '.join(input_keys())}; map "
                        f"yours with columns={{'text': ...}} or --column KEY=COLUMN)")
    renamed = {str(theirs): ours for ours, theirs in columns.items()
               if ours not in inputs and not isinstance(theirs, (list, tuple))
               and ours not in modalities()}
    targets = {renamed.get(k, k): v for k, v in row.items() if k not in claimed}
    return Example(line, inputs, targets, dict(row), root)


def resolve_file_targets(examples: Iterable[Example], keys: Iterable[str]) -> None:
    """The task's file targets (``Task.file_targets``: a mask) made absolute against each
    example's data file folder, in place; refused when one points outside that folder. An
    inline file (a ``data:`` URI, as a ``/feedback`` correction carries it) stays as it is."""
    keys = tuple(keys)
    for ex in examples:
        if ex.root is None:
            continue
        base = Path(ex.root).resolve()
        for k in keys:
            value = ex.targets.get(k)
            if not isinstance(value, str) or not value or value.startswith("data:"):
                continue
            path = (base / value).resolve()
            if path != base and base not in path.parents:
                raise DataError(f"line {ex.line}: {k!r} points outside the data set ({value}); "
                                f"a file target is a path inside the data file's folder")
            ex.targets[k] = str(path)
