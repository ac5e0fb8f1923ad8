"""The toxic-comment-classifier files -> torch tensors and a JSON tokenizer, once, into the
zoo cache (``weights.cache_dir()``), written atomically so concurrent first uses are safe,
and sealed (``zoo.plugin.seal``): an edited cache file is converted again, never used.

- ``model.weights.h5`` (Keras 3) is read with h5py: Keras keeps a Dense kernel as (in,
  out) and an LSTM's as (in, 4 units) with the gates in torch's order (input, forget,
  cell, output) and one bias; torch wants them transposed, with the bias once.
- ``tokenizer.pickle`` holds a ``keras...Tokenizer`` object. It is read by an unpickler
  that admits that one class name (rebuilt as a plain attribute holder), ``OrderedDict``,
  ``defaultdict`` and ``int``, and refuses anything else, so no code in the file can run.
"""
from __future__ import annotations

import collections
import json
import os
import pickle
from pathlib import Path
from typing import Any

__all__ = ["converted", "read_tokenizer", "convert"]

_KERAS_TOKENIZER = {("keras.src.legacy.preprocessing.text", "Tokenizer"),
                    ("keras.preprocessing.text", "Tokenizer"),
                    ("keras_preprocessing.text", "Tokenizer")}
_SAFE = {("collections", "OrderedDict"): collections.OrderedDict,
         ("collections", "defaultdict"): collections.defaultdict,
         ("builtins", "int"): int}
MAXLEN = 100  # the package pads / truncates every comment to 100 tokens, at the front


class _Fields:
    """Stands in for the Keras Tokenizer: takes its pickled attributes as data."""

    def __setstate__(self, state: dict) -> None:
        if not isinstance(state, dict):
            raise pickle.UnpicklingError("unexpected tokenizer state")
        self.__dict__.update(state)


class _DataOnly(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _KERAS_TOKENIZER:
            return _Fields
        if (module, name) in _SAFE:
            return _SAFE[(module, name)]
        raise pickle.UnpicklingError(f"refused to load {module}.{name} from the tokenizer "
                                     f"pickle (only the Keras tokenizer's data is read)")


def read_tokenizer(path: Path) -> dict[str, Any]:
    """The tokenizer's settings and its vocabulary (words below ``num_words``) as JSON."""
    with open(path, "rb") as f:
        tok = _DataOnly(f).load()
    fields = getattr(tok, "__dict__", {})
    if not isinstance(fields.get("word_index"), dict):
        raise pickle.UnpicklingError(f"{path}: no word_index; not a Keras tokenizer")
    if fields.get("char_level") or fields.get("analyzer") is not None:
        raise pickle.UnpicklingError(f"{path}: a character-level or custom-analyzer "
                                     f"tokenizer is not supported")
    num_words = fields.get("num_words")
    index = {str(w): int(i) for w, i in fields["word_index"].items()
             if num_words is None or int(i) < int(num_words)}
    return {"kind": "keras-word-tokenizer", "filters": str(fields.get("filters", "")),
            "split": str(fields.get("split", " ")), "lower": bool(fields.get("lower", True)),
            "num_words": num_words, "oov_token": fields.get("oov_token"),
            "oov_index": (int(fields["word_index"][fields["oov_token"]])
                          if fields.get("oov_token") is not None else None),
            "maxlen": MAXLEN, "padding": "pre", "truncating": "pre", "word_index": index}


def _h5_tensors(path: Path) -> dict[str, Any]:
    import h5py
    import numpy as np

    out: dict[str, Any] = {}
    with h5py.File(path, "r") as f:
        def visit(name: str, obj: Any) -> None:
            if isinstance(obj, h5py.Dataset) and name.startswith("layers/"):
                out[name] = np.asarray(obj, dtype=np.float32)
        f.visititems(visit)
    return out


def _lstm(t: dict[str, Any], prefix: str, suffix: str) -> dict[str, Any]:
    import torch

    kernel, recurrent, bias = (torch.from_numpy(t[f"{prefix}/cell/vars/{i}"]) for i in range(3))
    return {f"lstm.weight_ih_l0{suffix}": kernel.T.contiguous(),   # (4H, in)
            f"lstm.weight_hh_l0{suffix}": recurrent.T.contiguous(),  # (4H, H)
            f"lstm.bias_ih_l0{suffix}": bias.clone(),
            f"lstm.bias_hh_l0{suffix}": torch.zeros_like(bias)}  # Keras has one bias


def convert(h5: Path, tokenizer: Path, out: Path) -> Path:
    """Write ``encoder.safetensors``, ``head.safetensors`` and ``tokenizer.json`` into
    ``out`` (each through a temporary file and a rename)."""
    import torch
    from safetensors.torch import save_file

    t = _h5_tensors(h5)
    try:
        encoder = {"embedding.weight": torch.from_numpy(t["layers/embedding/vars/0"]),
                   **_lstm(t, "layers/bidirectional/forward_layer", ""),
                   **_lstm(t, "layers/bidirectional/backward_layer", "_reverse")}
        head = {"hidden.weight": torch.from_numpy(t["layers/dense/vars/0"]).T.contiguous(),
                "hidden.bias": torch.from_numpy(t["layers/dense/vars/1"]),
                "out.weight": torch.from_numpy(t["layers/dense_1/vars/0"]).T.contiguous(),
                "out.bias": torch.from_numpy(t["layers/dense_1/vars/1"])}
    except KeyError as e:
        raise ValueError(f"{h5}: no tensor {e.args[0]}; not the toxic-comment-classifier "
                         f"0.3.0 weights") from None
    out.mkdir(parents=True, exist_ok=True)
    tmp = f".{os.getpid()}.tmp"
    save_file(encoder, str(out / f"encoder.safetensors{tmp}"))
    save_file(head, str(out / f"head.safetensors{tmp}"))
    (out / f"tokenizer.json{tmp}").write_text(json.dumps(read_tokenizer(tokenizer)))
    from zoo.plugin import seal

    from zoo_text_toxic.weights import H5_SHA256

    for name in ("encoder.safetensors", "tokenizer.json", "head.safetensors"):
        seal(out / f"{name}{tmp}", claim=H5_SHA256)  # trusted later only while it holds
        os.replace(out / f"{name}{tmp}.zoo-seal", out / f"{name}.zoo-seal")
        os.replace(out / f"{name}{tmp}", out / name)
    return out


def converted() -> Path:
    """The cache folder with the converted files, converting on first use (the package's
    files resolved and sha256-checked by zoo)."""
    from zoo.plugin import is_sealed, weights_path

    from zoo_text_toxic.weights import ENCODER, H5_SHA256, TOKENIZER, cache_dir

    out = cache_dir()
    if all(is_sealed(out / n, claim=H5_SHA256) for n in ("encoder.safetensors",
                                                           "head.safetensors",
                                                           "tokenizer.json")):
        return out  # exactly what this user converted (an edited file fails its seal)
    return convert(Path(weights_path(ENCODER)), Path(weights_path(TOKENIZER)), out)
