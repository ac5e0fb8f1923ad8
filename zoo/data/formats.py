"""Data in the shapes users have it: ImageFolder-style trees (class sub-folders of files of
any file-based modality), audiofolders / imagefolders (``metadata.csv``), CSV / TSV /
Parquet tables, JSONL manifests, formats a task knows (COCO JSON for detection), Hugging
Face ``datasets`` (saved folders or objects), torch datasets and iterables of dicts ->
``(examples, categories or None, name)``.

Each registered modality claims its columns (``text``, ``image``, ... or those
``columns`` names; file paths relative to the file), every other column is a target;
``columns`` maps zoo's keys to the data's column names, e.g. ``{"text": "review", "label":
"sentiment"}``. Heavy libraries are imported on use."""
from __future__ import annotations

import csv
import io
import os
from pathlib import Path
from typing import Any, Callable, Iterable

from zoo.base.example import Example
from zoo.data.manifest import read_manifest
from zoo.data.rows import check_columns, example_from_row, modality_columns
from zoo.errors import DataError
from zoo.registry import get_registry, modalities

__all__ = ["read_any", "read_by_task", "modality_of_file"]

_TABLE_SUFFIXES = {".csv": ",", ".tsv": "\t", ".txt": None}


def modality_of_file(path: str | Path) -> str | None:
    """The file-based modality whose suffixes include ``path``'s (None: no such)."""
    suffix = Path(path).suffix.lower()
    return next((name for name, m in modalities().items()
                 if m.file_based and suffix in m.suffixes), None)


def _collect(rows: Iterable[tuple[Any, Any]], make: Callable[[Any, Any], Example],
             on_bad_data: str, errors: list | None) -> list[Example]:
    out = []
    for line, row in rows:
        try:
            out.append(make(row, line))
        except DataError as e:
            if on_bad_data != "skip":
                raise
            if errors is not None:
                errors.append((line, str(e)))
    return out


def _typed(values: list[str]) -> list[Any]:
    """A CSV column's values as ints (or floats) when every non-empty one is one, as pandas
    would read them; else unchanged."""
    for kind in (int, float):
        try:
            return [kind(v) if v != "" else None for v in values]
        except ValueError:
            pass
    return values


def _untyped_columns(columns: dict | None) -> set[str]:
    """Columns of modalities that read cells as strings (text, paths): never typed."""
    reg = modalities()
    return {c for name, cols in modality_columns(columns).items()
            if not reg[name].typed_cells for c in cols}


def _confined(ex: Example, root: Path, where: str) -> Example:
    """A folder data set names only its own files: each file-based input must resolve
    (``..``, absolute paths and symlinks followed) inside ``root``."""
    base = root.resolve()
    reg = modalities()
    for name, value in ex.inputs.items():
        if reg[name].file_based and isinstance(value, (str, Path)):
            real = Path(value).resolve()
            if real != base and base not in real.parents:
                raise DataError(f"{where}: {name} file {str(value)[:120]!r} is outside the data "
                                f"set folder {root} (an absolute path, '..' or a link out); a "
                                f"folder data set uses only its own files: copy it in")
    return ex


def _read_table(path: Path, columns, on_bad_data, errors, *,
                confine: Path | None = None) -> list[Example]:
    delim = _TABLE_SUFFIXES.get(path.suffix.lower())
    with open(path, encoding="utf-8-sig", newline="") as f:
        text = f.read()
    if delim is None:
        try:
            delim = csv.Sniffer().sniff(text[:8192], delimiters=",\t;|").delimiter
        except csv.Error:
            raise DataError(f"{path}: cannot tell the delimiter; save it as .csv or .tsv") from None
    reader = csv.reader(text.splitlines(keepends=True), delimiter=delim)
    header = next(reader, None)
    if not header:
        raise DataError(f"{path}: empty file; a header row is expected")
    header = [h.strip() for h in header]
    check_columns(columns, header, str(path))
    rows, prev = [], reader.line_num
    for cells in reader:
        start, prev = prev + 1, reader.line_num
        if cells:
            rows.append((start, cells))
    good = [c for _, c in rows if len(c) == len(header)]
    keep = _untyped_columns(columns)  # text and paths stay strings, other columns typed
    typed = iter(zip(*[c if h in keep else _typed(list(c))
                       for h, c in zip(header, zip(*good))]))

    def make(cells, line):
        if len(cells) != len(header):
            raise DataError(f"{path}:{line}: {len(cells)} fields, the header has {len(header)}"
                            f" (a stray {delim!r} or an unquoted one?)")
        row = dict(zip(header, next(typed)))
        ex = example_from_row(row, line, path.parent, f"{path}:{line}", columns)
        return ex if confine is None else _confined(ex, confine, f"{path}:{line}")

    return _collect(rows, make, on_bad_data, errors)


def _read_parquet(path: Path, columns, on_bad_data, errors) -> list[Example]:
    try:  # pandas reads Parquet through pyarrow too
        import pyarrow.parquet as pq
    except ImportError:
        raise DataError(f"{path}: reading Parquet needs pyarrow: pip install pyarrow") from None
    table = pq.read_table(path)
    check_columns(columns, table.column_names, str(path))
    return _collect(enumerate(table.to_pylist(), 1),
                    lambda r, i: example_from_row(r, i, path.parent, f"{path}: row {i}",
                                                  columns), on_bad_data, errors)


