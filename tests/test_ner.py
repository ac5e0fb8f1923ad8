"""The zoo-text-ner plugin: the readers (CoNLL columns, JSONL tokens, JSONL spans) and IOB2
checks as units, then ``bert-tiny-ner`` through every verb on a small synthetic but
learnable set (names after "met", organisations after "from", cities after "in"). The CLI
runs in-process through ``zoo.cli.main`` (the plugin is installed here; a subprocess per
verb would pay the imports again)."""
from __future__ import annotations

import contextlib
import importlib.util
import io
import json
import random
from pathlib import Path

import pytest

if importlib.util.find_spec("zoo_text_ner") is None:
    pytest.skip("the zoo-text-ner plugin is not installed (pip install -e plugins/zoo-text-ner)",
                allow_module_level=True)

from zoo.plugin import DataError  # noqa: E402 (after the skip)

FIRST = ["Alice", "Bruno", "Chiara", "Dmitri", "Esther", "Farid", "Greta", "Hiroshi"]
LAST = ["Okafor", "Lindqvist", "Moreau", "Tanaka", "Novak"]
CITIES = ["Oslo", "Lima", "Nairobi", "Hanoi", "Quito"]
ORGS = [["Acme", "Corp"], ["Globex"], ["Initech"], ["Umbrella", "Labs"]]
FILLER = ["yesterday", "we", "finally", "then", "the", "team", "happily", "today", "later"]


def zoo_cli(*args: str, ok: bool = True) -> tuple[int, str, str]:
    """``zoo ARGS`` in this process: (exit code, stdout, stderr)."""
    from zoo.cli import main

    out, err, code = io.StringIO(), io.StringIO(), 0
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            main(list(args))
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else 1
    if ok and code:
        raise AssertionError(f"zoo {' '.join(args)} exited {code}: {err.getvalue()[-2000:]}")
    return code, out.getvalue(), err.getvalue()


def _sentence(rng: random.Random) -> tuple[list[str], list[str]]:
    words: list[str] = []
    tags: list[str] = []

    def add(ws, kind=None):
        for i, w in enumerate(ws):
            words.append(w)
            tags.append("O" if kind is None else f"{'I' if i else 'B'}-{kind}")
    add(rng.sample(FILLER, rng.randint(1, 3)) + ["met"])
    add([rng.choice(FIRST)] + ([rng.choice(LAST)] if rng.random() < 0.5 else []), "PER")
    for word, kind, names in (("from", "ORG", ORGS), ("in", "LOC", [[c] for c in CITIES])):
        if rng.random() < 0.6:
            add([word])
            add(rng.choice(names), kind)
    add(rng.sample(FILLER, rng.randint(0, 2)))
    return words, tags


def _spans(words: list[str], tags: list[str]) -> tuple[str, list[dict]]:
    text, ents, at = " ".join(words), [], 0
    for w, t in zip(words, tags):
        if t.startswith("B-"):
            ents.append({"start": at, "end": at + len(w), "label": t[2:]})
        elif t.startswith("I-"):
            ents[-1]["end"] = at + len(w)
        at += len(w) + 1
    return text, ents


@pytest.fixture
def task():
    from zoo.registry import get_task

    return get_task("token-classification")


def _jsonl(path: Path, *rows: dict | None) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" if r is not None else "\n" for r in rows))
    return path


