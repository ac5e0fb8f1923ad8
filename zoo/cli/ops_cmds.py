"""Commands for publishing, serving and export: push, pull, card, serve, export (the data
commands are in ``data_cmds``)."""
from __future__ import annotations

from pathlib import Path

import click

from zoo.cli.base import _echo_json, cli, device_options
from zoo.cli.data_cmds import (data, data_check, data_clean,  # noqa: F401  (moved there)
                               data_from_feedback, data_label)
from zoo.quantization import check_quantize


@cli.command()
@click.argument("directory", type=click.Path(exists=True, file_okay=False))
@click.argument("repo_id")
@click.option("--revision", help="Branch to push to (created if missing).")
@click.option("--private", is_flag=True)
@click.option("--message", help="Commit message.")
def push(directory: str, repo_id: str, revision: str | None, private: bool,
         message: str | None) -> None:
    """Publish a saved model folder to the Hub as REPO_ID (HF_ENDPOINT and HF_TOKEN honoured)."""
    from zoo.io.hub import push_folder

    url = push_folder(directory, repo_id, revision=revision, private=private,
                      commit_message=message)
    click.echo(url)


@cli.command()
@click.argument("repo_id")
@click.option("--revision")
@click.option("--out", type=click.Path(file_okay=False), help="Copy the files here too.")
def pull(repo_id: str, revision: str | None, out: str | None) -> None:
    """Download a model repo into the Hugging Face cache (and --out); prints its folder."""
    import shutil

    from zoo.io.hub import load_dir
    from zoo.io.hub import pull as _pull

    path = _pull(repo_id.removeprefix("hf-hub:"), revision=revision)
    load_dir(path)  # check it loads: components installed, checksums match
    if out:
        shutil.copytree(path, out, dirs_exist_ok=True)
        path = Path(out)
    click.echo(str(path))


@cli.command()
@click.argument("directory", type=click.Path(exists=True, file_okay=False))
@click.option("--repo-id", help="Render the usage snippet for this Hub id.")
@click.option("--print", "show", is_flag=True, help="Print the card instead of writing it.")
def card(directory: str, repo_id: str | None, show: bool) -> None:
    """Render DIR/README.md, the model card, from its config, training and eval records."""
    from zoo.io.card import render_card, write_card

    if show:
        click.echo(render_card(directory, repo_id))
    else:
        click.echo(str(write_card(directory, repo_id)))


@cli.command()
@click.argument("model")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True)
@click.option("--feedback-db", default="feedback.db", show_default=True,
              help="SQLite file for POST /feedback.")
@click.option("--max-batch", default=32, show_default=True,
              help="Most inputs run together in one model call.")
@click.option("--max-wait-ms", default=5.0, show_default=True,
              help="How long a request that comes while a batch runs waits for others "
                   "to batch with (one that finds the server idle runs at once; on Ray, "
                   "@serve.batch's wait for every batch).")
@click.option("--limit", "limit", multiple=True, metavar="NAME=VALUE",
              help="A bound on one request: max_pixels, max_audio_seconds, min_sample_rate, "
                   "max_sample_rate, max_text_chars, max_inputs, max_json_depth (also "
                   "ZOO_SERVE_<NAME>).")
@click.option("--api-key", envvar="ZOO_API_KEY", default=None,
              help="Require 'Authorization: Bearer KEY' (or X-API-Key) on every route but "
                   "/health [env ZOO_API_KEY].")
@click.option("--backend", type=click.Choice(["uvicorn", "ray"]), default="uvicorn",
              show_default=True, help="ray: replicas on Ray Serve (pip install 'ray[serve]'; "
                                      "RAY_ADDRESS joins an existing cluster).")
@click.option("--replicas", type=int, default=2, show_default=True,
              help="Ray Serve replicas (--backend ray).")
@click.option("--workers", type=int, default=1, show_default=True,
              help="Server processes, each with its own copy of the model (one port; the "
                   "feedback database is shared).")
