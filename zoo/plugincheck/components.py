"""Conformance checks of encoders, fusions and heads: each exercised the way zoo uses it,
on sample inputs of its modality (``Modality.samples``)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from zoo.errors import RegistryError, WeightsError, ZooError
from zoo.plugincheck.base import CheckResult, Skip, run_check
from zoo.registry import get_registry, get_task, modalities

__all__ = ["check_encoder", "check_fusion", "check_head", "samples"]


def samples(modality: str) -> list[Any]:
    """Two inputs of different sizes of a registered modality."""
    return list(modalities()[modality].samples())


def _check_output(enc: Any, out: Any, n: int) -> str:
    """The forward output honours the contracts the encoder declares."""
    import torch

    from zoo.base.encoder import EncoderOutput

    if not isinstance(out, EncoderOutput):
        raise AssertionError(f"forward returned {type(out).__name__}, not an EncoderOutput")
    outputs = tuple(enc.outputs)
    if "pooled" in outputs and (out.pooled is None or tuple(out.pooled.shape) != (n, enc.dim)):
        raise AssertionError(f"declares 'pooled' (B, dim)=({n}, {enc.dim}) but gave "
                             f"{None if out.pooled is None else tuple(out.pooled.shape)}")
    if "sequence" in outputs:
        if out.sequence is None or out.mask is None:
            raise AssertionError("declares 'sequence' but gave no sequence and mask")
        if out.sequence.shape[0] != n or out.sequence.shape[-1] != enc.dim:
            raise AssertionError(f"sequence shape {tuple(out.sequence.shape)} is not "
                                 f"(B, T, {enc.dim})")
        if out.mask.dtype != torch.bool or out.mask.shape != out.sequence.shape[:2]:
            raise AssertionError("mask must be bool (B, T)")
    if "features" in outputs:
        if not out.features or not out.strides or len(out.features) != len(out.strides):
            raise AssertionError("declares 'features' but gave no maps with one stride each")
    for name in ("pooled", "sequence"):
        t = getattr(out, name)
        if t is not None and not torch.isfinite(t).all():
            raise AssertionError(f"{name} has NaN or inf")
    return "outputs: " + "/".join(outputs)


def _word_ids(batch: Any, modality: str, out: Any) -> str:
    """Word ids, where the preprocessing gives them, fit the sequence output."""
    words = batch[modality].word_ids
    if words is None:
        return ""
    if out.sequence is None or tuple(words.shape) != tuple(out.sequence.shape[:2]):
        raise AssertionError(f"word_ids {tuple(words.shape)} do not fit the sequence output "
                             f"(B, T)")
    return ", word ids"


def _probe_setup(spec: Any) -> tuple[str, str, str] | None:
    """(task, head, fusion) to train a step on this encoder's frozen features: the first
    registered task that makes sample targets, a head of it after a fusion, and a fusion
    that takes what the encoder gives."""
    reg = get_registry()
    fusion = next((f.qualified_name for f in reg.all("fusion")
                   if set(f.accepts) & set(spec.outputs)), None)
    for t in reg.all("task"):
        if get_task(t.qualified_name).sample_targets(4) is None:
            continue
        head = next((h.qualified_name for h in reg.all("head")
                     if t.name in h.tasks and "fused" in h.accepts), None)
        if head and fusion:
            return t.qualified_name, head, fusion
    return None


def check_encoder(spec: Any, results: list[CheckResult], tmp: Path) -> None:
    from zoo.build.compose import create_model

    subject, qn = f"encoder {spec.name}", spec.qualified_name

    def build() -> Any:
        try:
            model = create_model(qn)
        except RegistryError:
            raise  # built, but not what was registered: a plugin bug
        except ZooError as e:
            raise Skip(f"needs arguments to build: {e}") from None
        # fitted to the samples as a new training run fits it (Encoder.fit), so what it
        # fits is checked by the round trip below
        model.encoders[spec.modality].fit(samples(spec.modality))
        return model

    model = run_check(results, subject, "builds (random init)", build)
    if model is None:
        return
    if spec.weights:
        run_check(results, subject, "builds (pretrained)", lambda: _pretrained(spec))
    inputs = [{spec.modality: v} for v in samples(spec.modality)]
    if run_check(results, subject, "preprocess + forward",
                 lambda: _forward(model, spec, inputs)) is None:
        return
    run_check(results, subject, "config + save/load bit-identical",
              lambda: _round_trip(model, spec, inputs, tmp))
    run_check(results, subject, "feature cache + training step",
              lambda: _cache_and_step(spec, inputs, tmp))


def _pretrained(spec: Any) -> str:
    import torch

    from zoo.build.compose import create_model

    try:
        a = create_model(spec.qualified_name, pretrained=True).state_dict()
    except WeightsError as e:
        raise Skip(f"weights not available offline: {str(e)[:150]}") from None
    b = create_model(spec.qualified_name, pretrained=True).state_dict()
    if any(not torch.equal(a[k], b[k]) for k in a):  # random init both times
        raise AssertionError(f"two pretrained builds differ: the factory does not load "
                             f"weights={spec.weights!r} (use load_weights)")
    return f"weights {spec.weights}"


def _forward(model: Any, spec: Any, inputs: list[dict[str, Any]]) -> str:
    import torch

    enc = model.encoders[spec.modality]
    batch = model.preprocess(inputs)
    with torch.no_grad():
        out = enc(**batch[spec.modality].tensors)
    return _check_output(enc, out, len(inputs)) + _word_ids(batch, spec.modality, out)


def _round_trip(model: Any, spec: Any, inputs: list[dict[str, Any]], tmp: Path) -> str:
    import torch

    from zoo.io.hub import load

    cfg = json.loads(json.dumps(model.config))
    back = load(model.save_pretrained(tmp / spec.name))
    a, b = model.state_dict(), back.state_dict()
    if set(a) != set(b) or any(not torch.equal(a[k], b[k]) for k in a):
        raise AssertionError("weights differ after save + load")
    e1, e2 = model.embed(inputs), back.embed(inputs)
    if not torch.equal(e1[spec.modality], e2[spec.modality]):
        raise AssertionError("embeddings differ after save + load")
    return f"config: {len(cfg['encoders'][spec.modality]['kwargs'])} kwargs"


def _cache_and_step(spec: Any, inputs: list[dict[str, Any]], tmp: Path) -> str:
    from zoo.build.compose import compose
    from zoo.training import train

    setup = _probe_setup(spec)
    if setup is None:
        raise Skip("no registered task and head to train a step with")
    task, head, fusion = setup
    targets = get_task(task).sample_targets(4)
    kwargs = _head_kwargs(get_registry().lookup("head", head))  # e.g. labels to start from
    model = compose(task, {spec.modality: spec.qualified_name},
                    head={"name": head, **kwargs}, fusion=fusion)
    data = [{**x, **t} for x, t in zip(inputs * 2, targets)]
    summary = train(model, data, data, tmp / f"{spec.name}-train", epochs=1, batch_size=2,
                    freeze="all", progress=False)
    if not summary["feature_cache"]:
        raise AssertionError("the frozen-feature cache was not used")
    metric = get_task(task).metric
    return f"{task.split(':')[-1]}: eval {metric} {summary['best'][metric]:.2f} after a step"


def _encoded(inputs: dict[str, Any], n: int, present: tuple[str, ...]) -> dict[str, Any]:
    """Random encoder outputs (pooled + sequence) for a fusion's inputs."""
    import torch

    from zoo.base.encoder import EncoderOutput

    g = torch.Generator().manual_seed(0)
    out = {}
    for m in present:
        seq = torch.randn(n, 5, inputs[m]["dim"], generator=g)
        out[m] = (EncoderOutput(pooled=seq.mean(1), sequence=seq,
                                mask=torch.ones(n, 5, dtype=torch.bool)), torch.arange(n))
    return out


