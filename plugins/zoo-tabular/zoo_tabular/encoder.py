"""``tabular-mlp``: numeric columns standardised, categorical columns embedded, an MLP.

Unfitted, the encoder knows no columns; ``fit`` (called by ``zoo train`` with the training
split's rows, before the optimizer exists) decides each column's kind, fits the means,
standard deviations and vocabularies, and builds the layers to fit them. ``config()``
returns what it fitted, so a saved model is rebuilt with the same columns and its weights
load into the same shapes."""
from __future__ import annotations

import math
from collections import Counter
from typing import Any, Mapping, Sequence

import torch
from torch import nn

from zoo.plugin import DataError, Encoder, EncoderOutput, ZooError

__all__ = ["TabularMLP", "build_encoder"]

CLIP = 5.0  # standardised values beyond +-5 sigma are clipped: one outlier cannot dominate


def _number(v: Any, col: str) -> float | None:
    if v is None or v == "":
        return None
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        return float(v) if math.isfinite(v) else None
    try:
        f = float(v)  # "3.5" from an untyped cell
    except (TypeError, ValueError):
        raise DataError(f"tabular column {col!r} is numeric (fitted on numbers); got "
                        f"{str(v)[:40]!r}") from None
    return f if math.isfinite(f) else None


def _embedding_dim(n: int) -> int:
    return max(2, min(16, round(1.6 * n ** 0.56)))


class TabularMLP(Encoder):
    modality = "tabular"
    outputs = ("pooled",)

    def __init__(self, dim: int = 64, hidden: int = 128, max_categories: int = 64,
                 dropout: float = 0.1, numeric: Mapping[str, Sequence[float]] | None = None,
                 categorical: Mapping[str, Sequence[str]] | None = None) -> None:
        super().__init__()
        self.dim, self.hidden = int(dim), int(hidden)
        self.max_categories, self.dropout = int(max_categories), float(dropout)
        self.numeric: dict[str, list[float]] | None = None
        self.categorical: dict[str, list[str]] | None = None
        self.mlp: nn.Module | None = None
        if numeric is not None or categorical is not None:
            self._build(dict(numeric or {}), dict(categorical or {}))

    # ---- fitting ------------------------------------------------------------------------
    @property
    def fitted(self) -> bool:
        return self.mlp is not None

    def fit(self, values: Sequence[Mapping[str, Any]]) -> None:
        """Each column's kind and statistics from the training rows; a fitted encoder
        (fine-tuning a saved model) keeps what it has."""
        if self.fitted:
            return
        cols: dict[str, list[Any]] = {}
        for row in values:
            for k, v in row.items():
                cols.setdefault(k, []).append(v)
        if not cols:
            raise DataError("tabular: no training rows to fit the columns to")
        numeric, categorical = {}, {}
        for col in sorted(cols):
            present = [v for v in cols[col] if v not in (None, "")]
            if present and all(isinstance(v, (int, float)) and not isinstance(v, bool)
                               for v in present):
                xs = torch.tensor([float(v) for v in present], dtype=torch.float64)
                std = float(xs.std(unbiased=False)) if len(xs) > 1 else 0.0
                numeric[col] = [float(xs.mean()), std if std > 1e-12 else 1.0]
            else:
                counts = Counter(str(v) for v in present)
                categorical[col] = [v for v, _ in sorted(counts.items(),
                                                         key=lambda kv: (-kv[1], kv[0]))
                                    ][:self.max_categories]
        self._build(numeric, categorical)

    def _build(self, numeric: dict[str, list[float]], categorical: dict[str, list[str]]
               ) -> None:
        self.numeric = {k: [float(a), float(b)] for k, a_b in numeric.items()
                        for a, b in [a_b]}
        self.categorical = {k: [str(x) for x in v] for k, v in categorical.items()}
        self._index = {k: {v: i + 2 for i, v in enumerate(vs)}  # 0 missing, 1 unseen
                       for k, vs in self.categorical.items()}
        stats = list(self.numeric.values()) or [[0.0, 1.0]]
        self.register_buffer("mean", torch.tensor([s[0] for s in stats]), persistent=False)
        self.register_buffer("std", torch.tensor([s[1] for s in stats]), persistent=False)
        self.embeddings = nn.ModuleList(nn.Embedding(len(v) + 2, _embedding_dim(len(v) + 2))
                                        for v in self.categorical.values())
        width = 2 * max(len(self.numeric), 1) + sum(e.embedding_dim for e in self.embeddings)
        self.mlp = nn.Sequential(nn.Linear(width, self.hidden), nn.GELU(),
                                 nn.Dropout(self.dropout), nn.Linear(self.hidden, self.dim),
                                 nn.LayerNorm(self.dim))

    def config(self) -> dict[str, Any]:
        cfg = {"dim": self.dim, "hidden": self.hidden, "max_categories": self.max_categories,
               "dropout": self.dropout}
        if self.fitted:
            cfg.update(numeric=self.numeric, categorical=self.categorical)
        return cfg

    def preprocessor_config(self) -> dict[str, Any]:
        return {"numeric": self.numeric, "categorical": self.categorical,
                "scaling": f"(x - mean) / std, clipped to +-{CLIP:g}; missing -> 0 + a flag",
                "categories": "0 missing, 1 unseen, 2.. the vocabulary by training frequency"}

    # ---- running ------------------------------------------------------------------------
    def preprocess(self, values: Sequence[Mapping[str, Any]]) -> dict[str, torch.Tensor]:
        if not self.fitted:
            raise ZooError("the tabular encoder is not fitted yet: train the model first "
                           "(`zoo train MODEL --train data.csv --column tabular=a,b,c`), "
                           "which fits its columns to the training data")
        known = [*self.numeric, *self.categorical]
        nums, miss, cats = [], [], []
        for row in values:
            if not isinstance(row, Mapping) or not any(row.get(c) not in (None, "")
                                                       for c in known):
                raise DataError(f"a tabular input has none of the model's columns "
                                f"({', '.join(known[:20])})")
            xs = [_number(row.get(c), c) for c in self.numeric]
            nums.append([0.0 if x is None else x for x in xs] or [0.0])
            miss.append([1.0 if x is None else 0.0 for x in xs] or [0.0])
            cats.append([0 if row.get(c) in (None, "") else self._index[c].get(str(row[c]), 1)
                         for c in self.categorical] or [0])
        return {"numeric": torch.tensor(nums, dtype=torch.float32),  # (B, max(N, 1))
                "missing": torch.tensor(miss, dtype=torch.float32),  # (B, max(N, 1))
                "categories": torch.tensor(cats, dtype=torch.long)}  # (B, max(K, 1))

    def forward(self, numeric: torch.Tensor, missing: torch.Tensor,
                categories: torch.Tensor) -> EncoderOutput:
        if self.mlp is None:
            raise ZooError("the tabular encoder is not fitted yet: train the model first")
        x = ((numeric - self.mean) / self.std).clamp(-CLIP, CLIP) * (1 - missing)
        parts = [x, missing] + [emb(categories[:, j]) for j, emb in enumerate(self.embeddings)]
        return EncoderOutput(pooled=self.mlp(torch.cat(parts, dim=-1)))  # (B, dim)


def build_encoder(*, pretrained: bool = False, weights: Any = None, assets_dir: Any = None,
                  **kwargs: Any) -> TabularMLP:
    return TabularMLP(**kwargs)
