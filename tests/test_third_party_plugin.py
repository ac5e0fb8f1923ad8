"""A third-party plugin written from docs/plugins.md alone: tests/plugins/zoo-plugin-tv.

It registers a torchvision image encoder (`tv-convnet`), a FiLM fusion written as a plain
`torch.nn.Module` (`film`), a named model using zoo-text-hf's `bert-tiny` (`tv-film-clf`)
and pretrained weights from a local file whose path (and sha256) come from the environment
(`ZOO_TV_WEIGHTS`, `ZOO_TV_WEIGHTS_SHA256`). Everything runs through `python -m zoo` in
subprocesses with the plugin pip-installed into a folder on PYTHONPATH, as in conftest.py.
"""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import TEST_PLUGINS, pip_install, plugin_env, run_zoo, zoo_json

TV = "zoo-plugin-tv"
WEIGHTS_TAG = "tv-convnet.local"


@pytest.fixture(autouse=True)
def _no_outer_tv_env(monkeypatch):
    """Only what a test passes explicitly reaches the subprocesses."""
    for var in ("ZOO_TV_WEIGHTS", "ZOO_TV_WEIGHTS_SHA256"):
        monkeypatch.delenv(var, raising=False)


@pytest.fixture(scope="session")
def site(installed_test_plugins) -> Path:
    """zoo-plugin-tv installed by pip next to conftest's test plugins (example, dup...)."""
    pip_install(TEST_PLUGINS / TV, installed_test_plugins / TV)
    return installed_test_plugins


@pytest.fixture(scope="session")
def tv_weights(site, tmp_path_factory) -> tuple[Path, str]:
    """A safetensors file of a freshly built tv-convnet (seeded, BN stats made distinctive)
    and its sha256, hashed here so that registration hashes nothing."""
    path = tmp_path_factory.mktemp("tvw") / "tv-convnet.safetensors"
    script = (
        "import sys, torch\n"
        "from safetensors.torch import save_file\n"
        "from zoo_plugin_tv.encoder import build\n"
        "torch.manual_seed(1234)\n"
        "enc = build(pretrained=False)\n"
        "sd = enc.state_dict()\n"
        "for k, v in sd.items():\n"
        "    if k.endswith('running_var'): v.fill_(2.5)\n"
        "    if k.endswith('running_mean'): v.fill_(0.25)\n"
        "save_file({k: v.contiguous() for k, v in sd.items()}, sys.argv[1])\n"
    )
    subprocess.run([sys.executable, "-c", script, str(path)], check=True, capture_output=True,
                   env={**os.environ, **plugin_env(site, TV)}, timeout=300)
    return path, hashlib.sha256(path.read_bytes()).hexdigest()


def tv_env(site: Path, weights: tuple[Path, str] | None, *more: str, **extra: str) -> dict:
    env = plugin_env(site, TV, *more, **extra)
    if weights is not None:
        env["ZOO_TV_WEIGHTS"] = str(weights[0])
        env["ZOO_TV_WEIGHTS_SHA256"] = weights[1]
    return env


@pytest.fixture(scope="session")
def digits_manifests(tmp_path_factory) -> tuple[Path, Path]:
    """24 scikit-learn digits (0 and 1) as PNG files + short texts, 16 train / 8 eval.
    A few training lines lack one modality (the FiLM fusion must cope)."""
    from PIL import Image
    from sklearn.datasets import load_digits

    root = tmp_path_factory.mktemp("digits")
    (root / "img").mkdir()
    d = load_digits()
    picked = [i for i, t in enumerate(d.target) if t in (0, 1)][:24]
    rows = []
    for j, i in enumerate(picked):
        label = "zero" if d.target[i] == 0 else "one"
        rel = f"img/{j}.png"
        Image.fromarray((d.images[i] * 16).clip(0, 255).astype(np.uint8)).save(root / rel)
        row = {"text": f"a handwritten {label}" if j % 3 else "a digit", "image": rel,
               "label": label}
        if j in (1, 2):
            del row["text"]       # image only
        if j == 4:
            del row["image"]      # text only
        rows.append(row)
    train, ev = root / "train.jsonl", root / "eval.jsonl"
    train.write_text("".join(json.dumps(r) + "\n" for r in rows[:16]))
    ev.write_text("".join(json.dumps(r) + "\n" for r in rows[16:]))
    return train, ev


# a. conformance ------------------------------------------------------------------------

def test_plugins_check_passes_with_local_weights(site, tv_weights):
    proc = run_zoo("plugins", "check", "tv", env=tv_env(site, tv_weights))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    # the weights were registered and checked (not silently absent)
    assert WEIGHTS_TAG in proc.stdout, proc.stdout
    for name in ("tv-convnet", "film", "tv-film-clf"):
        assert name in proc.stdout, proc.stdout
    assert "FAIL" not in proc.stdout, proc.stdout


def test_plugins_check_fails_on_wrong_sha256(site, tv_weights):
    """sha256 is checked on the resolved file: a wrong one is a failure (exit 1)."""
    bad = (tv_weights[0], "0" * 64)
    proc = run_zoo("plugins", "check", "tv", env=tv_env(site, bad))
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert WEIGHTS_TAG in proc.stdout


