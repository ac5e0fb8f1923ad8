"""The plugin contract as third parties meet it: components that only honour the documented
interfaces, a new task with no core change, clashes and missing plugins that stay local,
the checker and the scaffold, and the public API the built-in plugins are held to."""
from __future__ import annotations

import ast
import inspect
import json
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import torch
from torch import nn

import zoo
from conftest import ROOT, pip_install, plugin_env, run_zoo, zoo_json
from zoo.build.compose import compose
from zoo.errors import RegistryError, ZooError


# ---- components that only honour the documented interfaces ---------------------------------

def _pixels_only_encoder(pretrained=False, weights=None, assets_dir=None, dim=16):
    """An image encoder whose preprocess returns only pixel_values, with feature maps."""
    import numpy as np

    from zoo.plugin import Encoder, EncoderOutput

    class Tiny(Encoder):
        modality = "image"
        outputs = ("pooled", "features")
        feature_channels, feature_strides = (8, dim), (4, 8)

        def __init__(self):
            super().__init__()
            self.dim = dim
            self.a = nn.Conv2d(3, 8, 3, 4, 1)
            self.b = nn.Conv2d(8, dim, 3, 2, 1)

        def preprocess(self, values):
            from PIL import Image

            images = [Image.open(v) if isinstance(v, str) else v for v in values]
            arrays = [np.asarray(v.convert("RGB").resize((32, 32)), dtype=np.float32) / 255
                      for v in images]
            return {"pixel_values": torch.tensor(np.stack(arrays)).permute(0, 3, 1, 2)}

        def forward(self, pixel_values):
            f1 = torch.relu(self.a(pixel_values))  # (B, 8, 8, 8)
            f2 = torch.relu(self.b(f1))  # (B, dim, 4, 4)
            return EncoderOutput(pooled=f2.mean((2, 3)), features=[f1, f2], strides=(4, 8))

    return Tiny()


class PlainSum(nn.Module):
    """A fusion from the docs: a plain module, out_dim, no config()."""

    def __init__(self, inputs, dim=8):
        super().__init__()
        self.proj = nn.ModuleDict({m: nn.Linear(s["dim"], dim) for m, s in inputs.items()})
        self.out_dim = dim

    def forward(self, encoded, batch_size):
        out = torch.zeros(batch_size, self.out_dim)
        for m, (enc, index) in encoded.items():
            out = out.index_add(0, index, self.proj[m](enc.pooled))
        return out


class ThirdParty:
    @zoo.hookimpl
    def register_encoders(register):
        register("pix-only", _pixels_only_encoder, modality="image",
                 outputs=("pooled", "features"), dim=16)
        register("wrong-dim", _pixels_only_encoder, modality="image", outputs=("pooled",),
                 dim=99)

    @zoo.hookimpl
    def register_fusions(register):
        register("plain-sum", PlainSum, accepts=("pooled",), defaults={"dim": 8})

    @zoo.hookimpl
    def register_models(register):
        register("pix-clf", {"task": "classification", "encoders": {"image": "pix-only"},
                             "fusion": "plain-sum",
                             "head": {"name": "classification", "labels": ["a", "b"]}})
        register("needs-missing", {"task": "classification",
                                   "encoders": {"text": "no-such-encoder"},
                                   "fusion": "plain-sum", "head": "classification"})


def _images(n):
    from PIL import Image

    g = torch.Generator().manual_seed(0)
    return [Image.fromarray((torch.rand(40, 48, 3, generator=g) * 255).byte().numpy())
            for _ in range(n)]


