"""Data in the shapes users have it: ImageFolder trees, audiofolders (``metadata.csv``), CSV /
TSV / Parquet tables, JSONL manifests, Hugging Face ``datasets`` (saved folders or objects),
torch datasets and iterables of dicts -> ``(examples, categories or None, name)``.

Columns named ``text``/``image``/``audio`` are inputs (image/audio paths relative to the
file), every other column a target; ``columns`` maps our keys to the data's column names,
e.g. ``{"text": "review", "label": "sentiment"}``. Heavy libraries are imported on use."""
from __future__ import annotations

import csv
import difflib
import os
from pathlib import Path
from typing import Any, Callable, Iterable

from zoo.errors import DataError
from zoo.data.manifest import MODALITY_KEYS, Example, json_object, read_manifest

__all__ = ["read_any", "IMAGE_EXTS", "AUDIO_EXTS"]

IMAGE_EXTS = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm"}
AUDIO_EXTS = {".wav", ".flac", ".mp3", ".ogg", ".opus", ".m4a", ".aac", ".aiff", ".aif"}
_PATH_KEYS = ("image", "audio")
_TABLE_SUFFIXES = {".csv": ",", ".tsv": "\t", ".txt": None}


def _did_you_mean(name: str, options: Iterable[str]) -> str:
    close = difflib.get_close_matches(name, [str(o) for o in options], n=1, cutoff=0.5)
    return f"; did you mean {close[0]!r}?" if close else ""


def _check_columns(columns: dict[str, str] | None, present: Iterable[str], where: str) -> None:
    present = list(present)
    for ours, theirs in (columns or {}).items():
        if str(theirs) not in present:
            raise DataError(f"{where}: no column {theirs!r} (given for {ours!r} in columns); "
                            f"columns: {', '.join(present) or '(none)'}"
                            f"{_did_you_mean(str(theirs), present)}")


def _data_cols(columns: dict[str, str] | None, keys: Iterable[str]) -> set[str]:
    """The data's names of our ``keys`` (after ``columns``)."""
    columns = columns or {}
    return {str(c) for k, c in columns.items() if k in keys} | \
        (set(keys) - {str(c) for c in columns.values()} - set(columns))


def _rename(row: dict[str, Any], columns: dict[str, str] | None) -> dict[str, Any]:
    theirs = {str(v) for v in (columns or {}).values()}
    out = {k: v for k, v in row.items() if k not in theirs}
    return {**out, **{k: row[str(c)] for k, c in (columns or {}).items() if str(c) in row}}


def _example(row: dict[str, Any], line: int, root: Path | None, where: str) -> Example:
    """One example from a (renamed) row; ``root`` given: a file's row, paths resolved.
    ``where`` locates the row in messages (``file:line``)."""
    inputs = {k: row[k] for k in MODALITY_KEYS if row.get(k) not in (None, "")}
    for k in set(_PATH_KEYS) & set(inputs) if root is not None else ():
        if not isinstance(inputs[k], str):
            raise DataError(f"{where}: {k!r} must be a path relative to the file, "
                            f"got {type(inputs[k]).__name__}")
        inputs[k] = str(root / inputs[k])
    if not inputs and root is not None:
        raise DataError(f"{where}: no input (expected one of {', '.join(MODALITY_KEYS)}"
                        f"; map yours with columns={{'text': ...}})")
    targets = {k: v for k, v in row.items() if k not in MODALITY_KEYS}
    return Example(line, inputs, targets, row)


