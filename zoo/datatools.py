"""Data lifecycle tools: check, clean, pseudo-label, and feedback back into a manifest.

Every modality checks, describes and de-duplicates its own values; the task whose target
keys the data carries (``--task``, or the one whose keys most rows hold) checks the
targets, counts them and turns predictions into labels. Nothing here knows a modality or a
task by name."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Sequence

from zoo.base.example import Example
from zoo.data.check import example_problem
from zoo.data.rows import example_from_row
from zoo.errors import DataError, ZooError
from zoo.registry import get_registry, get_task, modalities

__all__ = ["check_manifest", "clean_manifest", "label_manifest", "export_feedback",
           "infer_task"]


def _is_jsonl(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() in (".jsonl", ".ndjson", "")


def _records(path: Path, columns: dict[str, Any] | None = None
             ) -> list[tuple[int, str, dict[str, Any] | None, str | None, Any]]:
    """``(line, raw text, row or None, problem or None, root)`` for every row of ``path``
    (``root``: the folder relative paths in the row point into): JSONL line by line (a
    malformed line is kept as a problem); any other format zoo reads (CSV, TSV, Parquet, an
    ImageFolder tree or audiofolder, a datasets folder, and a JSONL file a task reads in a
    format of its own) as training reads it, through :func:`zoo.data.formats.read_any`, its
    bad rows kept as problems too."""
    if not path.exists():
        raise DataError(f"data not found: {path}")
    from zoo.data.formats import read_any, read_by_task

    # a JSONL file a task reads in a format of its own is read by it, once, as training does
    claimed = read_by_task(path.absolute()) if _is_jsonl(path) and not columns else None
    if _is_jsonl(path) and not columns and claimed is None:
        out = []
        for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except ValueError:
                obj = None
            ok = isinstance(obj, dict)
            out.append((i, line, obj if ok else None, None if ok else "malformed JSON line",
                        path.parent))
        return out
    errors: list[tuple[Any, str]] = []
    examples = claimed[0] if claimed is not None else \
        read_any(path, columns=columns, on_bad_data="skip", errors=errors)[0]
    out = [(line, "", None, msg.split(": ", 1)[-1] if msg.startswith(str(path)) else msg,
            None) for line, msg in errors]
    for ex in examples:
        obj = {**ex.inputs, **ex.targets}
        out.append((ex.line, json.dumps(obj, default=str), obj, None, ex.root))
    return sorted(out, key=lambda r: (str(type(r[0])), r[0]))


def infer_task(rows: Sequence[dict[str, Any]]) -> Any:
    """The registered task whose target keys the most rows hold (more keys win a tie);
    when several tasks take the same keys (two tagging plugins' ``tags``), the one whose
    checks accept the most of the first rows. None when no task's keys are there."""
    scored = []
    for spec in get_registry().all("task"):
        if spec.targets:
            n = sum(all(k in r for k in spec.targets) for r in rows)
            if n:
                scored.append(((n, len(spec.targets)), spec))
    if not scored:
        return None
    top = max(key for key, _ in scored)
    tied = [get_task(spec.qualified_name) for key, spec in scored if key == top]
    if len(tied) == 1:
        return tied[0]
    return max(tied, key=lambda task: _accepted(task, rows[:200]))  # first wins a tie


def _accepted(task: Any, rows: Sequence[dict[str, Any]]) -> int:
    """How many rows ``task`` checks as good training targets."""
    n = 0
    for i, r in enumerate(rows):
        try:
            task.check_target({k: r[k] for k in task.targets if k in r}, f"row {i}", None, r)
            n += 1
        except Exception:  # noqa: BLE001 - any refusal counts against the task
            pass
    return n


def _digest(inputs: dict[str, Any]) -> str:
    """What the example is: every modality's value by its content."""
    reg = modalities()
    h = hashlib.sha256()
    for k in sorted(inputs):
        part = reg[k].digest(inputs[k])
        h.update(k.encode() + len(part).to_bytes(8, "little") + part)
    return h.hexdigest()


def _inspect(path: Path, labels: Sequence[str] | None, columns: dict[str, Any] | None,
             task: Any) -> tuple[list[dict], dict]:
    """Every row with its problem (None when fine), and what the good rows hold: inputs by
    modality and targets, for the statistics."""
    from zoo.data.rows import resolve_file_targets

    root = path.parent if path.is_file() else path
    records = _records(path, columns)
    if task is None:
        task = infer_task([r[2] for r in records if r[2] is not None])
    rows: list[dict] = []
    seen: dict[str, int] = {}
    good: dict[str, Any] = {"inputs": {}, "targets": [], "task": task}
    for lineno, line, obj, problem, folder in records:
        row = {"line": lineno, "raw": line, "problem": problem, "obj": obj}
        rows.append(row)
        if obj is None:
            continue
        try:  # a JSONL line's paths are relative to its file; other readers resolved them
            ex = example_from_row(obj, lineno, folder, f"line {lineno}")
            # the task's file targets (a mask) checked where training looks for them: in the
            # data file's folder; the line itself keeps them as written (zoo data clean)
            checked = Example(ex.line, ex.inputs, dict(ex.targets), ex.raw, ex.root)
            if task is not None and task.file_targets:
                resolve_file_targets([checked], task.file_targets)
        except DataError as e:
            row["problem"] = str(e).split(": ", 1)[-1]
            continue
        problem = example_problem(ex.inputs) or (task.target_problem(
            checked.targets, f"line {lineno}", labels, ex.inputs) if task is not None
            else None)
        if problem:
            row["problem"] = problem.replace(str(root) + "/", "").split(f"line {lineno}: ")[-1]
            continue
        key = _digest(ex.inputs)
        if key in seen:
            row["problem"] = f"duplicate of line {seen[key]}"
            continue
        seen[key] = lineno
        row["example"] = ex
        for m, v in ex.inputs.items():
            good["inputs"].setdefault(m, []).append(v)
        good["targets"].append(checked.targets)
    return rows, good


def check_manifest(path: str | Path, *, labels: Sequence[str] | None = None,
                   plot: str | Path | None = None, columns: dict[str, Any] | None = None,
                   task: str | None = None) -> dict[str, Any]:
    """A report: problems by line, and what the good rows hold (the task's target
    statistics, e.g. label counts; each modality's, e.g. image sizes, audio durations).
    ``path`` is any data zoo reads (JSONL, CSV/TSV, Parquet, a folder, a datasets folder)."""
    path = Path(path)
    rows, good = _inspect(path, labels, columns, get_task(task) if task else None)
    problems = [{"line": r["line"], "problem": r["problem"]} for r in rows if r["problem"]]
    reg = modalities()
    targets = good["task"].describe_targets(good["targets"]) if good["task"] else {}
    from collections import Counter

    report = {
        "manifest": str(path), "lines": len(rows), "ok": len(rows) - len(problems),
        "problems": problems,
        "problem_counts": dict(Counter(p["problem"].split(":")[0].split(" of line")[0]
                                       for p in problems)),
        "task": good["task"].name if good["task"] else None,
        "labels": targets.get("labels", {}), "targets": targets,
        "inputs": {m: reg[m].describe(v) for m, v in good["inputs"].items()},
    }
    if labels:
        report["missing_labels"] = [lab for lab in labels if lab not in report["labels"]]
    if plot and report["labels"]:
        from zoo.plots import plot_counts

        plot_counts(report["labels"], Path(plot), f"label distribution: {path.name}")
        report["plot"] = str(plot)
    return report


def clean_manifest(path: str | Path, out: str | Path, *, labels: Sequence[str] | None = None,
                   columns: dict[str, Any] | None = None, task: str | None = None
                   ) -> dict[str, Any]:
    """Write the good lines (paths rewritten relative to ``out``) and ``<out>.dropped.jsonl``
    with each dropped line and why. Nothing is deleted from disk."""
    path, out = Path(path), Path(out)
    rows, _ = _inspect(path, labels, columns, get_task(task) if task else None)
    out.parent.mkdir(parents=True, exist_ok=True)
    kept, dropped = [], []
    for r in rows:
        try:
            if r["problem"]:
                raise DataError(r["problem"])
            kept.append(json.dumps(_as_line(r["example"], out.parent), default=str))
        except DataError as e:
            dropped.append({"line": r["line"], "reason": str(e), "content": r["raw"]})
    out.write_text("".join(x + "\n" for x in kept))
    log = out.with_suffix(".dropped.jsonl")
    log.write_text("".join(json.dumps(d) + "\n" for d in dropped))
    return {"kept": len(kept), "dropped": len(dropped), "out": str(out), "log": str(log)}


def _as_line(ex: Any, folder: Path, targets: dict[str, Any] | None = None) -> dict[str, Any]:
    """An example as a manifest line written into ``folder`` (file paths relative to it)."""
    reg = modalities()
    line = {m: reg[m].to_data(v, folder) for m, v in ex.inputs.items()}
    return {**line, **(ex.targets if targets is None else targets)}


def label_manifest(model: Any, data: str | Path, out: str | Path, *,
                   min_confidence: float = 0.0, batch_size: int = 32) -> dict[str, Any]:
    """Pseudo-label ``data`` with ``model``: confident items go to ``out`` with the task's
    targets and ``confidence``; the rest to ``<out stem>.review.jsonl`` for a person."""
    from zoo.data.manifest import read_manifest
    from zoo.io.hub import load

    if isinstance(model, (str, Path)):
        model = load(model)
    from zoo.base.task import Task

    task = model.task_impl
    if type(task).pseudo_label is Task.pseudo_label:
        raise ZooError(f"a {model.task} model cannot pseudo-label data (its task turns no "
                       f"prediction into targets)")
    data, out = Path(data), Path(out)
    examples, unreadable = [], []
    for ex in read_manifest(data):
        problem = example_problem(ex.inputs)
        (unreadable if problem else examples).append((ex, problem))
    preds = model.predict([ex.inputs for ex, _ in examples], batch_size=batch_size) \
        if examples else []
    out.parent.mkdir(parents=True, exist_ok=True)
    review = out.with_name(out.stem + ".review.jsonl")
    sure, unsure = [], []
    for (ex, _), p in zip(examples, preds):
        labelled = task.pseudo_label(p)
        if labelled is None:
            raise ZooError(f"a {model.task} model cannot pseudo-label this prediction")
        targets, confidence = labelled
        kept = {k: v for k, v in ex.targets.items() if k not in task.targets
                and k != "confidence"}  # ids and other columns stay
        line = {**_as_line(ex, out.parent, {**kept, **targets}), "confidence": confidence}
        (sure if confidence >= min_confidence else unsure).append(json.dumps(line))
    for ex, problem in unreadable:  # a person looks at these too: why is in the line
        line = {**_as_line(ex, out.parent, {}), "problem": problem.replace(
            str(data.parent) + "/", "")}
        unsure.append(json.dumps(line))
    out.write_text("".join(x + "\n" for x in sure))
    review.write_text("".join(x + "\n" for x in unsure))
    return {"labelled": len(sure), "review": len(unsure), "unreadable": len(unreadable),
            "out": str(out), "review_file": str(review)}


def export_feedback(db: str | Path, out: str | Path, task: str | None = None
                    ) -> dict[str, Any]:
    """One manifest line per feedback row: the input (files sent as base64 written beside
    the manifest) with the targets ``/feedback`` read from its correction. Rows stored
    before corrections were read as targets hold a bare correction: ``task`` names the
    task to read them as (its one target key); without it they are reported, not lost."""
    from zoo.io.feedback import FeedbackStore

    if not Path(db).is_file():
        raise DataError(f"feedback database not found: {db}")
    rows = FeedbackStore(db).rows()
    out = Path(out)
    media = out.parent / f"{out.stem}-media"
    lines, skipped = [], []
    reader = get_task(task) if task else None
    for r in rows:
        try:
            lines.append(json.dumps(_feedback_line(r, media, reader)))
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


def _feedback_line(r: dict[str, Any], media: Path, task: Any) -> dict[str, Any]:
    """One manifest line for one feedback row (files written into ``media``)."""
    reg = modalities()
    obj: dict[str, Any] = {}
    for k, v in (r["input"] or {}).items():
        if k not in reg:
            raise DataError(f"input key {k!r} is no registered modality")
        obj[k] = reg[k].to_record(v, media, f"{r['id']:06d}-{k}")
    targets = r.get("targets")
    if targets is None and task is not None:
        targets = task.targets_from_correction(r["correction"], None)
    elif targets is None and isinstance(r["correction"], dict):
        targets = r["correction"]
    if not isinstance(targets, dict):
        raise DataError(f"the correction {str(r['correction'])[:40]!r} names no target key (a "
                        f"row stored before zoo 0.2): pass --task NAME to read it as that "
                        f"task's target")
    obj.update(targets)
    obj["feedback_id"] = r["id"]
    return obj