def test_an_encoder_giving_only_pixel_values_trains_with_the_feature_cache(register_plugin,
                                                                           tmp_path):
    register_plugin(ThirdParty, "thirdparty")
    data = [{"image": im, "label": "ab"[i % 2]} for i, im in enumerate(_images(8))]
    summary = zoo.train("pix-clf", data, data, tmp_path / "clf", epochs=2, batch_size=4,
                        freeze="all", progress=False)
    assert summary["feature_cache"] is True
    # the figure measured on cached features is the saved model's on the raw images
    assert zoo.evaluate(tmp_path / "clf", data)["accuracy"] == summary["best"]["accuracy"]
    # detection on the same encoder, from a JSONL manifest with boxes + labels: no
    # image_sizes given, so boxes map through the input size
    lines = []
    for i, im in enumerate(_images(4)):
        im.save(tmp_path / f"{i}.png")
        lines.append(json.dumps({"image": f"{i}.png", "boxes": [[4.0, 4.0, 30.0, 28.0]],
                                 "labels": ["x" if i % 2 else "y"]}))
    (tmp_path / "det.jsonl").write_text("\n".join(lines) + "\n")
    det = compose("detection", {"image": "pix-only"},
                  head={"name": "detection", "dim": 8, "labels": ["?"]})
    summary = zoo.train(det, tmp_path / "det.jsonl", tmp_path / "det.jsonl", tmp_path / "det",
                        epochs=1, batch_size=2, freeze="all", progress=False)
    assert summary["feature_cache"] is True
    trained = zoo.load(tmp_path / "det")
    assert trained.labels == ["x", "y"]  # the manifest's labels reached the head
    pred = trained.predict([{"image": str(tmp_path / "0.png")}])[0]
    assert set(pred) == {"boxes", "labels", "scores"}
    assert all(0 <= b[2] <= 48 and 0 <= b[3] <= 40 for b in pred["boxes"])  # original pixels


def test_a_fusion_without_config_is_captured_and_round_trips(register_plugin, tmp_path):
    register_plugin(ThirdParty, "thirdparty")
    model = zoo.create_model("pix-clf")
    config = model.config
    assert config["fusion"]["kwargs"] == {"dim": 8}
    assert config["fusion"]["distribution"] == "dist-test"
    back = zoo.load(model.save_pretrained(tmp_path / "m"))
    x = [{"image": _images(1)[0]}]
    assert back.predict(x) == model.predict(x)
    with pytest.raises(RegistryError, match=r"fusion.*dim"):
        compose("classification", {"image": "pix-only"},
                    head={"name": "classification", "labels": ["a"]},
                    fusion={"name": "plain-sum", "dim": {1, 2}})


class _Widened(PlainSum):
    """Release 2 of plain-sum: a new argument ``extra`` (extra output width), whose factory
    default (0) keeps release 1's behaviour."""

    def __init__(self, inputs, dim=8, extra=0):
        super().__init__(inputs, dim + extra)


class ThirdPartyV2:
    @zoo.hookimpl
    def register_encoders(register):
        register("pix-only", _pixels_only_encoder, modality="image",
                 outputs=("pooled", "features"), dim=16)

    @zoo.hookimpl
    def register_fusions(register):  # the new argument's registered default differs
        register("plain-sum", _Widened, accepts=("pooled",), defaults={"dim": 8, "extra": 4})


def test_a_default_registered_after_the_save_reaches_new_models_only(register_plugin,
                                                                     tmp_path):
    """A saved model is rebuilt from its saved kwargs alone: a registered default a later
    plugin release adds (with a factory default keeping the old behaviour) does not change
    it, while a new model gets it."""
    import zoo.registry

    register_plugin(ThirdParty, "thirdparty")
    model = zoo.create_model("pix-clf")
    model.save_pretrained(tmp_path / "m")
    x = [{"image": _images(1)[0]}]
    zoo.registry.reset()
    register_plugin(ThirdPartyV2, "thirdparty", version="2.0")
    with pytest.warns(UserWarning, match="2.0"):  # another plugin version than the save's
        back = zoo.load(tmp_path / "m")
    assert back.fusion.out_dim == 8 and back.config["fusion"]["kwargs"] == {"dim": 8}
    assert back.predict(x) == model.predict(x)
    fresh = compose("classification", {"image": "pix-only"}, fusion="plain-sum",
                    head={"name": "classification", "labels": ["a", "b"]})
    assert fresh.fusion.out_dim == 12 and fresh.config["fusion"]["kwargs"]["extra"] == 4


def test_a_registered_dim_that_disagrees_with_the_built_encoder_is_refused(register_plugin):
    register_plugin(ThirdParty, "thirdparty")
    with pytest.raises(RegistryError, match=r"wrong-dim.*thirdparty.*dim=99.*dim 16"):
        zoo.create_model("wrong-dim")


def test_a_model_with_a_missing_component_is_skipped_alone(register_plugin):
    register_plugin(ThirdParty, "thirdparty")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        names = zoo.list_models(kind=None)
    assert {"pix-only", "plain-sum", "pix-clf"} <= set(names)  # the rest of the plugin stays
    assert "needs-missing" not in names
    msg = " ".join(str(w.message) for w in caught)
    assert "needs-missing" in msg and "no-such-encoder" in msg
    with pytest.raises(ZooError, match="no-such-encoder"):
        zoo.create_model("needs-missing")


