"""Conformance checks for one installed plugin (``zoo plugins check NAME``).

Each registered thing is exercised the way zoo will use it: the plugin loads under the
contract it declares, registers without importing torch and implements only hooks that
exist; modalities read, check and serve their own samples; encoders build (random, and with
their pretrained weights when available offline), run forward with the outputs they
declare, round-trip their config and weights, and train a step through the frozen-feature
cache; fusions and heads run forward, backward and decode; tasks score a sample with their
metrics; models predict and round-trip; loggers log a run; objectives compute a loss with
a gradient. Every check reports pass, fail (with the reason), skip (why it could not run)
or warn (it works, but through a deprecated contract).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import warnings
from pathlib import Path
from typing import Any

from zoo.errors import ZooError
from zoo.plugincheck.base import CheckResult, run_check
from zoo.plugincheck.components import check_encoder, check_fusion, check_head
from zoo.plugincheck.kinds import (check_logger, check_model, check_modality,
                                   check_objective, check_task, check_weights)

__all__ = ["check_plugin", "CheckResult"]


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


def _plugin_checks(info: Any, results: list[CheckResult]) -> bool:
    """Loading, the contract, hook names, light registration; False when it did not load."""
    from zoo.hookspecs import CONTRACT

    subject = f"plugin {info.name}"
    if info.error:
        results.append(CheckResult(subject, "loads", "fail", info.error[:300]))
        return False
    results.append(CheckResult(subject, "loads", "pass", f"{info.distribution} {info.version}"))
    status = "pass" if info.contract == CONTRACT else "warn"
    detail = (f"contract {info.contract}" if status == "pass" else
              f"contract {info.contract} (declares no zoo_contract?): works until zoo 0.3; "
              f"move to contract {CONTRACT} (docs/plugins.md, 'Contract versions')")
    results.append(CheckResult(subject, "plugin contract", status, detail))
    for problem in info.unknown_hooks:
        results.append(CheckResult(subject, "hook names", "fail", problem))
    if not info.unknown_hooks:
        results.append(CheckResult(subject, "hook names", "pass", "every hook is known"))
    if not info.builtin:
        run_check(results, subject, "registration is light",
                  lambda: _registration_is_light(info.name))
    return True


def _kind_checks(info: Any, reg: Any, results: list[CheckResult], tmp: Path) -> None:
    mine = lambda kind: [s for s in reg.all(kind) if s.plugin == info.name]  # noqa: E731
    for spec in mine("modality"):
        check_modality(spec, results)
    for spec in mine("weights"):
        check_weights(spec, results)
    for spec in mine("task"):
        check_task(spec, results)
    for spec in mine("encoder"):
        check_encoder(spec, results, tmp)
    for spec in mine("fusion"):
        check_fusion(spec, results)
    for spec in mine("head"):
        check_head(spec, results)
    for spec in mine("model"):
        check_model(spec, results, tmp)
    for spec in mine("logger"):
        check_logger(spec, results, tmp)
    for spec in mine("objective"):
        check_objective(spec, results)


def check_plugin(name: str) -> list[CheckResult]:
    """Every check of plugin ``name`` (entry-point or distribution name)."""
    from zoo.registry import get_registry, plugin_infos
    from zoo.registry.manager import lenient

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
        if not _plugin_checks(info, results):
            continue
        with tempfile.TemporaryDirectory(prefix="zoo-check-") as d, \
                warnings.catch_warnings():
            warnings.simplefilter("ignore")
            _kind_checks(info, reg, results, Path(d))
        if not any(r.subject != f"plugin {info.name}" for r in results):
            results.append(CheckResult(f"plugin {info.name}", "registers", "fail",
                                       "registered nothing"))
    return results
