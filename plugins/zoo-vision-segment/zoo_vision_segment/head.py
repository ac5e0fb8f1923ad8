"""A light semantic-segmentation head on an image encoder's multi-scale feature maps.

Semantic FPN (Kirillov et al. 2019, the semantic branch of Panoptic FPN), made small: 1x1
laterals bring every map (fine to coarse, strides e.g. 4/8/16/32) to ``dim`` channels, a
top-down pass adds each coarser map to the next finer one, a 3x3 conv + GroupNorm + ReLU per
level, all upsampled to the finest map and summed, then a 1x1 classifier. The logits are
upsampled (bilinear) to the encoder's input size: ``forward`` returns one (B, C, H, W)
tensor, so the model exports to ONNX.

Training: cross-entropy with ``ignore_index=255`` on the masks resized (nearest) to the
input size, plus ``dice_weight`` x soft Dice when asked. Decoding: the logits upsampled to
each image's original size (class chunks, so a large image never holds C full-size maps),
argmax, a PNG of class indices (base64) and the classes present with their pixel fraction
and mean confidence.
"""
from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from zoo.plugin import DataError, Head, ZooError
from zoo_vision_segment.masks import IGNORE, image_size, mask_to_base64, read_mask

__all__ = ["SemanticFPNHead"]

MAX_CLASSES = 255  # indices 0..254 in an 8-bit PNG; 255 is "ignore"
_UPSAMPLE_BUDGET = 1 << 24  # values of one upsampling call in decode (64 MB of float32)


