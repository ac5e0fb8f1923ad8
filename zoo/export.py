"""Optimisation for deployment: TorchScript / ONNX export and dynamic int8 quantization.

The exported graph is the tensor part of a model whose task exports (``Task.exportable``:
encoders -> fusion -> head outputs, one tensor) on preprocessed inputs; preprocessing
(tokenizer, image transform) and decoding stay in Python, as they do with transformers' and
timm's own exports. Each export is checked on eval data: the change of the task's main
metric and the speed against the original model are reported.
"""
from __future__ import annotations

import statistics
import time
from pathlib import Path
from typing import Any, Sequence

import torch
from torch import nn

from zoo.errors import ZooError

__all__ = ["export_model"]


class _Graph(nn.Module):
    """Flat tensors in, the head's output tensor out: what TorchScript and ONNX carry."""

    def __init__(self, model: Any, keys: Sequence[tuple[str, str]]) -> None:
        super().__init__()
        self.model, self.keys = model, list(keys)

    def forward(self, *tensors: torch.Tensor) -> torch.Tensor:
        from zoo.base.batch import Batch, ModalityBatch

        b = tensors[0].shape[0]
        batch = Batch(size=b)
        for (m, name), t in zip(self.keys, tensors):
            batch.modalities.setdefault(m, ModalityBatch(torch.arange(b))).tensors[name] = t
        return self.model(batch)  # the head's output, e.g. (B, C) logits


def _flat(model: Any, examples: Sequence[Any]) -> tuple[list[tuple[str, str]],
                                                       list[torch.Tensor], Any]:
    batch = model.preprocess([ex.inputs for ex in examples])
    for m in model.modalities:
        if m not in batch or batch[m].index.numel() != batch.size:
            raise ZooError(f"export needs every eval example to have every modality ({m} is "
                           f"missing somewhere)")
    keys = [(m, k) for m in model.modalities for k in batch[m].tensors]
    return keys, [batch[m].tensors[k] for m, k in keys], batch


def _score(outputs: torch.Tensor, model: Any, examples: Sequence[Any], batch: Any) -> float:
    """The task's main metric of these head outputs on ``examples``."""
    preds = model.head.decode(outputs, batch=batch)
    return float(model.task_impl.metrics(model, examples, preds)[model.task_impl.metric])


def _timed(fn: Any, reps: int = 7) -> float:
    fn()
    fn()  # TorchScript's profiling executor optimises on the first calls
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def export_model(model: Any, fmt: str, out: str | Path, data: str | Path, *,
                 quantize: str | None = None, limit: int = 256,
                 device: Any = None) -> dict[str, Any]:
    """Export ``model`` (a model or folder) to ``out`` and compare it with the original on
    ``data``: the task's main metric before and after, its change, the largest output
    difference and the speed ratio (original / exported). ``device``: where the original
    runs and TorchScript is traced (a traced file keeps that device); ONNX Runtime runs on
    the CPU, or the GPU with onnxruntime-gpu. int8 is for the CPU: ``auto`` is the CPU."""
    from zoo.data.formats import read_any
    from zoo.io.hub import load

    device = _export_device(device, quantize)
    if isinstance(model, (str, Path)):
        model = load(model, device=device, precision="fp32")
    elif device is not None:
        model.place(device, "fp32")
    if model.head is None or not model.task_impl.exportable:
        raise ZooError(f"a {model.task} model does not export: its task's head gives no one "
                       f"output tensor (Task.exportable)")
    if fmt not in ("onnx", "torchscript"):
        raise ZooError("--format must be onnx or torchscript")
    if quantize not in (None, "int8"):
        raise ZooError("--quantize must be int8")
    examples, _, _ = read_any(data)
    examples = examples[:limit]
    model.eval()
    keys, tensors, batch = _flat(model, examples)
    graph = _Graph(model, keys).eval()
    with torch.inference_mode():
        ref_logits = graph(*tensors)
    base = _score(ref_logits, model, examples, batch)
    t_orig = _timed(lambda: _no_grad(graph, tensors))
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "torchscript":
        run, out = _torchscript(graph, tensors, out, quantize)
    else:
        run, out = _onnx(graph, keys, tensors, out, quantize)
    logits = run()
    value = _score(logits, model, examples, batch)
    t_new = _timed(run)
    return {"format": fmt, "quantize": quantize, "out": str(out), "n": len(examples),
            "metric": model.task_impl.metric, "metric_original": round(base, 4),
            "metric_exported": round(value, 4), "metric_change": round(value - base, 4),
            "max_output_diff": round(float((logits - ref_logits).abs().max()), 6),
            "seconds_original": round(t_orig, 4), "seconds_exported": round(t_new, 4),
            "speed_ratio": round(t_orig / t_new, 3)}


def _export_device(device: Any, quantize: str | None) -> Any:
    """Dynamic int8 quantization runs on the CPU: there, ``auto`` is the CPU and another
    device is one line."""
    if quantize is None or device is None:
        return device
    from zoo.devices import check_device

    if check_device(device) in ("auto", "cpu"):
        return "cpu"
    raise ZooError(f"--quantize int8 is dynamic quantization for CPU serving, not "
                   f"--device {device}: pass --device cpu (or auto)")


def _torchscript(graph: nn.Module, tensors: Sequence[torch.Tensor], out: Path,
                 quantize: str | None) -> tuple[Any, Path]:
    """Trace and freeze the graph (int8 dynamic quantization first when asked): a function
    running the saved file, and its path."""
    target = graph
    if quantize == "int8":
        target = torch.ao.quantization.quantize_dynamic(graph, {nn.Linear}, dtype=torch.qint8)
    with torch.no_grad():
        traced = torch.jit.trace(target, tuple(tensors), check_trace=False, strict=False)
    torch.jit.freeze(traced.eval()).save(str(out))
    loaded = torch.jit.load(str(out))
    return (lambda: _no_grad(loaded, tensors)), out


