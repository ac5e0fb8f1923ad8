"""Serving peers: the same model (the registry's ``minilm-text-clf`` trained as a frozen
probe on Debian fortunes, 10 topics, bench_text.py's split; trained once, loaded by every
server from the same folder) served six ways, each in its own process on 127.0.0.1:

  zoo-onnx-int8  ``zoo serve DIR --runtime onnx --quantize int8``  (the graph's weights in
             int8; same micro-batching)
  zoo-onnx   ``zoo serve DIR --runtime onnx``  (micro-batching: max batch 32, max wait 10 ms)
  zoo-torch  ``zoo serve DIR``                 (same, the default torch runtime: on a CPU
             its batches run in a child process, ``--inference auto``)
  zoo-torch-thread  ``zoo serve DIR --inference thread``: batches in the server process
  zoo-*-proc  the same three with ``--inference process``: batches in a child process
             (zoo-torch-proc1: that child on one torch thread, as it has by default on 2
             cores; zoo-torch-proc then takes ZOO_SERVE_INFERENCE_THREADS from the caller)
  litserve   a ``litserve.LitAPI`` (setup: zoo.load; batched predict: model.predict(list);
             max_batch_size 32, batch_timeout 0.01, one worker; litserve-1t: on one torch
             thread, which does better than its default on a loaded machine)
  ray        Ray Serve, ``@serve.batch(max_batch_size=32, batch_wait_timeout_s=0.01)`` around
             the same predict (one replica, max_ongoing_requests 64 so a batch can fill;
             torch threads set back to the core count, which Ray's OMP_NUM_THREADS=1 lowers)
  fastapi    a plain FastAPI endpoint calling model.predict on each request (batch 1; a lock
             around the model: the tokenizer is not safe to share between threads)

Clients are httpx threads in this process, every server gets the same sentences and a
warm-up of a few requests per client before the clock. The servers run interleaved over
``--rounds`` rounds (all started once, measured one at a time, the others paused with
SIGSTOP so an idle one's polling takes nothing from the measured one); medians are reported:
req/s, p50, p99, the server's CPU milliseconds a request (every process of it: what a
request costs the machine, whose cores the clients share), and zoo / each peer. Every fp32 server must answer the same label (and
scores within 1e-3) for the same sentence, or the bench fails; int8 moves scores more, so
each zoo runtime's accuracy is measured over HTTP on the held-out test fortunes (462,
labelled) and printed, with int8's difference from fp32 (it must stay within 0.5 points:
the bench says when it does not). A concurrency sweep (zoo and LitServe) draws
serve_latency.png into WORK/serve_peers.

    .venv/bin/python bench/bench_serve_peers.py [--rounds 3 --requests 192 --clients 32
        --sweep 1,4,16,32 --servers zoo-onnx-int8,zoo-onnx,zoo-torch,litserve,ray,fastapi]

The load is short film-review sentences (below), the same for every server; the accuracy
pass uses the fortunes (`apt-get install fortunes`). ``--peer-threads 1`` pins torch to one
thread in the peers: on a busy 2-core machine LitServe's worker (torch on 2 OpenMP threads
in its main thread) loses much of its time to thread synchronisation, and this shows how
much of the gap that is. The clients share the CPU with the servers (about 3 ms of CPU per
request in this process), which narrows every ratio.
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from _common import WORK, report

HERE = Path(__file__).resolve()
OUT = WORK / "serve_peers"
ALL = ("zoo-onnx-int8", "zoo-onnx", "zoo-torch", "zoo-torch-b1", "zoo-torch-thread", "zoo-onnx-int8-proc",
       "zoo-onnx-proc", "zoo-torch-proc", "zoo-torch-proc1", "litserve", "litserve-1t", "ray",
       "fastapi")
ZOO = tuple(k for k in ALL if k.startswith("zoo-"))
INT8_POINTS = 0.5  # int8's accuracy must stay within this many points of fp32's
START_TIMEOUT = {"ray": 240.0}  # seconds until /health answers; others 120

SENTENCES = [
    "the film was a delight from start to finish",
    "a tedious, overlong mess",
    "solid performances but a thin story",
    "I would watch it again tomorrow",
    "the soundtrack alone is worth the ticket price, and the cast clearly had fun",
    "boring",
    "an ambitious failure that nonetheless has moments of real beauty",
    "the dialogue is wooden and the plot makes no sense at all",
    "my kids loved it; I fell asleep halfway through",
    "a masterpiece",
    "the second half drags, but the ending lands with surprising force",
    "not funny, not clever, not worth your time",
    "beautifully shot, terribly edited",
    "the lead gives the performance of her career",
    "I want those two hours of my life back",
    "a charming little story told with warmth and wit",
    "the special effects have aged badly, the jokes even worse",
    "surprisingly moving for a film about a talking dog",
    "predictable from the first scene to the last",
    "one of the best thrillers of the decade, tense and tightly plotted throughout",
    "it is fine",
    "the director's worst film by a wide margin",
    "funny, sharp and over far too soon",
    "an incoherent sequel that forgets everything that made the original work",
    "great acting",
    "the pacing is glacial and the characters are impossible to care about",
    "a warm, generous comedy with a big heart",
    "avoid",
    "every frame is a painting, every line of dialogue a small gift",
    "it tries hard but never quite takes off",
    "the twist was obvious an hour before it arrived",
    "I laughed, I cried, I bought the soundtrack",
]


# ---------------------------------------------------------------------------- servers
def _set_threads() -> None:
    """--peer-threads: torch's intra-op threads in a peer (0: the peer's default)."""
    n = int(os.environ.get("ZOO_BENCH_PEER_THREADS") or 0)
    if n:
        import torch

        torch.set_num_threads(n)


def _log_batch(n: int) -> None:
    """Each model call of a peer server, one line in its batch log (the bench reads the
    batch sizes back; zoo serve counts them in /metrics)."""
    with open(os.environ["ZOO_BENCH_BATCH_LOG"], "a") as f:
        f.write(f"{n}\n")


if os.environ.get("ZOO_BENCH_PEER") == "litserve":  # module level: LitServe spawns its
    import litserve as ls                           # worker, which unpickles this class

    class ZooLitAPI(ls.LitAPI):
        def __init__(self, folder: str, **kw) -> None:
            super().__init__(**kw)
            self.folder = folder

        def setup(self, device):
            import torch

            import zoo

            _set_threads()
            self.model = zoo.load(self.folder)
            print(f"litserve worker: torch threads {torch.get_num_threads()}", file=sys.stderr)

        def decode_request(self, request):
            return request["inputs"][0]

        def predict(self, xs):
            _log_batch(len(xs))
            return self.model.predict(list(xs), batch_size=max(1, len(xs)))

        def encode_response(self, output):
            return {"outputs": [output]}


def _serve_litserve(folder: str, port: int) -> None:
    import litserve as ls

    api = ZooLitAPI(folder, max_batch_size=32, batch_timeout=0.01)
    server = ls.LitServer(api, accelerator="cpu", workers_per_device=1, timeout=120)
    server.run(host="127.0.0.1", port=port, log_level="warning", generate_client_file=False)


def _serve_ray(folder: str, port: int) -> None:
    import asyncio

    import ray
    from ray import serve
    from starlette.requests import Request

    threads = os.cpu_count() or 1

    @serve.deployment(num_replicas=1, max_ongoing_requests=64,
                      ray_actor_options={"num_cpus": 0})
    class Peer:
        def __init__(self, source: str, batch_log: str, peer_threads: str) -> None:
            import torch

            import zoo

            os.environ["ZOO_BENCH_BATCH_LOG"] = batch_log
            os.environ["ZOO_BENCH_PEER_THREADS"] = peer_threads

            torch.set_num_threads(threads)  # Ray sets OMP_NUM_THREADS=1 in its workers
            _set_threads()
            self.model = zoo.load(source)

        @serve.batch(max_batch_size=32, batch_wait_timeout_s=0.01)
        async def predict(self, xs: list) -> list:
            _log_batch(len(xs))
            return await asyncio.to_thread(self.model.predict, xs, batch_size=len(xs))

        async def __call__(self, request: Request):
            if request.url.path.rstrip("/").endswith("/health"):
                return {"status": "ok"}
            body = await request.json()
            return {"outputs": [await self.predict(body["inputs"][0])]}

    ray.init(num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False)
    serve.start(http_options={"host": "127.0.0.1", "port": port})
    serve.run(Peer.bind(folder, os.environ["ZOO_BENCH_BATCH_LOG"],
                        os.environ.get("ZOO_BENCH_PEER_THREADS", "")),
              route_prefix="/", name="peer")
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *a: stop.set())
    try:
        while not stop.wait(1):
            pass
    finally:
        serve.shutdown()
        ray.shutdown()


def _serve_fastapi(folder: str, port: int) -> None:
    import torch
    import uvicorn
    from fastapi import FastAPI

    import zoo

    _set_threads()
    model = zoo.load(folder)
    lock = threading.Lock()
    app = FastAPI()
    print(f"fastapi: torch threads {torch.get_num_threads()}", file=sys.stderr)

    @app.get("/health")
    def health():
        return {"status": "ok"}

    @app.post("/predict")
    def predict(body: dict):
        with lock:
            _log_batch(1)
            return {"outputs": model.predict([body["inputs"][0]], batch_size=1)}

    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """One server process (its own session, so the whole group can be ended)."""

    def __init__(self, kind: str, folder: Path, peer_threads: int = 0) -> None:
        self.kind, self.port = kind, _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        peer = kind.removesuffix("-1t")  # litserve-1t: LitServe on one torch thread
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "RAY_USAGE_STATS_ENABLED": "0",
               "TOKENIZERS_PARALLELISM": "false", "ZOO_BENCH_PEER": peer}
        if kind.endswith("-proc1"):  # zoo's inference process on one torch thread
            env["ZOO_SERVE_INFERENCE_THREADS"] = "1"
        if kind.startswith("zoo-"):
            zoo_exe = str(Path(sys.executable).with_name("zoo"))
            cmd = [zoo_exe, "serve", str(folder), "--port", str(self.port), "--max-batch", "32",
                   "--max-wait-ms", "10", "--feedback-db", str(OUT / f"fb-{kind}.db"),
                   "--runtime", "onnx" if "onnx" in kind else "torch",
                   *(["--quantize", "int8"] if "-int8" in kind else []),
                   *(["--inference", "process"] if "-proc" in kind else []),
                   *(["--inference", "thread"] if kind.endswith("-thread") else []),
                   *(["--batch-threads", "1"] if kind.endswith("-b1") else [])]
        else:
            cmd = [sys.executable, str(HERE), "--serve-peer", peer, "--folder", str(folder),
                   "--port", str(self.port)]
        (OUT / "logs").mkdir(parents=True, exist_ok=True)
        self.log_path = OUT / "logs" / f"{kind}.log"
        self.batch_log = OUT / "logs" / f"{kind}.batches"
        self.batch_log.unlink(missing_ok=True)
        env["ZOO_BENCH_BATCH_LOG"] = str(self.batch_log)
        env["ZOO_BENCH_PEER_THREADS"] = "1" if kind.endswith("-1t") else str(peer_threads or "")
        self.log = open(self.log_path, "w")
        self.t0 = time.perf_counter()
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT, env=env,
                                     start_new_session=True)

    def wait_ready(self) -> float:
        import httpx

        deadline = self.t0 + START_TIMEOUT.get(self.kind, 120.0)
        while time.perf_counter() < deadline:
            if self.proc.poll() is not None:
                break
            try:
                if httpx.get(f"{self.url}/health", timeout=2).status_code == 200:
                    return time.perf_counter() - self.t0
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        self.stop()
        tail = self.log_path.read_text(errors="replace")[-3000:]
        raise SystemExit(f"{self.kind} did not start (exit {self.proc.poll()}); log tail:\n{tail}")

    def batches(self) -> tuple[int, int]:
        """(model calls, inputs) so far: zoo's /metrics, the peers' BATCH log lines."""
        if self.kind.startswith("zoo-"):
            import httpx

            text = httpx.get(f"{self.url}/metrics", timeout=10).text
            get = {line.split()[0]: float(line.split()[1]) for line in text.splitlines()
                   if line.startswith(("zoo_batch_size_sum", "zoo_batch_size_count"))}
            return int(get.get("zoo_batch_size_count", 0)), int(get.get("zoo_batch_size_sum", 0))
        sizes = [int(x) for x in self.batch_log.read_text().split()] \
            if self.batch_log.is_file() else []
        return len(sizes), sum(sizes)

    def cpu(self) -> float:
        """CPU seconds (user + system) the server's processes have used so far: the server
        and every process below it (zoo's inference child, LitServe's workers, Ray's)."""
        import psutil

        total = 0.0
        try:
            top = psutil.Process(self.proc.pid)
            for q in [top, *top.children(recursive=True)]:
                try:
                    t = q.cpu_times()
                    total += t.user + t.system
                except psutil.Error:
                    pass
        except psutil.Error:
            pass
        return total

    def pause(self, paused: bool) -> None:
        """Stops (SIGSTOP) or resumes (SIGCONT) every process of the server: the servers
        not being measured take no CPU (an idle LitServe polls its queues: about 6 % of a
        core in each of its two processes, which the measured server would lose)."""
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGSTOP if paused else signal.SIGCONT)
            except ProcessLookupError:
                pass

    def stop(self) -> None:
        self.pause(False)
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
                self.proc.wait(timeout=30)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                pass
        try:  # anything the server left behind in its group (ray's raylet, gcs, workers)
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.log.close()


