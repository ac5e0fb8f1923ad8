"""Metrics: hand-checked cases, and zoo's numbers equal pycocotools' and jiwer's own."""
from __future__ import annotations

import json

import pytest

from zoo.metrics import asr_metrics, classification_metrics, detection_metrics


def test_accuracy_and_macro_f1_by_hand():
    y_true = ["a", "a", "b", "b", "c"]
    y_pred = ["a", "b", "b", "b", "a"]
    m = classification_metrics(y_true, y_pred, ["a", "b", "c"])
    assert m["accuracy"] == pytest.approx(3 / 5)
    # F1: a = 2*1/(2+1+1) = 0.5; b = 2*2/(4+1+0) = 0.8; c = 0
    assert m["f1_macro"] == pytest.approx((0.5 + 0.8 + 0.0) / 3)


def test_wer_and_cer_by_hand_and_as_jiwer_computes_them():
    import jiwer

    refs, hyps = ["the cat sat", "on the mat"], ["the cat sit", "on mat"]
    m = asr_metrics(refs, hyps)
    assert m["wer"] == pytest.approx(2 / 6)  # one substitution, one deletion
    assert m["cer"] == pytest.approx((1 + 4) / 21)  # 'a'->'i'; "the " deleted
    assert m["wer"] == jiwer.wer(refs, hyps) and m["cer"] == jiwer.cer(refs, hyps)



def test_asr_predictions_are_normalised_as_the_references_are():
    """zoo eval (and training's evaluation) of an ASR model: capitals and punctuation in a
    prediction (Whisper writes them) are no error; a wrong word still is."""
    from types import SimpleNamespace

    from zoo.base.example import Example
    from zoo.tasks.asr import SpeechRecognition, transcript_metrics

    assert transcript_metrics(["hello world"], ["Hello, World."]) == {"wer": 0.0, "cer": 0.0}
    assert transcript_metrics(["Hello world!"], [" hello   world "])["wer"] == 0.0
    assert transcript_metrics(["hello world"], ["Hello, Word."])["wer"] == pytest.approx(1 / 2)
    # through the task, as zoo eval calls it: a head without a vocabulary (Whisper) ...
    examples = [Example(line=i, inputs={}, targets={"transcript": t})
                for i, t in enumerate(("the cat sat", "on the mat"), 1)]
    whisper = SimpleNamespace(head=SimpleNamespace())
    task = SpeechRecognition()
    assert task.metrics(whisper, examples, [{"text": "The cat sat."},
                                            {"text": "On the mat!"}])["wer"] == 0.0
    assert task.metrics(whisper, examples, [{"text": "The cat sat."},
                                            {"text": "On a mat!"}])["wer"] == pytest.approx(1 / 6)
    # any language and script (Whisper is multilingual): letters, accents and digits are
    # kept and scored, punctuation and case are not
    ru = [Example(line=1, inputs={}, targets={"transcript": "привет мир ёлка"})]
    assert task.metrics(whisper, ru, [{"text": "Привет, мир! Ёлка."}])["wer"] == 0.0
    assert task.metrics(whisper, ru, [{"text": "Привет, мор! Ёлка."}])["wer"] == \
        pytest.approx(1 / 3)
    assert transcript_metrics(["grüße aus köln"], ["Grüße aus Koln!"])["wer"] == \
        pytest.approx(1 / 3)
    assert transcript_metrics(["it's 2 o'clock"], ["It’s 2 o’clock."])["wer"] == 0.0
    assert transcript_metrics(["it's 2 o'clock"], ["It's 3 o'clock."])["wer"] == \
        pytest.approx(1 / 3)
    assert transcript_metrics(["नमस्ते दुनिया"], ["नमस्ते, दुनिया।"])["wer"] == 0.0
    # ... and a CTC head's own vocabulary, on both sides
    ctc = SimpleNamespace(head=SimpleNamespace(vocabulary=" acehmnost"))
    assert task.metrics(ctc, examples, [{"text": "THE CAT SAT"},
                                        {"text": "on the mat"}])["wer"] == 0.0

GT = [{"boxes": [[10, 10, 50, 50], [60, 60, 100, 120]], "labels": ["cat", "dog"]},
      {"boxes": [[0, 0, 30, 40]], "labels": ["dog"]}]
PRED = [{"boxes": [[12, 11, 50, 52], [60, 58, 104, 118], [200, 200, 220, 220]],
         "labels": ["cat", "dog", "cat"], "scores": [0.9, 0.8, 0.3]},
        {"boxes": [[2, 1, 31, 38], [0, 0, 10, 10]], "labels": ["dog", "dog"],
         "scores": [0.7, 0.6]}]


