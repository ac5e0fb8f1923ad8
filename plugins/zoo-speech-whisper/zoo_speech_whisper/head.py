"""``whisper-decoder``: Whisper's text decoder as a zoo ASR head over a Whisper encoder's
sequence. It decodes each 30 s window of an example and joins the texts.

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

from .encoder import WINDOW_FRAMES
from .generate import Settings, beam_search, detect_language, greedy
from .modules import WhisperDecoderNet
from .tokenizer import WhisperTokenizer

__all__ = ["WhisperDecoderHead", "build_head"]

_MULTILINGUAL_VOCAB = 51865  # Whisper's multilingual vocabularies are this size or larger


class WhisperDecoderHead(Head):
    decode_options = ("num_beams", "language", "task", "max_new_tokens")

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

    def forward(self, encoded: Mapping[str, Any], batch: Any) -> dict[str, torch.Tensor]:
        if "audio" not in encoded or encoded["audio"][1].numel() != batch.size:
            raise DataError("speech recognition needs audio in every input")
        out, _ = encoded["audio"]
        return {"memory": out.sequence, "mask": out.mask}  # (B, T, D), (B, T)

    # ---- decoding -------------------------------------------------------------------
    def _windows(self, outputs: Mapping[str, torch.Tensor]) -> tuple[torch.Tensor, list[int]]:
        """(sum of windows, 1500, D) and each example's number of windows."""
        memory, mask = outputs["memory"], outputs["mask"]
        frames = mask.sum(1)  # (B,)
        if bool((frames % WINDOW_FRAMES != 0).any() | (frames == 0).any()):
            raise ZooError(f"whisper-decoder reads a Whisper encoder's whole 30 s windows "
                           f"({WINDOW_FRAMES} positions each); got sequences of "
                           f"{frames.tolist()} positions")
        counts = (frames // WINDOW_FRAMES).tolist()
        parts = [memory[i, :n * WINDOW_FRAMES].reshape(n, WINDOW_FRAMES, memory.shape[-1])
                 for i, n in enumerate(counts)]  # (n, 1500, D) each
        return torch.cat(parts), counts

    def _settings(self, max_new_tokens: int | None) -> Settings:
        t = self.tokenizer
        limit = self.decoder.max_positions // 2
        n = limit if max_new_tokens is None else max_new_tokens
        if not isinstance(n, int) or not 1 <= n <= limit:
            raise ZooError(f"max_new_tokens must be in 1..{limit}, got {max_new_tokens}")
        return Settings(eot=t.special.eot, suppress=tuple(t.suppress),
                        suppress_begin=tuple(t.suppress_begin), max_new_tokens=n)

    def _check(self, num_beams: Any, language: str | None, task: str,
               max_new_tokens: Any) -> Settings:
        self.tokenizer.check(language, task)
        if not isinstance(num_beams, int) or num_beams < 1:
            raise ZooError(f"num_beams must be an integer of at least 1, got {num_beams!r}")
        return self._settings(max_new_tokens)

    def check_decode_kwargs(self, kwargs: Mapping[str, Any]) -> None:
        """Names and values, before any audio is encoded."""
        super().check_decode_kwargs(kwargs)
        self._check(kwargs.get("num_beams", 1), kwargs.get("language") or self.language,
                    kwargs.get("task", "transcribe"), kwargs.get("max_new_tokens"))

    def decode(self, outputs: Mapping[str, torch.Tensor], batch: Any = None,
               num_beams: int = 1, language: str | None = None, task: str = "transcribe",
               max_new_tokens: int | None = None) -> list[dict[str, str]]:
        language = language or self.language
        settings = self._check(num_beams, language, task, max_new_tokens)
        with torch.inference_mode():
            memory, counts = self._windows(outputs)
            cross = self.decoder.cross_kv(memory)  # per layer: (N, H, 1500, hd) twice
            t = self.tokenizer
            if not t.multilingual:
                langs: list[int | None] = [None] * memory.shape[0]
            elif language is not None:
                langs = [t.languages[language]] * memory.shape[0]
            else:
                langs = detect_language(self.decoder, cross, t.special.sot,
                                        sorted(t.languages.values()))
            prompts = torch.tensor([t.prompt(lang, task) for lang in langs],
                                   device=memory.device)  # (N, P)
            if num_beams == 1:
                ids = greedy(self.decoder, cross, prompts, settings)
            else:
                ids = [beam_search(self.decoder, [(k[i:i + 1], v[i:i + 1]) for k, v in cross],
                                   prompts[i:i + 1], settings, num_beams)
                       for i in range(memory.shape[0])]
        texts, start = [], 0
        for n in counts:
            pieces = [t.decode(x) for x in ids[start:start + n]]
            texts.append(" ".join(p for p in pieces if p))
            start += n
        return [{"text": text} for text in texts]

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
