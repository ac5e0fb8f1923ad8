"""zoo tune: the search space, the pruning logger, a whole study (the best model, tune.json,
pictures, card), continuing a study, resuming after kill -9, and one-line errors."""
from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import zoo
from conftest import ROOT, ZOO, run_zoo
from zoo.errors import ZooError

optuna = pytest.importorskip("optuna")

TOPICS = {"sport": "ball goal team match score player coach league".split(),
          "food": "bread soup cheese apple dinner salt cook taste".split(),
          "music": "song guitar drum melody band concert piano tune".split()}
COMMON = "the a of and to in is it that was for on with as at by this we you".split()
SPACE = {"lr": "1e-4:3e-2:log", "epochs": "2:4:int", "freeze": ["none", "all"]}
SPACE_FLAGS = ["--param", "lr=1e-4:3e-2:log", "--param", "epochs=2:4:int",
               "--param", "freeze=none,all"]


def _write(path: Path, n: int, seed: int) -> Path:
    """Noisy topics: two topic words among eight common ones, 40 % of them from another
    topic, so the learning rate and the length of the run matter."""
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        label = rng.choice(sorted(TOPICS))
        words = [rng.choice(COMMON) for _ in range(8)]
        for _ in range(2):
            topic = label if rng.random() < 0.6 else rng.choice(sorted(TOPICS))
            words.insert(rng.randrange(len(words)), rng.choice(TOPICS[topic]))
        rows.append({"text": " ".join(words), "label": label})
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> tuple[Path, Path]:
    d = tmp_path_factory.mktemp("tune-data")
    return _write(d / "train.jsonl", 90, 0), _write(d / "eval.jsonl", 45, 1)


def _study(out: Path, name: str = "char-text-clf"):
    return optuna.load_study(study_name=name, storage=f"sqlite:///{out / 'study.db'}")


def _finished(study) -> list:
    S = optuna.trial.TrialState
    return [t for t in study.trials if t.state in (S.COMPLETE, S.PRUNED)]


# -- the space ----------------------------------------------------------------------------

def test_params_parse_into_ranges_and_choices():
    from zoo.tuning.space import parse_param, parse_space

    lr = parse_param("lr=1e-4:1e-2:log")
    assert (lr.kind, lr.low, lr.high, lr.log) == ("float", 1e-4, 1e-2, True)
    ep = parse_param("epochs=3:12:int")
    assert (ep.kind, ep.low, ep.high) == ("int", 3, 12)
    fr = parse_param("freeze=auto,none,all")
    assert fr.kind == "choice" and fr.choices == ("auto", "none", "all")
    bs = parse_param("batch_size=16,32")
    assert bs.choices == (16, 32)
    # options that may be None read "none" as None; freeze's policy "none" stays a word
    assert parse_param("adapter=lora,none").choices == ("lora", None)
    assert parse_param("lora_r=4,8,16").choices == (4, 8, 16)
    space = parse_space({"lr": "1e-4:1e-2:log", "weight_decay": {"low": 0.0, "high": 0.1},
                         "scheduler": ["cosine", "linear"]})
    assert [p.kind for p in space] == ["float", "float", "choice"]


@pytest.mark.parametrize("text,words", [
    ("foo=1:2", ["unknown parameter 'foo'", "lr", "epochs", "freeze"]),
    ("loggers=a,b", ["unknown parameter 'loggers'"]),
    ("lr=abc:1", ["must be numbers"]),
    ("lr=1e-2:1e-4", ["is empty"]),
    ("lr=0:1:log", ["LOW > 0"]),
    ("lr=1e-4:1e-2:cubic", ["expected NAME=LOW:HIGH"]),
    ("epochs=3:12", ["whole numbers", "epochs=3:12:int"]),
    ("epochs=3", ["one value", "--set epochs=3"]),
    ("scheduler=cosine,bogus", ["scheduler"]),
    ("lr", ["expected NAME=LOW:HIGH"]),
])
def test_bad_params_are_one_line(text, words):
    from zoo.tuning.space import parse_param

    with pytest.raises(ZooError) as e:
        parse_param(text)
    msg = str(e.value)
    assert "\n" not in msg and all(w in msg for w in words), msg


def test_empty_space_and_a_searched_and_fixed_option_are_refused(tmp_path):
    from zoo.tuning.space import check_fixed, parse_param, parse_space

    empty = tmp_path / "space.toml"
    empty.write_text("")
    with pytest.raises(ZooError, match="search space is empty"):
        parse_space(empty)
    with pytest.raises(ZooError, match="both searched"):
        check_fixed({"lr": 0.1}, [parse_param("lr=1e-4:1e-2:log")])
    with pytest.raises(ZooError, match="unknown option 'nope'"):
        check_fixed({"nope": 1}, [])