def alone(servers: dict[str, Server], kind: str) -> None:
    """``kind`` runs, every other server is paused (:meth:`Server.pause`)."""
    for k, server in servers.items():
        server.pause(k != kind)
    time.sleep(0.2)  # the resumed one's threads back on their feet


# ---------------------------------------------------------------------------- clients
class RawClient:
    """A light HTTP/1.1 client for the load: one kept-alive socket, the request bytes
    written as they are, the answer read by its Content-Length (about 0.1 ms of CPU a
    request against httpx's 3, which shares the 2 cores with the servers): what a load
    generator such as wrk costs, so the servers, not the clients, set the pace. Same
    ``post`` / ``raise_for_status`` / ``json`` as the httpx calls used here."""

    def __init__(self, url: str, timeout: float = 120) -> None:
        host, port = url.removeprefix("http://").split(":")
        self.host, self.port, self.timeout = host, int(port), timeout
        self.sock: socket.socket | None = None
        self.rest = b""

    def __enter__(self) -> "RawClient":
        return self

    def __exit__(self, *exc: object) -> None:
        if self.sock is not None:
            self.sock.close()

    def post(self, url: str, json: dict) -> "RawClient":
        import json as _json

        body = _json.dumps(json).encode()
        path = "/" + url.split("/", 3)[3]
        if self.sock is None:
            self.sock = socket.create_connection((self.host, self.port), self.timeout)
            self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock.sendall(f"POST {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
                          f"Content-Type: application/json\r\nContent-Length: {len(body)}"
                          f"\r\n\r\n".encode() + body)
        data = self.rest
        while b"\r\n\r\n" not in data:
            data += self._recv()
        head, data = data.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        self.status_code = int(lines[0].split()[1])
        fields = dict(x.split(":", 1) for x in lines[1:] if ":" in x)
        length = next((int(v) for k, v in fields.items() if k.lower() == "content-length"),
                      None)
        if length is None:
            raise RuntimeError(f"{url}: an answer without Content-Length (--client httpx "
                               f"reads those)")
        while len(data) < length:
            data += self._recv()
        self.content, self.rest = data[:length], data[length:]
        return self

    def _recv(self) -> bytes:
        chunk = self.sock.recv(65536) if self.sock else b""
        if not chunk:
            raise ConnectionError("the server closed the connection")
        return chunk

    def raise_for_status(self) -> None:
        if self.status_code != 200:
            raise RuntimeError(f"HTTP {self.status_code}: {self.content[:200]!r}")

    def json(self) -> dict:
        return json.loads(self.content)


