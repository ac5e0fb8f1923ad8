"""Conformance checks for one installed plugin (``zoo plugins check NAME``).

Each registered component is exercised the way zoo will use it: built (random, and with
its pretrained weights when they are available offline), fed sample inputs of its
modality, run forward with the outputs it declared, its config round-tripped through
JSON, saved and loaded bit-identically, and trained for a step through the frozen-feature
cache. Every check reports pass, fail (with the reason) or skip (why it could not run).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from zoo.errors import RegistryError, WeightsError, ZooError

__all__ = ["check_plugin", "CheckResult"]


@dataclass
class CheckResult:
    subject: str  # "encoder my-enc", "plugin my_plugin"
    check: str
    status: str  # "pass" | "fail" | "skip"
    detail: str = ""


class _Skip(Exception):
    """A check that cannot run here (weights not installed, arguments needed)."""


def _run(results: list[CheckResult], subject: str, check: str, fn: Callable[[], Any]) -> Any:
    try:
        value = fn()
    except _Skip as e:
        results.append(CheckResult(subject, check, "skip", str(e)))
        return None
    except Exception as e:  # a failed check is a result, never a crash of the checker
        where = traceback.extract_tb(e.__traceback__)[-1]
        detail = f"{type(e).__name__}: {e} ({Path(where.filename).name}:{where.lineno})"
        results.append(CheckResult(subject, check, "fail", detail[:300]))
        return None
    results.append(CheckResult(subject, check, "pass", value if isinstance(value, str) else ""))
    return value


def _registration_is_light(name: str) -> str:
    """Collect the plugin's registrations in a fresh process: no torch may be imported."""
    code = ("import sys, warnings; warnings.simplefilter('ignore'); "
            "from zoo.registry import plugin_infos; "
            "infos = {i.name: i for i in plugin_infos() if not i.builtin}; "
            "import json; bad = sorted(m for m in ('torch', 'transformers', 'timm', "
            "'torchaudio') if m in sys.modules); print(json.dumps(bad))")
    env = {**os.environ, "ZOO_PLUGINS": name}
    env.pop("ZOO_STRICT_PLUGINS", None)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=env, timeout=120)
    if proc.returncode:
        raise RuntimeError(proc.stderr.strip().splitlines()[-1] if proc.stderr else "failed")
    heavy = json.loads(proc.stdout.strip().splitlines()[-1])
    if heavy:
        raise AssertionError(f"registering imports {', '.join(heavy)}; import heavy "
                             f"libraries inside factories, not in the registration module")
    return "no torch at registration"


# ---- sample data ------------------------------------------------------------------------

def _samples(modality: str) -> list[Any]:
    import numpy as np

    rng = np.random.default_rng(0)
    if modality == "text":
        return ["a short sentence", "a second, somewhat longer sentence with more words"]
    if modality == "image":
        from PIL import Image

        return [Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8))
                for h, w in ((48, 64), (80, 40))]
    t = np.arange(16000) / 16000
    return [((0.1 * np.sin(2 * np.pi * f * t[:n])).astype("float32"), 16000)
            for f, n in ((220, 16000), (330, 12000))]


def _check_output(enc: Any, out: Any, n: int) -> str:
    """The forward output honours the contracts the encoder declares."""
    import torch

    from zoo.base.encoder import EncoderOutput

    if not isinstance(out, EncoderOutput):
        raise AssertionError(f"forward returned {type(out).__name__}, not an EncoderOutput")
    outputs = tuple(enc.outputs)
    if "pooled" in outputs:
        if out.pooled is None or tuple(out.pooled.shape) != (n, enc.dim):
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


# ---- per kind ---------------------------------------------------------------------------

