"""Convert a tag's CTranslate2 model.bin once into safetensors under the zoo cache, keyed by
the model.bin's sha256 (``weights.cache_dir``); later loads read the cache.

The folder holds a transformers ``WhisperForConditionalGeneration`` state dict (float16, as
shipped) in two files, so each zoo part reads only its own: ``encoder.safetensors``
(``model.encoder.*``) and ``decoder.safetensors`` (``model.decoder.*``; ``proj_out.weight``
is tied to ``model.decoder.embed_tokens.weight`` and not stored). Both carry the source
sha256 and the ``WhisperConfig`` fields as metadata, and each is sealed
(``zoo.plugin.seal``, claim: the source sha256): a file edited or planted in the cache
fails its seal and is converted again, never loaded. The folder is written under a
temporary name and renamed into place: readers see all of it or none of it.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch

from zoo.plugin import ZooError, is_sealed, seal

from .convert import TIED, convert
from .ct2 import parse_model_bin, read_parts
from .weights import ModelBin, cache_dir, model_bin

__all__ = ["converted", "load_encoder", "whisper_config", "FILES"]

FORMAT = "zoo-whisper-hf/1"
FILES = {"encoder": "model.encoder.", "decoder": "model.decoder."}  # file -> key prefix


def _meta(path: Path) -> dict[str, str] | None:
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            return f.metadata() or {}
    except Exception:  # missing, unreadable or not safetensors: converted again
        return None


def _valid(folder: Path, sha: str) -> bool:
    for name in FILES:
        meta = _meta(folder / f"{name}.safetensors")
        if not meta or meta.get("format") != FORMAT or meta.get("source_sha256") != sha:
            return False
        if not is_sealed(folder / f"{name}.safetensors", claim=sha):
            return False
    return True


def _write(src: ModelBin, target: Path) -> None:
    from safetensors.torch import save_file

    data = read_parts(src.parts)
    digest = hashlib.sha256(data).hexdigest()
    if digest != src.sha256:
        raise ZooError(f"weights {src.tag!r}: model.bin sha256 is {digest[:12]}…, expected "
                       f"{str(src.sha256)[:12]}… (reinstall the weight packages)")
    sd, config = convert(parse_model_bin(data, what=src.parts[0].name))
    del data
    meta = {"format": FORMAT, "source_sha256": digest, "source_tag": src.tag,
            "config": json.dumps(config, sort_keys=True)}
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        for name, prefix in FILES.items():
            part = {k: v.contiguous() for k, v in sd.items()
                    if k.startswith(prefix) and k != TIED[0]}
            save_file(part, str(tmp / f"{name}.safetensors"), metadata=meta)
            seal(tmp / f"{name}.safetensors", claim=digest)
        if target.exists():  # a stale or broken folder: replaced
            shutil.rmtree(target, ignore_errors=True)
        try:
            os.rename(tmp, target)  # atomic
        except OSError:
            if not _valid(target, digest):  # not another process's finished conversion
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def converted(tag: str) -> Path:
    """The converted folder of model.bin weights ``tag``, converting on first use."""
    src = model_bin(tag)
    if src.sha256 is None:  # parts without a registered whole-file sha256: hash to find the key
        src = ModelBin(src.tag, src.parts, src.folder,
                       hashlib.sha256(read_parts(src.parts)).hexdigest())
    folder = cache_dir(src.sha256)
    if not _valid(folder, src.sha256):
        _write(src, folder)
    return folder


def whisper_config(tag: str) -> dict[str, Any]:
    """The ``WhisperConfig`` fields of weights ``tag``."""
    meta = _meta(converted(tag) / "encoder.safetensors") or {}
    return json.loads(meta.get("config", "{}"))


def load_encoder(module: torch.nn.Module, tag: str) -> None:
    """Load ``encoder.safetensors`` (keys ``model.encoder.*``) into ``module``, strictly."""
    from safetensors.torch import load_file

    sd = load_file(str(converted(tag) / "encoder.safetensors"))
    try:
        module.load_state_dict(sd, strict=True)
    except RuntimeError as e:
        first = next((ln.strip() for ln in str(e).splitlines()[1:] if ln.strip()), str(e))
        raise ZooError(f"weights {tag!r} do not fit {type(module).__name__} (check its "
                       f"dimensions): {first}") from None
