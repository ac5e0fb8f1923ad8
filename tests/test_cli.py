"""The CLI: JSON listing, create / predict, one-line errors with non-zero exits."""
from __future__ import annotations

import json

from conftest import run_zoo, zoo_json


def test_list_json_has_the_contracted_fields():
    from zoo.registry import modalities

    rows = zoo_json("list", "--json")
    known = set(modalities())  # zoo's text, image, audio and the installed plugins' own
    assert {"text", "image", "audio"} <= known
    kinds = {r["kind"] for r in rows}
    assert kinds == {"model", "encoder", "fusion", "head"}
    for r in rows:
        assert {"name", "kind", "task", "modalities", "description", "source"} <= set(r)
        assert (r["task"] is None) == (r["kind"] != "model")
        assert set(r["modalities"]) <= known, r["name"]
    assert [r["name"] for r in zoo_json("list", "tiny*clf", "--kind", "model", "--json")] == \
        ["tiny-audio-text-clf", "tiny-text-image-clf"]


def test_create_then_predict_from_the_folder(tmp_path, photo):
    out = tmp_path / "m"
    run_zoo("create", "tiny-text-image-clf", "--out", str(out), "--labels", "cat,dog",
            check=True)
    proc = run_zoo("predict", str(out), json.dumps({"text": "a cat", "image": str(photo)}),
                   str(photo), "just some text", check=True)
    preds = json.loads(proc.stdout)
    assert len(preds) == 3 and all(p["label"] in ("cat", "dog") for p in preds)


def test_predict_reads_a_manifest(tmp_path, photo):
    manifest = tmp_path / "m.jsonl"
    manifest.write_text(json.dumps({"text": "hi", "image": str(photo)}) + "\n" +
                        json.dumps({"text": "there"}) + "\n")
    preds = json.loads(run_zoo("predict", "tiny-text-image-clf", str(manifest),
                               check=True).stdout)
    assert len(preds) == 2


def test_errors_are_one_line_with_a_fix_and_exit_1(tmp_path):
    cases = [
        (["info", "no-such-model"], "unknown"),
        (["create", "no-such-model", "--out", str(tmp_path / "x")], "unknown"),
        (["predict", str(tmp_path / "nope"), "hi"], "no model folder"),
        (["predict", "tiny-text-image-clf", str(tmp_path / "missing.png")], "no such file"),
        (["predict", "tiny-text-image-clf", "{bad json"], "not valid JSON"),
        (["create", "concat-mlp", "--out", str(tmp_path / "y")], "is a fusion"),
    ]
    for args, expected in cases:
        proc = run_zoo(*args)
        assert proc.returncode == 1, (args, proc.stderr)
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), (args, proc.stderr)
        assert expected in lines[0], (args, lines[0])


def test_install_runs_pip_in_zoos_environment(tmp_path):
    proc = run_zoo("install", str(tmp_path / "no-such-plugin"))
    assert proc.returncode == 1 and "pip install failed" in proc.stderr
