"""Contrastive pretraining: zoo pretrain, recall@k in both directions, zero-shot
classification, save/load, and a classifier seeded from the alignment."""
from __future__ import annotations

import json

import pytest
import torch

import zoo
from conftest import run_zoo
from zoo.build.compose import compose
from zoo.testing.synthetic import NUMBER_WORDS, digits_manifests
from zoo.metrics import retrieval_metrics

TINY = {"image": {"name": "timm-tiny", "data_config": {"input_size": [3, 32, 32]}},
        "text": "bert-tiny"}


@pytest.fixture(scope="module")
def pairs(tmp_path_factory):
    d = tmp_path_factory.mktemp("pairs")
    base = digits_manifests(d, size=32, limit=120)
    out = {}
    for split in ("train", "val", "test"):
        rows = [json.loads(x) for x in base[split].read_text().splitlines()]
        out[split] = d / f"pairs-{split}.jsonl"
        out[split].write_text("".join(json.dumps({
            "image": r["image"], "text": f"the digit {NUMBER_WORDS[int(r['label'])]}",
            "label": r["label"]}) + "\n" for r in rows))
        out[f"{split}-pairs-only"] = d / f"po-{split}.jsonl"
        out[f"{split}-pairs-only"].write_text("".join(json.dumps({
            "image": r["image"], "text": f"the digit {NUMBER_WORDS[int(r['label'])]}"}) + "\n"
            for r in rows))
    return out


def test_retrieval_recall_by_hand():
    emb = {"image": [[1, 0], [0, 1], [1, 0.1]], "text": [[1, 0], [0, 1], [1, -0.2]]}
    keys = {"image": ["a.png", "b.png", "c.png"], "text": ["cat", "dog", "cat"]}
    m = retrieval_metrics(emb, keys)
    # image->text: a->cat (hit), b->dog (hit), c->"cat" row 0 (same caption: hit)
    assert m["image_to_text_r1"] == 1.0
    # text->image: cat->a (hit), dog->b (hit), row 2 ("cat" again) -> a.png, not c.png
    assert m["text_to_image_r1"] == pytest.approx(2 / 3)
    assert m["recall_at_1"] == pytest.approx((1 + 2 / 3) / 2)


def test_pretrain_cli_eval_zero_shot_and_round_trip(pairs, tmp_path):
    out = tmp_path / "aligned"
    proc = run_zoo("pretrain", "--encoders", "image=timm-tiny,text=bert-tiny", "--data",
                   str(pairs["train-pairs-only"]), "--eval", str(pairs["val-pairs-only"]),
                   "--out", str(out), "--epochs", "2", "--batch-size", "32", "--dim", "32",
                   "--quiet", check=True)
    assert "recall_at_1" in json.loads(proc.stdout)["best"]
    r = json.loads(run_zoo("eval", str(out), "--data", str(pairs["test-pairs-only"]), "--json",
                           check=True).stdout)
    for k in ("image_to_text_r1", "image_to_text_r5", "text_to_image_r1", "text_to_image_r5",
              "recall_at_1"):
        assert 0.0 <= r[k] <= 1.0
    model = zoo.load(out)
    assert model.task == "retrieval"
    rows = [json.loads(x) for x in pairs["test"].read_text().splitlines()][:5]
    labels = [f"the digit {w}" for w in NUMBER_WORDS]
    zs = model.zero_shot([{"image": str(pairs["test"].parent / x["image"])} for x in rows],
                         labels=labels)
    for p in zs:
        assert p["label"] in labels and set(p["scores"]) == set(labels)
        assert abs(sum(p["scores"].values()) - 1) < 1e-5
    model.save_pretrained(tmp_path / "again")
    again = zoo.load(tmp_path / "again")
    assert again.zero_shot([{"image": str(pairs["test"].parent / x["image"])} for x in rows],
                           labels=labels) == zs
    with pytest.raises(zoo.ZooError, match="aligned with text"):
        zoo.create_model("tiny-text-image-clf").zero_shot([{"image": "x"}], labels=["a"])


def test_contrastive_training_aligns_pairs(pairs, tmp_path):
    model = compose("retrieval", TINY, {"name": "contrastive", "dim": 32})
    before = zoo.evaluate(model, pairs["train-pairs-only"], write=False)["image_to_text_r1"]
    zoo.train(model, pairs["train-pairs-only"], None, tmp_path / "r", epochs=15, lr=3e-3,
              batch_size=24, freeze="none", progress=False)
    after = zoo.evaluate(tmp_path / "r", pairs["train-pairs-only"],
                         write=False)["image_to_text_r1"]
    assert after > max(0.5, before + 0.3), (before, after)


def test_a_classifier_trained_on_an_alignment_keeps_its_encoders(pairs, tmp_path):
    aligned = compose("retrieval", TINY, {"name": "contrastive", "dim": 32})
    aligned.save_pretrained(tmp_path / "aligned")
    out = tmp_path / "clf"
    labels_only = tmp_path / "images.jsonl"
    labels_only.write_text("".join(json.dumps({"image": str(pairs["train"].parent / json.loads(
        x)["image"]), "label": json.loads(x)["label"]}) + "\n"
        for x in pairs["train"].read_text().splitlines()))
    with pytest.raises(zoo.ZooError):  # no hidden task switch: a retrieval model stays one
        zoo.train(tmp_path / "aligned", labels_only, None, out, epochs=1, progress=False)
    zoo.train(tmp_path / "aligned", labels_only, None, out, epochs=1, progress=False,
              task="classification")
    clf = zoo.load(out)
    assert clf.task == "classification" and clf.modalities == ["image"]
    assert clf.labels == sorted({json.loads(x)["label"] for x in labels_only.read_text()
                                 .splitlines()})
    a = zoo.load(tmp_path / "aligned").encoders["image"].state_dict()
    b = clf.encoders["image"].state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)  # frozen by default: the aligned weights


@pytest.mark.slow
def test_pretraining_runs_under_torchrun_with_gathered_embeddings(pairs, tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    from conftest import ROOT

    torchrun = Path(sys.executable).with_name("torchrun")
    proc = subprocess.run([str(torchrun), "--nproc_per_node=2", "--master_port=29544", "-m",
                           "zoo", "pretrain", "--encoders", "image=timm-tiny,text=bert-tiny",
                           "--data", str(pairs["train-pairs-only"]), "--eval",
                           str(pairs["val-pairs-only"]), "--out", str(tmp_path / "ddp"),
                           "--epochs", "2", "--batch-size", "32", "--dim", "16", "--quiet"],
                          cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    rec = json.loads((tmp_path / "ddp" / "training.json").read_text())
    assert rec["world_size"] == 2 and "recall_at_1" in rec["best"]
    assert zoo.load(tmp_path / "ddp").task == "retrieval"
