"""Save / load / push / pull. What a saved model (a Hub repo) holds:

    README.md                     model card
    config.json                   format, task, labels, every component + its provider
    model.safetensors             weights (sharded with model.safetensors.index.json if large)
    preprocessor/<modality>/...   what each encoder's preprocessing needs (tokenizer, sizes)

Loading reads only JSON and safetensors: it never runs code from the folder and never
unpickles. Weight files are checked against the sha256 recorded in config.json.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any

from zoo.io.atomic import COMPLETE, STAGING, TRASH, fsync_tree, recover, roll_forward  # noqa: F401
from zoo.errors import LoadError, ZooError

__all__ = ["save_pretrained", "load", "load_dir", "push_to_hub", "pull", "CONFIG_NAME",
           "WEIGHTS_NAME"]

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
PREPROCESSOR_DIR = "preprocessor"
_WEIGHT_FILE_RE = re.compile(r"^model(-\d{5}-of-\d{5})?\.safetensors$")


def save_pretrained(model: Any, directory: str | Path, *, max_shard_size: str | int = "2GB",
                    extra_files: dict[str, str] | None = None) -> Path:
    """Write config.json, safetensors weights and preprocessor files into ``directory``.

    Files are written to a temporary folder first and then moved in, so a crash never
    leaves a half-written model; stale weight shards from an earlier save are removed.
    """
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
    from zoo.io.card import write_card

    write_card(directory)  # reads training.json / eval_results.json when they are there
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
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as e:
        raise LoadError(f"{path} is not UTF-8 (byte {e.start}); re-save the model") from None
    except ValueError as e:
        raise LoadError(f"{path} is not valid JSON ({e}); re-save the model") from None
    except RecursionError:
        raise LoadError(f"{path} is nested too deeply to be a zoo config") from None
    if not isinstance(config, dict):
        raise LoadError(f"{path} must hold a JSON object")
    from zoo.build.compose import FORMAT_VERSION

    fmt = config.get("zoo_format")
    if fmt != FORMAT_VERSION:
        raise LoadError(f"config.json has zoo_format {fmt!r}; this zoo reads format "
                        f"{FORMAT_VERSION} (upgrade zoo: pip install -U zoo)")
    return config


def _check_weights(directory: Path, config: dict[str, Any]) -> None:
    from zoo.weights import sha256_file

    recorded = config.get("weights")
    if not isinstance(recorded, dict) or not recorded:
        raise LoadError(f"{directory / CONFIG_NAME}: no 'weights' checksums; re-save the model "
                        f"with this zoo")
    for name, digest in recorded.items():
        if not isinstance(name, str) or not _WEIGHT_FILE_RE.match(name):
            raise LoadError(f"config.json lists weight file {name!r}; only model*.safetensors "
                            f"files in the model folder are read")
        path = directory / name
        if not path.is_file():
            raise LoadError(f"weight file {name} is missing from {directory}")
        if sha256_file(path) != digest:
            raise LoadError(f"{name} does not match the sha256 in config.json (tampered or "
                            f"corrupt download); download the model again")


def _check_tree(directory: Path, root: Path) -> None:
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
    _check_tree(directory, Path(root))
    config = read_config(directory)
    _check_weights(directory, config)
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


def load(name_or_path: str | Path, *, revision: str | None = None) -> Any:
    """A model from a local folder, ``hf-hub:org/name[@revision]`` or a registry name."""
    if isinstance(name_or_path, Path) or os.path.isdir(str(name_or_path)):
        return load_dir(name_or_path)
    s = str(name_or_path)
    if s.startswith("hf-hub:"):
        repo, _, rev = s[len("hf-hub:"):].partition("@")
        path = pull(repo, revision=rev or revision)
        # the snapshot's files link into the repo's blobs: the repo's cache folder bounds it
        model = load_dir(path)
        model.hub_revision = path.name  # the commit loaded (snapshot folders are commits)
        return model
    if s.startswith((".", "/", "~")) or os.sep in s and not s.startswith("hf-hub:"):
        raise LoadError(f"no model folder at {s!r} (a folder with config.json, "
                        f"'hf-hub:org/name' or a registry name from `zoo list`)")
    from zoo.build.compose import create_model

    return create_model(s, pretrained=True)


def _hub_kwargs() -> dict[str, Any]:
    """Endpoint and cache read now, not at import: HF_ENDPOINT / HF_HUB_CACHE are honoured
    even when set after huggingface_hub was imported."""
    kw: dict[str, Any] = {}
    if os.environ.get("HF_ENDPOINT"):
        kw["endpoint"] = os.environ["HF_ENDPOINT"].rstrip("/")
    return kw


def _cache_dir() -> str | None:
    return os.environ.get("HF_HUB_CACHE") or (
        os.path.join(os.environ["HF_HOME"], "hub") if os.environ.get("HF_HOME") else None)


_UNSAFE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt", ".joblib", ".npy",
                    ".py", ".pyc", ".so")


def check_repo_files(repo_id: str, names: list[str]) -> None:
    """Refuse repos that ship pickles or code, or that name paths outside the repo."""
    bad_paths = [n for n in names if n.startswith(("/", "\\")) or ".." in n.replace("\\", "/").split("/")]
    if bad_paths:
        raise LoadError(f"hf-hub:{repo_id} lists unsafe path(s) {bad_paths[:3]}; refusing to "
                        f"download it")
    pickles = [n for n in names if n.lower().endswith(_UNSAFE_SUFFIXES)]
    if pickles:
        raise LoadError(f"hf-hub:{repo_id} holds pickle or code file(s) {pickles[:3]}; zoo "
                        f"loads only safetensors and JSON and refuses such repos (ask the "
                        f"author to publish with zoo push)")


def hub_timeout() -> float:
    """Seconds a Hub request may wait for an answer (ZOO_HUB_TIMEOUT, default 30)."""
    try:
        return max(0.1, float(os.environ.get("ZOO_HUB_TIMEOUT", "30")))
    except ValueError:
        raise ZooError("ZOO_HUB_TIMEOUT must be a number of seconds") from None


class _download_timeout:
    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    def __enter__(self) -> None:
        import huggingface_hub.constants as C

        self.was = C.HF_HUB_DOWNLOAD_TIMEOUT
        C.HF_HUB_DOWNLOAD_TIMEOUT = self.seconds

    def __exit__(self, *exc: Any) -> None:
        import huggingface_hub.constants as C

        C.HF_HUB_DOWNLOAD_TIMEOUT = self.was


def pull(repo_id: str, *, revision: str | None = None, token: str | None = None) -> Path:
    """Download a model repo (safetensors, JSON, card and pictures only) into the HF cache,
    after checking its file list; offline, only the cache is used."""
    from huggingface_hub import HfApi, snapshot_download

    from zoo.weights import offline

    where = f"{repo_id}{'@' + revision if revision else ''}"
    timeout = hub_timeout()
    try:
        if not offline():
            info = HfApi(token=token, **_hub_kwargs()).model_info(repo_id, revision=revision,
                                                                  timeout=timeout)
            check_repo_files(repo_id, [s.rfilename for s in info.siblings or []])
            # download the very commit whose file list was vetted, not the branch again
            revision = info.sha or revision
        with _download_timeout(timeout):
            path = snapshot_download(repo_id=repo_id, revision=revision, token=token,
                                     cache_dir=_cache_dir(), local_files_only=offline(),
                                     etag_timeout=timeout,
                                     allow_patterns=["*.json", "*.safetensors", "*.md",
                                                     "*.png", "preprocessor/**"],
                                     **_hub_kwargs())
    except LoadError:
        raise
    except Exception as e:
        hint = " (offline: HF_HUB_OFFLINE=1 and not in the cache)" if offline() else ""
        first = str(e).splitlines()[0] if str(e) else ""
        raise LoadError(f"cannot download {where}{hint}: {type(e).__name__}: {first}") from None
    return Path(path)


def push_to_hub(model: Any, repo_id: str, *, revision: str | None = None,
                private: bool = False, commit_message: str | None = None,
                token: str | None = None) -> str:
    """Publish exactly what ``zoo push`` publishes for the model's folder: the model saved
    into a temporary folder, with the training record, eval results and pictures of the
    folder it was loaded from; one commit. Returns the commit URL."""
    with tempfile.TemporaryDirectory(prefix="zoo-push-") as tmp:
        save_pretrained(model, tmp)
        source = getattr(model, "source", None)
        if source and Path(source).is_dir():
            for name in RECORD_FILES:
                for path in Path(source).glob(name):
                    if path.is_file() and not path.is_symlink():
                        shutil.copyfile(path, Path(tmp) / path.name)
        return push_folder(tmp, repo_id, revision=revision, private=private,
                           commit_message=commit_message, token=token)


#: what a model folder holds besides the model itself, published with it
RECORD_FILES = ("training.json", "eval_results.json", "*.png")


def push_folder(directory: str | Path, repo_id: str, *, revision: str | None = None,
                private: bool = False, commit_message: str | None = None,
                token: str | None = None) -> str:
    """Publish a saved model folder: create the repo (exist_ok), the branch when a revision
    is given, then one ``upload_folder`` commit. The card is rendered for ``repo_id`` first."""
    from huggingface_hub import HfApi

    from zoo.io.card import write_card

    directory = Path(directory)
    recover(directory)
    config = read_config(directory)  # refuse to publish something that is not a zoo model
    _check_weights(directory, config)
    write_card(directory, repo_id)
    api = HfApi(token=token, **_hub_kwargs())
    try:
        api.create_repo(repo_id, private=private, exist_ok=True)
        if revision:
            api.create_branch(repo_id, branch=revision, exist_ok=True)
        info = api.upload_folder(folder_path=str(directory), repo_id=repo_id,
                                 revision=revision,
                                 commit_message=commit_message or "Upload zoo model",
                                 allow_patterns=["*.json", "*.safetensors", "*.md", "*.png",
                                                 "preprocessor/**"],
                                 ignore_patterns=["train_state/**", "metrics.jsonl",
                                                  f"{STAGING}*/**", f"{STAGING}*",
                                                  f"{TRASH}*/**", f"{TRASH}*"])
    except Exception as e:
        first = str(e).splitlines()[0] if str(e) else ""
        hint = ""
        if "401" in first or "Unauthorized" in first or "credentials" in first.lower():
            hint = " (set HF_TOKEN to a token with write access)"
        elif "xet" in first.lower():
            hint = " (this endpoint has no Xet storage: set HF_HUB_DISABLE_XET=1)"
        raise ZooError(f"push to {repo_id} failed{hint}: {type(e).__name__}: {first}") from None
    return str(getattr(info, "commit_url", info))
