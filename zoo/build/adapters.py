"""Parameter-efficient adaptation: LoRA on a model's pretrained encoders, through ``peft``.

``zoo train --adapter lora --lora-r 8`` freezes every weight of the pretrained encoders
and adds low-rank updates (``W + B A * alpha / r``) to their linear layers (attention and
MLP projections); fusion and head train as usual. A saved adapter model holds only what
training changed: the LoRA matrices, fusion and head. ``config.json["adapter"]`` pins the
base: each adapted encoder's registered weights tag and that file's sha256. Loading
rebuilds the base from those weights (checked against the pin), adds the LoRA layers and
loads the saved tensors. Bases are shared: models loaded from adapters of one base in one
process hold the same base tensors (``load_state_dict(assign=True)``), so serving several
adapters costs one base in memory.
"""
from __future__ import annotations

import weakref
from typing import Any, Iterable, Mapping

from zoo.errors import LoadError, ZooError

__all__ = ["add_lora", "adapter_keys", "attach_for_load", "check_keys", "is_adapter_key",
           "lora_targets"]

_KIND = "lora"
#: (encoder name, weights tag, sha256, kwargs) -> the base encoder's tensors, alive while a
#: loaded model holds them
_BASES: "weakref.WeakValueDictionary[Any, _Base]" = weakref.WeakValueDictionary()


class _Base:
    """One base encoder's tensors (weak-referenceable, unlike a dict)."""

    def __init__(self, state: dict[str, Any]) -> None:
        self.state = state


def _peft() -> Any:
    try:
        import peft
    except ImportError:
        raise ZooError("--adapter lora needs peft: pip install peft (or zoo-mm[adapters])"
                       ) from None
    return peft


def lora_targets(module: Any) -> list[str]:
    """The names (last part) of the linear layers inside ``module``: in a transformer, the
    attention projections (query/key/value/output) and the MLP's two layers."""
    import torch

    names = {name.rsplit(".", 1)[-1] for name, sub in module.named_modules()
             if isinstance(sub, torch.nn.Linear) and name}
    return sorted(names)


def _adapted(model: Any) -> list[str]:
    """Modalities whose encoders came with pretrained weights: the ones LoRA adapts."""
    return sorted(m for m, e in model.config["encoders"].items() if e.get("weights"))


def add_lora(model: Any, *, r: int = 8, alpha: float | None = None, dropout: float = 0.0,
             targets: Iterable[str] | None = None) -> dict[str, Any]:
    """Freeze the pretrained encoders of ``model`` and add LoRA layers to them (in place).
    Returns the adapter record, also stored as ``model.config["adapter"]``."""
    from zoo.weights import has_weights, weights_info

    if not isinstance(r, int) or r < 1:
        raise ZooError(f"--lora-r must be a whole number >= 1, not {r!r}")
    mods = _adapted(model)
    if not mods:
        raise ZooError("--adapter lora adapts pretrained encoders, and this model has none "
                       "(its encoders train from scratch): train it without --adapter")
    pins: dict[str, Any] = {}
    for m in mods:
        tag = model.config["encoders"][m]["weights"]
        if not isinstance(tag, str) or not has_weights(tag):
            raise ZooError(f"--adapter lora: the {m} encoder's weights ({tag!r}) are not "
                           f"registered weights, so an adapter could not name its base; train "
                           f"it without --adapter")
        pins[m] = {"weights": tag, "sha256": weights_info(tag).sha256}
    record = {"type": _KIND, "r": r, "alpha": float(alpha if alpha is not None else 2 * r),
              "dropout": float(dropout), "targets": None if targets is None else list(targets),
              "base": pins}
    _inject(model, record, where="--adapter lora")
    model.config["adapter"] = record
    return record


def _inject(model: Any, record: Mapping[str, Any], where: str) -> None:
    peft = _peft()
    for m in record["base"]:
        enc = model.encoders[m]
        targets = record.get("targets") or lora_targets(enc)
        if not targets:
            raise ZooError(f"{where}: the {m} encoder has no linear layers to adapt; LoRA "
                           f"suits transformer encoders (text, speech)")
        enc.requires_grad_(False)
        cfg = peft.LoraConfig(r=int(record["r"]), lora_alpha=float(record["alpha"]),
                              lora_dropout=float(record["dropout"]), target_modules=targets)
        try:
            peft.inject_adapter_in_model(cfg, enc)
        except ValueError as e:
            raise ZooError(f"{where}: LoRA does not fit the {m} encoder: "
                           f"{str(e).splitlines()[0]}") from None
        for name, p in enc.named_parameters():
            p.requires_grad_(is_adapter_key(name))


