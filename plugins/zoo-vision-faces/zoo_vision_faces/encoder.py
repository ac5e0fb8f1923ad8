"""``mtcnn-input``: MTCNN's proposal stages as an image encoder.

preprocess: each image (shrunk so its longer side is at most ``max_size``) at the top-left of
a fixed ``max_size`` square canvas of raw 0-255 pixels, so feature maps have one size across
batches (zoo's frozen-feature cache stacks them). forward: P-Net over an image pyramid, NMS,
R-Net on the candidates, NMS; gives ``features = [pixels (B, 3, S, S), candidates (B, 5, K,
1)]`` (x1, y1, x2, y2, score in canvas pixels; score -1 marks padding), ``strides = (1, 1)``,
``image_sizes`` and ``input_size``; ``pooled`` (B, 1) is the best R-Net face probability.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch
from torchvision.ops import nms

from zoo.plugin import Encoder, EncoderOutput, read_image

from .nets import PNet, RNet, crops, fitted_size, normalise, regress, square


class MTCNNInput(Encoder):
    modality = "image"
    outputs = ("pooled", "features")
    feature_channels = (3, 5)
    feature_strides = (1, 1)

    def __init__(self, max_size: int = 1024, min_face_size: int = 20, factor: float = 0.709,
                 thresholds: Sequence[float] = (0.6, 0.7), max_proposals: int = 256) -> None:
        super().__init__()
        self.dim = 1
        self.max_size, self.min_face_size, self.factor = int(max_size), min_face_size, factor
        self.thresholds = [float(t) for t in thresholds]
        self.max_proposals = int(max_proposals)
        self.pnet, self.rnet = PNet(), RNet()

    def preprocessor_config(self) -> dict[str, Any]:
        return {"max_size": self.max_size, "layout": "top-left on a square canvas, 0-255"}

    def preprocess(self, values: Sequence[Any]) -> dict[str, torch.Tensor]:
        from PIL import Image

        s = self.max_size
        canvas = torch.zeros(len(values), 3, s, s)  # (B, 3, S, S) raw RGB 0-255
        sizes = []
        for i, v in enumerate(values):
            img = read_image(v)
            sizes.append((img.height, img.width))
            h, w = fitted_size(img.height, img.width, s)
            if (h, w) != (img.height, img.width):
                img = img.resize((w, h), Image.BILINEAR)
            canvas[i, :, :h, :w] = torch.from_numpy(np.asarray(img, dtype=np.uint8).copy()
                                                    ).permute(2, 0, 1).float()
        return {"pixels": canvas, "image_sizes": torch.tensor(sizes, dtype=torch.long)}

    # ---- the proposal stages on one image (3, h, w) ----------------------------------
    def _pyramid(self, image: torch.Tensor) -> torch.Tensor:
        h, w = image.shape[-2:]
        m = 12.0 / self.min_face_size
        scale, side, found = m, min(h, w) * m, []
        x = normalise(image[None])
        while side >= 12:
            small = torch.nn.functional.interpolate(
                x, size=(int(h * scale + 1), int(w * scale + 1)), mode="area")
            offsets, prob = self.pnet(small)  # (1, 4, h', w'), (1, h', w')
            ys, xs = (prob[0] >= self.thresholds[0]).nonzero(as_tuple=True)
            if len(ys):
                cell = torch.stack([xs, ys], 1).to(x.dtype)
                lo, hi = ((2 * cell + 1) / scale).floor(), ((2 * cell + 12) / scale).floor()
                b = torch.cat([lo, hi, prob[0, ys, xs, None], offsets[0, :, ys, xs].T], 1)
                found.append(b[nms(b[:, :4], b[:, 4], 0.5)])
            scale, side = scale * self.factor, side * self.factor
        if not found:
            return image.new_zeros(0, 5)
        b = torch.cat(found)
        b = b[nms(b[:, :4], b[:, 4], 0.7)]
        return square(regress(b[:, :5], b[:, 5:], plus_one=False))

    def _refine(self, image: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
        if not len(boxes):
            return boxes
        patches, keep = crops(image, boxes, 24)
        boxes = boxes[keep]
        offsets, prob = self.rnet(patches)
        ok = prob > self.thresholds[1]
        boxes = torch.cat([boxes[ok, :4], prob[ok, None]], 1)
        pick = nms(boxes[:, :4], boxes[:, 4], 0.7)
        return square(regress(boxes[pick], offsets[ok][pick]))

    def forward(self, pixels: torch.Tensor, image_sizes: torch.Tensor) -> EncoderOutput:
        b, k = pixels.shape[0], self.max_proposals
        props = pixels.new_full((b, 5, k, 1), -1.0)  # (B, 5, K, 1); score -1 = no box
        for i in range(b):
            h, w = fitted_size(int(image_sizes[i, 0]), int(image_sizes[i, 1]), self.max_size)
            image = pixels[i, :, :h, :w]
            boxes = self._refine(image, self._pyramid(image))
            boxes = boxes[boxes[:, 4].argsort(descending=True)[:k]]
            props[i, :, :len(boxes), 0] = boxes.T
        pooled = props[:, 4, :, 0].max(1).values.clamp(min=0)[:, None]  # (B, 1)
        return EncoderOutput(pooled=pooled, features=[pixels, props], strides=(1, 1),
                             image_sizes=image_sizes, input_size=tuple(pixels.shape[-2:]))


def build(*, pretrained: bool = False, weights: str | None = None,
          assets_dir: str | None = None, **kwargs: Any) -> MTCNNInput:
    from zoo.plugin import load_weights

    enc = MTCNNInput(**kwargs)
    if pretrained and weights:
        load_weights(enc.pnet, weights)
        load_weights(enc.rnet, "mtcnn-input.facenet-rnet")
    enc.eval()
    return enc
