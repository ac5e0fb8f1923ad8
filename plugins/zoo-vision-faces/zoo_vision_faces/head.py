"""``mtcnn``: MTCNN's last stage as a detection head. O-Net scores and refines the
candidates ``mtcnn-input`` found, NMS (overlap over the smaller box) keeps one box per face,
and boxes go back to pixels of the original image. Inference only."""
from __future__ import annotations

from typing import Any, Mapping, Sequence

import torch

from zoo.plugin import DataError, Head, ZooError

from .nets import ONetLayers, crops, fitted_size, nms_min, regress


class MTCNNHead(ONetLayers, Head):
    decode_options = ("score_threshold",)

    def __init__(self, inputs: Mapping[str, Any] | None = None, threshold: float = 0.7,
                 nms_iou: float = 0.7, score_threshold: float = 0.0) -> None:
        super().__init__()
        img = (inputs or {}).get("image")
        if img is not None and tuple(img.get("feature_channels") or ()) != (3, 5):
            raise ZooError("the 'mtcnn' head reads the pixels and candidates of the "
                           "'mtcnn-input' encoder: use encoders = { image = \"mtcnn-input\" }")
        self.labels = ["face"]
        self.threshold, self.nms_iou = float(threshold), float(nms_iou)
        self.score_threshold = float(score_threshold)

    def forward(self, encoded: Any, batch: Any = None) -> list[torch.Tensor]:
        """One (N, 5) tensor per example: x1, y1, x2, y2 in original pixels, score."""
        n = batch.size if batch is not None else None
        if "image" not in encoded:
            raise DataError("face detection needs an image in every input")
        out, index = encoded["image"]
        pixels, props = out.features[0], out.features[1]
        size = int(pixels.shape[-1])
        results = [pixels.new_zeros(0, 5) for _ in range(n if n is not None else len(index))]
        for row, i in enumerate(index.tolist()):
            oh, ow = (int(x) for x in out.image_sizes[row])
            h, w = fitted_size(oh, ow, size)
            cand = props[row, :, :, 0].T  # (K, 5)
            cand = cand[cand[:, 4] >= 0]
            if not len(cand):
                continue
            patches, keep = crops(pixels[row, :, :h, :w], cand, 48)
            cand = cand[keep]
            offsets, prob = self.onet(patches)
            ok = prob > self.threshold
            boxes = regress(torch.cat([cand[ok, :4], prob[ok, None]], 1), offsets[ok])
            boxes = boxes[nms_min(boxes[:, :4], boxes[:, 4], self.nms_iou)]
            boxes[:, [0, 2]] *= ow / w
            boxes[:, [1, 3]] *= oh / h
            results[i] = boxes
        return results

    def encode_targets(self, targets: Sequence[Any], batch: Any = None) -> Any:
        raise ZooError("the MTCNN head is inference-only (its pretrained cascade is not "
                       "trained in zoo)")

    def loss(self, outputs: Any, targets: Any) -> torch.Tensor:
        raise ZooError("the MTCNN head is inference-only")

    def decode(self, outputs: Sequence[torch.Tensor], batch: Any = None,
               score_threshold: float | None = None) -> list[dict[str, Any]]:
        t = self.score_threshold if score_threshold is None else float(score_threshold)
        res = []
        for boxes in outputs:
            boxes = boxes[boxes[:, 4] >= t]
            res.append({"boxes": [[round(float(v), 2) for v in b[:4]] for b in boxes],
                        "labels": ["face"] * len(boxes),
                        "scores": [round(float(b[4]), 5) for b in boxes]})
        return res