def measure(server: Server, clients: int, n: int, max_seconds: float,
            answers: dict | None = None, client_kind: str = "httpx") -> dict:
    """``clients`` threads send ``n`` single-sentence requests in all (each stops once
    ``max_seconds`` have passed); req/s over the wall time, p50/p99 latency, the mean
    batch the server ran (warm-up included), and the CPU milliseconds its processes spent
    per request while the clock ran (``cpu_ms``: what a request costs the machine, which
    the clients on the same cores share). ``client_kind``: ``httpx`` (a Client per thread)
    or ``raw`` (:class:`RawClient`)."""
    import httpx

    def connect() -> Any:
        return RawClient(server.url) if client_kind == "raw" else httpx.Client(timeout=120)

    url = server.url
    calls0, inputs0 = server.batches()
    lat: list[float] = []
    errors: list[str] = []
    per = [list(range(k, n, clients)) for k in range(clients)]
    clock = [0.0, 0.0]  # start, deadline: set once every client has warmed up
    cpu0 = [0.0]

    def go() -> None:
        cpu0[0] = server.cpu()
        clock[:] = [time.perf_counter(), time.perf_counter() + max_seconds]

    start = threading.Barrier(clients + 1, action=go)

    def client(k: int) -> None:
        with connect() as c:
            try:
                for i in range(3):  # warm-up: first-call costs fall before the clock
                    c.post(f"{url}/predict", json={"inputs": [
                        {"text": SENTENCES[(k + i) % len(SENTENCES)]}]}).raise_for_status()
            except Exception as e:  # noqa: BLE001
                errors.append(repr(e))
            start.wait()
            for i in per[k]:
                if time.perf_counter() > clock[1]:
                    break
                s = SENTENCES[i % len(SENTENCES)]
                t = time.perf_counter()
                try:
                    r = c.post(f"{url}/predict", json={"inputs": [{"text": s}]})
                    r.raise_for_status()
                except Exception as e:  # noqa: BLE001
                    errors.append(repr(e))
                    return
                lat.append(time.perf_counter() - t)
                if answers is not None:
                    out = r.json()["outputs"][0]
                    answers.setdefault(s, []).append((out["label"], out["scores"]))

    threads = [threading.Thread(target=client, args=(k,), daemon=True) for k in range(clients)]
    for th in threads:
        th.start()
    start.wait(timeout=600)
    for th in threads:
        th.join(timeout=max_seconds + 180)
    wall = time.perf_counter() - clock[0]
    cpu = server.cpu() - cpu0[0]
    if errors:
        raise SystemExit(f"{url}: {len(errors)} failed requests, first: {errors[0]}")
    lat.sort()
    calls, inputs = server.batches()
    return {"rps": len(lat) / wall, "p50_ms": 1000 * statistics.median(lat),
            "p99_ms": 1000 * lat[int(0.99 * (len(lat) - 1))], "n": len(lat),
            "batch": (inputs - inputs0) / max(1, calls - calls0),
            "cpu_ms": 1000 * cpu / max(1, len(lat))}


