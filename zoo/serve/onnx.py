"""``zoo serve --runtime onnx``: the tensor part of a model whose task exports (encoders ->
fusion -> head outputs, one tensor) runs in ONNX Runtime; zoo keeps preprocessing
(tokenizer, image transform) and decoding (labels, scores, tags), so outputs are those of
``model.predict``.

The graph is exported once with :mod:`zoo.export` and cached under zoo's cache folder
(``$ZOO_CACHE/onnx/<digest>/model.onnx``, the digest of the weights, the config and the
torch / onnx versions), so a restart or a second worker only loads it. Every start checks
the session against torch on two inputs of different shapes (logits within 1e-3) before
serving. A batch where some input lacks one of the model's modalities runs in torch (the
graph is traced with every modality present). Which modalities and tasks can be exported
is theirs to say (``Modality.exportable``, ``Task.exportable``).
"""
from __future__ import annotations

import hashlib
import json
import os
import threading
from pathlib import Path
from typing import Any

from zoo.errors import ZooError

__all__ = ["OnnxRunner", "RUNTIMES", "onnx_device"]

RUNTIMES = ("torch", "onnx")
TOLERANCE = 1e-3  # largest |logit difference| against torch accepted at start
#: int8 (dynamic quantization) moves logits by a few percent of their range: at start the
#: largest difference must stay within this share of torch's largest logit, which catches
#: a broken graph, not a small loss of accuracy: that is measured on labelled data
#: (``zoo export --quantize int8 --data``, bench_serve_peers.py)
TOLERANCE_INT8 = 0.2
CHUNK = 8  # texts per ONNX call, sorted by length (less padding; see _length_chunks)
#: batches may run side by side (``zoo serve --batch-threads``), each session call outside
#: the GIL; what runs in Python (tokenizers are not safe to share between threads: a fast
#: tokenizer sets its padding in place) takes this lock
_PYTHON_SIDE = threading.Lock()


def _unsupported(why: str) -> ZooError:
    return ZooError(f"--runtime onnx cannot serve this model: {why}; use --runtime torch")


def _gpu_provider() -> bool:
    try:
        import onnxruntime as ort
    except ImportError:
        return False
    return "CUDAExecutionProvider" in ort.get_available_providers()


def onnx_device(device: str) -> str:
    """Where ``--runtime onnx`` runs for ``--device device``: a CUDA device only with
    onnxruntime-gpu (its CUDAExecutionProvider); else the CPU, said in one warning."""
    if not device.startswith("cuda") or _gpu_provider():
        return device if device.startswith("cuda") else "cpu"
    import warnings

    warnings.warn(f"--runtime onnx runs on the CPU, not {device}: this onnxruntime has no "
                  f"CUDAExecutionProvider (pip install onnxruntime-gpu, or serve on the GPU "
                  f"with --runtime torch)", UserWarning, stacklevel=2)
    return "cpu"


def _dummy_inputs(model: Any) -> list[dict[str, Any]]:
    """Two inputs of different sizes, every modality present (its ``samples()``): what the
    graph is traced and checked on."""
    from zoo.registry import modalities

    reg = modalities()
    for m in model.modalities:
        if not reg[m].exportable:
            raise _unsupported(f"its {m} encoder takes inputs of varying layout that the "
                               f"exported graph cannot carry")
    samples = {m: reg[m].samples() for m in model.modalities}
    return [{m: samples[m][k] for m in model.modalities} for k in (0, 1)]


def _flat(model: Any, batch: Any) -> tuple[list[tuple[str, str]], list[Any]] | None:
    """The graph's flat tensors for a batch, or None when some input lacks a modality."""
    for m in model.modalities:
        if m not in batch or batch[m].index.numel() != batch.size:
            return None
    keys = [(m, k) for m in model.modalities for k in batch[m].tensors]
    return keys, [batch[m].tensors[k] for m, k in keys]


