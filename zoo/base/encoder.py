"""The encoder base class and its output contract.

An encoder turns raw inputs of one modality into tensors in two steps that mirror
``transformers``' processor/model split:

- ``preprocess(values) -> dict[str, Tensor]``: raw values (strings, image paths / PIL images /
  arrays, audio paths / ``(array, sample_rate)``) to a padded batch. Runs outside autograd.
- ``forward(**batch) -> EncoderOutput``: the network.

The keyword arguments the factory was called with are captured by the core and stored in
config.json, so an encoder needs no ``config()``; define one only when what rebuilds it
differs from what built it. ``save_assets(dir)`` writes files the preprocessing needs (a
tokenizer); loading calls the factory with ``assets_dir=`` that folder.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import torch
from torch import nn

__all__ = ["EncoderOutput", "Encoder", "PREPROCESSOR_FILE", "WORD_IDS", "sequence_output",
           "scale_choices_of"]

#: Written by every encoder into its assets folder: the settings its preprocessing uses.
PREPROCESSOR_FILE = "preprocessing.json"
#: A key ``preprocess`` may return beside its tensors: (B, T) long, the word (a
#: whitespace-separated piece of the text, see ``zoo.plugin.word_spans``) each token of the
#: sequence output belongs to, -1 for special tokens and padding. The model keeps it out of
#: ``forward`` and hands it to heads as ``EncoderOutput.word_ids`` / ``batch[m].word_ids``.
WORD_IDS = "word_ids"


@dataclass
class EncoderOutput:
    """What an encoder gives. Fields outside the encoder's declared ``outputs`` are None."""

    pooled: torch.Tensor | None = None  # (B, D)
    sequence: torch.Tensor | None = None  # (B, T, D)
    mask: torch.Tensor | None = None  # (B, T) bool, True where ``sequence`` is real
    features: list[torch.Tensor] | None = None  # [(B, C_i, H_i, W_i)], fine to coarse
    strides: tuple[int, ...] | None = None  # input pixels per feature-map cell, per level
    # images: (B, 2) original (height, width) of each input, and the (H, W) of the tensor
    # the encoder saw; detection maps boxes between the two. Optional: without them the
    # input is taken to be the original size.
    image_sizes: torch.Tensor | None = None
    input_size: tuple[int, int] | None = None
    # sequence encoders of words (text): (B, T) long, the word each step of ``sequence``
    # belongs to (-1: none); set by the model from the encoder's preprocessing
    word_ids: torch.Tensor | None = None


class Encoder(nn.Module):
    """Base class for zoo encoders. Subclasses set the class attributes (``dim`` may be set
    in ``__init__``) and implement ``preprocess`` and ``forward``."""

    modality: str = ""  # "text" | "image" | "audio"
    outputs: tuple[str, ...] = ("pooled",)  # contracts this instance gives
    dim: int = 0  # width of pooled / sequence outputs
    feature_channels: tuple[int, ...] = ()  # per level, when "features" is given
    feature_strides: tuple[int, ...] = ()
    # pretrained weights fine-tune at this fraction of the run's lr unless encoder_lr is
    # given (contract 2, optional: transformers' usual 1e-4 against 1e-3)
    finetune_lr_scale: float = 0.1
    #: True when ``forward`` may run in two threads at once on the same weights (it keeps
    #: no state between calls): the serving process then runs batches side by side
    #: (contract 2, optional; default False: one forward at a time)
    concurrent_forward: bool = False

    def preprocess(self, values: Sequence[Any]) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def fit(self, values: Sequence[Any]) -> None:
        """Optional: fit preprocessing to the training data before a run trains
        (standardisation, category vocabularies), called once with the training split's
        values of this modality at the start of every run, before the optimizer exists (it
        may add parameters). Deterministic in the data: a resumed run fits again, then
        loads its saved weights over the result. What it fits must be saved with the model
        (buffers, or the kwargs ``config()`` returns); fine-tuning a saved model calls it
        again, so an encoder that must keep its first fit checks that itself."""
        return None

    def forward(self, **batch: torch.Tensor) -> EncoderOutput:  # noqa: D102
        raise NotImplementedError

    def scale_choices(self) -> dict[str, dict[str, Any]]:
        """Optional (contract 2): blocks of the ``pooled`` output whose weight the
        closed-form probe chooses on the eval split, as it chooses its C:
        ``{name: {"columns": (start, stop), "weight": w, "choices": (w1, w2, ...)}}``, where
        ``w`` is the weight the outputs carry now and the choices run from the most
        conservative. The probe tries each by rescaling the cached columns, then calls
        ``set_scale(name, weight)`` with the one it keeps. None by default."""
        return {}

    def set_scale(self, name: str, weight: float) -> None:
        """Give block ``name`` of ``pooled`` at ``weight`` from now on, and rebuild so from
        ``config()`` (a saved model keeps the weight). Needed with ``scale_choices``."""
        raise NotImplementedError(f"{type(self).__name__} names scale choices but cannot "
                                  f"set them")

    def config(self) -> dict[str, Any]:
        """JSON kwargs for the factory that rebuild this encoder (without weights): by
        default the ones it was built with, captured by the core."""
        return dict(getattr(self, "_zoo_kwargs", {}))

    def preprocessor_config(self) -> dict[str, Any]:
        """The preprocessing settings, human-readable, written beside the weights."""
        return {}

    def save_assets(self, directory: Path) -> None:
        """Write what preprocessing needs. Subclasses with files (tokenizers) extend this."""
        directory.mkdir(parents=True, exist_ok=True)
        cfg = {"modality": self.modality, **self.preprocessor_config()}
        (directory / PREPROCESSOR_FILE).write_text(json.dumps(cfg, indent=2, sort_keys=True))

    def describe(self) -> dict[str, Any]:
        return {"modality": self.modality, "outputs": list(self.outputs), "dim": self.dim,
                "feature_channels": list(self.feature_channels),
                "feature_strides": list(self.feature_strides)}


