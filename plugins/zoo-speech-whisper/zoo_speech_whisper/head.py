"""``whisper-decoder``: Whisper's text decoder as a zoo ASR head over a Whisper encoder's
sequence.

Decoding runs Whisper's long-form loop (``transcribe.py``): 30 s windows from a seek pointer
that follows the timestamps the decoder writes, so a word at a window's edge is read whole
from the next window; silent windows are dropped (``<|nospeech|>``); each example gives its
``text`` and ``segments`` (start and end in seconds of the input). Decode options, with
openai-whisper's defaults where it has them:

- ``timestamps`` (true): decode with timestamp tokens; false: consecutive 30 s windows, text
  only (faster than timestamps by a few tokens per segment, but words at 30 s are cut);
- ``language`` (detected on the first 30 s when not given), ``task`` (``transcribe`` or
  ``translate`` into English), ``num_beams`` (1: greedy), ``max_new_tokens`` (per window);
- ``no_speech_threshold`` (0.6) and ``logprob_threshold`` (-1.0): a window whose
  ``<|nospeech|>`` probability is above the first, and whose average token log-probability
  is not above the second, yields no text; null turns either off;
- ``condition_on_previous_text`` (false, where openai-whisper says true): each window's
  prompt carries the text so far. Off by default: without openai-whisper's temperature
  fallback, which resets that prompt when decoding goes wrong, one window's repetition loop
  would carry into the next ones.

``tokenizer`` names the model.bin weights tag whose tokenizer.json and config.json (special
tokens, suppressed ids) it uses. Building the head converts that model.bin into the zoo
cache if it is not there yet, so that zoo can load the decoder's weights (the model entry's
``pretrained = "whisper-decoder.…"``, a file of that cache) into a pretrained model.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

import torch
from torch import nn
from torch.nn import functional as F

from zoo.plugin import DataError, Head, ZooError

from .audio import HOP, SAMPLE_RATE
from .encoder import MEL_FRAMES, WINDOW_FRAMES
from .generate import Settings
from .modules import WhisperDecoderNet
from .tokenizer import WhisperTokenizer
from .transcribe import Options, Recording, transcribe

__all__ = ["WhisperDecoderHead", "build_head"]

_MULTILINGUAL_VOCAB = 51865  # Whisper's multilingual vocabularies are this size or larger


#: every decode option and its default (openai-whisper's where it has one)
_DEFAULTS: dict[str, Any] = {"num_beams": 1, "language": None, "task": "transcribe",
                             "max_new_tokens": None, "timestamps": True,
                             "condition_on_previous_text": False,
                             "no_speech_threshold": 0.6, "logprob_threshold": -1.0}


class WhisperDecoderHead(Head):
    decode_options = tuple(_DEFAULTS)
    prompt_modality = "audio"  # the model passes the audio encoder to forward (see there)

    def __init__(self, inputs: Mapping[str, Mapping[str, Any]], *, tokenizer: str,
                 vocab_size: int = 51864, d_model: int = 384, layers: int = 4, heads: int = 6,
                 ffn_dim: int = 1536, positions: int = 448, language: str | None = None
                 ) -> None:
        super().__init__()
        audio = inputs.get("audio") or {}
        if "sequence" not in audio.get("outputs", ()):
            raise ZooError("whisper-decoder needs an audio encoder that gives a sequence")
        if int(audio.get("dim", -1)) != d_model:
            raise ZooError(f"whisper-decoder has width {d_model} but the audio encoder gives "
                           f"{audio.get('dim')}; use the matching Whisper encoder")
        from .cache import converted
        from .weights import model_bin

        self.language = language
        # parameters named as transformers' WhisperForConditionalGeneration: model.decoder.*
        self.model = nn.Module()
        self.model.decoder = WhisperDecoderNet(vocab_size, d_model, layers, heads, ffn_dim,
                                               positions)
        self.tokenizer = WhisperTokenizer(Path(model_bin(tokenizer).folder),
                                          multilingual=vocab_size >= _MULTILINGUAL_VOCAB)
        self.tokenizer.check(language, "transcribe")
        converted(tokenizer)  # the decoder weights zoo loads when pretrained: make sure of them

    @property
    def decoder(self) -> WhisperDecoderNet:
        return self.model.decoder

    @property
    def labels(self) -> None:  # not a classifier
        return None

    def forward(self, encoded: Mapping[str, Any], batch: Any,
                prompt_encoder: Any = None) -> dict[str, Any]:
        """The encoder's windows, and what decoding needs to cut windows of its own: the
        log-mel windows and sample counts of the batch, and the encoder to encode them (the
        model passes it because ``prompt_modality`` names it)."""
        if "audio" not in encoded or encoded["audio"][1].numel() != batch.size:
            raise DataError("speech recognition needs audio in every input")
        out, _ = encoded["audio"]
        result: dict[str, Any] = {"memory": out.sequence, "mask": out.mask}  # (B, T, D) (B, T)
        tensors = batch["audio"].tensors if "audio" in batch else {}
        if "features" in tensors and hasattr(prompt_encoder, "encode_windows"):
            result.update(features=tensors["features"], samples=tensors["samples"],
                          encode=prompt_encoder.encode_windows)
        return result

    # ---- decoding -------------------------------------------------------------------
    def _recordings(self, outputs: Mapping[str, Any]) -> tuple[list[Recording], list[float]]:
        """Each example's encoder windows (W, 1500, D), and its log-mel and length when the
        batch has them (features cached by the trainer do not: then fixed 30 s windows)."""
        memory, mask = outputs["memory"], outputs["mask"]
        frames = mask.sum(1)  # (B,)
        if bool((frames % WINDOW_FRAMES != 0).any() | (frames == 0).any()):
            raise ZooError(f"whisper-decoder reads a Whisper encoder's whole 30 s windows "
                           f"({WINDOW_FRAMES} positions each); got sequences of "
                           f"{frames.tolist()} positions")
        counts = (frames // WINDOW_FRAMES).tolist()
        feats, samples = outputs.get("features"), outputs.get("samples")
        recs, durations, start = [], [], 0
        for i, n in enumerate(counts):
            windows = memory[i, :n * WINDOW_FRAMES].reshape(n, WINDOW_FRAMES, -1)
            if feats is None:  # no log-mel: every window is all audio
                recs.append(Recording(windows, n * MEL_FRAMES))
                durations.append(n * 30.0)
                continue
            mel = feats[start:start + n].transpose(0, 1).flatten(1)  # (n_mels, n * 3000)
            count = int(samples[i])
            recs.append(Recording(windows, count // HOP, mel))
            durations.append(count / SAMPLE_RATE)
            start += n
        return recs, durations

    def _settings(self, max_new_tokens: int | None, timestamps: bool) -> Settings:
        t = self.tokenizer
        limit = self.decoder.max_positions // 2
        n = limit if max_new_tokens is None else max_new_tokens
        if not isinstance(n, int) or isinstance(n, bool) or not 1 <= n <= limit:
            raise ZooError(f"max_new_tokens must be in 1..{limit}, got {max_new_tokens}")
        return Settings(eot=t.special.eot, suppress=tuple(t.suppress),
                        suppress_begin=tuple(t.suppress_begin), max_new_tokens=n,
                        no_speech=t.special.no_speech, no_timestamps=t.special.no_timestamps,
                        timestamp_begin=t.timestamp_begin if timestamps else None)

    def _check(self, options: Mapping[str, Any]) -> tuple[Settings, Options]:
        """Every decode option, checked, with its default."""
        o = {**_DEFAULTS, **options}
        o["language"] = o["language"] or self.language
        self.tokenizer.check(o["language"], o["task"])
        beams = o["num_beams"]
        if not isinstance(beams, int) or isinstance(beams, bool) or beams < 1:
            raise ZooError(f"num_beams must be an integer of at least 1, got {beams!r}")
        for key in ("timestamps", "condition_on_previous_text"):
            if not isinstance(o[key], bool):
                raise ZooError(f"{key} must be true or false, got {o[key]!r}")
        for key in ("no_speech_threshold", "logprob_threshold"):
            if o[key] is not None and (isinstance(o[key], bool)
                                       or not isinstance(o[key], (int, float))):
                raise ZooError(f"{key} must be a number or null (off), got {o[key]!r}")
        opts = Options(task=o["task"], num_beams=beams, timestamps=o["timestamps"],
                       condition_on_previous_text=o["condition_on_previous_text"],
                       no_speech_threshold=o["no_speech_threshold"],
                       logprob_threshold=o["logprob_threshold"])
        return self._settings(o["max_new_tokens"], o["timestamps"]), opts

    def check_decode_kwargs(self, kwargs: Mapping[str, Any]) -> None:
        """Names and values, before any audio is encoded."""
        super().check_decode_kwargs(kwargs)
        self._check(kwargs)

    def decode(self, outputs: Mapping[str, Any], batch: Any = None,
               **options: Any) -> list[dict[str, Any]]:
        """One result per example: ``text``; ``segments`` (``start``, ``end`` in seconds of
        the input, ``text``) unless ``timestamps=False``; ``language`` (multilingual
        models). Options: see ``decode_options`` and the module docstring."""
        super().check_decode_kwargs(options)  # unknown names
        settings, opts = self._check(options)
        language = options.get("language") or self.language
        with torch.inference_mode():
            recs, durations = self._recordings(outputs)
            if self.tokenizer.multilingual and language is not None:
                for r in recs:
                    r.language = self.tokenizer.languages[language]
            if outputs.get("encode") is None:
                for r in recs:
                    r.mel = None
            return transcribe(self.decoder, self.tokenizer, recs, durations, settings, opts,
                              outputs.get("encode"))

    # ---- int8 (zoo's quantize="int8") -------------------------------------------------
    def quantize(self, mode: str) -> None:
        """Dynamic int8 for CPU inference (``zoo.load(..., quantize="int8")``): every
        linear layer of the decoder, and its output projection onto the vocabulary, which
        is tied to the token embeddings (so no layer the core would find) and the largest
        product of every decoding step."""
        if mode != "int8":
            raise ZooError(f"whisper-decoder quantizes to int8, not {mode!r}")
        from zoo.plugin import quantize_linear

        quantize_linear(self)
        self.decoder.quantize_output()

    # ---- fine-tuning (one window per example) ---------------------------------------
    def encode_targets(self, targets: Sequence[Mapping[str, Any]], batch: Any = None
                       ) -> dict[str, torch.Tensor]:
        t = self.tokenizer
        lang = t.languages.get(self.language or "en") if t.multilingual else None
        rows = []
        for i, target in enumerate(targets):
            text = target.get("transcript") if isinstance(target, Mapping) else target
            if not isinstance(text, str) or not text.strip():
                raise DataError(f"example {i}: ASR needs a non-empty 'transcript' string")
            prompt = t.prompt(lang)
            rows.append((len(prompt), prompt + t.encode(" " + text.strip()) + [t.special.eot]))
        longest = max(len(r) for _, r in rows)
        if longest > self.decoder.max_positions + 1:
            raise DataError(f"a transcript is longer than Whisper's "
                            f"{self.decoder.max_positions} tokens")
        tokens = torch.full((len(rows), longest), t.special.eot, dtype=torch.long)
        labels = torch.full((len(rows), longest), -100, dtype=torch.long)  # -100: no loss
        for i, (p, r) in enumerate(rows):
            tokens[i, :len(r)] = torch.tensor(r)
            labels[i, p:len(r)] = torch.tensor(r[p:])  # text tokens and end of text
        return {"tokens": tokens, "labels": labels}

    def loss(self, outputs: Mapping[str, torch.Tensor], targets: Mapping[str, torch.Tensor]
             ) -> torch.Tensor:
        if bool((outputs["mask"].sum(1) > WINDOW_FRAMES).any()):
            raise DataError("fine-tuning Whisper takes clips of at most 30 s")
        memory = outputs["memory"][:, :WINDOW_FRAMES]  # (B, 1500, D)
        tokens = targets["tokens"].to(memory.device)
        labels = targets["labels"].to(memory.device)
        logits, _ = self.decoder(tokens[:, :-1], self.decoder.cross_kv(memory))  # (B, L-1, V)
        return F.cross_entropy(logits.flatten(0, 1).float(), labels[:, 1:].flatten(),
                               ignore_index=-100)


def build_head(inputs: Mapping[str, Any], **kwargs: Any) -> WhisperDecoderHead:
    return WhisperDecoderHead(inputs, **kwargs)
