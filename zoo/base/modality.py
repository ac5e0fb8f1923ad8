"""The modality contract: how values of one kind of input are read, bounded, checked,
stored and served, so that nothing outside the modality knows what a "text" or an "image"
is. Modalities register through the ``register_modalities`` hook; zoo's own (text, image,
audio) take the same path, so a plugin adds one (tabular columns, point clouds, ...) and
gets every verb: data files, ``zoo data`` tools, training with the feature cache, predict,
``zoo serve`` (JSON, multipart, raw bodies, ``/feedback``), ONNX export and the card.

A modality reads *values*: what an input dict holds under the modality's name (a string
for text, a path / PIL image / array for an image, a dict of columns for a table). Every
method has a default that fits a plain JSON value; a modality overrides what differs.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, ClassVar, Mapping, Sequence

from zoo.errors import DataError, RequestError

__all__ = ["Modality"]


class Modality:
    """Base class of modalities. Subclass it, set the class attributes that apply, and
    override the methods whose defaults (a plain JSON value) do not fit."""

    #: registry name (set from the registration): the input key (``{"text": ...}``)
    name: str = ""
    #: data files hold this modality as a path relative to the file (image, audio files)
    file_based: ClassVar[bool] = False
    #: file suffixes that mean "a value of this modality" (CLI inputs, folders): (".png",)
    suffixes: ClassVar[tuple[str, ...]] = ()
    #: request bodies and multipart parts of these media types ("image/*") are this modality
    media_types: ClassVar[tuple[str, ...]] = ()
    #: a bare string on the command line that is no file is a value of this modality
    plain_string: ClassVar[bool] = False
    #: serving: a request goes to the batching lane of its costliest modality, so cheap
    #: requests never wait behind slow ones (text 0, image 1, audio 2)
    cost: ClassVar[int] = 0
    #: values differ in length and a batch pads them to its longest (text, audio): serving
    #: sorts a batch by ``length`` into chunks, so short ones are not padded to long ones
    variable_length: ClassVar[bool] = False
    #: training: batch examples of similar ``length`` by default (less padding)
    group_by_length: ClassVar[bool] = False
    #: what an encoder's ``preprocess`` makes of it has fixed-rank tensors an exported
    #: (ONNX) graph can carry with dynamic sizes
    exportable: ClassVar[bool] = False
    #: serving limits this modality enforces: name -> default (``ZOO_SERVE_<NAME>``,
    #: ``zoo serve --limit NAME=VALUE``); ``from_request`` reads them from ``limits``
    limits: ClassVar[Mapping[str, float]] = {}
    #: CSV / TSV cells of its columns are read as numbers when they all are (tabular);
    #: False keeps them strings (text, paths)
    typed_cells: ClassVar[bool] = False
    #: how the model card shows one input of this modality in its usage snippet
    card_example: ClassVar[str] = '"...": "..."'

    # ---- data files ---------------------------------------------------------------
    def columns(self, column: Any = None) -> list[str]:
        """The data columns this modality claims: ``column`` (from ``--column NAME=COL``,
        ``columns={...}``) or its own name."""
        if column is None:
            return [self.name]
        if isinstance(column, (list, tuple)):
            return [str(c) for c in column]
        return [str(column)]

    def from_row(self, row: Mapping[str, Any], column: Any = None) -> Any:
        """This modality's value in a data row (a JSONL object, a CSV / Parquet row), or
        None when the row has none. ``column`` as in :meth:`columns`."""
        cols = self.columns(column)
        value = row.get(cols[0]) if len(cols) == 1 else {c: row.get(c) for c in cols}
        return None if value is None or (isinstance(value, str) and value == "") else value

    def from_data(self, value: Any, root: Path | None, where: str) -> Any:
        """A value read from a data file -> the input value (``root``: the file's folder,
        where relative paths of file-based modalities point; None for in-memory data).
        Raise :class:`zoo.plugin.DataError` naming ``where`` for a value of the wrong shape."""
        if self.file_based and root is not None:
            if not isinstance(value, str):
                raise DataError(f"{where}: {self.name!r} must be a path relative to the file, "
                                f"got {type(value).__name__}")
            return str(root / value)
        return value

    def to_data(self, value: Any, root: Path) -> Any:
        """The inverse for a data file written into folder ``root`` (``zoo data clean``,
        ``label``): file-based values as paths relative to ``root``. Raise DataError when
        the value cannot be written as a data-file cell (an embedded image)."""
        if not self.file_based:
            return value
        if not isinstance(value, (str, Path)):
            raise DataError(f"embedded {self.name}: data files hold {self.name} as file paths; "
                            f"export the files first")
        import os

        return os.path.relpath(Path(value).resolve(), root.resolve())

    # ---- checks and statistics ------------------------------------------------------
    def check(self, value: Any) -> str | None:
        """Why ``value`` cannot be used (a missing file, an undecodable one, an empty
        string), or None. Cheap: reads headers, never decodes whole files."""
        if self.file_based and isinstance(value, (str, Path)) and not Path(value).is_file():
            return f"{self.name} file not found: {value}"
        return None

    def length(self, value: Any) -> float:
        """A sort key for length grouping and cache batching (seconds, characters)."""
        return 0.0

    def digest(self, value: Any) -> bytes:
        """What the value *is*, for duplicate detection (``zoo data check``): file
        contents by their bytes, other values by their JSON."""
        if self.file_based and isinstance(value, (str, Path)):
            p = Path(value)
            return p.read_bytes() if p.is_file() else str(p).encode()
        if hasattr(value, "tobytes"):
            return value.tobytes()
        if hasattr(value, "getvalue"):
            return value.getvalue()
        return json.dumps(value, sort_keys=True, default=str).encode()

    def describe(self, values: Sequence[Any]) -> dict[str, Any] | None:
        """Statistics of a data set's values for ``zoo data check`` (sizes, durations),
        JSON; None when there is nothing to say."""
        return None

    # ---- serving ----------------------------------------------------------------------
    def from_request(self, value: Any, where: str, limits: Any) -> Any:
        """One JSON request value -> the input value, decoded within ``limits`` (the
        server's :class:`zoo.plugin.Limits`; read this modality's own by name). Raise
        :class:`zoo.plugin.RequestError` (400, 413 over a limit, 422 impossible) naming
        ``where``."""
        if self.file_based:
            import base64
            import binascii

            if not isinstance(value, str):
                raise RequestError(f"{where} must be a string (base64)")
            b64 = value.split(",", 1)[1] if value.startswith("data:") else value
            try:
                data = base64.b64decode(b64, validate=True)
            except (binascii.Error, ValueError):
                raise RequestError(f"{where} is not valid base64") from None
            if not data:
                raise RequestError(f"{where} is empty")
            return self.from_bytes(data, where, limits)
        if json_size(value) > limits.max_value_bytes:
            raise RequestError(f"{where} is over {limits.max_value_bytes} bytes of JSON "
                               f"(ZOO_SERVE_MAX_VALUE_BYTES)", 413)
        return value

    def from_bytes(self, data: bytes, where: str, limits: Any) -> Any:
        """A file's bytes (a multipart part, a raw request body, decoded base64) -> the
        input value, within ``limits``."""
        raise RequestError(f"{where}: {self.name} is not sent as a file")

    def to_request(self, value: Any) -> Any:
        """An input value as a JSON request value (clients, tests): file-based values as
        base64 of the file."""
        if self.file_based and isinstance(value, (str, Path)):
            import base64

            return base64.b64encode(Path(value).read_bytes()).decode()
        return value

    def to_record(self, value: Any, media: Path, stem: str) -> Any:
        """A stored request value (``/feedback``) -> a data-file value for ``zoo data
        from-feedback``: file-based values are written into ``media`` as ``stem`` plus a
        suffix, and the path relative to ``media``'s parent is returned."""
        if not self.file_based:
            return value
        import base64

        data = base64.b64decode(value.split(",", 1)[1] if value.startswith("data:") else value)
        media.mkdir(parents=True, exist_ok=True)
        path = media / f"{stem}{self.sniff(data)}"
        path.write_bytes(data)
        return f"{media.name}/{path.name}"

    def sniff(self, data: bytes) -> str:
        """The file suffix for these bytes (``to_record``)."""
        return self.suffixes[0] if self.suffixes else ".bin"

    def request_schema(self) -> dict[str, Any]:
        """The OpenAPI schema of one request value (shown in ``/docs``)."""
        if self.file_based:
            return {"type": "string", "description": f"{self.name}: base64 of the file, or a "
                                                     f"data: URL"}
        return {"description": f"{self.name} value"}

    # ---- explanations (zoo explain, POST /explain) ----------------------------------------
    def explain_load(self, value: Any) -> Any:
        """``value`` decoded once, before an explanation perturbs it many times (an image
        as an RGB PIL image, audio as ``(wave, rate)``). Default: as it is."""
        return value

    def explain_units(self, value: Any, max_units: int) -> list[dict[str, Any]]:
        """The parts of ``value`` an explanation shares the model's score among (text:
        words; image: a grid of patches; audio: time windows), at most ``max_units``, each
        a JSON object saying where it is (character offsets, a pixel box, seconds).
        Default: the whole value is one unit."""
        return [{}]

    def explain_ablate(self, value: Any, units: Sequence[dict[str, Any]],
                       keep: Sequence[bool]) -> Any:
        """``value`` without the ``units`` whose ``keep`` is False (words deleted, patches
        filled with the image's mean colour, windows silenced): what the model is asked
        about to measure each unit's part. None: the modality absent. Default: the value
        when every unit is kept, else None."""
        return value if all(keep) else None

    def explain_render(self, value: Any, units: Sequence[dict[str, Any]],
                       attributions: Sequence[float], stem: Path, title: str) -> list[str]:
        """Pictures of an explanation (a heat-map overlay PNG, a plot over time, coloured
        HTML) written to ``stem`` plus a suffix of yours; returns the files written.
        ``title`` names what is explained (the label and its score). Default: none."""
        return []

    def explain_show(self, value: Any, units: Sequence[dict[str, Any]],
                     attributions: Sequence[float]) -> str | None:
        """The explanation as terminal text (text: the words coloured by attribution), or
        None: ``zoo explain`` then lists the units that weigh most."""
        return None

    # ---- robustness ------------------------------------------------------------------------
    def corruptions(self, values: Sequence[Any] = ()) -> dict[str, Any]:
        """The corruption suite ``zoo eval --robustness`` runs on this modality: name ->
        ``corrupt(value, severity, rng) -> value``, where ``severity`` is 1, 2 or 3 (mild to
        harsh), ``rng`` a ``numpy.random.Generator`` seeded per example (draw every random
        number from it: the same seed gives the same corrupted value) and the result an
        input value the encoders read (a PIL image, ``(wave, rate)``, a string). ``values``
        are the eval set's values of this modality, for corruptions that mix them (babble
        noise). Empty by default: the modality is reported as skipped."""
        return {}

    # ---- checks and exports -------------------------------------------------------------
    def samples(self) -> list[Any]:
        """Two input values of different sizes: what ``zoo plugins check`` feeds encoders
        and what an ONNX export is traced and checked on."""
        raise NotImplementedError(f"modality {self.name!r} has no samples()")

    scaffold_encoder: ClassVar[str] = ""
    """The source of an example encoder for ``zoo plugin new --modality NAME`` (a module
    with ``{cls}`` for the class name); empty: the scaffold offers no encoder for it."""


def json_size(value: Any) -> int:
    """Bytes of ``value`` as compact JSON (a cheap bound on a request value's size)."""
    return len(json.dumps(value, separators=(",", ":"), default=str))


def content_hash(parts: Sequence[bytes]) -> str:
    h = hashlib.sha256()
    for p in parts:
        h.update(len(p).to_bytes(8, "little"))
        h.update(p)
    return h.hexdigest()
