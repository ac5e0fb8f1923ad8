"""The task contract: everything task-specific, apart from the head that computes it.

A task names the target keys an example carries and checks them one example at a time
(the same check serves ``zoo data check``, ``--on-bad-data skip``, ``predict``,
``/predict`` and ``/feedback`` corrections), fits the head to the data before training,
computes metrics, picks the metric that chooses the best checkpoint, and says how it
appears on the Hub (``pipeline_tag``, a card section), in serving (inputs every request
needs), in data files it alone knows (COCO for detection) and in the data tools
(pseudo-labels, target statistics). Tasks register through the ``register_tasks`` hook;
the core's own take the same path, so adding a task touches no core file.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from zoo.errors import DataError

__all__ = ["Task", "Probe"]


@dataclass
class Probe:
    """What a task's :meth:`Task.probe_start` gets: a probe whose encoders are all frozen
    and cached. ``collate(rows)`` turns cached rows into ``(encoded, batch)`` for
    ``model(batch, encoded=encoded)``; targets are the examples' target dicts."""

    model: Any
    train_rows: list
    train_targets: list[Mapping[str, Any]]
    eval_rows: list | None
    eval_targets: list[Mapping[str, Any]] | None
    collate: Callable[[Sequence[Any]], tuple[Any, Any]]
    batch_size: int
    say: Callable[[str], None]


