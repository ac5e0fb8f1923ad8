"""Discovery through real installed entry points, isolation of broken plugins, switches."""
from __future__ import annotations

from conftest import plugin_env, run_zoo, zoo_json


def test_the_three_plugin_distributions_are_discovered():
    rows = zoo_json("plugins", "--json")
    dists = {r["distribution"]: r for r in rows}
    for dist in ("zoo-text-hf", "zoo-vision-timm", "zoo-speech-torchaudio"):
        assert dist in dists, rows
        assert dists[dist]["error"] is None
        assert dists[dist]["registered"]["encoder"]
    assert "minilm-l6" in dists["zoo-text-hf"]["registered"]["encoder"]
    # the core's fusions and heads arrive through the same hooks
    assert dists["zoo-mm"]["builtin"] is True


def test_an_installed_plugin_registers_encoders_models_and_commands(installed_test_plugins):
    env = plugin_env(installed_test_plugins, "zoo-plugin-example")
    rows = zoo_json("plugins", "--json", env=env)
    ex = next(r for r in rows if r["name"] == "example")
    assert ex["distribution"] == "zoo-plugin-example" and ex["version"] == "0.0.1"
    assert ex["registered"] == {"encoder": ["char-counts"], "model": ["char-clf"]}
    listed = zoo_json("list", "char-c*", "--json", env=env)
    assert {r["name"]: r["source"] for r in listed} == {
        "char-clf": "zoo-plugin-example", "char-counts": "zoo-plugin-example"}
    out = run_zoo("predict", "char-clf", "abc", env=env, check=True)
    assert '"label"' in out.stdout
    assert run_zoo("hello-example", env=env, check=True).stdout.strip() == \
        "hello from zoo-plugin-example"


def test_a_plugin_that_fails_to_import_is_reported_and_nothing_else_stops(installed_test_plugins):
    env = plugin_env(installed_test_plugins, "zoo-plugin-broken", "zoo-plugin-example")
    proc = run_zoo("plugins", "--json", env=env)
    assert proc.returncode == 0
    import json

    rows = {r["name"]: r for r in json.loads(proc.stdout)}
    assert rows["broken"]["distribution"] == "zoo-plugin-broken"
    assert "ImportError" in rows["broken"]["error"]
    assert rows["example"]["error"] is None
    assert "plugin 'broken'" in proc.stderr and "zoo-plugin-broken" in proc.stderr
    listed = run_zoo("list", "--json", env=env)
    assert listed.returncode == 0 and "char-clf" in listed.stdout and "minilm-l6" in listed.stdout


def test_strict_mode_makes_a_broken_plugin_fatal(installed_test_plugins):
    env = plugin_env(installed_test_plugins, "zoo-plugin-broken", ZOO_STRICT_PLUGINS="1")
    proc = run_zoo("list", env=env)
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: plugin 'broken'")
    assert "zoo-plugin-broken" in lines[0]


def test_zoo_plugins_env_limits_what_loads(installed_test_plugins):
    env = plugin_env(installed_test_plugins, "zoo-plugin-example", ZOO_PLUGINS="text_hf,example")
    names = {r["name"] for r in zoo_json("plugins", "--json", env=env)}
    assert names == {"zoo.modalities", "zoo.tasks", "zoo.fusions", "zoo.heads",
                     "zoo.training.loggers", "text_hf",
                     "example"}
    listed = {r["name"] for r in zoo_json("list", "--json", env=env)}
    assert "minilm-l6" in listed and "char-clf" in listed
    assert "efficientnet-lite0" not in listed and "conformer-tiny" not in listed
    # a registry.toml model whose encoder's plugin is filtered out is hidden, not an error
    assert "minilm-text-clf" in listed and "tiny-text-image-clf" not in listed
    proc = run_zoo("create", "tiny-text-image-clf", "--out", "/tmp/never", env=env)
    assert proc.returncode == 1 and "ZOO_PLUGINS" in proc.stderr


def test_two_plugins_with_one_name_give_a_clear_error_never_an_overwrite(installed_test_plugins):
    env = plugin_env(installed_test_plugins, "zoo-plugin-example", "zoo-plugin-dup")
    proc = run_zoo("info", "bert-tiny", env=env)
    assert proc.returncode == 1
    msg = proc.stderr.strip()
    assert "ambiguous" in msg and "'dup'" in msg and "'text_hf'" in msg
    assert "zoo-plugin-dup" in msg and "zoo-text-hf" in msg
    # both stay reachable by their namespaced names
    a = zoo_json("info", "text_hf:bert-tiny", "--json", env=env)
    b = zoo_json("info", "dup:bert-tiny", "--json", env=env)
    assert a["source"] == "zoo-text-hf" and b["source"] == "zoo-plugin-dup"
    names = {r["name"] for r in zoo_json("list", "bert-tiny", "--json", env=env)}
    assert {"text_hf:bert-tiny", "dup:bert-tiny"} <= names
    strict = run_zoo("list", env={**env, "ZOO_STRICT_PLUGINS": "1"})
    assert strict.returncode == 1 and "registered by 2 plugins" in strict.stderr


def test_in_process_plugin_registration_and_a_hook_that_raises(monkeypatch):
    import warnings

    import zoo
    from zoo.registry import manager as plugins
    from zoo.registry import get_registry

    class Good:
        @zoo.hookimpl
        def register_fusions(register):
            register("sum-pool", "zoo.fusions.concat:ConcatMLP", accepts=("pooled",))

    class Bad:
        @zoo.hookimpl
        def register_fusions(register):
            register("half-done", "x:y", accepts=("pooled",))
            raise RuntimeError("boom")

    pm = plugins.get_plugin_manager()
    for name, mod in (("good", Good), ("bad", Bad)):
        pm.register(mod, name=name)
        plugins._infos[name] = plugins.PluginInfo(name, f"dist-{name}", "1.0")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        reg = get_registry()
    assert reg.has("fusion", "sum-pool")
    assert not reg.has("fusion", "half-done")  # rolled back, not half-registered
    assert "boom" in plugins.info_for("bad").error
    assert any("plugin 'bad'" in str(w.message) for w in caught)
