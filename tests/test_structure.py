"""The shape of the code, checked so it stays: a one-way lifecycle (import-linter's
contracts in pyproject.toml), no import cycle anywhere (function-level imports included),
small modules and functions, and no global patching of torch or huggingface_hub."""
from __future__ import annotations

import ast
import subprocess
import sys
import threading
from pathlib import Path

from conftest import ROOT

MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 60


def test_the_import_contracts_hold():
    proc = subprocess.run([str(Path(sys.executable).parent / "lint-imports")], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert "0 broken" in proc.stdout


def _cycles() -> list[list[str]]:
    """Strongly connected components of zoo's import graph (every import statement,
    function-level ones too), larger than one module."""
    import grimp

    graph = grimp.build_graph("zoo", include_external_packages=False)
    edges = {m: set(graph.find_modules_directly_imported_by(m)) for m in graph.modules}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:  # Tarjan
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in edges[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10_000))
    for m in sorted(edges):
        if m not in index:
            visit(m)
    return found


def test_no_module_imports_itself_back_through_others():
    assert _cycles() == []


def test_modules_and_functions_stay_small():
    big, long = [], []
    for path in sorted((ROOT / "zoo").rglob("*.py")):
        text = path.read_text()
        rel = str(path.relative_to(ROOT))
        if len(text.splitlines()) > MAX_MODULE_LINES:
            big.append(f"{rel}: {len(text.splitlines())} lines")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                n = node.end_lineno - node.lineno + 1
                if n > MAX_FUNCTION_LINES:
                    long.append(f"{rel}:{node.lineno} {node.name}(): {n} lines")
    assert not big and not long, "\n".join(big + long)


def test_skipping_weight_init_touches_no_other_thread():
    """skip_init is a TorchFunctionMode: while one thread builds a model to load weights
    into, another thread's new layers still get their random initialisation."""
    import torch

    from zoo.build.init import skip_init

    inside, other = threading.Event(), {}

    def build() -> None:
        inside.wait(10)
        other["w"] = torch.nn.Linear(64, 64).weight.detach().clone()

    t = threading.Thread(target=build)
    t.start()
    with skip_init():
        inside.set()
        t.join(10)
        skipped = torch.nn.Linear(64, 64)
        torch.nn.init.constant_(skipped.bias, 3.0)  # skipped: the tensor comes back as is
    assert float(other["w"].std()) > 0.01  # the other thread initialised its layer
    assert not torch.all(skipped.bias == 3.0)
    assert torch.all(torch.nn.init.constant_(torch.empty(4), 3.0) == 3.0)  # and after


def test_nothing_patches_torch_or_huggingface_hub_globally():
    """No zoo module assigns to an attribute of torch or huggingface_hub (their init
    functions, constants), nor to os.environ: settings travel with each call. (The command
    line alone sets a variable: the serving config its worker processes read.)"""
    offenders = []
    for path in sorted((ROOT / "zoo").rglob("*.py")):
        if path.parent.name == "cli":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            targets = node.targets if isinstance(node, ast.Assign) else \
                [node.target] if isinstance(node, (ast.AugAssign, ast.AnnAssign)) else []
            for t in targets:
                src = ast.unparse(t)
                if src.startswith(("torch.", "init.", "C.", "constants.", "consts.",
                                   "huggingface_hub.", "os.environ[")) or \
                        "setattr(" in src:
                    offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}: {src}")
            if isinstance(node, ast.Call) and ast.unparse(node.func) in (
                    "setattr", "os.environ.update", "os.environ.setdefault",
                    "os.environ.pop"):
                offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}: "
                                 f"{ast.unparse(node)[:80]}")
    assert not offenders, "\n".join(offenders)