# ---- names, clashes and switches -----------------------------------------------------------

@pytest.mark.slow
def test_a_name_clash_stays_local(installed_test_plugins, tmp_path):
    base = plugin_env(installed_test_plugins, "zoo-plugin-example")
    both = plugin_env(installed_test_plugins, "zoo-plugin-example", "zoo-plugin-dup")
    before = {r["name"] for r in zoo_json("list", "--json", env=base)}
    after = {r["name"] for r in zoo_json("list", "--json", env=both)}
    bare = {n.split(":")[-1] for n in after}
    assert before <= bare, before - bare  # every model and component is still listed
    assert {"dup:bert-tiny", "text_hf:bert-tiny", "dup:gated", "zoo.fusions:gated",
            "dup:effnet-lite0-image-clf", "registry:effnet-lite0-image-clf"} <= after
    # the shipped models still build with the first-party components they were written for
    proc = run_zoo("create", "minilm-effnet-clf", "--no-pretrained", "--out",
                   str(tmp_path / "m"), env=both)
    assert proc.returncode == 0, proc.stderr
    cfg = json.loads((tmp_path / "m" / "config.json").read_text())
    assert cfg["fusion"]["distribution"] == "zoo-mm"  # gated from zoo, not from the clash
    out = run_zoo("predict", str(tmp_path / "m"), "a cat", env=both)
    assert out.returncode == 0 and '"label"' in out.stdout, out.stderr
    err = run_zoo("info", "gated", env=both)
    assert err.returncode == 1 and "ambiguous" in err.stderr and "dup:gated" in err.stderr


def test_unknown_names_suggest_other_names_never_the_same_one():
    reg = zoo.registry.get_registry()
    with pytest.raises(ZooError) as e:
        reg.lookup("encoder", "nosuch:bert-tiny")
    assert "did you mean text_hf:bert-tiny" in str(e.value)
    with pytest.raises(ZooError) as e:
        zoo.model_info("bert-tni")
    assert "did you mean bert-tiny" in str(e.value)
    with pytest.raises(ZooError) as e:
        reg.lookup("fusion", "bert-tiny")  # exists, but as an encoder
    assert "did you mean bert-tiny" not in str(e.value)


def test_strict_errors_say_strict_and_zoo_plugins_still_reports(installed_test_plugins):
    env = plugin_env(installed_test_plugins, "zoo-plugin-broken", ZOO_STRICT_PLUGINS="1")
    proc = run_zoo("list", env=env)
    assert proc.returncode == 1 and "it is skipped" not in proc.stderr
    assert "ZOO_STRICT_PLUGINS=1 makes this an error" in proc.stderr
    rows = {r["name"]: r for r in zoo_json("plugins", "--json", env=env)}  # exits 0
    assert "ImportError" in rows["broken"]["error"]


def test_an_unknown_name_in_zoo_plugins_is_reported():
    proc = run_zoo("list", "--kind", "fusion", env={"ZOO_PLUGINS": "text_hf,nosuch"})
    assert proc.returncode == 0 and "'nosuch'" in proc.stderr and "ZOO_PLUGINS" in proc.stderr
    strict = run_zoo("list", env={"ZOO_PLUGINS": "nosuch", "ZOO_STRICT_PLUGINS": "1"})
    assert strict.returncode == 1 and "'nosuch'" in strict.stderr


def test_weights_are_listed_with_their_licence_and_sources():
    rows = {r["name"]: r for r in zoo_json("list", "--kind", "weights", "--json")}
    lite0 = rows["efficientnet-lite0.in1k"]
    assert lite0["license"] == "apache-2.0" and lite0["source"] == "zoo-vision-timm"
    assert lite0["sources"][0].startswith("pip:") and len(lite0["sha256"]) == 64


def test_loading_with_another_plugin_version_warns_once(tmp_path):
    d = zoo.create_model("tiny-text-image-clf").save_pretrained(tmp_path / "m")
    cfg = json.loads((d / "config.json").read_text())
    cfg["encoders"]["text"]["version"] = "0.0.1"
    (d / "config.json").write_text(json.dumps(cfg))
    with pytest.warns(UserWarning, match=r"saved with zoo-text-hf 0.0.1; 0.1.0 is installed"):
        zoo.load(d)