def _digest(model: Any, keys: list[tuple[str, str]]) -> str:
    """What the exported graph depends on: weights, config, input keys, versions."""
    import onnx
    import torch

    from zoo.version import __version__

    h = hashlib.sha256()
    h.update(json.dumps([model.component_config(), keys, torch.__version__, onnx.__version__,
                         __version__], sort_keys=True, default=str).encode())
    for name, t in sorted(model.state_dict().items()):
        t = t.detach().cpu().contiguous()
        h.update(f"{name}:{t.dtype}:{tuple(t.shape)}".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()[:24]


class OnnxRunner:
    """``predict(inputs, batch_size=...)`` as :meth:`ZooModel.predict` gives it, with the
    tensor part in ONNX Runtime. Raises :class:`ZooError` (one line, naming the runtime to
    use instead) when onnxruntime is missing or the model cannot be exported."""

    def __init__(self, model: Any, cache_dir: str | Path | None = None,
                 threads: int | None = None, device: str | None = None,
                 quantize: str | None = None) -> None:
        try:
            import onnx  # noqa: F401  (torch.onnx.export writes through it)
            import onnxruntime  # noqa: F401
        except ImportError as e:
            raise ZooError(f"--runtime onnx needs onnxruntime and onnx ({e.name} is missing): "
                           f"pip install onnxruntime onnx, or use --runtime torch") from None
        from zoo.export import _Graph, onnx_names
        from zoo.weights import _cache_dir

        if model.head is None or not getattr(model.task_impl, "exportable", False):
            raise _unsupported(f"its task ({model.task}) does not export (the head's "
                               f"outputs are not one tensor)")
        self.model = model.eval()
        dummy = _dummy_inputs(model)
        flat = _flat(model, model.preprocess(dummy))
        if flat is None:
            raise _unsupported("its preprocessing drops a modality")
        keys, tensors = flat
        self.keys, self.names = keys, onnx_names(keys)
        folder = Path(cache_dir) if cache_dir else _cache_dir() / "onnx"
        self.path = folder / _digest(model, keys) / "model.onnx"
        graph = _Graph(model, keys).eval()
        self.exported = _export_once(graph, keys, tensors, self.path)
        if quantize not in (None, "int8"):
            raise ZooError(f"unknown quantization {quantize!r} (int8)")
        self.quantize = quantize
        if quantize:
            self.path = _quantized_once(self.path)
        # the graph on the GPU with onnxruntime-gpu when device names one; the CPU otherwise
        self.on_gpu = bool(device and str(device).startswith("cuda") and _gpu_provider())
        self.providers = (["CUDAExecutionProvider"] if self.on_gpu else []) + \
            ["CPUExecutionProvider"]
        self.session = _session(self.path, threads, self.providers)
        self.wanted = {i.name for i in self.session.get_inputs()}  # unused inputs are pruned
        self._check(graph, dummy)

    def _check(self, graph: Any, dummy: list[dict[str, Any]]) -> None:
        """The graph must give torch's outputs, at two batch sizes and sequence lengths."""
        import torch

        worst = 0.0
        for part in (dummy, dummy[:1]):
            _, ts = _flat(self.model, self.model.preprocess(part))
            with torch.inference_mode():
                ref = graph(*ts)
            try:
                got = torch.from_numpy(self._run(ts))
            except Exception as e:  # noqa: BLE001  (ONNX Runtime's own error types)
                self.path.unlink(missing_ok=True)
                msg = str(e).strip().splitlines()[0][:200] if str(e).strip() else ""
                raise _unsupported(f"the exported graph does not run ({msg})") from None
            diff = float((got - ref).abs().max())
            worst = max(worst, diff / max(1.0, float(ref.abs().max())) if self.quantize
                        else diff)
        # per-token outputs (B, T, C) cannot be cut into chunks of other lengths and joined
        self.chunked = ref.ndim == 2
        if not worst <= (TOLERANCE_INT8 if self.quantize else TOLERANCE):
            self.path.unlink(missing_ok=True)
            raise _unsupported(f"the {'int8 ' if self.quantize else ''}exported graph's "
                               f"outputs differ from torch's by {worst:.3g}"
                               f"{' of their range' if self.quantize else ''}")
        self.max_logit_diff = worst

    def _run(self, tensors: list[Any]) -> Any:
        feed = {n: t.cpu().numpy() for n, t in zip(self.names, tensors) if n in self.wanted}
        return self.session.run(["logits"], feed)[0]

    def predict(self, inputs: list[dict[str, Any]], batch_size: int = 32,
                **options: Any) -> list[dict[str, Any]]:
        import torch

        model = self.model
        if options:  # decode options change what the head does: the torch graph
            with _PYTHON_SIDE:
                return model.predict(inputs, batch_size=max(batch_size, len(inputs)),
                                     **options)
        with _PYTHON_SIDE:
            batch = model.preprocess(inputs)  # the whole batch tokenized in one call
        flat = _flat(model, batch)
        if flat is None or flat[0] != self.keys:  # a missing modality: the torch graph
            with _PYTHON_SIDE:
                return model.predict(inputs, batch_size=max(batch_size, len(inputs)))
        parts = _length_chunks(self.keys, flat[1]) if self.chunked else None
        if parts is None:
            logits = torch.from_numpy(self._run(flat[1]))
        else:
            logits = None
            for idx, tensors in parts:
                out = torch.from_numpy(self._run(tensors))
                if logits is None:
                    logits = out.new_empty((len(inputs), *out.shape[1:]))
                logits[idx] = out
        model._warn_if_untrained()
        return model.head.decode(logits, batch=batch)


def _export_once(graph: Any, keys: list[tuple[str, str]], tensors: list[Any],
                 path: Path) -> bool:
    """Export to ``path`` unless it is cached there, sealed by this user for this model
    (the folder name is the model's digest); True when exported now. The file appears
    whole or not at all (a second worker sees one or the other); a cached graph whose seal
    fails (edited, or planted by whoever can write the cache) is exported again."""
    import warnings

    from zoo.export import onnx_export
    from zoo.weights import is_sealed, seal

    if path.is_file():
        if is_sealed(path, claim=path.parent.name):
            return False
        warnings.warn(f"{path} is not the graph zoo exported for this model (its seal "
                      f"fails); exporting it again", UserWarning, stacklevel=3)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".model.{os.getpid()}.onnx")
    try:
        with warnings.catch_warnings():  # tracer notes: the check after loading decides
            warnings.simplefilter("ignore")
            onnx_export(graph, keys, tensors, tmp)
    except Exception as e:  # noqa: BLE001  (whatever the exporter trips on)
        tmp.unlink(missing_ok=True)
        msg = str(e).strip().splitlines()[0][:200] if str(e).strip() else ""
        raise _unsupported(f"ONNX export failed ({type(e).__name__}: {msg})") from None
    seal(tmp, claim=path.parent.name)
    os.replace(tmp.with_name(tmp.name + ".zoo-seal"), path.with_name(path.name + ".zoo-seal"))
    os.replace(tmp, path)
    return True


