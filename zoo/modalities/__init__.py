"""zoo's own modalities (text, image, audio), registered through the same hook as any
plugin's (no torch, PIL or soundfile imported here)."""
from __future__ import annotations

from zoo.plugin import hookimpl

zoo_contract = 2


@hookimpl
def register_modalities(register):
    register("text", "zoo.modalities.text:Text",
             description="A string. Served as a JSON string; `text` columns in data files.")
    register("image", "zoo.modalities.image:Image",
             description="A path, PIL image or array; served as base64 / multipart / "
                         "image/* bodies; data files hold paths.")
    register("audio", "zoo.modalities.audio:Audio",
             description="A path, (array, rate) or array; served as base64 WAV/FLAC/OGG, "
                         "multipart or audio/* bodies; data files hold paths.")
