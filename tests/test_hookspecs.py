"""Every hook is documented: a docstring that names its callback and return, and an entry
with its signature in docs/plugins.md (datasette's test_docs idea)."""
from __future__ import annotations

import inspect

import pytest

from conftest import ROOT
from zoo import hookspecs

DOC = (ROOT / "docs" / "plugins.md").read_text()


@pytest.mark.parametrize("name", sorted(hookspecs.HOOKS))
def test_every_hook_is_documented(name):
    fn = hookspecs.HOOKS[name]
    doc = inspect.getdoc(fn) or ""
    assert len(doc) > 80, f"{name} needs a real docstring"
    assert "Returns" in doc, f"{name}: say what it returns and whether it is firstresult"
    assert f"{name}({', '.join(inspect.signature(fn).parameters)})" in DOC, \
        f"docs/plugins.md must show {name} with its signature"
    for param in inspect.signature(fn).parameters.values():
        assert param.annotation is not inspect.Parameter.empty, f"{name}.{param.name} untyped"


def test_every_hookspec_in_the_module_is_in_the_table():
    marked = {n for n, f in vars(hookspecs).items()
              if callable(f) and hasattr(f, "zoo_spec")}
    assert marked == set(hookspecs.HOOKS)
