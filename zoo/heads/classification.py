"""Classification head: single-label (softmax) or multi-label (sigmoid + threshold)."""
from __future__ import annotations

from typing import Any, Sequence

import torch
from torch import nn

from zoo.plugin import Head
from torch.nn import functional as F

from zoo.plugin import DataError, ZooError


class ClassificationHead(Head):
    concurrent_forward = True  # forward keeps no state: batches may run side by side

    def __init__(self, in_dim: int, labels: Sequence[str] | None = None,
                 multi_label: bool = False, threshold: float = 0.5,
                 temperature: float = 1.0) -> None:
        super().__init__()
        if not labels:
            raise ZooError("a classification head needs its labels: pass labels=[...] to "
                           "create_model, or train on a manifest (the head takes its labels)")
        labels = [str(x) for x in labels]
        if len(set(labels)) != len(labels):
            raise ZooError(f"classification labels must be distinct, got {labels}")
        self.labels = labels
        self.multi_label = bool(multi_label)
        if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) \
                or not 0 <= threshold <= 1:
            raise ZooError(f"threshold must be a number in [0, 1], got {threshold!r}")
        self.threshold = float(threshold)
        if isinstance(temperature, bool) or not isinstance(temperature, (int, float)) \
                or not 0 < temperature < 1e4:
            raise ZooError(f"temperature must be a number > 0, got {temperature!r}")
        # temperature scaling (zoo calibrate): scores are softmax(logits / T); the label
        # chosen never changes, training and the loss never see it
        self.temperature = float(temperature)
        self.proj = nn.Linear(in_dim, len(labels))  # (B, in_dim) -> (B, C)
        self._index = {label: i for i, label in enumerate(labels)}

    def forward(self, fused: torch.Tensor) -> torch.Tensor:
        return self.proj(fused)  # (B, C) logits

    def encode_targets(self, targets: Sequence[Any], batch: Any = None) -> torch.Tensor:
        """One target dict (with ``label``) or bare label per example -> class indices
        (B,), or a multi-hot (B, C) for multi-label."""
        targets = [t["label"] if isinstance(t, dict) else t for t in targets]
        return self._encode(targets)

    def _encode(self, targets: Sequence[Any]) -> torch.Tensor:
        def idx(label: Any) -> int:
            try:
                return self._index[str(label)]
            except KeyError:
                raise DataError(f"label {label!r} is not one of the model's labels "
                                f"{self.labels}") from None

        if self.multi_label:
            y = torch.zeros(len(targets), len(self.labels))
            for i, t in enumerate(targets):
                for label in ([t] if isinstance(t, str) else t):
                    y[i, idx(label)] = 1.0
            return y  # (B, C) multi-hot
        return torch.tensor([idx(t) for t in targets], dtype=torch.long)  # (B,)

    def loss(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        if self.multi_label:
            return F.binary_cross_entropy_with_logits(logits, targets.float())
        return F.cross_entropy(logits, targets)

    def decode(self, logits: torch.Tensor, batch: Any = None) -> list[dict[str, Any]]:
        logits = logits / self.temperature if self.temperature != 1.0 else logits
        probs = (torch.sigmoid(logits) if self.multi_label else logits.softmax(-1)).tolist()
        out = []
        for p in probs:
            scores = dict(zip(self.labels, p))
            if self.multi_label:
                chosen = [(lab, s) for lab, s in scores.items() if s >= self.threshold]
                out.append({"label": [lab for lab, _ in chosen],
                            "score": [s for _, s in chosen], "scores": scores})
            else:
                best = max(range(len(p)), key=p.__getitem__)
                out.append({"label": self.labels[best], "score": p[best], "scores": scores})
        return out

    def probe_layer(self) -> nn.Linear | None:
        return None if self.multi_label else self.proj

    def config(self) -> dict[str, Any]:
        out = {"labels": list(self.labels), "multi_label": self.multi_label,
               "threshold": self.threshold}
        if self.temperature != 1.0:  # (uncalibrated configs stay as they were)
            out["temperature"] = self.temperature
        return out
