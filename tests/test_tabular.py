"""zoo-tabular: a row of named columns beside text, through every verb. The fitted
standardisation and vocabularies are the training split's and travel with the model; one
CSV with a text column and numeric / categorical columns trains a model that needs both."""
from __future__ import annotations

import json
import math
import random
from pathlib import Path

import httpx
import pytest

import zoo
from conftest import run_zoo
from zoo.errors import DataError, ZooError

GOOD = ["a wonderful reliable product", "great value and it works well", "excellent, I love it",
        "really nice quality", "superb and sturdy", "fantastic purchase, very happy"]
BAD = ["a terrible flimsy product", "awful, it broke at once", "poor quality and useless",
       "really disappointing", "cheap junk that fails", "horrible purchase, very unhappy"]
CITIES = ["Oslo", "Lima", "Pune"]


def _rows(n: int, seed: int) -> list[dict]:
    """A label that needs both: keep a good review only when it is cheap, a bad one only
    when it is expensive (neither the text nor the price alone says it)."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        good = i % 2 == 0
        price = round(rng.uniform(1, 100), 1)
        keep = (good and price < 50) or (not good and price >= 50)
        rows.append({"review": rng.choice(GOOD if good else BAD), "price": price,
                     "city": rng.choice(CITIES), "label": "keep" if keep else "drop"})
    return rows


def _csv(path: Path, rows: list[dict]) -> Path:
    path.write_text("review,price,city,label\n" + "".join(
        f"\"{r['review']}\",{r['price']},{r['city']},{r['label']}\n" for r in rows))
    return path


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("tab")
    return {"train": _csv(d / "train.csv", _rows(160, 0)),
            "eval": _csv(d / "eval.csv", _rows(60, 1))}


COLUMNS = ("--column", "text=review", "--column", "tabular=*")


def _small_model():
    """MiniLM's tokenizer on a 2-layer BERT (bert-tiny) + tabular-mlp: fast to train."""
    return zoo.create_model("minilm-tabular-clf", encoders={"text": "bert-tiny"})


# ---- the encoder ---------------------------------------------------------------------------

def test_fit_decides_kinds_and_fits_statistics_that_travel_with_the_model(tmp_path):
    model = zoo.create_model("tabular-clf", labels=["a", "b"])
    enc = model.encoders["tabular"]
    with pytest.raises(ZooError, match="not fitted yet: train the model first"):
        model.predict([{"tabular": {"x": 1}}])
    rows = [{"x": 1, "y": "red", "z": None}, {"x": 3, "y": "red", "z": 2.5},
            {"x": 5, "y": "blue", "z": None}]
    enc.fit(rows)
    assert enc.numeric == {"x": [3.0, pytest.approx(math.sqrt(8 / 3))], "z": [2.5, 1.0]}
    assert enc.categorical == {"y": ["red", "blue"]}
    t = enc.preprocess([{"x": 3, "y": "green"}, {"x": "4.5", "z": 2.5, "y": "blue"}])
    assert t["missing"].tolist() == [[0.0, 1.0], [0.0, 0.0]]  # z missing in the first
    assert t["categories"].tolist() == [[1], [3]]  # green unseen: 1; blue: 2 + its rank
    with pytest.raises(DataError, match="column 'x' is numeric"):
        enc.preprocess([{"x": "tall"}])
    with pytest.raises(DataError, match=r"none of the model's columns \(x, z, y\)"):
        enc.preprocess([{"w": 1}])
    enc.fit([{"x": 100}])  # fitted already: fine-tuning keeps the first fit
    assert enc.numeric["x"][0] == 3.0
    before = model.predict([{"tabular": {"x": 2, "y": "blue"}}])
    back = zoo.load(model.save_pretrained(tmp_path / "m"))
    assert back.encoders["tabular"].categorical == {"y": ["red", "blue"]}
    assert back.predict([{"tabular": {"x": 2, "y": "blue"}}]) == before
    prep = json.loads((tmp_path / "m" / "preprocessor" / "tabular" / "preprocessing.json")
                      .read_text())
    assert prep["numeric"]["x"][0] == 3.0


