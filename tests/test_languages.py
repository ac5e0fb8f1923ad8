"""Text in other languages: the language guess, the char n-gram encoder, and the default
text classifier picking its fallback by the training data."""
from __future__ import annotations

import json

import pytest
import torch

import zoo
from conftest import run_zoo
from zoo.data.language import text_language

EN = ["The cat sat on the mat and looked at the door.", "It is what it is, and that is all."]
RU = ["Кошка сидела на ковре и смотрела на дверь.", "Любовь никогда не перестаёт."]
DE = ["Die Katze saß auf der Matte und sah zur Tür.", "Wer nicht wagt, der nicht gewinnt."]
ES = ["El gato se sentó en la alfombra y miró la puerta.", "Más vale tarde que nunca."]


@pytest.mark.parametrize("texts,lang", [(EN, "en"), (RU, "other"), (DE, "other"),
                                        (ES, "other")])
def test_language_guess(texts, lang):
    assert text_language(texts)[0] == lang
    assert text_language(["", "  "]) == (None, None)


def test_char_ngram_encoder_reads_any_script():
    model = zoo.create_model("char-text-clf", labels=["a", "b"])
    enc = model.encoders["text"]
    batch = enc.preprocess(RU + EN + [""])
    assert batch["ngram_ids"].shape[0] == 5 and batch["ngram_ids"].dtype == torch.long
    w = batch["ngram_weights"]
    assert torch.allclose((w[:4] ** 2).sum(1), torch.ones(4))  # L2-normalised per text
    assert float(w[4].abs().sum()) == 0.0  # empty text: no n-grams, a zero bag
    out = enc(**batch).pooled
    assert out.shape == (5, 64) and torch.isfinite(out).all()
    assert not torch.allclose(out[0], out[1])
    # morphology: two forms of one Russian word share character n-grams, hence ids
    a, b = (set(enc.preprocess([x])["ngram_ids"][0].tolist()) for x in ("любовь", "любовью"))
    assert len(a & b) >= 4


def _rows(texts, labels):
    return [{"text": t, "label": lab} for t, lab in zip(texts, labels)]


def test_text_clf_trains_its_fallback_on_russian_and_keeps_minilm_for_english(tmp_path):
    from zoo.training.data import pick_model

    ru = [f"{t} {i}" for i in range(12) for t in RU]
    data = tmp_path / "ru.jsonl"
    data.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n"
                            for r in _rows(ru, ["кошка", "любовь"] * 12)))
    proc = run_zoo("train", "text-clf", "--train", str(data), "--eval", str(data), "--out",
                   str(tmp_path / "run"), "--epochs", "3", "--quiet", check=True)
    assert "training tfidf-text-clf instead" in proc.stderr
    cfg = json.loads((tmp_path / "run" / "config.json").read_text())
    assert cfg["encoders"]["text"]["name"] == "tfidf-ngram"
    assert json.loads(proc.stdout)["best"]["accuracy"] == 1.0  # two topics, seen texts
    back = zoo.load(tmp_path / "run")
    assert [p["label"] for p in back.predict([{"text": RU[0]}, {"text": RU[1]}])] == \
        ["кошка", "любовь"]
    # English text keeps the pretrained English encoder; a model without fallback is kept
    from zoo.data.formats import read_any

    en = tmp_path / "en.jsonl"
    en.write_text("".join(json.dumps(r) + "\n" for r in _rows(EN * 4, ["a", "b"] * 4)))
    examples = read_any(en)[0]
    assert pick_model("text-clf", examples, True) == "text-clf"
    ru_examples = read_any(data)[0]
    assert pick_model("minilm-text-clf", ru_examples, True) == "minilm-text-clf"
    assert pick_model("text-clf", ru_examples, False) == "tfidf-text-clf"


