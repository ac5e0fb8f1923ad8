"""zoo plugin: OpenAI Whisper speech recognition with weights that install from pip.

Registration only (no torch here). The CTranslate2 float16 model.bin of each pip package is
converted once into a transformers-named safetensors file in the zoo cache; the encoder and
the ``whisper-decoder`` head each load their half from it.
"""
from __future__ import annotations

from zoo.plugin import hookimpl

zoo_contract = 2  # the plugin contract this module is written for

from .weights import BASE, DECODERS, TINY_EN, register_all

_ENCODER = "zoo_speech_whisper.encoder:build_encoder"
_HEAD = "zoo_speech_whisper.head:build_head"

#: architecture of each size: (vocab, width, layers, heads, ffn width)
_SIZES = {"tiny-en": (TINY_EN, 51864, 384, 4, 6, 1536),
          "base": (BASE, 51865, 512, 6, 8, 2048)}
_ABOUT = {"tiny-en": "Whisper tiny.en (English only, 37.8 M params)",
          "base": "Whisper base (multilingual, 72.6 M params)"}


def _arch(size: str) -> dict:
    _, _, d, layers, heads, ffn = _SIZES[size]
    return {"d_model": d, "layers": layers, "heads": heads, "ffn_dim": ffn}


@hookimpl
def register_weights(register):
    register_all(register)


@hookimpl
def register_encoders(register):
    for size, (tag, *_rest) in _SIZES.items():
        register(f"whisper-{size}-encoder", _ENCODER, modality="audio",
                 outputs=("pooled", "sequence"), dim=_arch(size)["d_model"], weights=tag,
                 defaults={**_arch(size), "n_mels": 80},
                 description=f"{_ABOUT[size]} encoder: 16 kHz audio, 30 s log-mel windows "
                             f"(longer audio: consecutive windows in one sequence; the "
                             f"whisper-decoder head cuts its own at any offset).")


@hookimpl
def register_heads(register):
    register("whisper-decoder", _HEAD, tasks=("asr",), accepts=("sequence",),
             description="Whisper's text decoder over a Whisper encoder: long-form "
                         "transcription or translation into English (task) with segment "
                         "timestamps (timestamps), silent windows dropped "
                         "(no_speech_threshold, logprob_threshold), greedy or beam search "
                         "(num_beams), language, max_new_tokens, condition_on_previous_text; "
                         "tokenizer=TAG names the model.bin weights it comes with.")


@hookimpl
def register_models(register):
    for size, (tag, vocab, *_rest) in _SIZES.items():
        register(f"whisper-{size}", {
            "task": "asr",
            "description": f"{_ABOUT[size]}: speech recognition"
                           f"{' and translation into English' if size == 'base' else ''} "
                           f"with segment timestamps (srt/vtt), ready to use with "
                           f"pretrained=True (weights from pip).",
            "encoders": {"audio": f"whisper-{size}-encoder"},
            "head": {"name": "whisper-decoder", "pretrained": DECODERS[tag], "tokenizer": tag,
                     "vocab_size": vocab, **_arch(size)},
        })
