"""Loading and saving as an adversary would test them: a kill at any instant of a save,
weight files the checksum does not cover, edits that keep size and mtime."""
from __future__ import annotations

import json
import os
import random
import shutil
import signal
import time

import pytest
import torch

import zoo
from zoo.errors import LoadError


def _weights(folder):
    return zoo.load(folder).state_dict()

def _save_forever(folder, models, ready):
    """A child process: save two different models into one folder in turn, forever."""
    models[0].save_pretrained(folder)
    ready.set()
    i = 0
    while True:
        i += 1
        models[i % 2].save_pretrained(folder)


@pytest.mark.slow
def test_30_kills_at_random_instants_of_saves_leave_the_old_or_the_new_model(tmp_path):
    import multiprocessing as mp

    ctx = mp.get_context("fork")  # the parent has imported torch and zoo: children start fast
    models, references = [], []
    for seed in (1, 2):
        torch.manual_seed(seed)
        models.append(zoo.create_model("tiny-text-image-clf", labels=["a", "b"]))
        references.append({k: v.clone() for k, v in models[-1].state_dict().items()})
    folder = tmp_path / "m"
    rng = random.Random(0)
    staged_seen = 0
    for trial in range(30):
        ready = ctx.Event()
        proc = ctx.Process(target=_save_forever, args=(folder, models, ready), daemon=True)
        proc.start()
        assert ready.wait(60)
        time.sleep(rng.uniform(0.0, 0.25))  # killed somewhere inside one of the saves
        os.kill(proc.pid, signal.SIGKILL)
        proc.join()
        staged_seen += any(p.name.startswith(".zoo-save-") for p in folder.iterdir())
        got = _weights(folder)  # loads, finishing a committed save if there is one
        assert any(got.keys() == r.keys() and all(torch.equal(got[k], r[k]) for k in r)
                   for r in references), f"trial {trial}: a mix of two saves"
        assert not [p for p in folder.iterdir() if p.name.startswith((".zoo-save-",
                                                                       ".zoo-trash-"))]
    assert staged_seen >= 3, "few kills landed inside a save: the test proved little"


def test_an_interrupted_save_is_finished_or_dropped_by_the_next_load(tmp_path):
    from zoo.io.atomic import COMPLETE

    torch.manual_seed(1)
    old = zoo.create_model("tiny-text-image-clf", labels=["a", "b"])
    torch.manual_seed(2)
    new = zoo.create_model("tiny-text-image-clf", labels=["a", "b"])
    # committed, half moved in: the new weights already replaced, the config not yet
    folder = old.save_pretrained(tmp_path / "m")
    staged = new.save_pretrained(tmp_path / "stage-src")
    st = folder / ".zoo-save-x1"
    shutil.copytree(staged, st)
    (st / COMPLETE).write_text("")
    os.replace(st / "model.safetensors", folder / "model.safetensors")
    got = zoo.load(folder).state_dict()
    assert all(torch.equal(got[k], v) for k, v in new.state_dict().items())
    assert not st.exists()
    # not committed: the old model stays, the staging folder is removed
    shutil.copytree(zoo.create_model("tiny-text-image-clf", labels=["a", "b"])
                    .save_pretrained(tmp_path / "other"), folder / ".zoo-save-x2")
    got = zoo.load(folder).state_dict()
    assert all(torch.equal(got[k], v) for k, v in new.state_dict().items())
    assert not (folder / ".zoo-save-x2").exists()


def test_an_index_with_an_unlisted_shard_is_never_loaded(tmp_path):
    torch.manual_seed(0)
    model = zoo.create_model("tiny-text-image-clf", labels=["a", "b"])
    folder = model.save_pretrained(tmp_path / "m")
    # an attacker adds a shard holding other weights and an index pointing at it
    from safetensors.torch import save_file

    evil = {k: torch.full_like(v, 7.0) if v.is_floating_point() else v
            for k, v in model.state_dict().items()}
    save_file(evil, str(folder / "model-00001-of-00001.safetensors"))
    (folder / "model.safetensors.index.json").write_text(json.dumps({
        "metadata": {}, "weight_map": {k: "model-00001-of-00001.safetensors" for k in evil}}))
    got = zoo.load(folder).state_dict()
    assert all(torch.equal(got[k], v) for k, v in model.state_dict().items())


