"""Shared fixtures: offline mode, real sample inputs, test plugins installed with pip."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("HF_HUB_DISABLE_XET", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

ROOT = Path(__file__).resolve().parent.parent
TEST_PLUGINS = Path(__file__).parent / "plugins"
ZOO = [sys.executable, "-m", "zoo"]


@pytest.fixture(autouse=True)
def _fresh_registry(monkeypatch, tmp_path_factory):
    """Each test starts from a clean registry and its own checksum cache."""
    import zoo.registry

    monkeypatch.setenv("ZOO_CACHE", str(tmp_path_factory.getbasetemp() / "zoo-cache"))
    # the secret that seals cache entries, out of the user's home
    monkeypatch.setenv("ZOO_SECRET", str(tmp_path_factory.getbasetemp() / "zoo-cache.key"))
    for var in ("ZOO_PLUGINS", "ZOO_STRICT_PLUGINS", "ZOO_REGISTRY"):
        monkeypatch.delenv(var, raising=False)
    zoo.registry.reset()
    yield
    zoo.registry.reset()


@pytest.fixture(scope="session")
def photo(tmp_path_factory) -> Path:
    """A real photograph (scikit-image's Chelsea the cat) as a PNG file."""
    from PIL import Image
    from skimage import data

    path = tmp_path_factory.mktemp("img") / "chelsea.png"
    Image.fromarray(data.chelsea()).save(path)
    return path


@pytest.fixture(scope="session")
def speech(tmp_path_factory) -> Path:
    """A spoken sentence: espeak-ng when installed, else a generated harmonic tone."""
    import soundfile as sf

    path = tmp_path_factory.mktemp("wav") / "speech.wav"
    exe = shutil.which("espeak-ng")
    if exe:
        subprocess.run([exe, "-w", str(path), "the quick brown fox jumps over the lazy dog"],
                       check=True, capture_output=True)
    else:
        t = np.arange(int(22050 * 1.5)) / 22050
        wave = sum(np.sin(2 * np.pi * f * t) / k for k, f in enumerate((180, 360, 540), 1))
        sf.write(path, (0.2 * wave).astype("float32"), 22050)
    return path


# the interpreter's own warning filters (no -W, no PYTHONWARNINGS): what a fresh `zoo` sees
_FRESH_FILTERS = (("default", DeprecationWarning, "__main__"), ("ignore", DeprecationWarning, ""),
                  ("ignore", PendingDeprecationWarning, ""), ("ignore", ImportWarning, ""),
                  ("ignore", ResourceWarning, ""))


def _print_warning(message, category, filename, lineno, file=None, line=None):  # noqa: ANN001
    sys.stderr.write(warnings.formatwarning(message, category, filename, lineno, line))


def _zoo_in_process(args: tuple[str, ...]) -> subprocess.CompletedProcess:
    """``zoo ARGS`` through the CLI's own ``main`` in this process (click's test runner holds
    stdin, stdout and stderr), from the repository root as the subprocess ran, under the
    warning filters of a fresh interpreter and with warnings printed, not recorded."""
    import traceback

    from click.testing import CliRunner

    from zoo.cli import main

    runner, code = CliRunner(), 0
    cwd = os.getcwd()
    os.chdir(ROOT)
    try:
        with runner.isolation() as (out, err, _), warnings.catch_warnings():
            warnings.resetwarnings()
            for action, category, module in reversed(_FRESH_FILTERS):
                warnings.filterwarnings(action, category=category, module=module)
            warnings.showwarning = _print_warning
            try:
                main(list(args))
            except SystemExit as e:
                code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
                if isinstance(e.code, str):
                    sys.stderr.write(e.code + "\n")
            except Exception:  # noqa: BLE001  (an uncaught error: a traceback, exit 1)
                traceback.print_exc()
                code = 1
            sys.stdout.flush()
            sys.stderr.flush()
            stdout, stderr = out.getvalue().decode(), err.getvalue().decode()
    finally:
        os.chdir(cwd)
    return subprocess.CompletedProcess(["zoo", *args], code, stdout, stderr)


def run_zoo(*args: str, env: dict | None = None, check: bool = False, fresh: bool = False
            ) -> subprocess.CompletedProcess:
    """``zoo ARGS``: in this process through the CLI's ``main`` (a fresh interpreter costs
    ~5 s of imports a call), or in a fresh ``python -m zoo`` when ``env`` is given (entry
    points and constants read at start-up), when ``fresh`` (the test is about the process:
    its imports, its signals, its children's output) or when ZOO_TEST_FRESH=1 asks it of
    every call."""
    if env is None and not fresh and os.environ.get("ZOO_TEST_FRESH") != "1":
        proc = _zoo_in_process(args)
    else:
        full_env = {**os.environ, **(env or {})}
        proc = subprocess.run([*ZOO, *args], capture_output=True, text=True, env=full_env,
                              cwd=ROOT, timeout=300)
    if check and proc.returncode:
        raise AssertionError(f"zoo {' '.join(args)} failed: {proc.stderr}")
    return proc


@pytest.fixture(scope="session")
def installed_test_plugins(tmp_path_factory) -> Path:
    """The test plugin distributions, installed by pip into a folder of their own.

    Subprocesses get it on PYTHONPATH, so the plugins are found through real installed
    entry points (dist-info metadata), exactly as after `pip install`.
    """
    target = tmp_path_factory.mktemp("site")
    for name in ("zoo-plugin-example", "zoo-plugin-broken", "zoo-plugin-dup",
                 "zoo-plugin-regression"):
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps",
                        "--no-build-isolation", "--disable-pip-version-check", "--target",
                        str(target / name), str(TEST_PLUGINS / name)],
                       check=True, capture_output=True, timeout=300)
    return target


def plugin_env(site: Path, *names: str, **extra: str) -> dict[str, str]:
    paths = [str(site / n) for n in names]
    return {"PYTHONPATH": os.pathsep.join(paths), **extra}


def zoo_json(*args: str, env: dict | None = None):
    proc = run_zoo(*args, env=env, check=True)
    return json.loads(proc.stdout)


@pytest.fixture
def register_plugin():
    """Register an in-process plugin object as if it came from a distribution (the
    autouse reset above drops it after the test)."""
    from zoo.registry import manager as plugins

    def add(obj, name, dist="dist-test", version="1.0"):
        plugins.get_plugin_manager().register(obj, name=name)
        plugins._infos[name] = plugins.PluginInfo(name, dist, version)
    return add


HUB_TOKEN = "hf_local_test_token"


@pytest.fixture
def hub(monkeypatch, tmp_path):
    """A local Hub-compatible server on 127.0.0.1 driven by the real huggingface_hub
    client (HF_ENDPOINT, HF_TOKEN set; Xet off)."""
    import huggingface_hub.constants as C

    from zoo.testing.hubserver import serve_in_thread

    server = serve_in_thread(tmp_path / "hub-root", token=HUB_TOKEN)
    env = {"HF_ENDPOINT": server.url, "HF_TOKEN": HUB_TOKEN, "HF_HUB_OFFLINE": "0",
           "HF_HUB_DISABLE_XET": "1", "HF_HUB_CACHE": str(tmp_path / "hf-cache")}
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    monkeypatch.setattr(C, "HF_HUB_OFFLINE", False)  # read once at import; tests run offline
    server.env = env
    yield server
    server.stop()
