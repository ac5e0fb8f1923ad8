"""Training loggers: where a run's metrics go besides ``metrics.jsonl``.

A logger is a registered component (hook ``register_loggers``): ``factory(out_dir,
config)`` returns an object with ``log(record)`` and ``close()``. zoo registers
``tensorboard`` here (event files under ``OUT/tensorboard``); ``loggers="auto"`` uses it
when the ``tensorboard`` package is installed. No torch at import: registration is light.
"""
from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

from zoo.errors import ZooError
from zoo.hookspecs import hookimpl

zoo_contract = 2  # the plugin contract this module is written for

__all__ = ["TensorBoardLogger", "open_loggers"]


@hookimpl
def register_loggers(register):
    register("tensorboard", "zoo.training.loggers:TensorBoardLogger",
             description="TensorBoard event files in OUT/tensorboard: train/loss, train/lr "
                         "per logged step; train/epoch_loss and eval/<metric> per epoch.")


def _numbers(d: dict[str, Any], prefix: str) -> dict[str, float]:
    out: dict[str, float] = {}
    for k, v in d.items():
        if isinstance(v, bool):
            continue
        if isinstance(v, (int, float)):
            out[f"{prefix}/{k}"] = float(v)
    return out


class TensorBoardLogger:
    """Scalars by global step (``tensorboard --logdir OUT/tensorboard``). A resumed run
    purges the events logged after its checkpoint, as metrics.jsonl is cut back."""

    def __init__(self, out: Path, config: dict[str, Any]) -> None:
        if importlib.util.find_spec("tensorboard") is None:
            raise ZooError("logger 'tensorboard' needs the tensorboard package: "
                           "pip install tensorboard (or zoo-mm[tensorboard])")
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(log_dir=str(Path(out) / "tensorboard"),
                                    purge_step=config.get("resume_step") or None)
        self.writer.add_text("config", "\n".join(f"    {k}: {v}" for k, v in config.items()))

    def log(self, record: dict[str, Any]) -> None:
        step = int(record.get("step", 0))
        if "loss" in record:
            scalars = _numbers({"loss": record["loss"], "lr": record.get("lr")}, "train")
        else:
            scalars = _numbers({"epoch_loss": record.get("train_loss"),
                                "epoch": record.get("epoch")}, "train")
            scalars.update(_numbers(record.get("eval") or {}, "eval"))
        for tag, value in scalars.items():
            self.writer.add_scalar(tag, value, step)

    def close(self) -> None:
        self.writer.flush()
        self.writer.close()


def open_loggers(names: Any, out: Path, config: dict[str, Any], start_step: int) -> list[Any]:
    """The run's loggers: ``"auto"`` is tensorboard when installed, else none; a list names
    registered loggers (an unknown name, or tensorboard missing, is one line) or holds
    logger objects (anything with ``log(record)`` and ``close()``, e.g. ``zoo tune``'s
    pruner), used as they are."""
    from zoo.registry import get_registry

    if names == "auto":
        names = ["tensorboard"] if importlib.util.find_spec("tensorboard") else []
    elif isinstance(names, str):
        names = [names]
    from zoo.registry.specs import resolve_import

    loggers = []
    for name in names or []:
        if not isinstance(name, str):
            if not (callable(getattr(name, "log", None)) and callable(getattr(name, "close", None))):
                raise ZooError(f"a logger must be a registered name or an object with log() "
                               f"and close(), not {type(name).__name__}")
            loggers.append(name)
            continue
        loggers.append(resolve_import(get_registry().lookup("logger", name).factory)(
            out, {**config, "resume_step": start_step}))
    return loggers
