"""The Hugging Face Hub: ``pull`` (a vetted commit of a repo, safetensors and JSON only)
and ``push`` (exactly a model folder's files, one commit, the card rendered for the repo);
``load`` from a folder, ``hf-hub:org/name[@revision]`` or a registry name. Endpoint, token,
cache and timeouts are passed with each call (``HF_ENDPOINT``, ``HF_TOKEN``,
``HF_HUB_CACHE``, ``ZOO_HUB_TIMEOUT`` read when called); nothing of huggingface_hub is
patched."""
from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from zoo.errors import LoadError, ZooError
from zoo.io.folder import (CONFIG_NAME, PREPROCESSOR_DIR, WEIGHTS_NAME, check_weights,
                           load_dir, read_config, save_pretrained)
from zoo.io.atomic import recover
from zoo.io.records import RECORD_FILES

__all__ = ["load", "pull", "model_file", "vet_files", "PREPROCESSOR_SUFFIXES", "push_to_hub", "push_folder", "folder_files", "check_repo_files",
           "hub_timeout", "save_pretrained", "load_dir", "read_config"]

_UNSAFE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt", ".joblib", ".npy",
                    ".py", ".pyc", ".so")
#: what an encoder's preprocessing may keep in ``preprocessor/``: tokenizer and feature
#: extractor files (JSON, vocabularies, sentencepiece models), tensors as safetensors
PREPROCESSOR_SUFFIXES = (".json", ".txt", ".model", ".vocab", ".merges", ".tiktoken",
                         ".safetensors", ".csv", ".tsv")
#: the most bytes one preprocessor file may have (ZOO_HUB_MAX_FILE_MB); the largest
#: multilingual tokenizer.json files are ~20 MB
MAX_PREPROCESSOR_MB = 64
#: the most bytes a pull downloads in all (ZOO_HUB_MAX_GB)
MAX_PULL_GB = 64.0


def model_file(name: str) -> bool:
    """Whether ``name`` (a path in a repo or folder) is one of a zoo model's files: config,
    weights (one file or ``model-00001-of-00003.safetensors`` shards and their index), the
    card, the records and pictures, and preprocessor files of an allowed type."""
    import fnmatch

    if "/" not in name:
        return (name in (CONFIG_NAME, "README.md", WEIGHTS_NAME, WEIGHTS_NAME + ".index.json")
                or fnmatch.fnmatch(name, "model-*-of-*.safetensors")
                or any(fnmatch.fnmatch(name, p) for p in RECORD_FILES))
    return (name.startswith(PREPROCESSOR_DIR + "/")
            and name.lower().endswith(PREPROCESSOR_SUFFIXES))


def _limit(env: str, default: float) -> float:
    try:
        value = float(os.environ.get(env, default))
    except ValueError:
        raise ZooError(f"{env} must be a number") from None
    if not value > 0:
        raise ZooError(f"{env} must be above 0")
    return value


def vet_files(repo_id: str, siblings: list[tuple[str, int | None]]) -> list[str]:
    """The files of a repo a pull downloads, given ``(name, size)`` of each: zoo's model
    files only (:func:`model_file`; others such as ``.gitattributes`` are left on the
    Hub); a preprocessor file of another type, one over ZOO_HUB_MAX_FILE_MB or a total
    over ZOO_HUB_MAX_GB refuse the repo in one line."""
    check_repo_files(repo_id, [n for n, _ in siblings])
    strays = [n for n, _ in siblings if n.startswith(PREPROCESSOR_DIR + "/")
              and not model_file(n)]
    if strays:
        raise LoadError(f"hf-hub:{repo_id} holds preprocessor file(s) of a type zoo does not "
                        f"load: {strays[:3]} (allowed: {', '.join(PREPROCESSOR_SUFFIXES)}); "
                        f"refusing to download it")
    keep = [(n, size) for n, size in siblings if model_file(n)]
    per_file = _limit("ZOO_HUB_MAX_FILE_MB", MAX_PREPROCESSOR_MB) * 2 ** 20
    big = [f"{n} ({size / 2 ** 20:.0f} MB)" for n, size in keep
           if n.startswith(PREPROCESSOR_DIR + "/") and (size or 0) > per_file]
    if big:
        raise LoadError(f"hf-hub:{repo_id}: preprocessor file(s) over "
                        f"{per_file / 2 ** 20:.0f} MB: {big[:3]}; refusing to download them "
                        f"(raise ZOO_HUB_MAX_FILE_MB if you trust the repo)")
    total, cap = sum(size or 0 for _, size in keep), _limit("ZOO_HUB_MAX_GB", MAX_PULL_GB)
    if total > cap * 2 ** 30:
        raise LoadError(f"hf-hub:{repo_id} is {total / 2 ** 30:.1f} GB, over the "
                        f"{cap:g} GB a pull takes (raise ZOO_HUB_MAX_GB if you mean it)")
    return [n for n, _ in keep]