def test_a_same_size_edit_with_the_mtime_restored_is_caught(tmp_path):
    torch.manual_seed(0)
    folder = zoo.create_model("tiny-text-image-clf", labels=["a", "b"]).save_pretrained(
        tmp_path / "m")
    zoo.load(folder)  # the checksum is now cached
    path = folder / "model.safetensors"
    st = path.stat()
    data = bytearray(path.read_bytes())
    data[-8] ^= 0xFF  # one weight byte, same size
    path.write_bytes(bytes(data))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))  # mtime as it was
    assert path.stat().st_size == st.st_size and path.stat().st_mtime_ns == st.st_mtime_ns
    with pytest.raises(LoadError, match="does not match the sha256"):
        zoo.load(folder)


@pytest.fixture
def saved_tiny(tmp_path):
    torch.manual_seed(0)
    return zoo.create_model("tiny-text-image-clf", labels=["a", "b"]).save_pretrained(
        tmp_path / "m")


def _edit_config(folder, fn):
    cfg = json.loads((folder / "config.json").read_text())
    fn(cfg)
    (folder / "config.json").write_text(json.dumps(cfg))


@pytest.mark.parametrize("key", ["../../etc", "/etc", "text/../../x"])
def test_a_modality_key_is_never_a_path(saved_tiny, key):
    _edit_config(saved_tiny, lambda c: c["encoders"].update({key: c["encoders"].pop("text")}))
    with pytest.raises(LoadError, match="no modality name"):
        zoo.load(saved_tiny)


def test_kwargs_naming_another_place_are_refused(saved_tiny):
    _edit_config(saved_tiny, lambda c: c["encoders"]["image"]["kwargs"].update(
        arch="local-dir:/tmp/elsewhere"))
    with pytest.raises(LoadError, match="names a location"):
        zoo.load(saved_tiny)


def test_a_symlink_out_of_the_folder_is_refused(saved_tiny, tmp_path):
    outside = tmp_path / "outside.json"
    target = next((saved_tiny / "preprocessor" / "text").glob("tokenizer.json"))
    shutil.copy(target, outside)
    target.unlink()
    target.symlink_to(outside)
    with pytest.raises(LoadError, match="points outside the model folder"):
        zoo.load(saved_tiny)


def test_a_text_encoder_without_its_tokenizer_does_not_load(saved_tiny):
    for f in (saved_tiny / "preprocessor" / "text").iterdir():
        if f.name in ("tokenizer.json", "vocab.txt"):
            f.unlink()
    with pytest.raises(LoadError, match="no tokenizer vocabulary"):
        zoo.load(saved_tiny)


def test_a_hub_that_never_answers_times_out(monkeypatch, tmp_path):
    import socket

    import huggingface_hub.constants as C

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)  # accepts connections, never answers
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{sock.getsockname()[1]}")
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("ZOO_HUB_TIMEOUT", "1")
    monkeypatch.setattr(C, "HF_HUB_OFFLINE", False)
    t = time.perf_counter()
    try:
        with pytest.raises(LoadError, match="cannot download"):
            zoo.load("hf-hub:org/silent")
    finally:
        sock.close()
    assert time.perf_counter() - t < 15


def test_untrusted_json_gives_one_line_not_a_traceback(saved_tiny):
    cfg = saved_tiny / "config.json"
    good = cfg.read_bytes()
    cfg.write_bytes(b'{"zoo_format": 1, "task": "\xff\xfe"}')
    with pytest.raises(LoadError, match="not UTF-8"):
        zoo.load(saved_tiny)
    cfg.write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(LoadError, match="nested too deeply|not valid JSON"):
        zoo.load(saved_tiny)
    cfg.write_bytes(good)
    pre = next((saved_tiny / "preprocessor").rglob("preprocessing.json"))
    pre.write_text("[]")
    with pytest.raises(LoadError, match="must hold a JSON object"):
        zoo.load(saved_tiny)


def test_a_tensor_of_the_wrong_shape_is_named_with_its_shapes(tmp_path):
    from safetensors.torch import load_file, save_file

    torch.manual_seed(0)
    folder = zoo.create_model("tiny-text-image-clf", labels=["a", "b"]).save_pretrained(
        tmp_path / "m")
    state = load_file(str(folder / "model.safetensors"))
    key = next(k for k in state if k.startswith("head.") and state[k].dim() == 2)
    state[key] = torch.zeros(state[key].shape[0] + 1, state[key].shape[1])
    save_file(state, str(folder / "model.safetensors"), metadata={"format": "pt"})
    from zoo.weights import sha256_file

    _edit_config(folder, lambda c: c["weights"].update(
        {"model.safetensors": sha256_file(folder / "model.safetensors")}))
    with pytest.raises(LoadError, match=f"size mismatch for {key}.*torch.Size"):
        zoo.load(folder)
