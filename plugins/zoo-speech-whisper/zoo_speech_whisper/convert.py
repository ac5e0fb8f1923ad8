"""CTranslate2 ``WhisperSpec`` variables -> a transformers ``WhisperForConditionalGeneration``
state dict (and the ``WhisperConfig`` fields that describe it).

The mapping (CTranslate2 name -> transformers name, under ``model.encoder`` / ``model.decoder``):

- ``*/layer_i/self_attention/linear_0`` (3D, D) fused -> ``self_attn.{q,k,v}_proj``; k has
  no bias in Whisper (the fused bias holds zeros there; a key bias adds the same constant
  to every logit of a query, so dropping it changes nothing);
- ``*/self_attention/linear_1`` -> ``self_attn.out_proj``;
- ``decoder/layer_i/attention/linear_0`` -> ``encoder_attn.q_proj``; ``linear_1`` (2D, D)
  fused -> ``encoder_attn.{k,v}_proj``; ``linear_2`` -> ``encoder_attn.out_proj``;
- ``ffn/linear_0``, ``ffn/linear_1`` -> ``fc1``, ``fc2``; ``*/layer_norm`` of the
  self-attention, cross-attention and ffn blocks -> ``self_attn_layer_norm``,
  ``encoder_attn_layer_norm``, ``final_layer_norm``; ``gamma``/``beta`` -> ``weight``/``bias``;
- ``position_encodings/encodings`` -> ``embed_positions.weight``;
  ``decoder/embeddings/weight`` -> ``embed_tokens.weight``;
- ``decoder/projection/weight`` must be tied to the embeddings (an alias, or equal):
  ``proj_out.weight`` is the same tensor as ``embed_tokens.weight``.

Every weight is checked against the shape the model's dimensions imply; a missing or an
unexpected variable is refused.
"""
from __future__ import annotations

import re
from typing import Any

import torch

from .ct2 import Ct2FormatError, Ct2Model

__all__ = ["convert", "whisper_dims", "TIED", "ConversionError"]

#: the tied output projection (not stored separately in the cache)
TIED = ("proj_out.weight", "model.decoder.embed_tokens.weight")
_GELU = 3  # CTranslate2's Activation.GELU
#: scalar settings a WhisperSpec carries (other than weights), with the value Whisper needs
_SCALARS = {"activation": _GELU, "pre_norm": 1, "scale_embeddings": 0, "alibi": 0,
            "alibi_use_positive_positions": None, "scale_alibi": None,
            "start_from_zero_embedding": 0, "alignment_heads": None,
            "alignment_layer": None, "num_heads": None}


class ConversionError(Ct2FormatError):
    """A model.bin that is CTranslate2 but not a Whisper model we can convert."""


def _scalar(model: Ct2Model, name: str) -> int:
    try:
        return int(model.get(name).reshape(-1)[0])
    except KeyError:
        raise ConversionError(f"model.bin: missing variable {name!r}") from None


def _layers(model: Ct2Model, side: str) -> int:
    found = {int(m.group(1)) for k in model.variables
             if (m := re.match(rf"{side}/layer_(\d+)/", k))}
    n = len(found)
    if found != set(range(n)) or n == 0 or n > 128:
        raise ConversionError(f"model.bin: {side} layers are not numbered 0..N-1 "
                              f"({sorted(found)[:5]}...)")
    return n


