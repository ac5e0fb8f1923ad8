"""The speaker-verification task: a ``speaker`` id per utterance; enrolment of the training
speakers; EER and minDCF over every pair of eval utterances."""
from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any, Mapping, Sequence

from zoo.plugin import DataError, Task

__all__ = ["SpeakerVerification"]

_MAX_ID = 200  # characters of a speaker id


def _speaker(targets: Mapping[str, Any], where: str) -> str:
    if "speaker" not in targets:
        raise DataError(f"{where}: a speaker-verification example needs 'speaker' (the id "
                        f"of who speaks in the utterance)")
    spk = targets["speaker"]
    if isinstance(spk, bool) or not isinstance(spk, (str, int)) or not str(spk).strip():
        raise DataError(f"{where}: 'speaker' must be a non-empty string (or whole number) "
                        f"id, not {spk!r}")
    if len(str(spk)) > _MAX_ID:
        raise DataError(f"{where}: 'speaker' id is longer than {_MAX_ID} characters")
    return str(spk)


class SpeakerVerification(Task):
    outputs = ("embedding", "speaker", "score", "accepted", "scores")
    metric, higher_is_better = "eer", False
    requires = ("audio",)
    metric_names = {"eer": "EER (all eval pairs)",
                    "min_dcf": "minDCF (P_target 0.01, C_miss = C_fa = 1)",
                    "enrolled_eer": "EER (eval utterances vs enrolled speakers)",
                    "enrolled_min_dcf": "minDCF (vs enrolled speakers)",
                    "identification_accuracy": "Identification accuracy (enrolled speakers)"}
    metrics_library = ("scikit-learn (ROC); EER and NIST SRE's normalised minDCF computed "
                       "by zoo-speech-speaker")
    limitations = ("Scores are cosines of GE2E embeddings: they depend on the recording "
                   "channel, the language and the length of the utterances (1.6 s partials; "
                   "under ~1 s is unreliable). A threshold is only as good as the eval data "
                   "it was chosen on.")
    example_output = ("[{'embedding': [0.0, 0.031, ...], 'speaker': 'alice', 'score': 0.87, "
                      "'accepted': True, 'scores': {'alice': 0.87, 'bob': 0.61}}]")

    def pipeline_tag(self, modalities: Sequence[str]) -> str | None:
        # the Hub has no speaker-verification pipeline; its speaker models use this one
        return "audio-classification" if list(modalities) == ["audio"] else None

    # ---- targets --------------------------------------------------------------------
    def check_target(self, targets, where, labels=None, inputs=None) -> None:
        spk = _speaker(targets, where)
        if labels is not None and spk not in {str(x) for x in labels}:
            shown = ", ".join(map(str, list(labels)[:20]))
            raise DataError(f"{where}: speaker {spk!r} is not enrolled in this model (enrolled: "
                            f"{shown or 'none'}); a new speaker is enrolled by training on "
                            f"its utterances (zoo train)")

    def targets_from_correction(self, correction, labels, where="correction", inputs=None):
        """A speaker id, or ``{"speaker": id}``: who really speaks in the utterance."""
        if isinstance(correction, Mapping):
            if set(correction) != {"speaker"}:
                raise DataError(f"{where} must be a speaker id or {{\"speaker\": id}}, not an "
                                f"object with {sorted(map(str, correction))}")
            correction = correction["speaker"]
        targets = {"speaker": correction}
        self.check_target(targets, where, labels, inputs)
        return {"speaker": str(correction)}

    def describe_targets(self, targets: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        """Utterances per speaker (``labels``) and how many trials they make."""
        counts = Counter(str(t.get("speaker")) for t in targets if "speaker" in t)
        n = sum(counts.values())
        same = sum(c * (c - 1) // 2 for c in counts.values())
        return {"labels": dict(sorted(counts.items())), "speakers": len(counts),
                "utterances": n, "target_trials": same,
                "nontarget_trials": n * (n - 1) // 2 - same}

    def sample_targets(self, n: int) -> list[dict[str, Any]]:
        return [{"speaker": f"speaker-{i % 2}"} for i in range(n)]

    def pseudo_label(self, prediction: Mapping[str, Any]):
        """The matched enrolled speaker when it was accepted; its cosine is the
        confidence. None for an utterance that matches no one well enough."""
        if not prediction.get("speaker") or not prediction.get("accepted"):
            return None
        return {"speaker": str(prediction["speaker"])}, max(0.0, float(prediction["score"]))

    # ---- training and evaluation ------------------------------------------------------
    def prepare(self, model: Any, examples: Sequence[Any], categories: Any = None) -> bool:
        """Enroll the training speakers (see :func:`zoo_speech_speaker.enroll.enroll`)."""
        from .enroll import enroll

        enroll(model, examples)
        return True

    def metrics(self, model, examples, predictions, categories=None) -> dict[str, float]:
        from .scoring import score_eval

        speakers = [_speaker(ex.targets, f"line {ex.line}") for ex in examples]
        return score_eval(model, speakers, predictions)

    def report(self, model, examples, predictions, out: Path) -> list[str]:
        from .enroll import ADOPT
        from .report import draw_report

        head = getattr(model, "head", None)
        if head is not None and hasattr(head, ADOPT):
            delattr(head, ADOPT)  # training is over: evaluation is read-only again
        speakers = [_speaker(ex.targets, f"line {ex.line}") for ex in examples]
        return draw_report(model, speakers, predictions, Path(out))

    # ---- card ------------------------------------------------------------------------
    def card_section(self, config: dict[str, Any]) -> str:
        from .scoring import card_text

        return card_text(config)