def test_the_modality_checks_cells_and_bounds_requests():
    from zoo.registry import modalities
    from zoo.serve.limits import Limits

    tab = modalities()["tabular"]
    assert tab.from_data({"a": True, "b": float("nan")}, None, "x:1") == {"a": "true",
                                                                          "b": None}
    with pytest.raises(DataError, match="x:2: tabular column 'a' holds a list"):
        tab.from_data({"a": [1]}, None, "x:2")
    with pytest.raises(DataError, match="name the columns with --column tabular=a,b,c"):
        tab.from_data("free text", None, "x:3")
    from zoo.errors import RequestError

    wide = {f"c{i}": i for i in range(600)}
    with pytest.raises(RequestError, match="600 columns; the limit is 512") as e:
        tab.from_request(wide, "inputs[0].tabular", Limits())
    assert e.value.status == 413


# ---- one CSV, text + columns, every verb ------------------------------------------------

@pytest.mark.slow
def test_one_csv_of_text_and_columns_through_every_verb(data, tmp_path, hub):
    r = json.loads(run_zoo("data", "check", str(data["train"]), *COLUMNS, "--json").stdout)
    assert r["ok"] == 160 and r["inputs"]["tabular"]["kinds"]["price"]["kind"] == "numeric"
    assert r["inputs"]["tabular"]["columns"] == ["city", "price"]  # not review, not label
    run = tmp_path / "run"
    zoo.train(_small_model(), data["train"], data["eval"], run, epochs=40, lr=3e-3,
              columns={"text": "review", "tabular": "*"}, progress=False)
    proc = run_zoo("eval", str(run), "--data", str(data["eval"]), *COLUMNS, "--json")
    metrics = json.loads(proc.stdout)
    assert metrics["accuracy"] >= 0.9, metrics  # neither input alone gets past ~0.5
    model = zoo.load(run)
    x = {"text": GOOD[0], "tabular": {"price": 12.0, "city": "Oslo"}}
    out = json.loads(run_zoo("predict", str(run), json.dumps(x)).stdout)
    assert out == json.loads(json.dumps(model.predict([x]), default=float))
    card = (run / "README.md").read_text()
    assert '"tabular": {"age": 41, "city": "Oslo"}' in card and "tabular-mlp" in card
    # serve, feedback, back to data
    from zoo.serve.app import create_app
    from zoo.serve.uvicorn import run_in_thread

    with run_in_thread(create_app(model, feedback_db=tmp_path / "fb.db")) as srv:
        r = httpx.post(f"{srv.url}/predict", json={"inputs": [x]}, timeout=60)
        assert r.status_code == 200 and r.json()["outputs"][0]["label"] == out[0]["label"]
        bad = httpx.post(f"{srv.url}/predict", timeout=60,
                         json={"inputs": [{"tabular": {"price": "cheap"}}]})
        assert bad.status_code == 400 and "column 'price' is numeric" in bad.json()["error"]
        fb = httpx.post(f"{srv.url}/feedback", timeout=60,
                        json={"input": x, "prediction": out[0], "correction": "drop"})
        assert fb.status_code == 200, fb.text
    exported = tmp_path / "fb.jsonl"
    run_zoo("data", "from-feedback", str(tmp_path / "fb.db"), "--out", str(exported))
    assert json.loads(exported.read_text())["tabular"] == x["tabular"]
    # push and load back by Hub id
    model.push_to_hub("zoo-tests/tabular")
    assert zoo.load("hf-hub:zoo-tests/tabular").predict([x]) == model.predict([x])


@pytest.mark.slow
def test_a_columns_only_model_exports_to_onnx_with_equal_metrics(data, tmp_path):
    run = tmp_path / "run"
    zoo.train("tabular-clf", data["train"], data["eval"], run, epochs=3,
              columns={"tabular": "price,city"}, progress=False)
    jsonl = tmp_path / "eval.jsonl"
    jsonl.write_text("".join(json.dumps({"tabular": {"price": r["price"], "city": r["city"]},
                                         "label": r["label"]}) + "\n" for r in _rows(40, 2)))
    r = json.loads(run_zoo("export", str(run), "--format", "onnx", "--out",
                           str(tmp_path / "t.onnx"), "--data", str(jsonl), "--json").stdout)
    assert r["metric_change"] == 0 and r["max_output_diff"] < 1e-4
