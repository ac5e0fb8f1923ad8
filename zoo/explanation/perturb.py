"""The perturbation function captum attributes: a batch of keep-masks over one input's
units (1 = kept, 0 = removed) -> the explained score of each perturbed input, computed by
the model's own ``predict`` on raw inputs rebuilt by each modality's ``explain_ablate``."""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Mapping

from zoo.errors import ZooError

__all__ = ["Perturber", "attribute", "modality_shapley", "PastDeadline", "value_bytes"]

#: perturbed copies of an input predicted together hold at most about this much memory
CHUNK_BYTES = 256_000_000


class PastDeadline(ZooError):
    """An explanation still running at its deadline (serving answers 504)."""


@dataclass
class Perturber:
    """One input being explained: its loaded values and units per modality, the flat
    unit axis (``slices``: modality, start, end), and a memo of scored keep-masks."""

    model: Any
    target: Any
    values: dict[str, Any]
    units: dict[str, list[dict[str, Any]]]
    modalities: dict[str, Any]  # name -> Modality
    slices: list[tuple[str, int, int]]
    batch_size: int = 32
    deadline: float | None = None
    memo: dict[tuple[bool, ...], float] = field(default_factory=dict)
    calls: int = 0  # predictions run (the memo spares repeats)

    @classmethod
    def build(cls, model: Any, x: Mapping[str, Any], target: Any, max_units: int,
              batch_size: int = 32, deadline: float | None = None) -> "Perturber":
        """Load each present modality's value once and cut it into units; the unit budget
        ``max_units`` is shared evenly among the input's modalities."""
        from zoo.registry import modalities

        reg = modalities()
        present = [m for m in model.modalities if x.get(m) is not None]
        per = max(1, max_units // len(present))
        values, units, slices, n = {}, {}, [], 0
        for m in present:
            values[m] = reg[m].explain_load(x[m])
            units[m] = [dict(u) for u in reg[m].explain_units(values[m], per)][:per]
            if not units[m]:
                raise ZooError(f"modality {m!r} gave no units to explain "
                               f"(Modality.explain_units)")
            slices.append((m, n, n + len(units[m])))
            n += len(units[m])
        return cls(model, target, values, units, {m: reg[m] for m in present}, slices,
                   batch_size, deadline)

    @property
    def size(self) -> int:
        return self.slices[-1][2]

    @property
    def nbytes(self) -> int:
        """About how much memory one perturbed copy of the input holds."""
        return sum(value_bytes(v) for v in self.values.values())

    def whole_score(self) -> float:
        """The explained score of the input with every unit kept (memoised)."""
        import torch

        return float(self(torch.ones(1, self.size))[0])

    def input_for(self, keep: tuple[bool, ...]) -> dict[str, Any]:
        """The raw input with the units whose ``keep`` is False removed."""
        x: dict[str, Any] = {}
        for m, start, end in self.slices:
            part = keep[start:end]
            value = (self.values[m] if all(part) else
                     self.modalities[m].explain_ablate(self.values[m], self.units[m], part))
            if value is not None:
                x[m] = value
        if not x:
            raise ZooError(f"this input without its units is empty ("
                           f"{', '.join(repr(m) for m, _, _ in self.slices)} gives no value "
                           f"then: Modality.explain_ablate), and method 'shapley' and "
                           f"one-unit inputs need its score; use method 'ablation' on inputs "
                           f"of several units, or add another modality")
        return x

    def __call__(self, masks: Any) -> Any:
        """captum's forward function: (k, N) keep-masks -> (k,) scores."""
        import torch

        keeps = [tuple(bool(v > 0.5) for v in row) for row in masks.tolist()]
        todo = list(dict.fromkeys(k for k in keeps if k not in self.memo))
        step = max(1, min(self.batch_size, CHUNK_BYTES // max(1, self.nbytes)))
        for i in range(0, len(todo), step):
            if self.deadline is not None and time.monotonic() > self.deadline:
                raise PastDeadline("the explanation ran past its deadline; explain fewer "
                                   "units (max_units) or use method 'ablation'")
            chunk = todo[i:i + step]
            preds = self.model.predict([self.input_for(k) for k in chunk], batch_size=step)
            task = self.model.task_impl
            for k, p in zip(chunk, preds):
                self.memo[k] = float(task.explain_score(p, self.target))
            self.calls += len(chunk)
        return torch.tensor([self.memo[k] for k in keeps], dtype=torch.float64)


def value_bytes(value: Any) -> int:
    """Bytes of an array (``nbytes``), an image (width x height x bands), a string, or of
    the parts of a tuple / list / dict of them; 0 for anything else (the explainer sizes its
    chunks by it, the serving worker which requests to send off the event loop)."""
    if hasattr(value, "nbytes"):
        return int(value.nbytes)
    if hasattr(value, "size") and hasattr(value, "getbands"):  # a PIL image
        return int(value.size[0] * value.size[1] * len(value.getbands()))
    if isinstance(value, (str, bytes, bytearray)):
        return len(value)
    if isinstance(value, (tuple, list)):
        return sum(value_bytes(v) for v in value)
    if isinstance(value, Mapping):
        return sum(value_bytes(v) for v in value.values())
    return 0


def attribute(perturber: Perturber, method: str, samples: int) -> list[float]:
    """Each unit's attribution on the flat unit axis, by captum's FeatureAblation
    (``ablation``) or ShapleyValueSampling (``shapley``) with removal as the baseline."""
    import torch
    from captum.attr import FeatureAblation, ShapleyValueSampling

    n = perturber.size
    full = torch.ones(1, n, dtype=torch.float64)  # every unit kept
    mask = torch.arange(n).unsqueeze(0)  # (1, N): each unit its own feature
    common = dict(baselines=0.0, feature_mask=mask,
                  perturbations_per_eval=perturber.batch_size)
    if method == "ablation":
        out = FeatureAblation(perturber).attribute(full, **common)
    else:
        out = ShapleyValueSampling(perturber).attribute(full, n_samples=samples,
                                                        show_progress=False, **common)
    return [float(v) for v in out[0]]


def modality_shapley(perturber: Perturber, batch_size: int = 32) -> dict[str, float]:
    """Exact Shapley values of the modality groups (every unit of a modality removed or
    kept together), by captum's ShapleyValues: they add up to the score of the whole input
    minus that of the input with every unit removed."""
    import torch
    from captum.attr import ShapleyValues

    n = perturber.size
    groups = torch.zeros(1, n, dtype=torch.long)  # (1, N): the unit's modality group
    for g, (_, start, end) in enumerate(perturber.slices):
        groups[0, start:end] = g
    out = ShapleyValues(perturber).attribute(torch.ones(1, n, dtype=torch.float64),
                                             baselines=0.0, feature_mask=groups,
                                             perturbations_per_eval=batch_size)
    return {m: float(out[0, start]) for m, start, _ in perturber.slices}
