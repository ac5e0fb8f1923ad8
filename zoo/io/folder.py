"""A model folder: atomic save, and load with every check. What a saved model (a Hub
repo) holds:

    README.md                     model card
    config.json                   format, task, labels, every component + its provider
    model.safetensors             weights (sharded with model.safetensors.index.json if large)
    preprocessor/<modality>/...   what each encoder's preprocessing needs (tokenizer, sizes)

Loading reads only JSON and safetensors: it never runs code from the folder and never
unpickles. Weight files are checked against the sha256 recorded in config.json; nothing
outside the folder is read (symlinks refused).
"""
from __future__ import annotations

import json
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any

from zoo.errors import LoadError, ZooError
from zoo.io.atomic import COMPLETE, STAGING, fsync_tree, recover, roll_forward

__all__ = ["save_pretrained", "load_dir", "read_config", "check_weights", "check_tree",
           "CONFIG_NAME", "WEIGHTS_NAME", "PREPROCESSOR_DIR", "WEIGHT_FILE_RE"]

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
PREPROCESSOR_DIR = "preprocessor"
WEIGHT_FILE_RE = re.compile(r"^model(-\d{5}-of-\d{5})?\.safetensors$")


def save_pretrained(model: Any, directory: str | Path, *, max_shard_size: str | int = "2GB",
                    extra_files: dict[str, str] | None = None, card: bool = True) -> Path:
    """Write config.json, safetensors weights and preprocessor files into ``directory``.

    Files are written to a temporary folder first and then moved in, so a crash never
    leaves a half-written model; stale weight shards from an earlier save are removed.
    """
    if getattr(model, "quantized", None):
        raise ZooError(f"this model is quantized to {model.quantized} for inference and is not "
                       f"saved: save the model before quantizing it (load it without quantize)")
    from huggingface_hub import save_torch_state_dict

    from zoo.version import __version__
    from zoo.weights import sha256_file

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    recover(directory)  # finish (or drop) a save a kill interrupted
    tmp = Path(tempfile.mkdtemp(prefix=STAGING, dir=directory))
    try:
        state = {k: _own_storage(v.detach().cpu()) for k, v in model.state_dict().items()}
        if model.config.get("adapter"):  # only what training changed: the base is pinned
            from zoo.build.adapters import adapter_keys

            state = {k: state[k] for k in adapter_keys(model, state)}
        with _quiet_hub():
            save_torch_state_dict(state, tmp, max_shard_size=max_shard_size,
                                  metadata={"format": "pt"})  # one key: safetensors
            # orders header metadata by hash, so more keys would make equal saves differ
        if not state:  # nothing with weights (a fitted TF-IDF encoder alone): an empty file,
            from safetensors.torch import save_file  # so every model has its checksum

            save_file({}, str(tmp / "model.safetensors"), metadata={"format": "pt"})
        for m, enc in model.encoders.items():
            enc.save_assets(tmp / PREPROCESSOR_DIR / m)
        config = model.component_config()
        config["zoo_version"] = __version__
        config["weights"] = {p.name: sha256_file(p) for p in sorted(tmp.glob("*.safetensors"))}
        config["plugins"] = _plugins_needed(config)
        (tmp / CONFIG_NAME).write_text(json.dumps(config, indent=2) + "\n")
        for name, text in (extra_files or {}).items():
            (tmp / name).write_text(text)
        fsync_tree(tmp)
        (tmp / COMPLETE).write_text("")  # the commit point: from here the new model wins
        fsync_tree(tmp, files=False)
        roll_forward(directory, tmp)
    finally:
        if tmp.exists() and not (tmp / COMPLETE).exists():
            shutil.rmtree(tmp, ignore_errors=True)  # an error before the commit point
    model.config = {**model.component_config(), "zoo_version": config["zoo_version"],
                    "weights": config["weights"], "plugins": config["plugins"]}
    if card:  # rendered once per save, from the record files already in the folder
        from zoo.io.card import write_card

        write_card(directory)
    return directory

class _quiet_hub:
    """No progress bars from huggingface_hub for a local save (restored afterwards)."""

    def __enter__(self) -> None:
        from huggingface_hub.utils import are_progress_bars_disabled, disable_progress_bars

        self.was = are_progress_bars_disabled()
        disable_progress_bars()

    def __exit__(self, *exc: Any) -> None:
        from huggingface_hub.utils import enable_progress_bars

        if not self.was:
            enable_progress_bars()

def _own_storage(t: Any) -> Any:
    """A tensor that views part of a larger storage (torchaudio's window buffers) is copied,
    so safetensors stores just its elements; tensors that share a whole storage stay shared."""
    if t.untyped_storage().nbytes() != t.numel() * t.element_size():
        return t.clone()
    return t

def _plugins_needed(config: dict[str, Any]) -> list[dict[str, str]]:
    """The distributions (with versions) a user must install to load this model."""
    seen: dict[str, str] = {}
    parts = list(config["encoders"].values()) + [config.get("fusion"), config.get("head")]
    for part in parts:
        if part and part.get("distribution"):
            seen.setdefault(part["distribution"], part.get("version", ""))
    return [{"distribution": d, "version": v} for d, v in seen.items()]

