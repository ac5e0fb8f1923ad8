"""Shared fixtures: offline mode, real sample inputs, test plugins installed with pip."""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import warnings
from pathlib import Path

import numpy as np
import pytest

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("HF_HUB_DISABLE_XET", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
if os.environ.get("PYTEST_XDIST_WORKER_COUNT"):
    # N test processes share the cores: torch (and every zoo a test starts, which inherits
    # this) gets its share of them, not all of them each (on 2 cores, 2 workers of 2 threads
    # ran the suite in 9:44, of 1 thread in 8:09)
    _cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else \
        (os.cpu_count() or 1)
    os.environ.setdefault("OMP_NUM_THREADS",
                          str(max(1, _cores // int(os.environ["PYTEST_XDIST_WORKER_COUNT"]))))

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


@contextlib.contextmanager
def _like_a_new_process(env: dict[str, str]):
    """What a new ``zoo`` process would start from, for one in-process call, and this
    process's state back after it: the repository root as cwd, ``env``'s PYTHONPATH in front
    of sys.path (modules imported from there dropped after), the registry collected afresh,
    the CLI group's commands (plugins add theirs) and ``warnings.formatwarning`` (the CLI
    sets its own) restored, and logging's stream handlers (transformers', huggingface_hub's)
    writing to the call's stderr while it runs."""
    import importlib
    import logging

    import zoo.registry
    from zoo.cli import cli

    cwd, path, commands = os.getcwd(), list(sys.path), dict(cli.commands)
    fmt, before = warnings.formatwarning, set(sys.modules)
    extra = [p for p in env.pop("PYTHONPATH", "").split(os.pathsep) if p]
    os.chdir(ROOT)
    sys.path[:0] = extra
    importlib.invalidate_caches()
    zoo.registry.reset()

    def stream_handlers() -> list[logging.StreamHandler]:
        loggers = [logging.getLogger(), *logging.Logger.manager.loggerDict.values()]
        return [h for lg in loggers for h in getattr(lg, "handlers", ())
                if type(h) is logging.StreamHandler]

    handlers = stream_handlers()
    streams = [h.stream for h in handlers]
    try:
        yield lambda: [h.setStream(sys.stderr) for h in handlers]
    finally:
        for h, stream in zip(handlers, streams):
            h.setStream(stream)
        for h in set(stream_handlers()) - set(handlers):  # made during the call, on its stderr
            h.setStream(sys.stderr)
        os.chdir(cwd)
        sys.path[:] = path
        for name in set(sys.modules) - before:
            file = getattr(sys.modules[name], "__file__", None) or ""
            if extra and file.startswith(tuple(extra)):
                del sys.modules[name]
        importlib.invalidate_caches()
        zoo.registry.reset()
        cli.commands.clear()
        cli.commands.update(commands)
        warnings.formatwarning = fmt


def _zoo_in_process(args: tuple[str, ...], env: dict[str, str]) -> subprocess.CompletedProcess:
    """``zoo ARGS`` through the CLI's own ``main`` in this process (click's test runner holds
    stdin, stdout and stderr), as a new process would run it (:func:`_like_a_new_process`),
    under the warning filters of a fresh interpreter and with warnings printed, not recorded.
    ``env``: the variables that differ from this process's, set for the call. No timeout:
    a command that hangs hangs its test (pytest's own timeout, if any, applies)."""
    import traceback

    from click.testing import CliRunner

    from zoo.cli import main

    runner, code = CliRunner(), 0
    with _like_a_new_process(env) as to_call_stderr, runner.isolation(env=env) as \
            (out, err, _), warnings.catch_warnings():
        to_call_stderr()
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
    return subprocess.CompletedProcess(["zoo", *args], code, stdout, stderr)


def run_zoo(*args: str, env: dict | None = None, check: bool = False, fresh: bool = False
            ) -> subprocess.CompletedProcess:
    """``zoo ARGS``: in this process through the CLI's ``main`` (a fresh interpreter costs
    ~5 s of imports a call), or in a fresh ``python -m zoo`` when the test is about the
    process (``fresh``: its imports, its signals, its children's output), when ``env`` sets
    a variable read once at start-up (Hugging Face's, at huggingface_hub's import; Python's
    own, PYTHONPATH aside), or when ZOO_TEST_FRESH=1 asks it of every call."""
    changed = {k: v for k, v in (env or {}).items() if os.environ.get(k) != v}
    if fresh or os.environ.get("ZOO_TEST_FRESH") == "1" or \
            any(k.startswith(("HF_", "PYTHON")) and k != "PYTHONPATH" for k in changed):
        full_env = {**os.environ, **(env or {})}
        proc = subprocess.run([*ZOO, *args], capture_output=True, text=True, env=full_env,
                              cwd=ROOT, timeout=300)
    else:
        proc = _zoo_in_process(args, changed)
    if check and proc.returncode:
        raise AssertionError(f"zoo {' '.join(args)} failed: {proc.stderr}")
    return proc


def pip_install(src: Path, target: Path) -> Path:
    """``pip install --target TARGET SRC`` (no dependencies, no build isolation) from a copy
    of SRC: setuptools writes build/ and *.egg-info into the folder it builds, and the test
    processes (pytest-xdist) install the same plugins at once. pip's own error when it
    fails."""
    copy = Path(tempfile.mkdtemp(prefix="zoo-plugin-src-")) / src.name
    shutil.copytree(src, copy, ignore=shutil.ignore_patterns("build", "*.egg-info"))
    try:
        proc = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps",
                               "--no-build-isolation", "--disable-pip-version-check",
                               "--target", str(target), str(copy)],
                              capture_output=True, text=True, timeout=300)
    finally:
        shutil.rmtree(copy.parent, ignore_errors=True)
    if proc.returncode:
        raise RuntimeError(f"pip install {src.name} failed: {proc.stderr[-2000:]}")
    return target


@pytest.fixture(scope="session")
def installed_test_plugins(tmp_path_factory) -> Path:
    """The test plugin distributions, installed by pip into a folder of their own.

    Subprocesses get it on PYTHONPATH, so the plugins are found through real installed
    entry points (dist-info metadata), exactly as after `pip install`.
    """
    target = tmp_path_factory.mktemp("site")
    for name in ("zoo-plugin-example", "zoo-plugin-broken", "zoo-plugin-dup",
                 "zoo-plugin-regression"):
        pip_install(TEST_PLUGINS / name, target / name)
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
