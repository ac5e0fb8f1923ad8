"""The exact resume state: weights, optimizer, scheduler, RNG and loop counters, written
atomically (a kill at any instant leaves the previous state or the new one)."""
from __future__ import annotations

import json
import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from zoo.errors import ZooError

__all__ = ["save_state", "load_state", "read_meta"]


def _damaged(path: Path, what: str) -> ZooError:
    return ZooError(f"--resume: the training state in {path} is damaged ({what}); start again "
                    f"without --resume (the run restarts from epoch 1), or delete {path}")


def _latest(path: Path) -> str:
    """The step number ``latest`` names (digits only: never a path)."""
    latest = path / "latest"
    if not latest.is_file():
        raise ZooError(f"--resume: no training state in {path} (start without --resume)")
    try:
        step = latest.read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError):
        step = "?"
    if not step.isdigit() or len(step) > 15 or not step.isascii():
        raise _damaged(path, f"'latest' holds {step[:40]!r}, not a step number")
    return step


def read_meta(path: Path) -> dict[str, Any]:
    """The saved loop counters and settings of the latest state (a one-line error when the
    state is missing or damaged)."""
    step = _latest(path)
    try:
        meta = json.loads((path / f"state-{step}.json").read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise _damaged(path, f"state-{step}.json is missing") from None
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise _damaged(path, f"state-{step}.json is not valid JSON: "
                             f"{str(e).splitlines()[0][:80]}") from None
    if not isinstance(meta, dict):
        raise _damaged(path, f"state-{step}.json is not an object")
    return meta


def _model_keys(model: Any, state: dict[str, Any]) -> list[str]:
    """What training changes: all of the model, but with a LoRA adapter only the adapter,
    fusion and head (the frozen base is rebuilt from its pinned weights on resume)."""
    config = getattr(model, "config", None)  # a zoo model's dict (pretraining: none)
    if not isinstance(config, dict) or not config.get("adapter"):
        return list(state)
    from zoo.build.adapters import adapter_keys

    return adapter_keys(model, state)


def save_state(path: Path, model: Any, opt: Any, sched: Any, state: dict[str, Any]) -> None:
    from safetensors.torch import save_file

    path.mkdir(parents=True, exist_ok=True)
    step = state["global_step"]
    model_state = model.state_dict()
    tensors = {f"model/{k}": model_state[k].detach().cpu().contiguous().clone()
               for k in _model_keys(model, model_state)}
    opt_state = opt.state_dict()
    for pid, st in opt_state["state"].items():
        for k, v in st.items():
            if torch.is_tensor(v):
                tensors[f"optim/{pid}/{k}"] = v.detach().cpu().contiguous()
    tensors["rng/torch"] = torch.get_rng_state()
    if torch.cuda.is_available():
        tensors["rng/cuda"] = torch.cuda.get_rng_state()
    # augmentation draws from Python's and numpy's generators too (timm's RandAugment)
    np_state = np.random.get_state()
    tensors["rng/numpy"] = torch.from_numpy(np_state[1].astype(np.int64))
    py_state = random.getstate()
    meta = {**state, "scheduler": sched.state_dict(),
            "rng_python": [py_state[0], list(py_state[1]), py_state[2]],
            "rng_numpy": [np_state[0], int(np_state[2]), int(np_state[3]), float(np_state[4])],
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


def load_state(path: Path, model: Any, opt: Any, sched: Any) -> dict[str, Any]:
    from safetensors.torch import load_file

    meta = read_meta(path)
    step = _latest(path)
    try:
        tensors = load_file(str(path / f"state-{step}.safetensors"))
    except FileNotFoundError:
        raise _damaged(path, f"state-{step}.safetensors is missing") from None
    except Exception as e:  # safetensors' own error for a truncated or foreign file
        raise _damaged(path, f"state-{step}.safetensors cannot be read: "
                             f"{str(e).splitlines()[0][:80] if str(e) else type(e).__name__}"
                       ) from None
    try:
        _restore(model, opt, sched, tensors, meta)
    except (KeyError, ValueError, TypeError, RuntimeError, IndexError) as e:
        first = str(e).splitlines()[0][:100] if str(e) else type(e).__name__
        raise _damaged(path, f"it does not fit this model or run: {first}") from None
    for k in ("scheduler", "optim_groups", "optim_scalars", "rng_python", "rng_numpy"):
        meta.pop(k, None)
    return meta


def _restore(model: Any, opt: Any, sched: Any, tensors: dict[str, torch.Tensor],
             meta: dict[str, Any]) -> None:
    saved = {k[len("model/"):]: v for k, v in tensors.items() if k.startswith("model/")}
    wanted = _model_keys(model, model.state_dict())
    missing, extra = sorted(set(wanted) - set(saved)), sorted(set(saved) - set(wanted))
    if missing or extra:
        raise KeyError(f"missing {missing[:2]}" if missing else f"unexpected {extra[:2]}")
    model.load_state_dict(saved, strict=len(wanted) == len(model.state_dict()))
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
    if "rng_python" in meta:
        v, internal, gauss = meta["rng_python"]
        random.setstate((v, tuple(internal), gauss))
    if "rng_numpy" in meta and "rng/numpy" in tensors:
        name, pos, has_gauss, cached = meta["rng_numpy"]
        np.random.set_state((name, tensors["rng/numpy"].numpy().astype(np.uint32), pos,
                             has_gauss, cached))
