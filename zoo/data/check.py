"""Per-example checks that catch bad data before it reaches a batch: missing files,
images or audio that do not decode, empty text."""
from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["example_problem"]


def example_problem(inputs: dict[str, Any]) -> str | None:
    """Why this example cannot be used, or None. Reads only headers (cheap)."""
    for key, value in inputs.items():
        if key == "text":
            if not isinstance(value, str) or not value.strip():
                return "empty text"
        elif key == "image" and isinstance(value, (str, Path)):
            if not Path(value).is_file():
                return f"image file not found: {value}"
            from PIL import Image

            try:
                with Image.open(value) as im:
                    im.verify()
            except Exception as e:  # PIL raises many types for corrupt files
                return f"cannot decode image {value}: {type(e).__name__}"
        elif key == "audio" and isinstance(value, (str, Path)):
            if not Path(value).is_file():
                return f"audio file not found: {value}"
            import soundfile as sf

            try:
                info = sf.info(str(value))
                if info.frames == 0:
                    return f"audio file is empty: {value}"
            except Exception as e:
                return f"cannot decode audio {value}: {type(e).__name__}"
    return None