def _collect(rows: Iterable[tuple[int, Any]], make: Callable[[Any, int], Example],
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


def _read_table(path: Path, columns, on_bad_data, errors) -> list[Example]:
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
    _check_columns(columns, header, str(path))
    rows, prev = [], reader.line_num
    for cells in reader:
        start, prev = prev + 1, reader.line_num
        if cells:
            rows.append((start, cells))
    good = [c for _, c in rows if len(c) == len(header)]
    keep = _data_cols(columns, MODALITY_KEYS)  # inputs stay strings, targets typed
    typed = iter(zip(*[c if h in keep else _typed(list(c))
                       for h, c in zip(header, zip(*good))]))

    def make(cells, line):
        if len(cells) != len(header):
            raise DataError(f"{path}:{line}: {len(cells)} fields, the header has {len(header)}"
                            f" (a stray {delim!r} or an unquoted one?)")
        row = dict(zip(header, next(typed)))
        return _example(_rename(row, columns), line, path.parent, f"{path}:{line}")

    return _collect(rows, make, on_bad_data, errors)


def _read_parquet(path: Path, columns, on_bad_data, errors) -> list[Example]:
    try:  # pandas reads Parquet through pyarrow too
        import pyarrow.parquet as pq
    except ImportError:
        raise DataError(f"{path}: reading Parquet needs pyarrow: pip install pyarrow") from None
    table = pq.read_table(path)
    _check_columns(columns, table.column_names, str(path))
    return _collect(enumerate(table.to_pylist(), 1),
                    lambda r, i: _example(_rename(r, columns), i, path.parent, f"{path}: row {i}"),
                    on_bad_data, errors)


def _read_jsonl(path: Path, columns, on_bad_data, errors) -> list[Example]:
    with open(path, encoding="utf-8", errors="replace") as f:
        head = next((ln for ln in f if ln.strip()), "").strip()
    if head[:1] not in ("", "{", "[", '"') and any(d in head for d in ",\t;"):
        raise DataError(f"{path}: looks like CSV, not JSON lines (first line: {head[:60]!r}); "
                        f"rename it to {path.stem}.csv or pass it as .csv")
    if not columns:
        return read_manifest(path, on_error=on_bad_data, errors=errors)
    with open(path, encoding="utf-8") as f:
        lines = [(n, ln) for n, ln in enumerate(f, 1) if ln.strip()]

    def make(line: str, n: int) -> Example:
        obj = json_object(line, n, str(path))
        _check_columns(columns, obj, f"{path}:{n}")
        return _example(_rename(obj, columns), n, path.parent, f"{path}:{n}")

    return _collect(lines, make, on_bad_data, errors)


def _read_metadata(meta: Path, columns, on_bad_data, errors) -> list[Example]:
    """An HF audiofolder (or imagefolder): ``file_name`` names the audio (image) file."""
    with open(meta, encoding="utf-8-sig", newline="") as f:
        first = next(csv.DictReader(f), None) or {}
    col = str((columns or {}).get("audio", (columns or {}).get("image", "file_name")))
    kind = "image" if Path(first.get(col) or "").suffix.lower() in IMAGE_EXTS else "audio"
    mapped = {kind: col, **(columns or {})}
    if kind == "audio" and "transcription" in first and "transcript" not in first \
            and "transcript" not in mapped:  # the audiofolder convention's column name
        mapped["transcript"] = "transcription"
    return _read_table(meta, mapped, on_bad_data, errors)


def _read_folder(root: Path, columns, on_bad_data, errors):
    if (root / "metadata.csv").is_file():
        return _read_metadata(root / "metadata.csv", columns, on_bad_data, errors), None
    classes = sorted(d.name for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    samples = [(os.path.abspath(p), c) for c in classes for p in sorted((root / c).rglob("*"))
               if p.suffix.lower() in IMAGE_EXTS and p.is_file()]
    if not samples:
        raise DataError(f"{root}: no images in class sub-folders (expected {root}/<class>/*.jpg"
                        f"; for splits, pass one, e.g. {root}/train)")
    used = sorted({c for _, c in samples})
    rows = ((i + 1, {"image": p, "label": c}) for i, (p, c) in enumerate(samples))
    return _collect(rows, lambda r, i: _example(r, i, None, f"{root}: image {i}"),
                    on_bad_data, errors), used


def _read_hf(ds: Any, columns, on_bad_data, errors, where: str, root: Path | None = None):
    if type(ds).__name__ in ("DatasetDict", "IterableDatasetDict"):
        raise DataError(f"{where}: a DatasetDict with splits {', '.join(ds)}; pass one, "
                        f"e.g. ds['{next(iter(ds), 'train')}']")
    feats = dict(getattr(ds, "features", None) or {})
    _check_columns(columns, feats, where)
    try:  # undecoded: Image/Audio as {"path", "bytes"}, ClassLabel as ints
        records = ds.with_format("arrow")[:].to_pylist() if len(ds) else []
    except (AttributeError, TypeError):  # an IterableDataset: decoded values
        records = ds
    labels = {n: f if hasattr(f, "names") else f.feature for n, f in feats.items()
              if hasattr(f, "names") or hasattr(getattr(f, "feature", None), "names")}
    label_col = str((columns or {}).get("label", "label"))
    cats = labels.get(label_col) or next(iter(labels.values()), None)
    path_cols = _data_cols(columns, _PATH_KEYS)

    def value(name: str, v: Any) -> Any:
        if name in labels and v is not None:
            names = labels[name].names
            return [names[i] for i in v] if isinstance(v, list) else names[v]
        if isinstance(v, dict) and set(v) >= {"path", "bytes"}:  # undecoded Image/Audio
            p = v.get("path")
            for cand in ([p, str(root / p)] if p and root else [p] if p else []):
                if os.path.isfile(cand):
                    return os.path.abspath(cand)
            if v.get("bytes"):  # embedded: a PIL image, or the audio file's bytes
                import io
                if type(feats[name]).__name__ != "Image":
                    return io.BytesIO(v["bytes"])
                from PIL import Image
                return Image.open(io.BytesIO(v["bytes"]))
        if isinstance(v, str) and root is not None and name in path_cols:
            return os.path.abspath(root / v)
        return v

    rows = ((i, {k: value(k, v) for k, v in r.items()}) for i, r in enumerate(records, 1))
    return (_collect(rows, lambda r, i: _example(_rename(r, columns), i, None, f"{where}: row {i}"),
                     on_bad_data, errors), list(cats.names) if cats is not None else None)


def _read_objects(data: Any, columns, on_bad_data, errors):
    """A torch map-style dataset, torchvision ImageFolder / DatasetFolder or iterable of dicts."""
    name = "data" if isinstance(data, (list, tuple)) else type(data).__name__
    if hasattr(data, "classes") and hasattr(data, "samples"):
        classes = list(data.classes)
        rows = ((i + 1, {"image": os.path.abspath(p), "label": classes[int(c)]})
                for i, (p, c) in enumerate(data.samples))
        root = getattr(data, "root", None)
        return (_collect(rows, lambda r, i: _example(r, i, None, f"{name}: sample {i}"),
                         on_bad_data, errors), classes, Path(root).name if root else name)
    items = (data[i] for i in range(len(data))) if hasattr(data, "__getitem__") and \
        hasattr(data, "__len__") and not isinstance(data, dict) else data
    positional = bool(columns) and all(str(v).lstrip("-").isdigit() for v in columns.values())

    def make(x: Any, i: int) -> Example:
        if isinstance(x, Example):
            return x
        if isinstance(x, (tuple, list)) and positional:
            x = {ours: x[int(pos)] for ours, pos in columns.items()}
        elif isinstance(x, dict):
            x = _rename(x, columns)
        else:
            what = type(x).__name__ + (f" of {len(x)}" if isinstance(x, (tuple, list)) else "")
            raise DataError(f"{name} item {i - 1}: expected a dict, got a {what}; pass columns="
                            f"{{'image': 0, 'label': 1}} to name its positions, or yield dicts "
                            f"like {{'image': path, 'label': ...}}")
        inputs = {k: x[k] for k in MODALITY_KEYS if x.get(k) is not None}
        targets = {k: v for k, v in x.items() if k not in MODALITY_KEYS}
        return Example(i, inputs, targets, x)

    return _collect(enumerate(items, 1), make, on_bad_data, errors), None, name


def read_any(data: Any, *, columns: dict[str, str] | None = None, on_bad_data: str = "fail",
             errors: list[tuple[int, str]] | None = None
             ) -> tuple[list[Example], list[str] | None, str]:
    """Examples of ``data`` in any supported shape, its categories (or None) and a name.
    ``on_bad_data="skip"`` drops bad rows, appending ``(line, message)`` to ``errors``."""
    if isinstance(data, (str, os.PathLike)):
        p = Path(data).absolute()
        if p.is_dir():
            if (p / "dataset_info.json").is_file() or (p / "state.json").is_file() \
                    or (p / "dataset_dict.json").is_file():
                try:
                    import datasets
                except ImportError:
                    raise DataError(f"{p}: a Hugging Face datasets folder; reading it needs"
                                    " datasets: pip install datasets") from None
                return (*_read_hf(datasets.load_from_disk(str(p)), columns, on_bad_data,
                                  errors, str(p), p), p.name)
            return (*_read_folder(p, columns, on_bad_data, errors), p.name)
        if not p.is_file():
            raise DataError(f"data not found: {p}")
        suffix = p.suffix.lower()
        if suffix == ".arrow":  # a datasets cache / save_to_disk shard: keep its features
            try:
                import datasets
            except ImportError:
                raise DataError(f"{p}: an Arrow file; reading it needs datasets: "
                                "pip install datasets") from None
            try:
                ds = datasets.Dataset.from_file(str(p))
            except Exception as e:  # noqa: BLE001 - pyarrow raises many kinds
                raise DataError(f"{p}: not a readable Arrow file ({type(e).__name__}: "
                                f"{str(e).splitlines()[0] if str(e) else ''})") from None
            return (*_read_hf(ds, columns, on_bad_data, errors, str(p), p.parent), p.stem)
        if suffix == ".json":
            from zoo.data.coco import read_coco
            return (*read_coco(p), p.stem)
        reader = _read_table if suffix in _TABLE_SUFFIXES else \
            _read_parquet if suffix in (".parquet", ".pq") else _read_jsonl
        return reader(p, columns, on_bad_data, errors), None, p.stem
    if type(data).__module__.split(".")[0] == "datasets":
        info = getattr(data, "info", None)
        name = getattr(info, "dataset_name", None) or "data"
        return (*_read_hf(data, columns, on_bad_data, errors, name), name)
    return _read_objects(data, columns, on_bad_data, errors)
