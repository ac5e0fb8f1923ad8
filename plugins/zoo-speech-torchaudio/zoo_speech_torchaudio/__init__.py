"""zoo plugin: speech encoders on torchaudio and transformers. Registration only; torchaudio
and transformers are imported when an encoder is built.

No neural speech weights install from pip, so the named conformers and the tiny wav2vec2
train from scratch (a ~3 M-parameter conformer-CTC reaches CER ~0.12 on synthetic speech in
25 CPU minutes). The transformers entries name their Hub sources for users who are online.
"""
from __future__ import annotations

from zoo.plugin import hookimpl

zoo_contract = 2  # the plugin contract this module is written for

_CONFORMER = "zoo_speech_torchaudio.encoder:build_conformer"
_W2V2 = "zoo_speech_torchaudio.encoder:build_wav2vec2"
_HF = "zoo_speech_torchaudio.hf_audio:build"


@hookimpl
def register_weights(register):
    register("wav2vec2-base-hf.ls960", sources=["hf-hub:facebook/wav2vec2-base"],
             file="config.json", license="apache-2.0",
             description="wav2vec 2.0 base, self-supervised on LibriSpeech 960 h (online)")
    register("hubert-base-hf.ls960", sources=["hf-hub:facebook/hubert-base-ls960"],
             file="config.json", license="apache-2.0",
             description="HuBERT base, self-supervised on LibriSpeech 960 h (online)")
    register("whisper-tiny-encoder.openai", sources=["hf-hub:openai/whisper-tiny"],
             file="config.json", license="apache-2.0",
             description="Whisper tiny's encoder, 680k h weakly supervised (online)")


@hookimpl
def register_encoders(register):
    register("conformer-tiny", _CONFORMER, modality="audio", outputs=("pooled", "sequence"),
             dim=96, description="Log-mel + 4x conv subsampling + 2-layer Conformer (96-d); "
                                 "from scratch, for fast tests.",
             defaults={"dim": 96, "num_layers": 2, "num_heads": 4, "ffn_dim": 192,
                       "kernel_size": 15})
    register("conformer-small", _CONFORMER, modality="audio", outputs=("pooled", "sequence"),
             dim=144, description="Log-mel + 4x conv subsampling + 6-layer Conformer (144-d, "
                                  "~3 M params, SpecAugment while training): the size that "
                                  "trains best on 2 CPU cores.",
             defaults={"dim": 144, "num_layers": 6, "num_heads": 4, "ffn_dim": 576,
                       "kernel_size": 31, "spec_augment": True})
    register("wav2vec2-tiny", _W2V2, modality="audio", outputs=("pooled", "sequence"), dim=96,
             description="torchaudio wav2vec 2.0 architecture, 2 layers, 96-d, from scratch "
                         "(raw waveform in, conv feature extractor).",
             defaults={"encoder_embed_dim": 96, "encoder_num_layers": 2,
                       "encoder_num_heads": 4, "encoder_ff_interm_features": 192,
                       "conv_channels": 128})
    register("wav2vec2-base", _W2V2, modality="audio", outputs=("pooled", "sequence"), dim=768,
             description="torchaudio wav2vec 2.0 base architecture (12 layers, 768-d, 95 M "
                         "params), from scratch.",
             defaults={"encoder_embed_dim": 768, "encoder_num_layers": 12,
                       "encoder_num_heads": 12, "encoder_ff_interm_features": 3072,
                       "conv_channels": 512})
    register("hf-audio", _HF, modality="audio", outputs=("pooled", "sequence"),
             description="Any transformers audio encoder (Wav2Vec2, HuBERT, Whisper's "
                         "encoder): pass source='org/name' or a local folder.")
    register("wav2vec2-base-hf", _HF, modality="audio", outputs=("pooled", "sequence"),
             dim=768, weights="wav2vec2-base-hf.ls960",
             description="facebook/wav2vec2-base through transformers (Hub, online).",
             defaults={"source": "hf-hub:facebook/wav2vec2-base"})
    register("hubert-base-hf", _HF, modality="audio", outputs=("pooled", "sequence"), dim=768,
             weights="hubert-base-hf.ls960",
             description="facebook/hubert-base-ls960 through transformers (Hub, online).",
             defaults={"source": "hf-hub:facebook/hubert-base-ls960"})
    register("whisper-tiny-encoder", _HF, modality="audio", outputs=("pooled", "sequence"),
             dim=384, weights="whisper-tiny-encoder.openai",
             description="openai/whisper-tiny's encoder through transformers (Hub, online).",
             defaults={"source": "hf-hub:openai/whisper-tiny"})
