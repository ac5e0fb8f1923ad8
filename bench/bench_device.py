"""One part of zoo's life on one device (`--device`), for bench/gpu.sh's cuda vs cpu rows:

    .venv/bin/python bench/bench_device.py train   --device cuda --data DIGITS_DIR
    .venv/bin/python bench/bench_device.py predict --device cuda --model OUT --data DIGITS_DIR
    .venv/bin/python bench/bench_device.py eval    --device cpu  --model OUT --data DIGITS_DIR
    .venv/bin/python bench/bench_device.py serve   --device cuda --model OUT --data DIGITS_DIR

train: `zoo.train(..., device=)` (EfficientNet-Lite0 fine-tuned, every layer), examples/s;
predict: `zoo.load(..., device=).predict` on the test images, examples/s (model loading
and a warm-up outside the clock); eval: `zoo.evaluate(..., device=)`, accuracy and seconds;
serve: `zoo serve --device` in its own process, 32 clients posting one test image each
per request, requests/s (micro-batched, max batch 32). --precision auto: bf16 autocast on a
CUDA GPU, fp32 on the CPU. The figures print as one RESULT line.
"""
from __future__ import annotations

import argparse
import base64
import json
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from _common import WORK, Timer, report


def _rows(data: Path, split: str, limit: int) -> list[dict]:
    rows = [json.loads(x) for x in (data / f"{split}.jsonl").read_text().splitlines() if x]
    rows = rows[:limit] if limit else rows
    return [{**r, "image": str(data / r["image"])} for r in rows]


def bench_train(args: argparse.Namespace) -> dict:
    import zoo

    rows = _rows(args.data, "train", args.limit)
    out = WORK / f"device-train-{args.device.replace(':', '')}"
    with Timer() as t:
        s = zoo.train("effnet-lite0-image-clf", rows, None, out, epochs=args.epochs,
                      batch_size=args.batch_size, freeze="none", device=args.device,
                      precision=args.precision, loggers=[], progress=False)
    rec = json.loads((out / "training.json").read_text())
    return {"examples": len(rows) * args.epochs, "seconds": round(t.s, 2),
            "ex_per_s": round(len(rows) * args.epochs / t.s, 1),
            "precision": rec.get("precision"), "best_epoch": s["best_epoch"]}


def bench_predict(args: argparse.Namespace) -> dict:
    import zoo

    rows = _rows(args.data, "test", args.limit)
    inputs = [{"image": r["image"]} for r in rows]
    model = zoo.load(args.model, device=args.device, precision=args.precision)
    model.predict(inputs[:args.batch_size], batch_size=args.batch_size)  # warm-up
    times = []
    for _ in range(args.reps):
        with Timer() as t:
            model.predict(inputs, batch_size=args.batch_size)
        times.append(t.s)
    best = min(times)
    return {"examples": len(inputs), "seconds": round(best, 3),
            "ex_per_s": round(len(inputs) / best, 1), "device": str(model.device)}


def bench_eval(args: argparse.Namespace) -> dict:
    import zoo

    model = zoo.load(args.model, device=args.device, precision=args.precision)
    rows = _rows(args.data, "test", 0)
    model.predict([{"image": r["image"]} for r in rows[:args.batch_size]])  # warm-up
    with Timer() as t:
        r = zoo.evaluate(model, str(args.data / "test.jsonl"), batch_size=args.batch_size)
    return {"examples": r["n"], "seconds": round(t.s, 3), "accuracy": round(r["accuracy"], 4),
            "ex_per_s": round(r["n"] / t.s, 1)}


def bench_serve(args: argparse.Namespace) -> dict:
    import httpx

    images = [base64.b64encode(Path(r["image"]).read_bytes()).decode()
              for r in _rows(args.data, "test", args.limit)]
    zoo = str(Path(sys.executable).with_name("zoo"))
    db = Path(tempfile.mkdtemp()) / "fb.db"
    cmd = [zoo, "serve", str(args.model), "--port", str(args.port), "--device", args.device,
           "--precision", args.precision, "--max-batch", "32", "--max-wait-ms", "10",
           "--feedback-db", str(db)]
    proc = subprocess.Popen(cmd, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    url = f"http://127.0.0.1:{args.port}"
    try:
        for _ in range(1200):
            try:
                if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        info = httpx.get(f"{url}/info", timeout=10).json()
        n, clients = args.requests, args.clients

        def client(k: int) -> None:
            with httpx.Client(timeout=120) as c:
                for i in range(k, n, clients):
                    c.post(f"{url}/predict", json={"inputs": [
                        {"image": images[i % len(images)]}]}).raise_for_status()

        with ThreadPoolExecutor(clients) as pool:  # warm-up: first calls off the clock
            list(pool.map(lambda k: httpx.post(f"{url}/predict", json={"inputs": [
                {"image": images[k % len(images)]}]}, timeout=120).raise_for_status(),
                range(clients)))
        with Timer() as t, ThreadPoolExecutor(clients) as pool:
            list(pool.map(client, range(clients)))
        return {"requests": n, "clients": clients, "seconds": round(t.s, 2),
                "rps": round(n / t.s, 1), "device": info.get("device"),
                "precision": info.get("precision")}
    finally:
        proc.terminate()
        proc.wait(timeout=30)


BENCHES = {"train": bench_train, "predict": bench_predict, "eval": bench_eval,
           "serve": bench_serve}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("what", choices=sorted(BENCHES))
    ap.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N, mps")
    ap.add_argument("--precision", default="auto")
    ap.add_argument("--model", help="a trained model folder (predict, eval, serve)")
    ap.add_argument("--data", type=Path, required=True,
                    help="a digits folder (zoo.testing.synthetic.digits_manifests)")
    ap.add_argument("--limit", type=int, default=0, help="examples at most (0: all)")
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--reps", type=int, default=3, help="predict: timed passes, best kept")
    ap.add_argument("--requests", type=int, default=512)
    ap.add_argument("--clients", type=int, default=32)
    ap.add_argument("--port", type=int, default=8771)
    args = ap.parse_args()
    if args.what != "train" and not args.model:
        ap.error(f"{args.what} needs --model")
    r = BENCHES[args.what](args)
    print(f"{args.what} on {args.device}: " + ", ".join(f"{k} {v}" for k, v in r.items()))
    report(f"device-{args.what}-{args.device.replace(':', '')}",
           {"what": args.what, "device_asked": args.device, **r})


if __name__ == "__main__":
    main()
