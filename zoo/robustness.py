"""Robustness: the task's metrics on corrupted copies of the eval data (``zoo eval
--robustness``). Each input modality of the model brings its own corruption suite
(``Modality.corruptions``: ImageNet-C's noise, blur, JPEG, brightness and contrast for
images; typos, swaps, case and whitespace for text; white and babble noise, speed and pitch
for audio); a modality without one is reported as skipped. Every corruption runs at
severities 1, 2 and 3, one modality at a time, each example with its own generator seeded
from (seed, modality, corruption, severity, example), so a result is reproducible and does
not depend on the order or the size of the data.

This module knows no modality and no task: it gets the model's modalities, the examples and
a ``score(inputs) -> metrics`` callable from ``zoo.evaluation``."""
from __future__ import annotations

import zlib
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from zoo.errors import ZooError

__all__ = ["SEVERITIES", "suites", "corrupted_inputs", "run", "scalars", "drops",
           "plot_robustness", "table_lines"]

SEVERITIES = (1, 2, 3)
ROBUSTNESS_FILE = "robustness.json"
ROBUSTNESS_PLOT = "robustness.png"


def scalars(metrics: Mapping[str, Any]) -> dict[str, float]:
    """The numeric figures of a metrics dict (``per_class`` reports and ``n`` left out)."""
    return {k: float(v) for k, v in metrics.items()
            if isinstance(v, (int, float)) and not isinstance(v, bool) and k != "n"}


def suites(model_modalities: Sequence[str], examples: Sequence[Any],
           only: Sequence[str] | None = None
           ) -> tuple[dict[str, dict[str, Callable]], list[str]]:
    """modality -> {corruption: corrupt} for each of the model's modalities the data holds
    (restricted to the names in ``only``), and the modalities that have no corruption."""
    from zoo.registry import modalities

    reg = modalities()
    found: dict[str, dict[str, Callable]] = {}
    skipped = []
    for name in model_modalities:
        values = [ex.inputs[name] for ex in examples if name in ex.inputs]
        if not values or name not in reg:
            continue
        suite = dict(reg[name].corruptions(values) or {})
        if only is not None:
            suite = {k: v for k, v in suite.items() if k in only}
        if suite:
            found[name] = suite
        elif only is None:
            skipped.append(name)
    if only is not None:
        known = {c for s in found.values() for c in s}
        unknown = [c for c in only if c not in known]
        if unknown:
            every = sorted({c for name in model_modalities if name in reg
                            for c in reg[name].corruptions([])})
            raise ZooError(f"no corruption {', '.join(map(repr, unknown))} for this model's "
                           f"inputs; corruptions: {', '.join(every) or '(none)'}")
    return found, skipped


def _seed(seed: int, *parts: Any) -> list[int]:
    return [int(seed)] + [zlib.crc32(str(p).encode()) for p in parts]


def corrupted_inputs(examples: Sequence[Any], modality: str, name: str, corrupt: Callable,
                     severity: int, seed: int = 0) -> list[dict[str, Any]]:
    """The examples' inputs with ``modality``'s value corrupted (the others as they are)."""
    import numpy as np

    out = []
    for i, ex in enumerate(examples):
        inputs = dict(ex.inputs)
        if modality in inputs:
            rng = np.random.default_rng(_seed(seed, modality, name, severity, i))
            inputs[modality] = corrupt(inputs[modality], severity, rng)
        out.append(inputs)
    return out


def drops(clean: Mapping[str, float], corrupted: Mapping[str, float]) -> dict[str, float]:
    """clean - corrupted for each figure both have (a loss when higher is better)."""
    return {k: round(clean[k] - corrupted[k], 6) for k in corrupted if k in clean}


def run(model_modalities: Sequence[str], examples: Sequence[Any],
        score: Callable[[list[dict[str, Any]]], Mapping[str, Any]],
        clean: Mapping[str, Any], *, metric: str, higher_is_better: bool,
        only: Sequence[str] | None = None, seed: int = 0,
        progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """``{"metric", "higher_is_better", "seed", "severities", "clean", "corruptions":
    {modality: {corruption: {"1": metrics, "2": ..., "3": ...}}}, "drop": (the same shape,
    clean - corrupted per figure), "skipped": [modalities without corruptions]}``."""
    found, skipped = suites(model_modalities, examples, only)
    base = scalars(clean)
    figures: dict[str, Any] = {}
    lost: dict[str, Any] = {}
    for modality, suite in found.items():
        for name, corrupt in suite.items():
            for severity in SEVERITIES:
                if progress:
                    progress(f"{modality}/{name} severity {severity}")
                inputs = corrupted_inputs(examples, modality, name, corrupt, severity, seed)
                got = scalars(score(inputs))
                figures.setdefault(modality, {}).setdefault(name, {})[str(severity)] = got
                lost.setdefault(modality, {}).setdefault(name, {})[str(severity)] = \
                    drops(base, got)
    return {"metric": metric, "higher_is_better": higher_is_better, "seed": seed,
            "severities": list(SEVERITIES), "clean": base, "corruptions": figures,
            "drop": lost, "skipped": skipped}


def plot_robustness(result: Mapping[str, Any], path: Path) -> Path:
    """The main metric per corruption (one line each, across severities 0 = clean .. 3),
    one panel per modality."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metric, corr = result["metric"], result["corruptions"]
    panels = list(corr) or ["(none)"]
    fig, axes = plt.subplots(1, len(panels), figsize=(5.2 * len(panels), 3.8), squeeze=False)
    for ax, modality in zip(axes[0], panels):
        for name, by_sev in corr.get(modality, {}).items():
            xs = [0, *[int(s) for s in by_sev]]
            ys = [result["clean"].get(metric), *[m.get(metric) for m in by_sev.values()]]
            ax.plot(xs, ys, "o-", label=name)
        ax.set_xticks([0, *SEVERITIES], ["clean", *map(str, SEVERITIES)])
        ax.set_xlabel("severity")
        ax.set_ylabel(metric)
        ax.set_title(f"{modality}: {metric} under corruption")
        ax.grid(alpha=0.3)
        if ax.lines:
            ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def table_lines(result: Mapping[str, Any] | None) -> list[str]:
    """The main metric per corruption and severity, with its drop, as text lines."""
    if not result:
        return []
    metric = result["metric"]
    lines = [f"robustness ({metric}; clean {result['clean'].get(metric, float('nan')):.4f}; "
             f"drop = clean - corrupted)"]
    lines.append(f"  {'modality':10} {'corruption':16}" + "".join(
        f" {'severity ' + str(s):>18}" for s in SEVERITIES))
    for modality, suite in result["corruptions"].items():
        for name, by_sev in suite.items():
            lost = result["drop"][modality][name]
            nan = float("nan")
            cells = "".join(f" {by_sev[s].get(metric, nan):>8.4f} ({lost[s].get(metric, nan):+.4f})"
                            for s in by_sev)
            lines.append(f"  {modality:10} {name:16}{cells}")
    if result.get("skipped"):
        lines.append(f"  skipped (no corruptions): {', '.join(result['skipped'])}")
    return lines
