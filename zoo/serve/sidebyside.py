"""Batches side by side on one torch model: the inference process's batch threads share
the model through :class:`SideBySide`, whose locks keep what is not safe to share (a fast
tokenizer sets its padding in place; decoding) to one thread at a time, and run the forward
outside them when every component says it may (``concurrent_forward``, contract 2).

Why: on 2 cores the child ran one batch at a time on one torch thread and left most of a
core idle (LitServe's worker kept 1.7 cores busy to our 1.1); with two batch threads, one
torch thread each, it served 1.3x the requests a second (bench_serve_peers.py,
zoo-torch against zoo-torch-b1)."""
from __future__ import annotations

import threading
from typing import Any

__all__ = ["SideBySide", "concurrent_forward"]


def concurrent_forward(model: Any) -> bool:
    """Whether every part of ``model`` (encoders, fusion, head) says its ``forward`` may
    run in two threads at once (``concurrent_forward``, contract 2, default False)."""
    parts = [*model.encoders.values(), model.fusion, model.head]
    return all(getattr(p, "concurrent_forward", False) for p in parts if p is not None)


class SideBySide:
    """``model.predict`` for batch threads running side by side in the inference process:
    what runs in Python (preprocessing: a fast tokenizer sets its padding in place;
    decoding) takes one lock, the forward runs outside it, concurrently when every
    component allows it (:func:`concurrent_forward`), else under a lock of its own (one
    batch preprocesses while another runs). Predict options (decode options, an
    open-vocabulary head's labels) and models that predict otherwise run
    ``model.predict`` whole, holding both locks."""

    def __init__(self, model: Any) -> None:
        import contextlib

        from zoo.model import ZooModel

        self.model = model.eval()
        self.python = threading.Lock()
        self.concurrent = concurrent_forward(model)
        self.forward: Any = (contextlib.nullcontext() if self.concurrent else
                             threading.Lock())
        head = model.head
        self.whole = (head is None or type(model).predict is not ZooModel.predict
                      or hasattr(head, "active_labels"))

    def predict(self, inputs: list[dict[str, Any]], batch_size: int = 32,
                **options: Any) -> list[dict[str, Any]]:
        import torch

        from zoo.model import _float

        model = self.model
        if options or self.whole:
            with self.python, self.forward:
                return model.predict(inputs, batch_size=max(batch_size, len(inputs)),
                                     **options)
        with self.python:
            model._warn_if_untrained()
            batch = model.preprocess(inputs)
        with self.forward, torch.inference_mode(), model._autocast():
            outputs = model(batch)
        with self.python, torch.inference_mode():
            return model.head.decode(_float(outputs), batch=batch)