def test_detection_perfect_predictions_score_one():
    perfect = [{**g, "scores": [1.0] * len(g["boxes"])} for g in GT]
    m = detection_metrics(GT, perfect, ["cat", "dog"])
    assert m["map"] == pytest.approx(1.0) and m["map_50"] == pytest.approx(1.0)


def test_detection_metrics_equal_pycocotools_run_on_files(tmp_path):
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    cats = ["cat", "dog"]
    gt = {"images": [{"id": i + 1, "file_name": f"{i}.png", "height": 240, "width": 240}
                     for i in range(len(GT))],
          "categories": [{"id": i + 1, "name": c} for i, c in enumerate(cats)],
          "annotations": []}
    dets = []
    for i, (g, p) in enumerate(zip(GT, PRED)):
        for b, label in zip(g["boxes"], g["labels"]):
            gt["annotations"].append({"id": len(gt["annotations"]) + 1, "image_id": i + 1,
                                      "category_id": cats.index(label) + 1, "iscrowd": 0,
                                      "bbox": [b[0], b[1], b[2] - b[0], b[3] - b[1]],
                                      "area": (b[2] - b[0]) * (b[3] - b[1])})
        for b, label, s in zip(p["boxes"], p["labels"], p["scores"]):
            dets.append({"image_id": i + 1, "category_id": cats.index(label) + 1, "score": s,
                         "bbox": [b[0], b[1], b[2] - b[0], b[3] - b[1]]})
    (tmp_path / "gt.json").write_text(json.dumps(gt))
    (tmp_path / "dt.json").write_text(json.dumps(dets))
    coco = COCO(str(tmp_path / "gt.json"))
    ev = COCOeval(coco, coco.loadRes(str(tmp_path / "dt.json")), "bbox")
    ev.evaluate()
    ev.accumulate()
    ev.summarize()
    ours = detection_metrics(GT, PRED, cats)
    assert ours["map"] == pytest.approx(ev.stats[0], abs=1e-12)
    assert ours["map_50"] == pytest.approx(ev.stats[1], abs=1e-12)
    assert 0 < ours["map"] < 1 and ours["map_50"] == pytest.approx(1.0)


def test_macro_f1_equals_scikit_learn_with_unseen_and_missing_labels():
    """A label in the eval data the model never predicts (or cannot: it never saw it) counts
    with F1 0; a predicted label absent from the eval data counts too, as in scikit-learn."""
    from sklearn.metrics import accuracy_score, f1_score

    cases = [
        (["a", "a", "b", "c", "c", "d"], ["a", "a", "b", "a", "a", "a"]),  # c, d never predicted
        (["a", "b", "b", "b"], ["a", "b", "x", "b"]),  # x predicted, never true
        ([0, 1, 1, 2], [0, 1, 1, 1]),  # int labels
    ]
    for y_true, y_pred in cases:
        m = classification_metrics(y_true, y_pred, ["a", "b"])
        t, p = list(map(str, y_true)), list(map(str, y_pred))
        assert m["f1_macro"] == pytest.approx(f1_score(t, p, average="macro", zero_division=0))
        assert m["accuracy"] == pytest.approx(accuracy_score(t, p))
    m = classification_metrics(*cases[0], ["a", "b"])
    assert set(m["per_class"]) == {"a", "b", "c", "d"} and m["per_class"]["c"]["f1-score"] == 0
    # the unseen labels pull macro-F1 down: (4/7 + 1 + 0 + 0) / 4, where accuracy is 0.5
    assert m["f1_macro"] == pytest.approx((2 * 2 / (2 * 2 + 3) + 1.0) / 4)
    assert m["accuracy"] == pytest.approx(0.5)


def test_multi_label_metrics_equal_scikit_learn():
    from sklearn.metrics import f1_score
    from sklearn.preprocessing import MultiLabelBinarizer

    y_true = [["a", "b"], ["b"], ["c"], []]
    y_pred = [["a"], ["b"], ["b", "c"], ["a"]]
    m = classification_metrics(y_true, y_pred)
    mlb = MultiLabelBinarizer().fit(y_true + y_pred)
    want = f1_score(mlb.transform(y_true), mlb.transform(y_pred), average="macro",
                    zero_division=0)
    assert m["f1_macro"] == pytest.approx(want) and m["accuracy"] == pytest.approx(1 / 4)


def test_evaluating_on_labels_the_model_cannot_predict_warns(tmp_path):
    import zoo

    model = zoo.create_model("tiny-text-image-clf", labels=["cat", "dog"])
    data = [{"text": "a cat", "label": "cat"}, {"text": "a bird", "label": "bird"}]
    with pytest.warns(UserWarning, match="cannot predict.*bird"):
        m = zoo.evaluate(model, data, write=False)
    assert "bird" in m["per_class"]