def accuracy(server: Server, rows: list[dict], per_request: int = 32) -> float:
    """The share of ``rows`` ({"text", "label"}) the server labels right, posted
    ``per_request`` inputs at a time."""
    import httpx

    right = 0
    with httpx.Client(timeout=300) as c:
        for i in range(0, len(rows), per_request):
            part = rows[i:i + per_request]
            r = c.post(f"{server.url}/predict",
                       json={"inputs": [{"text": x["text"]} for x in part]})
            r.raise_for_status()
            right += sum(o["label"] == x["label"] for o, x in zip(r.json()["outputs"], part))
    return right / len(rows)


def int8_agreement(answers: dict[str, dict], kind: str, ref: str) -> tuple[float, float]:
    """(share of the load's sentences where ``kind`` gave ``ref``'s label, largest score
    difference)."""
    same, n, worst = 0, 0, 0.0
    for s in SENTENCES:
        if s in answers[kind] and s in answers[ref]:
            lab, sc = answers[kind][s][0]
            lab0, sc0 = answers[ref][s][0]
            same, n = same + (lab == lab0), n + 1
            worst = max(worst, max(abs(sc[k] - sc0[k]) for k in sc0))
    return same / max(1, n), worst


def check_same_answers(answers: dict[str, dict]) -> float:
    """Every server gave every sentence the same label, scores within 1e-3: the largest
    score difference seen."""
    ref_kind = next(iter(answers))
    worst = 0.0
    for s in SENTENCES:
        seen = [(kind, lab, sc) for kind, a in answers.items() for lab, sc in a.get(s, [])]
        if not seen:
            continue
        _, lab0, sc0 = next(x for x in seen if x[0] == ref_kind) if any(
            x[0] == ref_kind for x in seen) else seen[0]
        for kind, lab, sc in seen:
            diff = max(abs(sc[k] - sc0[k]) for k in sc0)
            worst = max(worst, diff)
            if lab != lab0 or diff > 1e-3:
                raise SystemExit(f"DIFFERENT PREDICTIONS for {s!r}: {kind} says {lab} {sc}, "
                                 f"{ref_kind} says {lab0} {sc0}")
    missing = [k for k, a in answers.items() if not a]
    if missing:
        raise SystemExit(f"no answers recorded from {missing}")
    return worst


