"""The plugin contract as a promise to strangers: it has a version plugins declare; a
plugin written against the previous contract (a frozen copy, tests/plugins/zoo-plugin-legacy)
still installs, passes `zoo plugins check` and trains, with DeprecationWarnings that name
the replacement; a contract zoo does not know fails that plugin alone, in one line; a
misspelled or unmarked hook is reported at load and fails the checks; the register
callbacks have exactly the typed signatures the hook specs declare."""
from __future__ import annotations

import inspect
import json
import textwrap
from pathlib import Path

import pytest

from conftest import TEST_PLUGINS, pip_install, run_zoo

LEGACY = "zoo-plugin-legacy"


def _install(src: Path, site: Path) -> dict[str, str]:
    pip_install(src, site)
    return {"PYTHONPATH": str(site)}


def _write_plugin(root: Path, name: str, body: str) -> Path:
    """A one-module plugin distribution ``zoo-plugin-NAME`` (entry point ``NAME``)."""
    pkg = root / f"zoo-plugin-{name}"
    (pkg / f"zoo_plugin_{name}").mkdir(parents=True)
    (pkg / "pyproject.toml").write_text(textwrap.dedent(f"""\
        [build-system]
        requires = ["setuptools>=68"]
        build-backend = "setuptools.build_meta"
        [project]
        name = "zoo-plugin-{name}"
        version = "0.0.1"
        [project.entry-points.zoo]
        {name} = "zoo_plugin_{name}"
        [tool.setuptools]
        packages = ["zoo_plugin_{name}"]
        """))
    (pkg / f"zoo_plugin_{name}" / "__init__.py").write_text(textwrap.dedent(body))
    return pkg


@pytest.fixture(scope="module")
def legacy(tmp_path_factory) -> dict[str, str]:
    return _install(TEST_PLUGINS / LEGACY, tmp_path_factory.mktemp("legacy-site"))


def test_the_frozen_contract_1_plugin_passes_its_checks_with_a_deprecation(legacy):
    proc = run_zoo("plugins", "check", "legacy", "--json", env=legacy)
    rows = json.loads(proc.stdout)
    assert proc.returncode == 0 and not [r for r in rows if r["status"] == "fail"], rows
    contract = next(r for r in rows if r["check"] == "plugin contract")
    assert contract["status"] == "warn" and "contract 1" in contract["detail"]
    passed = {(r["subject"], r["check"]) for r in rows if r["status"] == "pass"}
    assert {("encoder legacy-bow", "feature cache + training step"),
            ("fusion legacy-scale", "missing modality"),
            ("head legacy-topic-head", "forward + decode"),
            ("model legacy-topic-clf", "predict + save/load"),
            ("logger legacy-lines", "logs a run")} <= passed