def test_default_pretrained_tag_loads_the_local_file(site, tv_weights, tmp_path):
    """`weights=` on register_encoders is the default tag: a pretrained build loads it."""
    import torch
    from safetensors.torch import load_file

    out = tmp_path / "enc"
    run_zoo("create", "tv-convnet", "--out", str(out), "--pretrained",
            env=tv_env(site, tv_weights), check=True)
    saved = load_file(out / "model.safetensors")
    expected = load_file(tv_weights[0])
    for key, value in expected.items():
        match = [k for k in saved if k == key or k.endswith("." + key)]
        assert len(match) == 1, (key, sorted(saved))
        assert torch.equal(saved[match[0]], value), f"{key} was not loaded from the weights"


# b. training through the frozen-feature cache, then load back ----------------------------

def test_train_frozen_with_feature_cache_and_predict(site, tv_weights, digits_manifests,
                                                     tmp_path):
    train, ev = digits_manifests
    out = tmp_path / "run"
    proc = run_zoo("train", "tv-film-clf", "--train", str(train), "--eval", str(ev),
                   "--out", str(out), "--epochs", "2", "--freeze", "all", "--quiet",
                   env=tv_env(site, tv_weights))
    assert proc.returncode == 0, proc.stderr[-3000:]
    info = json.loads((out / "training.json").read_text())
    assert info["feature_cache"] is True, info
    assert info["frozen"] == ["image", "text"], info
    assert (out / "model.safetensors").is_file() and (out / "config.json").is_file()

    # the folder loads back: no weights env needed (the weights are in the folder)
    image = train.parent / "img" / "0.png"
    preds = zoo_json("predict", str(out),
                     json.dumps({"text": "a handwritten zero", "image": str(image)}),
                     env=tv_env(site, None))
    assert isinstance(preds, list) and len(preds) == 1, preds
    assert preds[0]["label"] in {"zero", "one"}, preds  # the head was rebuilt for the data


# c. only this plugin loaded: the model is skipped alone --------------------------------

def test_only_tv_plugin_loaded_keeps_components(site, tv_weights):
    env = tv_env(site, tv_weights, ZOO_PLUGINS="tv")

    enc = run_zoo("list", "--kind", "encoder", "--json", env=env)
    assert enc.returncode == 0, enc.stderr
    names = {r["name"] for r in json.loads(enc.stdout)}
    assert "tv-convnet" in names, names
    assert "bert-tiny" not in names, "ZOO_PLUGINS=tv still loaded zoo-text-hf"
    # the skipped model is reported with a warning naming it and the missing component
    warned = [ln for ln in enc.stderr.splitlines() if "tv-film-clf" in ln]
    assert any("bert-tiny" in ln for ln in warned), enc.stderr

    fusions = {r["name"] for r in zoo_json("list", "--kind", "fusion", "--json", env=env)}
    assert "film" in fusions, fusions

    weights = {r["name"]: r for r in zoo_json("list", "--kind", "weights", "--json", env=env)}
    assert WEIGHTS_TAG in weights, sorted(weights)
    row = weights[WEIGHTS_TAG]
    assert row.get("sha256") == tv_weights[1], row
    assert any(str(tv_weights[0]) in s and s.startswith("file:") for s in row.get("sources", [])), row

    models = run_zoo("list", "--kind", "model", "--json", env=env)
    assert models.returncode == 0, models.stderr
    assert "tv-film-clf" not in {r["name"] for r in json.loads(models.stdout)}
    assert "bert-tiny" in models.stderr and "tv-film-clf" in models.stderr


# d. next to a plugin that clashes on other names ---------------------------------------

def test_coexists_with_clashing_dup_plugin(site, tv_weights, tmp_path):
    base_env = tv_env(site, tv_weights, "zoo-plugin-example")
    dup_env = tv_env(site, tv_weights, "zoo-plugin-example", "zoo-plugin-dup")

    before = [r for r in zoo_json("list", "--json", env=base_env) if r["kind"] == "model"]
    after = [r for r in zoo_json("list", "--json", env=dup_env) if r["kind"] == "model"]
    assert "tv-film-clf" in {r["name"] for r in before}
    after_keys = {(r["name"], r["source"]) for r in after}
    missing = []
    for r in before:
        bare = (r["name"], r["source"])
        qualified = any(n.endswith(":" + r["name"]) and s == r["source"] for n, s in after_keys)
        if bare not in after_keys and not qualified:
            missing.append(bare)
    assert not missing, f"models lost when zoo-plugin-dup is installed: {missing}"
    assert ("tv-film-clf", "zoo-plugin-tv") in after_keys

    # our model still builds; its bare `bert-tiny` resolves to the first-party one
    out = tmp_path / "created"
    proc = run_zoo("create", "tv-film-clf", "--out", str(out), "--no-pretrained", env=dup_env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    config = json.loads((out / "config.json").read_text())
    text = config["encoders"]["text"]
    assert text["name"].split(":")[-1] == "bert-tiny" and text["distribution"] == "zoo-text-hf", text

    # the bare ambiguous name is an error of one line naming the clash
    info = run_zoo("info", "bert-tiny", env=dup_env)
    assert info.returncode != 0
    assert "Traceback" not in info.stderr, info.stderr
    errors = [ln for ln in info.stderr.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1 and "ambiguous" in errors[0], info.stderr