def _read_jsonl(path: Path, columns, on_bad_data, errors) -> list[Example]:
    with open(path, encoding="utf-8", errors="replace") as f:
        head = next((ln for ln in f if ln.strip()), "").strip()
    if head[:1] not in ("", "{", "[", '"') and any(d in head for d in ",\t;"):
        raise DataError(f"{path}: looks like CSV, not JSON lines (first line: {head[:60]!r}); "
                        f"rename it to {path.stem}.csv or pass it as .csv")
    if columns:
        import json

        with open(path, encoding="utf-8") as f:
            first = next((json.loads(ln) for ln in f if ln.strip()), {})
        if isinstance(first, dict):
            check_columns(columns, first, f"{path}:1")
    return read_manifest(path, on_error=on_bad_data, errors=errors, columns=columns)


def _read_metadata(meta: Path, columns, on_bad_data, errors) -> list[Example]:
    """A Hugging Face audiofolder / imagefolder: ``file_name`` names each file; the file's
    suffix says its modality."""
    with open(meta, encoding="utf-8-sig", newline="") as f:
        first = next(csv.DictReader(f), None) or {}
    columns = dict(columns or {})
    file_mods = [n for n, m in modalities().items() if m.file_based]
    col = str(next((columns[n] for n in file_mods if n in columns), "file_name"))
    kind = modality_of_file(first.get(col) or "")
    if kind is None:
        raise DataError(f"{meta}: {col!r} of the first row ({first.get(col)!r}) has a suffix no "
                        f"modality reads (see `zoo list --kind modality`)")
    mapped = {kind: col, **columns}
    if "transcription" in first and "transcript" not in first \
            and "transcript" not in mapped:  # the audiofolder convention's column name
        mapped["transcript"] = "transcription"
    return _read_table(meta, mapped, on_bad_data, errors, confine=meta.parent)