def load(name_or_path: str | Path, *, revision: str | None = None, device: Any = None,
         precision: str = "auto", quantize: str | None = None) -> Any:
    """A model from a local folder, ``hf-hub:org/name[@revision]`` or a registry name.
    ``device`` (``"auto"``, ``"cpu"``, ``"cuda[:N]"``, ``"mps"``): moved there, predicting in
    ``precision`` (``ZooModel.place``); checked before loading. None: on the CPU.
    ``quantize="int8"``: quantized for CPU inference after loading (``ZooModel.quantize``,
    :mod:`zoo.quantization`); it runs on the CPU, so ``device`` auto means the CPU then."""
    from zoo.quantization import check_quantize

    if check_quantize(quantize, device, precision) is not None:
        return _load(name_or_path, revision).place("cpu", "fp32").quantize(quantize)
    if device is None:
        return _load(name_or_path, revision)
    from zoo.devices import inference_precision, resolve_device

    target = resolve_device(device)
    inference_precision(precision, target)
    return _load(name_or_path, revision).place(target, precision)


def _load(name_or_path: str | Path, revision: str | None) -> Any:
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

def pull(repo_id: str, *, revision: str | None = None, token: str | None = None) -> Path:
    """Download a model repo (safetensors, JSON, card and pictures only) into the HF cache,
    after checking its file list; offline, only the cache is used."""
    from huggingface_hub import HfApi, snapshot_download

    from zoo.weights import offline

    where = f"{repo_id}{'@' + revision if revision else ''}"
    timeout = hub_timeout()
    names: list[str] | None = None
    try:
        if not offline():
            info = HfApi(token=token, **_hub_kwargs()).model_info(
                repo_id, revision=revision, timeout=timeout, files_metadata=True)
            names = vet_files(repo_id, [(s.rfilename, s.size) for s in info.siblings or []])
            # download the very commit whose file list was vetted, not the branch again
            revision = info.sha or revision
        # etag_timeout bounds every request's wait for an answer; a slow transfer itself is
        # huggingface_hub's own HF_HUB_DOWNLOAD_TIMEOUT (never patched here). Exactly the
        # vetted names (glob characters in them escaped); offline, the cached snapshot.
        path = snapshot_download(repo_id=repo_id, revision=revision, token=token,
                                 cache_dir=_cache_dir(), local_files_only=offline(),
                                 etag_timeout=timeout,
                                 allow_patterns=None if names is None else
                                 [_literal(n) for n in names] or ["config.json"],
                                 **_hub_kwargs())
        if names is not None:
            _remember_ref(Path(path), where.partition("@")[2] or "main")
    except LoadError:
        raise
    except Exception as e:
        hint = " (offline: HF_HUB_OFFLINE=1 and not in the cache)" if offline() else ""
        first = str(e).splitlines()[0] if str(e) else ""
        raise LoadError(f"cannot download {where}{hint}: {type(e).__name__}: {first}") from None
    return Path(path)

def _remember_ref(snapshot: Path, revision: str) -> None:
    """Point the cache's ``refs/REVISION`` at the commit just downloaded, as
    huggingface_hub does when it downloads a branch: offline, ``hf-hub:org/name`` (and
    ``@branch``) then finds it. A commit id needs no ref."""
    import re

    if re.fullmatch(r"[0-9a-f]{40}", revision) or revision == snapshot.name or \
            not re.fullmatch(r"[A-Za-z0-9._-]+(/[A-Za-z0-9._-]+)*", revision) or \
            ".." in revision.split("/"):
        return
    ref = snapshot.parent.parent / "refs" / revision
    try:
        ref.parent.mkdir(parents=True, exist_ok=True)
        tmp = ref.with_name(f".{ref.name}.{os.getpid()}")
        tmp.write_text(snapshot.name)
        os.replace(tmp, ref)
    except OSError:  # a read-only cache: offline use by name is then not possible
        pass


