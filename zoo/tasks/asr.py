"""Speech recognition: audio in, text out."""
from __future__ import annotations

from typing import Any, Mapping, Sequence

from zoo.plugin import DataError, Task


class SpeechRecognition(Task):
    targets = ("transcript",)
    outputs = ("text",)
    metric, higher_is_better = "cer", False
    requires = ("audio",)
    metric_names = {"wer": "WER", "cer": "CER"}
    metrics_library = "jiwer"
    limitations = ("Accents, noise, far-field recordings and vocabulary unlike the training "
                   "data raise the error rate; character CTC models spell phonetically unless "
                   "decoded with a language model (`decoder='beam', lm=...`).")
    example_output = "[{'text': '...'}]"

    def pipeline_tag(self, modalities: Sequence[str]) -> str | None:
        return "automatic-speech-recognition"

    def check_target(self, targets: Mapping[str, Any], where: str,
                     labels: Sequence[str] | None = None,
                     inputs: Mapping[str, Any] | None = None) -> None:
        if not isinstance(targets.get("transcript"), str):
            raise DataError(f"{where}: an ASR example needs a 'transcript' (a string)")

    def metrics(self, model: Any, examples: Sequence[Any], predictions: Sequence[dict],
                categories: Any = None) -> dict[str, float]:
        from zoo.heads.asr import normalize_text
        from zoo.metrics import asr_metrics

        self.check_targets(examples)
        vocab = getattr(model.head, "vocabulary", None)
        refs = [normalize_text(ex.targets["transcript"], *([vocab] if vocab else []))
                for ex in examples]
        return asr_metrics(refs, [p["text"] for p in predictions])

    def pseudo_label(self, prediction: Mapping[str, Any]) -> tuple[dict[str, Any], float] | None:
        if "score" not in prediction:
            return None  # no confidence to sort sure from unsure by
        return {"transcript": prediction["text"]}, float(prediction["score"])

    def describe_targets(self, targets: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        words = sorted(len(str(t.get("transcript", "")).split()) for t in targets)
        return {"words_per_transcript": {"min": words[0], "median": words[len(words) // 2],
                                         "max": words[-1]}} if words else {}
