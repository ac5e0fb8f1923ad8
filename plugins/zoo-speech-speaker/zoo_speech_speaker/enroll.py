"""Enrolment: the training speakers' vectors in the head, and the thresholds chosen on
trials (utterance pairs, utterances against enrolled speakers).

While a model trains, each evaluation of the eval split chooses the head's thresholds
(EER thresholds) — the task's ``prepare`` marks the head for that, and the mark (a plain
attribute, never saved) is dropped when training reports. A model evaluated outside a
training run (``zoo eval``, ``zoo.evaluate``) keeps its thresholds: evaluation is
read-only.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch
from torch.nn import functional as F

from zoo.plugin import ZooError, replace_head

from .trials import error_rates, pair_trials

__all__ = ["ADOPT", "enroll", "adopt_thresholds", "best_match", "rates_at"]

#: the head attribute that says "a training run is choosing your thresholds"
ADOPT = "_zoo_speaker_adopt_thresholds"


def _head(model: Any) -> Any:
    head = getattr(model, "head", None)
    if head is None or not hasattr(head, "centroids"):
        raise ZooError("speaker verification needs the 'speaker-verifier' head (this model's "
                       "head is another); compose the model with head = \"speaker-verifier\"")
    return head


def enroll(model: Any, examples: Sequence[Any]) -> list[str]:
    """Rebuild the head for the speakers of ``examples`` (sorted ids), each enrolled as
    the normalised mean of its utterances' embeddings; both thresholds set to the EER
    threshold of the examples' own utterance pairs (the eval split replaces them while
    training). A trained adapter is kept. Returns the speakers."""
    old = _head(model)
    adapter = {k: v.detach().clone() for k, v in old.adapter.state_dict().items()} \
        if old.adapter is not None else None
    speakers = sorted({str(ex.targets["speaker"]) for ex in examples})
    replace_head(model, labels=speakers)
    head = model.head
    if adapter is not None and head.adapter is not None:
        head.adapter.load_state_dict(adapter)
    pooled = model.embed([ex.inputs for ex in examples])[head.modality].clone()  # (N, D)
    names = [str(ex.targets["speaker"]) for ex in examples]
    ids = torch.tensor([speakers.index(s) for s in names], device=pooled.device)
    with torch.no_grad():
        emb = head.embed(pooled.to(head.centroids.device))  # (N, D)
        sums = torch.zeros_like(head.centroids).index_add(0, ids.to(emb.device), emb)
        head.centroids.copy_(F.normalize(sums, dim=1))
    scores, same = pair_trials(emb.cpu().numpy(), names)
    if same.any() and not same.all():
        thr = error_rates(scores, same).eer_threshold
        head.threshold.fill_(thr)
        head.pair_threshold.fill_(thr)
    setattr(head, ADOPT, True)
    return speakers


def adopt_thresholds(model: Any, pair: float, enrolled: float | None) -> bool:
    """Inside a training run (the head is marked), take the eval split's EER thresholds;
    elsewhere nothing changes. True when they were taken."""
    head = getattr(model, "head", None)
    if head is None or not getattr(head, ADOPT, False):
        return False
    with torch.no_grad():
        head.pair_threshold.fill_(float(pair))
        head.threshold.fill_(float(pair if enrolled is None else enrolled))
    return True


def best_match(prediction: dict) -> str | None:
    """The enrolled speaker a prediction scores highest (whatever ``speaker=`` claimed)."""
    scores = prediction.get("scores") or {}
    return max(scores, key=scores.get) if scores else None


def rates_at(scores: np.ndarray, same: np.ndarray, threshold: float) -> tuple[float, float]:
    """(false alarm rate, miss rate) of trials when accepting scores >= threshold."""
    far = float((scores[~same] >= threshold).mean()) if (~same).any() else 0.0
    frr = float((scores[same] < threshold).mean()) if same.any() else 0.0
    return far, frr