# -- pruning ------------------------------------------------------------------------------

def test_pruning_logger_reports_per_epoch_and_prunes_when_told():
    from zoo.tuning import PruningLogger

    class FakeTrial:
        def __init__(self):
            self.reports = []

        def report(self, value, step):
            self.reports.append((step, value))

        def should_prune(self):
            return len(self.reports) >= 3

    trial = FakeTrial()
    log = PruningLogger(trial, "accuracy")
    log.log({"step": 10, "epoch": 1, "loss": 0.9, "lr": 1e-3})  # a step line: not reported
    log.log({"epoch": 1, "step": 12, "eval": {"accuracy": 0.4}})
    log.log({"epoch": 2, "step": 24, "eval": {"accuracy": 0.5}})
    with pytest.raises(optuna.TrialPruned):  # LP-FT: epoch numbers restart a stage
        log.log({"epoch": 2, "step": 36, "eval": {"accuracy": 0.45}})
    assert trial.reports == [(0, 0.4), (1, 0.5), (2, 0.45)]  # monotonic steps


def test_a_clearly_worse_trial_is_pruned_by_the_median_of_completed_trials():
    from zoo.tuning import PruningLogger

    study = optuna.create_study(direction="maximize",
                                pruner=optuna.pruners.MedianPruner(n_startup_trials=1))
    good = study.ask()
    for step in range(4):
        good.report(0.8 + 0.01 * step, step)
    study.tell(good, 0.83)
    bad = PruningLogger(study.ask(), "accuracy")
    with pytest.raises(optuna.TrialPruned, match="pruned after epoch 1"):
        bad.log({"epoch": 1, "eval": {"accuracy": 0.1}})


# -- a whole study --------------------------------------------------------------------------

def test_tune_runs_a_study_and_leaves_the_best_model_its_record_and_pictures(data, tmp_path):
    train, eval_ = data
    out = tmp_path / "tune"
    summary = zoo.tune("char-text-clf", train, eval_, out, trials=4, space=SPACE,
                       progress=False)
    study = _study(out)
    trials = _finished(study)
    first = [(t.number, t.value, t.params) for t in study.trials]
    assert len(trials) == 4 and summary["counts"]["complete"] + summary["counts"]["pruned"] == 4
    lrs = {t.params["lr"] for t in trials}
    assert len(lrs) == 4 and all(1e-4 <= v <= 3e-2 for v in lrs)
    assert all(2 <= t.params["epochs"] <= 4 and t.params["freeze"] in ("none", "all")
               for t in trials)
    record = json.loads((out / "tune.json").read_text())
    values = [t["value"] for t in record["trials"] if t["state"] == "complete"]
    assert record["best"]["value"] == max(values) == study.best_value == summary["best"]["value"]
    assert record["best"]["number"] == study.best_trial.number
    assert set(record["space"]) == {"lr", "epochs", "freeze"}
    for png in ("tune_history.png", "tune_importance.png"):
        assert (out / png).stat().st_size > 1000 and (out / "best" / png).is_file()
    assert not any((out / "trials").iterdir())  # the best was moved, the others deleted
    best = zoo.load(out / "best")
    preds = best.predict([{"text": "the goal of the team was a match"}])
    assert preds[0]["label"] in TOPICS
    training = json.loads((out / "best" / "training.json").read_text())
    assert training["config"]["lr"] == record["best"]["params"]["lr"]
    card = (out / "best" / "README.md").read_text()
    assert "## Hyper-parameter search" in card and f"trial {record['best']['number']}" in card
    # the same call again: the study has its 4 trials, nothing runs; one more: one runs
    again = zoo.tune("char-text-clf", train, eval_, out, trials=4, space=SPACE, progress=False)
    assert again["best_from"] == "kept" and len(_study(out).trials) == 4
    # the best trial's folder elsewhere (another machine's worker): trained again, same seed
    shutil.rmtree(out / "best")
    again = zoo.tune("char-text-clf", train, eval_, out, trials=4, space=SPACE, progress=False)
    assert again["best_from"] == "retrained" and len(_study(out).trials) == 4
    retrained = json.loads((out / "best" / "eval_results.json").read_text())["metrics"]
    assert retrained["accuracy"] == pytest.approx(record["best"]["value"])
    zoo.tune("char-text-clf", train, eval_, out, trials=5, space=SPACE, progress=False)
    after = _study(out)
    assert len(_finished(after)) == 5
    assert [(t.number, t.value, t.params) for t in after.trials[:4]] == first
    # a continued study must search the same space
    with pytest.raises(ZooError, match="another space"):
        zoo.tune("char-text-clf", train, eval_, out, trials=6, space={"lr": "1e-3:1e-2"},
                 progress=False)


