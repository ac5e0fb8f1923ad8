"""The task contract: what a task is, apart from the head that computes it.

A task names the targets an example carries, checks them and fits the head to them before
training (new labels), computes the metrics of predictions, picks the metric that chooses
the best checkpoint, and says how the task appears on the Hub (``pipeline_tag``, a card
section) and in serving (inputs every request needs). Tasks register through the
``register_tasks`` hook; the core's own (classification, detection, asr, retrieval,
embedding) take the same path, so adding a task touches no core file.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from ..errors import DataError

__all__ = ["Task"]


class Task:
    """A task: targets, metrics, the metric that picks the best epoch, head fitting, and
    how the task shows on the Hub and in serving. Subclass it and implement ``metrics``."""

    #: registry name (set from the registration)
    name: str = ""
    #: example keys that hold this task's targets (a JSONL line's other keys are ignored)
    targets: tuple[str, ...] = ()
    #: keys of each ``predict`` result
    outputs: tuple[str, ...] = ()
    #: the eval metric that picks the best checkpoint, and its direction
    metric: str = "loss"
    higher_is_better: bool = False
    #: LP-FT: with ``freeze="auto"``, a probe (pretrained encoders frozen) whose best eval
    #: metric is worse than this is followed by fine-tuning them; None: probe only
    finetune_below: float | None = None
    #: modalities every input must have (a detector needs an image); serving checks them
    requires: tuple[str, ...] = ()
    #: metric key -> display name on the model card (others are shown as they are)
    metric_names: dict[str, str] = {}
    #: what computed the metrics, for the card ("scikit-learn", "jiwer", ...)
    metrics_library: str = "zoo"
    #: one line on what the model cannot do, for the card
    limitations: str = ""
    #: a predict() result, as the card shows it
    example_output: str = "[{...}]"

    def pipeline_tag(self, modalities: Sequence[str]) -> str | None:
        """The Hub's pipeline tag for this task on these input modalities; None when no
        tag fits (better none than a wrong one)."""
        return None

    def check_targets(self, examples: Sequence[Any]) -> None:
        """Raise DataError naming the line of the first example without usable targets."""
        for ex in examples:
            missing = [k for k in self.targets if k not in ex.targets]
            if missing:
                raise DataError(f"line {ex.line}: a {self.name} example needs "
                                f"{' and '.join(repr(k) for k in missing)}")

    def prepare(self, model: Any, examples: Sequence[Any], categories: Any = None) -> bool:
        """Before training: check the targets and fit the head to them (rebuild it for new
        labels with ``zoo.plugin.replace_head``). True when the head was rebuilt."""
        self.check_targets(examples)
        return False

    def metrics(self, model: Any, examples: Sequence[Any], predictions: Sequence[dict],
                categories: Any = None) -> dict[str, float]:
        """Metrics of ``predictions`` (one per example, in order) against the targets."""
        raise NotImplementedError

    def report(self, model: Any, examples: Sequence[Any], predictions: Sequence[dict],
               out: Path) -> list[str]:
        """After training: pictures of the eval predictions written into ``out`` (their
        file names, shown on the model card). None by default."""
        return []

    def card_section(self, config: dict[str, Any]) -> str:
        """Extra markdown for the model card (what the outputs mean). Empty by default."""
        return ""
