"""Speech recognition: audio in, text out."""
from __future__ import annotations

from typing import Any, Sequence

from zoo.errors import DataError
from zoo.base.task import Task


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

    def check_targets(self, examples: Sequence[Any]) -> None:
        for ex in examples:
            if not isinstance(ex.targets.get("transcript"), str):
                raise DataError(f"line {ex.line}: an ASR example needs a 'transcript' "
                                f"(a string)")

    def metrics(self, model: Any, examples: Sequence[Any], predictions: Sequence[dict],
                categories: Any = None) -> dict[str, float]:
        import zoo.metrics as metrics
        from zoo.heads.asr import normalize_text

        self.check_targets(examples)
        vocab = getattr(model.head, "vocabulary", None)
        refs = [normalize_text(ex.targets["transcript"], *([vocab] if vocab else []))
                for ex in examples]
        return metrics.asr_metrics(refs, [p["text"] for p in predictions])