# ---- a new task with no core change --------------------------------------------------------

def _regression_data(tmp_path):
    import random

    rng = random.Random(0)
    words = ["a", "to", "cat", "fish", "house", "garden", "elephant", "zoo"]
    rows = []
    for _ in range(60):
        text = " ".join(rng.choice(words) for _ in range(rng.randint(2, 8)))
        rows.append({"text": text, "target": sum(len(w) for w in text.split()) / 4})
    paths = {}
    for name, part in (("train", rows[:45]), ("val", rows[45:])):
        paths[name] = tmp_path / f"{name}.jsonl"
        paths[name].write_text("".join(json.dumps(r) + "\n" for r in part))
    return paths


def test_a_plugin_task_trains_evaluates_saves_serves_and_cards(installed_test_plugins,
                                                               tmp_path, monkeypatch):
    env = plugin_env(installed_test_plugins, "zoo-plugin-regression")
    data = _regression_data(tmp_path)
    out = tmp_path / "run"
    proc = run_zoo("train", "length-regressor", "--train", str(data["train"]), "--eval",
                   str(data["val"]), "--out", str(out), "--epochs", "30", "--lr", "3e-2",
                   "--quiet", env=env)
    assert proc.returncode == 0, proc.stderr
    best = json.loads(proc.stdout)["best"]
    mean = sum(json.loads(x)["target"] for x in data["train"].read_text().splitlines()) / 45
    val = [json.loads(x)["target"] for x in data["val"].read_text().splitlines()]
    baseline = sum(abs(y - mean) for y in val) / len(val)  # predicting the training mean
    assert best["mae"] < 0.8 * baseline and best["r2"] > 0.2, (best, baseline)
    ev = zoo_json("eval", str(out), "--data", str(data["val"]), "--json", env=env)
    assert ev["mae"] == pytest.approx(best["mae"], abs=1e-6)
    card = (out / "README.md").read_text()
    assert "| MAE |" in card and "Outputs: `value`" in card and "training_curves.png" in card
    assert "pipeline_tag" not in card.split("---")[1]  # no tag fits: none is written
    # in this process: load, predict, serve
    monkeypatch.syspath_prepend(str(installed_test_plugins / "zoo-plugin-regression"))
    zoo.registry.reset()
    model = zoo.load(out)
    assert model.task == "regression" and set(model.predict([{"text": "a cat"}])[0]) == {"value"}
    import httpx

    from zoo.serve.uvicorn import run_in_thread
    from zoo.serve.app import create_app

    with run_in_thread(create_app(model, feedback_db=tmp_path / "f.db")) as srv:
        r = httpx.post(f"{srv.url}/predict", json={"inputs": [{"text": "a garden"}]},
                       timeout=30)
    assert r.status_code == 200
    assert r.json()["outputs"][0]["value"] == pytest.approx(
        model.predict([{"text": "a garden"}])[0]["value"], rel=1e-5)


# ---- the checker and the scaffold ----------------------------------------------------------

def test_zoo_plugins_check_passes_a_good_plugin_and_fails_a_bad_one(installed_test_plugins):
    env = plugin_env(installed_test_plugins, "zoo-plugin-example", "zoo-plugin-regression",
                     "zoo-plugin-broken")
    ok = run_zoo("plugins", "check", "regression", env=env)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "FAIL" not in ok.stdout and "feature cache + training step" in ok.stdout
    assert "registration is light" in ok.stdout and "task regression" in ok.stdout
    bad = run_zoo("plugins", "check", "broken", env=env)
    assert bad.returncode == 1 and "FAIL" in bad.stdout and "ImportError" in bad.stdout
    missing = run_zoo("plugins", "check", "nosuch", env=env)
    assert missing.returncode == 1 and "no installed plugin" in missing.stderr