def _literal(name: str) -> str:
    """An fnmatch pattern matching exactly ``name``."""
    return "".join(f"[{c}]" if c in "*?[]" else c for c in name)


def push_to_hub(model: Any, repo_id: str, *, revision: str | None = None,
                private: bool = False, commit_message: str | None = None,
                token: str | None = None) -> str:
    """Publish exactly what ``zoo push`` publishes for the model's folder: the model saved
    into a temporary folder, with the training record, eval results and pictures of the
    folder it was loaded from; one commit. Returns the commit URL."""
    with tempfile.TemporaryDirectory(prefix="zoo-push-") as tmp:
        save_pretrained(model, tmp, card=False)  # the card is rendered once, for repo_id
        source = getattr(model, "source", None)
        if source and Path(source).is_dir():
            for name in RECORD_FILES:
                for path in Path(source).glob(name):
                    if path.is_file() and not path.is_symlink():
                        shutil.copyfile(path, Path(tmp) / path.name)
        return push_folder(tmp, repo_id, revision=revision, private=private,
                           commit_message=commit_message, token=token)


def folder_files(directory: Path, config: dict[str, Any]) -> list[str]:
    """What a push publishes of a model folder, by name: config.json, exactly the weight
    files config.json lists (and the shard index when sharded), the preprocessor files and
    the record files; never another shard, a resume state or a staging leftover."""
    names = [CONFIG_NAME, *sorted(config["weights"])]
    if len(config["weights"]) > 1 and (directory / (WEIGHTS_NAME + ".index.json")).is_file():
        names.append(WEIGHTS_NAME + ".index.json")
    pre = directory / PREPROCESSOR_DIR
    if pre.is_dir():
        files = sorted(p.relative_to(directory).as_posix() for p in pre.rglob("*")
                       if p.is_file() and not p.is_symlink())
        strays = [n for n in files if not model_file(n)]
        if strays:
            raise ZooError(f"{directory}: {strays[:3]} in {PREPROCESSOR_DIR}/ is not a file "
                           f"type zoo publishes ({', '.join(PREPROCESSOR_SUFFIXES)}); a pull "
                           f"would refuse the repo: move it out of the folder and push again")
        names += files
    for pattern in RECORD_FILES:
        names += sorted(p.name for p in directory.glob(pattern)
                        if p.is_file() and not p.is_symlink())
    return names


def push_folder(directory: str | Path, repo_id: str, *, revision: str | None = None,
                private: bool = False, commit_message: str | None = None,
                token: str | None = None) -> str:
    """Publish a saved model folder in one commit: create the repo (exist_ok) and the
    branch when a revision is given, then upload :func:`folder_files` with the card
    rendered for ``repo_id`` (in the upload only: the folder's own README.md is left as it
    is)."""
    from huggingface_hub import CommitOperationAdd, HfApi

    from zoo.io.card import render_card

    directory = Path(directory)
    recover(directory)
    config = read_config(directory)  # refuse to publish something that is not a zoo model
    check_weights(directory, config)
    ops = [CommitOperationAdd(path_in_repo=name, path_or_fileobj=str(directory / name))
           for name in folder_files(directory, config)]
    ops.append(CommitOperationAdd(path_in_repo="README.md",
                                  path_or_fileobj=render_card(directory, repo_id).encode()))
    api = HfApi(token=token, **_hub_kwargs())
    try:
        api.create_repo(repo_id, private=private, exist_ok=True)
        if revision:
            api.create_branch(repo_id, branch=revision, exist_ok=True)
        info = api.create_commit(repo_id, operations=ops, revision=revision,
                                 commit_message=commit_message or "Upload zoo model")
    except Exception as e:
        first = str(e).splitlines()[0] if str(e) else ""
        hint = ""
        if "401" in first or "Unauthorized" in first or "credentials" in first.lower():
            hint = " (set HF_TOKEN to a token with write access)"
        elif "xet" in first.lower():
            hint = " (this endpoint has no Xet storage: set HF_HUB_DISABLE_XET=1)"
        raise ZooError(f"push to {repo_id} failed{hint}: {type(e).__name__}: {first}") from None
    return str(getattr(info, "commit_url", info))
