"""Say what a run will cost before it costs it, and keep to a budget: the plan lines,
--max-steps / --max-time, and the automatic fine-tuning stage that runs on a CPU only when
its measured cost fits."""
from __future__ import annotations

import json
import random
import time

import pytest
import torch

import zoo
from zoo.build.compose import compose
from zoo.errors import ZooError

from conftest import run_zoo

LABELS = ["apple", "banana", "lemon", "pear"]


def _data(n, seed=0, noisy=False):
    rng = random.Random(seed)
    return [{"text": f"a {LABELS[i % 4]} number {i}",
             "label": rng.choice(LABELS) if noisy else LABELS[i % 4]} for i in range(n)]


def _model():
    torch.manual_seed(0)
    return compose("classification", {"text": "bert-tiny"},
                   head={"name": "classification", "labels": LABELS},
                   fusion={"name": "concat-mlp", "dim": 16})


def test_the_plan_is_said_before_the_steps_and_measured_on_the_first(tmp_path, capsys):
    zoo.train(_model(), _data(32), _data(8, 1), tmp_path / "m", epochs=3, batch_size=8,
              freeze="none", loggers=[])
    err = capsys.readouterr().err
    plan = err.index("plan: probe 3 epochs x 4 steps")
    # measured on steps 2-3: the first pays one-off costs and is not counted
    measured = err.index("plan: probe: 9 more steps, ~")
    first_epoch = err.index("epoch 1:")
    assert plan < measured < first_epoch  # said first, then measured
    assert "s/step" in err[measured:first_epoch]


def test_max_steps_stops_and_saves_a_loadable_model(tmp_path):
    summary = zoo.train(_model(), _data(32), _data(8, 1), tmp_path / "m", epochs=50,
                        batch_size=8, freeze="none", max_steps=5, progress=False)
    assert summary["steps"] == 5 and summary["stopped"] == "max_steps 5 reached"
    assert summary["epochs_run"] == 2  # the epoch under way was evaluated and counted
    model = zoo.load(tmp_path / "m")
    assert model.predict([{"text": "a lemon"}])[0]["label"] in LABELS
    rec = json.loads((tmp_path / "m" / "training.json").read_text())
    assert rec["stopped"] == "max_steps 5 reached"


def test_max_time_stops_on_time(tmp_path):
    t = time.perf_counter()
    summary = zoo.train(_model(), _data(64), _data(8, 1), tmp_path / "m", epochs=100000,
                        batch_size=4, freeze="none", max_time=3.0, progress=False,
                        loggers=[])
    took = time.perf_counter() - t
    assert summary["stopped"].startswith("max_time") and summary["epochs_run"] < 100000
    assert took < 3.0 + 20  # set-up before the clock and one evaluation after it
    assert zoo.load(tmp_path / "m").predict([{"text": "a pear"}])[0]["label"] in LABELS


def test_an_automatic_stage_that_does_not_fit_is_not_run(tmp_path, capsys, monkeypatch):
    """LP-FT after a weak probe, on a CPU: measured on its first steps, it does not fit
    the budget, so its steps are undone and the probe is what stays saved."""
    import zoo.training.budget as budget

    monkeypatch.setattr(budget, "AUTO_STAGE_SECONDS", 1e-3)
    train, val = _data(24, noisy=True), _data(12, 1, noisy=True)  # a weak probe
    model = zoo.create_model("minilm-text-clf", pretrained=True)
    summary = zoo.train(model, train, val, tmp_path / "m", epochs=1, batch_size=8,
                        loggers=[])
    err = capsys.readouterr().err
    assert "then, if eval accuracy < 0.98: fine-tune text 1 epochs when it fits" in err
    assert "plan: fine-tune:" in err and "the probe is kept" in err
    assert summary["finetuned"] is False and "beyond the" in summary["stopped"]
    assert summary["best_epoch"] in (0, 1)  # the probe's
    saved = zoo.load(tmp_path / "m")
    x = [{"text": r["text"]} for r in val]
    assert saved.predict(x) == model.eval().predict(x)  # the in-memory model is the probe
    # asked for, it runs whatever it costs
    summary = zoo.train(zoo.create_model("minilm-text-clf", pretrained=True), train, val,
                        tmp_path / "n", epochs=1, batch_size=8, finetune_epochs=1,
                        progress=False, loggers=[])
    assert summary["finetuned"] is True and summary["stopped"] is None


def test_budget_options_are_checked_in_one_line(tmp_path):
    with pytest.raises(ZooError, match="--max-steps must be a whole number"):
        zoo.train(_model(), _data(8), None, tmp_path / "a", max_steps=0)
    with pytest.raises(ZooError, match="--max-time must be a positive number"):
        zoo.train(_model(), _data(8), None, tmp_path / "a", max_time=-1)
    train = tmp_path / "train.jsonl"
    train.write_text("".join(json.dumps(r) + "\n" for r in _data(8)))
    r = run_zoo("train", "tiny-text-image-clf", "--train", str(train), "--out",
                str(tmp_path / "b"), "--max-time", "soon")
    assert r.returncode == 2 and "--max-time" in r.stderr


def test_max_time_takes_units_on_the_command_line(tmp_path):
    train = tmp_path / "train.jsonl"
    train.write_text("".join(json.dumps(r) + "\n" for r in _data(16)))
    r = run_zoo("train", "tiny-text-image-clf", "--train", str(train), "--out", str(tmp_path / "m"), "--epochs", "100000",
                "--max-time", "0.05m", "--freeze", "none", "--quiet", "--logger", "none")
    assert r.returncode == 0, r.stderr
    rec = json.loads((tmp_path / "m" / "training.json").read_text())
    assert rec["stopped"] == "max_time 3 s reached"
