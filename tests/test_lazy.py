"""Listing is lazy: no torch, transformers, timm or torchaudio for list/info/plugins/--help."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from conftest import ROOT

HEAVY = ("torch", "transformers", "timm", "torchaudio", "torchvision", "numpy")

PROBE = """
import json, sys
from zoo.cli import main
try:
    main({args!r})
except SystemExit:
    pass
sys.stderr.write("\\nMODULES=" + json.dumps(sorted(m for m in {heavy!r} if m in sys.modules)))
"""


@pytest.mark.parametrize("args", [["list"], ["list", "--json", "--modality", "text"],
                                  ["info", "minilm-effnet-clf"], ["plugins", "--json"],
                                  ["--help"], ["list", "--help"]])
def test_listing_commands_import_no_heavy_library(args):
    proc = subprocess.run([sys.executable, "-c", PROBE.format(args=args, heavy=HEAVY)],
                          capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert proc.returncode == 0, proc.stderr
    imported = json.loads(proc.stderr.rsplit("MODULES=", 1)[1])
    assert imported == [], f"zoo {' '.join(args)} imported {imported}"
    assert proc.stdout.strip()


def test_import_zoo_is_cheap():
    code = "import sys, zoo; zoo.list_models(); print(sorted(m for m in %r if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code % (HEAVY,)], capture_output=True,
                         text=True, timeout=120, check=True).stdout
    assert out.strip() == "[]"
