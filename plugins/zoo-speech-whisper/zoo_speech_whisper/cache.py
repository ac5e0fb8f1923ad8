"""Convert a tag's CTranslate2 model.bin once into a safetensors file under the zoo cache
(``$ZOO_CACHE``, else ``$XDG_CACHE_HOME/zoo``, else ``~/.cache/zoo``), keyed by the
model.bin's sha256 and written atomically; later loads read only the tensors they need.

The file holds a transformers ``WhisperForConditionalGeneration`` state dict (float16, as
shipped) without ``proj_out.weight``, which is tied to ``model.decoder.embed_tokens.weight``;
its metadata holds the source sha256 and the ``WhisperConfig`` fields.
"""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import torch

from zoo.plugin import ZooError

from .convert import TIED, convert
from .ct2 import parse_model_bin, read_parts
from .weights import ModelBin, model_bin

__all__ = ["cache_root", "converted", "load_part", "whisper_config"]

FORMAT = "zoo-whisper-hf/1"


def cache_root() -> Path:
    root = os.environ.get("ZOO_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "zoo")
    return Path(root) / "whisper"


def _read_meta(path: Path) -> dict[str, str] | None:
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            return f.metadata() or {}
    except Exception:  # unreadable or not safetensors: converted again
        return None


def _convert_to(src: ModelBin, target: Path) -> None:
    from safetensors.torch import save_file

    data = read_parts(src.parts)
    digest = hashlib.sha256(data).hexdigest()
    if src.sha256 and digest != src.sha256:
        raise ZooError(f"weights {src.tag!r}: model.bin sha256 is {digest[:12]}…, expected "
                       f"{src.sha256[:12]}… (reinstall the weight packages)")
    sd, config = convert(parse_model_bin(data, what=src.parts[0].name))
    del data
    sd = {k: v.contiguous() for k, v in sd.items() if k != TIED[0]}  # tied: stored once
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    try:
        save_file(sd, tmp, metadata={"format": FORMAT, "source_sha256": digest,
                                     "source_tag": src.tag, "config": json.dumps(config)})
        os.replace(tmp, target)  # atomic: readers see the old file or the whole new one
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def converted(tag: str) -> Path:
    """The converted safetensors of weights ``tag``, converting on first use."""
    src = model_bin(tag)
    sha = src.sha256
    if sha is None:  # parts without a registered whole-file sha256: hash them to find the key
        sha = hashlib.sha256(read_parts(src.parts)).hexdigest()
        src = ModelBin(src.tag, src.parts, src.folder, sha)
    path = cache_root() / f"{sha}.safetensors"
    meta = _read_meta(path) if path.is_file() else None
    if not meta or meta.get("format") != FORMAT or meta.get("source_sha256") != sha:
        _convert_to(src, path)
    return path


def whisper_config(tag: str) -> dict[str, Any]:
    """The ``WhisperConfig`` fields of weights ``tag`` (from the converted file)."""
    meta = _read_meta(converted(tag)) or {}
    return json.loads(meta.get("config", "{}"))


def load_part(module: torch.nn.Module, tag: str, prefix: str) -> None:
    """Load the tensors under ``prefix`` (``"model.encoder."``) into ``module``, strictly."""
    from safetensors import safe_open

    path = converted(tag)
    with safe_open(str(path), framework="pt") as f:
        sd = {k[len(prefix):]: f.get_tensor(k) for k in f.keys() if k.startswith(prefix)}
    try:
        module.load_state_dict(sd, strict=True)
    except RuntimeError as e:
        first = next((ln.strip() for ln in str(e).splitlines()[1:] if ln.strip()), str(e))
        raise ZooError(f"weights {tag!r} do not fit {type(module).__name__} (check its "
                       f"dimensions): {first}") from None
