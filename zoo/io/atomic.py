"""Atomic saves of a model folder: the new model is staged beside the old one, committed by
one marker file, then moved in; every load and save first finishes (or drops) what a kill
left. Old or new, never a mix."""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

__all__ = ["STAGING", "TRASH", "COMPLETE", "fsync_tree", "roll_forward", "recover"]

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"

#: a save is staged in ``<folder>/.zoo-save-*`` and committed by writing COMPLETE into it;
#: the files then move in one by one. A kill before COMPLETE leaves the old model; after
#: it, ``recover`` (run by every load and save) moves the rest in: old or new, never a mix.
STAGING = ".zoo-save-"
TRASH = ".zoo-trash-"
COMPLETE = "COMPLETE"


def fsync_tree(root: Path, files: bool = True) -> None:
    for path in sorted(root.rglob("*")) if files else []:
        if path.is_file():
            with open(path, "rb") as f:
                os.fsync(f.fileno())
    for d in [root, *(p for p in root.rglob("*") if p.is_dir())]:
        try:
            fd = os.open(d, os.O_RDONLY)
        except OSError:
            continue
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def roll_forward(directory: Path, staged: Path) -> None:
    """Move a committed staging folder's files into ``directory``, then drop weight files
    the new config does not list; the staging folder goes last (COMPLETE first of all)."""
    config = json.loads((staged / CONFIG_NAME).read_text()) \
        if (staged / CONFIG_NAME).is_file() else None
    for item in sorted(staged.iterdir(), key=lambda p: p.name == CONFIG_NAME):
        if item.name == COMPLETE:
            continue
        target = directory / item.name
        if item.is_dir():
            if target.exists():
                trash = directory / f"{TRASH}{staged.name[len(STAGING):]}-{item.name}"
                os.replace(target, trash)
            os.replace(item, target)
        else:
            os.replace(item, target)
    keep = set((config or {}).get("weights") or ())
    if len(keep) > 1:  # sharded: its index stays beside the shards
        keep.add(WEIGHTS_NAME + ".index.json")
    if config is not None:
        for old in directory.glob("model*.safetensors*"):
            if old.name not in keep:
                old.unlink(missing_ok=True)
    (staged / COMPLETE).unlink(missing_ok=True)
    shutil.rmtree(staged, ignore_errors=True)
    for trash in directory.glob(f"{TRASH}*"):
        shutil.rmtree(trash, ignore_errors=True)


def recover(directory: Path) -> None:
    """Finish what a killed save left: a committed staging folder is moved in, an
    uncommitted one (the old model is intact) is removed, as are leftovers of either."""
    if not directory.is_dir():
        return
    staged = sorted(directory.glob(f"{STAGING}*"), key=lambda p: p.stat().st_mtime_ns)
    for st in staged:
        if not st.is_dir() or st.is_symlink():
            continue
        try:
            if (st / COMPLETE).is_file():
                roll_forward(directory, st)
            else:
                shutil.rmtree(st, ignore_errors=True)
        except OSError:
            pass  # a read-only folder: loading what is there is still checked by sha256
    for trash in directory.glob(f"{TRASH}*"):
        shutil.rmtree(trash, ignore_errors=True)