def _lines(sents: list, fmt: str) -> str:
    return "".join("".join(fmt.format(w, t) for w, t in zip(*s)) + "\n" for s in sents)


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> dict[str, Path]:
    """train.conll as CoNLL-2003 writes it (-DOCSTART-, word POS chunk tag), eval.conll
    (word<TAB>tag), and the eval sentences as JSONL tokens and as JSONL spans (one more
    line there, whose span cuts a word)."""
    d = tmp_path_factory.mktemp("ner-data")
    rng, held_rng = random.Random(0), random.Random(1)
    train, held = [_sentence(rng) for _ in range(160)], [_sentence(held_rng) for _ in range(48)]
    cut = {"text": "we met Bob there", "entities": [{"start": 7, "end": 9, "label": "PER"}]}
    files = {"train": ("train.conll", "-DOCSTART- -X- -X- O\n\n"
                       + _lines(train, "{} NNP I-NP {}\n")),
             "eval": ("eval.conll", _lines(held, "{}\t{}\n")),
             "tokens": ("eval.tokens.jsonl", "".join(json.dumps({"tokens": w, "tags": t})
                                                     + "\n" for w, t in held)),
             "spans": ("eval.spans.jsonl", "".join(
                 json.dumps(dict(zip(("text", "entities"), _spans(*s)))) + "\n"
                 for s in held) + json.dumps(cut) + "\n")}
    for name, text in files.values():
        (d / name).write_text(text)
    return {key: d / name for key, (name, _) in files.items()}


