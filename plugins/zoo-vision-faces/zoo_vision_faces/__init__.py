"""zoo plugin: the MTCNN face detector (Zhang et al. 2016) with the weights shipped in the
``facenet-pytorch`` pip package (MIT). Registration only: no torch here.

The cascade is split along zoo's parts, each loading its own weights: the image encoder
``mtcnn-input`` runs the proposal stages (P-Net over an image pyramid, then R-Net) and gives
the pixels plus the candidate boxes; the head ``mtcnn`` runs O-Net on those candidates and
returns the faces in pixels of the original image.
"""
from __future__ import annotations

from zoo.plugin import hookimpl

zoo_contract = 2  # the plugin contract this module is written for

_PIP = "pip:facenet-pytorch:facenet_pytorch/data/"
_LICENSE = "mit"
SHA256 = {"pnet": "a2a71925e0b9996a42f63e47efc1ca19043e69558b5c523b978d611dfae49c8f",
          "rnet": "bbb937de72efc9ef83b186c49f5f558467a1d7e3453a8ece0d71a886633f6a86",
          "onet": "165bfbe42940416ccfb977545cf0e976d5bf321f67083ae2aaaa5c764280118d"}
_WHAT = {"pnet": "P-Net (12x12 proposal network)", "rnet": "R-Net (24x24 refinement network)",
         "onet": "O-Net (48x48 output network)"}


@hookimpl
def register_weights(register):
    for net, tag in (("pnet", "mtcnn-input.facenet"), ("rnet", "mtcnn-input.facenet-rnet"),
                     ("onet", "mtcnn.facenet-onet")):
        register(tag, sources=[f"{_PIP}{net}.pt"], sha256=SHA256[net], license=_LICENSE,
                 description=f"MTCNN {_WHAT[net]} from facenet-pytorch 2.6 (MIT); install "
                             f"with `pip install --no-deps facenet-pytorch`")


@hookimpl
def register_encoders(register):
    register("mtcnn-input", "zoo_vision_faces.encoder:build", modality="image",
             outputs=("pooled", "features"), dim=1, weights="mtcnn-input.facenet",
             description="MTCNN proposal stages (P-Net pyramid + R-Net): the pixels and the "
                         "candidate face boxes, for the 'mtcnn' head; pooled = best R-Net "
                         "face probability.",
             defaults={"max_size": 1024, "min_face_size": 20, "factor": 0.709,
                       "thresholds": [0.6, 0.7], "max_proposals": 256})


@hookimpl
def register_heads(register):
    register("mtcnn", "zoo_vision_faces.head:MTCNNHead", tasks=("detection",),
             accepts=("features",),
             description="MTCNN O-Net on mtcnn-input's candidates: face boxes and scores in "
                         "original pixels (inference only).")


@hookimpl
def register_models(register):
    register("mtcnn-faces", {
        "task": "detection",
        "description": "Ready face detector: MTCNN (P-Net/R-Net/O-Net) with facenet-pytorch's "
                       "pretrained weights (MIT); label 'face'.",
        "encoders": {"image": "mtcnn-input"},
        "head": {"name": "mtcnn", "pretrained": "mtcnn.facenet-onet"}})