@click.option("--runtime", type=click.Choice(["torch", "onnx"]), default="torch",
              show_default=True,
              help="onnx: a classification model's encoders, fusion and head run in ONNX "
                   "Runtime (exported once, cached); preprocessing and decoding stay in zoo.")
@click.option("--quantize", type=click.Choice(["int8"]), default=None,
              help="Weights in int8, dynamic quantization for the CPU (faster; scores move: "
                   "check accuracy with zoo eval --quantize int8). --runtime onnx: the graph, "
                   "made once and cached; torch: every linear layer, on the CPU.")
@click.option("--inference", type=click.Choice(["auto", "thread", "process"]),
              default="auto", show_default=True, envvar="ZOO_SERVE_INFERENCE",
              help="process: requests are batched and run in a child process with its own "
                   "copy of the model (HTTP and inference do not share one interpreter lock; "
                   "a crash there costs a 503, not the server; twice the memory); thread: "
                   "in the server process. auto: process for the torch runtime on a CPU, "
                   "else thread [env ZOO_SERVE_INFERENCE].")
@click.option("--batch-threads", type=click.IntRange(1, 64), default=None,
              envvar="ZOO_SERVE_BATCH_THREADS",
              help="Batches run side by side, the cores shared among them. Default on a "
                   "CPU with 2 or more cores: 2 with --runtime onnx, and 2 in the torch "
                   "inference process when the model's parts allow concurrent forwards; "
                   "else 1 [env ZOO_SERVE_BATCH_THREADS].")
@click.option("--allow-host", "allow_host", multiple=True, metavar="NAME",
              help="A Host name the server answers to (repeatable; '*' any). Default: "
                   "loopback names, or any when --host is 0.0.0.0 / :: [env "
                   "ZOO_SERVE_ALLOWED_HOSTS].")
@click.option("--allow-origin", "allow_origin", multiple=True, metavar="ORIGIN",
              help="A web origin (https://app.example.com) whose pages may call the server "
                   "(repeatable; '*' any). Default: none [env ZOO_SERVE_ALLOWED_ORIGINS].")
@click.option("--mount", "mount", multiple=True, metavar="NAME=MODEL",
              help="Serve another model too, under /models/NAME/ (repeatable); LoRA adapters "
                   "of one base share the base in memory.")
@device_options()
def serve(model: str, host: str, port: int, feedback_db: str, max_batch: int,
          max_wait_ms: float, limit: tuple[str, ...], api_key: str | None,
          backend: str, replicas: int, workers: int, runtime: str,
          mount: tuple[str, ...] = (), allow_host: tuple[str, ...] = (),
          allow_origin: tuple[str, ...] = (), device: str = "auto",
          precision: str = "auto", quantize: str | None = None,
          batch_threads: int | None = None, inference: str = "auto") -> None:
    """Serve MODEL over HTTP: POST /predict, POST /feedback, GET /health /info /metrics,
    /docs. Graceful: Ctrl+C / SIGTERM finish the requests in flight first."""
    import json
    import os

    from zoo.serve.app import Limits, resolve_inference

    pairs = _named(limit, "--limit", "NAME=VALUE")
    limits = Limits.from_env(**pairs)  # checked before any model loads
    mounts = _named(mount, "--mount", "NAME=MODEL")
    if quantize and runtime == "torch":  # dynamic int8 linear layers: the CPU
        device = check_quantize(quantize, device) and "cpu"  # one line for --device cuda
    where = _serving_device(device, precision, runtime)  # one line if it cannot be
    if backend == "ray":
        _check_ray_options(batch_threads, mounts, runtime, inference)
        _serve_ray(model, host, port, replicas, max_batch, max_wait_ms, limits, api_key,
                   where, precision, _hosts(host, allow_host), list(allow_origin) or None,
                   str(Path(feedback_db).absolute()), quantize)
        return
    if workers < 1:
        raise click.BadParameter("must be >= 1", param_hint="--workers")
    # each worker process builds the app from these (uvicorn imports the factory anew)
    os.environ["ZOO_SERVE_APP"] = json.dumps({
        "model": model, "feedback_db": str(Path(feedback_db).absolute()),
        "max_batch": max_batch, "max_wait_ms": max_wait_ms, "limits": pairs,
        "api_key": api_key or None, "runtime": runtime, "mounts": mounts,
        "device": where, "precision": precision, "quantize": quantize,
        "batch_threads": batch_threads, "inference": inference,
        "hosts": _hosts(host, allow_host), "origins": list(allow_origin) or None})
    child = resolve_inference(inference, runtime, where, bool(mounts)) == "process"
    if (batch_threads or 1) > 1 and runtime != "onnx" and not child:
        raise click.BadParameter(f"{batch_threads} batches side by side run in a child "
                                 f"process (--inference process) or with --runtime onnx; "
                                 f"the torch runtime in the server process runs one batch at "
                                 f"a time", param_hint="--batch-threads")
    banner = (f"zoo serve: {model} on http://{host}:{port} (POST /predict, docs at /docs"
              f"{', API key required' if api_key else ''}"
              f"{f', {workers} workers' if workers > 1 else ''}"
              f"{', ONNX Runtime' if runtime == 'onnx' else ''}"
              f"{', int8' if quantize else ''}, on {where}"
              f"{', batches in a child process' if child else ''}"
              f"{''.join(f', {n} at /models/{n}' for n in mounts)}; Ctrl+C stops)")
    _run_uvicorn(model, host, port, workers, runtime, banner, quantize)


