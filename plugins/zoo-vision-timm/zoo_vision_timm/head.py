"""A linear classifier on an image encoder's pooled embedding, by default over the 1000
ImageNet-1k classes (human-readable names from timm), so a pretrained network's own
classifier can be loaded into it: the ready ImageNet models."""
from __future__ import annotations

from typing import Any, Sequence

import torch
from torch import nn
from torch.nn import functional as F

from zoo.plugin import DataError, Head, ZooError


def imagenet_labels() -> list[str]:
    """The 1000 ImageNet-1k class descriptions in index order ("tabby, tabby cat"); the
    two synsets both called "crane" are told apart by their WordNet id."""
    from timm.data import ImageNetInfo

    info = ImageNetInfo()
    names = [info.index_to_description(i) for i in range(info.num_classes())]
    dup = {n for n in names if names.count(n) > 1}
    return [f"{n} ({info.index_to_label_name(i)})" if n in dup else n
            for i, n in enumerate(names)]


class ImageClassifierHead(Head):
    decode_options = ("top_k",)

    def __init__(self, inputs: dict[str, Any] | None = None, in_dim: int | None = None,
                 labels: Sequence[str] | None = None, multi_label: bool = False,
                 top_k: int = 5, temperature: float = 1.0) -> None:
        super().__init__()
        if multi_label:
            raise ZooError("this classifier is single-label; compose the 'classification' "
                           "head for multi-label data")
        dim = in_dim if in_dim is not None else int((inputs or {}).get("image", {}).get("dim"))
        self.labels = [str(x) for x in labels] if labels else imagenet_labels()
        self.top_k = int(top_k)
        if isinstance(temperature, bool) or not isinstance(temperature, (int, float)) \
                or not 0 < temperature < 1e4:
            raise ZooError(f"temperature must be a number > 0, got {temperature!r}")
        self.temperature = float(temperature)  # zoo calibrate: softmax(logits / T)
        self.fc = nn.Linear(dim, len(self.labels))  # (B, D) -> (B, C)
        self._index = {lab: i for i, lab in enumerate(self.labels)}

    def probe_layer(self) -> nn.Linear:
        return self.fc  # the closed-form probe start writes a logistic regression here

    def forward(self, encoded: Any, batch: Any = None) -> torch.Tensor:
        if "image" not in encoded or encoded["image"][1].numel() != batch.size:
            raise DataError("an image classifier needs an image in every input")
        return self.fc(encoded["image"][0].pooled)  # (B, C) logits

    def encode_targets(self, targets: Sequence[Any], batch: Any = None) -> torch.Tensor:
        if any("label" not in t for t in targets):
            raise DataError("an image classification example needs a 'label'")
        try:
            return torch.tensor([self._index[str(t["label"])] for t in targets])  # (B,)
        except KeyError as e:
            raise DataError(f"label {e.args[0]!r} is not one of the model's labels") from None

    def loss(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(outputs, targets.to(outputs.device))

    def decode(self, outputs: torch.Tensor, batch: Any = None, top_k: int | None = None
               ) -> list[dict[str, Any]]:
        k = min(top_k or self.top_k, len(self.labels))
        probs = (outputs.float() / self.temperature).softmax(-1)
        top = probs.topk(k, dim=-1)
        results = []
        for values, indices in zip(top.values.tolist(), top.indices.tolist()):
            scores = {self.labels[i]: v for i, v in zip(indices, values)}
            results.append({"label": self.labels[indices[0]], "score": values[0],
                            "scores": scores})
        return results

    def config(self) -> dict[str, Any]:
        out = {k: v for k, v in super().config().items() if k != "temperature"}
        if self.temperature != 1.0:  # (uncalibrated configs stay as they were)
            out["temperature"] = self.temperature
        return out