@pytest.fixture(scope="module")
def run(data, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("ner-run") / "run"
    zoo_cli("train", "bert-tiny-ner", "--train", str(data["train"]), "--eval",
            str(data["eval"]), "--out", str(out), "--epochs", "4", "--lr", "3e-3",
            "--batch-size", "16", "--quiet")
    return out


# ---- IOB2, spans and readers -------------------------------------------------------------

@pytest.mark.parametrize("tags, message", [
    (["O", "I-PER"], "tag 2 'I-PER' (word 'Ada') comes after 'O': IOB2 starts an entity "
                     "with 'B-PER'"),
    (["I-LOC", "O"], "tag 1 'I-LOC' (word 'met') comes first"),
    (["B-PER", "I-LOC"], "tag 2 'I-LOC' (word 'Ada') comes after 'B-PER'"),
    (["O", "S-PER"], "tag 2 'S-PER' (word 'Ada') is BIOES, not IOB2"),
    (["O", "PER"], "tag 2 'PER' (word 'Ada') is not IOB2"),
    (["O", 3], "tag 2 is a int, not a string"),
    (["O"], "1 tags for 2 words"),
    ([], "'tags' must be a non-empty list"),
])
def test_bad_iob2_tags_are_refused_in_one_line_naming_the_word(task, tags, message):
    with pytest.raises(DataError) as e:
        task.check_target({"tags": tags}, "train.jsonl:7", None, {"text": "met Ada"})
    assert str(e.value).startswith("train.jsonl:7: ") and message in str(e.value)
    assert "\n" not in str(e.value)


def test_labels_are_checked_by_tag_or_by_type(task):
    ok = {"tags": ["O", "B-PER", "I-PER"]}
    task.check_target(ok, "x", ["O", "B-PER", "I-PER"], {"text": "met Ada Lovelace"})
    task.check_target(ok, "x", ["PER"], {"text": "met Ada Lovelace"})  # data check --labels
    with pytest.raises(DataError, match=r"^x: tag 'B-PER' is not among the labels \(O, B-LOC"):
        task.check_target(ok, "x", ["O", "B-LOC", "I-LOC"], {"text": "met Ada Lovelace"})
    with pytest.raises(DataError, match="needs 'tags'"):
        task.check_target({"label": "PER"}, "x", None, {"text": "Ada"})


TEXT = "met Ada Lovelace in Oslo, today"  # words: met | Ada | Lovelace | in | Oslo, | today


@pytest.mark.parametrize("entities, tags_or_error", [
    ([{"start": 4, "end": 16, "label": "PER"}, {"start": 20, "end": 25, "label": "LOC"}],
     ["O", "B-PER", "I-PER", "O", "B-LOC", "O"]),
    ([], ["O"] * 6),
    ([{"start": 4, "end": 7, "label": "PER", "text": "Ada"}], ["O", "B-PER"] + ["O"] * 4),
    ([{"start": 5, "end": 16, "label": "PER"}], "entity 1 [5:16] 'da Lovelace' does not fall "
                                                "on word boundaries (the words there: 'Ada "
                                                "Lovelace')"),
    ([{"start": 20, "end": 24, "label": "LOC"}], "entity 1 [20:24] 'Oslo' does not fall on "
                                                 "word boundaries (the words there: 'Oslo,')"),
    ([{"start": 4, "end": 16, "label": "PER"}, {"start": 8, "end": 16, "label": "PER"}],
     "entity 2 [8:16] overlaps another entity at word 3 'Lovelace'"),
    ([{"start": 4, "end": 7, "label": "B-PER"}], "label 'B-PER' is a tag; give the type alone"),
    ([{"start": 4, "end": 99, "label": "PER"}], "entity 1 [4:99] is outside the text"),
    ([{"start": 4, "end": 7, "label": "PER", "text": "Bob"}], "says its text is 'Bob'"),
    ([{"start": "4", "end": 7, "label": "PER"}], "whole-number character offsets"),
])
def test_character_spans_become_iob2_over_whitespace_words(task, entities, tags_or_error):
    if isinstance(tags_or_error, list):
        assert task.targets_from_correction(entities, None, "c", {"text": TEXT}) == \
            {"tags": tags_or_error}
        task.check_target({"entities": entities}, "x", None, {"text": TEXT})
    else:
        with pytest.raises(DataError) as e:
            task.check_target({"entities": entities}, "spans.jsonl:3", None, {"text": TEXT})
        assert str(e.value).startswith("spans.jsonl:3: ") and tags_or_error in str(e.value)


def test_conll_reader_skips_docstart_and_takes_the_last_column(tmp_path):
    from zoo_text_ner.readers import read_path

    path = tmp_path / "news.conll"
    path.write_text("-DOCSTART- -X- -X- O\n\nEU NNP B-NP B-ORG\nrejects VBZ B-VP O\n"
                    "German JJ B-NP B-MISC\n \nPeter NNP B-NP B-PER\nBlackburn NNP I-NP I-PER\n"
                    "-DOCSTART- -X- -X- O\nOslo\tB-LOC")  # no blank line before DOCSTART, none
    examples = read_path(path)                              # at the end, a tab-separated line
    assert [ex.inputs["text"] for ex in examples] == ["EU rejects German", "Peter Blackburn",
                                                      "Oslo"]
    assert [ex.targets["tags"] for ex in examples] == [["B-ORG", "O", "B-MISC"],
                                                       ["B-PER", "I-PER"], ["B-LOC"]]
    assert [ex.line for ex in examples] == [3, 7, 10]
    (tmp_path / "bad.iob").write_text("EU B-ORG\nrejects\n")
    with pytest.raises(DataError, match=r"bad.iob:2: expected 'word \.\.\. tag' columns"):
        read_path(tmp_path / "bad.iob")
    (tmp_path / "notes.txt").write_text("EU B-ORG\n")
    assert read_path(tmp_path / "notes.txt") is None  # plain .txt is left to zoo's readers


def test_jsonl_readers_claim_only_their_shapes(task, tmp_path):
    from zoo_text_ner.readers import read_path

    tokens = _jsonl(tmp_path / "t.jsonl", {"tokens": ["met", "Ada"], "tags": ["O", "B-PER"],
                                            "id": 7}, None, {"tokens": ["New York", "!"],
                                                             "tags": ["B-LOC", "O"]})
    first, second = read_path(tokens)
    assert first.inputs == {"text": "met Ada"} and first.targets == {"tags": ["O", "B-PER"],
                                                                     "id": 7}
    assert second.line == 3 and second.targets["tokens"] == ["New York", "!"]
    with pytest.raises(DataError, match=r"token 1 'New York' has whitespace inside"):
        task.check_target(second.targets, "t.jsonl:3", None, second.inputs)
    ada = {"start": 4, "end": 7, "label": "PER"}
    spans = _jsonl(tmp_path / "s.jsonl", {"text": "met Ada", "entities": [ada]},
                   {"text": "met Ada", "entities": [{**ada, "start": 5}]})
    good, kept = read_path(spans)
    assert good.targets == {"tags": ["O", "B-PER"]}
    assert "entities" in kept.targets and "tags" not in kept.targets  # checked per example
    assert read_path(_jsonl(tmp_path / "clf.jsonl", {"text": "a good day", "label": "pos"})) \
        is None
    broken = _jsonl(tmp_path / "broken.jsonl", {"tokens": ["a"], "tags": ["O"]})
    broken.write_text(broken.read_text() + "{oops\n")
    with pytest.raises(DataError, match=r"broken.jsonl:2: not valid JSON"):
        read_path(broken)


@pytest.mark.parametrize("correction, error", [
    ({"label": "PER"}, "or an object with 'tags' or 'entities'"),
    ("B-PER", "must be a list of IOB2 tags"),
    (["O", "B-XYZ"], "tag 'B-XYZ' is not among the labels"),
    ([{"start": 0, "end": 2, "label": "PER"}], "does not fall on word boundaries"),
])
def test_bad_corrections_are_data_errors(task, correction, error):
    with pytest.raises(DataError, match=error):
        task.targets_from_correction(correction, ["O", "B-PER", "I-PER"], "correction",
                                     {"text": "met Ada"})


def test_decoding_reads_words_at_their_pieces_and_answers_in_characters():
    """Logits crafted per piece: the first piece, the mean or the surest piece of a word
    picks its tag; an I- after O becomes B-; entities carry offsets into the text."""
    import torch

    from zoo.plugin import Batch, ModalityBatch
    from zoo_text_ner.head import TokenClassifierHead

    head = TokenClassifierHead({"text": {"dim": 4, "outputs": ["sequence"]}},
                               labels=["O", "B-PER", "I-PER"])
    text = "  met  Adalovelace Byron"  # words at 2-5, 7-18, 19-24
    words = torch.tensor([[-1, 0, 1, 1, 1, 2, -1]])  # [CLS] met ada ##love ##lace byron [SEP]
    logit = {"O": [4.0, 0, 0], "B": [0, 4.0, 0], "I": [0, 0, 4.0], "o": [1.0, 0, 0]}
    outputs = torch.tensor([[logit[r] for r in ("O", "O", "o", "B", "B", "I", "O")]])
    batch = Batch(1, {"text": ModalityBatch(torch.arange(1), word_ids=words)},
                  inputs=[{"text": text}])
    first = head.decode(outputs, batch)[0]
    assert first["tags"] == ["O", "O", "B-PER"]  # 'Adalovelace' read at its weak first piece
    assert [(e["text"], e["start"], e["end"]) for e in first["entities"]] == \
        [("Byron", 19, 24)]
    for how in ("average", "max"):
        out = head.decode(outputs, batch, aggregation=how)[0]
        assert out["tags"] == ["O", "B-PER", "I-PER"], how
        ent = out["entities"][0]
        assert text[ent["start"]:ent["end"]] == ent["text"] == "Adalovelace Byron"
    sure = head.decode(outputs, batch, aggregation="max", threshold=0.99)[0]
    assert sure["entities"] == [] and sure["tags"] == ["O", "O", "O"]
    with pytest.raises(Exception, match="aggregation must be one of first, average, max"):
        head.decode(outputs, batch, aggregation="simple")
    cut = Batch(1, {"text": ModalityBatch(torch.arange(1), word_ids=words[:, :3])},
                inputs=[{"text": text}])  # the encoder's max_length cut the later words
    short = head.decode(outputs[:, :3], cut)[0]
    assert short["tags"][2] == "O" and short["scores"][2] == 0.0 < short["scores"][1]


# ---- every verb ------------------------------------------------------------------------------

def test_data_check_reads_conll_tokens_and_spans(data):
    r = json.loads(zoo_cli("data", "check", str(data["train"]), "--json")[1])
    assert r["task"] == "token-classification" and r["ok"] == r["lines"] == 160
    assert set(r["labels"]) == {"PER", "ORG", "LOC"} and r["targets"]["entities"] >= 160
    r = json.loads(zoo_cli("data", "check", str(data["tokens"]), "--column", "text=text",
                           "--json")[1])
    assert r["task"] == "token-classification" and r["ok"] == 48 and not r["problems"]
    code, out, _ = zoo_cli("data", "check", str(data["spans"]), "--task",
                           "token-classification", "--json", ok=False)
    r = json.loads(out)
    assert code == 1 and r["ok"] == 48 and r["lines"] == 49 and r["targets"]["entities"] > 48
    assert r["problems"] == [{"line": 49, "problem": "entity 1 [7:9] 'Bo' does not fall on "
                              "word boundaries (the words there: 'Bob'); spans cover whole "
                              "whitespace-separated words"}]


def test_data_check_reads_jsonl_tokens_without_a_column_mapping(data):
    # the file training reads through the task's reader is checked through it too
    r = json.loads(zoo_cli("data", "check", str(data["tokens"]), "--json")[1])
    assert r["task"] == "token-classification" and r["ok"] == r["lines"] == 48
    assert not r["problems"] and r["targets"]["words"] > 48


@pytest.mark.slow  # the first test to use `run` trains it (~15-30 s)
def test_train_eval_and_predict_through_the_cli(run, data):
    record = json.loads((run / "training.json").read_text())
    assert record["best"]["f1"] >= 0.8, record["best"]
    figures = json.loads(zoo_cli("eval", str(run), "--data", str(data["tokens"]),
                                 "--json")[1])  # the eval split again, as JSONL tokens
    assert figures["n"] == 48 and figures["f1"] >= 0.8 and figures["f1"] == \
        pytest.approx(record["best"]["f1"])
    assert {"precision", "recall", "accuracy", "f1_PER", "f1_ORG", "f1_LOC"} <= set(figures)
    text = "then we met Greta Novak from Globex in Lima today"
    out = json.loads(zoo_cli("predict", str(run), text, "unrelated words only")[1])
    got = {(e["text"], e["label"]) for e in out[0]["entities"]}
    assert got == {("Greta Novak", "PER"), ("Globex", "ORG"), ("Lima", "LOC")}
    for ent in out[0]["entities"]:
        assert text[ent["start"]:ent["end"]] == ent["text"] and 0 < ent["score"] <= 1
    assert len(out[0]["tags"]) == len(out[0]["scores"]) == len(text.split())
    averaged = json.loads(zoo_cli("predict", str(run), text, "--option",
                                  "aggregation=average")[1])
    assert {e["label"] for e in averaged[0]["entities"]} == {"PER", "ORG", "LOC"}
    card = (run / "README.md").read_text()
    assert "pipeline_tag: token-classification" in card and "seqeval" in card
    assert "| `PER` | `B-PER`, `I-PER` |" in card and "entity_types.png" in card
    assert (run / "entity_types.png").stat().st_size > 5000


@pytest.mark.slow
def test_serving_predict_feedback_and_back_into_data(run, tmp_path):
    import httpx

    import zoo
    from zoo.serve.app import create_app
    from zoo.serve.uvicorn import run_in_thread

    model = zoo.load(run)
    text = "later we met Chiara Moreau in Nairobi"
    with run_in_thread(create_app(model, feedback_db=tmp_path / "fb.db")) as srv:
        r = httpx.post(f"{srv.url}/predict", json={"inputs": [text]}, timeout=60)
        assert r.status_code == 200, r.text
        served, local = r.json()["outputs"][0], model.predict([{"text": text}])[0]
        assert served["tags"] == local["tags"] and len(served["entities"]) == 2
        for a, b in zip(served["entities"], local["entities"]):  # scores: 6 decimals in JSON
            assert a == {**b, "score": pytest.approx(b["score"], abs=1e-6)}
        post = lambda body: httpx.post(f"{srv.url}/feedback", json=body, timeout=60)  # noqa
        tags = ["O", "O", "O", "B-PER", "I-PER", "O", "B-LOC"]
        assert post({"input": {"text": text}, "correction": tags}).status_code == 200
        other = "the team met Farid in Oslo"
        spans = [{"start": 13, "end": 18, "label": "PER"}]  # 'Farid'; no city this time
        assert post({"input": {"text": other}, "correction": spans}).status_code == 200
        bad = post({"input": {"text": text}, "correction": [{"start": 14, "end": 26,
                                                             "label": "PER"}]})
        assert bad.status_code == 422 and "word boundaries" in bad.json()["error"]
        short = post({"input": {"text": text}, "correction": ["O", "B-PER"]})
        assert short.status_code == 422 and "2 tags for 7 words" in short.json()["error"]
    out = tmp_path / "fb.jsonl"
    zoo_cli("data", "from-feedback", str(tmp_path / "fb.db"), "--out", str(out))
    lines = [json.loads(x) for x in out.read_text().splitlines()]
    assert [(x["text"], x["tags"]) for x in lines] == \
        [(text, tags), (other, ["O", "O", "O", "B-PER", "O", "O"])]
    r = json.loads(zoo_cli("data", "check", str(out), "--json")[1])
    assert r["ok"] == 2 and r["task"] == "token-classification"


@pytest.fixture
def hub(monkeypatch, tmp_path):
    import huggingface_hub.constants as C

    from zoo.testing.hubserver import serve_in_thread

    server = serve_in_thread(tmp_path / "hub-root", token="hf_local_test_token")
    for k, v in {"HF_ENDPOINT": server.url, "HF_TOKEN": "hf_local_test_token",
                 "HF_HUB_OFFLINE": "0", "HF_HUB_DISABLE_XET": "1",
                 "HF_HUB_CACHE": str(tmp_path / "hf-cache")}.items():
        monkeypatch.setenv(k, v)
    monkeypatch.setattr(C, "HF_HUB_OFFLINE", False)  # read once at import; tests run offline
    yield server
    server.stop()


@pytest.mark.slow
def test_save_load_and_a_hub_round_trip_predict_the_same(run, hub, tmp_path):
    import zoo

    model = zoo.load(run)
    texts = [{"text": "yesterday we met Alice Okafor from Umbrella Labs"},
             {"text": "the team met Farid"}]
    again = zoo.load(model.save_pretrained(tmp_path / "copy"))
    assert again.predict(texts) == model.predict(texts) and again.labels == model.labels
    model.push_to_hub("zoo-tests/tiny-ner")
    back = zoo.load("hf-hub:zoo-tests/tiny-ner")
    assert back.predict(texts) == model.predict(texts)
    assert back.predict(texts)[0]["entities"][0]["label"] == "PER"


def test_the_plugin_passes_its_checks():
    code, out, _ = zoo_cli("plugins", "check", "zoo-text-ner", "--json", ok=False)
    rows = json.loads(out)
    assert code == 0 and not [r for r in rows if r["status"] == "fail"], rows
    passed = {(r["subject"], r["check"]) for r in rows if r["status"] == "pass"}
    assert ("task token-classification", "metrics on a sample") in passed
    assert ("model bert-tiny-ner", "predict + save/load") in passed


def test_a_frozen_probe_starts_from_the_closed_form_tagger(data, tmp_path):
    """`--freeze all`: the cached probe's linear tagger starts from a logistic regression
    on the first-piece features, C chosen on eval by entity F1; recorded in training.json
    and on the card."""
    out = tmp_path / "probe"
    zoo_cli("train", "bert-tiny-ner", "--train", str(data["train"]), "--eval",
            str(data["eval"]), "--out", str(out), "--epochs", "1", "--freeze", "all",
            "--quiet")
    record = json.loads((out / "training.json").read_text())
    init = record["probe_init"]
    assert init["method"] == "lbfgs" and init["C"] in (0.3, 1.0, 3.0, 10.0, 30.0, 100.0)
    assert 0 <= init["eval_f1"] <= 1 and init["words"] > 1000
    assert "fitted by L-BFGS" in (out / "README.md").read_text()
