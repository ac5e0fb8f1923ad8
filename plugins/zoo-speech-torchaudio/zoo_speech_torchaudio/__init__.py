"""zoo plugin: speech encoders on torchaudio. Registration only; torchaudio is imported when
an encoder is built.

No neural speech weights install from pip, so the named conformers train from scratch (a
~3 M-parameter conformer-CTC reaches CER ~0.12 on synthetic speech in 25 CPU minutes).
"""
from __future__ import annotations

import zoo

_CONFORMER = "zoo_speech_torchaudio.encoder:build_conformer"


@zoo.hookimpl
def register_encoders(register):
    register("conformer-tiny", _CONFORMER, modality="audio", outputs=("pooled", "sequence"),
             dim=96, description="Log-mel + 4x conv subsampling + 2-layer Conformer (96-d); "
                                 "from scratch, for fast tests.",
             defaults={"dim": 96, "num_layers": 2, "num_heads": 4, "ffn_dim": 192,
                       "kernel_size": 15})
    register("conformer-small", _CONFORMER, modality="audio", outputs=("pooled", "sequence"),
             dim=144, description="Log-mel + 4x conv subsampling + 6-layer Conformer (144-d, "
                                  "~3 M params): the size that trains best on 2 CPU cores.",
             defaults={"dim": 144, "num_layers": 6, "num_heads": 4, "ffn_dim": 576,
                       "kernel_size": 31})
