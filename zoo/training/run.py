"""What one training run holds between its steps, and its output (log lines, loggers,
progress bars)."""
from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from zoo.training.config import TrainConfig
from zoo.training.dist import Dist

__all__ = ["Run"]


@dataclass
class Run:
    """Everything one training run holds between its steps."""

    model: Any
    cfg: TrainConfig
    dist: Dist
    out: Path
    task: Any  # the zoo.plugin.Task
    train_ex: list
    eval_ex: list | None
    eval_cats: Any
    sources: tuple[Any, Any]  # the train and eval data as given (recorded, not re-read)
    frozen: set[str] = field(default_factory=set)
    net: Any = None  # the model, or its DDP wrapper
    opt: Any = None
    sched: Any = None
    total: int = 1
    per_rank: int = 1
    lengths: list[float] | None = None
    cached: list | None = None
    eval_cached: list | None = None
    state: dict[str, Any] = field(default_factory=dict)
    best_predictions: list | None = None
    # the best epoch's weights, in memory (frozen encoders' left out: they never change):
    # the report and LP-FT's second stage start from it without building the model again
    best_state: dict | None = None
    progress: Any = None
    scaler: Any = None  # fp16 loss scaling (CUDA)
    stepper: Any = None  # zoo.training.engine.Stepper: one optimizer step
    stop: bool = False  # early stopping: no improvement for `patience` epochs
    loggers: list = field(default_factory=list)  # registered loggers (main process only)
    stats_frozen: set[str] = field(default_factory=set)  # LP-FT: BatchNorm stats kept
    # the budget (zoo.training.budget): when the run started, when and at which step the
    # current stage started, whether its measured plan line was said
    t_start: float = field(default_factory=time.perf_counter)
    stage_clock: tuple[float, int] | None = None
    planned: bool = False
    warm: bool = False  # the stage's first (uncounted) step is done

    def snapshot(self) -> None:
        """Keep the model's current weights as the best (frozen encoders' left out)."""
        skip = tuple(f"encoders.{m}." for m in self.frozen)
        self.best_state = {k: v.detach().clone() for k, v in self.model.state_dict().items()
                           if not k.startswith(skip)}

    @property
    def log_path(self) -> Path:
        return self.out / "metrics.jsonl"

    def log(self, record: dict[str, Any]) -> None:
        if self.dist.main:
            with open(self.log_path, "a") as f:
                f.write(json.dumps(record) + "\n")
            for logger in self.loggers:
                logger.log(record)
        self.state["log_lines"] += 1

    def bar(self, desc: str, total: int) -> Any:
        """A progress bar with ETA for one phase (None when quiet or not the main rank)."""
        if not (self.cfg.progress and self.dist.main) or total <= 0:
            return None
        from tqdm.auto import tqdm

        return tqdm(total=total, desc=desc, unit="ex", dynamic_ncols=True, leave=False)

    def say(self, line: str) -> None:
        if self.cfg.progress and self.dist.main:
            from tqdm.auto import tqdm

            tqdm.write(line, file=sys.stderr)
