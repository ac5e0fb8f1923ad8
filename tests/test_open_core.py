"""The open core: a plugin distribution (tests/plugins/zoo-plugin-tabtag) adds a modality
zoo does not know (``readings``: a row of named columns, with its encoder) and a per-word
task (tagging, with its head, CoNLL reader and metrics), and each goes through every verb, CLI and API, with no
change to zoo/: data check, train (the frozen-feature cache too), eval, predict, serve
/predict and /feedback with a correction, data from-feedback, ONNX export (and serving it),
and the card. And the core names no modality and no task."""
from __future__ import annotations

import ast
import base64
import json
import math
import random
import sys
from pathlib import Path

import httpx
import pytest

from conftest import ROOT, TEST_PLUGINS, pip_install, run_zoo

TABTAG = "zoo-plugin-tabtag"
CITIES = ["Oslo", "Lima", "Pune", "Kyiv", "Quito", "Accra"]
# the first-party modalities and tasks; the tabtag plugin's own names too
NAMES = {"text", "image", "audio", "classification", "detection", "asr", "retrieval",
         "embedding", "tabular", "readings", "tagging"}
# where a name may appear: the modalities and tasks themselves, their heads, test helpers
OWNERS = ("zoo/modalities/", "zoo/tasks/", "zoo/heads/", "zoo/testing/")


def test_the_core_names_no_modality_and_no_task():
    """Every string constant of zoo/ outside the first-party modality and task modules
    (and their heads): none is a modality or task name (docstrings are longer, so pass)."""
    found = []
    for path in sorted((ROOT / "zoo").rglob("*.py")):
        rel = str(path.relative_to(ROOT))
        if rel.startswith(OWNERS):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and node.value in NAMES:
                found.append(f"{rel}:{node.lineno}: {node.value!r}")
    assert not found, "\n".join(found)


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    target = tmp_path_factory.mktemp("tabtag-site")
    pip_install(TEST_PLUGINS / TABTAG, target)
    return target


@pytest.fixture
def plugin(site, monkeypatch):
    """The plugin installed on sys.path (found through its entry point, as after pip
    install) for in-process use; ``env`` for subprocesses."""
    import importlib

    import zoo.registry

    monkeypatch.syspath_prepend(str(site))
    importlib.invalidate_caches()
    zoo.registry.reset()
    return {"PYTHONPATH": str(site)}


def cli(env, *args, check=True):
    proc = run_zoo(*args, env=env)
    if check and proc.returncode:
        raise AssertionError(f"zoo {' '.join(args)}: {proc.stderr[-2000:]}")
    return proc


# ---- tabular: a new modality -----------------------------------------------------------

def _rows(n: int, seed: int) -> list[dict]:
    rng = random.Random(seed)
    rows, seen = [], set()
    while len(rows) < n:
        age, income, city = rng.randint(18, 80), round(rng.uniform(1, 100), 1), rng.choice(CITIES)
        if (age, income, city) in seen:  # no duplicates: zoo data check reports them
            continue
        seen.add((age, income, city))
        rich = income + (25 if city in CITIES[:3] else 0) > 60
        rows.append({"age": age, "income": income, "city": city,
                     "label": "high" if rich else "low"})
    return rows


