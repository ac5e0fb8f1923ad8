"""The composed model: encoders -> fusion -> head, with preprocess / forward / predict / embed.

The data path reads in one direction::

    inputs (list of dicts) --preprocess--> batch --encoders--> EncoderOutput per modality
        --fusion--> (B, D) --head--> logits --decode--> task outputs

Heads that read encoder outputs themselves (detection on feature maps, CTC or tagging on
sequences) are composed without a fusion and receive the encoded batch.

An input dict holds raw values under modality keys; the keys of the model's task targets
and ``"id"`` are ignored, any other key is an error (a typo would otherwise drop an input
silently). An example may lack some of the model's modalities; the fusion's
missing-modality policy covers it.

This module knows no registry, file or network: the model is built by :mod:`zoo.build`
(which hands it its :class:`zoo.plugin.Task`) and persisted by :mod:`zoo.io`; its
``save_pretrained`` / ``push_to_hub`` reach persistence through :func:`persistence`, a
late-bound lookup, so the import graph stays one-way.
"""
from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import torch
from torch import nn

from zoo.base.batch import Batch, ModalityBatch
from zoo.base.config import config_of
from zoo.base.encoder import WORD_IDS, Encoder, EncoderOutput
from zoo.errors import DataError

__all__ = ["ZooModel", "persistence"]


def persistence() -> Any:
    """The persistence layer (:mod:`zoo.io.hub`), looked up when a model is saved or
    pushed: it sits above this module, which therefore never imports it."""
    import importlib

    return importlib.import_module("zoo.io.hub")