def is_adapter_key(name: str) -> bool:
    return "lora_" in name


def adapter_keys(model: Any, keys: Iterable[str]) -> list[str]:
    """The state-dict keys an adapter save keeps: everything but the adapted encoders'
    base weights (which the pin names)."""
    base = tuple(f"encoders.{m}." for m in (model.config.get("adapter") or {}).get("base", {}))
    return [k for k in keys if not k.startswith(base) or is_adapter_key(k)]


def check_keys(model: Any, state: Mapping[str, Any]) -> None:
    """A saved adapter holds exactly the keys :func:`adapter_keys` keeps (RuntimeError, as
    ``load_state_dict`` raises, naming the first few otherwise)."""
    wanted = set(adapter_keys(model, model.state_dict()))
    missing, extra = sorted(wanted - set(state)), sorted(set(state) - wanted)
    if missing or extra:
        raise RuntimeError(f"Missing key(s): {missing[:3]}" if missing
                           else f"Unexpected key(s): {extra[:3]}")


def attach_for_load(model: Any, record: Any) -> None:
    """Rebuild a saved adapter model's base: each adapted encoder gets its pinned
    pretrained weights (shared with other models of the same base in this process), then
    the LoRA layers; the caller loads the saved tensors."""
    from zoo.build.components import build_component
    from zoo.build.components import lookup_for_load
    from zoo.weights import has_weights, weights_info

    if not isinstance(record, Mapping) or record.get("type") != _KIND:
        raise LoadError("config.json: 'adapter' must be an object with type 'lora'")
    base = record.get("base")
    try:
        r, alpha, _ = int(record["r"]), float(record["alpha"]), float(record["dropout"])
    except (KeyError, TypeError, ValueError):
        raise LoadError("config.json: adapter needs numbers r, alpha and dropout") from None
    if r < 1 or alpha <= 0 or not isinstance(base, Mapping) or not base:
        raise LoadError("config.json: adapter r/alpha must be positive and base non-empty")
    targets = record.get("targets")
    if targets is not None and not (isinstance(targets, list)
                                    and all(isinstance(t, str) for t in targets)):
        raise LoadError("config.json: adapter targets must be a list of layer names")
    held = []
    for m, pin in base.items():
        if m not in model.encoders or not isinstance(pin, Mapping):
            raise LoadError(f"config.json: adapter base names {str(m)[:40]!r}, which is not "
                            f"an encoder of this model")
        tag, sha = pin.get("weights"), pin.get("sha256")
        if not isinstance(tag, str) or not has_weights(tag):
            raise LoadError(f"this adapter needs the base weights {str(tag)[:60]!r}, which no "
                            f"installed plugin registers (install the plugin it names in "
                            f"config.json)")
        now = weights_info(tag).sha256
        if sha != now:
            raise LoadError(f"this adapter was trained on {tag} with sha256 {str(sha)[:12]}..., "
                            f"but the installed {tag} is {str(now)[:12]}...: install the "
                            f"plugin version it was trained with")
        entry = model.config["encoders"][m]
        key = (entry["name"], tag, sha, repr(sorted((entry.get("kwargs") or {}).items())))
        holder = _BASES.get(key)
        if holder is None:
            spec = lookup_for_load("encoder", entry, f"encoders.{m}")
            kwargs = {k: v for k, v in (entry.get("kwargs") or {}).items()}
            fresh = build_component(spec, check=False, saved=True, pretrained=True,
                                    weights=tag, **kwargs)
            holder = _Base({k: v.detach() for k, v in fresh.state_dict().items()})
            _BASES[key] = holder
        try:
            model.encoders[m].load_state_dict(holder.state, strict=True, assign=True)
        except RuntimeError as e:
            raise LoadError(f"the base weights {tag} do not fit the {m} encoder config.json "
                            f"describes: {str(e).splitlines()[0][:200]}") from None
        held.append(holder)
    model._adapter_bases = held  # keeps the shared tensors' cache entries alive
    _inject(model, record, where="config.json adapter")