def test_a_fallback_that_is_not_a_model_name_is_one_line(tmp_path):
    reg = tmp_path / "reg.toml"
    reg.write_text('[models.x]\ntask = "classification"\nencoders = { text = "bert-tiny" }\n'
                   'head = { name = "classification", labels = ["a"] }\nfallback = 3\n')
    proc = run_zoo("list", env={"ZOO_REGISTRY": str(reg)})
    assert proc.returncode != 0
    assert "key 'fallback': expected a model name" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_tfidf_encoder_is_fitted_cached_and_starts_as_tfidf_plus_logistic_regression(tmp_path):
    """tfidf-text-clf: the encoder has nothing to train, so the run caches it and the probe
    starts from the logistic regression on its features; the vocabulary travels with the
    model, and a second fit (fine-tuning the saved model) keeps it."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    texts = [f"{t} {w}" for t in RU + DE for w in ("eins", "zwei", "drei")]
    rows = [
        {"text": t, "label": "ru" if t.split()[0] in ("Кошка", "Любовь") else "de"}
        for t in texts]
    model = zoo.create_model("tfidf-text-clf")
    enc = model.encoders["text"]
    assert not list(enc.parameters())
    assert not enc.preprocess(["x"])["tfidf"].any()  # not fitted yet: nothing is known
    summary = zoo.train(model, rows, rows, tmp_path / "m", epochs=2, progress=False,
                        loggers=[])
    assert summary["frozen"] == ["text"] and summary["feature_cache"]
    assert summary["probe_init"]["method"] == "lbfgs"
    ref = TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), sublinear_tf=True,
                          max_features=32768).fit(texts)
    ours = enc.preprocess(texts)["tfidf"]
    assert ours.shape == (len(texts), 32768)
    import numpy as np

    np.testing.assert_allclose(ours[:, :len(ref.vocabulary_)].numpy(),
                               ref.transform(texts).toarray(), atol=1e-6)
    assert (tmp_path / "m" / "preprocessor" / "text" / "tfidf.json").is_file()
    # a weak probe (labels unrelated to the text) is not "fine-tuned": the fitted encoder
    # has no parameters, and a second stage would only train the same head, uncached
    noise = [dict(r, label=("ru", "de")[i % 2]) for i, r in enumerate(rows)]
    flipped = [dict(r, label=("de", "ru")[i % 2]) for i, r in enumerate(rows)]
    weak = zoo.train(zoo.create_model("tfidf-text-clf"), noise, flipped, tmp_path / "w",
                     epochs=2, progress=False, loggers=[])
    assert weak["best"]["accuracy"] < 0.98 and not weak["finetuned"]
    assert weak["epochs_run"] == 2
    back = zoo.load(tmp_path / "m")
    x = [{"text": t} for t in texts]
    assert back.predict(x) == model.eval().predict(x)
    vocab = list(back.encoders["text"]._fitted["char"]["vocabulary"])
    back.encoders["text"].fit(["ganz andere Wörter hier"])  # fine-tuning keeps its fit
    assert back.encoders["text"]._fitted["char"]["vocabulary"] == vocab


def test_wide_tfidf_features_are_cached_sparse_and_collated_back_dense():
    """A TF-IDF row of 32,768 n-grams has a few hundred non-zeros: the feature cache keeps
    it sparse (128 KB dense a text) and every batch gets exactly the dense vectors."""
    from zoo.data.manifest import Example
    from zoo.training.cache import collate_cached, encode_all

    texts = [f"{t} {w}" for t in RU + DE for w in ("eins", "zwei", "drei")]
    model = zoo.create_model("tfidf-text-clf").eval()
    model.encoders["text"].fit(texts)
    examples = [Example(i + 1, {"text": t}, {"label": "ru"}) for i, t in enumerate(texts)]
    rows = encode_all(model, examples, batch_size=4)
    assert all(r["text"]["pooled"].is_sparse for r in rows)
    assert all(r["text"]["pooled"]._nnz() < 500 for r in rows)
    encoded, _ = collate_cached(rows, ["text"], torch.device("cpu"))
    dense = model.encoders["text"].preprocess(texts)["tfidf"]
    assert not encoded["text"][0].pooled.is_sparse
    assert torch.equal(encoded["text"][0].pooled, dense)
