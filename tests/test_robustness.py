"""zoo eval --robustness and --slice: each modality's corruptions (changed, seeded, harsher
with severity; audio noise at its SNR), the metrics under them and per group, on a text, an
image and an audio model; the model folder untouched without --record."""
from __future__ import annotations

import difflib
import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from zoo.cli import cli, main

TEXT = "The quick brown fox jumps over the lazy dog, and then it sleeps all afternoon."


def _rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def _modality(name: str):
    from zoo.registry import modalities

    return modalities()[name]


def _tree_hash(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


# ---- the corruptions ----------------------------------------------------------------------
def test_text_corruptions_change_more_with_severity_and_repeat_with_the_seed():
    suite = _modality("text").corruptions()
    assert set(suite) == {"typos", "swaps", "case", "whitespace"}
    for name, corrupt in suite.items():
        out = {s: corrupt(TEXT, s, _rng()) for s in (1, 2, 3)}
        assert all(o != TEXT for o in out.values()), name
        assert corrupt(TEXT, 2, _rng(5)) == corrupt(TEXT, 2, _rng(5)), name
        same = {s: difflib.SequenceMatcher(None, TEXT, o).ratio() for s, o in out.items()}
        assert same[3] < same[1], (name, same)


def _psnr(a, b) -> float:
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    return 10 * np.log10(255.0 ** 2 / max(((a - b) ** 2).mean(), 1e-12))


def test_image_corruptions_on_a_photo_lower_psnr_with_severity(photo):
    from PIL import Image

    clean = Image.open(photo).convert("RGB")
    suite = _modality("image").corruptions()
    assert set(suite) == {"gaussian_noise", "gaussian_blur", "jpeg", "brightness", "contrast"}
    for name, corrupt in suite.items():
        psnr = [_psnr(clean, corrupt(str(photo), s, _rng())) for s in (1, 2, 3)]
        assert psnr[0] < 40 and psnr[2] < psnr[1] < psnr[0], (name, psnr)
        again = [np.asarray(corrupt(str(photo), 3, _rng(7))) for _ in range(2)]
        assert (again[0] == again[1]).all(), name


def _tone(path: Path, freq: float, seconds: float = 1.0, rate: int = 16000) -> Path:
    import soundfile as sf

    t = np.arange(int(rate * seconds)) / rate
    wave = sum(np.sin(2 * np.pi * freq * k * t) / k for k in (1, 2, 3))
    envelope = 0.5 + 0.5 * np.sin(2 * np.pi * 3 * t) ** 2  # syllable-like loudness
    sf.write(path, (0.2 * wave * envelope).astype("float32"), rate)
    return path


def _snr(clean, noisy) -> float:
    return 10 * np.log10((clean ** 2).mean() / ((noisy - clean) ** 2).mean())


def test_audio_noise_hits_its_snr_and_speed_and_pitch_grow_with_severity(tmp_path):
    from zoo.plugin import read_audio

    clips = [str(_tone(tmp_path / f"{i}.wav", f)) for i, f in enumerate((150, 210, 330))]
    clean = read_audio(clips[0])[0].astype(float)
    for values in (clips, clips[:1]):  # babble of other clips; synthesised with none
        suite = _modality("audio").corruptions(values)
        assert set(suite) == {"white_noise", "babble", "speed", "pitch"}
        for name in ("white_noise", "babble"):
            for severity, target in zip((1, 2, 3), (20, 10, 0)):
                wave, rate = suite[name](clips[0], severity, _rng())
                assert rate == 16000 and abs(_snr(clean, wave) - target) < 1.0
            assert np.array_equal(suite[name](clips[0], 2, _rng(3))[0],
                                  suite[name](clips[0], 2, _rng(3))[0])
    stretch = [abs(np.log(len(suite["speed"](clips[0], s, _rng())[0]) / len(clean)))
               for s in (1, 2, 3)]
    assert 0 < stretch[0] < stretch[1] < stretch[2]
    sine = (0.3 * np.sin(2 * np.pi * 220 * np.arange(16000) / 16000), 16000)

    def peak(w):
        return np.fft.rfftfreq(len(w), 1 / 16000)[np.argmax(np.abs(np.fft.rfft(w)))]

    shifts = [abs(np.log2(peak(suite["pitch"](sine, s, _rng())[0]) / 220)) for s in (1, 2, 3)]
    assert shifts == pytest.approx([2 / 12, 4 / 12, 8 / 12], abs=0.02)
    assert len(suite["pitch"](sine, 3, _rng())[0]) == 16000  # duration kept


def test_a_modality_without_corruptions_is_skipped():
    from zoo.plugin import Example, Modality
    from zoo.robustness import suites

    assert Modality().corruptions() == {}  # the documented default: old plugins keep working
    examples = [Example(1, {"text": "a b", "tabular": {"x": 1}}, {"label": "a"})]
    found, skipped = suites(["text", "tabular"], examples)
    assert set(found) == {"text"} and skipped == ["tabular"]


def test_plugins_check_runs_each_corruption_twice_and_fails_one_ignoring_its_rng():
    import random
    from types import SimpleNamespace

    from zoo.plugin import Modality
    from zoo.plugincheck.kinds import check_modality
    from zoo.registry import get_registry

    results: list = []
    for spec in get_registry().all("modality"):
        check_modality(spec, results)
    got = {r.subject: r.status for r in results if r.check == "corruptions"}
    assert {"modality text", "modality image", "modality audio"} <= set(got)
    assert set(got.values()) == {"pass"}, results

    class Careless(Modality):  # draws from Python's global random, not from rng
        def samples(self):
            return ["a b c", "d e"]

        def corruptions(self, values=()):
            return {"shuffle": lambda v, severity, rng: " ".join(
                random.sample(v.split(), len(v.split())) + [str(random.random())])}

    bad: list = []
    check_modality(SimpleNamespace(name="careless", build=Careless), bad)
    (result,) = [r for r in bad if r.check == "corruptions"]
    assert result.status == "fail" and "same seed" in result.detail


# ---- zoo eval on models ---------------------------------------------------------------------
def _text_model(tmp_path: Path) -> tuple[Path, Path]:
    import zoo

    model = zoo.create_model("char-text-clf", labels=["calm", "storm"])
    model.save_pretrained(tmp_path / "text-model")
    words = {"calm": "quiet still gentle sunny mild", "storm": "thunder wind rain hail gale"}
    rows = [{"text": f"{words[lab].split()[i % 5]} weather over the {place}",
             "label": lab, "place": place}
            for i in range(12) for lab in ("calm", "storm")
            for place in [("sea", "hills", "city")[i % 3]]]
    data = tmp_path / "text.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return tmp_path / "text-model", data


def _check_result(result: dict, modality: str, names: set[str], column: str) -> None:
    rob = result["robustness"]
    assert set(rob["corruptions"][modality]) == names
    for name in names:
        by_sev = rob["corruptions"][modality][name]
        assert set(by_sev) == {"1", "2", "3"}
        for s, figures in by_sev.items():
            drop = rob["drop"][modality][name][s]
            assert drop["accuracy"] == pytest.approx(result["accuracy"] - figures["accuracy"],
                                                    abs=1e-6)
    groups = result["slices"]["columns"][column]
    assert sum(g["n"] for g in groups.values()) == result["n"]
    for metric, gap in result["slices"]["gap"][column].items():
        values = [g[metric] for g in groups.values()]
        assert gap == pytest.approx(max(values) - min(values), abs=1e-6)


def test_zoo_eval_robustness_and_slices_on_a_text_model_leave_the_folder_as_it_was(tmp_path):
    folder, data = _text_model(tmp_path)
    before = _tree_hash(folder)
    r = CliRunner().invoke(cli, ["eval", str(folder), "--data", str(data), "--robustness",
                                 "--slice", "place", "--slice", "label", "--json",
                                 "--out", str(tmp_path / "report")])
    assert r.exit_code == 0, r.output
    result = json.loads(r.stdout.strip().splitlines()[-1])
    _check_result(result, "text", {"typos", "swaps", "case", "whitespace"}, "place")
    assert set(result["slices"]["columns"]["label"]) == {"calm", "storm"}
    assert _tree_hash(folder) == before  # read-only without --record
    saved = json.loads((tmp_path / "report" / "robustness.json").read_text())
    assert saved["corruptions"] == result["robustness"]["corruptions"]
    assert saved["data_sha256"] and saved["n"] == 24
    assert json.loads((tmp_path / "report" / "slices.json").read_text())["columns"] == \
        result["slices"]["columns"]
    png = (tmp_path / "report" / "robustness.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    # the same seed gives the same figures; the text report prints a table per result
    r2 = CliRunner().invoke(cli, ["eval", str(folder), "--data", str(data), "--corruption",
                                  "typos", "--slice", "place"])
    assert r2.exit_code == 0, r2.output
    assert "typos" in r2.output and "gap (max - min)" in r2.output and "hills" in r2.output


def test_recorded_robustness_and_slices_go_into_the_model_folder(tmp_path):
    import zoo

    folder, data = _text_model(tmp_path)
    result = zoo.evaluate(folder, data, robustness=["case"], slices=["place"], record=True)
    assert set(result["robustness"]["corruptions"]["text"]) == {"case"}
    rec = json.loads((folder / "robustness.json").read_text())
    assert rec["metric"] == "accuracy" and rec["clean"]["accuracy"] == result["accuracy"]
    assert json.loads((folder / "slices.json").read_text())["gap"] == result["slices"]["gap"]
    assert (folder / "robustness.png").is_file()
    evals = json.loads((folder / "eval_results.json").read_text())

    def keys(obj):
        return set(obj) | {k for v in obj.values() for k in keys(v)} \
            if isinstance(obj, dict) else set()

    assert not keys(evals) & {"robustness", "slices"}  # the model-index: clean figures only
    # the card shows both, measured on which data; zoo push publishes the files
    from huggingface_hub import ModelCard

    card = ModelCard((folder / "README.md").read_text())
    assert "## Robustness" in card.text and "## Groups" in card.text
    case = result["robustness"]["corruptions"]["text"]["case"]["1"]["accuracy"]
    assert f"{case:.4f}" in card.text.split("## Robustness")[1]
    for group, g in result["slices"]["columns"]["place"].items():
        assert f"| `{group}` | {g['n']} |" in card.text
    from zoo.io.records import RECORD_FILES

    assert {"robustness.json", "slices.json"} <= set(RECORD_FILES)


def test_a_missing_slice_column_or_corruption_is_one_line_naming_what_exists(tmp_path, capsys):
    folder, data = _text_model(tmp_path)
    for flag, value, says in (("--slice", "region", "columns: label, place, text"),
                              ("--corruption", "fog", "corruptions: case, swaps, typos")):
        with pytest.raises(SystemExit) as e:
            main(["eval", str(folder), "--data", str(data), flag, value])
        assert e.value.code == 1
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and err.startswith("error: ") and says in err, err


def test_image_model_robustness_and_slices(tmp_path):
    from PIL import Image

    from zoo.build.compose import compose

    compose("classification", {"image": {"name": "timm-tiny",
                                         "data_config": {"input_size": [3, 32, 32]}}},
            {"name": "classification", "labels": ["dark", "light"]},
            {"name": "concat-mlp", "dim": 16}).save_pretrained(tmp_path / "m")
    rng = np.random.default_rng(0)
    rows = []
    for i in range(8):
        label = ("dark", "light")[i % 2]
        base = 60 if label == "dark" else 190
        pixels = np.clip(base + rng.normal(0, 30, (40, 48, 3)), 0, 255).astype(np.uint8)
        Image.fromarray(pixels).save(tmp_path / f"{i}.png")
        rows.append({"image": f"{i}.png", "label": label, "camera": "ab"[i % 4 // 2]})
    data = tmp_path / "images.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    before = _tree_hash(tmp_path / "m")
    r = CliRunner().invoke(cli, ["eval", str(tmp_path / "m"), "--data", str(data),
                                 "--robustness", "--slice", "camera", "--json"])
    assert r.exit_code == 0, r.output
    _check_result(json.loads(r.stdout.strip().splitlines()[-1]), "image",
                  {"gaussian_noise", "gaussian_blur", "jpeg", "brightness", "contrast"},
                  "camera")
    assert _tree_hash(tmp_path / "m") == before


def test_audio_model_robustness_and_slices(tmp_path):
    from zoo.build.compose import compose

    compose("classification", {"audio": "conformer-tiny"},
            {"name": "classification", "labels": ["low", "high"]},
            {"name": "concat-mlp", "dim": 16}).save_pretrained(tmp_path / "m")
    rows = []
    for i, freq in enumerate((120, 140, 160, 500, 600, 700)):
        _tone(tmp_path / f"{i}.wav", freq, seconds=0.6)
        rows.append({"audio": f"{i}.wav", "label": "low" if freq < 300 else "high",
                     "speaker": "xy"[i % 2]})
    data = tmp_path / "audio.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    before = _tree_hash(tmp_path / "m")
    r = CliRunner().invoke(cli, ["eval", str(tmp_path / "m"), "--data", str(data),
                                 "--robustness", "--slice", "speaker", "--json"])
    assert r.exit_code == 0, r.output
    _check_result(json.loads(r.stdout.strip().splitlines()[-1]), "audio",
                  {"white_noise", "babble", "speed", "pitch"}, "speaker")
    assert _tree_hash(tmp_path / "m") == before


def test_robustness_says_its_cost_before_the_passes(tmp_path, capsys):
    import zoo

    folder, data = _text_model(tmp_path)
    zoo.evaluate(folder, data, robustness=["case", "typos"])
    err = capsys.readouterr().err
    first = err.index("robustness: 6 more passes over the")
    assert first < err.index("robustness: text/case severity 1") and "~" in err[first:]
