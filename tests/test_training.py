"""zoo train / zoo eval: learning, outputs, resume after kill -9, DDP, bad data."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

import zoo
from conftest import ROOT, run_zoo
from zoo.compose import compose
from zoo.data.synthetic import digits_manifests


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    return digits_manifests(tmp_path_factory.mktemp("digits"), size=32, limit=240)


def test_train_rebuilds_the_head_for_the_data_and_writes_its_record(digits, tmp_path):
    out = tmp_path / "run"
    summary = zoo.train(_tiny_image_clf(), digits["train"],
                        digits["val"], out, epochs=4, freeze="all", lr=3e-3, batch_size=16,
                        progress=False)
    assert summary["feature_cache"] is True and summary["frozen"] == ["image"]
    model = zoo.load(out)
    assert model.labels == [str(d) for d in range(10)]  # from the manifest, not the registry
    assert summary["best"]["accuracy"] > 0.3  # chance is 0.1
    lines = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    epochs = [x for x in lines if "eval" in x]
    assert [x["epoch"] for x in epochs] == [1, 2, 3, 4]
    best = max(epochs, key=lambda x: x["eval"]["accuracy"])
    assert summary["best_epoch"] == best["epoch"]
    for png in ("training_curves.png", "confusion_matrix.png"):
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    saved = json.loads((out / "eval_results.json").read_text())
    assert saved["metrics"]["accuracy"] == summary["best"]["accuracy"]
    # zoo eval --json prints the metrics at top level and they reproduce the best epoch
    proc = run_zoo("eval", str(out), "--data", str(digits["val"]), "--json", check=True)
    assert json.loads(proc.stdout)["accuracy"] == pytest.approx(summary["best"]["accuracy"])


def _tiny_image_clf():
    return compose("classification", {"image": {
        "name": "timm-tiny", "data_config": {"input_size": [3, 32, 32]}}},
        {"name": "classification", "labels": ["x"]}, {"name": "concat-mlp", "dim": 64})


def _save_tiny(tmp_path) -> Path:
    d = tmp_path / "init"
    _tiny_image_clf().save_pretrained(d)
    return d


def _weights(path: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(path / "model.safetensors"))


def test_resume_after_kill_9_reproduces_the_uninterrupted_run(digits, tmp_path):
    init = _save_tiny(tmp_path)
    args = ["train", str(init), "--train", str(digits["train"]), "--eval", str(digits["val"]),
            "--epochs", "3", "--batch-size", "8", "--freeze", "none", "--lr", "2e-3",
            "--checkpoint-every", "3", "--quiet"]
    full = tmp_path / "full"
    run_zoo(*args, "--out", str(full), check=True)

    cut = tmp_path / "cut"
    env = {**os.environ}
    proc = subprocess.Popen([sys.executable, "-m", "zoo", *args, "--out", str(cut)],
                            cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    latest = cut / "train_state" / "latest"
    steps_per_epoch = 18  # 144 train examples / 8
    deadline = time.time() + 240
    killed_at = None
    while time.time() < deadline and proc.poll() is None:
        if latest.is_file():
            step = int(latest.read_text() or 0)
            if steps_per_epoch + 3 <= step and step % steps_per_epoch:  # mid epoch 2
                proc.send_signal(signal.SIGKILL)
                killed_at = step
                break
        time.sleep(0.01)
    proc.wait()
    assert killed_at is not None, "training ended before it could be killed mid-epoch"
    assert proc.returncode == -signal.SIGKILL
    run_zoo(*args, "--out", str(cut), "--resume", check=True)

    a, b = _weights(full), _weights(cut)
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    ra = json.loads((full / "training.json").read_text())
    rb = json.loads((cut / "training.json").read_text())
    assert ra["best"] == rb["best"] and ra["best_epoch"] == rb["best_epoch"]
    la = (full / "metrics.jsonl").read_text().splitlines()
    lb = (cut / "metrics.jsonl").read_text().splitlines()
    strip = lambda lines: [{k: v for k, v in json.loads(x).items() if k != "seconds"}  # noqa
                           for x in lines]
    assert strip(la) == strip(lb)


def test_torchrun_two_processes_match_one_process(digits, tmp_path):
    init = _save_tiny(tmp_path)
    common = ["train", str(init), "--train", str(digits["train"]), "--eval",
              str(digits["val"]), "--epochs", "6", "--batch-size", "16", "--freeze", "all",
              "--lr", "3e-3", "--quiet"]
    one = run_zoo(*common, "--out", str(tmp_path / "one"), check=True)
    torchrun = Path(sys.executable).with_name("torchrun")
    proc = subprocess.run([str(torchrun), "--nproc_per_node=2", "--master_port=29533",
                           "-m", "zoo", *common, "--out", str(tmp_path / "two")],
                          cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    a = json.loads(one.stdout)["best"]["accuracy"]
    rec = json.loads((tmp_path / "two" / "training.json").read_text())
    assert rec["world_size"] == 2
    b = rec["best"]["accuracy"]
    assert abs(a - b) <= 0.1, (a, b)
    # evaluation covered the whole eval set, not one shard
    n_val = len(Path(digits["val"]).read_text().splitlines())
    assert rec["n_eval"] == n_val
    saved = json.loads((tmp_path / "two" / "eval_results.json").read_text())
    assert saved["metrics"]["n"] == n_val


def test_bad_data_is_reported_with_its_line_and_can_be_skipped(digits, tmp_path):
    lines = Path(digits["train"]).read_text().splitlines()[:40]
    root = Path(digits["train"]).parent
    (root / "img" / "corrupt.png").write_bytes(b"\x89PNG not really")
    bad = lines[:5] + ['{"image": "img/missing.png", "label": "3"}', "{not json",
                       '{"image": "img/corrupt.png", "label": "1"}'] + lines[5:]
    manifest = root / "bad.jsonl"
    manifest.write_text("\n".join(bad) + "\n")
    init = _save_tiny(tmp_path)
    proc = run_zoo("train", str(init), "--train", str(manifest), "--out", str(tmp_path / "a"),
                   "--epochs", "1", "--quiet")
    assert proc.returncode == 1
    msg = proc.stderr.strip().splitlines()[-1]
    assert "bad.jsonl:6" in msg and "missing.png" in msg and "--on-bad-data skip" in msg
    proc = run_zoo("train", str(init), "--train", str(manifest), "--out", str(tmp_path / "b"),
                   "--epochs", "1", "--quiet", "--on-bad-data", "skip", check=True)
    assert "skipped 3 bad example(s)" in proc.stderr
    for where in ("bad.jsonl:6", "bad.jsonl:7", "bad.jsonl:8"):
        assert where in proc.stderr
    rec = json.loads((tmp_path / "b" / "training.json").read_text())
    assert rec["n_train"] == 40  # nothing else lost
