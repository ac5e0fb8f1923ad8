"""Reader of CTranslate2's ``model.bin`` (binary versions 4-6), written from the layout of
CTranslate2's serializer (python/ctranslate2/specs/model_spec.py, ``ModelSpec._serialize``).

All integers are little-endian::

    u32 binary_version
    str spec_name              str = u16 length (bytes + 1) | utf-8 bytes | NUL
    u32 spec_revision
    u32 num_variables
    num_variables x:  str name | u8 rank | rank x u32 dims | u8 dtype id | u32 num_bytes | data
    u32 num_aliases
    num_aliases x:    str alias | str target

Every count and size is checked against what is left of the buffer before anything is
allocated, so a truncated or hostile file costs at most one pass over its own bytes and
fails with one line.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from zoo.plugin import ZooError

__all__ = ["Ct2Model", "Ct2FormatError", "read_model_bin", "read_parts", "parse_model_bin",
           "MAX_FILE_BYTES"]

#: binary versions whose layout is the one above (v4 added dtype ids; v3 aliases)
SUPPORTED_VERSIONS = (4, 5, 6)
#: dtype ids of include/ctranslate2/types.h, in order
_DTYPES = (torch.float32, torch.int8, torch.int16, torch.int32, torch.float16, torch.bfloat16)
MAX_FILE_BYTES = 8 << 30  # far above Whisper large (3 GB in fp16)
MAX_VARIABLES = 100_000
MAX_NAME_BYTES = 1024
MAX_RANK = 8


class Ct2FormatError(ZooError):
    """A model.bin that is not a well-formed CTranslate2 model (one line)."""


@dataclass
class Ct2Model:
    spec: str
    revision: int
    version: int
    variables: dict[str, torch.Tensor] = field(default_factory=dict)
    aliases: dict[str, str] = field(default_factory=dict)  # alias -> variable name

    def get(self, name: str) -> torch.Tensor:
        """A variable by name, following an alias."""
        return self.variables[self.aliases.get(name, name)]


class _Cursor:
    def __init__(self, buf: memoryview, what: str) -> None:
        self.buf, self.pos, self.what = buf, 0, what

    def fail(self, message: str) -> Ct2FormatError:
        return Ct2FormatError(f"{self.what}: {message} (at byte {self.pos}); not a valid "
                              f"CTranslate2 model.bin")

    def need(self, n: int, what: str) -> None:
        if n < 0 or self.pos + n > len(self.buf):
            raise self.fail(f"truncated: {what} needs {n} bytes, {len(self.buf) - self.pos} "
                            f"left")

    def unpack(self, fmt: str, what: str) -> int:
        size = struct.calcsize("<" + fmt)
        self.need(size, what)
        (value,) = struct.unpack_from("<" + fmt, self.buf, self.pos)
        self.pos += size
        return value

    def string(self, what: str) -> str:
        n = self.unpack("H", what)
        if n == 0 or n > MAX_NAME_BYTES + 1:
            raise self.fail(f"{what} has length {n} (allowed 1..{MAX_NAME_BYTES + 1})")
        self.need(n, what)
        raw = bytes(self.buf[self.pos:self.pos + n])
        if raw[-1] != 0:
            raise self.fail(f"{what} is not NUL-terminated")
        self.pos += n
        try:
            return raw[:-1].decode("utf-8")
        except UnicodeDecodeError:
            raise self.fail(f"{what} is not UTF-8") from None


def _variable(cur: _Cursor, index: int) -> tuple[str, torch.Tensor]:
    name = cur.string(f"variable {index} name")
    rank = cur.unpack("B", f"rank of {name}")
    if rank > MAX_RANK:
        raise cur.fail(f"{name} has rank {rank} (at most {MAX_RANK})")
    shape = [cur.unpack("I", f"shape of {name}") for _ in range(rank)]
    type_id = cur.unpack("B", f"dtype of {name}")
    if type_id >= len(_DTYPES):
        raise cur.fail(f"{name} has unknown dtype id {type_id}")
    dtype = _DTYPES[type_id]
    num_bytes = cur.unpack("I", f"size of {name}")
    numel = 1
    for d in shape:
        numel *= d
    itemsize = torch.empty((), dtype=dtype).element_size()
    if numel * itemsize != num_bytes:
        raise cur.fail(f"{name}: shape {shape} of {dtype} needs {numel * itemsize} bytes but "
                       f"the file says {num_bytes}")
    cur.need(num_bytes, f"data of {name}")  # checked before anything is allocated
    # an aligned copy of the bytes, then viewed as the dtype and shape
    flat = np.frombuffer(cur.buf, dtype=np.uint8, count=num_bytes, offset=cur.pos).copy()
    cur.pos += num_bytes
    return name, torch.from_numpy(flat).view(dtype).reshape(shape)


def parse_model_bin(data: bytes | bytearray | memoryview, what: str = "model.bin"
                    ) -> Ct2Model:
    """Parse a whole model.bin held in memory."""
    buf = memoryview(data).cast("B")
    if len(buf) > MAX_FILE_BYTES:
        raise Ct2FormatError(f"{what}: {len(buf)} bytes is larger than any supported model")
    cur = _Cursor(buf, what)
    version = cur.unpack("I", "binary version")
    if version not in SUPPORTED_VERSIONS:
        raise cur.fail(f"binary version {version} is not supported (supported: "
                       f"{', '.join(map(str, SUPPORTED_VERSIONS))})")
    spec = cur.string("spec name")
    revision = cur.unpack("I", "spec revision")
    count = cur.unpack("I", "variable count")
    # every variable takes at least 2 + 1 + 1 + 1 + 4 bytes: a cheap bound on the count
    if count > MAX_VARIABLES or count * 9 > len(buf) - cur.pos:
        raise cur.fail(f"variable count {count} cannot fit in the file")
    model = Ct2Model(spec=spec, revision=revision, version=version)
    for i in range(count):
        name, tensor = _variable(cur, i)
        if name in model.variables:
            raise cur.fail(f"variable {name!r} appears twice")
        model.variables[name] = tensor
    n_alias = cur.unpack("I", "alias count")
    if n_alias > count or n_alias * 4 > len(buf) - cur.pos:
        raise cur.fail(f"alias count {n_alias} cannot fit in the file")
    for i in range(n_alias):
        alias, target = cur.string(f"alias {i}"), cur.string(f"target of alias {i}")
        if target not in model.variables:
            raise cur.fail(f"alias {alias!r} points to unknown variable {target!r}")
        if alias in model.variables or alias in model.aliases:
            raise cur.fail(f"alias {alias!r} is already defined")
        model.aliases[alias] = target
    if cur.pos != len(buf):
        raise cur.fail(f"{len(buf) - cur.pos} unexpected bytes after the aliases")
    return model


def read_parts(paths: Sequence[Path]) -> bytearray:
    """The files ``paths`` concatenated in memory (a model.bin split into parts), read into
    one preallocated buffer: sizes are checked before allocating."""
    sizes = [Path(p).stat().st_size for p in paths]
    total = sum(sizes)
    if total > MAX_FILE_BYTES:
        raise Ct2FormatError(f"{Path(paths[0]).name}: {total} bytes is larger than any "
                             f"supported model")
    buf = bytearray(total)
    view, pos = memoryview(buf), 0
    for p, size in zip(paths, sizes):
        with open(p, "rb") as f:
            got = f.readinto(view[pos:pos + size])
        if got != size:
            raise Ct2FormatError(f"{p}: changed while it was read")
        pos += size
    return buf


def read_model_bin(*paths: Path) -> Ct2Model:
    """Read a model.bin (or its parts, in order) from disk."""
    return parse_model_bin(read_parts(paths), what=Path(paths[0]).name)
