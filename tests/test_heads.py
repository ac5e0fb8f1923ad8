"""Heads: detection target encoding/decoding, CTC greedy vs beam search, classification."""
from __future__ import annotations

import math

import pytest
import torch

import zoo
from zoo.build.compose import compose
from zoo.heads.asr import CTCHead, normalize_text
from zoo.heads.detection import DetectionHead

IMG = {"image": {"dim": 16, "outputs": ["pooled", "features"], "feature_channels": [8, 16, 32],
                 "feature_strides": [8, 16, 32],
                 "data_config": {"input_size": [3, 128, 128], "crop_mode": "squash"}}}


def test_detection_decoding_of_encoded_targets_gives_the_boxes_back():
    head = DetectionHead(IMG, labels=["cat", "dog", "bird"], dim=16)
    # boxes in pixels of a 200 x 300 (h x w) original image, small and large
    truth = {"boxes": [[30.0, 40.0, 90.0, 100.0], [150.0, 20.0, 290.0, 190.0],
                       [10.0, 150.0, 40.0, 180.0]], "labels": ["dog", "cat", "bird"]}
    targets = head.encode_targets([truth])
    shapes = [(128 // s, 128 // s) for s in head.strides]
    points, strides, levels = head._points(shapes, torch.device("cpu"))
    to_input = torch.tensor([128 / 300, 128 / 200, 128 / 300, 128 / 200])  # (w, h) scales
    cls_t, reg_t, ctr_t = head.assign(points, strides, levels, targets[0]["boxes"] * to_input,
                                      targets[0]["labels"])
    assert (cls_t >= 0).sum() >= 3 and set(cls_t[cls_t >= 0].tolist()) == {0, 1, 2}
    n, c = points.shape[0], len(head.labels)
    logits = torch.full((1, n, c), -12.0)
    pos = cls_t >= 0
    logits[0, pos, cls_t[pos]] = 12.0
    ctr_logit = torch.logit(ctr_t.clamp(1e-4, 1 - 1e-4))[None]
    outputs = {"cls": logits, "reg": reg_t[None], "ctr": ctr_logit, "points": points,
               "strides": strides, "levels": levels, "input_hw": (128, 128),
               "image_sizes": [[200, 300]]}  # the original (h, w) the encoder reported
    pred = head.decode(outputs, None, score_threshold=0.3)[0]
    assert sorted(pred["labels"]) == sorted(truth["labels"])
    for box, label in zip(truth["boxes"], truth["labels"]):
        got = pred["boxes"][pred["labels"].index(label)]
        assert got == pytest.approx(box, abs=0.05), (label, got, box)
    # and the loss on a perfect prediction is lower than on a blank one
    perfect = head.loss(outputs, targets)
    blank = head.loss({**outputs, "cls": torch.full_like(logits, -4.6)}, targets)
    assert perfect < blank


def test_detection_head_trains_end_to_end_and_open_vocabulary_labels(tmp_path):
    m = zoo.create_model("timm-tiny-fcos")
    m.train()
    img = torch.rand(96, 128, 3).numpy()
    batch = m.preprocess([{"image": img}])
    out = m(batch)
    target = [{"boxes": [[10, 10, 60, 50]], "labels": ["3"]}]
    loss = m.loss(out, target, batch)
    loss.backward()
    assert math.isfinite(loss.item()) and m.head.bbox.weight.grad is not None
    opt = torch.optim.Adam(m.parameters(), lr=1e-3)  # a few optimiser steps on the batch
    for _ in range(8):
        opt.zero_grad()
        m.loss(m(batch), target, batch).backward()
        opt.step()
    assert m.loss(m(batch), target, batch).item() < loss.item()  # it learns
    with pytest.raises(zoo.ZooError, match="open-vocabulary"):
        m.predict([{"image": img}], labels=["cat"])
    with pytest.raises(zoo.ZooError, match="not one of the detector's labels"):
        m.loss(out, [{"boxes": [[1, 1, 5, 5]], "labels": ["cat"]}], batch)


def test_text_prompted_detector_takes_new_labels_at_predict_time():
    m = compose(
        "detection", {"image": {"name": "timm-tiny", "features": True,
                                "data_config": {"input_size": [3, 64, 64],
                                                "crop_mode": "squash", "crop_pct": 1.0}},
                      "text": "bert-tiny"},
        {"name": "detection", "labels": ["cat", "dog"], "text_prompts": True, "dim": 16,
         "score_threshold": 0.0})
    img = torch.rand(64, 64, 3).numpy()
    out = m.predict([{"image": img}], labels=["zebra", "giraffe", "lion"], max_detections=20)
    assert out[0]["labels"] and set(out[0]["labels"]) <= {"zebra", "giraffe", "lion"}
    assert set(m.predict([{"image": img}], max_detections=20)[0]["labels"]) <= {"cat", "dog"}


def _emissions(path: str, vocab: str, frames_per_char: int = 3) -> torch.Tensor:
    """A log-prob matrix whose single clear path spells ``path`` (with blanks between)."""
    rows = []
    for ch in path:
        for k in range(frames_per_char):
            idx = vocab.index(ch) + 1 if k < 2 else 0  # char, char, blank
            row = torch.full((len(vocab) + 1,), -9.0)
            row[idx] = -0.01
            rows.append(row)
    return torch.stack(rows)[None].log_softmax(-1)  # (1, T, V + 1)


def test_ctc_greedy_and_beam_search_agree_on_a_clear_path():
    head = CTCHead({"audio": {"dim": 8, "outputs": ["sequence"]}})
    lp = _emissions("the cat sat", head.vocabulary)
    lengths = torch.tensor([lp.shape[1]])
    assert head.greedy(lp, lengths) == ["the cat sat"]
    assert head.beam(lp, lengths, beam_size=8) == ["the cat sat"]
    out = head.decode({"log_probs": lp, "lengths": lengths}, decoder="beam", beam_size=4)
    assert out == [{"text": "the cat sat"}]


def test_ctc_beam_search_with_a_lexicon_corrects_to_words(tmp_path):
    head = CTCHead({"audio": {"dim": 8, "outputs": ["sequence"]}})
    lp = _emissions("the cat sax", head.vocabulary)
    # make 'x' only slightly more likely than 't' in the last letter's frames
    t_idx, x_idx = head.vocabulary.index("t") + 1, head.vocabulary.index("x") + 1
    lp[0, -3:-1, t_idx] = lp[0, -3:-1, x_idx] - 0.5
    lp = lp.log_softmax(-1)
    lengths = torch.tensor([lp.shape[1]])
    assert head.greedy(lp, lengths) == ["the cat sax"]
    lexicon = tmp_path / "lexicon.txt"
    lexicon.write_text("".join(f"{w} {' '.join(w)} |\n" for w in ("the", "cat", "sat", "mat")))
    assert head.beam(lp, lengths, beam_size=16, lexicon=str(lexicon)) == ["the cat sat"]


def test_ctc_targets_and_loss():
    head = CTCHead({"audio": {"dim": 8, "outputs": ["sequence"]}})
    t = head.encode_targets([{"transcript": "Hello, World!"}, {"transcript": "it's-ok"}])
    assert t["target_lengths"].tolist() == [11, 7]
    assert normalize_text("Hello, World!") == "hello world"
    lp = torch.randn(2, 30, len(head.vocabulary) + 1).log_softmax(-1)
    loss = head.loss({"log_probs": lp, "lengths": torch.tensor([30, 25])}, t)
    assert math.isfinite(loss.item())
    with pytest.raises(zoo.ZooError, match="no character"):
        head.encode_targets([{"transcript": "!!!"}])


def test_multi_label_classification_head():
    from zoo.heads.classification import ClassificationHead

    head = ClassificationHead(4, labels=["a", "b", "c"], multi_label=True, threshold=0.5)
    y = head.encode_targets([{"label": ["a", "c"]}, {"label": "b"}])
    assert y.tolist() == [[1, 0, 1], [0, 1, 0]]
    out = head.decode(torch.tensor([[5.0, -5.0, 5.0]]))
    assert out[0]["label"] == ["a", "c"] and len(out[0]["score"]) == 2


def test_ctc_beam_search_with_an_ngram_lm_changes_the_choice(tmp_path):
    """Shallow fusion: a KenLM (ARPA) model that prefers 'sat' overturns emissions that
    slightly prefer 'sit'."""
    head = CTCHead({"audio": {"dim": 8, "outputs": ["sequence"]}})
    lp = _emissions("the cat sit", head.vocabulary)
    i_idx, a_idx = head.vocabulary.index("i") + 1, head.vocabulary.index("a") + 1
    frames = slice(-6, -4)  # the frames of the vowel in the last word
    lp[0, frames, a_idx] = lp[0, frames, i_idx] - 1.0
    lp = lp.log_softmax(-1)
    lengths = torch.tensor([lp.shape[1]])
    lexicon = tmp_path / "lexicon.txt"
    lexicon.write_text("".join(f"{w} {' '.join(w)} |\n" for w in ("the", "cat", "sat", "sit")))
    arpa = tmp_path / "lm.arpa"
    arpa.write_text("\\data\\\nngram 1=6\nngram 2=2\n\n\\1-grams:\n-1.0\t<s>\t-0.3\n"
                    "-1.0\t</s>\n-0.5\tthe\t-0.3\n-0.5\tcat\n-0.3\tsat\n-6.0\tsit\n\n"
                    "\\2-grams:\n-0.2\t<s> the\n-0.2\tthe cat\n\n\\end\\\n")
    assert head.greedy(lp, lengths) == ["the cat sit"]
    assert head.beam(lp, lengths, beam_size=16, lexicon=str(lexicon)) == ["the cat sit"]
    assert head.beam(lp, lengths, beam_size=16, lexicon=str(lexicon), lm=str(arpa),
                     lm_weight=2.0) == ["the cat sat"]
