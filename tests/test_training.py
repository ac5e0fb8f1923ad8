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
from zoo.build.compose import compose
from zoo.testing.synthetic import digits_manifests


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    return digits_manifests(tmp_path_factory.mktemp("digits"), size=32, limit=240)


def test_train_rebuilds_the_head_for_the_data_and_writes_its_record(digits, tmp_path):
    out = tmp_path / "run"
    summary = zoo.train(_tiny_image_clf(), digits["train"],
                        digits["val"], out, epochs=4, freeze="all", lr=3e-3, batch_size=16,
                        progress=False, patience=10)  # (all 4 epochs: the record of each)
    assert summary["feature_cache"] is True and summary["frozen"] == ["image"]
    model = zoo.load(out)
    assert model.labels == [str(d) for d in range(10)]  # from the manifest, not the registry
    assert summary["best"]["accuracy"] > 0.3  # chance is 0.1
    lines = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    epochs = [x for x in lines if "eval" in x]
    assert [x["epoch"] for x in epochs] == [0, 1, 2, 3, 4]  # 0: the closed-form start
    # the best epoch: the closed-form start (epoch 0) gives way only to an epoch beyond one
    # standard error of the eval accuracy; after that, to any better epoch
    best, n = epochs[0], json.loads((out / "training.json").read_text())["n_eval"]
    for x in epochs[1:]:
        ref = best["eval"]["accuracy"]
        margin = (ref * (1 - ref) / n) ** 0.5 if best["epoch"] == 0 else 0.0
        if x["eval"]["accuracy"] > ref + margin:
            best = x
    assert summary["best_epoch"] == best["epoch"]
    assert summary["best"]["accuracy"] == best["eval"]["accuracy"]
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


@pytest.mark.slow
def test_resume_after_kill_9_reproduces_the_uninterrupted_run(digits, tmp_path):
    init = _save_tiny(tmp_path)
    args = ["train", str(init), "--train", str(digits["train"]), "--eval", str(digits["val"]),
            "--epochs", "3", "--batch-size", "8", "--freeze", "none", "--lr", "2e-3",
            "--checkpoint-every", "3", "--quiet"]
    full = tmp_path / "full"  # each run in a process of its own, as the killed one ran
    run_zoo(*args, "--out", str(full), check=True, fresh=True)

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
    run_zoo(*args, "--out", str(cut), "--resume", check=True, fresh=True)

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


@pytest.mark.slow
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
    # two "nodes" of one process each, meeting through torchrun's c10d rendezvous on
    # 127.0.0.1 (how a multi-machine run starts), train the very same model
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    nodes = [subprocess.Popen(
        [str(torchrun), "--nnodes=2", "--nproc_per_node=1", "--rdzv_backend=c10d",
         f"--rdzv_endpoint=127.0.0.1:{port}", "--rdzv_id=zoo-two-nodes", "-m", "zoo",
         *common, "--out", str(tmp_path / "nodes")], cwd=ROOT, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True,  # one thread each, as torchrun gives 2 per node
        env={**os.environ, "OMP_NUM_THREADS": "1"}) for _ in range(2)]
    for node in nodes:
        _, err = node.communicate(timeout=600)
        assert node.returncode == 0, err[-2000:]
    rec2 = json.loads((tmp_path / "nodes" / "training.json").read_text())
    assert rec2["world_size"] == 2 and rec2["best"] == rec["best"]
    a2, b2 = _weights(tmp_path / "two"), _weights(tmp_path / "nodes")
    assert all(torch.equal(a2[k], b2[k]) for k in a2)


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


def test_group_by_length_makes_batches_of_similar_length_and_keeps_every_example():
    from zoo.training.data import group_by_length as _group_by_length

    lengths = [float((i * 37) % 101) for i in range(1000)]
    g = torch.Generator().manual_seed(0)
    order = torch.randperm(1000, generator=g).tolist()
    grouped = _group_by_length(order, lengths, 16, g)
    assert sorted(grouped) == list(range(1000))  # a permutation: nothing lost or repeated
    batches = [grouped[i:i + 16] for i in range(0, 1000, 16)]

    def spread(bs):  # mean (max - min) length within a batch
        return sum(max(lengths[j] for j in b) - min(lengths[j] for j in b) for b in bs) / len(bs)

    assert spread(batches) < 0.2 * spread([order[i:i + 16] for i in range(0, 1000, 16)])
    assert len(batches[-1]) == 1000 % 16  # the one short batch comes last
    again = _group_by_length(order, lengths, 16, torch.Generator().manual_seed(0))
    other = _group_by_length(order, lengths, 16, torch.Generator().manual_seed(1))
    assert again == _group_by_length(order, lengths, 16, torch.Generator().manual_seed(0))
    assert again != other  # the batch order is random, and seeded


def test_length_of_an_example_reads_audio_headers_and_text(tmp_path):
    import soundfile as sf

    from zoo.data.manifest import Example
    from zoo.training.data import example_length as _example_length

    sf.write(tmp_path / "a.wav", torch.zeros(8000).numpy(), 16000)
    assert _example_length(Example(1, {"audio": str(tmp_path / "a.wav")})) == 0.5
    assert _example_length(Example(2, {"text": "four"})) == 4.0
    assert _example_length(Example(3, {"image": "x.png"})) == 0.0


@pytest.mark.parametrize("shape", ["jsonl", "audiofolder"])
def test_asr_training_groups_by_length_learns_and_evaluates_with_jiwer(tmp_path, shape):
    """ASR from a JSONL manifest (Python API) and from a Hugging Face audiofolder with
    metadata.csv (file_name, transcription) through the CLI."""
    import shutil

    from zoo.testing.synthetic import speak

    if shutil.which("espeak-ng") is None:
        pytest.skip("needs espeak-ng (apt-get install espeak-ng; .ci/run installs it)")
    words = ["yes", "no", "go", "stop", "up", "down", "left right", "on off"]
    rows = []
    for i, w in enumerate(words):
        speak(w, tmp_path / f"{i}.wav", voice=["en-us", "en-gb"][i % 2])
        rows.append(json.dumps({"audio": f"{i}.wav", "transcript": w}))
    (tmp_path / "train.jsonl").write_text("\n".join(rows) + "\n")
    (tmp_path / "metadata.csv").write_text("file_name,transcription\n" + "".join(
        f"{i}.wav,{w}\n" for i, w in enumerate(words)))
    data = tmp_path / "train.jsonl" if shape == "jsonl" else tmp_path
    out = tmp_path / "run"
    if shape == "jsonl":
        s = zoo.train("conformer-ctc-tiny", data, data, out, epochs=12, lr=3e-3,
                      batch_size=4, progress=False)
    else:
        proc = run_zoo("train", "conformer-ctc-tiny", "--train", str(data), "--eval",
                       str(data), "--out", str(out), "--epochs", "12", "--lr", "3e-3",
                       "--batch-size", "4", "--quiet", check=True)
        s = {**json.loads((out / "training.json").read_text()), **json.loads(proc.stdout)}
    assert s["group_by_length"] is True  # "auto": on for a model with an audio encoder
    history = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    losses = [r["train_loss"] for r in history if "train_loss" in r]
    assert losses[-1] < 0.5 * losses[0]
    proc = run_zoo("eval", str(out), "--data", str(data), "--json", check=True)
    metrics = json.loads(proc.stdout)
    assert set(metrics) >= {"cer", "wer"} and metrics["n"] == len(words)
    assert metrics["cer"] == pytest.approx(s["best"]["cer"])  # the best epoch was kept
