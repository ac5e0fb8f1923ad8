"""The task's figures on an eval split, and the card's words about them."""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from zoo.plugin import DataError

from .enroll import adopt_thresholds, best_match, rates_at
from .trials import C_FA, C_MISS, P_TARGET, enrolled_trials, error_rates, pair_trials

__all__ = ["score_eval", "card_text"]


def _pairs(speakers: Sequence[str], predictions: Sequence[dict]) -> tuple[Any, Any]:
    if any(p.get("embedding") is None for p in predictions):
        raise DataError("speaker verification metrics need each prediction's 'embedding'")
    scores, same = pair_trials(np.asarray([p["embedding"] for p in predictions]), speakers)
    if not same.any() or same.all():
        raise DataError(f"speaker verification needs eval utterances of at least two speakers, "
                        f"one of them with two or more utterances (got {len(speakers)} "
                        f"utterances of {len(set(speakers))} speakers)")
    return scores, same


def score_eval(model: Any, speakers: Sequence[str], predictions: Sequence[dict]
               ) -> dict[str, float]:
    """EER / minDCF over every pair of eval utterances; against the enrolled speakers
    (when some eval speakers are enrolled): EER, minDCF, identification accuracy; the
    error rates at the model's thresholds. Inside a training run the head takes the
    EER thresholds first (see :mod:`zoo_speech_speaker.enroll`)."""
    scores, same = _pairs(speakers, predictions)
    pair = error_rates(scores, same)
    out: dict[str, float] = {"eer": pair.eer, "min_dcf": pair.min_dcf,
                             "eer_threshold": pair.eer_threshold,
                             "target_trials": pair.targets, "nontarget_trials": pair.nontargets}
    head = getattr(model, "head", None)
    enrolled = list(getattr(head, "labels", None) or [])
    known = [(p, s) for p, s in zip(predictions, speakers) if s in set(enrolled)]
    vs = None
    if known:
        es, esame = enrolled_trials(predictions, speakers, enrolled)
        if esame.any() and not esame.all():
            vs = error_rates(es, esame)
            out.update(enrolled_eer=vs.eer, enrolled_min_dcf=vs.min_dcf,
                       enrolled_eer_threshold=vs.eer_threshold)
        out["identification_accuracy"] = float(np.mean([best_match(p) == s
                                                        for p, s in known]))
    adopt_thresholds(model, pair.eer_threshold, vs.eer_threshold if vs else None)
    if head is not None and hasattr(head, "pair_threshold"):
        out["pair_far"], out["pair_frr"] = rates_at(scores, same, float(head.pair_threshold))
        if known:
            out["far"], out["frr"] = rates_at(es, esame, float(head.threshold))
    return out


def card_text(config: dict[str, Any]) -> str:
    from zoo.plugin import markdown_text

    kwargs = (config.get("head") or {}).get("kwargs") or {}
    speakers = kwargs.get("labels") or []
    enrolled = (f"{len(speakers)} enrolled speaker(s) (listed under Labels)" if speakers
                else "no enrolled speakers yet (train on utterances with `speaker` ids to "
                     "enroll them)")
    adapt = ("a residual linear adapter, trained with the AAM softmax over the enrolled "
             "speakers, maps the encoder's embedding" if kwargs.get("adapt") else
             "the encoder's embedding is used as it is")
    return (
        "## Speaker verification\n\n"
        f"This model holds {enrolled}; {adapt}. `predict` gives per utterance `embedding` "
        "(L2-normalised), and against the enrolled speakers `speaker` (the best match), "
        "`score` (its cosine), `accepted` (`score >= threshold`) and `scores` (the cosine "
        "to each enrolled speaker). Option `speaker=ID` verifies a claimed speaker; "
        "`threshold=` sets another operating point. Two utterances are compared by the "
        "cosine of their embeddings (`zoo_speech_speaker.verify(model, a, b)` gives "
        "`{\"score\", \"same\"}` at `pair_threshold`).\n\n"
        f"Thresholds: `threshold` = {markdown_text(kwargs.get('threshold'))} (utterance vs enrolled "
        f"speaker), `pair_threshold` = {markdown_text(kwargs.get('pair_threshold'))} (utterance vs "
        "utterance): equal-error-rate thresholds chosen on the eval split when the model "
        "was trained.\n\n"
        "Evaluation scores every pair of eval utterances (a *target* trial when both are "
        "the same speaker): **EER** is the rate at which misses equal false alarms; "
        f"**minDCF** is NIST SRE's normalised minimum detection cost with P_target = "
        f"{P_TARGET}, C_miss = {C_MISS:g}, C_fa = {C_FA:g} (1.0 = always reject). Lower is "
        "better for both. `enrolled_*` figures score each eval utterance against each "
        "enrolled speaker; `far` / `frr` are the false alarm and miss rates at the "
        "model's thresholds.\n")
