"""Data lifecycle tools: check, clean, pseudo-label, and feedback back into a manifest."""
from __future__ import annotations

import base64
import hashlib
import json
from collections import Counter
from pathlib import Path
from typing import Any, Sequence

from zoo.errors import DataError
from zoo.data.check import example_problem
from zoo.data.manifest import MODALITY_KEYS

__all__ = ["check_manifest", "clean_manifest", "label_manifest", "export_feedback"]


def _is_jsonl(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() in (".jsonl", ".ndjson", "")


def _records(path: Path, columns: dict[str, str] | None = None
             ) -> list[tuple[int, str, dict[str, Any] | None, str | None]]:
    """``(line, raw text, row or None, problem or None)`` for every row of ``path``: JSONL
    line by line (a malformed line is kept as a problem); any other format zoo reads (CSV,
    TSV, Parquet, an ImageFolder tree or audiofolder, a datasets folder) through
    :func:`zoo.data.formats.read_any`, its bad rows kept as problems too."""
    if not path.exists():
        raise DataError(f"data not found: {path}")
    if _is_jsonl(path) and not columns:
        out = []
        for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except ValueError:
                obj = None
            ok = isinstance(obj, dict)
            out.append((i, line, obj if ok else None, None if ok else "malformed JSON line"))
        return out
    from zoo.data.formats import read_any

    errors: list[tuple[int, str]] = []
    examples = read_any(path, columns=columns, on_bad_data="skip", errors=errors)[0]
    out = [(line, "", None, msg.split(": ", 1)[-1] if msg.startswith(str(path)) else msg)
           for line, msg in errors]
    for ex in examples:
        obj = {**ex.inputs, **ex.targets}
        out.append((ex.line, json.dumps(obj, default=str), obj, None))
    return sorted(out, key=lambda r: r[0])


def _content_key(obj: dict[str, Any], root: Path) -> str:
    """A hash of what the example is: text as is, files by their bytes."""
    h = hashlib.sha256()
    for k in MODALITY_KEYS:
        v = obj.get(k)
        if v is None:
            continue
        h.update(k.encode())
        if k == "text":
            h.update(str(v).strip().encode())
        elif not isinstance(v, str):  # embedded (a datasets Image/Audio): its bytes
            h.update(v.tobytes() if hasattr(v, "tobytes") else
                     v.getvalue() if hasattr(v, "getvalue") else repr(v).encode())
        else:
            p = root / v
            h.update(p.read_bytes() if p.is_file() else str(p).encode())
    return h.hexdigest()


def _inspect(path: Path, labels: Sequence[str] | None = None,
             columns: dict[str, str] | None = None) -> tuple[list[dict], dict]:
    """Every line with its problems (None when fine) and the data set's statistics."""
    root = path.parent if path.is_file() else path
    rows: list[dict] = []
    seen: dict[str, int] = {}
    stats: dict[str, Any] = {"lines": 0, "labels": Counter(), "image_sizes": Counter(),
                             "audio_seconds": [], "sample_rates": Counter()}
    for lineno, line, obj, problem in _records(path, columns):
        stats["lines"] += 1
        row = {"line": lineno, "raw": line, "problem": problem}
        rows.append(row)
        if obj is None:
            continue
        row["obj"] = obj
        inputs = {k: (str(root / obj[k]) if k != "text" and isinstance(obj[k], str) else obj[k])
                  for k in MODALITY_KEYS if obj.get(k) is not None}
        if not inputs:
            row["problem"] = "no input (text, image or audio)"
            continue
        problem = example_problem(inputs)
        if problem:
            row["problem"] = problem.replace(str(root) + "/", "")
            continue
        label = obj.get("label")
        for lab in (label if isinstance(label, list) else [label] if label is not None else []):
            if labels is not None and str(lab) not in labels:
                row["problem"] = f"unknown label {lab!r}"
            stats["labels"][str(lab)] += 1
        if row["problem"]:
            continue
        key = _content_key(obj, root)
        if key in seen:
            row["problem"] = f"duplicate of line {seen[key]}"
            continue
        seen[key] = lineno
        if isinstance(inputs.get("image"), str):
            from PIL import Image

            with Image.open(inputs["image"]) as im:
                stats["image_sizes"][f"{im.width}x{im.height}"] += 1
        if isinstance(inputs.get("audio"), str):
            import soundfile as sf

            info = sf.info(inputs["audio"])
            stats["audio_seconds"].append(info.frames / info.samplerate)
            stats["sample_rates"][info.samplerate] += 1
    return rows, stats


def check_manifest(path: str | Path, *, labels: Sequence[str] | None = None,
                   plot: str | Path | None = None,
                   columns: dict[str, str] | None = None) -> dict[str, Any]:
    """A report: problems by line, class balance, image sizes, audio durations and rates.
    ``path`` is any data zoo reads (JSONL, CSV/TSV, Parquet, a folder, a datasets folder)."""
    path = Path(path)
    rows, stats = _inspect(path, labels, columns)
    problems = [{"line": r["line"], "problem": r["problem"]} for r in rows if r["problem"]]
    secs = sorted(stats["audio_seconds"])
    report = {
        "manifest": str(path), "lines": stats["lines"], "ok": stats["lines"] - len(problems),
        "problems": problems,
        "problem_counts": dict(Counter(p["problem"].split(":")[0].split(" of line")[0]
                                       for p in problems)),
        "labels": dict(sorted(stats["labels"].items())),
        "image_sizes": dict(stats["image_sizes"].most_common(10)),
        "audio": ({"n": len(secs), "min_s": round(secs[0], 3), "median_s":
                   round(secs[len(secs) // 2], 3), "max_s": round(secs[-1], 3),
                   "sample_rates": {str(k): v for k, v in stats["sample_rates"].items()}}
                  if secs else None),
    }
    if labels:
        report["missing_labels"] = [lab for lab in labels if lab not in stats["labels"]]
    if plot and stats["labels"]:
        _plot_labels(stats["labels"], Path(plot), path.name)
        report["plot"] = str(plot)
    return report


def _plot_labels(counts: Counter, out: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    items = sorted(counts.items())
    fig, ax = plt.subplots(figsize=(max(4, 0.5 * len(items) + 2), 3.2))
    ax.bar([k for k, _ in items], [v for _, v in items], color="C0")
    ax.set_title(f"label distribution: {title}")
    ax.set_ylabel("examples")
    plt.setp(ax.get_xticklabels(), rotation=45, ha="right")
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=100)
    plt.close(fig)


def clean_manifest(path: str | Path, out: str | Path, *, labels: Sequence[str] | None = None,
                   columns: dict[str, str] | None = None) -> dict[str, Any]:
    """Write the good lines (paths rewritten relative to ``out``) and ``<out>.dropped.jsonl``
    with each dropped line and why. Nothing is deleted from disk."""
    path, out = Path(path), Path(out)
    rows, _ = _inspect(path, labels, columns)
    root = path.parent if path.is_file() else path
    out.parent.mkdir(parents=True, exist_ok=True)
    kept, dropped = [], []
    for r in rows:
        if r["problem"]:
            dropped.append({"line": r["line"], "reason": r["problem"], "content": r["raw"]})
            continue
        obj = dict(r["obj"])
        for k in ("image", "audio"):
            if isinstance(obj.get(k), str):
                obj[k] = _relative(root / obj[k], out.parent)
            elif obj.get(k) is not None:
                dropped.append({"line": r["line"], "reason": f"embedded {k}: clean writes "
                                f"JSONL with file paths; export the files first",
                                "content": r["raw"]})
                break
        else:
            kept.append(json.dumps(obj))
    out.write_text("".join(x + "\n" for x in kept))
    log = out.with_suffix(".dropped.jsonl")
    log.write_text("".join(json.dumps(d) + "\n" for d in dropped))
    return {"kept": len(kept), "dropped": len(dropped), "out": str(out), "log": str(log)}


def _relative(target: Path, base: Path) -> str:
    import os

    return os.path.relpath(target.resolve(), base.resolve())


def label_manifest(model: Any, data: str | Path, out: str | Path, *,
                   min_confidence: float = 0.0, batch_size: int = 32) -> dict[str, Any]:
    """Pseudo-label ``data`` with ``model``: confident items go to ``out`` with ``label`` and
    ``confidence``; the rest to ``<out stem>.review.jsonl`` for a person to check."""
    from zoo.io.hub import load
    from zoo.data.manifest import read_manifest

    if isinstance(model, (str, Path)):
        model = load(model)
    if model.task != "classification":
        raise DataError(f"pseudo-labelling needs a classification model, not {model.task}")
    data, out = Path(data), Path(out)
    from zoo.data.check import example_problem

    examples, unreadable = [], []
    for ex in read_manifest(data):
        problem = example_problem({k: (str(data.parent / v) if k != "text" and
                                       isinstance(v, str) else v)
                                   for k, v in ex.inputs.items()})
        (unreadable if problem else examples).append((ex, problem))
    examples = [ex for ex, _ in examples]
    preds = model.predict([ex.inputs for ex in examples], batch_size=batch_size) \
        if examples else []
    out.parent.mkdir(parents=True, exist_ok=True)
    review = out.with_name(out.stem + ".review.jsonl")
    sure, unsure = [], []
    for ex, p in zip(examples, preds):
        obj = {k: v for k, v in ex.raw.items() if k not in ("label", "confidence")}
        for k in ("image", "audio"):
            if isinstance(obj.get(k), str):
                obj[k] = _relative(data.parent / obj[k], out.parent)
        obj["label"], obj["confidence"] = p["label"], round(float(
            max(p["score"]) if isinstance(p["score"], list) and p["score"] else
            p["score"] if not isinstance(p["score"], list) else 0.0), 6)
        (sure if obj["confidence"] >= min_confidence else unsure).append(json.dumps(obj))
    for ex, problem in unreadable:  # a person looks at these too: why is in the line
        obj = {k: v for k, v in ex.raw.items() if k not in ("label", "confidence")}
        for k in ("image", "audio"):
            if isinstance(obj.get(k), str):
                obj[k] = _relative(data.parent / obj[k], out.parent)
        unsure.append(json.dumps({**obj, "problem": problem.replace(str(data.parent) + "/",
                                                                    "")}))
    out.write_text("".join(x + "\n" for x in sure))
    review.write_text("".join(x + "\n" for x in unsure))
    return {"labelled": len(sure), "review": len(unsure), "unreadable": len(unreadable),
            "out": str(out), "review_file": str(review)}


def export_feedback(db: str | Path, out: str | Path) -> dict[str, Any]:
    """One manifest line per feedback row: the input (base64 media written to files beside
    the manifest) with the correction as its target (``label`` or ``transcript``)."""
    from zoo.serve.app import FeedbackStore

    if not Path(db).is_file():
        raise DataError(f"feedback database not found: {db}")
    rows = FeedbackStore(db).rows()
    out = Path(out)
    media = out.parent / f"{out.stem}-media"
    lines, skipped = [], []
    for r in rows:
        try:
            lines.append(_feedback_line(r, media))
        except Exception as e:  # noqa: BLE001 - an old or hand-edited row: report, go on
            skipped.append({"feedback_id": r.get("id"), "reason": f"{type(e).__name__}: "
                            f"{str(e).splitlines()[0] if str(e) else ''}"[:200]})
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("".join(x + "\n" for x in lines))
    result = {"rows": len(rows), "exported": len(lines), "out": str(out)}
    if skipped:
        log = out.with_suffix(".skipped.jsonl")
        log.write_text("".join(json.dumps(x) + "\n" for x in skipped))
        result.update(skipped=len(skipped), log=str(log))
    return result


def _feedback_line(r: dict[str, Any], media: Path) -> str:
    """One manifest line for one feedback row (media written beside it)."""
    obj: dict[str, Any] = {}
    for k, v in (r["input"] or {}).items():
        if k == "text":
            obj["text"] = v
        elif k in ("image", "audio") and isinstance(v, str):
            data = base64.b64decode(v.split(",", 1)[1] if v.startswith("data:") else v)
            ext = _sniff(data, k)
            media.mkdir(parents=True, exist_ok=True)
            f = media / f"{r['id']:06d}-{k}{ext}"
            f.write_bytes(data)
            obj[k] = f"{media.name}/{f.name}"
    c = r["correction"]
    if isinstance(c, dict):
        obj.update({k: v for k, v in c.items() if k in ("label", "transcript", "boxes",
                                                      "labels")})
    elif "audio" in obj and "image" not in obj and "text" not in obj:
        obj["transcript"] = c
    else:
        obj["label"] = c
    obj["feedback_id"] = r["id"]
    return json.dumps(obj)


def _sniff(data: bytes, kind: str) -> str:
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return ".png"
    if data[:3] == b"\xff\xd8\xff":
        return ".jpg"
    if data[:4] == b"RIFF":
        return ".wav"
    if data[:4] == b"fLaC":
        return ".flac"
    if data[:4] == b"OggS":
        return ".ogg"
    return ".bin" if kind == "image" else ".wav"
