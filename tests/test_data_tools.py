"""zoo data check / clean / label: problems found by line, nothing lost or deleted."""
from __future__ import annotations

import json
import shutil

import pytest

import zoo
from conftest import run_zoo, zoo_json
from zoo.testing.synthetic import digits_manifests


@pytest.fixture
def messy(tmp_path, speech):
    data = digits_manifests(tmp_path / "d", size=32, limit=30)
    root = data["train"].parent
    lines = data["train"].read_text().splitlines()[:10]
    (root / "img" / "broken.png").write_bytes(b"\x89PNG garbage")
    shutil.copy(speech, root / "speech.wav")
    extra = [lines[0],  # a duplicate of line 1
             '{"image": "img/nope.png", "label": "1"}',
             '{"image": "img/broken.png", "label": "2"}',
             '{"text": "   ", "label": "3"}',
             '{"text": "eleven", "label": "11"}',
             "{oops",
             '{"audio": "speech.wav", "text": "the quick brown fox", "label": "4"}']
    path = root / "messy.jsonl"
    path.write_text("\n".join(lines + extra) + "\n")
    return path


def test_check_reports_every_problem_by_line_with_statistics(messy):
    proc = run_zoo("data", "check", str(messy), "--labels", ",".join(map(str, range(10))),
                   "--json")
    assert proc.returncode == 1, proc.stderr  # problems found: a non-zero exit for scripts
    r = json.loads(proc.stdout)
    problems = {p["line"]: p["problem"] for p in r["problems"]}
    assert problems[11] == "duplicate of line 1"
    assert "not found" in problems[12] and "cannot decode image" in problems[13]
    assert problems[14] == "empty text" and problems[15].startswith("unknown label '11'")
    assert problems[16] == "malformed JSON line"
    assert r["lines"] == 17 and r["ok"] == 11
    assert r["task"] == "classification" and sum(r["labels"].values()) == 11
    assert r["inputs"]["image"] == {"sizes": {"32x32": 10}}
    audio = r["inputs"]["audio"]
    assert audio["n"] == 1 and audio["min_s"] > 0.5
    assert audio["sample_rates"] == {"22050": 1}  # espeak-ng (or the fallback) at 22.05 kHz
    assert open(r["plot"], "rb").read(4) == b"\x89PNG"


def test_clean_keeps_the_good_lines_and_logs_the_rest(messy, tmp_path):
    out = tmp_path / "clean" / "clean.jsonl"
    r = zoo_json("data", "clean", str(messy), "--out", str(out), "--labels",
                 ",".join(map(str, range(10))))
    assert r == {"kept": 11, "dropped": 6, "out": str(out),
                 "log": str(out.with_suffix(".dropped.jsonl"))}
    dropped = [json.loads(x) for x in out.with_suffix(".dropped.jsonl").read_text().splitlines()]
    assert [d["line"] for d in dropped] == [11, 12, 13, 14, 15, 16]
    assert all(d["reason"] and d["content"] for d in dropped)
    assert (messy.parent / "img" / "broken.png").exists()  # nothing deleted from disk
    from zoo.data.manifest import read_manifest

    cleaned = read_manifest(out)  # paths rewritten relative to the new manifest
    assert len(cleaned) == 11 and all(
        __import__("os").path.exists(ex.inputs.get("image") or ex.inputs.get("audio"))
        for ex in cleaned if "image" in ex.inputs or "audio" in ex.inputs)