def check_fusion(spec: Any, results: list[CheckResult]) -> None:
    from zoo.build.components import build_component

    subject = f"fusion {spec.name}"
    names = _fusion_modalities(spec)
    inputs = {m: {"dim": d, "outputs": ["pooled", "sequence"]} for m, d in zip(names, (12, 8))}
    fusion = run_check(results, subject, "builds", lambda: build_component(spec, inputs=inputs))
    if fusion is None:
        return

    def forward() -> str:
        y = fusion(_encoded(inputs, 3, tuple(names)), 3)
        if tuple(y.shape) != (3, fusion.out_dim):
            raise AssertionError(f"output {tuple(y.shape)} is not (B, out_dim)=(3, "
                                 f"{fusion.out_dim})")
        y.sum().backward()
        if not any(p.grad is not None for p in fusion.parameters()):
            raise AssertionError("no parameter received a gradient")
        return f"out_dim {fusion.out_dim}"
    run_check(results, subject, "forward + backward", forward)

    def missing() -> str:
        import torch

        y = fusion(_encoded(inputs, 2, (names[0],)), 2)
        if tuple(y.shape) != (2, fusion.out_dim) or not torch.isfinite(y).all():
            raise AssertionError("an example without one modality gives no finite output")
        return "one modality missing: ok"
    run_check(results, subject, "missing modality", missing)

    def round_trip() -> str:
        import torch

        from zoo.base.config import config_of

        cfg = json.loads(json.dumps(config_of(fusion, subject)))
        again = build_component(spec, saved=True, inputs=inputs, **cfg)  # as a load does
        again.load_state_dict(fusion.state_dict())
        fusion.eval(), again.eval()
        x = _encoded(inputs, 3, tuple(names))
        if not torch.equal(fusion(x, 3), again(x, 3)):
            raise AssertionError("rebuilt from its config, it computes something else")
        return f"config {cfg}"[:80]
    run_check(results, subject, "config round trip", round_trip)


