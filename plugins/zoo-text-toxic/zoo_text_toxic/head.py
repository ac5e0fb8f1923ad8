"""``toxicity-classifier``: a 50-unit ReLU layer and one output per label over a text
encoder's pooled vector, as the Keras model ends. Multi-label by default (a sigmoid per
label, labels at or above ``threshold`` chosen); single-label (softmax) when fine-tuned on
data with one label per example."""
from __future__ import annotations

from typing import Any, Sequence

import torch
from torch import nn
from torch.nn import functional as F

from zoo.plugin import DataError, Head, ZooError

__all__ = ["LABELS", "ToxicityHead"]

LABELS = ("toxic", "severe_toxic", "obscene", "threat", "insult", "identity_hate")


class ToxicityHead(Head):
    decode_options = ("threshold",)

    def __init__(self, inputs: dict[str, Any] | None = None, in_dim: int | None = None,
                 labels: Sequence[str] | None = None, multi_label: bool = True,
                 threshold: float = 0.5, hidden: int = 50, dropout: float = 0.1) -> None:
        super().__init__()
        if in_dim is None:
            if not inputs or len(inputs) != 1:
                raise ZooError("the toxicity classifier reads one text encoder's pooled "
                               "vector; compose it with one encoder and no fusion")
            in_dim = int(next(iter(inputs.values()))["dim"])
        self.labels = [str(x) for x in (labels or LABELS)]
        self.multi_label, self.threshold = bool(multi_label), float(threshold)
        self.hidden = nn.Linear(int(in_dim), int(hidden))
        self.dropout = nn.Dropout(float(dropout))
        self.out = nn.Linear(int(hidden), len(self.labels))
        self._index = {lab: i for i, lab in enumerate(self.labels)}

    def forward(self, encoded: Any, batch: Any = None) -> torch.Tensor:
        out, index = next(iter(encoded.values()))
        if batch is not None and index.numel() != batch.size:
            raise DataError("the toxicity classifier needs a text in every input")
        return self.out(self.dropout(F.relu(self.hidden(out.pooled))))  # (B, C) logits

    def encode_targets(self, targets: Sequence[Any], batch: Any = None) -> torch.Tensor:
        def idx(label: Any) -> int:
            try:
                return self._index[str(label)]
            except KeyError:
                raise DataError(f"label {label!r} is not one of the model's labels "
                                f"{self.labels}") from None

        labels = [t["label"] if isinstance(t, dict) else t for t in targets]
        if not self.multi_label:
            return torch.tensor([idx(lab) for lab in labels], dtype=torch.long)  # (B,)
        y = torch.zeros(len(labels), len(self.labels))
        for i, lab in enumerate(labels):
            for one in ([lab] if isinstance(lab, str) else lab):
                y[i, idx(one)] = 1.0
        return y  # (B, C) multi-hot

    def loss(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        if self.multi_label:
            return F.binary_cross_entropy_with_logits(logits, targets.float())
        return F.cross_entropy(logits, targets)

    def decode(self, logits: torch.Tensor, batch: Any = None,
               threshold: float | None = None) -> list[dict[str, Any]]:
        thr = self.threshold if threshold is None else float(threshold)
        probs = (torch.sigmoid(logits) if self.multi_label else logits.softmax(-1)).tolist()
        out = []
        for p in probs:
            scores = dict(zip(self.labels, p))
            if self.multi_label:
                chosen = [(lab, s) for lab, s in scores.items() if s >= thr]
                out.append({"label": [lab for lab, _ in chosen],
                            "score": [s for _, s in chosen], "scores": scores})
            else:
                best = max(range(len(p)), key=p.__getitem__)
                out.append({"label": self.labels[best], "score": p[best], "scores": scores})
        return out

    def check_decode_kwargs(self, kwargs: Any) -> None:
        super().check_decode_kwargs(kwargs)
        thr = kwargs.get("threshold", 0.5)
        if isinstance(thr, bool) or not isinstance(thr, (int, float)) or not 0 <= thr <= 1:
            raise ZooError(f"threshold must be a number in [0, 1], got {thr!r}")

    def config(self) -> dict[str, Any]:
        return {"labels": list(self.labels), "multi_label": self.multi_label,
                "threshold": self.threshold, "hidden": self.hidden.out_features,
                "dropout": self.dropout.p}
