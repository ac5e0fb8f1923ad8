"""zoo-plugin-tv: registration only (no torch, no torchvision imported here).

Pretrained weights for `tv-convnet` are a local file whose path is read from the
environment variable ZOO_TV_WEIGHTS (a plugin cannot ship a big file); its expected
sha256 comes from ZOO_TV_WEIGHTS_SHA256, so registering hashes nothing.
"""
import os

from zoo.plugin import hookimpl

WEIGHTS_TAG = "tv-convnet.local"


def _weights_file():
    path = os.environ.get("ZOO_TV_WEIGHTS")
    return os.path.abspath(path) if path else None


@hookimpl
def register_encoders(register):
    register("tv-convnet", "zoo_plugin_tv.encoder:build", modality="image",
             outputs=("pooled",), dim=32, defaults={"dim": 32, "size": 32},
             weights=WEIGHTS_TAG if _weights_file() else None,
             description="A tiny torchvision ConvNet (3 Conv2dNormActivation blocks, 32 px).")


@hookimpl
def register_fusions(register):
    register("film", "zoo_plugin_tv.fusion:FiLMFusion", accepts=("pooled",),
             defaults={"dim": 32, "condition": "text", "target": "image"},
             description="FiLM: the text's pooled vector scales and shifts the image's pooled vector.")


@hookimpl
def register_models(register):
    register("tv-film-clf", {
        "task": "classification",
        "description": "bert-tiny (zoo-text-hf) FiLM-conditions tv-convnet; classification head.",
        "encoders": {"text": "bert-tiny", "image": "tv-convnet"},
        "fusion": {"name": "film", "dim": 32},
        "head": {"name": "classification", "labels": ["neg", "pos"]},
    })


@hookimpl
def register_weights(register):
    path = _weights_file()
    if not path:
        return
    register(WEIGHTS_TAG, sources=[f"file:{path}"],
             sha256=os.environ.get("ZOO_TV_WEIGHTS_SHA256") or None, license="mit",
             description="tv-convnet weights from a local safetensors file ($ZOO_TV_WEIGHTS).")