def test_label_splits_confident_pseudo_labels_from_a_review_queue(tmp_path):
    data = digits_manifests(tmp_path / "d", size=32, limit=40)
    model = zoo.create_model("tiny-text-image-clf",
                             labels=["a", "b"])
    model.save_pretrained(tmp_path / "m")
    unlabelled = tmp_path / "d" / "unlabelled.jsonl"
    unlabelled.write_text("".join(json.dumps({"image": json.loads(x)["image"]}) + "\n"
                                  for x in data["train"].read_text().splitlines()))
    scores = [p["score"] for p in zoo.load(tmp_path / "m").predict(
        [{"image": str(tmp_path / "d" / json.loads(x)["image"])}
         for x in unlabelled.read_text().splitlines()])]
    threshold = sorted(scores)[len(scores) // 2]
    out = tmp_path / "labelled" / "l.jsonl"
    r = zoo_json("data", "label", str(tmp_path / "m"), "--data", str(unlabelled), "--out",
                 str(out), "--min-confidence", str(threshold))
    sure = [json.loads(x) for x in out.read_text().splitlines()]
    review = [json.loads(x) for x in (out.parent / "l.review.jsonl").read_text().splitlines()]
    assert r["labelled"] == len(sure) and r["review"] == len(review)
    assert len(sure) + len(review) == len(scores) and sure and review
    assert all(x["confidence"] >= threshold for x in sure)
    assert all(x["confidence"] < threshold for x in review)
    assert all(x["label"] in ("a", "b") for x in sure + review)
    assert (out.parent / sure[0]["image"]).is_file()


def test_check_of_a_missing_manifest_is_one_clear_line(tmp_path):
    proc = run_zoo("data", "check", str(tmp_path / "none.jsonl"))
    assert proc.returncode == 2 and "does not exist" in proc.stderr


def test_check_reads_a_csv_names_its_lines_and_exits_0_only_when_clean(tmp_path):
    """Any format zoo trains on is checked the same way: a CSV with its own column names,
    problems by file line (the header is line 1), exit 1; the same CSV fixed exits 0."""
    data = digits_manifests(tmp_path / "d", size=32, limit=6)
    rows = [json.loads(x) for x in data["train"].read_text().splitlines()]
    root = data["train"].parent
    good = "".join(f"{r['image']},{r['label']}\n" for r in rows)
    (root / "ok.csv").write_text("picture,digit\n" + good)
    proc = run_zoo("data", "check", str(root / "ok.csv"), "--column", "image=picture",
                   "--column", "label=digit")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"{len(rows)} ok, 0 with problems" in proc.stdout
    (root / "bad.csv").write_text("picture,digit\n" + good + "img/nope.png,3\n"
                                  + "a,b,c\n")
    proc = run_zoo("data", "check", str(root / "bad.csv"), "--column", "image=picture",
                   "--column", "label=digit", "--json")
    assert proc.returncode == 1
    problems = {p["line"]: p["problem"] for p in json.loads(proc.stdout)["problems"]}
    n = len(rows)
    assert set(problems) == {n + 2, n + 3}
    assert "not found" in problems[n + 2] and "3 fields" in problems[n + 3]
    # clean turns it into a JSONL manifest of the good rows
    r = zoo_json("data", "clean", str(root / "bad.csv"), "--out", str(tmp_path / "c.jsonl"),
                 "--column", "image=picture", "--column", "label=digit")
    assert r["kept"] == n and r["dropped"] == 2
    assert run_zoo("data", "check", str(tmp_path / "c.jsonl")).returncode == 0


def test_label_sends_an_unreadable_input_to_review_and_labels_the_rest(tmp_path):
    data = digits_manifests(tmp_path / "d", size=32, limit=12)
    zoo.create_model("tiny-text-image-clf", labels=["a", "b"]).save_pretrained(tmp_path / "m")
    lines = [json.dumps({"image": json.loads(x)["image"]})
             for x in data["train"].read_text().splitlines()]
    lines.insert(2, json.dumps({"image": "img/gone.png"}))
    unlabelled = tmp_path / "d" / "u.jsonl"
    unlabelled.write_text("\n".join(lines) + "\n")
    out = tmp_path / "l.jsonl"
    r = zoo_json("data", "label", str(tmp_path / "m"), "--data", str(unlabelled), "--out",
                 str(out))
    assert r["labelled"] == len(lines) - 1 and r["unreadable"] == 1 and r["review"] == 1
    review = json.loads((tmp_path / "l.review.jsonl").read_text())
    assert "not found" in review["problem"] and review["image"].endswith("gone.png")