def _check_encoder(spec: Any, results: list[CheckResult], tmp: Path) -> None:
    import torch

    from zoo.build.compose import create_model
    from zoo.io.hub import load
    from zoo.build.compose import compose

    subject = f"encoder {spec.name}"
    qn = spec.qualified_name

    def build() -> Any:
        try:
            return create_model(qn)
        except RegistryError:
            raise  # built, but not what was registered: a plugin bug
        except ZooError as e:
            raise _Skip(f"needs arguments to build: {e}") from None

    model = _run(results, subject, "builds (random init)", build)
    if model is None:
        return
    if spec.weights:
        def pretrained() -> str:
            try:
                a = create_model(qn, pretrained=True).state_dict()
            except WeightsError as e:
                raise _Skip(f"weights not available offline: {str(e)[:150]}") from None
            b = create_model(qn, pretrained=True).state_dict()
            if any(not torch.equal(a[k], b[k]) for k in a):  # random init both times
                raise AssertionError(f"two pretrained builds differ: the factory does not "
                                     f"load weights={spec.weights!r} (use load_weights)")
            return f"weights {spec.weights}"
        _run(results, subject, "builds (pretrained)", pretrained)
    enc = model.encoders[spec.modality]
    inputs = [{spec.modality: v} for v in _samples(spec.modality)]

    def forward() -> str:
        batch = model.preprocess(inputs)
        with torch.no_grad():
            out = enc(**batch[spec.modality].tensors)
        return _check_output(enc, out, len(inputs))
    if _run(results, subject, "preprocess + forward", forward) is None:
        return

    def round_trip() -> str:
        cfg = json.loads(json.dumps(model.config))
        d = model.save_pretrained(tmp / spec.name)
        back = load(d)
        a, b = model.state_dict(), back.state_dict()
        if set(a) != set(b) or any(not torch.equal(a[k], b[k]) for k in a):
            raise AssertionError("weights differ after save + load")
        e1, e2 = model.embed(inputs), back.embed(inputs)
        if not torch.equal(e1[spec.modality], e2[spec.modality]):
            raise AssertionError("embeddings differ after save + load")
        return f"config: {len(cfg['encoders'][spec.modality]['kwargs'])} kwargs"
    _run(results, subject, "config + save/load bit-identical", round_trip)

    def cache_and_step() -> str:
        from zoo.training import train

        fusion = "concat-mlp" if "pooled" in spec.outputs else "cross-attention"
        m = compose("classification", {spec.modality: qn},
                    head={"name": "classification", "labels": ["a", "b"]}, fusion=fusion)
        data = [{**x, "label": lab} for x, lab in zip(inputs * 2, ["a", "b", "b", "a"])]
        summary = train(m, data, data, tmp / f"{spec.name}-train", epochs=1, batch_size=2,
                        freeze="all", progress=False)
        if not summary["feature_cache"]:
            raise AssertionError("the frozen-feature cache was not used")
        return f"eval accuracy {summary['best']['accuracy']:.2f} after one epoch"
    _run(results, subject, "feature cache + training step", cache_and_step)


def _check_fusion(spec: Any, results: list[CheckResult]) -> None:
    import torch

    from zoo.build.compose import build_component
    from zoo.base.encoder import EncoderOutput

    subject = f"fusion {spec.name}"
    inputs = {"text": {"dim": 12, "outputs": ["pooled", "sequence"]},
              "image": {"dim": 8, "outputs": ["pooled", "sequence"]}}
    fusion = _run(results, subject, "builds", lambda: build_component(spec, inputs=inputs))
    if fusion is None:
        return

    def encoded(n: int, present: tuple[str, ...]) -> dict[str, Any]:
        g = torch.Generator().manual_seed(0)
        out = {}
        for m in present:
            d = inputs[m]["dim"]
            seq = torch.randn(n, 5, d, generator=g)
            out[m] = (EncoderOutput(pooled=seq.mean(1), sequence=seq,
                                    mask=torch.ones(n, 5, dtype=torch.bool)),
                      torch.arange(n))
        return out

    def forward() -> str:
        y = fusion(encoded(3, ("text", "image")), 3)
        if tuple(y.shape) != (3, fusion.out_dim):
            raise AssertionError(f"output {tuple(y.shape)} is not (B, out_dim)=(3, "
                                 f"{fusion.out_dim})")
        y.sum().backward()
        if not any(p.grad is not None for p in fusion.parameters()):
            raise AssertionError("no parameter received a gradient")
        return f"out_dim {fusion.out_dim}"
    _run(results, subject, "forward + backward", forward)

    def missing() -> str:
        y = fusion(encoded(2, ("text",)), 2)
        if tuple(y.shape) != (2, fusion.out_dim) or not torch.isfinite(y).all():
            raise AssertionError("an example without one modality gives no finite output")
        return "one modality missing: ok"
    _run(results, subject, "missing modality", missing)

    def round_trip() -> str:
        from zoo.base.config import config_of

        cfg = json.loads(json.dumps(config_of(fusion, subject)))
        again = build_component(spec, inputs=inputs, **cfg)
        again.load_state_dict(fusion.state_dict())
        fusion.eval(), again.eval()
        x = encoded(3, ("text", "image"))
        if not torch.equal(fusion(x, 3), again(x, 3)):
            raise AssertionError("rebuilt from its config, it computes something else")
        return f"config {cfg}"[:80]
    _run(results, subject, "config round trip", round_trip)