@pytest.mark.slow
def test_tune_resumes_after_kill_9_without_rerunning_finished_trials(data, tmp_path):
    train, eval_ = data
    out = tmp_path / "tune"
    args = ["tune", "char-text-clf", "--train", str(train), "--eval", str(eval_), "--out",
            str(out), "--trials", "3", "--quiet", *SPACE_FLAGS]
    log = (tmp_path / "stderr.txt").open("w")
    proc = subprocess.Popen([*ZOO, *args], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=log)
    deadline = time.monotonic() + 240
    S = optuna.trial.TrialState
    try:
        while True:  # kill once a trial has completed and the next one is running
            assert time.monotonic() < deadline and proc.poll() is None, \
                f"no trial ran: {(tmp_path / 'stderr.txt').read_text()[-2000:]}"
            if (out / "tune.json").is_file():  # the study's tables exist: safe to read
                try:
                    trials = _study(out).trials
                except Exception:  # not created yet, or its tables half written
                    trials = []
                if (any(t.state == S.COMPLETE for t in trials)
                        and any(t.state == S.RUNNING and "owner" in t.user_attrs
                                for t in trials)):
                    break
            time.sleep(0.2)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()
        log.close()
    before = _study(out).trials
    done = {t.number: (t.value, t.params) for t in before if t.state == S.COMPLETE}
    killed = [t for t in before if t.state == S.RUNNING]
    assert done and len(killed) == 1
    run_zoo(*args, check=True)
    after = _study(out)
    assert len(_finished(after)) == 3
    assert not [t for t in after.trials if t.state == S.RUNNING]
    by_number = {t.number: t for t in after.trials}
    assert {n: (by_number[n].value, by_number[n].params) for n in done} == done
    assert by_number[killed[0].number].state == S.FAIL
    retry = [t for t in after.trials if t.user_attrs.get("retry_of") == killed[0].number]
    assert len(retry) == 1 and retry[0].state in (S.COMPLETE, S.PRUNED)
    if killed[0].params.keys() == retry[0].params.keys():
        assert retry[0].params == killed[0].params
    assert zoo.load(out / "best").predict([{"text": "soup and bread"}])[0]["label"] in TOPICS
    assert [p.name for p in (out / "trials").iterdir()] == []  # killed trial's folder gone


# -- errors and laziness --------------------------------------------------------------------

@pytest.mark.parametrize("extra,words", [
    (["--param", "foo=1:2"], ["unknown parameter 'foo'", "lr"]),
    (["--param", "lr=1e-4"], ["one value"]),
    (["--storage", "sqlite:////nonexistent-dir/x/study.db"], ["cannot open the study storage",
                                                              "--storage"]),
])
def test_cli_bad_input_is_one_line_and_exit_1(data, tmp_path, extra, words):
    train, eval_ = data
    proc = run_zoo("tune", "char-text-clf", "--train", str(train), "--eval", str(eval_),
                   "--out", str(tmp_path / "o"), "--trials", "1", *extra)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 1 and len(lines) == 1 and lines[0].startswith("error: "), \
        proc.stderr
    assert all(w in lines[0] for w in words), lines[0]


def test_missing_optuna_says_how_to_install(data, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "optuna", None)  # import optuna -> ImportError
    with pytest.raises(ZooError, match=r"pip install optuna \(or zoo-mm\[tune\]\)"):
        zoo.tune("char-text-clf", *data, tmp_path / "o", trials=1, progress=False)


def test_help_and_list_do_not_import_optuna_and_zoo_tune_stays_the_function():
    code = ("import sys\nfrom zoo.cli import main\nfor args in (['--help'], ['tune', "
            "'--help'], ['list']):\n    try:\n        main(args)\n    except SystemExit:\n"
            "        pass\nprint(sorted(m for m in ('optuna', 'torch') if m in sys.modules))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=ROOT, timeout=120)
    assert proc.returncode == 0 and proc.stdout.strip().endswith("[]"), proc.stderr
    import zoo.tuning

    assert zoo.tune is zoo.tuning.tune and callable(zoo.tune)