def _read_folder(root: Path, columns, on_bad_data, errors):
    if (root / "metadata.csv").is_file():
        return _read_metadata(root / "metadata.csv", columns, on_bad_data, errors), None
    classes = sorted(d.name for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    samples = [(os.path.abspath(p), kind, c) for c in classes
               for p in sorted((root / c).rglob("*"))
               if p.is_file() and (kind := modality_of_file(p)) is not None]
    if not samples:
        raise DataError(f"{root}: no files in class sub-folders (expected {root}/<class>/*.jpg"
                        f" or .wav; for splits, pass one, e.g. {root}/train)")
    used = sorted({c for _, _, c in samples})
    rows = ((i + 1, {kind: p, "label": c}) for i, (p, kind, c) in enumerate(samples))
    return _collect(rows, lambda r, i: _confined(example_from_row(r, i, None, f"{root}: file {i}"),
                                                 root, f"{root}: file {i}"),
                    on_bad_data, errors), used


def _hf_value(v: Any, path_col: bool, root: Path | None) -> Any:
    """A datasets cell: an undecoded Image / Audio ({"path", "bytes"}) as its file or its
    bytes (file-like), a relative path resolved against ``root``."""
    if isinstance(v, dict) and set(v) >= {"path", "bytes"}:
        p = v.get("path")
        for cand in ([p, str(root / p)] if p and root else [p] if p else []):
            if os.path.isfile(cand):
                return os.path.abspath(cand)
        if v.get("bytes"):  # embedded: the file's bytes, read like a file
            return io.BytesIO(v["bytes"])
    if isinstance(v, str) and root is not None and path_col:
        return os.path.abspath(root / v)
    return v


def _read_hf(ds: Any, columns, on_bad_data, errors, where: str, root: Path | None = None):
    if type(ds).__name__ in ("DatasetDict", "IterableDatasetDict"):
        raise DataError(f"{where}: a DatasetDict with splits {', '.join(ds)}; pass one, "
                        f"e.g. ds['{next(iter(ds), 'train')}']")
    feats = dict(getattr(ds, "features", None) or {})
    check_columns(columns, feats, where)
    try:  # undecoded: Image/Audio as {"path", "bytes"}, ClassLabel as ints
        records = ds.with_format("arrow")[:].to_pylist() if len(ds) else []
    except (AttributeError, TypeError):  # an IterableDataset: decoded values
        records = ds
    labels = {n: f if hasattr(f, "names") else f.feature for n, f in feats.items()
              if hasattr(f, "names") or hasattr(getattr(f, "feature", None), "names")}
    label_col = str((columns or {}).get("label", "label"))
    cats = labels.get(label_col) or next(iter(labels.values()), None)
    reg = modalities()
    path_cols = {c for n, cols in modality_columns(columns).items() if reg[n].file_based
                 for c in cols}

    def value(name: str, v: Any) -> Any:
        if name in labels and v is not None:
            names = labels[name].names
            return [names[i] for i in v] if isinstance(v, list) else names[v]
        return _hf_value(v, name in path_cols, root)

    rows = ((i, {k: value(k, v) for k, v in r.items()}) for i, r in enumerate(records, 1))
    return (_collect(rows, lambda r, i: example_from_row(r, i, None, f"{where}: row {i}",
                                                         columns), on_bad_data, errors),
            list(cats.names) if cats is not None else None)


def _read_objects(data: Any, columns, on_bad_data, errors):
    """A torch map-style dataset, torchvision ImageFolder / DatasetFolder or iterable of dicts."""
    name = "data" if isinstance(data, (list, tuple)) else type(data).__name__
    if hasattr(data, "classes") and hasattr(data, "samples"):
        classes = list(data.classes)
        rows = ((i + 1, {modality_of_file(p) or "file": os.path.abspath(p),
                         "label": classes[int(c)]}) for i, (p, c) in enumerate(data.samples))
        root = getattr(data, "root", None)
        return (_collect(rows, lambda r, i: example_from_row(r, i, None, f"{name}: sample {i}"),
                         on_bad_data, errors), classes, Path(root).name if root else name)
    items = (data[i] for i in range(len(data))) if hasattr(data, "__getitem__") and \
        hasattr(data, "__len__") and not isinstance(data, dict) else data
    positional = bool(columns) and all(str(v).lstrip("-").isdigit() for v in columns.values())

    def make(x: Any, i: int) -> Example:
        if isinstance(x, Example):
            return x
        if isinstance(x, (tuple, list)) and positional:
            x = {ours: x[int(pos)] for ours, pos in columns.items()}
            return example_from_row(x, i, None, f"{name} item {i - 1}", require_input=False)
        if isinstance(x, dict):
            return example_from_row(x, i, None, f"{name} item {i - 1}", columns,
                                    require_input=False)
        what = type(x).__name__ + (f" of {len(x)}" if isinstance(x, (tuple, list)) else "")
        raise DataError(f"{name} item {i - 1}: expected a dict, got a {what}; pass columns="
                        f"{{'image': 0, 'label': 1}} to name its positions, or yield dicts "
                        f"like {{'image': path, 'label': ...}}")

    return _collect(enumerate(items, 1), make, on_bad_data, errors), None, name


def _datasets() -> Any:
    try:
        import datasets
    except ImportError:
        raise DataError("reading Hugging Face datasets needs datasets: pip install datasets"
                        ) from None
    return datasets


def _read_path(p: Path, columns, on_bad_data, errors):
    if p.is_dir():
        if any((p / f).is_file() for f in ("dataset_info.json", "state.json",
                                           "dataset_dict.json")):
            return (*_read_hf(_datasets().load_from_disk(str(p)), columns, on_bad_data,
                              errors, str(p), p), p.name)
        return (*_read_folder(p, columns, on_bad_data, errors), p.name)
    if not p.is_file():
        raise DataError(f"data not found: {p}")
    found = read_by_task(p)
    if found is not None:
        return (*found, p.stem)
    suffix = p.suffix.lower()
    if suffix == ".arrow":  # a datasets cache / save_to_disk shard: keep its features
        try:
            ds = _datasets().Dataset.from_file(str(p))
        except DataError:
            raise
        except Exception as e:  # noqa: BLE001 - pyarrow raises many kinds
            raise DataError(f"{p}: not a readable Arrow file ({type(e).__name__}: "
                            f"{str(e).splitlines()[0] if str(e) else ''})") from None
        return (*_read_hf(ds, columns, on_bad_data, errors, str(p), p.parent), p.stem)
    if suffix == ".json":
        raise DataError(f"{p}: no task reads this .json file (detection reads COCO JSON; "
                        f"one example a line goes in a .jsonl file)")
    reader = _read_table if suffix in _TABLE_SUFFIXES else \
        _read_parquet if suffix in (".parquet", ".pq") else _read_jsonl
    return reader(p, columns, on_bad_data, errors), None, p.stem


def read_by_task(path: Path) -> tuple[list[Example], list[str] | None] | None:
    """A file in a format only a registered task knows (COCO JSON, CoNLL, tagging JSONL):
    its examples and categories from the first task whose ``read_file`` takes it, else None."""
    from zoo.registry import get_task

    for spec in get_registry().all("task"):
        found = get_task(spec.qualified_name).read_file(path)
        if found is not None:
            return found
    return None


def read_any(data: Any, *, columns: dict[str, Any] | None = None, on_bad_data: str = "fail",
             errors: list[tuple[Any, str]] | None = None
             ) -> tuple[list[Example], list[str] | None, str]:
    """Examples of ``data`` in any supported shape, its categories (or None) and a name.
    ``on_bad_data="skip"`` drops bad rows, appending ``(line, message)`` to ``errors``."""
    if isinstance(data, (str, os.PathLike)):
        return _read_path(Path(data).absolute(), columns, on_bad_data, errors)
    if type(data).__module__.split(".")[0] == "datasets":
        info = getattr(data, "info", None)
        name = getattr(info, "dataset_name", None) or "data"
        return (*_read_hf(data, columns, on_bad_data, errors, name), name)
    return _read_objects(data, columns, on_bad_data, errors)
