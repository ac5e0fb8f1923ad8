"""registry.toml validation: one clear error naming the model and the key."""
from __future__ import annotations

import pytest

import zoo
from zoo.errors import RegistryError, UnknownNameError
from zoo.registry import Registry, get_registry, split_tag


def _check(tmp_path, text: str) -> str:
    path = tmp_path / "registry.toml"
    path.write_text(text)
    from zoo.registry.collect import load_file

    reg = get_registry()
    with pytest.raises(RegistryError) as e:
        load_file(reg, path, strict=False, expected_missing=None, shipped=False)
    msg = str(e.value)
    assert "\n" not in msg
    return msg


GOOD = """
[models.my-model]
task = "classification"
encoders = { text = "bert-tiny" }
fusion = "concat-mlp"
head = { name = "classification", labels = ["a", "b"] }
"""


def test_a_good_file_loads_and_lists(tmp_path, monkeypatch):
    path = tmp_path / "extra.toml"
    path.write_text(GOOD)
    monkeypatch.setenv("ZOO_REGISTRY", str(path))
    assert "my-model" in zoo.list_models("my-*")
    assert zoo.model_info("my-model")["source"] == str(path)  # the file it came from


@pytest.mark.parametrize("text,expected", [
    (GOOD.replace('"bert-tiny"', '"bert-tinny"'),
     ["model 'my-model'", "encoders.text", "unknown encoder 'bert-tinny'", "bert-tiny"]),
    (GOOD.replace('fusion = "concat-mlp"', 'fusion = "concat"'),
     ["model 'my-model'", "'fusion'", "unknown fusion 'concat'"]),
    (GOOD.replace('task = "classification"', 'task = 3'),
     ["model 'my-model'", "'task'", "expected a string"]),
    (GOOD.replace('task = "classification"', 'task = "regression"'),
     ["model 'my-model'", "'task'", "unknown task 'regression'"]),
    (GOOD.replace('task = "classification"\n', ''), ["model 'my-model'", "missing key 'task'"]),
    (GOOD.replace('fusion = "concat-mlp"\n', ''), ["model 'my-model'", "missing key 'fusion'"]),
    (GOOD.replace('head = {', 'heads = {'), ["model 'my-model'", "unknown key 'heads'"]),
    (GOOD.replace('{ text = "bert-tiny" }', '{ text = "timm-tiny" }'),
     ["model 'my-model'", "encoders.text", "is a image encoder, not text"]),
    (GOOD.replace('{ text = "bert-tiny" }', '{ smell = "bert-tiny" }'),
     ["model 'my-model'", "encoders.smell", "unknown modality"]),
    (GOOD.replace('{ text = "bert-tiny" }', '{ text = 7 }'),
     ["model 'my-model'", "encoders.text", "expected a component name"]),
    (GOOD.replace('head = { name = "classification", labels = ["a", "b"] }',
                  'head = { labels = ["a"] }'), ["model 'my-model'", "'head'", "missing key 'name'"]),
    (GOOD.replace('[models.my-model]', '[models.My_Model]'), ["'My_Model'", "lower-case"]),
    (GOOD + "\n[extras]\nx = 1\n", ["unknown top-level table 'extras'"]),
    ("[models.x\n", ["not valid TOML"]),
    (GOOD.replace('labels = ["a", "b"]', 'labels = ["a", 1979-05-27]'),
     ["model 'my-model'", "'head'", "cannot be stored in config.json"]),
])
def test_malformed_entries_give_one_clear_error(tmp_path, text, expected):
    msg = _check(tmp_path, text)
    for part in expected:
        assert part in msg, msg


def test_a_fusion_that_cannot_take_an_encoders_output_is_refused(tmp_path):
    import zoo.registry.manager as plugins

    class SeqOnly:
        @zoo.hookimpl
        def register_fusions(register):
            register("seq-attn", "zoo.fusions.concat:ConcatMLP", accepts=("sequence",))

    pm = plugins.get_plugin_manager()
    pm.register(SeqOnly, name="seqonly")
    plugins._infos["seqonly"] = plugins.PluginInfo("seqonly", "seqonly-dist", "1")
    msg = _check(tmp_path, GOOD.replace('{ text = "bert-tiny" }', '{ image = "timm-tiny" }')
                 .replace('fusion = "concat-mlp"', 'fusion = "seq-attn"'))
    assert "model 'my-model'" in msg and "'fusion'" in msg
    assert "takes sequence outputs" in msg and "'timm-tiny' (image) gives pooled/features" in msg


def test_the_shipped_registry_is_valid():
    reg = Registry()
    reg.__dict__.update(get_registry().__dict__)
    assert len(zoo.list_models()) >= 5


def test_lookup_errors_suggest_close_names():
    with pytest.raises(UnknownNameError, match="did you mean minilm-l6"):
        zoo.model_info("minilm-l7")


def test_wildcards_and_filters():
    assert zoo.list_models("tiny*clf*", task="classification", modality="audio") == \
        ["tiny-audio-text-clf"]
    assert set(zoo.list_models(kind="fusion")) >= {"concat-mlp", "gated"}
    assert "minilm-l6" in zoo.list_models("minilm", kind="encoder", pretrained=True)
    assert split_tag("efficientnet-lite0.in1k") == ("efficientnet-lite0", "in1k")