def _serving_device(device: str, precision: str, runtime: str) -> str:
    """The device the server runs on, resolved here once (each worker loads onto it)."""
    from zoo.devices import inference_precision, resolve_device

    where = resolve_device(device)
    inference_precision(precision, where)
    if runtime == "onnx":
        from zoo.serve.onnx import onnx_device

        return onnx_device(str(where))
    return str(where)


def _named(values: tuple[str, ...], option: str, shape: str) -> dict[str, str]:
    """``("a=1", "b=2")`` -> ``{"a": "1", "b": "2"}``; anything else a usage error."""
    pairs = dict(x.split("=", 1) for x in values if "=" in x)
    if len(pairs) != len(values):
        raise click.BadParameter(f"expected {shape}", param_hint=option)
    return pairs


def _check_ray_options(batch_threads: int | None, mounts: dict[str, str], runtime: str,
                       inference: str) -> None:
    """What Ray Serve does not take (one line each)."""
    if batch_threads is not None:
        raise click.BadParameter("--batch-threads serves with --backend uvicorn (Ray "
                                 "Serve batches per replica)", param_hint="--batch-threads")
    if mounts:
        raise click.BadParameter("--mount serves with --backend uvicorn",
                                 param_hint="--mount")
    if inference == "process":
        raise click.BadParameter("--inference process serves with --backend uvicorn "
                                 "(Ray Serve runs each replica in its own process)",
                                 param_hint="--inference")
    if runtime != "torch":
        raise click.BadParameter("--runtime onnx runs with --backend uvicorn",
                                 param_hint="--runtime")


def _run_uvicorn(model: str, host: str, port: int, workers: int, runtime: str,
                 banner: str, quantize: str | None = None) -> None:
    """One process serving the app built here (a model that cannot be served fails before
    the banner, in one line), or ``workers`` processes each building it from the
    environment."""
    import uvicorn

    from zoo.serve.uvicorn import server_options

    if workers == 1:
        from zoo.serve.app import app_from_env

        app = app_from_env()
        click.echo(banner, err=True)
        _more_files()
        uvicorn.run(app, host=host, port=port, log_level="warning", **server_options())
        return
    if runtime == "onnx":  # export (or check the cached graph) once, before the workers
        from zoo.io.hub import load
        from zoo.serve.onnx import OnnxRunner

        OnnxRunner(load(model), quantize=quantize)
    click.echo(banner, err=True)
    _more_files()
    uvicorn.run("zoo.serve.app:app_from_env", factory=True, host=host, port=port,
                workers=workers, log_level="warning", **server_options())


