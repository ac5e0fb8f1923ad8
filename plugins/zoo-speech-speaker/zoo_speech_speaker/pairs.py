"""Comparing two utterances with a speaker-verification model: ``{"score", "same"}``."""
from __future__ import annotations

from typing import Any

__all__ = ["verify_pair"]


def verify_pair(model: Any, first: Any, second: Any,
                threshold: float | None = None) -> dict[str, Any]:
    """The cosine of two audio values' embeddings (``score``) and whether it reaches the
    model's ``pair_threshold`` (or ``threshold``): ``{"score": float, "same": bool}``."""
    import numpy as np

    head = getattr(model, "head", None)
    if head is None or not hasattr(head, "pair_threshold"):
        from zoo.plugin import ZooError

        raise ZooError("verify_pair needs a speaker-verification model (zoo list --task "
                       "speaker-verification)")
    a, b = (np.asarray(p["embedding"], dtype=np.float64)
            for p in model.predict([{head.modality: first}, {head.modality: second}]))
    score = float(a @ b / max(np.linalg.norm(a) * np.linalg.norm(b), 1e-12))
    thr = float(head.pair_threshold) if threshold is None else float(threshold)
    return {"score": score, "same": score >= thr}
