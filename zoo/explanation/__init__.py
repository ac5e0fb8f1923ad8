"""``zoo.explain(model, inputs)``: which parts of each input made the model's answer.

Model-agnostic and perturbation-based, computed with captum. Each modality cuts its value
into *units* (``Modality.explain_units``: words, a grid of image patches, time windows)
and says what the value is without some of them (``Modality.explain_ablate``: words
deleted, patches filled with the image's mean colour, windows silenced); the task says
which number is explained (``Task.explain_target`` / ``explain_score``: for
classification, the probability of the predicted label or of ``target``). captum then
attributes that number to the units, the model's own ``predict`` running on perturbed raw
inputs, so every encoder, fusion and head is explained the same way:

- ``method="ablation"`` (captum ``FeatureAblation``): a unit's attribution is how much the
  score drops when that unit alone is removed; N + 1 predictions for N units.
- ``method="shapley"`` (captum ``ShapleyValueSampling``): Shapley values of the units,
  estimated from ``samples`` random orderings; ``samples * N`` predictions, fair to units
  that only matter together.

With several modalities in one input, exact Shapley values over the modality groups
(captum ``ShapleyValues``) give each modality's share of the explained score:
``|phi_m| / sum |phi|`` (the shares add to 1; ``modality_shapley`` keeps the signs).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping, Sequence

from zoo.errors import ZooError

__all__ = ["explain", "explain_one", "METHODS", "MAX_UNITS", "SAMPLES"]

#: the attribution methods (see the module's docstring)
METHODS = ("ablation", "shapley")
#: units per input by default: an 8 x 8 grid of patches, 64 words, 32 time windows
MAX_UNITS = 64
#: random orderings of the units that ``method="shapley"`` averages over
SAMPLES = 16


def explain(model: Any, inputs: Any, target: Any = None, out: str | Path | None = None, *,
            method: str = "ablation", samples: int = SAMPLES, max_units: int = MAX_UNITS,
            batch_size: int = 32, deadline: float | None = None) -> list[dict[str, Any]]:
    """Explain ``model``'s answer for each input (a dict of modality -> value, or a list
    of them). ``model``: a zoo model, a folder, ``hf-hub:org/name`` or a registry name.
    ``target``: what to explain (a label; default: the predicted one). With ``out``, each
    modality's pictures (a coloured HTML text, a heat-map PNG over an image, a PNG over
    time for audio) and ``explanations.json`` are written into that folder.

    Returns one dict per input: ``target``, ``score`` (its score on the whole input),
    ``method``, ``units`` (each with its ``modality``, where it is, and ``attribution``),
    ``files``, ``predictions`` (how many perturbed inputs were scored), and with several
    modalities ``modality_share`` (adds to 1) and ``modality_shapley``. ``deadline`` (a
    ``time.monotonic()`` value): stop with a ZooError past it (serving)."""
    if isinstance(model, (str, Path)):
        from zoo.io.hub import load

        model = load(model)
    if isinstance(inputs, Mapping):
        inputs = [inputs]
    if not isinstance(inputs, Sequence) or isinstance(inputs, str) or not inputs:
        raise ZooError("explain takes an input dict such as {\"text\": \"...\"}, or a "
                       "non-empty list of them")
    _check_options(method, samples, max_units)
    folder = Path(out) if out is not None else None
    results = []
    for i, x in enumerate(inputs):
        stem = None if folder is None else folder / str(i)
        results.append(explain_one(model, x, target, method=method, samples=samples,
                                   max_units=max_units, batch_size=batch_size,
                                   deadline=deadline, stem=stem))
    if folder is not None:
        (folder / "explanations.json").write_text(json.dumps(results, indent=2,
                                                             ensure_ascii=False))
    return results


def _check_options(method: str, samples: int, max_units: int) -> None:
    if method not in METHODS:
        raise ZooError(f"unknown explanation method {str(method)[:40]!r} (methods: "
                       f"{', '.join(METHODS)})")
    for name, value in (("samples", samples), ("max_units", max_units)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ZooError(f"{name} must be a positive whole number, got {value!r}")


def explain_one(model: Any, x: Mapping[str, Any], target: Any = None, *,
                method: str = "ablation", samples: int = SAMPLES, max_units: int = MAX_UNITS,
                batch_size: int = 32, deadline: float | None = None,
                stem: Path | None = None) -> dict[str, Any]:
    """One input's explanation (see :func:`explain`); pictures go to ``stem``-``MODALITY``
    plus a suffix when ``stem`` is given."""
    from zoo.errors import DataError
    from zoo.explanation.perturb import Perturber, attribute, modality_shapley

    if not isinstance(x, Mapping):
        raise DataError(f"an input to explain must be a dict of modality -> value, got "
                        f"{type(x).__name__}")
    task = model.task_impl
    if model.head is None:
        raise ZooError("this model gives embeddings (no head): there is no answer to explain")
    prediction = model.predict([x], batch_size=1)[0]  # checks the input, as predict does
    chosen = task.explain_target(model, prediction, target)
    perturber = Perturber.build(model, x, chosen, max_units, batch_size, deadline)
    flat = attribute(perturber, method, samples)
    result: dict[str, Any] = {"target": chosen, "score": round(perturber.whole_score(), 6),
                              "method": method, "units": [], "files": []}
    for (m, start, end) in perturber.slices:
        for unit, a in zip(perturber.units[m], flat[start:end]):
            result["units"].append({"modality": m, **unit, "attribution": round(a, 6)})
    if len(perturber.slices) > 1:
        phi = modality_shapley(perturber, batch_size)
        total = sum(abs(v) for v in phi.values())
        result["modality_share"] = {m: (abs(v) / total if total else 1 / len(phi))
                                    for m, v in phi.items()}
        result["modality_shapley"] = {m: round(v, 6) for m, v in phi.items()}
    result["predictions"] = perturber.calls  # perturbed inputs the model scored
    if stem is not None:
        result["files"] = _render(perturber, flat, stem, f"{chosen} ({result['score']:.3f})")
    return result


def _render(perturber: Any, flat: list[float], stem: Path, title: str) -> list[str]:
    stem.parent.mkdir(parents=True, exist_ok=True)
    files: list[str] = []
    for (m, start, end) in perturber.slices:
        files += [str(f) for f in perturber.modalities[m].explain_render(
            perturber.values[m], perturber.units[m], flat[start:end],
            stem.with_name(f"{stem.name}-{m}"), title)]
    return files


def show(result: Mapping[str, Any], x: Mapping[str, Any], top: int = 5) -> list[str]:
    """An explanation as terminal lines: the target and its score, each modality's own
    rendering (``Modality.explain_show``: coloured words) or its ``top`` units, the
    modality shares and the files written."""
    from zoo.registry import modalities

    reg = modalities()
    lines = [f"{result['target']}  (score {result['score']:.3f}, {result['method']})"]
    by_modality: dict[str, list[dict[str, Any]]] = {}
    for u in result["units"]:
        by_modality.setdefault(u["modality"], []).append(u)
    for m, units in by_modality.items():
        plain = [{k: v for k, v in u.items() if k not in ("modality", "attribution")}
                 for u in units]
        shown = reg[m].explain_show(reg[m].explain_load(x[m]), plain,
                                    [u["attribution"] for u in units])
        if shown is None:
            best = sorted(units, key=lambda u: -abs(u["attribution"]))[:top]
            shown = "\n".join(f"  {u['attribution']:+.4f}  " + json.dumps(
                {k: v for k, v in u.items() if k not in ("modality", "attribution")})
                for u in best)
        lines.append(f"{m}:\n{shown}")
    if "modality_share" in result:
        lines.append("modality share: " + ", ".join(
            f"{m} {s:.0%}" for m, s in result["modality_share"].items()))
    lines += [f"wrote {f}" for f in result.get("files", [])]
    return lines