def _onnx(graph: nn.Module, keys: Sequence[tuple[str, str]], tensors: Sequence[torch.Tensor],
          out: Path, quantize: str | None) -> tuple[Any, Path]:
    """Export to ONNX (int8 dynamic quantization after, when asked): a function running the
    file in ONNX Runtime, and its path."""
    import onnxruntime as ort

    names = onnx_export(graph, keys, tensors, out)
    if quantize == "int8":  # the recipe zoo serve --quantize int8 runs
        quantized = out.with_name(out.stem + ".int8.onnx")
        quantize_onnx_int8(out, quantized)
        out = quantized
    device = tensors[0].device
    gpu = device.type == "cuda" and "CUDAExecutionProvider" in ort.get_available_providers()
    sess = ort.InferenceSession(str(out), providers=["CUDAExecutionProvider"] * gpu
                                + ["CPUExecutionProvider"])
    wanted = {i.name for i in sess.get_inputs()}  # unused inputs (image sizes) are pruned
    feed = {n: t.cpu().numpy() for n, t in zip(names, tensors) if n in wanted}
    return (lambda: torch.from_numpy(sess.run(["logits"], feed)[0]).to(device)), out


#: what int8 changes: the weights of matrix products and convolutions only (embedding
#: tables stay float: a looked-up row is not multiplied, so int8 saves no time there and
#: only adds error); it leaves in float the feed-forward down-projections of transformer
#: encoders (BERT's ``.../output/dense``, not attention's; ``fc2``, ``down_proj``), whose
#: inputs carry the activation outliers per-tensor int8 handles worst. A name that matches
#: nothing leaves that part in int8. zoo's fusion and head are int8 too (v2 meant to keep
#: them float, but ONNX Runtime renames a Gemm before it reads the exclusions, so it never
#: did). Chosen on bench_serve_peers.py's frozen MiniLM probe by accuracy on the 458
#: *validation* fortunes and agreement with fp32 (train, val) among 30 variants, then
#: measured on the 462 test fortunes: fp32 0.7727, this 0.7684 (-0.43 points, 97.6 % the
#: same label), 1.5-1.6x fp32 ONNX on one thread (batches of 32). Within noise: the same
#: with the head truly float gave 0.7662 (-0.65; one sentence). Everything in int8 is
#: 2.2-2.7x but flips twice as many labels (2.3 % of train); v2 was -0.65 on val.
INT8_RECIPE = ("v3: per-channel QInt8 weights of MatMul/Conv only (embeddings float); "
               "FFN down-projections in fp32")
INT8_OPS = ("MatMul", "Conv")  # not Gather (embeddings), nor fused Attention/LSTM
FFN_DOWN = ("/output/dense/", "/fc2/", "/down_proj/")  # BERT/ViT, CLIP/timm/Whisper, LLaMA


def _int8_keeps_float(name: str) -> bool:
    """Whether the graph node ``name`` stays in float under :data:`INT8_RECIPE`."""
    return (name.endswith(("MatMul", "Gemm")) and "/attention/" not in name
            and any(p in name for p in FFN_DOWN))


def quantize_onnx_int8(src: str | Path, dst: str | Path) -> None:
    """``src`` (an exported graph) to ``dst`` in int8: ONNX Runtime's dynamic quantization
    (int8 weights, activations quantized as they come) after :data:`INT8_RECIPE`."""
    import logging

    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    keep = []
    for n in onnx.load(str(src)).graph.node:
        if _int8_keeps_float(n.name):  # a Gemm is quantized as the MatMul it becomes first
            keep += [n.name, f"{n.name}_MatMul"] if n.op_type == "Gemm" else [n.name]
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # its advice to pre-process the graph, at every call
    try:
        quantize_dynamic(str(src), str(dst), weight_type=QuantType.QInt8, per_channel=True,
                         op_types_to_quantize=list(INT8_OPS), nodes_to_exclude=keep)
    finally:
        root.setLevel(level)


def onnx_names(keys: Sequence[tuple[str, str]]) -> list[str]:
    """The ONNX input names of the graph's flat tensors: ``modality__tensor``."""
    return [f"{m}__{k}" for m, k in keys]


def onnx_export(graph: nn.Module, keys: Sequence[tuple[str, str]],
                tensors: Sequence[torch.Tensor], out: str | Path) -> list[str]:
    """``graph`` (a :class:`_Graph`) to an ONNX file: the batch axis dynamic everywhere, and
    the second axis of every (B, N) input (token ids, masks, hashed n-gram ids and weights,
    waveforms), each its own length; output ``logits``. Returns the input names."""
    names = onnx_names(keys)
    dyn = {n: {0: "batch", **({1: f"{n}_len"} if t.ndim == 2 else {})}
           for n, t in zip(names, tensors)}
    with torch.no_grad():
        sample = graph(*tensors)
    seq = any(t.ndim == 2 for t in tensors)
    # per-token outputs (B, T, C) follow the sequence axis of the inputs
    dyn["logits"] = {0: "batch", **({1: "seq"} if seq and sample.ndim == 3 else {})}
    with torch.no_grad():
        torch.onnx.export(graph, tuple(tensors), str(out), input_names=names,
                          output_names=["logits"], dynamic_axes=dyn, opset_version=17,
                          dynamo=False)
    return names


def _no_grad(fn: Any, tensors: Sequence[torch.Tensor]) -> torch.Tensor:
    with torch.inference_mode():
        out = fn(*tensors)
    if out.is_cuda:  # CUDA runs asynchronously: the time is the work's, not its launch's
        torch.cuda.synchronize(out.device)
    return out
