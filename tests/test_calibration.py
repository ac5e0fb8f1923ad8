"""Calibration: expected calibration error (checked against torchmetrics), reliability
diagrams, and ``zoo calibrate``'s temperature scaling, applied by predict and serve."""
from __future__ import annotations

import hashlib
import json
import random

import pytest
import torch
from click.testing import CliRunner

import zoo
from zoo.build.compose import compose
from zoo.cli import cli
from zoo.errors import DataError, ZooError
from zoo.metrics import calibration_error

from conftest import run_zoo

LABELS = ["apple", "banana", "lemon", "pear"]


def test_ece_is_torchmetrics_figure():
    from torchmetrics.functional.classification import multiclass_calibration_error

    g = torch.Generator().manual_seed(0)
    probs = torch.softmax(torch.randn(500, 4, generator=g) * 2, -1)
    target = torch.randint(0, 4, (500,), generator=g)
    conf, pred = probs.max(-1)
    ours = calibration_error(conf.tolist(), (pred == target).tolist())
    ref = multiclass_calibration_error(probs, target, num_classes=4, n_bins=15, norm="l1")
    assert ours == pytest.approx(float(ref), abs=1e-6)
    assert calibration_error([1.0, 1.0], [True, True]) == 0.0
    assert calibration_error([0.9] * 10, [True] * 5 + [False] * 5) == pytest.approx(0.4)


def _rows(n, seed, noise=0.3):
    """Four inputs, each labelled right ~78 % of the time: no model can be surer than that."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        fruit = LABELS[i % 4]
        label = fruit if rng.random() > noise else rng.choice(LABELS)
        rows.append({"text": f"a {fruit}",
                     "label": label})
    return rows


def _write(rows, path):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _digest(folder):
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def overconfident(tmp_path_factory):
    """A fruit classifier trained near the data's own odds (four inputs, noisy labels, no
    eval split: the last of 30 epochs), then made deliberately overconfident (logits x 10)."""
    d = tmp_path_factory.mktemp("cal")
    torch.manual_seed(0)
    model = compose("classification", {"text": "bert-tiny"},
                    head={"name": "classification", "labels": LABELS},
                    fusion={"name": "concat-mlp", "dim": 16})
    zoo.train(model, _rows(160, 0), None, d / "m", epochs=30, lr=3e-2, freeze="all",
              probe_init="random", finetune_epochs=0, progress=False)
    m = zoo.load(d / "m")
    with torch.no_grad():
        m.head.proj.weight *= 10
        m.head.proj.bias *= 10
    m.save_pretrained(d / "m")
    return d


def test_calibrate_lowers_ece_on_held_out_data(overconfident, tmp_path):
    d = overconfident
    val, test = _write(_rows(200, 2), tmp_path / "val.jsonl"), _write(_rows(400, 3),
                                                                      tmp_path / "test.jsonl")
    before = zoo.evaluate(d / "m", test)
    assert 0.4 < before["accuracy"] < 0.95 and before["ece"] > 0.15  # overconfident
    out = tmp_path / "cal"
    r = CliRunner().invoke(cli, ["calibrate", str(d / "m"), "--data", str(val), "--out",
                                 str(out), "--json"])
    assert r.exit_code == 0, r.output
    record = json.loads(r.output)
    assert record["temperature"] > 2  # it undoes much of the x10
    assert record["after"]["ece"] < record["before"]["ece"]
    assert record["after"]["accuracy"] == record["before"]["accuracy"]  # labels unchanged
    after = zoo.evaluate(out, test)  # the held-out split, never seen by the fit
    assert after["ece"] < before["ece"] / 2
    assert after["accuracy"] == before["accuracy"]
    saved = json.loads((out / "calibration.json").read_text())
    assert saved["temperature"] == record["temperature"] and saved["dataset"] == "val"
    assert json.loads((out / "config.json").read_text())["head"]["kwargs"][
        "temperature"] == pytest.approx(record["temperature"])
    assert (out / "calibration.png").stat().st_size > 5000
    card = (out / "README.md").read_text()
    assert "## Calibration" in card and f"{record['temperature']:.3f}" in card


def test_predict_and_serve_apply_the_temperature(overconfident, tmp_path):
    from starlette.testclient import TestClient

    from zoo.serve.app import create_app

    val = _write(_rows(60, 4), tmp_path / "val.jsonl")
    zoo.calibrate(overconfident / "m", val, out=tmp_path / "cal")
    raw, cal = zoo.load(overconfident / "m"), zoo.load(tmp_path / "cal")
    x = [{"text": "a ripe lemon no 7"}]
    p_raw, p_cal = raw.predict(x)[0], cal.predict(x)[0]
    t = cal.head.temperature
    with torch.no_grad():
        logits = raw(raw.preprocess(x))[0]
    assert p_cal["label"] == p_raw["label"]
    assert p_cal["score"] == pytest.approx(float((logits / t).softmax(-1).max()), abs=1e-5)
    assert p_cal["score"] < p_raw["score"]
    with TestClient(create_app(cal, feedback_db=tmp_path / "f.db"),
                    base_url="http://127.0.0.1") as c:
        served = c.post("/predict", json={"inputs": x}).json()
    first = served["outputs"][0]
    assert first["score"] == pytest.approx(p_cal["score"], abs=1e-5)


def test_calibrate_errors_say_what_to_do(overconfident, tmp_path):
    with pytest.raises(DataError, match="at least 10"):
        zoo.calibrate(overconfident / "m", _rows(5, 0), out=tmp_path / "x")
    with pytest.raises(ZooError, match="--out"):
        zoo.calibrate(compose("classification", {"text": "bert-tiny"},
                              head={"name": "classification", "labels": LABELS},
                              fusion={"name": "concat-mlp", "dim": 16}), _rows(20, 0))
    before = _digest(overconfident / "m")
    bad = _write([{"text": "x", "label": "kiwi"}] * 12, tmp_path / "bad.jsonl")
    r = run_zoo("calibrate", str(overconfident / "m"), "--data", str(bad))
    assert r.returncode == 1 and r.stderr.startswith("error: line 1: unknown label 'kiwi'")
    assert len(r.stderr.strip().splitlines()) == 1
    assert _digest(overconfident / "m") == before  # a failed calibration changed nothing


def test_training_reports_ece_and_a_reliability_diagram(tmp_path):
    torch.manual_seed(0)
    model = compose("classification", {"text": "bert-tiny"},
                    head={"name": "classification", "labels": LABELS},
                    fusion={"name": "concat-mlp", "dim": 16})
    zoo.train(model, _rows(40, 0), _rows(20, 1), tmp_path / "m", epochs=1, freeze="all",
              finetune_epochs=0, progress=False)
    m = tmp_path / "m"
    assert "ece" in json.loads((m / "eval_results.json").read_text())["metrics"]
    assert (m / "reliability_diagram.png").is_file()
    assert "![reliability diagram](reliability_diagram.png)" in (m / "README.md").read_text()