class Task:
    """A task: targets, metrics, the metric that picks the best epoch, head fitting, and
    how the task shows on the Hub, in serving and in the data tools. Subclass it and
    implement ``metrics``; override the rest where the defaults do not fit."""

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
    #: the head's forward output is one tensor, so the model exports to ONNX / TorchScript
    #: and serves with ``--runtime onnx``
    exportable: bool = False
    #: the task of a model built from an encoder alone (``create_model("minilm-l6")``):
    #: no head, ``predict`` gives embeddings under the first of ``outputs``
    encoder_only: bool = False
    #: target keys whose values are file paths relative to the data file (a segmentation
    #: mask): the core resolves them as it resolves file-based inputs
    file_targets: tuple[str, ...] = ()
    #: the text formats ``format_outputs`` writes besides JSON (``zoo predict --format``):
    #: speech recognition's ``txt``, ``srt``, ``vtt``
    output_formats: tuple[str, ...] = ()

    # ---- targets --------------------------------------------------------------------
    def check_target(self, targets: Mapping[str, Any], where: str,
                     labels: Sequence[str] | None = None,
                     inputs: Mapping[str, Any] | None = None) -> None:
        """Raise DataError (its message starting with ``where``) when one example's
        targets are unusable. ``labels``: the labels allowed here (the model's, or
        ``zoo data check --labels``), when known; ``inputs``: the example's inputs, when
        known (a per-word task counts the words of its text)."""
        missing = [k for k in self.targets if k not in targets]
        if missing:
            raise DataError(f"{where}: a {self.name} example needs "
                            f"{' and '.join(repr(k) for k in missing)}")

    def check_targets(self, examples: Sequence[Any]) -> None:
        """Every example's targets (:meth:`check_target` with ``line N``). Contract 1
        tasks overrode this; contract 2 overrides :meth:`check_target` instead."""
        for ex in examples:
            self.check_target(ex.targets, f"line {ex.line}", None, ex.inputs)

    def target_problem(self, targets: Mapping[str, Any], where: str,
                       labels: Sequence[str] | None = None,
                       inputs: Mapping[str, Any] | None = None) -> str | None:
        """The core's entry point: the message of :meth:`check_target`, or None. A
        contract-1 task that overrides only ``check_targets`` is asked through it."""
        try:
            if _overrides(self, "check_targets") and not _overrides(self, "check_target"):
                _deprecated_check_targets(self)
                from types import SimpleNamespace

                self.check_targets([SimpleNamespace(targets=dict(targets), line=where,
                                                    inputs=dict(inputs or {}), raw={})])
            else:
                self.check_target(targets, where, labels, inputs)
        except DataError as e:
            return str(e)
        return None

    def targets_from_correction(self, correction: Any, labels: Sequence[str] | None,
                                where: str = "correction",
                                inputs: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """A ``/feedback`` correction -> this task's targets (what ``zoo data
        from-feedback`` writes): an object of target keys, or a bare value for a task with
        one target key. Checked as training data is; DataError otherwise."""
        if isinstance(correction, Mapping):
            extra = sorted(set(correction) - set(self.targets))
            if extra or not correction:
                raise DataError(f"{where} must hold this {self.name} model's target keys "
                                f"({', '.join(self.targets) or 'none'}), not "
                                f"{', '.join(map(str, extra)) or 'nothing'}")
            targets = dict(correction)
        elif len(self.targets) == 1:
            targets = {self.targets[0]: correction}
        else:
            raise DataError(f"{where} must be an object with "
                            f"{', '.join(map(repr, self.targets))}")
        self.check_target(targets, where, labels, inputs)
        return targets

    def pseudo_label(self, prediction: Mapping[str, Any]) -> tuple[dict[str, Any], float] | None:
        """``zoo data label``: a prediction -> (targets, confidence), or None when this
        task cannot label data from its predictions."""
        return None

    def sample_targets(self, n: int) -> list[dict[str, Any]] | None:
        """Targets for ``n`` synthetic examples (``zoo plugins check`` trains a step with
        them on any inputs), or None when the task's targets depend on the inputs."""
        return None

    def describe_targets(self, targets: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        """Statistics of a data set's targets for ``zoo data check`` (JSON). A ``labels``
        entry ({label: count}) is drawn as the label distribution."""
        return {}

    def read_file(self, path: Path) -> tuple[list[Any], list[str] | None] | None:
        """Examples of a data file in a format only this task knows (COCO JSON for
        detection, CoNLL columns for tagging), with its categories; None when the file is
        not one (every registered task is asked, then the generic readers)."""
        return None

    # ---- training ---------------------------------------------------------------------
    def prepare(self, model: Any, examples: Sequence[Any], categories: Any = None) -> bool:
        """Before training: fit the head to the examples' targets (rebuild it for new
        labels with ``zoo.plugin.replace_head``). True when the head was rebuilt. The
        targets were checked already."""
        return False

    def probe_start(self, probe: Probe) -> dict[str, Any] | None:
        """Before a frozen, cached probe's epochs: set fusion and head to a closed-form
        start (classification: a logistic regression). Returns what to record (it must
        hold ``lr_scale``, the factor the probe's learning rate is multiplied by), or None
        to start at random. A ``scales`` entry (``{modality: {block: weight}}``, weights
        among an encoder's ``scale_choices``) is applied by the core: ``set_scale`` on the
        encoder and the cached rows rescaled, again on resume."""
        return None

    def convert(self, model: Any, task: str, examples: Sequence[Any]) -> Any:
        """``zoo train --task TASK`` on a model of this task: the model to train for
        ``task`` instead (an aligned model seeds a classifier). Refused by default."""
        from zoo.errors import ZooError

        raise ZooError(f"this is a {self.name} model; it cannot be trained for {task!r} "
                       f"(compose a {task} model from its encoders instead)")

    # ---- evaluation ---------------------------------------------------------------------
    def metrics(self, model: Any, examples: Sequence[Any], predictions: Sequence[dict],
                categories: Any = None) -> dict[str, float]:
        """Metrics of ``predictions`` (one per example, in order) against the targets."""
        raise NotImplementedError

    def report(self, model: Any, examples: Sequence[Any], predictions: Sequence[dict],
               out: Path) -> list[str]:
        """After training: pictures of the eval predictions written into ``out`` (their
        file names, shown on the model card). None by default."""
        return []

    # ---- explanations -----------------------------------------------------------------------
    def explain_target(self, model: Any, prediction: Mapping[str, Any],
                       target: Any = None) -> Any:
        """What ``zoo explain`` explains in one input's ``prediction``: ``target`` (the
        user's choice, checked: a one-line ZooError naming the choices) or the predicted
        one. Refused by default: the task has no score to explain."""
        from zoo.errors import ZooError

        raise ZooError(f"a {self.name} model cannot be explained: its task says no score "
                       f"to attribute (Task.explain_target); explain a classification model")

    def explain_score(self, prediction: Mapping[str, Any], target: Any) -> float:
        """The number an explanation attributes: ``target``'s score in a prediction of a
        perturbed input (classification: its probability)."""
        from zoo.errors import ZooError

        raise ZooError(f"a {self.name} model cannot be explained (Task.explain_score)")

    def calibrate(self, model: Any, examples: Sequence[Any], batch_size: int = 32
                  ) -> dict[str, Any]:
        """``zoo calibrate``: fit the model's confidence to held-out ``examples`` (checked
        targets) in place, and return what was fitted (recorded in ``calibration.json``).
        Classification fits a temperature; other tasks have none by default."""
        from zoo.errors import ZooError

        raise ZooError(f"a {self.name} model has no calibration to fit (zoo calibrate fits "
                       f"the confidence of classifiers)")

    # ---- Hub, card, serving ---------------------------------------------------------------
    def pipeline_tag(self, modalities: Sequence[str]) -> str | None:
        """The Hub's pipeline tag for this task on these input modalities; None when no
        tag fits (better none than a wrong one)."""
        return None

    def format_outputs(self, predictions: Sequence[Mapping[str, Any]], fmt: str) -> str:
        """Predictions as text in one of ``output_formats`` (subtitles for ASR), for
        ``zoo predict --format FMT``."""
        from zoo.errors import ZooError

        raise ZooError(f"a {self.name} model writes no {fmt!r} format (formats: json"
                       + "".join(f", {f}" for f in self.output_formats) + ")")

    def card_section(self, config: dict[str, Any]) -> str:
        """Extra markdown for the model card (what the outputs mean). Empty by default."""
        return ""

    def zero_shot(self, model: Any, inputs: Sequence[Mapping[str, Any]], labels: Sequence[str],
                  template: str = "{}", batch_size: int = 32) -> list[dict[str, Any]]:
        """Choose among text ``labels`` for each input without training (aligned models)."""
        from zoo.errors import ZooError

        raise ZooError(f"a {self.name} model cannot classify zero-shot; that needs a model "
                       f"aligned with text (`zoo pretrain --encoders image=...,text=...`)")


def _overrides(task: Task, name: str) -> bool:
    return getattr(type(task), name) is not getattr(Task, name)


_warned: set[type] = set()


def _deprecated_check_targets(task: Task) -> None:
    if type(task) in _warned:
        return
    _warned.add(type(task))
    warnings.warn(f"task {task.name!r} ({type(task).__module__}.{type(task).__name__}) "
                  f"overrides check_targets(examples), plugin contract 1; implement "
                  f"check_target(targets, where, labels=None, inputs=None) for one example "
                  f"instead "
                  f"(contract 2; check_targets overrides stop being called in zoo 0.3)",
                  DeprecationWarning, stacklevel=3)
