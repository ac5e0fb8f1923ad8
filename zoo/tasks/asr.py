"""Speech recognition: audio in, text out; as text, SubRip or WebVTT subtitles
(``zoo predict --format txt|srt|vtt``)."""
from __future__ import annotations

from typing import Any, Mapping, Sequence

from zoo.plugin import DataError, Task, ZooError

__all__ = ["SpeechRecognition", "transcript_metrics", "normalize_transcript"]


def _clock(seconds: float, fmt: str) -> str:
    """``HH:MM:SS,mmm`` (SubRip) or ``HH:MM:SS.mmm`` (WebVTT)."""
    ms = max(0, round(float(seconds) * 1000))
    h, rest = divmod(ms, 3_600_000)
    m, rest = divmod(rest, 60_000)
    s, ms = divmod(rest, 1000)
    return f"{h:02d}:{m:02d}:{s:02d}{',' if fmt == 'srt' else '.'}{ms:03d}"


def _subtitles(segments: Sequence[Mapping[str, Any]], fmt: str) -> str:
    """One SubRip or WebVTT document: a numbered cue per segment with text."""
    cues = [s for s in segments if str(s.get("text", "")).strip()]
    out = ["WEBVTT\n\n"] if fmt == "vtt" else []
    for n, seg in enumerate(cues, 1):
        text = " ".join(str(seg["text"]).split()).replace("-->", "->")  # one line, no arrow
        out.append(f"{n}\n{_clock(seg['start'], fmt)} --> {_clock(seg['end'], fmt)}\n"
                   f"{text}\n\n")
    return "".join(out)


def normalize_transcript(text: str) -> str:
    """Any language's transcript for scoring, when no character vocabulary says what
    counts (Whisper): Unicode NFKC, case-folded; letters of any script, their marks and
    digits stay (``ä``, ``ё``, ``2``); apostrophes inside a word stay (``don't``, with ’ as
    '); every other character (punctuation, symbols) becomes a space; runs of spaces
    collapse. "Grüß Gott, Welt!" and "grüß gott welt" match."""
    import unicodedata

    text = unicodedata.normalize("NFKC", text).casefold().replace("\u2019", "'")
    out = []
    for i, ch in enumerate(text):
        cat = unicodedata.category(ch)
        if cat[0] in "LMN":
            out.append(ch)
        elif ch == "'" and 0 < i < len(text) - 1 and text[i - 1].isalnum() \
                and text[i + 1].isalnum():
            out.append(ch)
        else:
            out.append(" ")
    return " ".join("".join(out).split())


def transcript_metrics(references: Sequence[str], predictions: Sequence[str],
                       vocabulary: str | None = None) -> dict[str, float]:
    """Corpus ``wer`` and ``cer`` (jiwer) of ``predictions`` against ``references``, both
    through the same normalisation. With a ``vocabulary`` (a CTC head's characters):
    :func:`zoo.heads.asr.normalize_text`, the one its training targets go through
    (lower-case; hyphens, slashes, underscores, tabs and newlines become spaces; every
    character outside the vocabulary is dropped). Without one (Whisper, any language):
    :func:`normalize_transcript` (letters of any script, marks and digits kept, punctuation
    dropped). Either way "Hello, World." against "hello world" is no error; a wrong word
    is."""
    from zoo.metrics import asr_metrics

    if vocabulary:
        from zoo.heads.asr import normalize_text

        def norm(t: str) -> str:
            return normalize_text(t, vocabulary)
    else:
        norm = normalize_transcript
    return asr_metrics([norm(r) for r in references], [norm(str(h)) for h in predictions])


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
    #: ``txt``: each input's text on its own line; ``srt`` / ``vtt``: subtitles from each
    #: input's ``segments`` (start, end in seconds), one document per input; several
    #: inputs give their documents one after another (each SubRip one numbered from 1,
    #: each WebVTT one under its own ``WEBVTT`` line), so one input per call makes a file
    output_formats = ("txt", "srt", "vtt")

    def format_outputs(self, predictions: Sequence[Mapping[str, Any]], fmt: str) -> str:
        if fmt == "txt":
            return "".join(f"{p.get('text', '')}\n" for p in predictions)
        if fmt not in ("srt", "vtt"):
            return super().format_outputs(predictions, fmt)
        docs = []
        for i, p in enumerate(predictions):
            if not isinstance(p.get("segments"), list):
                raise ZooError(f"{fmt} subtitles need timestamped segments and prediction "
                               f"{i + 1} has none: run with --option timestamps=true "
                               f"(Whisper models; CTC models give none), or use --format txt")
            docs.append(_subtitles(p["segments"], fmt))
        return "".join(docs)

    def pipeline_tag(self, modalities: Sequence[str]) -> str | None:
        return "automatic-speech-recognition"

    def check_target(self, targets: Mapping[str, Any], where: str,
                     labels: Sequence[str] | None = None,
                     inputs: Mapping[str, Any] | None = None) -> None:
        if not isinstance(targets.get("transcript"), str):
            raise DataError(f"{where}: an ASR example needs a 'transcript' (a string)")

    def metrics(self, model: Any, examples: Sequence[Any], predictions: Sequence[dict],
                categories: Any = None) -> dict[str, float]:
        """WER and CER of the predicted texts, by :func:`transcript_metrics`: both sides
        normalised alike, with the head's character vocabulary where it has one (CTC), else
        any script's letters, marks and digits (Whisper). ``zoo eval`` and training's
        evaluation both come here."""
        self.check_targets(examples)
        return transcript_metrics([ex.targets["transcript"] for ex in examples],
                                  [p["text"] for p in predictions],
                                  getattr(model.head, "vocabulary", None))

    def pseudo_label(self, prediction: Mapping[str, Any]) -> tuple[dict[str, Any], float] | None:
        if "score" not in prediction:
            return None  # no confidence to sort sure from unsure by
        return {"transcript": prediction["text"]}, float(prediction["score"])

    def describe_targets(self, targets: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        words = sorted(len(str(t.get("transcript", "")).split()) for t in targets)
        return {"words_per_transcript": {"min": words[0], "median": words[len(words) // 2],
                                         "max": words[-1]}} if words else {}
