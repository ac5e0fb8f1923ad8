"""Where a model runs and in which precision: ``--device auto|cpu|cuda[:N]|mps`` and
``--precision auto|fp32|bf16|fp16``, resolved once here for every command (train, predict,
eval, serve, export, explain, calibrate) and the Python API.

``auto`` picks ``cuda:0`` when CUDA is present, else Apple's ``mps``, else the CPU. A device
this machine lacks is one line naming what exists and what to pass. torch is imported when
a device is resolved, never at import time (``zoo list`` and ``--help`` stay light)."""
from __future__ import annotations

import contextlib
import re
from typing import Any

from zoo.errors import ZooError

__all__ = ["DEVICES", "PRECISIONS", "check_device", "resolve_device", "resolve_precision",
           "inference_precision", "autocast_for"]

#: what --device takes (cuda:N: the N-th CUDA device)
DEVICES = ("auto", "cpu", "cuda", "cuda:N", "mps")
#: what --precision takes; auto: bf16 autocast on a CUDA GPU, fp32 elsewhere
PRECISIONS = ("auto", "fp32", "bf16", "fp16")

_SPEC = re.compile(r"auto|cpu|mps|cuda(:\d+)?")


def check_device(spec: Any) -> str:
    """``spec`` as a device string (a ``torch.device`` too), its form checked without torch:
    anything else is one line listing the choices."""
    s = str(spec).strip().lower()
    if not _SPEC.fullmatch(s):
        raise ZooError(f"--device {str(spec)[:40]!r}: expected one of {', '.join(DEVICES)}")
    return s


def _mps_available() -> bool:
    import torch

    mps = getattr(torch.backends, "mps", None)
    return bool(mps is not None and mps.is_available())


def resolve_device(spec: Any = "auto") -> Any:
    """``"auto" | "cpu" | "cuda" | "cuda:N" | "mps"`` (or a ``torch.device``) -> the
    ``torch.device`` to run on; a device this machine lacks raises :class:`ZooError`."""
    import torch

    s = check_device(spec)
    if s == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", 0)
        return torch.device("mps") if _mps_available() else torch.device("cpu")
    if s == "cpu":
        return torch.device("cpu")
    if s == "mps":
        if not _mps_available():
            raise ZooError("--device mps: this machine has no MPS device "
                           "(torch.backends.mps.is_available() is False); pass --device cpu "
                           "or auto")
        return torch.device("mps")
    if not torch.cuda.is_available():
        raise ZooError(f"--device {s}: this machine has no CUDA device "
                       f"(torch.cuda.is_available() is False); pass --device cpu or auto")
    index, count = int(s.partition(":")[2] or 0), torch.cuda.device_count()
    if index >= count:
        raise ZooError(f"--device {s}: this machine has {count} CUDA device(s), cuda:0 to "
                       f"cuda:{count - 1}; pass one of those, or --device auto")
    return torch.device("cuda", index)


def resolve_precision(precision: str, device: Any) -> str:
    """``auto`` is bf16 on a CUDA GPU, fp32 elsewhere; fp16 needs CUDA."""
    if precision == "auto":
        return "bf16" if device.type == "cuda" else "fp32"
    if precision not in PRECISIONS:
        raise ZooError("--precision must be auto, fp32, bf16 or fp16")
    if precision == "fp16" and device.type != "cuda":
        raise ZooError("--precision fp16 needs a CUDA GPU; on CPU use bf16 or fp32")
    return precision


def inference_precision(precision: str, device: Any) -> str:
    """The precision predictions run in: as :func:`resolve_precision`, except that ``auto``
    on a CUDA GPU without bfloat16 (before Ampere) is fp16 (no gradients: no loss scaling
    needed)."""
    resolved = resolve_precision(precision, device)
    if precision == "auto" and resolved == "bf16":
        import torch

        if not torch.cuda.is_bf16_supported():
            return "fp16"
    return resolved


def autocast_for(precision: str, device: Any) -> Any:
    """The autocast context of a resolved precision (none for fp32)."""
    if precision == "fp32":
        return contextlib.nullcontext()
    import torch

    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(device.type, dtype=dtype)