class ZooModel(nn.Module):
    """A zoo model. ``config`` is what ``config.json`` holds (names, providers, kwargs);
    ``task_impl`` is the registered :class:`zoo.plugin.Task` it serves."""

    #: the precision predictions run in (``zoo.devices.PRECISIONS``); "auto": bf16 autocast
    #: on a CUDA GPU, fp32 elsewhere. Set with :meth:`place` (or ``zoo.load(precision=)``)
    precision: str = "auto"
    #: "int8" once :meth:`quantize` ran (CPU inference only; such a model is not saved)
    quantized: str | None = None

    def __init__(self, config: dict[str, Any], encoders: Mapping[str, Encoder],
                 fusion: nn.Module | None = None, head: nn.Module | None = None,
                 task: Any = None) -> None:
        super().__init__()
        self.config = config
        self.encoders = nn.ModuleDict(dict(encoders))
        self.fusion = fusion
        self.head = head
        self.task_impl = task

    # ---- facts ----------------------------------------------------------------------
    @property
    def task(self) -> str:
        return self.config["task"]

    @property
    def modalities(self) -> list[str]:
        return list(self.encoders)

    @property
    def labels(self) -> list[str] | None:
        labels = getattr(self.head, "labels", None)
        return list(labels) if labels is not None else None

    def __repr__(self) -> str:  # short: the full module tree is one print(model.encoders) away
        parts = ", ".join(f"{m}={self.config['encoders'][m]['name']}" for m in self.encoders)
        fusion = self.config.get("fusion") or {}
        head = self.config.get("head") or {}
        n = sum(p.numel() for p in self.parameters())
        return (f"ZooModel({self.config.get('name')!r}, task={self.task}, encoders({parts}), "
                f"fusion={fusion.get('name')}, head={head.get('name')}, params={n:,})")

    # ---- the data path --------------------------------------------------------------
    def _check_inputs(self, inputs: Sequence[Any]) -> None:
        ignored = {"id", *getattr(self.task_impl, "targets", ())}
        for i, x in enumerate(inputs):
            if not isinstance(x, Mapping):
                raise DataError(f"input {i}: expected a dict of modality -> value, got "
                                f"{type(x).__name__}")
            unknown = set(x) - set(self.encoders) - ignored
            if unknown:
                raise DataError(f"input {i}: unknown key(s) {sorted(unknown)}; this model takes "
                                f"{', '.join(self.modalities)}")
            if not any(x.get(m) is not None for m in self.encoders):
                raise DataError(f"input {i} has none of this model's modalities "
                                f"({', '.join(self.modalities)})")

    def preprocess(self, inputs: Sequence[Mapping[str, Any]]) -> Batch:
        """Raw inputs -> a batch: per modality, the indices that have it, its tensors and
        (text) the word of every token; the raw inputs ride along for ``decode``."""
        if isinstance(inputs, Mapping):
            inputs = [inputs]
        if not inputs:
            raise DataError("no inputs given: pass a list of dicts such as "
                            f"[{{{self.modalities[0]!r}: ...}}]")
        self._check_inputs(inputs)
        batch = Batch(size=len(inputs), inputs=list(inputs))
        for m, enc in self.encoders.items():
            idx = [i for i, x in enumerate(inputs) if x.get(m) is not None]
            if not idx:
                continue
            try:
                tensors = dict(enc.preprocess([inputs[i][m] for i in idx]))
            except DataError:
                raise
            except Exception as e:  # a corrupt file: say which input, keep it one line
                raise DataError(f"{m} input could not be read: {type(e).__name__}: {e}") from e
            words = tensors.pop(WORD_IDS, None)
            batch.modalities[m] = ModalityBatch(torch.tensor(idx, dtype=torch.long),
                                                _to(tensors, self.device), words)
        return batch

    @property
    def device(self) -> torch.device:
        for p in self.parameters():
            return p.device
        return torch.device("cpu")

    def place(self, device: Any = "auto", precision: str = "auto") -> "ZooModel":
        """Move the model to ``device`` (``zoo.devices.DEVICES``: auto picks CUDA when
        present) and run predictions in ``precision`` there; returns the model. A device
        this machine lacks, or fp16 off CUDA, is one line (:class:`~zoo.errors.ZooError`)."""
        from zoo.devices import inference_precision, resolve_device

        target = resolve_device(device)
        inference_precision(precision, target)  # checked before anything moves
        if self.quantized and target.type != "cpu":
            from zoo.errors import ZooError

            raise ZooError(f"this model is quantized to {self.quantized}, which runs on the "
                           f"CPU only; load it again without quantize to run on {target}")
        self.precision = precision
        return self.to(target)

    def quantize(self, mode: str = "int8") -> "ZooModel":
        """Quantize in place for inference on the CPU and return the model: ``"int8"``,
        dynamic quantization of every linear layer (:mod:`zoo.quantization`; a component
        may do its own). Irreversible: a quantized model predicts, it is not trained or
        saved. Same as ``zoo.load(name, quantize="int8")``."""
        from zoo.quantization import quantize_model

        return quantize_model(self, mode)

    def _autocast(self) -> Any:
        """The autocast context predictions run in (none in fp32)."""
        from zoo.devices import autocast_for, inference_precision

        device = self.device
        return autocast_for(inference_precision(self.precision, device), device)

    def encode(self, batch: Batch) -> dict[str, tuple[EncoderOutput, torch.Tensor]]:
        device = self.device
        out = {}
        for m, enc in self.encoders.items():
            if m in batch:
                part = batch[m]
                inputs = {k: v.to(device) if torch.is_tensor(v) else v
                          for k, v in part.tensors.items()}
                encoded = enc(**inputs)
                if part.word_ids is not None:
                    encoded.word_ids = part.word_ids.to(device)
                out[m] = (encoded, part.index.to(device))
        return out

    def forward(self, batch: Batch, encoded: Mapping[str, Any] | None = None) -> Any:
        """Head outputs: logits (B, C) for classification; what detection / ASR heads
        return for their ``loss`` and ``decode``. ``encoded``: encoder outputs computed
        earlier (the trainer's feature cache), so only fusion and head run."""
        return self.forward_encoded(self.encode(batch) if encoded is None else encoded, batch)

    def forward_encoded(self, encoded: Mapping[str, Any], batch: Batch) -> Any:
        """Fusion and head on encoder outputs (computed now, or cached by the trainer)."""
        if self.fusion is not None:
            return self.head(self.fusion(encoded, batch.size))  # fused: (B, D)
        prompt = getattr(self.head, "prompt_modality", None)  # labels are prompts (Prompted)
        if prompt:
            return self.head(encoded, batch, prompt_encoder=self.encoders[prompt])
        return self.head(encoded, batch)

    def loss(self, outputs: Any, targets: Sequence[Mapping[str, Any]],
             batch: Batch) -> torch.Tensor:
        """The head's loss for ``targets`` (one dict per example, the task's target keys)."""
        return self.head.loss(outputs, self.head.encode_targets(targets, batch))

    @torch.inference_mode()
    def embed(self, inputs: Sequence[Mapping[str, Any]], batch_size: int = 32
              ) -> dict[str, torch.Tensor]:
        """``{modality: Tensor[B, D]}``: each encoder's pooled output, for inputs that have
        that modality (rows follow the inputs that have it, in order)."""
        was_training = self.training
        self.eval()
        try:
            parts: dict[str, list[torch.Tensor]] = {}
            for chunk in _chunks(inputs, batch_size):
                with self._autocast():
                    encoded = self.encode(self.preprocess(chunk))
                for m, (out, _) in encoded.items():
                    parts.setdefault(m, []).append(_float(out.pooled))
            return {m: torch.cat(v) for m, v in parts.items()}
        finally:
            self.train(was_training)

    def zero_shot(self, inputs: Sequence[Mapping[str, Any]], labels: Sequence[str],
                  template: str = "{}", batch_size: int = 32) -> list[dict[str, Any]]:
        """Choose among text ``labels`` for each input without training, where the task
        can (models aligned with text by ``zoo pretrain``)."""
        was = self.training
        self.eval()
        try:
            with torch.inference_mode(), self._autocast():
                return self.task_impl.zero_shot(self, inputs, labels, template, batch_size)
        finally:
            self.train(was)

    @torch.inference_mode()
    def predict(self, inputs: Sequence[Mapping[str, Any]], batch_size: int = 32,
                **decode_kwargs: Any) -> list[dict[str, Any]]:
        """Task outputs, one dict per input (DESIGN.md: classification ``label/score/scores``,
        detection ``boxes/labels/scores``, asr ``text``)."""
        if isinstance(inputs, Mapping):
            inputs = [inputs]
        if self.head is None:  # an encoder-only model predicts its embeddings
            return self._embeddings(inputs, batch_size)
        if hasattr(self.head, "check_decode_kwargs"):
            self.head.check_decode_kwargs(decode_kwargs)
        self._warn_if_untrained()
        # open-vocabulary heads (OpenVocabulary) take new label prompts at predict time
        open_labels = (decode_kwargs.pop("labels", None)
                       if hasattr(self.head, "active_labels") else None)
        was_training = self.training
        self.eval()
        if open_labels is not None:
            self.head.active_labels = [str(x) for x in open_labels]
        try:
            results: list[dict[str, Any]] = []
            for chunk in _chunks(inputs, batch_size):
                batch = self.preprocess(chunk)
                with self._autocast():
                    outputs = self(batch)
                results += self.head.decode(_float(outputs), batch=batch, **decode_kwargs)
            return results
        finally:
            self.train(was_training)
            if open_labels is not None:
                self.head.active_labels = None

    def _embeddings(self, inputs: Sequence[Mapping[str, Any]], batch_size: int
                    ) -> list[dict[str, Any]]:
        emb = self.embed(inputs, batch_size)
        key = self.task_impl.outputs[0]
        counters = {m: 0 for m in emb}
        out = []
        for x in inputs:
            row = {}
            for m in emb:
                if x.get(m) is not None:
                    row[m] = emb[m][counters[m]].tolist()
                    counters[m] += 1
            out.append({key: row})
        return out

    def _warn_if_untrained(self) -> None:
        """Once per model: a head (or fusion) that never saw training predicts noise."""
        if getattr(self, "_warned_untrained", False):
            return
        parts = [p for p in ("fusion", "head") if isinstance(self.config.get(p), Mapping)
                 and "weights" in self.config[p] and not self.config[p]["weights"]]
        if parts:
            import warnings

            self._warned_untrained = True
            name = str(self.config.get("name") or "model")
            if not re.match(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$", name):
                name = "MODEL"  # never echo an untrusted name as a command
            warnings.warn(f"model {name!r}: its {' and '.join(parts)} never trained (random "
                          f"weights), so predictions mean nothing yet; fine-tune it with "
                          f"`zoo train {name} --train data.jsonl --out DIR`", UserWarning,
                          stacklevel=3)

    # ---- saving ---------------------------------------------------------------------
    def component_config(self) -> dict[str, Any]:
        """config.json's content for the model as it is now (labels may have changed)."""
        cfg = copy.deepcopy(self.config)
        for m, enc in self.encoders.items():
            cfg["encoders"][m]["kwargs"] = config_of(enc, f"encoder {m}")
        if self.fusion is not None:
            cfg["fusion"]["kwargs"] = config_of(self.fusion, "fusion")
        if self.head is not None:
            cfg["head"]["kwargs"] = config_of(self.head, "head")
            if self.labels is not None:
                cfg["labels"] = self.labels
        return cfg

    def save_pretrained(self, directory: str | Path, **kwargs: Any) -> Path:
        """Save config.json, weights, preprocessor files and the card into ``directory``
        (atomically; see :func:`zoo.io.hub.save_pretrained`)."""
        return persistence().save_pretrained(self, directory, **kwargs)

    def push_to_hub(self, repo_id: str, **kwargs: Any) -> str:
        """Publish the model to the Hub in one commit (see :func:`zoo.io.hub.push_to_hub`)."""
        return persistence().push_to_hub(self, repo_id, **kwargs)


def _to(tensors: dict[str, Any], device: torch.device) -> dict[str, Any]:
    """An encoder's preprocessed tensors on the model's device (other values as they are):
    batches are formed on the host, then run where the model sits."""
    if device.type == "cpu":
        return tensors
    return {k: v.to(device, non_blocking=True) if torch.is_tensor(v) else v
            for k, v in tensors.items()}


def _float(outputs: Any) -> Any:
    """Head outputs computed under autocast, half-precision tensors back in float32, so
    decoding (softmax, scores, boxes) reads full-precision values."""
    if torch.is_tensor(outputs):
        return outputs.float() if outputs.dtype in (torch.float16, torch.bfloat16) else outputs
    if isinstance(outputs, (list, tuple)) and not hasattr(outputs, "_fields"):
        items = [_float(x) for x in outputs]
        changed = any(a is not b for a, b in zip(items, outputs))
        return type(outputs)(items) if changed else outputs
    if isinstance(outputs, dict):
        new = {k: _float(v) for k, v in outputs.items()}
        return new if any(new[k] is not outputs[k] for k in new) else outputs  # fp32: as is
    return outputs


def _chunks(items: Sequence[Any], n: int) -> Iterable[Sequence[Any]]:
    for i in range(0, len(items), n):
        yield items[i:i + n]