def whisper_dims(model: Ct2Model) -> dict[str, int]:
    """The transformers ``WhisperConfig`` fields, read from the variables' shapes."""
    if model.spec != "WhisperSpec":
        raise ConversionError(f"model.bin holds a {model.spec!r}, not a WhisperSpec")
    try:
        vocab, d = model.get("decoder/embeddings/weight").shape
        n_mels = model.get("encoder/conv1/weight").shape[1]
        enc_ffn = model.get("encoder/layer_0/ffn/linear_0/weight").shape[0]
        dec_ffn = model.get("decoder/layer_0/ffn/linear_0/weight").shape[0]
        src_pos = model.get("encoder/position_encodings/encodings").shape[0]
        tgt_pos = model.get("decoder/position_encodings/encodings").shape[0]
    except (KeyError, ValueError, IndexError) as e:
        raise ConversionError(f"model.bin: not a Whisper layout ({type(e).__name__}: {e})"
                              ) from None
    dims = {"vocab_size": vocab, "d_model": d, "num_mel_bins": n_mels,
            "encoder_layers": _layers(model, "encoder"),
            "decoder_layers": _layers(model, "decoder"),
            "encoder_attention_heads": _scalar(model, "encoder/num_heads"),
            "decoder_attention_heads": _scalar(model, "decoder/num_heads"),
            "encoder_ffn_dim": enc_ffn, "decoder_ffn_dim": dec_ffn,
            "max_source_positions": src_pos, "max_target_positions": tgt_pos}
    for side in ("encoder", "decoder"):
        heads = dims[f"{side}_attention_heads"]
        if heads <= 0 or d % heads:
            raise ConversionError(f"model.bin: {side} has {heads} heads for width {d}")
    return {k: int(v) for k, v in dims.items()}


def _attn(src: str, dst: str, d: int) -> dict[str, tuple[str, tuple[int, ...]]]:
    """A non-fused linear: weight (d, d) and bias (d,)."""
    return {f"{src}/weight": (f"{dst}.weight", (d, d)), f"{src}/bias": (f"{dst}.bias", (d,))}


def _norm(src: str, dst: str, d: int) -> dict[str, tuple[str, tuple[int, ...]]]:
    return {f"{src}/gamma": (f"{dst}.weight", (d,)), f"{src}/beta": (f"{dst}.bias", (d,))}


def _ffn(src: str, dst: str, d: int, f: int) -> dict[str, tuple[str, tuple[int, ...]]]:
    return {**_norm(f"{src}/layer_norm", f"{dst}.final_layer_norm", d),
            f"{src}/linear_0/weight": (f"{dst}.fc1.weight", (f, d)),
            f"{src}/linear_0/bias": (f"{dst}.fc1.bias", (f,)),
            f"{src}/linear_1/weight": (f"{dst}.fc2.weight", (d, f)),
            f"{src}/linear_1/bias": (f"{dst}.fc2.bias", (d,))}


def _layout(dims: dict[str, int]) -> tuple[dict, dict]:
    """(direct, fused): CTranslate2 name -> (transformers name, shape) for plain copies, and
    CTranslate2 name -> (transformers names of the row blocks, shape) for fused linears."""
    d = dims["d_model"]
    direct: dict[str, tuple[str, tuple[int, ...]]] = {
        "encoder/conv1/weight": ("model.encoder.conv1.weight", (d, dims["num_mel_bins"], 3)),
        "encoder/conv1/bias": ("model.encoder.conv1.bias", (d,)),
        "encoder/conv2/weight": ("model.encoder.conv2.weight", (d, d, 3)),
        "encoder/conv2/bias": ("model.encoder.conv2.bias", (d,)),
        "encoder/position_encodings/encodings": ("model.encoder.embed_positions.weight",
                                                 (dims["max_source_positions"], d)),
        "decoder/embeddings/weight": ("model.decoder.embed_tokens.weight",
                                      (dims["vocab_size"], d)),
        "decoder/position_encodings/encodings": ("model.decoder.embed_positions.weight",
                                                 (dims["max_target_positions"], d)),
        **_norm("encoder/layer_norm", "model.encoder.layer_norm", d),
        **_norm("decoder/layer_norm", "model.decoder.layer_norm", d)}
    fused: dict[str, tuple[tuple[str | None, ...], tuple[int, ...]]] = {}
    for side in ("encoder", "decoder"):
        for i in range(dims[f"{side}_layers"]):
            s, t = f"{side}/layer_{i}", f"model.{side}.layers.{i}"
            direct.update(_norm(f"{s}/self_attention/layer_norm", f"{t}.self_attn_layer_norm", d))
            direct.update(_attn(f"{s}/self_attention/linear_1", f"{t}.self_attn.out_proj", d))
            direct.update(_ffn(f"{s}/ffn", t, d, dims[f"{side}_ffn_dim"]))
            qkv = tuple(f"{t}.self_attn.{p}_proj" for p in "qkv")
            fused[f"{s}/self_attention/linear_0/weight"] = (qkv, (3 * d, d))
            fused[f"{s}/self_attention/linear_0/bias"] = (qkv, (3 * d,))
            if side == "decoder":
                a, x = f"{s}/attention", f"{t}.encoder_attn"
                direct.update(_norm(f"{a}/layer_norm", f"{x}_layer_norm", d))
                direct.update(_attn(f"{a}/linear_0", f"{x}.q_proj", d))
                direct.update(_attn(f"{a}/linear_2", f"{x}.out_proj", d))
                kv = (f"{x}.k_proj", f"{x}.v_proj")
                fused[f"{a}/linear_1/weight"] = (kv, (2 * d, d))
                fused[f"{a}/linear_1/bias"] = (kv, (2 * d,))
    return direct, fused