def sequence_output(x: torch.Tensor, lengths: torch.Tensor) -> EncoderOutput:
    """The output of a sequence encoder: (B, T, D) with its valid lengths (B,) -> sequence,
    mask and the mean over valid steps as the pooled vector."""
    mask = torch.arange(x.shape[1], device=x.device)[None] < lengths[:, None]  # (B, T)
    w = mask.unsqueeze(-1).to(x.dtype)
    pooled = (x * w).sum(1) / w.sum(1).clamp(min=1)  # (B, D)
    return EncoderOutput(pooled=pooled, sequence=x, mask=mask)


def scale_choices_of(encoder: Any) -> dict[str, dict[str, Any]]:
    """An encoder's ``scale_choices()``, checked: ``{name: {"columns": (start, stop),
    "weight": w, "choices": (w1, ...)}}`` with 0 <= start < stop <= dim and weights > 0, as
    ``{name: {"columns": (int, int), "weight": float, "choices": tuple[float, ...]}}``.
    Anything else is one PluginError naming the encoder and the fix."""
    from zoo.errors import PluginError

    method = getattr(encoder, "scale_choices", None)
    raw = method() if callable(method) else None
    if not raw:
        return {}
    what = f"encoder {type(encoder).__name__}: scale_choices()"
    if not isinstance(raw, dict):
        raise PluginError(f"{what} returned a {type(raw).__name__}; return a dict "
                          f"{{name: {{'columns': (start, stop), 'weight': w, 'choices': "
                          f"(w1, w2)}}}}")
    dim, out = int(getattr(encoder, "dim", 0) or 0), {}
    for name, spec in raw.items():
        try:
            start, stop = (int(c) for c in spec["columns"])
            weight = float(spec["weight"])
            choices = tuple(float(w) for w in spec["choices"])
        except (KeyError, TypeError, ValueError):
            raise PluginError(f"{what}[{str(name)[:40]!r}] needs 'columns' (start, stop), "
                              f"'weight' (a number) and 'choices' (numbers); got "
                              f"{str(spec)[:80]}") from None
        if not (0 <= start < stop <= dim and choices and min(weight, *choices) > 0
                and all(math.isfinite(w) for w in (weight, *choices))):
            raise PluginError(f"{what}[{str(name)[:40]!r}]: columns must lie in [0, {dim}) "
                              f"and weight and choices be positive and finite; got "
                              f"columns ({start}, {stop}), weight {weight:g}, choices "
                              f"{list(choices)}")
        out[str(name)] = {"columns": (start, stop), "weight": weight, "choices": choices}
    return out

