"""Text: a string. Words are the whitespace-separated pieces of it (what per-word tasks
label, one tag each)."""
from __future__ import annotations

import re
from typing import Any, Sequence

from zoo.plugin import Modality, RequestError

__all__ = ["Text", "word_spans"]

_WORD = re.compile(r"\S+")


def word_spans(text: str) -> list[tuple[int, int]]:
    """The (start, end) character offsets of each word: a maximal run of non-space
    characters, so ``" ".join(words)`` of pre-split tokens gives the same words back."""
    return [m.span() for m in _WORD.finditer(text)]


class Text(Modality):
    plain_string = True
    variable_length = True
    exportable = True  # token ids and masks: (B, T) with a dynamic T
    limits = {"max_text_chars": 100_000}
    card_example = '"text": "..."'

    def from_data(self, value: Any, root: Any, where: str) -> Any:
        if not isinstance(value, str):
            from zoo.plugin import DataError

            raise DataError(f"{where}: 'text' must be a string, got {type(value).__name__}")
        return value

    def check(self, value: Any) -> str | None:
        if not isinstance(value, str) or not value.strip():
            return "empty text"
        return None

    def length(self, value: Any) -> float:
        return float(len(value)) if isinstance(value, str) else 0.0

    def digest(self, value: Any) -> bytes:
        return str(value).strip().encode()

    def describe(self, values: Sequence[Any]) -> dict[str, Any] | None:
        lengths = sorted(len(v) for v in values if isinstance(v, str))
        if not lengths:
            return None
        return {"n": len(lengths), "min_chars": lengths[0],
                "median_chars": lengths[len(lengths) // 2], "max_chars": lengths[-1]}

    def from_request(self, value: Any, where: str, limits: Any) -> Any:
        if not isinstance(value, str):
            raise RequestError(f"{where} must be a string")
        if len(value) > limits.max_text_chars:
            raise RequestError(f"{where} is {len(value)} characters; the limit is "
                               f"{limits.max_text_chars} (ZOO_SERVE_MAX_TEXT_CHARS, or zoo "
                               f"serve --limit max_text_chars=...)", 413)
        return value

    def from_bytes(self, data: bytes, where: str, limits: Any) -> Any:
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            raise RequestError(f"{where} is not UTF-8 text") from None
        return self.from_request(text, where, limits)

    def request_schema(self) -> dict[str, Any]:
        return {"type": "string"}

    def explain_units(self, value: Any, max_units: int) -> list[dict[str, Any]]:
        from zoo.modalities.text_explain import text_units

        return text_units(value, max_units)

    def explain_ablate(self, value: Any, units: Sequence[dict[str, Any]],
                       keep: Sequence[bool]) -> Any:
        from zoo.modalities.text_explain import text_ablate

        return text_ablate(value, units, keep)

    def explain_render(self, value: Any, units: Sequence[dict[str, Any]],
                       attributions: Sequence[float], stem: Any, title: str) -> list[str]:
        from zoo.modalities.text_explain import text_html

        return text_html(value, units, attributions, stem, title)

    def explain_show(self, value: Any, units: Sequence[dict[str, Any]],
                     attributions: Sequence[float]) -> str | None:
        from zoo.modalities.text_explain import text_terminal

        return text_terminal(value, units, attributions)

    def corruptions(self, values: Sequence[Any] = ()) -> dict[str, Any]:
        """Keyboard typos, adjacent character swaps, case and whitespace (seeded)."""
        from zoo.modalities.text_corruptions import text_corruptions

        return text_corruptions()

    def samples(self) -> list[Any]:
        return ["a short sentence", "a second, somewhat longer sentence with more words"]

    scaffold_encoder = '''"""A bag-of-hashed-words text encoder: replace the network with yours."""
import zlib

import torch
from torch import nn

from zoo.plugin import DataError, Encoder, EncoderOutput


class {cls}(Encoder):
    modality = "text"
    outputs = ("pooled",)

    def __init__(self, dim=64, buckets=4096, pretrained=False, weights=None, assets_dir=None):
        super().__init__()
        self.dim, self.buckets = dim, buckets
        self.embed = nn.Embedding(buckets, dim, padding_idx=0)

    def preprocess(self, values):
        ids = []
        for v in values:
            if not isinstance(v, str):
                raise DataError(f"text input must be a string, got {{type(v).__name__}}")
            words = v.lower().split() or [""]
            ids.append([1 + zlib.crc32(w.encode()) % (self.buckets - 1) for w in words])
        width = max(len(x) for x in ids)
        return {{"input_ids": torch.tensor([x + [0] * (width - len(x)) for x in ids])}}

    def forward(self, input_ids):
        mask = (input_ids > 0).unsqueeze(-1).float()  # (B, T, 1)
        pooled = (self.embed(input_ids) * mask).sum(1) / mask.sum(1).clamp(min=1)  # (B, D)
        return EncoderOutput(pooled=pooled)
'''