def _check_names(model: Ct2Model, expected: set[str]) -> None:
    names = set(model.variables) | set(model.aliases)
    missing = sorted(expected - names)
    if missing:
        raise ConversionError(f"model.bin: missing variable {missing[0]!r}"
                              f"{f' and {len(missing) - 1} more' if len(missing) > 1 else ''}")
    scalars = {f"{side}/{k}" for side in ("encoder", "decoder") for k in _SCALARS}
    extra = sorted(names - expected - scalars - {"decoder/projection/weight"})
    if extra:
        raise ConversionError(f"model.bin: unexpected variable {extra[0]!r}"
                              f"{f' and {len(extra) - 1} more' if len(extra) > 1 else ''} "
                              f"(quantized or not a Whisper model?)")
    for name in sorted(scalars & names):
        want = _SCALARS[name.split("/", 1)[1]]
        if model.get(name).numel() != 1:
            raise ConversionError(f"model.bin: {name!r} should be a scalar")
        if want is not None and int(model.get(name).reshape(-1)[0]) != want:
            raise ConversionError(f"model.bin: {name} = {int(model.get(name).reshape(-1)[0])}"
                                  f" but Whisper needs {want}")


def _tensor(model: Ct2Model, name: str, shape: tuple[int, ...]) -> torch.Tensor:
    t = model.get(name)
    if tuple(t.shape) != shape:
        raise ConversionError(f"model.bin: {name} has shape {tuple(t.shape)}, expected {shape}")
    if not t.is_floating_point():
        raise ConversionError(f"model.bin: {name} is {t.dtype} (quantized models are not "
                              f"supported; convert with --quantization float16)")
    return t


def convert(model: Ct2Model) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """(state dict with transformers names, in the file's float dtype; WhisperConfig
    fields). ``proj_out.weight`` is the very tensor ``model.decoder.embed_tokens.weight``."""
    dims = whisper_dims(model)
    direct, fused = _layout(dims)
    _check_names(model, set(direct) | set(fused))
    sd: dict[str, torch.Tensor] = {}
    for src, (dst, shape) in direct.items():
        sd[dst] = _tensor(model, src, shape)
    for src, (dsts, shape) in fused.items():
        blocks = _tensor(model, src, shape).chunk(len(dsts), dim=0)  # row blocks: (D, ...) each
        kind = src.rsplit("/", 1)[1]  # weight | bias
        for dst, block in zip(dsts, blocks):
            if kind == "bias" and dst.endswith(".k_proj"):
                continue  # Whisper's key projections have no bias (see the module docstring)
            sd[f"{dst}.{kind}"] = block.contiguous()
    emb = sd["model.decoder.embed_tokens.weight"]
    proj = "decoder/projection/weight"
    if proj in model.aliases:
        if model.aliases[proj] != "decoder/embeddings/weight":
            raise ConversionError(f"model.bin: {proj} is an alias of "
                                  f"{model.aliases[proj]!r}, not of the embeddings")
    elif proj in model.variables:
        if not torch.equal(_tensor(model, proj, tuple(emb.shape)), emb):
            raise ConversionError(f"model.bin: {proj} is not tied to the token embeddings")
    else:
        raise ConversionError(f"model.bin: missing variable {proj!r}")
    sd[TIED[0]] = emb  # tied: the same tensor
    config = {**dims, "activation_function": "gelu", "scale_embedding": False}
    return sd, config