def plot(sweep: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4.2))
    for kind, rows in sweep.items():
        cs = sorted(rows)
        line, = a.plot(cs, [rows[c]["p50_ms"] for c in cs], "o-", label=f"{kind} p50")
        a.plot(cs, [rows[c]["p99_ms"] for c in cs], "s--", color=line.get_color(),
               label=f"{kind} p99")
        b.plot(cs, [rows[c]["rps"] for c in cs], "o-", label=kind)
    ticks = sorted({c for rows in sweep.values() for c in rows})
    for ax in (a, b):
        ax.set_xscale("log", base=2)
        ax.set_xticks(ticks, [str(c) for c in ticks])
        ax.set_xlabel("concurrent clients")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    a.set_yscale("log")
    a.set_ylabel("latency (ms)")
    a.set_title("latency vs concurrency (minilm-text-clf)")
    b.set_ylabel("requests / s")
    b.set_title("throughput vs concurrency")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def fortunes() -> dict[str, Path]:
    """bench_text.py's split of Debian fortunes (10 topics): train / val / test JSONL."""
    from bench_text import FORTUNES, TOPICS, build

    missing = [t for t in TOPICS if not (FORTUNES / t).is_file()]
    if missing:
        raise SystemExit(f"fortunes missing ({missing}): apt-get install fortunes")
    return build(WORK / "fortunes")


