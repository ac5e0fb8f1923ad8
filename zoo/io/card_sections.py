"""The model card's sections that come from record files beside the model: the
hyper-parameter search (``tune.json``), results ``zoo eval --record`` added on other data,
robustness and groups (``robustness.json``, ``slices.json``) and calibration
(``calibration.json``). Each reads its file defensively: a missing or malformed record
leaves its section out."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from zoo.io.markdown import inline_code as code, plain_text as text
from zoo.io.records import eval_entries

__all__ = ["fmt", "short", "read_json", "shown", "tune_section", "other_evals", "robustness",
           "slices", "calibration_text"]


def fmt(v: Any) -> str:
    return f"{v:.4f}" if isinstance(v, float) else str(v)


def short(v: Any) -> str:
    """A searched value: three significant digits (learning rates span decades)."""
    return f"{v:.3g}" if isinstance(v, float) else str(v)


def read_json(path: Path) -> dict[str, Any] | None:
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def shown(figures: dict[str, Any], names: dict[str, str]) -> dict[str, float]:
    """The headline figures of a metrics dict (numbers the task names; not ``n``)."""
    return {k: v for k, v in figures.items()
            if k in names and k != "n" and isinstance(v, (int, float))
            and not isinstance(v, bool)}


def tune_section(d: Path) -> dict[str, Any] | None:
    """The search that chose this model, from the ``tune.json`` zoo tune leaves beside it:
    the space with the chosen values, and the best trials."""
    try:
        rec = json.loads((d / "tune.json").read_text())
        best, counts = rec["best"], rec.get("counts") or {}
        words = rec.get("space_text") or {}  # zoo tune writes each range in words
        space = [(code(n), text(words.get(n) or json.dumps(r)),
                  text(short(best["params"].get(n, "-"))))
                 for n, r in (rec.get("space") or {}).items()]
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None
    metric = text(rec.get("metric", "value"))
    how = {"moved": "this is that trial's own run",
           "retrained": "trained again here from its parameters (its run was on another "
                        "machine)"}.get(rec.get("best_from"), "")
    summary = (f"Chosen by `zoo tune` (Optuna) in study {code(rec.get('study_name'))}: "
               f"{sum(counts.values())} trials ({counts.get('complete', 0)} completed, "
               f"{counts.get('pruned', 0)} pruned, {counts.get('failed', 0)} failed); "
               f"sampler {text(rec.get('sampler'))}; pruning {text(rec.get('pruner'))}. This "
               f"model is trial {text(best['number'])}, eval {metric} {fmt(best['value'])}"
               + (f" ({how})." if how else "."))
    done = [t for t in rec.get("trials", []) if t.get("value") is not None]
    done.sort(key=lambda t: t["value"], reverse=rec.get("direction") == "maximize")
    trials = [(text(t["number"]), text(t["state"]), text(fmt(t["value"])),
               text(", ".join(f"{k}={short(v)}" for k, v in t["params"].items())))
              for t in done[:10]]
    return {"summary": summary, "space": space, "metric": metric, "trials": trials,
            "fixed": ", ".join(code(f"{k}={v}") for k, v in (rec.get("fixed") or {}).items()),
            "more": max(0, len(done) - len(trials))}


def other_evals(evals: dict[str, Any] | None, names: dict[str, str]) -> list[tuple]:
    """Rows for the results ``zoo eval --record`` added on other data: (data, examples,
    figures)."""
    rows = []
    for entry in eval_entries(evals)[1 if (evals or {}).get("metrics") else 0:]:
        figures = entry.get("metrics") or {}
        digest = entry.get("data_sha256")
        where = code(entry.get("dataset") or "?") + (
            f" (sha256 {code(str(digest)[:16])})" if digest else "")
        rows.append((where, text(figures.get("n", "?")),
                     text(", ".join(f"{names.get(k, k)} {fmt(v)}"
                                    for k, v in shown(figures, names).items()))))
    return rows


def robustness(d: Path) -> dict[str, Any] | None:
    """``zoo eval --robustness --record``'s figures: the main metric per corruption and
    severity, with its drop from clean."""
    rec = read_json(d / "robustness.json")
    try:
        metric = rec["metric"]
        clean = float(rec["clean"][metric])
        rows = []
        for modality, corruptions in rec["corruptions"].items():
            for name, by_severity in corruptions.items():
                cells = [f"{float(by_severity[str(s)][metric]):.4f} "
                         f"({float(by_severity[str(s)][metric]) - clean:+.4f})"
                         for s in rec.get("severities", [1, 2, 3])]
                rows.append((text(modality), code(name), *[text(c) for c in cells]))
    except (TypeError, KeyError, ValueError, AttributeError):
        return None
    digest = rec.get("data_sha256")
    return {"metric": text(metric), "clean": f"{clean:.4f}", "rows": rows,
            "severities": [text(s) for s in rec.get("severities", [1, 2, 3])],
            "note": (f"On {code(rec.get('dataset'))} ({text(rec.get('n'))} examples"
                     + (f", sha256 {code(str(digest)[:16])}" if digest else "")
                     + f"), seed {text(rec.get('seed'))}; clean {text(metric)} {clean:.4f}"
                     + (f"; not corrupted: {text(', '.join(map(str, rec['skipped'])))}"
                        if rec.get("skipped") else "") + ".")}


def slices(d: Path) -> list[dict[str, Any]]:
    """``zoo eval --slice COLUMN --record``'s figures: every group with its count, and the
    largest gap between groups."""
    rec = read_json(d / "slices.json")
    out = []
    try:
        for column, groups in rec["columns"].items():
            names = sorted({k for g in groups.values() for k, v in g.items()
                            if k != "n" and isinstance(v, (int, float))})[:4]
            rows = [(code(group), text(g.get("n")), *[text(fmt(g.get(k, "-"))) for k in names])
                    for group, g in groups.items()]
            gaps = (rec.get("gap") or {}).get(column) or {}
            out.append({"column": code(column), "metrics": [text(k) for k in names],
                        "rows": rows, "gap": text(", ".join(
                            f"{k} {fmt(v)}" for k, v in gaps.items() if k in names))})
    except (TypeError, KeyError, AttributeError):
        return []
    return out


def calibration_text(d: Path) -> str:
    """What ``zoo calibrate`` fitted, on which data, and the ECE it changed."""
    rec = read_json(d / "calibration.json")
    if not rec or not isinstance(rec.get("before"), dict) or not isinstance(
            rec.get("after"), dict):
        return ""
    digest = rec.get("data_sha256")
    out = (f"{text(str(rec.get('method', 'calibration')).capitalize())} fitted by "
           f"`zoo calibrate` on {code(rec.get('dataset'))} ({text(rec.get('n'))} examples"
           + (f", sha256 {code(str(digest)[:16])}" if digest else "") + ")")
    if isinstance(rec.get("temperature"), (int, float)):
        out += f": temperature {rec['temperature']:.3f}, which predict and serve apply"
    b, a = rec["before"].get("ece"), rec["after"].get("ece")
    if isinstance(b, (int, float)) and isinstance(a, (int, float)):
        out += (f". Expected calibration error on that data: {b:.4f} before, {a:.4f} after "
                f"(the labels predicted do not change)")
    return out + "."