@pytest.mark.parametrize("kind,modality", [("encoder", "image"), ("fusion", "text")])
@pytest.mark.slow
def test_zoo_plugin_new_scaffolds_a_plugin_that_passes_its_checks(tmp_path, kind, modality):
    proc = run_zoo("plugin", "new", "zoo-acme", "--kind", kind, "--modality", modality,
                   "--out", str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    pkg = tmp_path / "zoo-acme"
    site = tmp_path / "site"
    pip_install(pkg, site)
    env = {"PYTHONPATH": str(site)}
    check = run_zoo("plugins", "check", "zoo-acme", env=env)
    assert check.returncode == 0, check.stdout + check.stderr
    assert " PASS " in check.stdout
    import os

    tests = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                            str(pkg / "tests")], capture_output=True, text=True, timeout=600,
                           env={**os.environ, **env}, cwd=pkg)
    assert tests.returncode == 0, tests.stdout[-2000:]


# ---- the public API and the shape of the code ----------------------------------------------

def _zoo_imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0 \
                and node.module.split(".")[0] == "zoo":
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.split(".")[0] == "zoo")
    return found


@pytest.mark.parametrize("path", sorted((ROOT / "plugins").glob("*/*/*.py")),
                         ids=lambda p: f"{p.parent.name}/{p.name}")
def test_built_in_plugins_use_only_the_public_plugin_api(path):
    assert _zoo_imports(path) <= {"zoo.plugin"}, _zoo_imports(path)


def test_every_public_name_of_zoo_plugin_is_documented():
    import zoo.plugin

    doc = (ROOT / "docs" / "plugins.md").read_text()
    missing = [n for n in zoo.plugin.__all__ if f"`{n}`" not in doc and f"{n}(" not in doc]
    assert not missing, f"docs/plugins.md does not document {missing}"
    for name in zoo.plugin.__all__:
        obj = getattr(zoo.plugin, name)
        if inspect.isclass(obj) or inspect.isfunction(obj):
            assert inspect.getdoc(obj), f"zoo.plugin.{name} has no docstring"


def test_modules_stay_small_and_train_reads_as_a_composition():
    big = {str(p.relative_to(ROOT)): n for p in (ROOT / "zoo").rglob("*.py")
           if (n := len(p.read_text().splitlines())) > 400}
    assert not big, big
    from zoo.training import train

    assert len(inspect.getsource(train).splitlines()) <= 60


@pytest.mark.parametrize("plugin", ["zoo-mm", "text_hf", "vision_timm", "speech_torchaudio"])
@pytest.mark.slow
def test_the_built_in_plugins_pass_zoo_plugins_check(plugin):
    proc = run_zoo("plugins", "check", plugin, "--json")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr
    rows = json.loads(proc.stdout)
    assert not [r for r in rows if r["status"] == "fail"]
    assert sum(r["status"] == "pass" for r in rows) >= 10


def test_captured_configs_keep_every_argument_of_every_kind(tmp_path):
    """A fusion argument may share a name with an encoder's framework argument (late
    fusion's ``weights``): it is stored and rebuilt, not dropped."""
    model = compose("classification", {"text": "bert-tiny", "image": "timm-tiny"},
                    head={"name": "classification", "labels": ["a", "b"]},
                    fusion={"name": "late", "dim": 8, "weights": "mean"})
    assert model.config["fusion"]["kwargs"]["weights"] == "mean"
    back = zoo.load(model.save_pretrained(tmp_path / "m"))
    assert back.fusion.weights == "mean" and back.config["fusion"]["kwargs"] == \
        model.config["fusion"]["kwargs"]


# ---- regressions found in review ------------------------------------------------------------

class Clash:
    @zoo.hookimpl
    def register_fusions(register):
        register("concat-mlp", PlainSum, accepts=("pooled",), defaults={"dim": 8})

    @zoo.hookimpl
    def register_encoders(register):
        register("wrong-dim", _pixels_only_encoder, modality="image", outputs=("pooled",),
                 dim=99)


def test_compose_builds_what_the_clash_resolution_chose(register_plugin):
    register_plugin(Clash, "clash", dist="zoo-clash")
    m = compose("classification", {"text": "bert-tiny"}, head={"name": "classification",
                                                               "labels": ["a"]},
                fusion="concat-mlp")
    assert m.config["fusion"]["distribution"] == "zoo-mm"
    with pytest.raises(ZooError, match="ambiguous"):
        zoo.model_info("concat-mlp")


def test_a_head_that_reads_encoder_outputs_refuses_a_fusion():
    with pytest.raises(RegistryError, match="reads encoder outputs"):
        compose("classification", {"image": "timm-tiny"}, head="image-classifier",
                fusion="concat-mlp")


