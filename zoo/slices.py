"""Metrics per group (``zoo eval --slice COLUMN``): the eval examples split by the value of a
data column (a JSONL key, a CSV / Parquet column, a datasets feature) that is neither an
input nor a target the task reads, every metric computed per group with its count, and the
largest gap between groups.

Readers keep every column of a row (``Example.raw``; the keys that are no input are in
``Example.targets`` too), so slicing needs nothing of the data format. A row without the
column falls into the group ``(missing)``."""
from __future__ import annotations

import json
import warnings
from typing import Any, Callable, Mapping, Sequence

from zoo.errors import DataError

__all__ = ["MISSING", "group_of", "check_columns", "slice_metrics", "report_lines"]

MISSING = "(missing)"
SLICES_FILE = "slices.json"


def _row(ex: Any) -> Mapping[str, Any]:
    return ex.raw or {**ex.targets, **ex.inputs}


def group_of(value: Any) -> str:
    """A column value as a group name: strings as they are, other values as JSON."""
    if value is None:
        return MISSING
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)


def check_columns(examples: Sequence[Any], columns: Sequence[str], where: str) -> None:
    """Each column is in the data (in one row at least), or a one-line DataError naming the
    columns there are."""
    import difflib

    present = sorted({k for ex in examples for k in _row(ex)})
    for column in columns:
        if column not in present:
            close = difflib.get_close_matches(column, present, n=1, cutoff=0.5)
            raise DataError(f"{where}: no column {column!r} to slice by; columns: "
                            f"{', '.join(present) or '(none)'}"
                            + (f"; did you mean {close[0]!r}?" if close else ""))


def slice_metrics(examples: Sequence[Any], predictions: Sequence[Any],
                  columns: Sequence[str],
                  metrics: Callable[[Sequence[Any], Sequence[Any]], Mapping[str, Any]],
                  where: str = "data") -> dict[str, Any]:
    """``{"columns": {column: {group: {**metrics, "n": count}}}, "gap": {column: {metric:
    max - min over the groups}}}``; ``metrics(examples, predictions)`` gives the task's
    figures of a subset (numeric ones are kept)."""
    from zoo.robustness import scalars

    check_columns(examples, columns, where)
    out: dict[str, Any] = {"columns": {}, "gap": {}}
    for column in columns:
        groups: dict[str, list[int]] = {}
        for i, ex in enumerate(examples):
            groups.setdefault(group_of(_row(ex).get(column)), []).append(i)
        per: dict[str, dict[str, float]] = {}
        for group in sorted(groups):
            idx = groups[group]
            with warnings.catch_warnings():  # one class in a group: expected here
                warnings.simplefilter("ignore")
                figures = scalars(metrics([examples[i] for i in idx],
                                          [predictions[i] for i in idx]))
            per[group] = {**figures, "n": len(idx)}
        out["columns"][column] = per
        names = sorted({k for f in per.values() for k in f if k != "n"})
        out["gap"][column] = {k: round(max(f[k] for f in per.values() if k in f)
                                       - min(f[k] for f in per.values() if k in f), 6)
                              for k in names}
    return out


def report_lines(result: Mapping[str, Any]) -> list[str]:
    """``zoo eval``'s text report of the robustness and slice results in ``result``."""
    from zoo.robustness import table_lines

    lines = table_lines(result.get("robustness"))
    for column, groups in (result.get("slices") or {}).get("columns", {}).items():
        names = sorted({k for f in groups.values() for k in f if k != "n"})
        lines.append(f"slices by {column!r}")
        lines.append(f"  {'group':20} {'n':>6}" + "".join(f" {k:>10}" for k in names))
        for group, figures in groups.items():
            lines.append(f"  {group[:20]:20} {figures['n']:>6}" + "".join(
                f" {figures[k]:>10.4f}" if k in figures else f" {'':>10}" for k in names))
        gap = result["slices"]["gap"][column]
        lines.append(f"  {'gap (max - min)':20} {'':>6}" + "".join(
            f" {gap[k]:>10.4f}" for k in names))
    return lines