def test_the_frozen_contract_1_plugin_trains_and_says_what_to_change(legacy, tmp_path):
    data = tmp_path / "d.jsonl"
    data.write_text("".join(json.dumps({"text": t, "topic": k}) + "\n" for t, k in [
        ("cats purr and sleep", "cat"), ("dogs bark loudly", "dog"), ("a cat naps", "cat"),
        ("the dog fetches a ball", "dog"), ("kittens and cats", "cat"),
        ("a dog and a bone", "dog")] * 3))
    out = tmp_path / "run"
    env = {**legacy, "PYTHONWARNINGS": "always::DeprecationWarning"}
    proc = run_zoo("train", "legacy-topic-clf", "--train", str(data), "--eval", str(data),
                   "--out", str(out), "--epochs", "4", "--logger", "legacy-lines", "--quiet",
                   env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "targets plugin contract 1" in proc.stderr and "zoo_contract = 2" in proc.stderr
    assert "check_target(targets, where" in proc.stderr  # the replacement, named
    assert int((out / "legacy_lines.txt").read_text()) > 0  # its logger ran
    pred = json.loads(run_zoo("predict", str(out), "cats purr", env=legacy, check=True).stdout)
    assert pred[0]["topic"] in ("cat", "dog") and len(pred[0]["top"]) == 1


def test_an_unknown_contract_fails_that_plugin_alone(tmp_path):
    src = _write_plugin(tmp_path, "future", """\
        from zoo.plugin import hookimpl
        zoo_contract = 99

        @hookimpl
        def register_fusions(register):
            register("from-the-future", "x:y", accepts=("pooled",))
        """)
    env = _install(src, tmp_path / "site")
    rows = {r["name"]: r for r in json.loads(run_zoo("plugins", "--json", env=env).stdout)}
    assert "plugin contract 99" in rows["future"]["error"]
    assert "upgrade zoo" in rows["future"]["error"]
    assert run_zoo("list", "--kind", "fusion", env=env, check=True).stdout.count("concat-mlp")


def test_a_misspelled_or_unmarked_hook_is_reported_and_fails_the_check(tmp_path):
    src = _write_plugin(tmp_path, "typo", """\
        from zoo.plugin import hookimpl
        zoo_contract = 2

        @hookimpl
        def register_encoder(register):  # a typo: register_encoders
            pass

        def register_fusions(register):  # not marked: zoo never calls it
            pass

        @hookimpl
        def register_models(register):
            pass
        """)
    env = _install(src, tmp_path / "site")
    proc = run_zoo("list", env=env)
    assert proc.returncode == 0
    assert "unknown hook 'register_encoder' (did you mean 'register_encoders'?)" in proc.stderr
    assert "register_fusions is not marked @hookimpl" in proc.stderr
    proc = run_zoo("plugins", "check", "typo", "--json", env=env)
    assert proc.returncode == 1
    fails = [r["detail"] for r in json.loads(proc.stdout) if r["status"] == "fail"]
    assert any("register_encoder'" in f for f in fails) and \
        any("not marked @hookimpl" in f for f in fails)
    strict = run_zoo("list", env={**env, "ZOO_STRICT_PLUGINS": "1"})
    assert strict.returncode == 1 and "unknown hook" in strict.stderr


def test_the_register_callbacks_are_the_typed_hook_specs():
    """One source of truth: each callback the core hands a hook has exactly the signature
    of the hook's ``register`` type in zoo.hookspecs (which IDEs and docs read)."""
    from zoo import hookspecs
    from zoo.registry.collect import Registrar

    for hook, proto in hookspecs.CALLBACKS.items():
        spec = inspect.signature(hookspecs.HOOKS[hook]).parameters["register"]
        assert spec.annotation in (proto.__name__, proto), hook
        want = inspect.signature(proto.__call__)
        got = inspect.signature(Registrar([], "p", "d", "1", ()).for_hook(hook))
        assert list(want.parameters)[1:] == list(got.parameters), hook
        for name, p in got.parameters.items():
            w = want.parameters[name]
            assert (p.kind, p.default) == (w.kind, w.default), f"{hook}: {name}"
            assert str(p.annotation) == str(w.annotation), f"{hook}: {name}"


def test_a_fusion_base_subclass_works_without_null_embeddings():
    """Contract 1 required add_null_embeddings() before pooled(): a FiLM-style fusion
    calling pooled() alone crashed in its first training step. Now a missing modality is
    zeros in pooled()."""
    import torch

    from zoo.base.encoder import EncoderOutput
    from zoo.plugin import Fusion

    class Film(Fusion):
        def __init__(self, inputs, dim=8):
            super().__init__(inputs)
            self.proj = torch.nn.Linear(sum(self.in_dims.values()), dim)
            self.out_dim = dim

        def forward(self, encoded, batch_size):
            pooled = self.pooled(encoded, batch_size)
            return self.proj(torch.cat([pooled[m] for m in self.modalities], -1))

    f = Film({"text": {"dim": 4}, "image": {"dim": 3}})
    enc = {"text": (EncoderOutput(pooled=torch.ones(1, 4)), torch.tensor([1]))}
    y = f(enc, 2)  # example 0 has no text, neither example an image
    assert y.shape == (2, 8) and torch.isfinite(y).all()
    f.proj.weight.data.fill_(1.0), f.proj.bias.data.zero_()
    assert f(enc, 2)[:, 0].tolist() == [0.0, 4.0]  # the missing parts are zeros
    y.sum().backward()


def test_subword_encoders_give_each_token_its_word(tmp_path):
    """The text encoders' preprocessing maps every token to its whitespace word: pieces
    of one word share it, special tokens and padding are -1; the model hands the map to
    heads, and the frozen-feature cache keeps it."""
    import zoo

    model = zoo.create_model("minilm-l6", pretrained=True)
    texts = ["Unbelievably, Oslo-based tokenizers split", "hi"]
    batch = model.preprocess([{"text": t} for t in texts])
    words = batch["text"].word_ids
    pieces = model.encoders["text"].tokenizer.convert_ids_to_tokens(
        batch["text"].tensors["input_ids"][0])
    assert pieces[:6] == ["[CLS]", "un", "##bel", "##ie", "##va", "##bly"]
    assert words[0].tolist()[:7] == [-1, 0, 0, 0, 0, 0, 0]  # "Unbelievably," is word 0
    assert max(words[0].tolist()) == 3 and words[1].tolist()[:3] == [-1, 0, -1]
    assert "word_ids" not in batch["text"].tensors  # kept out of the encoder's forward
    out, _ = model.encode(batch)["text"]
    assert out.word_ids.shape == out.sequence.shape[:2]
