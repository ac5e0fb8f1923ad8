"""Training options, one dataclass: what ``zoo train`` flags and ``zoo.train(**options)``
set."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from zoo.errors import ZooError

__all__ = ["TrainConfig", "make_config", "as_record", "SCHEDULERS"]

SCHEDULERS = ("cosine", "linear", "constant")


@dataclass
class TrainConfig:
    epochs: int = 10
    lr: float = 1e-3  # new layers (fusion, head) and encoders trained from scratch
    encoder_lr: float | None = None  # fine-tuned pretrained encoders; default lr / 10
    batch_size: int = 32  # global: split across DDP processes
    weight_decay: float = 0.01
    warmup: float = 0.05  # fraction of all steps with a linear warm-up
    # after the warm-up: "cosine" decay to zero, "linear" decay to zero, or "constant"
    scheduler: str = "cosine"
    # "auto": freeze encoders that came with pretrained weights (fast, robust on small
    # data) and, when the task says the probe is weak (classification: best eval accuracy
    # below 0.98), fine-tune them afterwards from the best probe (LP-FT); "none"; "all";
    # or a list of modalities / encoder names to freeze
    freeze: Any = "auto"
    # epochs of LP-FT's fine-tuning stage (freeze="auto" only); None: as many as epochs
    # (at least 1); 0: never fine-tune, keep the probe
    finetune_epochs: int | None = None
    seed: int = 0
    on_bad_data: str = "fail"  # or "skip": drop bad examples, report each with its line
    # train on data the task warns about (one class only, ...): the DataWarning stays a
    # warning instead of stopping the run
    force: bool = False
    checkpoint_every: int = 0  # also save the resume state every N steps (0: per epoch)
    grad_clip: float = 1.0
    cache_features: bool = True  # with every encoder frozen, encode each example once
    # "lbfgs": with every encoder frozen and cached and a single-label classifier (a
    # concat-mlp fusion, or any head whose logits come from one linear layer:
    # Head.probe_layer), the probe starts from a logistic regression fitted in closed
    # form (L-BFGS, L2 strength chosen on the eval split) and its epochs refine it at lr / 3;
    # "random": the usual random start at lr
    probe_init: str = "lbfgs"
    # batch examples of similar length (less padding: a speech epoch ran 1.59x faster);
    # "auto": on when the model has an audio encoder. The order stays random and seeded.
    group_by_length: Any = "auto"
    # "auto": bf16 autocast on a CUDA GPU, fp32 on CPU; "fp32"; "bf16" (CPU or GPU);
    # "fp16" (CUDA only, with loss scaling)
    precision: str = "auto"
    # where the run trains: "auto" (a CUDA GPU when present, under torchrun each process's
    # LOCAL_RANK one; else mps; else the CPU), "cpu", "cuda", "cuda:N" or "mps"
    device: str = "auto"
    # split each batch into this many chunks, gradients summed before the step: the same
    # update as the whole batch in 1/N of the activation memory
    accumulate: int = 1
    # stop when the eval metric has not improved for this many epochs (0: never)
    patience: int = 0
    # a budget: stop after this many optimizer steps (all stages) or seconds of training;
    # the epoch under way is evaluated and the best model so far is what is saved. A stage
    # zoo adds by itself (LP-FT) runs on a CPU only when its measured cost fits 10 minutes
    # or what max_time leaves
    max_steps: int | None = None
    max_time: float | None = None
    # zoo's keys -> the data's column names ({"text": "review", "label": "sentiment"})
    columns: dict | None = None
    # where metrics go besides metrics.jsonl: registered logger names (zoo list --kind
    # logger); "auto": tensorboard when the tensorboard package is installed
    loggers: Any = "auto"
    # "lora": train low-rank adapters on the pretrained encoders (their weights frozen)
    # instead of probing / fine-tuning them; saved small, over a pinned base (peft)
    adapter: str | None = None
    lora_r: int = 8
    lora_alpha: float | None = None  # None: 2 * lora_r
    lora_dropout: float = 0.0  # peft's default; 0.05 cost +1.4 GB peak RSS and ~20% time
    # write OUT/train_state at every epoch end (what --resume needs); zoo tune's trials,
    # which are re-run rather than resumed, skip it (~100 MB of writes per epoch)
    save_state: bool = True
    eval_batch_size: int = 64
    log_every: int = 10
    progress: bool = True
    # the task to train for; None keeps the model's. Only a retrieval (aligned) model may
    # change task: "classification" seeds a classifier from its encoders
    task: str | None = None


def make_config(options: dict[str, Any]) -> TrainConfig:
    """Options -> a checked TrainConfig; an unknown or malformed option is one line."""
    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    bad = set(options) - fields
    if bad:
        raise ZooError(f"train: unknown option(s) {sorted(bad)} (see zoo.training.TrainConfig)")
    cfg = TrainConfig(**options)
    if cfg.on_bad_data not in ("fail", "skip"):
        raise ZooError("--on-bad-data must be 'fail' or 'skip'")
    if cfg.group_by_length not in ("auto", True, False):
        raise ZooError("group_by_length must be 'auto', True or False")
    if cfg.scheduler not in SCHEDULERS:
        raise ZooError(f"--scheduler must be one of {', '.join(SCHEDULERS)}, "
                       f"not {cfg.scheduler!r}")
    if cfg.finetune_epochs is not None and (not isinstance(cfg.finetune_epochs, int)
                                            or cfg.finetune_epochs < 0):
        raise ZooError("--finetune-epochs must be a whole number >= 0")
    if cfg.probe_init not in ("lbfgs", "random"):
        raise ZooError(f"--probe-init must be 'lbfgs' or 'random', not {cfg.probe_init!r}")
    if cfg.adapter not in (None, "lora"):
        raise ZooError(f"--adapter must be 'lora', not {cfg.adapter!r}")
    if cfg.adapter and cfg.freeze != "auto":
        raise ZooError("--adapter lora trains adapters on the pretrained encoders and keeps "
                       "their weights frozen: leave --freeze at auto")
    if cfg.adapter and (not isinstance(cfg.lora_r, int) or cfg.lora_r < 1):
        raise ZooError("--lora-r must be a whole number >= 1")
    if cfg.precision not in ("auto", "fp32", "bf16", "fp16"):
        raise ZooError("--precision must be auto, fp32, bf16 or fp16")
    from zoo.devices import check_device

    cfg.device = check_device(cfg.device)  # its form; whether it exists: Dist.from_env
    if cfg.max_steps is not None and (isinstance(cfg.max_steps, bool) or not isinstance(
            cfg.max_steps, int) or cfg.max_steps < 1):
        raise ZooError("--max-steps must be a whole number >= 1")
    if cfg.max_time is not None and (isinstance(cfg.max_time, bool) or not isinstance(
            cfg.max_time, (int, float)) or not cfg.max_time > 0):
        raise ZooError("--max-time must be a positive number of seconds (or 90s, 15m, 2h)")
    if not isinstance(cfg.accumulate, int) or cfg.accumulate < 1:
        raise ZooError("--accumulate must be a whole number >= 1")
    if cfg.accumulate > cfg.batch_size:
        raise ZooError(f"--accumulate {cfg.accumulate} exceeds --batch-size {cfg.batch_size}: "
                       f"each chunk needs at least one example")
    return cfg


def as_record(cfg: TrainConfig) -> dict[str, Any]:
    """The options as JSON for training.json and loggers: logger objects by class name."""
    loggers = cfg.loggers
    if isinstance(loggers, (list, tuple)):
        loggers = [x if isinstance(x, str) else type(x).__name__ for x in loggers]
    return dataclasses.asdict(dataclasses.replace(cfg, loggers=loggers))