@pytest.fixture(scope="module")
def tables(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("tables")
    out = {}
    for split, n, seed in (("train", 160, 0), ("eval", 60, 1)):
        rows = _rows(n, seed)
        csv = d / f"{split}.csv"
        csv.write_text("age,income,city,label\n" + "".join(
            f"{r['age']},{r['income']},{r['city']},{r['label']}\n" for r in rows))
        jsonl = d / f"{split}.jsonl"
        jsonl.write_text("".join(json.dumps({"readings": {k: r[k] for k in ("age", "income",
                                                                            "city")},
                                             "label": r["label"]}) + "\n" for r in rows))
        out[split], out[f"{split}_jsonl"] = csv, jsonl
    return out


COLUMNS = ("--column", "readings=age,income,city")


@pytest.mark.slow
def test_tabular_goes_through_every_verb(plugin, tables, tmp_path):
    env = plugin
    r = json.loads(cli(env, "data", "check", str(tables["train"]), *COLUMNS, "--json").stdout)
    assert r["ok"] == r["lines"] == 160 and r["task"] == "classification"
    assert r["inputs"]["readings"]["columns"] == ["age", "city", "income"]
    run = tmp_path / "run"
    cli(env, "train", "tab-clf", "--train", str(tables["train"]), "--eval", str(tables["eval"]),
        *COLUMNS, "--out", str(run), "--epochs", "12", "--lr", "3e-3", "--freeze", "all",
        "--quiet")
    record = json.loads((run / "training.json").read_text())
    assert record["feature_cache"] and record["frozen"] == ["readings"]
    metrics = json.loads(cli(env, "eval", str(run), "--data", str(tables["eval"]), *COLUMNS,
                             "--json").stdout)
    assert metrics["n"] == 60 and metrics["accuracy"] >= 0.7, metrics
    out = json.loads(cli(env, "predict", str(run),
                         '{"readings": {"age": 30, "income": 95, "city": "Oslo"}}').stdout)
    assert out[0]["label"] in ("high", "low") and set(out[0]["scores"]) == {"high", "low"}
    card = (run / "README.md").read_text()
    assert '"readings": {"age": 41, "city": "Oslo"}' in card and "tab-mlp" in card
    r = json.loads(cli(env, "export", str(run), "--format", "onnx", "--out",
                       str(tmp_path / "tab.onnx"), "--data", str(tables["eval_jsonl"]),
                       "--json").stdout)
    assert r["metric"] == "accuracy" and r["metric_change"] == 0 and r["max_output_diff"] < 1e-3


def _serve(model, db, runtime="torch"):
    from zoo.serve.app import create_app
    from zoo.serve.uvicorn import run_in_thread

    return run_in_thread(create_app(model, feedback_db=db, runtime=runtime))


def test_tabular_serves_takes_feedback_and_feeds_back_into_data(plugin, tables, tmp_path):
    import zoo

    run = tmp_path / "run"
    zoo.train("tab-clf", tables["train_jsonl"], tables["eval_jsonl"], run, epochs=3,
              freeze="all", progress=False)
    model = zoo.load(run)
    # Encoder.fit: the standardisation fitted to the training split, saved with the weights
    enc = model.encoders["readings"]
    ages = [math.log1p(json.loads(x)["readings"]["age"])
            for x in tables["train_jsonl"].read_text().splitlines()]
    assert bool(enc.fitted) and enc.center[0].item() == pytest.approx(sum(ages) / len(ages),
                                                                       rel=1e-4)
    again = tmp_path / "again"  # fine-tuning a fitted model keeps its scaling
    zoo.train(run, tables["eval_jsonl"], None, again, epochs=1, progress=False)
    assert zoo.load(again).encoders["readings"].center.tolist() == enc.center.tolist()
    row = {"age": 52, "income": 12.5, "city": "Lima"}
    with _serve(model, tmp_path / "fb.db") as srv:
        r = httpx.post(f"{srv.url}/predict", json={"inputs": [{"readings": row}]}, timeout=60)
        assert r.status_code == 200, r.text
        assert r.json()["outputs"][0]["label"] == model.predict([{"readings": row}])[0]["label"]
        bad = httpx.post(f"{srv.url}/predict", json={"inputs": [{"readings": "x"}]}, timeout=60)
        assert bad.status_code == 400 and "column -> value" in bad.json()["error"]
        post = lambda body: httpx.post(f"{srv.url}/feedback", json=body, timeout=60)  # noqa
        assert post({"input": {"readings": row}, "correction": "elephant"}).status_code == 422
        ok = post({"input": {"readings": row}, "prediction": r.json()["outputs"][0],
                   "correction": "high"})
        assert ok.status_code == 200, ok.text
    out = tmp_path / "from-feedback.jsonl"
    cli(plugin, "data", "from-feedback", str(tmp_path / "fb.db"), "--out", str(out))
    line = json.loads(out.read_text())
    assert line["readings"] == row and line["label"] == "high"
    r = json.loads(cli(plugin, "data", "check", str(out), "--json").stdout)
    assert r["ok"] == 1 and r["task"] == "classification"


# ---- tagging: a new per-word task on a subword encoder ----------------------------------

WORDS = ["the", "cat", "sat", "on", "a", "mat", "tokenizers", "unbelievably", "runs", "of",
         "green", "notebooks", "quietly", "and"]


def _sentence(rng: random.Random) -> tuple[list[str], list[str]]:
    words, tags = [], []
    for _ in range(rng.randint(4, 9)):
        kind = rng.random()
        if kind < 0.2:
            words.append(rng.choice(CITIES)), tags.append("LOC")
        elif kind < 0.35:
            words.append(str(rng.randint(2, 9999))), tags.append("NUM")
        else:
            words.append(rng.choice(WORDS)), tags.append("O")
    return words, tags


@pytest.fixture(scope="module")
def conll(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("conll")
    out = {}
    for split, n, seed in (("train", 120, 0), ("eval", 40, 1)):
        rng = random.Random(seed)
        blocks = []
        for _ in range(n):
            words, tags = _sentence(rng)
            blocks.append("".join(f"{w} {t}\n" for w, t in zip(words, tags)))
        out[split] = d / f"{split}.conll"
        out[split].write_text("\n".join(blocks))
    return out


@pytest.fixture(scope="module")
def tagger(conll, tmp_path_factory, site):
    """minilm-tagger trained on frozen, cached MiniLM features (a subprocess: the plugin
    is installed there as after pip install)."""
    run = tmp_path_factory.mktemp("tagger") / "run"
    proc = run_zoo("train", "minilm-tagger", "--train", str(conll["train"]), "--eval",
                   str(conll["eval"]), "--out", str(run), "--epochs", "8", "--lr", "3e-3",
                   "--freeze", "all", "--quiet", env={"PYTHONPATH": str(site)})
    assert proc.returncode == 0, proc.stderr[-3000:]
    return run


@pytest.mark.slow
def test_tagging_trains_on_cached_subword_features_and_tags_each_word_once(plugin, tagger,
                                                                            conll):
    import zoo

    record = json.loads((tagger / "training.json").read_text())
    assert record["feature_cache"] and record["best"]["accuracy"] >= 0.85, record["best"]
    model = zoo.load(tagger)
    text = "Unbelievably Oslo-based tokenizers split 4242 notebooks quietly"
    pieces = model.encoders["text"].tokenizer.tokenize(text)
    assert len(pieces) > len(text.split())  # words that split into several pieces
    out = model.predict([{"text": text}, {"text": "Lima"}])
    assert out[0]["words"] == text.split() and len(out[0]["tags"]) == 7
    assert out[0]["tags"][4] == "NUM" and out[1]["tags"] == ["LOC"]
    metrics = zoo.evaluate(tagger, conll["eval"], write=False)
    assert metrics["n"] == 40 and metrics["accuracy"] >= 0.85
    card = (tagger / "README.md").read_text()
    assert "pipeline_tag: token-classification" in card and "one per whitespace" in card


@pytest.mark.slow
def test_tagging_through_the_cli_serving_feedback_and_onnx(plugin, tagger, conll, tmp_path):
    import zoo

    env = plugin
    r = json.loads(cli(env, "data", "check", str(conll["train"]), "--json").stdout)
    assert r["task"] == "tagging" and r["ok"] == 120 and set(r["labels"]) == {"LOC", "NUM", "O"}
    out = json.loads(cli(env, "predict", str(tagger), "a cat sat in Quito").stdout)
    assert len(out[0]["tags"]) == 5 and out[0]["tags"][-1] == "LOC"
    model = zoo.load(tagger)
    text = "the green notebooks of Kyiv"
    with _serve(model, tmp_path / "fb.db") as srv:
        # the task's target key may ride along in /predict, as in model.predict
        r = httpx.post(f"{srv.url}/predict", json={"inputs": [{"text": text, "tags": ["O"]}]},
                       timeout=60)
        assert r.status_code == 200 and r.json()["outputs"][0]["tags"] == \
            model.predict([{"text": text}])[0]["tags"]
        post = lambda body: httpx.post(f"{srv.url}/feedback", json=body, timeout=60)  # noqa
        wrong = post({"input": {"text": text}, "correction": ["O", "O"]})
        assert wrong.status_code == 422 and "2 tags for 5 words" in wrong.json()["error"]
        ok = post({"input": {"text": text}, "correction": ["O", "O", "O", "O", "LOC"]})
        assert ok.status_code == 200, ok.text
    fb = tmp_path / "fb.jsonl"
    cli(env, "data", "from-feedback", str(tmp_path / "fb.db"), "--out", str(fb))
    assert json.loads(fb.read_text()) == {"text": text, "tags": ["O", "O", "O", "O", "LOC"],
                                          "feedback_id": 1}
    assert json.loads(cli(env, "data", "check", str(fb), "--json").stdout)["ok"] == 1
    r = json.loads(cli(env, "export", str(tagger), "--format", "onnx", "--out",
                       str(tmp_path / "tagger.onnx"), "--data", str(conll["eval"]),
                       "--json").stdout)
    assert r["metric"] == "accuracy" and r["metric_change"] == 0
    with _serve(model, tmp_path / "fb2.db", runtime="onnx") as srv:
        texts = ["a cat sat in Quito", "the 12 notebooks of Lima run unbelievably quietly"]
        r = httpx.post(f"{srv.url}/predict", json={"inputs": texts}, timeout=60)
        assert [o["tags"] for o in r.json()["outputs"]] == \
            [p["tags"] for p in model.predict([{"text": t} for t in texts])]


def test_bad_targets_are_skipped_with_on_bad_data_skip(plugin, conll, tmp_path):
    bad = tmp_path / "bad.jsonl"
    lines = [{"text": "a cat sat", "tags": ["O", "O", "O"]},
             {"text": "the mat of Oslo", "tags": ["O", "O"]},  # 2 tags for 4 words
             {"text": "runs of 12", "tags": ["O", "O", "NUM"]}]
    bad.write_text("".join(json.dumps(x) + "\n" for x in lines))
    proc = cli(plugin, "train", "minilm-tagger", "--train", str(bad), "--out",
               str(tmp_path / "a"), "--epochs", "1", "--freeze", "all", "--quiet",
               check=False)
    assert proc.returncode == 1 and "bad.jsonl:2: 2 tags for 4 words" in proc.stderr
    assert "--on-bad-data skip" in proc.stderr
    proc = cli(plugin, "train", "minilm-tagger", "--train", str(bad), "--out",
               str(tmp_path / "b"), "--epochs", "1", "--freeze", "all", "--quiet",
               "--on-bad-data", "skip")
    assert "skipped 1 bad example" in proc.stderr
    assert json.loads((tmp_path / "b" / "training.json").read_text())["n_train"] == 2


def test_a_classification_line_without_label_is_skipped_too(tmp_path):
    data = tmp_path / "d.jsonl"
    data.write_text('{"text": "a good day", "label": "pos"}\n{"text": "no label"}\n'
                    '{"text": "a bad day", "label": "neg"}\n')
    proc = run_zoo("train", "char-text-clf", "--train", str(data), "--out", str(tmp_path / "a"),
                   "--epochs", "1", "--quiet")
    assert proc.returncode == 1 and "d.jsonl:2: a classification example needs 'label'" \
        in proc.stderr
    proc = run_zoo("train", "char-text-clf", "--train", str(data), "--out", str(tmp_path / "b"),
                   "--epochs", "1", "--quiet", "--on-bad-data", "skip")
    assert proc.returncode == 0, proc.stderr
    assert json.loads((tmp_path / "b" / "training.json").read_text())["n_train"] == 2


def test_a_model_of_a_filtered_plugin_says_it_is_filtered(plugin, tables, tmp_path):
    import zoo

    run = tmp_path / "run"
    zoo.train("tab-clf", tables["train_jsonl"], None, run, epochs=1, freeze="all",
              progress=False)
    proc = run_zoo("predict", str(run), '{"readings": {"age": 1}}',
                   env={**plugin, "ZOO_PLUGINS": "text_hf"})
    assert proc.returncode == 1
    assert "installed but not loaded" in proc.stderr and "ZOO_PLUGINS" in proc.stderr
    assert "pip install" not in proc.stderr


def test_the_plugin_passes_its_checks(plugin):
    proc = run_zoo("plugins", "check", "tabtag", "--json", env=plugin)
    rows = json.loads(proc.stdout)
    failed = [r for r in rows if r["status"] == "fail"]
    assert proc.returncode == 0 and not failed, failed
    passed = {(r["subject"], r["check"]) for r in rows if r["status"] == "pass"}
    assert ("modality readings", "request round trip") in passed
    assert ("task tagging", "metrics on a sample") in passed
    assert ("encoder tab-mlp", "feature cache + training step") in passed
