"""zoo plugin: semantic segmentation. Registration only: no torch here.

- task ``segmentation``: a mask of class indices per image (target ``mask``: a PNG beside
  the images, its path relative to the data file; 255 = ignore); mIoU, per-class IoU and
  pixel accuracy by torchmetrics; overlays of eval images on the model card.
- head ``semantic-fpn``: a light Semantic FPN on an image encoder's multi-scale feature maps
  (the ``features`` contract of zoo-vision-timm's encoders), logits at the input size.
- models ``effnet-lite0-seg`` (pretrained EfficientNet-Lite0, 256x256) and ``timm-tiny-seg``
  (a tiny random-init EfficientNet, 64x64: fast tests).
"""
from __future__ import annotations

from zoo.plugin import hookimpl

zoo_contract = 2  # the plugin contract this module is written for

_SQUASH = {"crop_mode": "squash", "crop_pct": 1.0}  # resized whole: masks map back


@hookimpl
def register_tasks(register):
    register("segmentation", "zoo_vision_segment.task:Segmentation", targets=("mask",),
             description="Semantic segmentation: a PNG mask of class indices per image "
                         "(255 = ignore); mIoU and per-class IoU by torchmetrics.")


@hookimpl
def register_heads(register):
    register("semantic-fpn", "zoo_vision_segment.head:SemanticFPNHead",
             tasks=("segmentation",), accepts=("features",),
             defaults={"dim": 64},
             description="Semantic FPN (lite) on multi-scale feature maps: laterals, top-down "
                         "sum, one conv per level, logits upsampled to the input size; "
                         "cross-entropy (ignore 255) + optional Dice.")


@hookimpl
def register_models(register):
    register("effnet-lite0-seg", {
        "task": "segmentation",
        "description": "Semantic FPN on pretrained EfficientNet-Lite0 feature maps (strides "
                       "4/8/16/32), 256x256 input; labels from the training data.",
        "encoders": {"image": {"name": "efficientnet-lite0", "features": True,
                               "out_indices": [1, 2, 3, 4],
                               "data_config": {"input_size": [3, 256, 256], **_SQUASH}}},
        "head": {"name": "semantic-fpn", "labels": ["background", "object"], "dim": 64}})
    register("timm-tiny-seg", {
        "task": "segmentation",
        "description": "Tiny Semantic FPN on timm-tiny (random init) feature maps, 64x64 "
                       "input: fast tests.",
        "encoders": {"image": {"name": "timm-tiny", "features": True,
                               "out_indices": [1, 2, 3, 4],
                               "data_config": {"input_size": [3, 64, 64], **_SQUASH}}},
        "head": {"name": "semantic-fpn", "labels": ["background", "object"], "dim": 16}})
