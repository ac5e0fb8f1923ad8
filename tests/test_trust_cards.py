"""What a model says about itself is true: recorded evaluations name their data and
replace only their own entry, one-class data stops training, and the card carries what was
measured and nothing local."""
from __future__ import annotations

import hashlib
import json

import pytest
import torch

import zoo
from zoo.build.compose import compose
from zoo.errors import DataError

LABELS = ["apple", "banana", "lemon", "pear"]


def _rows(n, offset=0):
    return [{"text": f"a {LABELS[i % 4]} number {i + offset}", "label": LABELS[i % 4]}
            for i in range(n)]


def _write(rows, path):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _model():
    torch.manual_seed(0)
    return compose("classification", {"text": "bert-tiny"},
                   head={"name": "classification", "labels": LABELS},
                   fusion={"name": "concat-mlp", "dim": 16})


def _digest(folder):
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    d = tmp_path_factory.mktemp("trust")
    zoo.train(_model(), _write(_rows(24), d / "train.jsonl"),
              _write(_rows(12, 100), d / "val.jsonl"), d / "m", epochs=1, freeze="all",
              finetune_epochs=0, progress=False)
    return d


def test_one_class_training_data_is_an_error_unless_forced(tmp_path):
    one = [{"text": f"an apple {i}", "label": "apple"} for i in range(8)]
    with pytest.raises(DataError, match="one class only.*--force"):
        zoo.train(_model(), one, None, tmp_path / "a", epochs=1, progress=False)
    assert not (tmp_path / "a" / "config.json").exists()
    with pytest.warns(UserWarning, match="one class only"):
        zoo.train(_model(), one, None, tmp_path / "b", epochs=1, progress=False, force=True)
    assert zoo.load(tmp_path / "b").labels == ["apple"]


def test_a_recorded_eval_replaces_only_its_own_entry(trained, tmp_path):
    import shutil

    m = tmp_path / "m"
    shutil.copytree(trained / "m", m)
    first = json.loads((m / "eval_results.json").read_text())
    before = _digest(m)
    other = _write(_rows(8, 500), tmp_path / "other.jsonl")
    zoo.evaluate(m, other)  # read-only
    assert _digest(m) == before
    zoo.evaluate(m, other, record=True)
    rec = json.loads((m / "eval_results.json").read_text())
    # the training's entry stands; the other data set has its own, named and hashed
    assert {k: rec[k] for k in first} == first
    assert [o["dataset"] for o in rec["others"]] == ["other"]
    assert rec["others"][0]["data_sha256"] == hashlib.sha256(other.read_bytes()).hexdigest()
    assert rec["others"][0]["metrics"]["n"] == 8
    # recording the same data again replaces that entry, not the training's
    _write(_rows(6, 700), other)
    zoo.evaluate(m, other, record=True)
    rec2 = json.loads((m / "eval_results.json").read_text())
    assert {k: rec2[k] for k in first} == first and len(rec2["others"]) == 2  # new content
    zoo.evaluate(m, other, record=True)
    assert len(json.loads((m / "eval_results.json").read_text())["others"]) == 2
    # recording the training's own eval file replaces the training's entry (epoch kept)
    zoo.evaluate(m, trained / "val.jsonl", record=True)
    rec3 = json.loads((m / "eval_results.json").read_text())
    assert rec3["epoch"] == first["epoch"] and rec3["decoding"] is None
    assert len(rec3["others"]) == 2
    from huggingface_hub import ModelCard

    card = ModelCard((m / "README.md").read_text())
    datasets = {r.dataset_name for r in card.data.eval_results}
    assert datasets == {"val", "other"}
    assert "Also measured with `zoo eval --record`" in card.text


HUB_KEYS = {"library_name", "tags", "pipeline_tag", "license", "license_name", "license_link",
            "base_model", "datasets", "language", "model-index", "model_name", "metrics",
            "thumbnail", "inference", "widget"}


def test_the_card_describes_the_model_trained_and_nothing_local(tmp_path):
    """The registry entry's words ("sentiment labels by default") give way to what was
    trained; the detected language is declared; no local path is published."""
    import yaml
    from huggingface_hub import ModelCard

    german = ["Der Hund schläft im Garten unter dem Baum", "Die Katze trinkt Milch in der Küche",
              "Wir fahren morgen mit dem Zug nach Berlin", "Das Wetter ist heute sehr schön"]
    rows = [{"text": f"{german[i % 4]} und {i}", "label": ["tier", "tier", "reise", "wetter"][i % 4]}
            for i in range(24)]
    model = _model()
    model.config["description"] = "Text classifier (sentiment labels by default)."
    d = tmp_path / "deep" / "folder"
    d.mkdir(parents=True)
    train = _write(rows, d / "de_train.jsonl")
    zoo.train(model, train, train, tmp_path / "m", epochs=1, freeze="all", finetune_epochs=0,
              progress=False)
    m = tmp_path / "m"
    text = (m / "README.md").read_text()
    card = ModelCard(text)
    assert "sentiment" not in text
    assert "de\\_train.jsonl (24 examples); 3 labels: reise, tier, wetter" in card.text
    assert card.data.language == "de"
    assert set(yaml.safe_load(text.split("---")[1])) <= HUB_KEYS
    assert [r.dataset_name for r in card.data.eval_results][0] == "de_train"
    for f in ("README.md", "training.json", "eval_results.json", "config.json"):
        assert str(tmp_path) not in (m / f).read_text(), f


def test_push_changes_no_local_file(trained, hub):
    from conftest import run_zoo

    before = _digest(trained / "m")
    run_zoo("push", str(trained / "m"), "zoo-tests/trust", env=hub.env, check=True)
    zoo.load(trained / "m").push_to_hub("zoo-tests/trust", revision="api")
    assert _digest(trained / "m") == before
