"""Whisper's byte-level BPE tokenizer (``tokenizer.json``, read by the ``tokenizers`` library)
and the special tokens and suppression lists decoding needs (CTranslate2's ``config.json``)."""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from zoo.plugin import ZooError

__all__ = ["WhisperTokenizer"]

_TASKS = ("transcribe", "translate")


@dataclass(frozen=True)
class _Special:
    eot: int
    sot: int
    transcribe: int
    translate: int
    sot_lm: int
    sot_prev: int
    no_speech: int
    no_timestamps: int


class WhisperTokenizer:
    """Text <-> token ids, and the prompts and suppressed ids of Whisper decoding."""

    def __init__(self, folder: Path, multilingual: bool) -> None:
        from tokenizers import Tokenizer

        folder = Path(folder)
        try:
            self._tok = Tokenizer.from_file(str(folder / "tokenizer.json"))
            cfg = json.loads((folder / "config.json").read_text())
        except Exception as e:  # OSError, ValueError, or the tokenizers library's own
            raise ZooError(f"cannot read Whisper tokenizer.json/config.json in {folder}: "
                           f"{str(e).splitlines()[0] if str(e) else type(e).__name__}") from None
        self.multilingual = multilingual
        ids = {name: self._id(token) for name, token in (
            ("eot", "<|endoftext|>"), ("sot", "<|startoftranscript|>"),
            ("transcribe", "<|transcribe|>"), ("translate", "<|translate|>"),
            ("sot_lm", "<|startoflm|>"), ("sot_prev", "<|startofprev|>"),
            ("no_timestamps", "<|notimestamps|>"))}
        no_speech = self._tok.token_to_id("<|nospeech|>")
        ids["no_speech"] = no_speech if no_speech is not None else self._id("<|nocaptions|>")
        self.special = _Special(**ids)
        self.languages = {}  # code -> token id
        for i in cfg.get("lang_ids") or []:
            token = self._tok.id_to_token(int(i)) or ""
            if token.startswith("<|") and token.endswith("|>"):
                self.languages[token[2:-2]] = int(i)
        s = self.special
        # every step: the model's non-speech tokens + task/control tokens (as faster-whisper
        # and openai-whisper do); the first step: blank and end of text too
        self.suppress = sorted(set(int(i) for i in cfg.get("suppress_ids") or [])
                               | {s.transcribe, s.translate, s.sot, s.sot_prev, s.sot_lm,
                                  s.no_speech})
        self.suppress_begin = sorted(int(i) for i in cfg.get("suppress_ids_begin") or [])

    def _id(self, token: str) -> int:
        i = self._tok.token_to_id(token)
        if i is None:
            raise ZooError(f"Whisper tokenizer has no {token} token")
        return int(i)

    def check(self, language: str | None, task: str) -> None:
        if task not in _TASKS:
            raise ZooError(f"task must be one of {', '.join(_TASKS)}, got {task!r}")
        if not self.multilingual:
            if language not in (None, "en") or task != "transcribe":
                raise ZooError("this Whisper model is English-only: language must be 'en' "
                               "(or None) and task 'transcribe'")
        elif language is not None and language not in self.languages:
            raise ZooError(f"unknown language {language!r} (e.g. "
                           f"{', '.join(sorted(self.languages)[:8])}, ...)")

    @property
    def timestamp_begin(self) -> int:
        """The id of ``<|0.00|>``: timestamps (one every 20 ms) follow ``<|notimestamps|>``
        to the end of the vocabulary (tokenizer.json does not list them)."""
        return self.special.no_timestamps + 1

    def prompt(self, language_id: int | None, task: str = "transcribe",
               timestamps: bool = False, previous: Sequence[int] = ()) -> list[int]:
        """The start of a transcript: ``<|startofprev|>`` and the previous text's tokens when
        given, ``<|startoftranscript|>`` then, for multilingual models, the language and
        task, then ``<|notimestamps|>`` unless decoding with timestamps."""
        s = self.special
        head = [s.sot_prev, *previous] if previous else []
        if not self.multilingual:
            body = [s.sot]
        elif language_id is None:
            raise ZooError("a multilingual prompt needs a language")
        else:
            body = [s.sot, language_id, s.transcribe if task == "transcribe" else s.translate]
        return head + body + ([] if timestamps else [s.no_timestamps])

    def encode(self, text: str) -> list[int]:
        return list(self._tok.encode(text, add_special_tokens=False).ids)

    def decode(self, ids: list[int], strip: bool = True) -> str:
        """Text tokens only (special and timestamp tokens dropped), stripped unless asked
        not to be (a segment's text keeps its leading space, to be joined to others)."""
        text = self._tok.decode([i for i in ids if i < self.special.eot])
        return text.strip() if strip else text

    def language_code(self, language_id: int) -> str:
        """``en`` for the id of ``<|en|>``."""
        return next(code for code, i in self.languages.items() if i == language_id)