def _check_head(spec: Any, results: list[CheckResult]) -> None:
    import torch

    from zoo.build.compose import build_component
    from zoo.registry import get_task

    subject = f"head {spec.name}"
    if "fused" not in spec.accepts:
        results.append(CheckResult(subject, "builds", "skip", "reads encoder outputs: "
                                   "checked through the models that use it"))
        return

    def build() -> Any:
        try:
            return build_component(spec, in_dim=16)
        except ZooError:  # classifier-like heads need their labels
            return build_component(spec, in_dim=16, labels=["a", "b"])
    head = _run(results, subject, "builds", build)
    if head is None:
        return

    def decode() -> str:
        head.eval()
        with torch.no_grad():
            results_ = head.decode(head(torch.randn(3, 16)))
        if len(results_) != 3:
            raise AssertionError(f"decode gave {len(results_)} results for 3 examples")
        for task in spec.tasks:
            want = set(get_task(task).outputs)
            if not want <= set(results_[0]):
                raise AssertionError(f"results lack {sorted(want - set(results_[0]))} that "
                                     f"task {task!r} promises")
        return f"keys {sorted(results_[0])}"
    _run(results, subject, "forward + decode", decode)


def _check_task(spec: Any, results: list[CheckResult]) -> None:
    from zoo.base.task import Task

    def build() -> str:
        task = spec.build()
        if not isinstance(task, Task):
            raise AssertionError(f"factory returned {type(task).__name__}, not a zoo.plugin.Task")
        if type(task).metrics is Task.metrics:
            raise AssertionError("metrics() is not implemented")
        if not task.metric:
            raise AssertionError("no 'metric' to choose the best epoch by")
        return f"targets {list(spec.targets)}, metric {task.metric}"
    _run(results, f"task {spec.name}", "builds", build)


def _check_model(spec: Any, results: list[CheckResult], tmp: Path) -> None:
    import torch

    from zoo.build.compose import create_model
    from zoo.io.hub import load

    subject = f"model {spec.name}"
    if spec.unavailable:
        results.append(CheckResult(subject, "resolves", "fail", spec.unavailable[:300]))
        return
    model = _run(results, subject, "builds", lambda: create_model(spec.qualified_name))
    if model is None:
        return
    m = next(iter(model.encoders))
    sample = [{m: _samples(m)[0]}]

    def round_trip() -> str:
        before = model.predict(sample)
        back = load(model.save_pretrained(tmp / spec.name))
        if back.predict(sample) != before:
            raise AssertionError("predictions differ after save + load")
        if any(not torch.equal(a, b) for a, b in zip(model.state_dict().values(),
                                                      back.state_dict().values())):
            raise AssertionError("weights differ after save + load")
        return "predict + save/load identical"
    _run(results, subject, "predict + save/load", round_trip)


def _check_weights(spec: Any, results: list[CheckResult]) -> None:
    from zoo.weights import resolve

    def found() -> str:
        try:
            return f"found: {resolve(spec)}"[:100]
        except WeightsError as e:
            if "sha256 mismatch" in str(e):
                raise
            raise _Skip(f"not available here: {str(e)[:150]}") from None
    _run(results, f"weights {spec.tag}", "resolves offline", found)


def check_plugin(name: str) -> list[CheckResult]:
    """Every check of plugin ``name`` (entry-point or distribution name)."""
    import warnings

    from zoo.registry import plugin_infos
    from zoo.registry.manager import lenient
    from zoo.registry import get_registry

    with lenient(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        infos = [i for i in plugin_infos() if name in (i.name, i.distribution)]
        reg = get_registry()
    if not infos:
        known = ", ".join(sorted(i.name for i in plugin_infos() if not i.builtin)) or "none"
        raise ZooError(f"no installed plugin is called {name!r} (installed: {known}; "
                       f"see `zoo plugins`)")
    results: list[CheckResult] = []
    for info in infos:
        subject = f"plugin {info.name}"
        if info.error:
            results.append(CheckResult(subject, "loads", "fail", info.error[:300]))
            continue
        results.append(CheckResult(subject, "loads", "pass",
                                   f"{info.distribution} {info.version}"))
        if not info.builtin:
            _run(results, subject, "registration is light",
                 lambda: _registration_is_light(info.name))
        mine = lambda kind: [s for s in reg.all(kind) if s.plugin == info.name]  # noqa: E731
        with tempfile.TemporaryDirectory(prefix="zoo-check-") as d, \
                warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for spec in mine("weights"):
                _check_weights(spec, results)
            for spec in mine("task"):
                _check_task(spec, results)
            for spec in mine("encoder"):
                _check_encoder(spec, results, Path(d))
            for spec in mine("fusion"):
                _check_fusion(spec, results)
            for spec in mine("head"):
                _check_head(spec, results)
            for spec in mine("model"):
                _check_model(spec, results, Path(d))
        if not any(r.subject != subject for r in results):
            results.append(CheckResult(subject, "registers", "fail", "registered nothing"))
    return results
