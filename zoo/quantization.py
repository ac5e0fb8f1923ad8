"""int8 inference on the CPU: dynamic quantization of a loaded model, for predicting.

``zoo.load(name, quantize="int8")``, ``model.quantize("int8")`` and ``--quantize int8`` on
``zoo predict`` all come here. Every ``nn.Linear`` of the encoders, the fusion and the head
becomes torch's dynamically quantized Linear (``torch.ao.quantization.quantize_dynamic``):
weights stored in int8 with one scale per output row (what CTranslate2's int8 does too),
activations quantized per call, so matrix products run on the CPU's int8 instructions
(VNNI / AMX where present) and read a quarter of the weight bytes. Everything else
(convolutions, embeddings, normalisation, attention's own products) stays float32.

A component that knows more than its ``nn.Linear`` layers (a projection tied to an
embedding matrix, which is a plain tensor and not a layer) defines ``quantize(mode)``: the
core then calls that and leaves the component to it (``whisper-decoder`` does: its output
projection onto the vocabulary is the largest product of every decoding step).

A quantized model is for inference: it runs on the CPU only, predicts in float32
activations (no bf16/fp16 autocast on top) and cannot be saved or trained (save the float
model; quantize after loading). Accuracy moves a little: measure it (``zoo eval`` on a
model loaded with ``quantize``, or the task's bench) before you serve it.
"""
from __future__ import annotations

from typing import Any

from zoo.errors import ZooError

__all__ = ["QUANTIZE_MODES", "check_quantize", "quantize_model", "quantize_linear",
           "full_range"]

#: what ``quantize`` takes (None: keep the float model)
QUANTIZE_MODES = ("int8",)


def check_quantize(mode: Any, device: Any = None, precision: str | None = None
                   ) -> str | None:
    """``mode`` checked (None passes), and the device and precision it needs: one line for
    anything else. ``device``: a device spec or ``torch.device`` the model is meant to run
    on; ``auto`` (or None) is fine (int8 takes the CPU), another accelerator is not.
    ``precision``: the activations' (auto, fp32 or None: int8 keeps them in float32)."""
    if mode is None:
        return None
    if not isinstance(mode, str) or mode not in QUANTIZE_MODES:
        raise ZooError(f"quantize must be one of {', '.join(QUANTIZE_MODES)} (or none), "
                       f"got {str(mode)[:40]!r}")
    if precision not in (None, "auto", "fp32"):
        raise ZooError(f"quantize={mode} predicts with float32 activations, not "
                       f"precision {str(precision)[:20]}: use precision fp32 (or auto)")
    if device is not None:
        from zoo.devices import check_device

        spec = check_device(getattr(device, "type", device))
        if spec not in ("auto", "cpu"):
            raise ZooError(f"quantize={mode} is dynamic int8 quantization for the CPU, not "
                           f"device {spec}: pass device cpu (or auto)")
    return mode


def full_range() -> bool:
    """Whether activations may use all 8 bits here. Without VNNI (AVX512-VNNI, AVX-VNNI or
    AMX), x86 int8 kernels add pairs of products in 16 bits, which 8-bit activations can
    overflow; torch then keeps 7 (``reduce_range``), and pays for it in accuracy: Whisper
    base lost a word on five clips with 7-bit activations, none with 8 (bench_whisper.py)."""
    import torch

    cpu = getattr(torch._C, "_cpu", None)
    checks = ("_is_avx512_vnni_supported", "_is_amx_tile_supported")
    return bool(cpu is not None and any(getattr(cpu, c, lambda: False)() for c in checks))


def _int8_linear_class() -> Any:
    """torch's dynamic int8 Linear, with activations on 8 bits where :func:`full_range`."""
    import torch
    from torch.ao.nn.quantized.dynamic import Linear

    reduce_range = not full_range()

    class Int8Linear(Linear):
        """Dynamic int8 Linear (torch.ao) whose activations keep 8 bits on VNNI CPUs."""

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            packed = self._packed_params._packed_params
            return torch.ops.quantized.linear_dynamic(x, packed,
                                                      reduce_range=reduce_range).to(x.dtype)

    return Int8Linear


def quantize_linear(module: Any) -> Any:
    """Every ``nn.Linear`` under ``module`` (not ``module`` itself) made dynamic int8 in
    place: weights int8 with one scale per output row, activations quantized per call
    (8 bits on CPUs with VNNI, else 7); returns ``module``."""
    import warnings

    from torch import nn
    from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

    with warnings.catch_warnings():  # torch.ao's notice that eager quantization moves to torchao
        warnings.simplefilter("ignore")
        quantize_dynamic(module, {nn.Linear: per_channel_dynamic_qconfig},
                         mapping={nn.Linear: _int8_linear_class()}, inplace=True)
    return module


def quantize_model(model: Any, mode: str = "int8") -> Any:
    """Quantize a zoo model in place for CPU inference (module docstring); returns it.
    Quantizing again in the same mode does nothing."""
    check_quantize(mode)
    if getattr(model, "quantized", None) == mode:
        return model
    if model.device.type != "cpu":
        raise ZooError(f"quantize={mode} runs on the CPU; this model is on {model.device}: "
                       f"load it with device='cpu' (or move it: model.place('cpu'))")
    if model.precision not in ("auto", "fp32"):
        raise ZooError(f"quantize={mode} predicts with float32 activations, not precision "
                       f"{model.precision}: use precision fp32 (or auto)")
    model.eval()
    for part in (*model.encoders.values(), model.fusion, model.head):
        if part is None:
            continue
        own = getattr(part, "quantize", None)
        if callable(own):
            own(mode)
        else:
            quantize_linear(part)
    model.precision = "fp32"
    model.quantized = mode
    return model
