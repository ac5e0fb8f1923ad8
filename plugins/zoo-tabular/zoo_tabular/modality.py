"""The ``tabular`` modality: one row of named columns (``{"age": 41, "city": "Oslo"}``),
each a number, a string (a category) or null (missing)."""
from __future__ import annotations

import json
import math
from typing import Any, Mapping, Sequence

from zoo.plugin import DataError, Modality, RequestError

__all__ = ["Tabular", "check_row"]

MAX_CELL_CHARS = 1000  # a category longer than this is no category: text goes under text


def check_row(value: Any, where: str) -> dict[str, Any]:
    """A row as the encoder takes it, or a one-line DataError naming ``where``."""
    if not isinstance(value, Mapping) or not value:
        raise DataError(f"{where}: 'tabular' must be a non-empty object of column -> value, "
                        f"got {type(value).__name__}")
    row = {}
    for k, v in value.items():
        if not isinstance(k, str) or not k:
            raise DataError(f"{where}: tabular column names must be non-empty strings")
        if isinstance(v, float) and not math.isfinite(v):
            v = None  # NaN (a pandas empty cell) and inf are missing values
        if isinstance(v, bool):
            v = str(v).lower()  # a yes/no column is a category
        if not isinstance(v, (int, float, str, type(None))):
            raise DataError(f"{where}: tabular column {k[:40]!r} holds a "
                            f"{type(v).__name__}; give a number, a string or null")
        if isinstance(v, str) and len(v) > MAX_CELL_CHARS:
            raise DataError(f"{where}: tabular column {k[:40]!r} holds {len(v)} characters "
                            f"(at most {MAX_CELL_CHARS}); long text belongs under 'text'")
        row[k] = v
    return row


class Tabular(Modality):
    typed_cells = True  # CSV cells become numbers when a column holds numbers
    exportable = True
    limits = {"max_table_columns": 512}
    card_example = '"tabular": {"age": 41, "city": "Oslo"}'

    def columns(self, column: Any = None) -> list[str]:
        if isinstance(column, str) and "," in column:  # --column tabular=age,income,city
            return [c.strip() for c in column.split(",") if c.strip()]
        return super().columns(column)

    def from_row(self, row: Mapping[str, Any], column: Any = None) -> Any:
        cols = self.columns(column)
        if cols == [self.name]:  # a JSON object under "tabular"
            return row.get(self.name)
        value = {c: row.get(c) for c in cols}
        return value if any(v not in (None, "") for v in value.values()) else None

    def from_data(self, value: Any, root: Any, where: str) -> Any:
        if isinstance(value, str):  # a CSV cell holding a JSON object
            try:
                value = json.loads(value)
            except ValueError:
                raise DataError(f"{where}: the 'tabular' column holds text, not a JSON object "
                                f"of columns; name the columns with --column tabular=a,b,c"
                                ) from None
        return check_row(value, where)

    def check(self, value: Any) -> str | None:
        if not isinstance(value, Mapping) or not value:
            return "empty tabular row"
        if all(v is None or v == "" for v in value.values()):
            return "every tabular column is missing"
        return None

    def length(self, value: Any) -> float:
        return float(len(value)) if isinstance(value, Mapping) else 0.0

    def digest(self, value: Any) -> bytes:
        return json.dumps(value, sort_keys=True, default=str).encode()

    def describe(self, values: Sequence[Any]) -> dict[str, Any] | None:
        """Each column's kind (numeric when every present value is a number), its missing
        share, and its range or number of distinct values."""
        cols: dict[str, list[Any]] = {}
        for v in values:
            for k, x in v.items():
                cols.setdefault(k, []).append(x)
        out: dict[str, Any] = {}
        for k in sorted(cols)[:100]:
            xs = [x for x in cols[k] if x not in (None, "")]
            missing = 1 - len(xs) / len(values) if values else 0.0
            if xs and all(isinstance(x, (int, float)) for x in xs):
                out[k] = {"kind": "numeric", "missing": round(missing, 4),
                          "min": min(xs), "max": max(xs)}
            else:
                out[k] = {"kind": "categorical", "missing": round(missing, 4),
                          "distinct": len({str(x) for x in xs})}
        return {"rows": len(values), "columns": sorted(cols)[:100], "kinds": out}

    def from_request(self, value: Any, where: str, limits: Any) -> Any:
        if not isinstance(value, Mapping):
            raise RequestError(f"{where} must be an object of column -> value")
        if len(value) > limits.max_table_columns:
            raise RequestError(f"{where} has {len(value)} columns; the limit is "
                               f"{limits.max_table_columns:g} (ZOO_SERVE_MAX_TABLE_COLUMNS)",
                               413)
        try:
            return check_row(value, where)
        except DataError as e:
            raise RequestError(str(e)) from None

    def request_schema(self) -> dict[str, Any]:
        return {"type": "object", "description": "tabular: column -> number, string or null",
                "additionalProperties": {"type": ["number", "string", "null"]},
                "example": {"age": 41, "income": 52.5, "city": "Oslo"}}

    def explain_units(self, value: Any, max_units: int) -> list[dict[str, Any]]:
        """``zoo explain``: each column is a unit (the first ``max_units`` columns)."""
        return [{"column": c} for c in list(value)[:max_units]]

    def explain_ablate(self, value: Any, units: Sequence[dict[str, Any]],
                       keep: Sequence[bool]) -> Any:
        """The row with the removed columns missing (null), as the encoder reads a gap;
        None (no row) when every column is removed."""
        if not any(keep):
            return None
        gone = {u["column"] for u, k in zip(units, keep) if not k}
        return {c: (None if c in gone else v) for c, v in value.items()}

    def samples(self) -> list[Any]:
        return [{"age": 41, "income": 52.5, "city": "Oslo"},
                {"age": 23, "income": None, "city": "Lima"},
                {"age": 35, "income": 18.0, "city": "Pune"}]
