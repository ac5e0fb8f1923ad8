"""Speaker verification: zoo-speech-speaker's GE2E port against resemblyzer's own package.

Data (nothing downloaded):
- real recordings: Debian's pocketsphinx-testdata (/usr/share/pocketsphinx/test/data): two
  speakers with five utterances each (a LibriVox reader; the AN4 'cards' speaker);
- synthetic: espeak-ng voices, one "speaker" per (voice, variant, pitch), speaking
  sentences from Debian's fortunes at a speed drawn per utterance.

Figures, on the same trials (every pair of utterances, per subset):
1. port vs package: per-utterance cosine of the two embeddings, EER and minDCF of each,
   time per utterance (one at a time; median) and the ratio;
2. how much resemblyzer's silence trimming (WebRTC VAD) matters: ours without it;
3. training: `zoo train` enrolls half of the synthetic speakers (their first utterances),
   evaluated on their other utterances, and on speakers never seen (EER of pairs), for
   the plain head and the residual adapter.

    .venv/bin/python bench/bench_speaker.py [--speakers 24] [--utterances 8] [--json OUT]
        [--write-head plugins/zoo-speech-speaker/zoo_speech_speaker/weights/verifier-ge2e.safetensors]

``--write-head`` writes the ready model's head (``speaker-verifier.ge2e``): no enrolled
speakers, both thresholds the EER threshold of our embeddings on the real recordings' pairs
(synthetic voices are far more alike than people: their threshold would not transfer).
"""
from __future__ import annotations

import argparse
import json
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REAL = Path("/usr/share/pocketsphinx/test/data")
FORTUNES = Path("/usr/share/games/fortunes/fortunes")
VOICES = ["en", "en-us", "en-gb-scotland", "en-029", "en-gb-x-rp", "en-us-nyc"]
VARIANTS = ["m1", "m2", "m3", "m4", "m5", "m6", "m7", "f1", "f2", "f3", "f4", "f5"]


def real_set() -> list[dict]:
    rows = [{"audio": str(p), "speaker": "librivox-reader", "real": True}
            for p in sorted((REAL / "librivox").glob("*.wav"))]
    rows += [{"audio": str(p), "speaker": "an4-cards", "real": True}
             for p in sorted((REAL / "cards").glob("*.wav"))]
    return rows


def sentences(n: int, rng: random.Random) -> list[str]:
    texts = [t.replace("\n", " ").strip() for t in FORTUNES.read_text().split("\n%\n")]
    texts = [t for t in texts if 50 < len(t) < 140 and t.isascii() and "--" not in t]
    return rng.sample(texts, n)


def synthetic_set(root: Path, speakers: int, utterances: int, seed: int) -> list[dict]:
    rng = random.Random(seed)
    combos = [(v, var, p) for v in VOICES for var in VARIANTS for p in (35, 65)]
    chosen = rng.sample(combos, speakers)
    texts = sentences(speakers * utterances, rng)
    rows = []
    for k, (voice, variant, pitch) in enumerate(chosen):
        name = f"{voice}+{variant}-p{pitch}"
        for u in range(utterances):
            path = root / f"{k:02d}-{u}.wav"
            speed = rng.randint(140, 190)
            subprocess.run(["espeak-ng", "-v", f"{voice}+{variant}", "-p", str(pitch), "-s",
                            str(speed), "-w", str(path), texts[k * utterances + u]],
                           check=True, capture_output=True)
            rows.append({"audio": str(path), "speaker": name, "real": False})
    return rows


def timed(fn, items) -> tuple[list, list[float]]:
    out, times = [], []
    for x in items:
        t = time.perf_counter()
        out.append(fn(x))
        times.append(time.perf_counter() - t)
    return out, times


def embed_ours(rows, **encoder_kwargs) -> tuple[np.ndarray, list[float]]:
    import zoo

    model = zoo.create_model("resemblyzer-ge2e", pretrained=True,
                             encoders={"audio": {"name": "ge2e-speaker", **encoder_kwargs}}
                             ) if encoder_kwargs else \
        zoo.create_model("resemblyzer-ge2e", pretrained=True)
    model.predict([{"audio": rows[0]["audio"]}])  # warm-up
    out, times = timed(lambda r: model.predict([{"audio": r["audio"]}])[0]["embedding"], rows)
    return np.asarray(out), times


def embed_package(rows) -> tuple[np.ndarray, list[float]]:
    from resemblyzer import VoiceEncoder, preprocess_wav

    enc = VoiceEncoder("cpu", verbose=False)
    enc.embed_utterance(preprocess_wav(rows[0]["audio"]))  # warm-up (librosa's JIT)
    out, times = timed(lambda r: enc.embed_utterance(preprocess_wav(r["audio"])), rows)
    return np.asarray(out), times


def interleaved_ms(rows) -> dict:
    """Time per utterance, zoo and resemblyzer taking turns on each (which goes first
    alternates), so both see the same load on a shared machine: medians and their ratio."""
    import zoo
    from resemblyzer import VoiceEncoder, preprocess_wav

    model = zoo.create_model("resemblyzer-ge2e", pretrained=True)
    enc = VoiceEncoder("cpu", verbose=False)
    ours = lambda r: model.predict([{"audio": r["audio"]}])  # noqa: E731
    ref = lambda r: enc.embed_utterance(preprocess_wav(r["audio"]))  # noqa: E731
    ours(rows[0]), ref(rows[0])  # warm-up (librosa's JIT, torch's first call)
    t_ours, t_ref = [], []
    for i, r in enumerate(rows):
        for fn, times in ((ours, t_ours), (ref, t_ref))[:: 1 if i % 2 else -1]:
            t = time.perf_counter()
            fn(r)
            times.append(time.perf_counter() - t)
    med_o, med_r = statistics.median(t_ours), statistics.median(t_ref)
    return {"ours": round(med_o * 1000, 1), "resemblyzer": round(med_r * 1000, 1),
            "resemblyzer / ours": round(med_r / med_o, 2), "utterances": len(rows),
            "order": "interleaved"}