def test_the_checker_fails_a_component_that_is_not_what_was_registered(register_plugin):
    from zoo.plugincheck import check_plugin

    register_plugin(Clash, "clash", dist="zoo-clash")
    rows = [r for r in check_plugin("clash") if r.subject == "encoder wrong-dim"]
    assert rows[0].status == "fail" and "dim=99" in rows[0].detail


class Scored:
    """A task that keeps the default metric: the best epoch is the lowest eval loss."""

    @zoo.hookimpl
    def register_tasks(register):
        register("score", "test_plugin_contract:_ScoreTask", targets=("target",))

    @zoo.hookimpl
    def register_heads(register):
        register("score", "test_plugin_contract:_ScoreHead", tasks=("score",))


def _score_task():
    from zoo.plugin import Task

    class ScoreTask(Task):
        def metrics(self, model, examples, predictions, categories=None):
            return {"n_scored": float(len(predictions))}
    return ScoreTask()


def _score_head(in_dim):
    from zoo.plugin import Head

    class ScoreHead(Head):
        def __init__(self):
            super().__init__()
            self.proj = nn.Linear(in_dim, 1)

        def forward(self, fused):
            return self.proj(fused)

        def encode_targets(self, targets, batch=None):
            return torch.tensor([[float(t["target"])] for t in targets])

        def loss(self, outputs, targets):
            return torch.nn.functional.mse_loss(outputs, targets)

        def decode(self, outputs, batch=None):
            return [{"value": float(v)} for v in outputs[:, 0]]
    return ScoreHead()


_ScoreTask, _ScoreHead = _score_task, _score_head


def test_a_task_with_the_default_metric_picks_epochs_by_eval_loss(register_plugin, tmp_path):
    register_plugin(Scored, "scored")
    data = [{"text": w, "target": len(w)} for w in ("a", "to", "cat", "fish", "house")]
    m = compose("score", {"text": "bert-tiny"}, head="score", fusion="concat-mlp")
    summary = zoo.train(m, data, data, tmp_path / "s", epochs=4, progress=False)
    epochs = [json.loads(x) for x in (tmp_path / "s" / "metrics.jsonl").read_text().splitlines()
              if '"eval"' in x]
    losses = [r["eval"]["loss"] for r in epochs]
    assert len(losses) == 4 and summary["best"]["n_scored"] == 5
    # the best epoch is the one with the lowest mean eval loss, not the last one
    assert summary["best"]["loss"] == min(losses)
    assert summary["best_epoch"] == losses.index(min(losses)) + 1


def test_malformed_config_kwargs_fail_with_one_line(tmp_path):
    from zoo.errors import LoadError

    d = zoo.create_model("tiny-text-image-clf").save_pretrained(tmp_path / "m")
    cfg = json.loads((d / "config.json").read_text())
    for key, value in (("fusion", "ab"), ("head", [1, 2])):
        bad = json.loads(json.dumps(cfg))
        bad[key]["kwargs"] = value
        (d / "config.json").write_text(json.dumps(bad))
        with pytest.raises(LoadError, match=f"{key}.kwargs must be an object"):
            zoo.load(d)
    bad = {**cfg, "task_provider": ["x"]}
    (d / "config.json").write_text(json.dumps(bad))
    with pytest.raises(LoadError, match="task_provider"):
        zoo.load(d)


def test_small_contract_edges(tmp_path):
    # an encoder-only model has no task metrics: one clear error
    with pytest.raises(ZooError, match="encoder-only"):
        zoo.evaluate(zoo.create_model("bert-tiny"), [{"text": "a", "label": "x"}])
    # a ready model given new labels drops the pretrained head instead of failing to load it
    m = zoo.create_model("mobilenetv2-imagenet", pretrained=True, labels=["a", "b"])
    assert m.labels == ["a", "b"] and m.config["head"]["weights"] is None
    # rebuilding the registry starts from the plugins' imports, not from the last build
    first = dict(zoo.registry.manager.info_for("zoo.tasks").registered)
    zoo.registry.reset()
    zoo.registry.get_registry()
    assert zoo.registry.manager.info_for("zoo.tasks").registered == first
    # a scaffold name that would make a broken package is refused
    proc = run_zoo("plugin", "new", "zoo-2d", "--out", str(tmp_path))
    assert proc.returncode == 1 and proc.stderr.count("\n") == 1 and "letter" in proc.stderr
