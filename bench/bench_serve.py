"""Serving throughput: 32 concurrent clients against `zoo serve` with micro-batching
(max batch 32) and with batch size 1, same model, same requests. Target: >= 3x requests/s.
Prints requests/s and p50/p99 latency. Clients run in this process, the server in its own.

    .venv/bin/python bench/bench_serve.py [--model minilm-text-clf --requests 640]
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

from _common import report

SENTENCES = ["the film was a delight from start to finish", "a tedious, overlong mess",
             "solid performances but a thin story", "I would watch it again tomorrow"]


def run(model: str, max_batch: int, n: int, clients: int, port: int) -> dict:
    zoo = str(Path(sys.executable).with_name("zoo"))
    db = Path(tempfile.mkdtemp()) / "fb.db"
    proc = subprocess.Popen([zoo, "serve", model, "--port", str(port), "--max-batch",
                             str(max_batch), "--max-wait-ms", "10", "--feedback-db", str(db)],
                            env={**os.environ, "HF_HUB_OFFLINE": "1"})
    try:
        url = f"http://127.0.0.1:{port}"
        for _ in range(600):
            try:
                if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        lat: list[float] = []

        def client(k: int) -> None:
            with httpx.Client(timeout=120) as c:
                for i in range(k, n, clients):
                    t = time.perf_counter()
                    r = c.post(f"{url}/predict",
                               json={"inputs": [{"text": SENTENCES[i % len(SENTENCES)]}]})
                    r.raise_for_status()
                    lat.append(time.perf_counter() - t)

        def warm(k: int) -> None:  # real requests: first-call costs fall before the clock
            with httpx.Client(timeout=120) as c:
                for i in range(3):
                    c.post(f"{url}/predict", json={"inputs": [{"text": SENTENCES[(k + i) % 4]}]}
                           ).raise_for_status()

        with ThreadPoolExecutor(clients) as pool:
            list(pool.map(warm, range(clients)))
        t0 = time.perf_counter()
        with ThreadPoolExecutor(clients) as pool:
            list(pool.map(client, range(clients)))
        wall = time.perf_counter() - t0
        lat.sort()
        return {"rps": n / wall, "p50_ms": 1000 * statistics.median(lat),
                "p99_ms": 1000 * lat[int(0.99 * (len(lat) - 1))]}
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="minilm-text-clf")
    ap.add_argument("--requests", type=int, default=640)
    ap.add_argument("--clients", type=int, default=32)
    args = ap.parse_args()
    batched = run(args.model, 32, args.requests, args.clients, 8761)
    single = run(args.model, 1, args.requests, args.clients, 8762)
    for name, r in (("micro-batched (max 32)", batched), ("batch size 1", single)):
        print(f"{name:24} {r['rps']:7.1f} req/s   p50 {r['p50_ms']:7.1f} ms   "
              f"p99 {r['p99_ms']:7.1f} ms")
    ratio = batched["rps"] / single["rps"]
    print(f"throughput ratio {ratio:.2f}x ({args.clients} clients, {args.requests} requests, "
          f"{args.model}; target >= 3x)")
    report("serve", {"ratio": round(ratio, 2), "batched_rps": round(batched["rps"], 1),
                     "single_rps": round(single["rps"], 1),
                     "batched_p50_ms": round(batched["p50_ms"], 1),
                     "batched_p99_ms": round(batched["p99_ms"], 1),
                     "single_p50_ms": round(single["p50_ms"], 1),
                     "single_p99_ms": round(single["p99_ms"], 1)})


if __name__ == "__main__":
    main()
