"""zoo-text-toxic: the ready toxicity classifier gives the Keras model's outputs (Keras 3
itself, on its torch backend, loads the package's own weights and tokenizer as a reference),
its tokenizer pickle is read as data only, and the model goes through every verb."""
from __future__ import annotations

import json
import os
import pickle

import httpx
import pytest

import zoo
from conftest import run_zoo

SENTENCES = [
    "You are so dumb and stupid!",
    "Thank you for the helpful edit, I appreciate it.",
    "I will find you and hurt you",
    "",
    "WHAT IS WRONG WITH YOU, you IDIOT???",
    "Go back to where you came from, you filthy animal",
    "café naïve résumé — über 100% “quoted” text\twith tabs\nand newlines",
    " ".join(["this sentence keeps going and going"] * 30) + " you moron",  # > 100 tokens
    "!!!",
    "the edits I made were reverted; please explain why on my talk page",
]


@pytest.fixture(scope="module")
def ready():
    return zoo.create_model("toxic-bilstm-jigsaw", pretrained=True)


def _keras_reference(texts):
    """The package's own network rebuilt in Keras 3 (as toxic_classifier/model.py does),
    its weights loaded by Keras, its tokenizer unpickled by Keras (trusted here: a test)."""
    os.environ.setdefault("KERAS_BACKEND", "torch")
    keras = pytest.importorskip("keras")
    from keras import layers
    from keras.utils import pad_sequences

    from zoo.plugin import weights_path

    h5, tok = weights_path("toxic-bilstm.jigsaw"), weights_path("toxic-bilstm.jigsaw-tokenizer")
    with open(tok, "rb") as f:
        tokenizer = pickle.load(f)
    inp = keras.Input(shape=(100,))
    x = layers.Embedding(input_dim=20000, output_dim=50, trainable=False)(inp)
    x = layers.Bidirectional(layers.LSTM(50, return_sequences=True))(x)
    x = layers.GlobalMaxPooling1D()(x)
    x = layers.Dense(50, activation="relu")(x)
    out = layers.Dense(6, activation="sigmoid")(x)
    model = keras.Model(inp, out)
    model.load_weights(str(h5))
    seqs = pad_sequences(tokenizer.texts_to_sequences(texts), maxlen=100)
    return seqs, model.predict(seqs, verbose=0)


def test_outputs_equal_the_keras_models(ready):
    seqs, expected = _keras_reference(SENTENCES)
    ids = ready.encoders["text"].preprocess(SENTENCES)["input_ids"]
    assert ids.tolist() == seqs.tolist()  # the tokenizer, token for token
    got = ready.predict([{"text": t} for t in SENTENCES])
    labels = ready.labels
    for row, exp in zip(got, expected):
        assert [row["scores"][lab] for lab in labels] == pytest.approx(exp.tolist(), abs=2e-5)
    assert got[0]["label"] == ["toxic", "obscene", "insult"]  # the package README's example
    assert got[1]["label"] == []


def test_the_tokenizer_pickle_is_read_as_data_only(tmp_path):
    from zoo_text_toxic.convert import read_tokenizer

    class Boom:
        def __reduce__(self):
            return (os.system, (f"touch {tmp_path / 'pwned'}",))

    evil = tmp_path / "tokenizer.pickle"
    evil.write_bytes(pickle.dumps(Boom()))
    with pytest.raises(pickle.UnpicklingError, match="refused to load posix.system"):
        read_tokenizer(evil)
    assert not (tmp_path / "pwned").exists()


def test_it_is_listed_ready_and_the_cli_predicts_with_a_threshold():
    listed = json.loads(run_zoo("list", "--ready", "--json").stdout)
    assert "toxic-bilstm-jigsaw" in {r["name"] for r in listed}
    proc = run_zoo("predict", "toxic-bilstm-jigsaw", SENTENCES[0], "--option", "threshold=0.9")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)[0]["label"] == ["toxic"]
    bad = run_zoo("predict", "toxic-bilstm-jigsaw", "hi", "--option", "threshold=2")
    assert bad.returncode == 1 and "threshold must be a number in [0, 1]" in bad.stderr


def _jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.mark.slow
def test_eval_fine_tune_serve_feedback_save_load_and_push(ready, tmp_path, hub):
    rows = [{"text": "you stupid idiot", "label": ["toxic", "insult"]},
            {"text": "thanks, great edit", "label": []},
            {"text": "I will kill you", "label": ["toxic", "threat"]},
            {"text": "what a lovely picture", "label": []}] * 4
    data = _jsonl(tmp_path / "toxic.jsonl", rows)
    folder = ready.save_pretrained(tmp_path / "ready")
    before = (folder / "README.md").read_text()
    m = json.loads(run_zoo("eval", str(folder), "--data", str(data), "--json").stdout)
    assert m["n"] == 16 and m["accuracy"] > 0  # exact-set accuracy over the six labels
    assert (folder / "README.md").read_text() == before  # eval is read-only
    # fine-tuning on the same labels keeps the pretrained head (label order aside)
    run = tmp_path / "tuned"
    zoo.train(folder, data, data, run, epochs=2, progress=False)
    tuned = zoo.load(run)
    assert tuned.labels == ready.labels and tuned.config["head"]["name"] == "toxicity-classifier"
    card = (run / "README.md").read_text()
    assert "toxic-bilstm" in card and "license: mit" in card.lower()
    back = zoo.load(folder)  # the saved model brings its tokenizer: no package needed
    assert back.predict([{"text": SENTENCES[2]}]) == ready.predict([{"text": SENTENCES[2]}])
    from zoo.serve.app import create_app
    from zoo.serve.uvicorn import run_in_thread

    with run_in_thread(create_app(back, feedback_db=tmp_path / "fb.db")) as srv:
        r = httpx.post(f"{srv.url}/predict", timeout=60,
                       json={"inputs": [SENTENCES[0]], "parameters": {"threshold": 0.9}})
        assert r.status_code == 200 and r.json()["outputs"][0]["label"] == ["toxic"]
        ok = httpx.post(f"{srv.url}/feedback", timeout=60, json={
            "input": {"text": "you are a clown"}, "correction": ["insult"]})
        assert ok.status_code == 200, ok.text
        bad = httpx.post(f"{srv.url}/feedback", timeout=60, json={
            "input": {"text": "x"}, "correction": ["rude"]})
        assert bad.status_code == 422
    out = tmp_path / "fb.jsonl"
    run_zoo("data", "from-feedback", str(tmp_path / "fb.db"), "--out", str(out))
    line = json.loads(out.read_text())
    assert line["text"] == "you are a clown" and line["label"] == ["insult"]
    back.push_to_hub("zoo-tests/toxic")
    pulled = zoo.load("hf-hub:zoo-tests/toxic")
    assert pulled.predict([{"text": SENTENCES[4]}]) == back.predict([{"text": SENTENCES[4]}])