def _quantized_once(path: Path) -> Path:
    """The int8 graph beside the exported one (ONNX Runtime's dynamic quantization after
    :data:`zoo.export.INT8_RECIPE`, as ``zoo export --quantize int8`` makes it), made once
    and sealed as the export is; its path."""
    import warnings

    from zoo.export import INT8_RECIPE, quantize_onnx_int8
    from zoo.weights import is_sealed, seal

    out = path.with_name("model.int8.onnx")
    claim = f"{path.parent.name}:int8:{INT8_RECIPE}"
    if out.is_file():
        if is_sealed(out, claim=claim):
            return out
        warnings.warn(f"{out} is not the graph zoo quantized for this model (its seal "
                      f"fails); quantizing it again", UserWarning, stacklevel=3)
    tmp = out.with_name(f".model.int8.{os.getpid()}.onnx")
    try:
        quantize_onnx_int8(path, tmp)
    except Exception as e:  # noqa: BLE001  (whatever the quantizer trips on)
        tmp.unlink(missing_ok=True)
        msg = str(e).strip().splitlines()[0][:200] if str(e).strip() else ""
        raise _unsupported(f"int8 quantization failed ({type(e).__name__}: {msg})") from None
    seal(tmp, claim=claim)
    os.replace(tmp.with_name(tmp.name + ".zoo-seal"), out.with_name(out.name + ".zoo-seal"))
    os.replace(tmp, out)
    return out


def _session(path: Path, threads: int | None,
             providers: list[str] | None = None) -> Any:
    """An ONNX Runtime session (on the CPU unless ``providers`` say otherwise), sharing the
    cores politely."""
    import onnxruntime as ort
    import torch

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads or torch.get_num_threads()
    opts.inter_op_num_threads = 1
    # the event loop, tokenizer and HTTP share these cores: idle pool threads sleep
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    try:
        return ort.InferenceSession(str(path), opts,
                                    providers=providers or ["CPUExecutionProvider"])
    except Exception as e:  # noqa: BLE001  (a corrupt cache file: export again next start)
        path.unlink(missing_ok=True)
        raise _unsupported(f"ONNX Runtime could not load the graph ({type(e).__name__})") \
            from None


def _length_chunks(keys: list[tuple[str, str]], tensors: list[Any], size: int = CHUNK
                   ) -> list[tuple[Any, list[Any]]] | None:
    """Texts sorted by token count in chunks of ``size``, each cut to its own longest text:
    a batch of short and long sentences no longer pays for padding every short one to the
    longest (the same logits: padding is masked). None when there is nothing to gain (a
    small batch, no text attention mask, or padding on the left)."""
    import torch

    masked = [k for k in keys if k[1] == "attention_mask"]
    if len(masked) != 1:
        return None
    where = {k: i for i, k in enumerate(keys)}
    owner = masked[0][0]  # the modality whose tokens are padded
    mask = tensors[where[masked[0]]]
    if mask.ndim != 2 or mask.shape[0] <= size:
        return None
    lens = mask.sum(1)
    width = mask.shape[1]
    if not bool((mask.bool() == (torch.arange(width) < lens[:, None])).all()):
        return None  # not right-padded
    order = torch.argsort(lens, stable=True)
    parts = []
    for i in range(0, len(order), size):
        idx = order[i:i + size]
        longest = max(1, int(lens[idx].max()))
        parts.append((idx, [t[idx][:, :longest] if m == owner and t.ndim == 2 and
                            t.shape[1] == width else t[idx]
                            for (m, _), t in zip(keys, tensors)]))
    return parts
