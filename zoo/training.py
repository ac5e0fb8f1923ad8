"""Fine-tuning: ``zoo.train`` / ``zoo train``, single process or DDP under torchrun.

Transfer learning as it is usually done: pretrained encoders frozen by default (their
features computed once and cached, so later epochs run only fusion and head) or fine-tuned
with a lower learning rate than the new layers; AdamW with linear warm-up and cosine decay;
the best checkpoint by the eval metric saved as a loadable zoo model; exact resume.

Output folder::

    config.json, model.safetensors, preprocessor/   the best model (zoo.load(out))
    eval_results.json                                its eval metrics (for the model card)
    metrics.jsonl                                    one line per logged step / epoch
    training_curves.png, confusion_matrix.png        pictures
    train_state/                                     for --resume (weights, optimizer, RNG)
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import torch

from .encoders import EncoderOutput
from .errors import DataError, ZooError

__all__ = ["TrainConfig", "train", "MAIN_METRIC"]

#: the eval metric that picks the best checkpoint, and whether higher is better
MAIN_METRIC = {"classification": ("accuracy", True), "detection": ("map", True),
               "asr": ("cer", False), "retrieval": ("recall_at_1", True)}


@dataclass
class TrainConfig:
    epochs: int = 10
    lr: float = 1e-3  # new layers (fusion, head) and encoders trained from scratch
    encoder_lr: float | None = None  # fine-tuned pretrained encoders; default lr / 10
    batch_size: int = 32  # global: split across DDP processes
    weight_decay: float = 0.01
    warmup: float = 0.05  # fraction of all steps with a linear warm-up
    # "auto": freeze encoders that came with pretrained weights (fast, robust on small
    # data); "none"; "all"; or a list of modalities / encoder names to freeze
    freeze: Any = "auto"
    seed: int = 0
    on_bad_data: str = "fail"  # or "skip": drop bad examples, report each with its line
    checkpoint_every: int = 0  # also save the resume state every N steps (0: per epoch)
    grad_clip: float = 1.0
    cache_features: bool = True  # with every encoder frozen, encode each example once
    # batch examples of similar length (less padding: a speech epoch ran 1.7x faster);
    # "auto": on when the model has an audio encoder. The order stays random and seeded.
    group_by_length: Any = "auto"
    amp: bool = True  # bfloat16 autocast on GPU (ignored on CPU)
    eval_batch_size: int = 64
    log_every: int = 10
    progress: bool = True


# ---- distributed ------------------------------------------------------------------------

@dataclass
class _Dist:
    rank: int = 0
    world: int = 1
    device: torch.device = torch.device("cpu")

    @property
    def main(self) -> bool:
        return self.rank == 0

    @classmethod
    def from_env(cls) -> "_Dist":
        world = int(os.environ.get("WORLD_SIZE", "1"))
        if torch.cuda.is_available():
            local = int(os.environ.get("LOCAL_RANK", "0"))
            device = torch.device("cuda", local)
            torch.cuda.set_device(device)
        else:
            device = torch.device("cpu")
        if world > 1:
            import torch.distributed as dist

            if not dist.is_initialized():
                dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
            return cls(dist.get_rank(), world, device)
        return cls(0, 1, device)

    def gather(self, obj: Any) -> list[Any]:
        if self.world == 1:
            return [obj]
        import torch.distributed as dist

        out: list[Any] = [None] * self.world
        dist.all_gather_object(out, obj)
        return out

    def broadcast(self, obj: Any) -> Any:
        if self.world == 1:
            return obj
        import torch.distributed as dist

        box = [obj]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def barrier(self) -> None:
        if self.world > 1:
            import torch.distributed as dist

            dist.barrier()


# ---- data -------------------------------------------------------------------------------

def _read(data: Any, what: str, cfg: TrainConfig, dist: _Dist) -> tuple[list, list | None]:
    from .data.check import example_problem
    from .evaluation import load_examples

    errors: list[tuple[int, str]] = []  # (line, message), from parsing and from checks
    examples, cats, _ = load_examples(data, on_bad_data="skip", errors=errors)
    good = []
    for ex in examples:
        problem = example_problem(ex.inputs)
        if problem is None:
            good.append(ex)
        else:
            errors.append((ex.line, f"{data}:{ex.line}: {problem}"))
    errors.sort()
    if errors and cfg.on_bad_data != "skip":
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        raise DataError(f"{errors[0][1]}{more}; fix it, or pass --on-bad-data skip to leave "
                        f"bad examples out")
    if errors and dist.main:
        import warnings

        warnings.warn(f"{what}: skipped {len(errors)} bad example(s): "
                      + "; ".join(m for _, m in errors[:5])
                      + (" ..." if len(errors) > 5 else ""), RuntimeWarning, stacklevel=3)
    if not good:
        raise DataError(f"no usable {what} examples in {data}")
    return good, cats


def _fit_head(model: Any, examples: Sequence[Any], categories: list[str] | None) -> bool:
    """Rebuild the head when the data's labels differ from the model's. True if rebuilt."""
    from .compose import replace_head

    if model.task == "classification":
        labels_seen: set[str] = set()
        multi = False
        for ex in examples:
            if "label" not in ex.targets:
                raise DataError(f"line {ex.line}: a classification example needs a 'label'")
            lab = ex.targets["label"]
            if isinstance(lab, list):
                multi = True
                labels_seen.update(map(str, lab))
            else:
                labels_seen.add(str(lab))
        labels = sorted(labels_seen)
        if labels != model.labels or multi != model.head.multi_label:
            replace_head(model, labels=labels, multi_label=multi)
            return True
    elif model.task == "detection":
        labels = categories or sorted({str(n) for ex in examples for n in ex.targets["labels"]})
        if labels != model.labels:
            replace_head(model, labels=labels)
            return True
    elif model.task == "retrieval":
        from .heads.contrastive import require_pairs

        require_pairs(examples, model.head.modalities)
    elif model.task == "asr":
        for ex in examples:
            if not isinstance(ex.targets.get("transcript"), str):
                raise DataError(f"line {ex.line}: an ASR example needs a 'transcript'")
    return False


def _frozen_modalities(model: Any, freeze: Any) -> set[str]:
    if freeze in (None, "none", False):
        return set()
    if freeze in ("all", True):
        return set(model.encoders)
    if freeze == "auto":
        return {m for m, e in model.config["encoders"].items() if e.get("weights")}
    names = [freeze] if isinstance(freeze, str) else list(freeze)
    out = set()
    for n in names:
        hits = [m for m, e in model.config["encoders"].items() if n in (m, e["name"])]
        if not hits:
            raise ZooError(f"--freeze {n!r} names no encoder of this model (modalities: "
                           f"{', '.join(model.encoders)})")
        out.update(hits)
    return out


def _targets(examples: Sequence[Any]) -> list[dict[str, Any]]:
    return [ex.targets for ex in examples]


def _example_length(ex: Any) -> float:
    """A sort key for length grouping: seconds of audio, else characters of text."""
    audio, text = ex.inputs.get("audio"), ex.inputs.get("text")
    if isinstance(audio, (str, Path)):
        import soundfile as sf

        info = sf.info(str(audio))
        return info.frames / info.samplerate
    if audio is not None and hasattr(audio, "__len__"):
        return float(len(audio))
    return float(len(text)) if isinstance(text, str) else 0.0


def _group_by_length(order: list[int], lengths: Sequence[float], batch: int,
                     g: torch.Generator) -> list[int]:
    """Reorder a random permutation so that each run of ``batch`` indices has similar
    lengths: sort within mega-batches of 50 batches, then shuffle the batches (the
    sampler of HF's ``group_by_length``, with the batch order randomised too)."""
    mega = batch * 50
    chunks = []
    for i in range(0, len(order), mega):
        part = sorted(order[i:i + mega], key=lambda j: lengths[j], reverse=True)
        chunks += [part[k:k + batch] for k in range(0, len(part), batch)]
    full = [c for c in chunks if len(c) == batch]
    rest = [c for c in chunks if len(c) < batch]  # at most one: keep it last
    perm = torch.randperm(len(full), generator=g).tolist()
    return [j for k in perm for j in full[k]] + [j for c in rest for j in c]


# ---- the feature cache ------------------------------------------------------------------

def _encode_all(model: Any, examples: Sequence[Any], batch_size: int) -> list[dict[str, Any]]:
    """Per example: modality -> its encoder output (one row), computed once per distinct
    input (an image paired with several texts is encoded once)."""
    rows: list[dict[str, Any]] = [dict() for _ in examples]
    model.eval()
    with torch.inference_mode():
        for m in model.encoders:
            groups: dict[Any, list[int]] = {}
            for i, ex in enumerate(examples):
                v = ex.inputs.get(m)
                if v is not None:
                    groups.setdefault(v if isinstance(v, str) else ("id", id(v)), []).append(i)
            keys = list(groups)
            for start in range(0, len(keys), batch_size):
                chunk = keys[start:start + batch_size]
                batch = model.preprocess([{m: examples[groups[k][0]].inputs[m]} for k in chunk])
                out, _ = model.encode(batch)[m]
                for j, k in enumerate(chunk):
                    row: dict[str, Any] = {}
                    if out.pooled is not None:
                        row["pooled"] = out.pooled[j].cpu()
                    if out.sequence is not None:
                        n = int(out.mask[j].sum())
                        row["sequence"] = out.sequence[j, :n].cpu()
                    if out.features is not None:
                        row["features"] = [f[j].cpu() for f in out.features]
                        row["strides"] = out.strides
                    meta = {}
                    if m == "image":
                        meta = {"_image_size": batch["image"]["inputs"]["image_sizes"][j],
                                "_input_hw": tuple(batch["image"]["inputs"]["pixel_values"]
                                                   .shape[-2:])}
                    for i in groups[k]:
                        rows[i][m] = row
                        rows[i].update(meta)
    return rows


def _collate_cached(rows: Sequence[dict[str, Any]], modalities: Sequence[str],
                    device: torch.device) -> tuple[dict[str, Any], dict[str, Any]]:
    """Cached rows -> (encoded, batch) as the model's forward_encoded expects them."""
    encoded, batch = {}, {"size": len(rows)}
    for m in modalities:
        idx = [i for i, r in enumerate(rows) if m in r]
        if not idx:
            continue
        items = [rows[i][m] for i in idx]
        out = EncoderOutput()
        if "pooled" in items[0]:
            out.pooled = torch.stack([r["pooled"] for r in items]).to(device)
        if "sequence" in items[0]:
            t = max(r["sequence"].shape[0] for r in items)
            d = items[0]["sequence"].shape[1]
            seq = torch.zeros(len(items), t, d)
            mask = torch.zeros(len(items), t, dtype=torch.bool)
            for k, r in enumerate(items):
                n = r["sequence"].shape[0]
                seq[k, :n], mask[k, :n] = r["sequence"], True
            out.sequence, out.mask = seq.to(device), mask.to(device)
        if "features" in items[0]:
            out.features = [torch.stack([r["features"][lvl] for r in items]).to(device)
                            for lvl in range(len(items[0]["features"]))]
            out.strides = items[0]["strides"]
        index = torch.tensor(idx, dtype=torch.long)
        encoded[m] = (out, index.to(device))
        batch[m] = {"index": index, "inputs": {}}
        if m == "image" and "_image_size" in rows[idx[0]]:
            h, w = rows[idx[0]]["_input_hw"]
            batch[m]["inputs"] = {
                "image_sizes": torch.stack([rows[i]["_image_size"] for i in idx]),
                # only its shape is read (the detector's input size): no memory behind it
                "pixel_values": torch.zeros(1).expand(len(idx), 3, h, w)}
    return encoded, batch


# ---- state for exact resume -------------------------------------------------------------

def _save_state(path: Path, model: Any, opt: Any, sched: Any, state: dict[str, Any]) -> None:
    from safetensors.torch import save_file

    path.mkdir(parents=True, exist_ok=True)
    step = state["global_step"]
    tensors = {f"model/{k}": v.detach().cpu().contiguous().clone()
               for k, v in model.state_dict().items()}
    opt_state = opt.state_dict()
    for pid, st in opt_state["state"].items():
        for k, v in st.items():
            if torch.is_tensor(v):
                tensors[f"optim/{pid}/{k}"] = v.detach().cpu().contiguous()
    tensors["rng/torch"] = torch.get_rng_state()
    if torch.cuda.is_available():
        tensors["rng/cuda"] = torch.cuda.get_rng_state()
    meta = {**state, "scheduler": sched.state_dict(),
            "optim_groups": opt_state["param_groups"],
            "optim_scalars": {str(pid): {k: v for k, v in st.items() if not torch.is_tensor(v)}
                              for pid, st in opt_state["state"].items()}}
    tmp = path / f".state-{step}.safetensors.tmp"
    save_file(tensors, str(tmp))
    os.replace(tmp, path / f"state-{step}.safetensors")
    (path / f".state-{step}.json.tmp").write_text(json.dumps(meta))
    os.replace(path / f".state-{step}.json.tmp", path / f"state-{step}.json")
    (path / ".latest.tmp").write_text(str(step))
    os.replace(path / ".latest.tmp", path / "latest")  # the commit point
    for old in path.glob("state-*"):
        if old.stem.split("-")[1].split(".")[0] != str(step):
            old.unlink(missing_ok=True)


def _load_state(path: Path, model: Any, opt: Any, sched: Any) -> dict[str, Any]:
    from safetensors.torch import load_file

    latest = path / "latest"
    if not latest.is_file():
        raise ZooError(f"--resume: no training state in {path} (start without --resume)")
    step = latest.read_text().strip()
    tensors = load_file(str(path / f"state-{step}.safetensors"))
    meta = json.loads((path / f"state-{step}.json").read_text())
    model.load_state_dict({k[len("model/"):]: v for k, v in tensors.items()
                           if k.startswith("model/")}, strict=True)
    opt_state: dict[str, Any] = {"param_groups": meta["optim_groups"], "state": {}}
    for pid, scalars in meta["optim_scalars"].items():
        opt_state["state"][int(pid)] = dict(scalars)
    for k, v in tensors.items():
        if k.startswith("optim/"):
            _, pid, name = k.split("/", 2)
            opt_state["state"].setdefault(int(pid), {})[name] = v
    opt.load_state_dict(opt_state)
    sched.load_state_dict(meta["scheduler"])
    torch.set_rng_state(tensors["rng/torch"])
    if "rng/cuda" in tensors and torch.cuda.is_available():
        torch.cuda.set_rng_state(tensors["rng/cuda"])
    for k in ("scheduler", "optim_groups", "optim_scalars"):
        meta.pop(k)
    return meta


# ---- pictures ---------------------------------------------------------------------------

def _plot_curves(history: list[dict[str, Any]], metric: str, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = [h for h in history if "loss" in h]
    epochs = [h for h in history if "eval" in h]
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.6))
    if steps:
        a.plot([h["step"] for h in steps], [h["loss"] for h in steps], lw=1, label="train loss")
    if epochs and any("train_loss" in h for h in epochs):
        a.plot([h["step"] for h in epochs], [h["train_loss"] for h in epochs], "o-",
               label="epoch mean")
    a.set_xlabel("step")
    a.set_ylabel("loss")
    a.set_yscale("log")
    if a.lines:
        a.legend()
    a.set_title("training loss")
    if epochs:
        b.plot([h["epoch"] for h in epochs], [h["eval"].get(metric) for h in epochs], "o-",
               color="C2")
    b.set_xlabel("epoch")
    b.set_ylabel(metric)
    b.set_title(f"eval {metric}")
    b.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _plot_confusion(labels: list[str], y_true: list[str], y_pred: list[str], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    index = {lab: i for i, lab in enumerate(labels)}
    cm = np.zeros((len(labels), len(labels)), dtype=int)
    for t, p in zip(y_true, y_pred):
        if t in index and p in index:
            cm[index[t], index[p]] += 1
    size = max(4.0, 0.45 * len(labels) + 2)
    fig, ax = plt.subplots(figsize=(size, size))
    ax.imshow(cm, cmap="Blues")
    ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    for i in range(len(labels)):
        for j in range(len(labels)):
            if cm[i, j]:
                ax.text(j, i, str(cm[i, j]), ha="center", va="center", fontsize=8,
                        color="white" if cm[i, j] > cm.max() / 2 else "black")
    ax.set_title(f"confusion matrix (eval, n={cm.sum()})")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# ---- the loop ---------------------------------------------------------------------------

def _predict_cached(model: Any, rows: Sequence[dict[str, Any]], batch_size: int
                    ) -> list[dict[str, Any]]:
    """Predictions from cached encoder outputs: only fusion, head and decoding run."""
    was = model.training
    model.eval()
    preds: list[dict[str, Any]] = []
    try:
        with torch.inference_mode():
            for start in range(0, len(rows), batch_size):
                encoded, batch = _collate_cached(rows[start:start + batch_size],
                                                 model.modalities, model.device)
                preds += model.head.decode(model(batch, encoded=encoded), batch=batch)
    finally:
        model.train(was)
    return preds


def _evaluate(model: Any, examples: Sequence[Any], categories: Any, cfg: TrainConfig,
              dist: _Dist, cached: Sequence[dict[str, Any]] | None = None
              ) -> tuple[dict[str, float], list[dict[str, Any]]]:
    from .evaluation import metrics_for

    shard = list(range(dist.rank, len(examples), dist.world))
    if cached is not None:
        preds = _predict_cached(model, [cached[i] for i in shard], cfg.eval_batch_size)
    else:
        preds = model.predict([examples[i].inputs for i in shard],
                              batch_size=cfg.eval_batch_size)
    gathered = dist.gather(list(zip(shard, preds)))
    ordered = [p for _, p in sorted((x for part in gathered for x in part), key=lambda t: t[0])]
    metrics = metrics_for(model.task, model, examples, ordered, categories)
    return metrics, ordered


def train(model: Any, train: Any, eval: Any = None, out: str | Path = "out", *,
          resume: bool = False, **options: Any) -> dict[str, Any]:
    """Fine-tune ``model`` (a model, a folder or a registry name) on ``train`` (a JSONL
    manifest, a COCO file or a list of examples); pick the best epoch on ``eval``; write
    the best model and the training record to ``out``. Options: see :class:`TrainConfig`.
    Returns ``{"best": metrics, "best_epoch": n, "out": path, ...}``."""
    from . import load
    from .evaluation import EVAL_RESULTS

    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    bad = set(options) - fields
    if bad:
        raise ZooError(f"train: unknown option(s) {sorted(bad)} (see zoo.TrainConfig)")
    cfg = TrainConfig(**options)
    if cfg.on_bad_data not in ("fail", "skip"):
        raise ZooError("--on-bad-data must be 'fail' or 'skip'")
    if cfg.group_by_length not in ("auto", True, False):
        raise ZooError("group_by_length must be 'auto', True or False")
    dist = _Dist.from_env()
    torch.manual_seed(cfg.seed)
    if isinstance(model, (str, Path)):
        model = load(model)
    out = Path(out)
    if dist.main:
        out.mkdir(parents=True, exist_ok=True)
    train_ex, cats = _read(train, "train", cfg, dist)
    eval_ex, eval_cats = _read(eval, "eval", cfg, dist) if eval is not None else (None, None)
    if model.task == "retrieval" and any("label" in ex.targets for ex in train_ex):
        from .compose import classifier_from

        # a pretrained alignment seeds a classifier: its encoders, a new fusion and head
        mods = [m for m in model.modalities if any(m in ex.inputs for ex in train_ex)]
        model = classifier_from(model, mods)
    _fit_head(model, train_ex, cats)  # same seed, same draws: identical on every process
    frozen = _frozen_modalities(model, cfg.freeze)
    for m in frozen:
        for p in model.encoders[m].parameters():
            p.requires_grad_(False)
    model.to(dist.device)
    use_cache = cfg.cache_features and frozen == set(model.encoders)

    # parameter groups: new layers at lr, fine-tuned pretrained encoders lower
    enc_lr = cfg.encoder_lr if cfg.encoder_lr is not None else cfg.lr / 10
    groups: list[dict[str, Any]] = []
    new_params = [p for n, p in model.named_parameters()
                  if not n.startswith("encoders.") and p.requires_grad]
    groups.append({"params": new_params, "lr": cfg.lr, "name": "new layers"})
    for m, enc in model.encoders.items():
        params = [p for p in enc.parameters() if p.requires_grad]
        if params:
            pretrained = bool(model.config["encoders"][m].get("weights"))
            groups.append({"params": params, "lr": enc_lr if pretrained else cfg.lr,
                           "name": f"encoder {m}"})
    opt = torch.optim.AdamW([g for g in groups if g["params"]], weight_decay=cfg.weight_decay)
    per_rank = max(1, cfg.batch_size // dist.world)
    n_batches = math.ceil(math.ceil(len(train_ex) / dist.world) / per_rank)
    total = max(1, n_batches * cfg.epochs)
    warm = max(1, int(cfg.warmup * total))

    def schedule(step: int) -> float:
        if step < warm:
            return (step + 1) / warm
        return 0.5 * (1 + math.cos(math.pi * min(1.0, (step - warm) / max(1, total - warm))))

    sched = torch.optim.lr_scheduler.LambdaLR(opt, schedule)
    state: dict[str, Any] = {"epoch": 0, "batch": 0, "global_step": 0, "best": None,
                             "best_epoch": None, "log_lines": 0, "epoch_losses": []}
    state_dir = out / "train_state"
    log_path = out / "metrics.jsonl"
    if resume:
        state = _load_state(state_dir, model, opt, sched)
        if dist.main and log_path.exists():  # drop lines logged after the checkpoint
            lines = log_path.read_text().splitlines(keepends=True)[: state["log_lines"]]
            log_path.write_text("".join(lines))
    elif dist.main:
        log_path.write_text("")

    group = (cfg.group_by_length == "auto" and "audio" in model.encoders) or \
        cfg.group_by_length is True
    lengths = [_example_length(ex) for ex in train_ex] if group else None
    cached = _encode_all(model, train_ex, cfg.eval_batch_size) if use_cache else None
    eval_cached = (_encode_all(model, eval_ex, cfg.eval_batch_size)
                   if use_cache and eval_ex is not None else None)
    net = model
    if dist.world > 1:
        from torch.nn.parallel import DistributedDataParallel as DDP

        net = DDP(model, find_unused_parameters=True)
    metric, higher = MAIN_METRIC.get(model.task, ("loss", False))
    autocast = (torch.autocast("cuda", dtype=torch.bfloat16)
                if cfg.amp and dist.device.type == "cuda" else _null())

    def log(record: dict[str, Any]) -> None:
        if dist.main:
            with open(log_path, "a") as f:
                f.write(json.dumps(record) + "\n")
        state["log_lines"] += 1

    progress = None
    if cfg.progress and dist.main:
        from tqdm.auto import tqdm

        progress = tqdm(total=total, initial=state["global_step"], unit="step",
                        dynamic_ncols=True, desc="train")
    t0 = time.perf_counter()
    for epoch in range(state["epoch"], cfg.epochs):
        g = torch.Generator().manual_seed(cfg.seed * 1000 + epoch)
        order = torch.randperm(len(train_ex), generator=g).tolist()
        if lengths is not None:
            order = _group_by_length(order, lengths, per_rank * dist.world, g)
        order += order[: (-len(order)) % dist.world]  # equal shards
        mine = order[dist.rank::dist.world]
        batches = [mine[i:i + per_rank] for i in range(0, len(mine), per_rank)]
        model.train()
        for m in frozen:
            model.encoders[m].eval()  # frozen: no dropout, BatchNorm statistics kept
        for bi in range(state["batch"], len(batches)):
            idx = batches[bi]
            exs = [train_ex[i] for i in idx]
            with autocast:
                if cached is not None:
                    encoded, batch = _collate_cached([cached[i] for i in idx], model.modalities,
                                                     dist.device)
                    outputs = net(batch, encoded=encoded)
                else:
                    batch = model.preprocess([ex.inputs for ex in exs])
                    outputs = net(batch)
                loss = model.loss(outputs, _targets(exs), batch)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.grad_clip:
                torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            opt.step()
            sched.step()
            state["global_step"] += 1
            state["batch"] = bi + 1
            lv = float(loss.detach())
            state["epoch_losses"].append(lv)
            if progress is not None:
                progress.update(1)
                progress.set_postfix(epoch=epoch + 1, loss=f"{lv:.4f}")
            if state["global_step"] % cfg.log_every == 0:
                log({"step": state["global_step"], "epoch": epoch + 1, "loss": lv,
                     "lr": sched.get_last_lr()[0]})
            if (cfg.checkpoint_every and state["global_step"] % cfg.checkpoint_every == 0
                    and bi + 1 < len(batches) and dist.main):
                _save_state(state_dir, model, opt, sched, {**state, "epoch": epoch})
        # ---- end of epoch: evaluate, keep the best, save the resume state
        record: dict[str, Any] = {"epoch": epoch + 1, "step": state["global_step"],
                                  "train_loss": sum(state["epoch_losses"]) /
                                  max(1, len(state["epoch_losses"])),
                                  "seconds": round(time.perf_counter() - t0, 2)}
        if eval_ex is not None:
            metrics, _ = _evaluate(model, eval_ex, eval_cats, cfg, dist, eval_cached)
            record["eval"] = metrics
            value = metrics[metric]
            better = state["best"] is None or (value > state["best"][metric] if higher
                                               else value < state["best"][metric])
        else:
            better, metrics = True, {}
        if better:
            state["best"], state["best_epoch"] = metrics, epoch + 1
            if dist.main:
                model.save_pretrained(out)
                (out / EVAL_RESULTS).write_text(json.dumps({
                    "task": model.task, "dataset": Path(str(eval)).stem if eval else None,
                    "data": str(eval) if isinstance(eval, (str, Path)) else None,
                    "epoch": epoch + 1, "metrics": {**metrics, "n": len(eval_ex or [])}},
                    indent=2) + "\n")
        log(record)
        if progress is not None and eval_ex is not None:
            progress.write(f"epoch {epoch + 1}: train loss {record['train_loss']:.4f}  "
                           f"eval {metric} {metrics[metric]:.4f}"
                           + ("  (best)" if better else ""))
        state.update(epoch=epoch + 1, batch=0, epoch_losses=[])
        if dist.main:
            _save_state(state_dir, model, opt, sched, state)
        dist.barrier()
    if progress is not None:
        progress.close()
    summary = {"best": state["best"], "best_epoch": state["best_epoch"], "out": str(out),
               "epochs": cfg.epochs, "steps": state["global_step"],
               "frozen": sorted(frozen), "feature_cache": use_cache,
               "group_by_length": lengths is not None,
               "config": {k: v for k, v in dataclasses.asdict(cfg).items()}}
    if dist.main:
        history = [json.loads(line) for line in log_path.read_text().splitlines() if line]
        _plot_curves(history, metric, out / "training_curves.png")
        if model.task == "classification" and eval_ex is not None:
            from . import load as _load

            best = _load(out)
            preds = best.predict([ex.inputs for ex in eval_ex], batch_size=cfg.eval_batch_size)
            _plot_confusion(best.labels, [str(ex.targets["label"]) for ex in eval_ex],
                            [str(p["label"]) for p in preds], out / "confusion_matrix.png")
        training_record = {"train_data": str(train) if isinstance(train, (str, Path)) else None,
                           "eval_data": str(eval) if isinstance(eval, (str, Path)) else None,
                           "n_train": len(train_ex), "n_eval": len(eval_ex or []),
                           "world_size": dist.world, **summary}
        (out / "training.json").write_text(json.dumps(training_record, indent=2) + "\n")
        from .cards import write_card

        write_card(out)
    dist.barrier()
    return summary


class _null:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: Any) -> None:
        return None
