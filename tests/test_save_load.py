"""Loading is safe: only JSON and safetensors, checksums checked, clear errors."""
from __future__ import annotations

import json

import pytest

import zoo
from zoo.errors import LoadError


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    import zoo.registry.manager

    zoo.registry.reset()
    d = tmp_path_factory.mktemp("model")
    zoo.create_model("tiny-text-image-clf").save_pretrained(d)
    return d


def _copy(saved, tmp_path):
    import shutil

    dst = tmp_path / "m"
    shutil.copytree(saved, dst)
    return dst


def test_saved_folder_layout(saved):
    names = {p.relative_to(saved).as_posix() for p in saved.rglob("*") if p.is_file()}
    assert {"config.json", "model.safetensors", "preprocessor/text/tokenizer.json",
            "preprocessor/text/preprocessing.json",
            "preprocessor/image/preprocessing.json"} <= names
    image_cfg = json.loads((saved / "preprocessor/image/preprocessing.json").read_text())
    assert image_cfg["input_size"] == [3, 64, 64] and "mean" in image_cfg
    assert not any(n.endswith((".bin", ".pt", ".pth", ".pkl")) for n in names)


def test_a_component_no_plugin_provides_names_the_distribution(saved, tmp_path):
    d = _copy(saved, tmp_path)
    cfg = json.loads((d / "config.json").read_text())
    cfg["encoders"]["text"].update(name="fancy-bert", distribution="zoo-text-fancy",
                                   version="2.0")
    (d / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(LoadError, match=r"zoo-text-fancy 2.0.*pip install zoo-text-fancy"):
        zoo.load(d)


def test_tampered_weights_are_refused(saved, tmp_path):
    d = _copy(saved, tmp_path)
    data = bytearray((d / "model.safetensors").read_bytes())
    data[-1] ^= 0xFF
    (d / "model.safetensors").write_bytes(bytes(data))
    with pytest.raises(LoadError, match="does not match the sha256"):
        zoo.load(d)


@pytest.mark.parametrize("name", ["../evil.safetensors", "model.bin", "sub/model.safetensors"])
def test_weight_files_outside_the_contract_are_refused(saved, tmp_path, name):
    d = _copy(saved, tmp_path)
    cfg = json.loads((d / "config.json").read_text())
    cfg["weights"] = {name: "0" * 64}
    (d / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(LoadError, match="only model\\*.safetensors"):
        zoo.load(d)


def test_malformed_and_missing_configs(saved, tmp_path):
    with pytest.raises(LoadError, match="not a zoo model folder"):
        zoo.load(tmp_path)
    d = _copy(saved, tmp_path)
    (d / "config.json").write_text("{not json")
    with pytest.raises(LoadError, match="not valid JSON"):
        zoo.load(d)
    (d / "config.json").write_text(json.dumps({"zoo_format": 99}))
    with pytest.raises(LoadError, match="zoo_format 99"):
        zoo.load(d)
    with pytest.raises(LoadError, match="no model folder"):
        zoo.load("./does/not/exist")


def test_resaving_replaces_old_shards_and_keeps_predictions(saved, tmp_path):
    m = zoo.load(saved)
    d = tmp_path / "again"
    m.save_pretrained(d, max_shard_size="1MB")
    shards = sorted(p.name for p in d.glob("*.safetensors"))
    assert len(shards) > 1 and (d / "model.safetensors.index.json").is_file()
    x = [{"text": "sharded weights load the same"}]
    assert zoo.load(d).predict(x) == m.predict(x)
    m.save_pretrained(d)  # unsharded again: the old shards must go
    assert sorted(p.name for p in d.glob("*.safetensors")) == ["model.safetensors"]
    assert zoo.load(d).predict(x) == m.predict(x)


def test_preprocessing_that_disagrees_with_the_config_is_refused(saved, tmp_path):
    d = _copy(saved, tmp_path)
    path = d / "preprocessor/image/preprocessing.json"
    cfg = json.loads(path.read_text())
    cfg["mean"] = [0.0, 0.0, 0.0]
    path.write_text(json.dumps(cfg))
    with pytest.raises(LoadError, match="preprocessor/image/preprocessing.json: mean"):
        zoo.load(d)