def read_config(directory: Path) -> dict[str, Any]:
    path = directory / CONFIG_NAME
    if not path.is_file():
        raise LoadError(f"{directory} is not a zoo model folder (no {CONFIG_NAME}); save one "
                        f"with model.save_pretrained(dir) or `zoo create NAME --out DIR`")
    def no_constant(name: str) -> Any:  # json reads NaN / Infinity unless told not to
        raise ValueError(f"it holds {name}, which no setting may be")

    try:
        config = json.loads(path.read_text(encoding="utf-8"), parse_constant=no_constant)
    except UnicodeDecodeError as e:
        raise LoadError(f"{path} is not UTF-8 (byte {e.start}); re-save the model") from None
    except ValueError as e:
        raise LoadError(f"{path} is not valid JSON ({e}); re-save the model") from None
    except RecursionError:
        raise LoadError(f"{path} is nested too deeply to be a zoo config") from None
    if not isinstance(config, dict):
        raise LoadError(f"{path} must hold a JSON object")
    from zoo.build.components import FORMAT_VERSION

    fmt = config.get("zoo_format")
    if fmt != FORMAT_VERSION:
        raise LoadError(f"config.json has zoo_format {fmt!r}; this zoo reads format "
                        f"{FORMAT_VERSION} (upgrade zoo: pip install -U zoo)")
    return config

def check_weights(directory: Path, config: dict[str, Any]) -> None:
    from zoo.weights import sha256_file

    recorded = config.get("weights")
    if not isinstance(recorded, dict) or not recorded:
        raise LoadError(f"{directory / CONFIG_NAME}: no 'weights' checksums; re-save the model "
                        f"with this zoo")
    for name, digest in recorded.items():
        if not isinstance(name, str) or not WEIGHT_FILE_RE.match(name):
            raise LoadError(f"config.json lists weight file {name!r}; only model*.safetensors "
                            f"files in the model folder are read")
        path = directory / name
        if not path.is_file():
            raise LoadError(f"weight file {name} is missing from {directory}")
        if sha256_file(path) != digest:
            raise LoadError(f"{name} does not match the sha256 in config.json (tampered or "
                            f"corrupt download); download the model again")

def check_tree(directory: Path, root: Path) -> None:
    """Every file a load reads stays inside ``root`` (the model folder; for a Hub download
    the repo's cache folder, whose snapshot files link to its blobs): a symlink or ``..``
    pointing elsewhere is refused, never followed."""
    base = root.resolve()
    paths = [directory / CONFIG_NAME, *directory.glob("model*.safetensors")]
    pre = directory / PREPROCESSOR_DIR
    if pre.is_symlink():
        paths.append(pre)
    elif pre.is_dir():
        paths += [pre, *pre.rglob("*")]
    for path in paths:
        if not (path.exists() or path.is_symlink()):
            continue
        target = path.resolve()
        if target != base and base not in target.parents:
            raise LoadError(f"{path.relative_to(directory)} points outside the model folder "
                            f"(to {target}); zoo reads only files inside it")

def load_dir(directory: str | Path, *, root: str | Path | None = None) -> Any:
    """A saved model from a local folder: architecture from config.json, then weights.
    Nothing outside ``root`` (default: the folder itself) is read."""
    from safetensors.torch import load_file

    from zoo.build.from_config import build_from_config

    directory = Path(directory)
    recover(directory)
    if root is None:  # a Hub cache snapshot links into its repo's blobs: that bounds it
        snap = directory.absolute()
        hub_repo = snap.parent.name == "snapshots" and snap.parents[1].name.startswith(
            ("models--", "datasets--"))
        root = snap.parents[1] if hub_repo else directory
    check_tree(directory, Path(root))
    config = read_config(directory)
    check_weights(directory, config)
    from zoo.build.init import skip_init

    with skip_init():  # every weight is overwritten by the strict load below
        model = build_from_config(config, directory / PREPROCESSOR_DIR)
    adapter = config.get("adapter")
    if adapter is not None:  # LoRA over a pinned base: the base weights, then LoRA layers
        from zoo.build.adapters import attach_for_load

        attach_for_load(model, adapter)
    try:
        # exactly the files whose sha256 config.json records (never an index's other shards)
        state: dict[str, Any] = {}
        for name in sorted(config["weights"]):
            state.update(load_file(str(directory / name)))
        if adapter is not None:
            from zoo.build.adapters import check_keys

            check_keys(model, state)
        model.load_state_dict(state, strict=adapter is None)
    except RuntimeError as e:  # name the first tensor that does not fit, with its shapes
        detail = next((ln.strip() for ln in str(e).splitlines()
                       if "size mismatch" in ln or "Missing key" in ln or "Unexpected key"
                       in ln), str(e).splitlines()[0] if str(e) else "")
        raise LoadError(f"weights in {directory} do not fit the model config.json describes: "
                        f"{detail[:300]}") from None
    except Exception as e:
        raise LoadError(f"weights in {directory} do not fit the model config.json describes: "
                        f"{type(e).__name__}: {str(e).splitlines()[0]}") from None
    model.eval()
    model.source = str(directory)
    return model