def _fusion_modalities(spec: Any) -> list[str]:
    """Two modalities to fuse: those of a registered model using this fusion (a fusion may
    need particular ones), else the first two zoo registers itself, else the first two."""
    from zoo.registry.manager import CORE_DISTRIBUTION

    reg = get_registry()
    for model in reg.all("model"):
        if model.resolved.get("fusion") == spec.qualified_name and len(model.encoders) > 1:
            return list(reg.sort_modalities(model.encoders))[:2]
    own = [m.name for m in reg.all("modality") if m.distribution == CORE_DISTRIBUTION]
    return own[:2] if len(own) >= 2 else list(modalities())[:2]


def _head_kwargs(spec: Any) -> dict[str, Any]:
    """Kwargs a registered model gives this head (labels, ...), or none."""
    for model in get_registry().all("model"):
        if model.resolved.get("head") == spec.qualified_name:
            return {k: v for k, v in model.head.items() if k not in ("name", "pretrained")}
    return {}


def check_head(spec: Any, results: list[CheckResult]) -> None:
    """A head after a fusion: built (with a registered model's kwargs, or labels) and
    decoded on random features; a head reading encoder outputs: through a model composed
    with a registered encoder that gives what it takes."""
    subject = f"head {spec.name}"
    if "fused" not in spec.accepts:
        run_check(results, subject, "builds + decodes on encoder outputs",
                  lambda: _encoder_head(spec))
        return
    from zoo.build.components import build_component

    def build() -> Any:
        kwargs = _head_kwargs(spec)
        try:
            return build_component(spec, in_dim=16, inputs={}, **kwargs)
        except ZooError:  # classifier-like heads need their labels
            return build_component(spec, in_dim=16, inputs={}, **{**kwargs,
                                                                  "labels": ["a", "b"]})
    head = run_check(results, subject, "builds", build)
    if head is None:
        return

    def decode() -> str:
        import torch

        head.eval()
        with torch.no_grad():
            out = head.decode(head(torch.randn(3, 16)))
        return _check_results(spec, out, 3)
    run_check(results, subject, "forward + decode", decode)


def _check_results(spec: Any, out: list[dict[str, Any]], n: int) -> str:
    if len(out) != n:
        raise AssertionError(f"decode gave {len(out)} results for {n} examples")
    for task in spec.tasks:
        want = set(get_task(task).outputs)
        if not want <= set(out[0]):
            raise AssertionError(f"results lack {sorted(want - set(out[0]))} that task "
                                 f"{task!r} promises")
    return f"keys {sorted(out[0])}"


def _encoder_head(spec: Any) -> str:
    """Compose the head with a registered encoder that gives what it reads (the plugin's
    own first), predict on that modality's samples."""
    from zoo.build.compose import compose

    reg = get_registry()
    using = [m.name for m in reg.all("model") if m.resolved.get("head") == spec.qualified_name]
    if using:
        raise Skip(f"checked through the model(s) that use it: {', '.join(using[:3])}")
    # the plugin's own encoders first, then others that build without a download
    encoders = sorted((e for e in reg.all("encoder") if set(e.outputs) & set(spec.accepts)
                       and (e.plugin == spec.plugin or "source" not in e.defaults)),
                      key=lambda e: e.plugin != spec.plugin)[:5]
    kwargs = _head_kwargs(spec)
    for enc in encoders:
        try:
            model = compose(spec.tasks[0], {enc.modality: enc.qualified_name},
                            head={"name": spec.qualified_name, **kwargs})
        except ZooError:
            continue  # this encoder needs arguments, or the head needs another modality
        out = model.predict([{enc.modality: v} for v in samples(enc.modality)])
        return f"with {enc.name}: " + _check_results(spec, out, 2)
    raise Skip(f"no registered encoder gives {'/'.join(spec.accepts)} outputs it builds with")