def rates(emb: np.ndarray, rows: list[dict]) -> dict:
    from zoo_speech_speaker.trials import error_rates, pair_trials

    scores, same = pair_trials(emb, [r["speaker"] for r in rows])
    r = error_rates(scores, same)
    return {"eer": round(r.eer, 4), "min_dcf": round(r.min_dcf, 4),
            "eer_threshold": round(r.eer_threshold, 4), "target_trials": r.targets,
            "nontarget_trials": r.nontargets}


def by_subset(emb: np.ndarray, rows: list[dict]) -> dict:
    out = {}
    for name, keep in (("real", lambda r: r["real"]), ("synthetic", lambda r: not r["real"]),
                       ("all", lambda r: True)):
        idx = [i for i, r in enumerate(rows) if keep(r)]
        out[name] = rates(emb[idx], [rows[i] for i in idx])
    return out


def compare(rows: list[dict]) -> dict:
    ours, _ = embed_ours(rows)
    ref, _ = embed_package(rows)
    cos = np.einsum("nd,nd->n", ours, ref)
    novad, _ = embed_ours(rows, trim_silences=False)
    return {"cosine_port_vs_package": {"min": round(float(cos.min()), 6),
                                       "median": round(float(np.median(cos)), 6)},
            "ours": by_subset(ours, rows), "resemblyzer": by_subset(ref, rows),
            "ours_without_vad": by_subset(novad, rows),
            "cosine_vad_vs_no_vad": {"min": round(float(np.einsum("nd,nd->n", ours, novad
                                                                  ).min()), 4)},
            "ms_per_utterance": interleaved_ms(rows)}


def write(rows: list[dict], path: Path) -> Path:
    path.write_text("".join(json.dumps({"audio": r["audio"], "speaker": r["speaker"]}) + "\n"
                            for r in rows))
    return path


def training(rows: list[dict], root: Path, epochs: int) -> dict:
    """Half of the synthetic speakers enrolled (their first utterances train, the rest
    evaluate); the other half never seen."""
    import zoo

    synth = [r for r in rows if not r["real"]]
    names = sorted({r["speaker"] for r in synth})
    seen = set(names[::2])
    by = {}
    for r in synth:
        by.setdefault(r["speaker"], []).append(r)
    train = [r for s in seen for r in by[s][:-3]]
    evals = [r for s in seen for r in by[s][-3:]]
    unseen = [r for s in names if s not in seen for r in by[s]]
    out = {"train_utterances": len(train), "eval_utterances": len(evals),
           "unseen_utterances": len(unseen)}
    for model in ("resemblyzer-ge2e", "resemblyzer-ge2e-adapted"):
        run = root / model
        t = time.perf_counter()
        summary = zoo.train(model, write(train, root / "train.jsonl"),
                            write(evals, root / "eval.jsonl"), run, epochs=epochs,
                            progress=False, loggers=[])
        best = summary["best"]
        held = zoo.evaluate(run, write(unseen, root / "unseen.jsonl"))
        out[model] = {"eval_eer": round(best["eer"], 4),
                      "eval_enrolled_eer": round(best.get("enrolled_eer", float("nan")), 4),
                      "eval_identification": best.get("identification_accuracy"),
                      "unseen_speakers_eer": round(held["eer"], 4),
                      "unseen_speakers_min_dcf": round(held["min_dcf"], 4),
                      "best_epoch": summary["best_epoch"],
                      "seconds": round(time.perf_counter() - t, 1)}
    return out


def write_head(path: Path, threshold: float) -> None:
    import torch
    from safetensors.torch import save_file

    t = torch.tensor(round(threshold, 4))
    save_file({"centroids": torch.zeros(0, 256), "threshold": t, "pair_threshold": t.clone()},
              str(path))
    print(f"wrote {path}: thresholds {float(t):.4f}", file=sys.stderr)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--speakers", type=int, default=24)
    ap.add_argument("--utterances", type=int, default=8)
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", type=Path)
    ap.add_argument("--write-head", type=Path)
    ap.add_argument("--timing-only", action="store_true",
                    help="Only the interleaved time per utterance (zoo vs resemblyzer).")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        t = time.perf_counter()
        rows = real_set() + synthetic_set(root, args.speakers, args.utterances, args.seed)
        print(f"{len(rows)} utterances ({sum(r['real'] for r in rows)} real) in "
              f"{time.perf_counter() - t:.0f} s", file=sys.stderr)
        if args.timing_only:
            print(json.dumps({"ms_per_utterance": interleaved_ms(rows)}, indent=2))
            return
        result = {"data": {"utterances": len(rows), "speakers": len({r["speaker"]
                                                                     for r in rows})},
                  **compare(rows), "training": training(rows, root, args.epochs)}
    if args.write_head:
        write_head(args.write_head, result["ours"]["real"]["eer_threshold"])
    text = json.dumps(result, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")


if __name__ == "__main__":
    main()
