"""Explanations (zoo explain, POST /explain): a text classifier trained to key on one
planted word ranks that word first and deleting its top words lowers its score more than
deleting random ones; image and audio explanations draw PNGs; modality shares add to 1 and
give nothing to a modality the model cannot see; the CLI and the server answer."""
from __future__ import annotations

import json
import random
import warnings

import pytest

import zoo
from zoo.build.compose import compose
from zoo.errors import ZooError

FILLER = ("river table garden window silver morning paper orange letter mountain pencil "
          "summer basket candle forest yellow bottle market winter ladder castle button "
          "meadow copper little rabbit violet thunder pillow marble anchor velvet").split()
PLANT = "zebra"  # the one word that decides the label
PNG = b"\x89PNG\r\n\x1a\n"


def sentences(n: int, seed: int) -> list[dict[str, str]]:
    """Every other sentence holds the planted word among 6-10 random filler words."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        words = rng.sample(FILLER, rng.randint(6, 10))
        label = "yes" if i % 2 == 0 else "no"
        if label == "yes":
            words.insert(rng.randrange(len(words) + 1), PLANT)
        rows.append({"text": " ".join(words), "label": label})
    return rows


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    """A char n-gram text classifier trained on planted-word sentences (saved folder)."""
    d = tmp_path_factory.mktemp("planted")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ZOO_CACHE", str(d / "cache"))
        mp.setenv("ZOO_SECRET", str(d / "cache.key"))
        for name, n, seed in (("train", 240, 0), ("val", 60, 1)):
            (d / f"{name}.jsonl").write_text(
                "".join(json.dumps(r) + "\n" for r in sentences(n, seed)))
        model = compose("classification",
                        {"text": {"name": "char-ngram", "dim": 32, "buckets": 16384}},
                        {"name": "classification", "labels": ["no", "yes"]},
                        {"name": "concat-mlp", "dim": 32})
        summary = zoo.train(model, d / "train.jsonl", d / "val.jsonl", d / "model", epochs=4,
                            lr=3e-3, batch_size=16, freeze="none", progress=False)
    assert summary["best"]["accuracy"] >= 0.95, summary["best"]
    return d / "model"


def _held_out(n: int = 16) -> list[str]:
    return [r["text"] for r in sentences(n, seed=7) if r["label"] == "yes"]


@pytest.mark.parametrize("method", ["ablation", "shapley"])
def test_the_planted_word_is_ranked_first(planted, method):
    model = zoo.load(planted)
    texts = _held_out()
    results = zoo.explain(model, [{"text": t} for t in texts], method=method, samples=8)
    for text, r in zip(texts, results):
        assert r["target"] == "yes" and r["method"] == method
        n = len(text.split())
        if method == "ablation":  # each unit alone removed, and the whole input
            assert r["predictions"] == n + 1
        else:  # 8 orderings of n units from the empty input, repeats scored once
            assert n + 1 < r["predictions"] <= 8 * n + 1
        units = r["units"]
        assert [u["word"] for u in units] == text.split()
        assert all(text[u["start"]:u["end"]] == u["word"] for u in units)
        ranked = sorted(units, key=lambda u: -u["attribution"])
        assert ranked[0]["word"] == PLANT, (text, ranked[:3])
        assert ranked[0]["attribution"] > 2 * abs(ranked[1]["attribution"])


def test_deleting_top_words_lowers_the_score_more_than_deleting_random_ones(planted):
    model = zoo.load(planted)
    rng = random.Random(0)
    texts = _held_out(24)
    results = zoo.explain(model, [{"text": t} for t in texts], target="yes")
    k, top_drops, random_drops = 2, [], []
    for text, r in zip(texts, results):
        words = [u["word"] for u in r["units"]]
        top = set(sorted(range(len(words)), key=lambda i: -r["units"][i]["attribution"])[:k])
        rand = [set(rng.sample(range(len(words)), k)) for _ in range(5)]
        kept = [" ".join(w for i, w in enumerate(words) if i not in drop)
                for drop in [top, *rand]]
        scores = [p["scores"]["yes"] for p in model.predict([{"text": t} for t in kept])]
        top_drops.append(r["score"] - scores[0])
        random_drops.append(sum(r["score"] - s for s in scores[1:]) / len(rand))
    mean = lambda xs: sum(xs) / len(xs)  # noqa: E731
    assert mean(top_drops) > 0.5  # the planted word gone, the answer flips
    assert mean(top_drops) > mean(random_drops) + 0.3, (mean(top_drops), mean(random_drops))


def test_a_plugin_modality_explains_by_its_own_units_the_planted_column_first(tmp_path):
    """zoo-tabular's columns are its units: a classifier keyed on ``price`` alone ranks it
    first (rows far from the threshold); Shapley needs the empty row, which has no score."""
    def rows(n, seed):
        rng = random.Random(seed)
        out = []
        for _ in range(n):
            r = {"price": round(rng.uniform(1, 100), 1), "weight": round(rng.uniform(1, 100), 1),
                 "city": rng.choice(["Oslo", "Lima", "Pune"])}
            out.append({"tabular": r, "label": "keep" if r["price"] >= 50 else "drop"})
        return out

    for name, n, seed in (("train", 200, 0), ("val", 60, 1)):
        (tmp_path / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n"
                                                        for r in rows(n, seed)))
    zoo.train("tabular-clf", tmp_path / "train.jsonl", tmp_path / "val.jsonl",
              tmp_path / "m", epochs=10, progress=False)
    model = zoo.load(tmp_path / "m")
    far = [{"tabular": r["tabular"]} for r in rows(40, 3)
           if abs(r["tabular"]["price"] - 50) > 15][:10]
    results = zoo.explain(model, far)
    assert all([u["column"] for u in r["units"]] == ["price", "weight", "city"] for r in results)
    firsts = [max(r["units"], key=lambda u: u["attribution"])["column"] for r in results]
    assert firsts == ["price"] * len(far)
    with pytest.raises(ZooError, match="use method 'ablation'") as e:
        zoo.explain(model, far[0], method="shapley", samples=2)
    assert "\n" not in str(e.value)


def test_units_stay_within_the_budget_and_cover_the_input():
    from zoo.registry import modalities

    text = modalities()["text"]
    words = "one two  three four five six seven eight nine ten"
    units = text.explain_units(words, 4)
    assert len(units) == 4 and units[0] == {"word": "one two  three", "start": 0, "end": 14}
    assert units[-1]["end"] == len(words) and text.explain_ablate(
        words, units, [True, False, False, True]) == "one two  three ten"
    assert text.explain_ablate(words, units, [False] * 4) == ""
    image = modalities()["image"]
    from PIL import Image

    photo = Image.new("RGB", (3000, 1000), (200, 10, 10))
    photo.paste((10, 10, 200), (1500, 0, 3000, 1000))  # red left half, blue right half
    picture = image.explain_load(photo)
    boxes = image.explain_units(picture, 10)  # a 3 x 3 grid in full pixels
    assert len(boxes) == 9 and boxes[-1]["box"] == [2000, 667, 3000, 1000]
    assert max(picture.size) == 1024  # perturbed at a working size
    grey = image.explain_ablate(picture, boxes, [False] + [True] * 8)
    assert grey.getpixel((0, 0)) == (105, 10, 105)  # the picture's mean colour
    assert grey.getpixel((400, 100)) == (200, 10, 10)  # the next patch (full x 1172) kept


def test_plugins_check_runs_every_modalitys_explanation_hooks():
    from types import SimpleNamespace

    from zoo.plugin import Modality
    from zoo.plugincheck.kinds import check_modality
    from zoo.registry import get_registry

    results = []
    for spec in get_registry().all("modality"):
        check_modality(spec, results)
    got = {r.subject: r.status for r in results if r.check == "explanation units"}
    assert {"modality text", "modality image", "modality audio"} <= set(got)
    assert set(got.values()) == {"pass"}, results

    class Greedy(Modality):  # ignores the unit budget
        def samples(self):
            return ["a b c d e f", "g h"]

        def explain_units(self, value, max_units):
            return [{"i": i} for i in range(len(value))]

    bad: list = []
    check_modality(SimpleNamespace(name="greedy", build=Greedy), bad)
    (result,) = [r for r in bad if r.check == "explanation units"]
    assert result.status == "fail" and "1 to 4 dicts" in result.detail


def _image_model(**fusion):
    return compose("classification", {"image": {"name": "timm-tiny",
                                                "data_config": {"input_size": [3, 32, 32]}}},
                   {"name": "classification", "labels": ["cat", "dog"]},
                   {"name": "concat-mlp", "dim": 32, **fusion})


def test_an_image_explanation_is_a_grid_of_patches_drawn_as_a_png(photo, tmp_path):
    from PIL import Image

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # an untrained head
        (r,) = zoo.explain(_image_model(), {"image": str(photo)}, out=tmp_path)
    w, h = Image.open(photo).size
    boxes = [u["box"] for u in r["units"]]
    assert len(boxes) == 64 and boxes[0][:2] == [0, 0] and boxes[-1][2:] == [w, h]
    assert sum((x1 - x0) * (y1 - y0) for x0, y0, x1, y1 in boxes) == w * h
    assert any(u["attribution"] != 0 for u in r["units"])
    assert r["files"] == [str(tmp_path / "0-image.png")]
    assert (tmp_path / "0-image.png").read_bytes()[:8] == PNG
    assert json.loads((tmp_path / "explanations.json").read_text())[0]["target"] == r["target"]


def test_an_audio_explanation_is_time_windows_drawn_as_a_png(speech, tmp_path):
    import soundfile as sf

    model = compose("classification", {"audio": "conformer-tiny"},
                    {"name": "classification", "labels": ["no", "yes"]},
                    {"name": "concat-mlp", "dim": 32})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        (r,) = zoo.explain(model, {"audio": str(speech)}, out=tmp_path, max_units=16)
    seconds = sf.info(str(speech)).duration
    units = r["units"]
    assert len(units) == 16 and units[0]["start"] == 0
    assert units[-1]["end"] == pytest.approx(seconds, abs=1e-3)
    assert all(a["end"] == b["start"] for a, b in zip(units, units[1:]))
    assert (tmp_path / "0-audio.png").read_bytes()[:8] == PNG


def _text_image_model():
    return compose("classification",
                   {"text": {"name": "char-ngram", "dim": 16, "buckets": 4096},
                    "image": {"name": "timm-tiny", "data_config": {"input_size": [3, 32, 32]}}},
                   {"name": "classification", "labels": ["cat", "dog"]},
                   {"name": "concat-mlp", "dim": 32})


def test_modality_shares_add_to_one_and_a_modality_the_model_ignores_gets_none(photo):
    import torch

    model = _text_image_model()
    x = {"text": "a cat sits on a warm windowsill", "image": str(photo)}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        (r,) = zoo.explain(model, x, max_units=32)
        share = r["modality_share"]
        assert set(share) == {"text", "image"} and sum(share.values()) == pytest.approx(1)
        assert {u["modality"] for u in r["units"]} == {"text", "image"}
        # the fusion's first layer blind to the image: all of the score is the text's
        fusion = model.fusion
        first = sum(fusion.in_dims[m] for m in fusion.modalities[:fusion.modalities.index(
            "image")])
        with torch.no_grad():
            fusion.mlp[0].weight[:, first:first + fusion.in_dims["image"]] = 0
        (blind,) = zoo.explain(model, x, max_units=32)
    assert blind["modality_share"]["image"] == pytest.approx(0, abs=1e-9)
    assert blind["modality_share"]["text"] == pytest.approx(1)
    assert all(u["attribution"] == 0 for u in blind["units"] if u["modality"] == "image")


@pytest.mark.filterwarnings("ignore:model 'custom'")  # the untrained ASR head
def test_bad_targets_options_and_unexplainable_tasks_are_one_line_errors(planted):
    import numpy as np

    model = zoo.load(planted)
    with pytest.raises(ZooError, match="not a label of this model.*labels: no, yes"):
        zoo.explain(model, {"text": "zebra river"}, target="maybe")
    with pytest.raises(ZooError, match="unknown explanation method 'lime'"):
        zoo.explain(model, {"text": "zebra river"}, method="lime")
    with pytest.raises(ZooError, match="unknown key"):
        zoo.explain(model, {"txt": "zebra river"})
    asr = compose("asr", {"audio": "conformer-tiny"}, {"name": "ctc"})
    with pytest.raises(ZooError, match="asr model cannot be explained") as e:
        zoo.explain(asr, {"audio": (np.zeros(8000, "float32"), 16000)})
    assert "\n" not in str(e.value)


def test_explain_endpoint_answers_like_predict_and_refuses_bad_requests(planted, tmp_path):
    from starlette.testclient import TestClient

    from zoo.serve.app import create_app
    from zoo.serve.limits import Limits

    text = _held_out(2)[0]
    app = create_app(zoo.load(planted), feedback_db=tmp_path / "f.db")
    with TestClient(app, base_url="http://127.0.0.1") as c:
        r = c.post("/explain", json={"inputs": [{"text": text}]})
        assert r.status_code == 200, r.text
        (got,) = r.json()["explanations"]
        assert got["target"] == "yes" and "files" not in got
        assert max(got["units"], key=lambda u: u["attribution"])["word"] == PLANT
        hf = c.post("/explain", json={"inputs": text, "parameters": {"target": "no"}})
        assert hf.status_code == 200 and hf.json()["explanations"][0]["target"] == "no"
        for body, status, words in [
                ({"inputs": [{"text": 5}]}, 400, "must be a string"),
                ({"inputs": [{"image": "x"}]}, 400, "not valid base64"),
                ({"inputs": [text], "parameters": {"method": "lime"}}, 400, "method"),
                ({"inputs": [text], "parameters": {"target": "maybe"}}, 400, "not a label"),
                ({"inputs": [text], "parameters": {"max_units": 1000}}, 413,
                 "max_explain_units"),
                ({"inputs": [text] * 5}, 413, "MAX_EXPLAIN_INPUTS")]:
            bad = c.post("/explain", json=body)
            assert bad.status_code == status, (body, bad.text)
            msg = bad.json()["error"]
            assert words in msg and "\n" not in msg
        assert c.post("/predict", json={"inputs": [text]}).status_code == 200
        assert 'path="/explain",status="200"' in c.get("/metrics").text
    slow = create_app(zoo.load(planted), feedback_db=tmp_path / "s.db",
                      limits=Limits.from_env(request_seconds=0.001))
    with TestClient(slow, base_url="http://127.0.0.1") as c:
        late = c.post("/explain", json={"inputs": [text]})
        assert late.status_code == 504 and "deadline" in late.json()["error"]
    keyed = create_app(zoo.load(planted), feedback_db=tmp_path / "k.db", api_key="s3cret")
    with TestClient(keyed, base_url="http://127.0.0.1") as c:
        body = {"inputs": [{"text": text}]}
        assert c.post("/explain", json=body).status_code == 401
        ok = c.post("/explain", json=body, headers={"Authorization": "Bearer s3cret"})
        assert ok.status_code == 200 and ok.json()["explanations"][0]["units"]


def test_zoo_explain_command(planted, tmp_path, capsys):
    from click.testing import CliRunner

    from zoo.cli import cli, main

    text = _held_out(2)[0]
    r = CliRunner().invoke(cli, ["explain", str(planted), text, "--json"])
    assert r.exit_code == 0, r.output
    (got,) = json.loads(r.output)
    assert max(got["units"], key=lambda u: u["attribution"])["word"] == PLANT
    r = CliRunner().invoke(cli, ["explain", str(planted), text, "--out", str(tmp_path)])
    assert r.exit_code == 0, r.output
    assert r.output.startswith("[0] yes  (score ") and PLANT in r.output
    page = (tmp_path / "0-text.html").read_text()
    assert f">{PLANT}</span>" in page and "wrote" in r.output
    # the int8 model, as zoo serve --quantize int8 runs it: its own score is explained
    r = CliRunner().invoke(cli, ["explain", str(planted), text, "--json", "--quantize", "int8"])
    assert r.exit_code == 0, r.output
    (got8,) = json.loads(r.output)
    int8 = zoo.load(planted, quantize="int8").predict([{"text": text}])[0]
    assert got8["score"] == pytest.approx(int8["score"], abs=1e-6)
    assert abs(got8["score"] - got["score"]) > 1e-6  # not the float model's
    assert max(got8["units"], key=lambda u: u["attribution"])["word"] == PLANT
    with pytest.raises(SystemExit) as e:
        main(["explain", str(planted), text, "--target", "maybe"])
    assert e.value.code == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: target 'maybe' is not a label") and "\n" not in err
