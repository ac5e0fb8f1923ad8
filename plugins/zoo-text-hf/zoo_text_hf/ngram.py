"""A language-independent text encoder trained from scratch: hashed word and character
n-grams (fastText's idea) summed into one vector.

No tokenizer and no vocabulary: words (1-2 grams) and characters inside word boundaries
(2-5 grams, so inflections and compounds share pieces) are hashed by scikit-learn's
``HashingVectorizer`` into ``buckets`` rows of an ``EmbeddingBag``; each text is the
weighted sum of its rows (sublinear counts, L2-normalised per text), then LayerNorm. It
reads any script, so it suits text an English WordPiece model cuts into ``[UNK]`` or single
characters. Nothing is saved beside the weights: the hashing is fixed by the config.
"""
from __future__ import annotations

from typing import Any, Sequence

import torch
from torch import nn

from zoo.plugin import DataError, Encoder, EncoderOutput

__all__ = ["NgramEncoder", "build_ngram"]


class NgramEncoder(Encoder):
    modality = "text"
    outputs = ("pooled",)

    def __init__(self, dim: int = 64, buckets: int = 131072, char_ngrams: Sequence[int] = (2, 5),
                 word_ngrams: Sequence[int] = (1, 2), lowercase: bool = True,
                 max_chars: int = 4000) -> None:
        super().__init__()
        self.dim, self.buckets = int(dim), int(buckets)
        self.char_ngrams, self.word_ngrams = tuple(char_ngrams), tuple(word_ngrams)
        self.lowercase, self.max_chars = bool(lowercase), int(max_chars)
        self.bag = nn.EmbeddingBag(self.buckets, self.dim, mode="sum")
        nn.init.normal_(self.bag.weight, std=0.1)
        self.norm = nn.LayerNorm(self.dim)
        self._hashers: tuple[Any, Any] | None = None

    def _vectorizers(self) -> tuple[Any, Any]:
        if self._hashers is None:
            from sklearn.feature_extraction.text import HashingVectorizer

            common = dict(n_features=self.buckets, alternate_sign=False, norm=None,
                          lowercase=self.lowercase, dtype="float32")
            self._hashers = (
                HashingVectorizer(analyzer="word", ngram_range=self.word_ngrams, **common),
                HashingVectorizer(analyzer="char_wb", ngram_range=self.char_ngrams, **common))
        return self._hashers

    def preprocess(self, values: Sequence[Any]) -> dict[str, torch.Tensor]:
        import numpy as np

        for v in values:
            if not isinstance(v, str):
                raise DataError(f"text input must be a string, got {type(v).__name__}")
        texts = [v[: self.max_chars] for v in values]
        words, chars = self._vectorizers()
        m = (words.transform(texts) + chars.transform(texts)).tocsr()  # (B, buckets) counts
        m.data = 1.0 + np.log(m.data)  # sublinear term frequency
        width = max(1, int(np.diff(m.indptr).max(initial=0)))
        ids = torch.zeros(len(texts), width, dtype=torch.long)  # (B, L), padded with row 0
        weights = torch.zeros(len(texts), width)  # (B, L), 0 on padding
        for i in range(len(texts)):
            a, b = m.indptr[i], m.indptr[i + 1]
            if b > a:
                w = m.data[a:b]
                ids[i, : b - a] = torch.from_numpy(m.indices[a:b].astype(np.int64))
                weights[i, : b - a] = torch.from_numpy((w / np.sqrt((w * w).sum())).astype(
                    np.float32))
        return {"ngram_ids": ids, "ngram_weights": weights}

    def forward(self, ngram_ids: torch.Tensor, ngram_weights: torch.Tensor) -> EncoderOutput:
        bag = self.bag(ngram_ids, per_sample_weights=ngram_weights.to(self.bag.weight.dtype))
        return EncoderOutput(pooled=self.norm(bag))  # (B, dim)

    def preprocessor_config(self) -> dict[str, Any]:
        return {"hashing": "sklearn HashingVectorizer (murmurhash3), word + char_wb",
                "buckets": self.buckets, "char_ngrams": list(self.char_ngrams),
                "word_ngrams": list(self.word_ngrams), "lowercase": self.lowercase,
                "max_chars": self.max_chars}


def build_ngram(*, pretrained: bool = False, weights: str | None = None,
                assets_dir: str | None = None, **kwargs: Any) -> NgramEncoder:
    """No pretrained weights exist for it: it always starts from scratch (``pretrained``
    only matters for encoders that have weights)."""
    return NgramEncoder(**kwargs)