def make_model(folder: Path, paths: dict[str, Path]) -> None:
    """minilm-text-clf as a frozen probe on the fortunes (about a minute, once)."""
    if (folder / "config.json").is_file():
        return
    import zoo

    t = time.perf_counter()
    zoo.train("minilm-text-clf", paths["train"], paths["val"], folder, freeze="all",
              progress=False)
    print(f"trained the served model (frozen MiniLM probe on fortunes) in "
          f"{time.perf_counter() - t:.0f} s", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--requests", type=int, default=192, help="per measurement")
    ap.add_argument("--clients", type=int, default=32)
    ap.add_argument("--max-seconds", type=float, default=20.0,
                    help="a measurement stops issuing requests after this long")
    ap.add_argument("--sweep", default="1,4,16,32", help="concurrencies ('' for none)")
    ap.add_argument("--sweep-requests", type=int, default=64,
                    help="per sweep point (at least 2 per client)")
    ap.add_argument("--sweep-servers", default="zoo-onnx-int8,zoo-onnx,zoo-torch,litserve")
    ap.add_argument("--servers", default=",".join(ALL))
    ap.add_argument("--peer-threads", type=int, default=0,
                    help="torch.set_num_threads(N) in LitServe, Ray and FastAPI (0: their "
                         "default; zoo serve keeps its own)")
    ap.add_argument("--client", choices=("httpx", "raw"), default="httpx",
                    help="the load's HTTP client: httpx (about 3 ms of CPU a request, on the "
                         "cores the servers use) or raw (RawClient: about 0.1 ms)")
    ap.add_argument("--serve-peer", choices=("litserve", "ray", "fastapi"), help=argparse.SUPPRESS)
    ap.add_argument("--folder", help=argparse.SUPPRESS)
    ap.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.serve_peer:
        {"litserve": _serve_litserve, "ray": _serve_ray, "fastapi": _serve_fastapi}[
            args.serve_peer](args.folder, args.port)
        return

    kinds = [k for k in args.servers.split(",") if k]
    unknown = set(kinds) - set(ALL)
    if unknown:
        raise SystemExit(f"unknown servers {sorted(unknown)} (known: {', '.join(ALL)})")
    sweep_c = [int(c) for c in args.sweep.split(",") if c]
    sweep_kinds = [k for k in args.sweep_servers.split(",") if k in kinds] if sweep_c else []
    OUT.mkdir(parents=True, exist_ok=True)
    folder = OUT / "model-fortunes"
    t_all = time.perf_counter()
    paths = fortunes()
    make_model(folder, paths)
    test = [json.loads(x) for x in paths["test"].read_text().splitlines()]
    print(f"uptime: {os.getloadavg()} (load 1/5/15 min) on {os.cpu_count()} cores", flush=True)
    servers: dict[str, Server] = {}
    try:
        for k in kinds:  # started one after another: startups never overlap a measurement
            servers[k] = Server(k, folder, args.peer_threads)
            print(f"{k:10} ready in {servers[k].wait_ready():5.1f} s", flush=True)
        rows: dict[str, list[dict]] = {k: [] for k in kinds}
        answers: dict[str, dict] = {k: {} for k in kinds}
        for r in range(args.rounds):
            order = kinds[r % len(kinds):] + kinds[:r % len(kinds)]  # rotate who goes first
            for k in order:
                alone(servers, k)
                res = measure(servers[k], args.clients, args.requests, args.max_seconds,
                              answers[k], args.client)
                rows[k].append(res)
                print(f"round {r + 1} {k:10} {res['rps']:7.1f} req/s  p50 {res['p50_ms']:7.1f}"
                      f"  p99 {res['p99_ms']:7.1f} ms  ({res['n']} requests, mean batch "
                      f"{res['batch']:4.1f}, server CPU {res['cpu_ms']:4.2f} ms a request)",
                      flush=True)
        fp32 = [k for k in kinds if "-int8" not in k]
        worst = check_same_answers({k: answers[k] for k in fp32})
        acc = {k: alone(servers, k) or accuracy(servers[k], test) for k in kinds
               if k.startswith("zoo-")}
        agree = {k: int8_agreement(answers, k, ref) for k in kinds if "-int8" in k
                 for ref in [next((r for r in ("zoo-onnx", "zoo-torch") if r in kinds),
                                  None)] if ref}
        med = {k: {m: statistics.median(x[m] for x in rows[k])
                   for m in ("rps", "p50_ms", "p99_ms", "batch", "cpu_ms")} for k in kinds}
        sweep: dict[str, dict[int, dict]] = {k: {} for k in sweep_kinds}
        for c in sweep_c:
            for k in sweep_kinds:
                if c == args.clients and args.rounds:
                    sweep[k][c] = med[k]
                    continue
                n = max(args.sweep_requests, 2 * c)
                alone(servers, k)
                sweep[k][c] = measure(servers[k], c, n, args.max_seconds,
                                      client_kind=args.client)
                r = sweep[k][c]
                print(f"sweep {c:3} clients {k:10} {r['rps']:7.1f} req/s  p50 "
                      f"{r['p50_ms']:7.1f}  p99 {r['p99_ms']:7.1f} ms  (mean batch "
                      f"{r['batch']:4.1f})", flush=True)
    finally:
        for s in servers.values():
            s.stop()
    print(f"\nmedians of {args.rounds} rounds, {args.clients} clients, {args.requests} requests "
          f"each (cap {args.max_seconds:g} s, {args.client} clients), minilm-text-clf; "
          f"peers' torch threads: "
          f"{args.peer_threads or 'their default'}; load now {os.getloadavg()}")
    print(f"{'server':13} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'batch':>6} {'CPU ms':>7}" +
          "".join(f"  {z + '/x':>13}" for z in ZOO if z in med))
    for k in kinds:
        ratios = "".join(f"  {med[z]['rps'] / med[k]['rps']:12.2f}x" if z in med else
                         f"  {'-':>13}" for z in ZOO if z in med)
        print(f"{k:13} {med[k]['rps']:8.1f} {med[k]['p50_ms']:8.1f} {med[k]['p99_ms']:8.1f}"
              f" {med[k]['batch']:6.1f} {med[k]['cpu_ms']:7.2f}{ratios}")
    print(f"same label for every sentence on every fp32 server ({', '.join(fp32)}); largest "
          f"score difference {worst:.2e}")
    ref_acc = next((acc[r] for r in ("zoo-torch", "zoo-onnx") if r in acc), None)
    for k, a in acc.items():
        delta = "" if ref_acc is None or k in ("zoo-torch", "zoo-onnx") else \
            f"  ({100 * (a - ref_acc):+.2f} points vs fp32" + (
                ")" if abs(100 * (a - ref_acc)) <= INT8_POINTS else
                f": OUTSIDE {INT8_POINTS} points)")
        print(f"accuracy on {len(test)} test fortunes (10 topics), {k:13} {a:.4f}{delta}")
    for k, (share, diff) in agree.items():
        print(f"{k}: same label as fp32 on {100 * share:.0f} % of the load's sentences, "
              f"largest score difference {diff:.3f}")
    png = OUT / "serve_latency.png"
    if sweep:
        plot(sweep, png)
        print(f"plot: {png}")
    figures = {f"{k}_{m}": round(v, 2 if m == "cpu_ms" else 1) for k in kinds
               for m, v in med[k].items()}
    for z in ZOO:
        for k in kinds:
            if z in med and k != z and not k.startswith("zoo-"):
                figures[f"{z}_over_{k}"] = round(med[z]["rps"] / med[k]["rps"], 2)
    figures.update({f"{k}_accuracy": round(a, 4) for k, a in acc.items()})
    figures.update({f"{k}_same_label_as_fp32": round(a[0], 3) for k, a in agree.items()})
    figures.update(max_score_diff=float(f"{worst:.2e}"), rounds=args.rounds,
                   peer_threads=args.peer_threads, client=args.client,
                   clients=args.clients, seconds=round(time.perf_counter() - t_all, 1),
                   sweep={k: {str(c): {m: round(v, 1) for m, v in r.items() if m != "n"}
                              for c, r in rows_.items()} for k, rows_ in sweep.items()})
    report("serve_peers", figures)


if __name__ == "__main__":
    main()