def _block(dim: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(dim, dim, 3, padding=1, bias=False),
                         nn.GroupNorm(min(8, dim // 4) or 1, dim), nn.ReLU(inplace=True))


class SemanticFPNHead(Head):
    def __init__(self, inputs: Mapping[str, Mapping[str, Any]],
                 labels: Sequence[str] = ("background", "object"), dim: int = 64,
                 dice_weight: float = 0.0, dropout: float = 0.1) -> None:
        super().__init__()
        img = inputs.get("image")
        if img is None or "features" not in img.get("outputs", ()):
            raise ZooError("the segmentation head needs an image encoder built with features "
                           "(encoders = { image = { name = \"...\", features = true } })")
        dc = img.get("data_config") or {}
        if dc and (dc.get("crop_mode") != "squash" or float(dc.get("crop_pct", 1.0)) != 1.0):
            raise ZooError("a segmenter's image encoder must resize without cropping, so masks "
                           "map back to the image: data_config = { crop_mode = \"squash\", "
                           "crop_pct = 1.0 }")
        labels = [str(x) for x in labels]
        if not 1 <= len(labels) <= MAX_CLASSES or len(set(labels)) != len(labels):
            raise ZooError(f"a segmentation head needs 1 to {MAX_CLASSES} distinct labels (mask "
                           f"index -> name; 255 is 'ignore'), got {len(labels)}")
        self.labels = labels
        self.dim, self.dice_weight = int(dim), float(dice_weight)
        channels = [int(c) for c in img["feature_channels"]]
        self.strides = [int(s) for s in img["feature_strides"]]
        self.lateral = nn.ModuleList(nn.Conv2d(c, self.dim, 1) for c in channels)
        self.smooth = nn.ModuleList(_block(self.dim) for _ in channels)
        self.classifier = nn.Sequential(nn.Dropout2d(float(dropout)),
                                        nn.Conv2d(self.dim, len(labels), 1))

    # ---- forward --------------------------------------------------------------------
    def forward(self, encoded: Mapping[str, Any], batch: Any) -> torch.Tensor:
        if "image" not in encoded or encoded["image"][1].numel() != batch.size:
            raise DataError("segmentation needs an image in every input")
        out, _ = encoded["image"]
        feats = list(out.features)  # [(B, C_i, H_i, W_i)], fine to coarse
        if len(feats) != len(self.lateral):
            raise ZooError(f"the encoder gave {len(feats)} feature maps; this head was built "
                           f"for {len(self.lateral)}")
        lat = [conv(f) for conv, f in zip(self.lateral, feats)]  # [(B, dim, H_i, W_i)]
        for i in range(len(lat) - 2, -1, -1):  # top-down: coarse context into finer maps
            lat[i] = lat[i] + F.interpolate(lat[i + 1], size=lat[i].shape[-2:], mode="nearest")
        size = lat[0].shape[-2:]
        fused = sum(F.interpolate(block(x), size=size, mode="bilinear", align_corners=False)
                    if x.shape[-2:] != size else block(x)
                    for block, x in zip(self.smooth, lat))  # (B, dim, H_0, W_0)
        logits = self.classifier(fused)  # (B, C, H_0, W_0)
        h, w = _input_size(out)
        return F.interpolate(logits, size=(h, w), mode="bilinear",
                             align_corners=False)  # (B, C, H, W)

    # ---- targets and loss -------------------------------------------------------------
    def encode_targets(self, targets: Sequence[Mapping[str, Any]], batch: Any = None
                       ) -> list[torch.Tensor]:
        """One (h, w) uint8 tensor of class indices per example, at the mask's own size;
        :meth:`loss` resizes them to the logits."""
        out = []
        for i, t in enumerate(targets):
            mask = read_mask(t.get("mask"), f"example {i}")
            ids = np.unique(mask)
            ids = ids[ids != IGNORE]
            if ids.size and int(ids.max()) >= len(self.labels):
                raise DataError(f"example {i}: the mask holds class index {int(ids.max())} but "
                                f"this model has {len(self.labels)} labels ({self.labels[:5]})")
            out.append(torch.from_numpy(np.array(mask, dtype=np.uint8)))
        return out

    def loss(self, outputs: torch.Tensor, targets: Sequence[torch.Tensor]) -> torch.Tensor:
        h, w = outputs.shape[-2:]
        ys = []
        for t in targets:  # nearest-exact: pixel centres, as PIL's nearest resize
            if tuple(t.shape) != (h, w):
                t = F.interpolate(t[None, None].float(), size=(h, w),
                                  mode="nearest-exact")[0, 0]
            ys.append(t.long())
        y = torch.stack(ys).to(outputs.device)  # (B, H, W)
        valid = y != IGNORE
        if not valid.any():  # every pixel ignored: nothing to learn from this batch
            return outputs.sum() * 0.0
        loss = F.cross_entropy(outputs, y, ignore_index=IGNORE)
        if self.dice_weight:
            loss = loss + self.dice_weight * _dice_loss(outputs, y, valid)
        return loss

    # ---- decoding ---------------------------------------------------------------------
    def decode(self, outputs: torch.Tensor, batch: Any = None) -> list[dict[str, Any]]:
        logits = outputs.float()
        sizes = _original_sizes(logits, batch)
        probs = logits.softmax(1)  # (B, C, H, W) at the input size
        conf, arg = probs.max(1)  # (B, H, W)
        n_cls = len(self.labels)
        results = []
        for i, (h, w) in enumerate(sizes):
            mask = _upsampled_argmax(logits[i], (h, w)).cpu().numpy().astype(np.uint8)
            counts = np.bincount(mask.ravel(), minlength=n_cls)
            a, c = arg[i].flatten(), conf[i].flatten()
            sums = torch.zeros(n_cls, device=c.device).scatter_add_(0, a, c)
            hits = torch.bincount(a, minlength=n_cls)
            classes = {}
            for k in np.flatnonzero(counts).tolist():
                # mean confidence where the class wins at the input size (a class that wins
                # only after upsampling, at a boundary: its highest probability)
                score = (sums[k] / hits[k]) if hits[k] else probs[i, k].max()
                classes[self.labels[k]] = {"index": k,
                                           "fraction": round(float(counts[k]) / mask.size, 6),
                                           "score": round(float(score), 4)}
            results.append({"mask": mask_to_base64(mask), "classes": classes,
                            "size": [int(h), int(w)]})
        return results


def _input_size(out: Any) -> tuple[int, int]:
    """(H, W) of the tensor the encoder saw: declared, or the finest map times its stride."""
    if out.input_size is not None:
        return int(out.input_size[0]), int(out.input_size[1])
    f, s = out.features[0], out.strides[0]
    return int(f.shape[-2] * s), int(f.shape[-1] * s)


def _original_sizes(logits: torch.Tensor, batch: Any) -> list[tuple[int, int]]:
    """Each image's original (height, width): from the encoder's preprocessing
    (``image_sizes``), else from the raw inputs (the feature cache keeps no tensors), else
    the input size."""
    n, (h, w) = logits.shape[0], logits.shape[-2:]
    if batch is not None and "image" in batch:
        sizes = batch["image"].tensors.get("image_sizes")
        if sizes is not None and len(sizes) == n:
            return [(int(a), int(b)) for a, b in sizes.tolist()]
    if batch is not None and batch.inputs is not None and len(batch.inputs) == n:
        found = [image_size(x.get("image")) for x in batch.inputs]
        if all(found):
            return found
    return [(int(h), int(w))] * n


def _upsampled_argmax(logits: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """argmax over classes of (C, H, W) logits upsampled bilinearly to ``size`` (h, w),
    a few classes at a time: a running max keeps memory at O(h * w) per chunk."""
    if tuple(logits.shape[-2:]) == tuple(size):
        return logits.argmax(0)
    n = logits.shape[0]
    step = max(1, _UPSAMPLE_BUDGET // max(1, size[0] * size[1]))
    best_val = best_idx = None
    for c0 in range(0, n, step):
        up = F.interpolate(logits[None, c0:c0 + step], size=size, mode="bilinear",
                           align_corners=False)[0]  # (c, h, w)
        val, idx = up.max(0)
        idx = idx + c0
        if best_val is None:
            best_val, best_idx = val, idx
        else:
            better = val > best_val
            best_val = torch.where(better, val, best_val)
            best_idx = torch.where(better, idx, best_idx)
    return best_idx


def _dice_loss(logits: torch.Tensor, y: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """1 - soft Dice, averaged over the classes present in the batch's targets (ignored
    pixels left out)."""
    probs = logits.softmax(1) * valid[:, None]  # (B, C, H, W)
    onehot = F.one_hot(y.masked_fill(~valid, 0), logits.shape[1]).permute(0, 3, 1, 2)
    onehot = onehot.to(probs.dtype) * valid[:, None]  # (B, C, H, W)
    inter = (probs * onehot).sum((0, 2, 3))
    denom = probs.sum((0, 2, 3)) + onehot.sum((0, 2, 3))
    present = onehot.sum((0, 2, 3)) > 0
    dice = (2 * inter + 1.0) / (denom + 1.0)  # (C,)
    return 1.0 - dice[present].mean()