def _hosts(bind: str, given: tuple[str, ...]) -> list[str] | None:
    """The Host allow-list: as given; any for a server on every interface (its names are
    not known here: narrow it with --allow-host); else the environment's or loopback's,
    plus the bound address."""
    import os

    if given:
        return list(given)
    if bind in ("0.0.0.0", "::", ""):
        return ["*"]
    if os.environ.get("ZOO_SERVE_ALLOWED_HOSTS", "").strip():
        return None  # create_app reads it
    from zoo.serve.guard import LOOPBACK_HOSTS

    return [*LOOPBACK_HOSTS, bind]


def _more_files() -> None:
    """Raise the open-file limit to its ceiling: each connection is a descriptor, and a
    server at the common soft limit (1024) refuses new clients long before it is busy."""
    try:
        import resource

        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if hard == resource.RLIM_INFINITY or soft < hard:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard if hard != resource.RLIM_INFINITY
                                                        else max(soft, 65536), hard))
    except (ImportError, ValueError, OSError):
        pass


def _serve_ray(model: str, host: str, port: int, replicas: int, max_batch: int,
               max_wait_ms: float, limits: object, api_key: str | None, device: str,
               precision: str, hosts: list[str] | None = None,
               origins: list[str] | None = None, feedback_db: str = "feedback.db",
               quantize: str | None = None) -> None:
    import os
    import time

    from zoo.serve.ray import deployment

    app = deployment(model, replicas=replicas, max_batch=max_batch, max_wait_ms=max_wait_ms,
                     limits=limits, api_key=api_key, device=device, precision=precision,
                     hosts=hosts, origins=origins, feedback_db=feedback_db,
                     quantize=quantize)  # one line if ray is missing
    import ray
    from ray import serve

    ray.init(address=os.environ.get("RAY_ADDRESS"), include_dashboard=False)
    serve.start(http_options={"host": host, "port": port})
    serve.run(app, route_prefix="/", name="zoo")
    click.echo(f"zoo serve: {model} on http://{host}:{port} ({replicas} Ray Serve replicas"
               f"{', int8' if quantize else ''}; "
               f"POST /predict, /explain, /feedback; Ctrl+C stops)", err=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        serve.shutdown()
        ray.shutdown()


@cli.command("export")
@click.argument("model")
@click.option("--format", "fmt", type=click.Choice(["onnx", "torchscript"]), required=True)
@click.option("--out", required=True, type=click.Path(dir_okay=False))
@click.option("--data", required=True, type=click.Path(exists=True, dir_okay=False),
              help="Eval data: the change of the task's metric and the speed are measured on it.")
@click.option("--quantize", type=click.Choice(["int8"]), help="Dynamic int8 (CPU serving).")
@click.option("--json", "as_json", is_flag=True)
@device_options(precision=False)
def export_cmd(model: str, fmt: str, out: str, data: str, quantize: str | None,
               as_json: bool, device: str = "auto") -> None:
    """Export a classification model to ONNX or TorchScript (optionally int8). The
    original runs (and TorchScript is traced) on --device; ONNX Runtime on the CPU, or the
    GPU with onnxruntime-gpu."""
    from zoo.export import export_model

    r = export_model(model, fmt, out, data, quantize=quantize, device=device)
    if as_json:
        _echo_json(r)
        return
    click.echo(f"wrote {r['out']} ({fmt}{', int8' if quantize else ''})")
    click.echo(f"{r['metric']} on {r['n']} examples: {r['metric_original']:.4f} -> "
               f"{r['metric_exported']:.4f} ({r['metric_change']:+.4f}); largest output "
               f"difference {r['max_output_diff']:.2e}")
    click.echo(f"speed: {r['seconds_original'] * 1000:.1f} ms -> "
               f"{r['seconds_exported'] * 1000:.1f} ms per batch, {r['speed_ratio']:.2f}x")
