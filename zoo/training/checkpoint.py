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

__all__ = ["save_state", "load_state"]


def save_state(path: Path, model: Any, opt: Any, sched: Any, state: dict[str, Any]) -> None:
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
    if "rng_python" in meta:
        v, internal, gauss = meta["rng_python"]
        random.setstate((v, tuple(internal), gauss))
    if "rng_numpy" in meta and "rng/numpy" in tensors:
        name, pos, has_gauss, cached = meta["rng_numpy"]
        np.random.set_state((name, tensors["rng/numpy"].numpy().astype(np.uint32), pos,
                             has_gauss, cached))
    for k in ("scheduler", "optim_groups", "optim_scalars", "rng_python", "rng_numpy"):
        meta.pop(k, None)
    return meta
