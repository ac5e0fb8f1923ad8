"""The ``zoo`` command line: a thin layer over the Python API.

Errors that users can fix (``ZooError``) print one line, ``error: ...``, and exit 1.
Nothing here imports torch at module level: ``zoo list``/``info``/``plugins``/``--help``
stay fast.
"""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import click

from . import __version__
from .errors import ZooError

_IMAGE_EXT = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff"}
_AUDIO_EXT = {".wav", ".flac", ".ogg", ".mp3", ".opus"}


def _echo_json(obj: Any) -> None:
    click.echo(json.dumps(obj, indent=2, ensure_ascii=False))


def _table(rows: list[list[str]], headers: list[str]) -> str:
    widths = [max(len(str(x)) for x in col) for col in zip(headers, *rows)]
    widths[-1] = min(widths[-1], 80)
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths)).rstrip()]
    for r in rows:
        cells = [str(c) for c in r]
        cells[-1] = cells[-1] if len(cells[-1]) <= 80 else cells[-1][:77] + "..."
        lines.append("  ".join(c.ljust(w) for c, w in zip(cells, widths)).rstrip())
    return "\n".join(lines)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="zoo")
def cli() -> None:
    """zoo: a multimodal model zoo. Compose text, vision and speech encoders with fusions and
    task heads; train, evaluate and publish them to the Hugging Face Hub."""


@cli.command("list")
@click.argument("pattern", required=False)
@click.option("--task", help="Only models (and heads) for this task.")
@click.option("--modality", type=click.Choice(["text", "image", "audio"]))
@click.option("--kind", type=click.Choice(["model", "encoder", "fusion", "head"]))
@click.option("--pretrained/--no-pretrained", default=None,
              help="Only entries with (or without) pretrained weights.")
@click.option("--json", "as_json", is_flag=True, help="A JSON array, for machines.")
def list_cmd(pattern: str | None, task: str | None, modality: str | None, kind: str | None,
             pretrained: bool | None, as_json: bool) -> None:
    """List models and components; PATTERN takes shell wildcards (e.g. '*clf*')."""
    from .registry import get_registry

    rows = get_registry().rows(pattern, kind=kind, task=task, modality=modality,
                               pretrained=pretrained)
    rows.sort(key=lambda r: (("model", "encoder", "fusion", "head").index(r["kind"]), r["name"]))
    if as_json:
        _echo_json([{k: r.get(k) for k in ("name", "kind", "task", "modalities", "description",
                                            "source", "pretrained")} for r in rows])
        return
    if not rows:
        click.echo("no matches (see `zoo list` for everything)", err=True)
        return
    click.echo(_table([[r["name"], r["kind"], r["task"] or "-", ",".join(r["modalities"]) or "-",
                        "yes" if r["pretrained"] else "-", r["source"], r["description"]]
                       for r in rows],
                      ["NAME", "KIND", "TASK", "MODALITIES", "PRETRAINED", "SOURCE",
                       "DESCRIPTION"]))


@cli.command()
@click.argument("name")
@click.option("--json", "as_json", is_flag=True)
def info(name: str, as_json: bool) -> None:
    """Show what NAME is, which plugin provides it and how it is composed."""
    from . import model_info

    row = model_info(name)
    if as_json:
        _echo_json(row)
        return
    for k, v in row.items():
        if v in (None, [], {}, ""):
            continue
        click.echo(f"{k + ':':<13} {json.dumps(v) if isinstance(v, (dict, list)) else v}")


@cli.command()
@click.option("--json", "as_json", is_flag=True)
def plugins(as_json: bool) -> None:
    """List loaded plugins, what they registered and any load errors."""
    from .plugins import plugin_infos

    infos = plugin_infos()
    rows = [{"name": i.name, "distribution": i.distribution, "version": i.version,
             "builtin": i.builtin, "registered": i.registered, "error": i.error} for i in infos]
    if as_json:
        _echo_json(rows)
        return
    out = []
    for r in rows:
        what = "; ".join(f"{k}: {', '.join(v)}" for k, v in r["registered"].items())
        out.append([r["name"], r["distribution"], r["version"],
                    f"ERROR {r['error']}" if r["error"] else what])
    click.echo(_table(out, ["PLUGIN", "DISTRIBUTION", "VERSION", "REGISTERED"]))


@cli.command()
@click.argument("packages", nargs=-1, required=True)
@click.option("-U", "--upgrade", is_flag=True, help="Upgrade if already installed.")
@click.option("-e", "--editable", is_flag=True, help="Install a local folder in editable mode.")
def install(packages: tuple[str, ...], upgrade: bool, editable: bool) -> None:
    """Install plugins into zoo's own environment with pip (like `llm install`)."""
    import subprocess

    cmd = [sys.executable, "-m", "pip", "install"]
    if upgrade:
        cmd.append("--upgrade")
    for p in packages:
        cmd += ["-e", p] if editable else [p]
    rc = subprocess.call(cmd)
    if rc:
        raise ZooError(f"pip install failed (exit {rc}); see pip's message above")
    click.echo("installed; run `zoo plugins` to see what it registered")


@cli.command()
@click.argument("name")
@click.option("--out", "out", required=True, type=click.Path(file_okay=False),
              help="Folder to save the model to.")
@click.option("--pretrained/--no-pretrained", default=True, show_default=True,
              help="Initialise encoders from their pretrained weights.")
@click.option("--labels", help="Comma-separated labels for a classification head.")
def create(name: str, out: str, pretrained: bool, labels: str | None) -> None:
    """Build model NAME from the registry and save it to --out."""
    from . import create_model

    kw = {"labels": [x.strip() for x in labels.split(",") if x.strip()]} if labels else {}
    model = create_model(name, pretrained=pretrained, **kw)
    model.save_pretrained(out)
    click.echo(f"saved {model!r} to {out}")


def parse_input(arg: str) -> dict[str, Any]:
    """One CLI input: a JSON object, an image / audio file (by extension), or text."""
    if arg.lstrip().startswith("{"):
        try:
            obj = json.loads(arg)
        except ValueError as e:
            raise ZooError(f"input {arg[:40]!r} is not valid JSON: {e}") from None
        if not isinstance(obj, dict):
            raise ZooError("a JSON input must be an object such as {\"text\": \"...\"}")
        return obj
    ext = Path(arg).suffix.lower()
    if ext in _IMAGE_EXT | _AUDIO_EXT:
        if not Path(arg).is_file():
            raise ZooError(f"no such file: {arg}")
        return {"image" if ext in _IMAGE_EXT else "audio": arg}
    return {"text": arg}


def read_inputs(args: tuple[str, ...]) -> list[dict[str, Any]]:
    from .data.manifest import read_manifest

    inputs: list[dict[str, Any]] = []
    for a in args:
        if a.endswith(".jsonl"):
            inputs += [ex.inputs for ex in read_manifest(a)]
        else:
            inputs.append(parse_input(a))
    return inputs


@cli.command()
@click.argument("model")
@click.argument("inputs", nargs=-1, required=True)
@click.option("--batch-size", default=32, show_default=True)
def predict(model: str, inputs: tuple[str, ...], batch_size: int) -> None:
    """Predict with MODEL (a folder, hf-hub:org/name or a registry name).

    Each INPUT is a JSON object ('{"text": "...", "image": "cat.png"}'), an image or audio
    file, a .jsonl manifest, or plain text. Prints a JSON list, one output per input.
    """
    from . import load

    examples = read_inputs(inputs)
    m = load(model)
    _echo_json(m.predict(examples, batch_size=batch_size))


def _freeze_arg(freeze: str) -> Any:
    """--freeze: auto, none, all, or comma-separated modalities / encoder names."""
    if freeze in ("auto", "none", "all"):
        return freeze
    return [x.strip() for x in freeze.split(",") if x.strip()]


@cli.command("train")
@click.argument("model")
@click.option("--train", "train_data", required=True, type=click.Path(exists=True, dir_okay=False),
              help="Training data: a JSONL manifest, or COCO JSON for detection.")
@click.option("--eval", "eval_data", type=click.Path(exists=True, dir_okay=False),
              help="Eval data (same format); picks the best epoch.")
@click.option("--out", required=True, type=click.Path(file_okay=False),
              help="Output folder: the best model, metrics.jsonl, plots, resume state.")
@click.option("--epochs", type=int, default=10, show_default=True)
@click.option("--lr", type=float, default=1e-3, show_default=True,
              help="Learning rate of new layers (fusion, head) and from-scratch encoders.")
@click.option("--encoder-lr", type=float, help="For fine-tuned pretrained encoders [lr/10].")
@click.option("--batch-size", type=int, default=32, show_default=True)
@click.option("--freeze", default="auto", show_default=True,
              help="auto (pretrained encoders), none, all, or comma-separated modalities/names.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--resume", is_flag=True, help="Continue from OUT/train_state.")
@click.option("--on-bad-data", type=click.Choice(["fail", "skip"]), default="fail",
              show_default=True)
@click.option("--checkpoint-every", type=int, default=0,
              help="Also save the resume state every N steps.")
@click.option("--warmup", type=float, default=0.05, show_default=True)
@click.option("--no-cache", is_flag=True, help="Recompute frozen encoders every epoch.")
@click.option("--group-by-length", type=click.Choice(["auto", "on", "off"]), default="auto",
              show_default=True,
              help="Batch examples of similar length (less padding); auto: on for audio.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def train_cmd(model: str, train_data: str, eval_data: str | None, out: str, epochs: int,
              lr: float, encoder_lr: float | None, batch_size: int, freeze: str, seed: int,
              resume: bool, on_bad_data: str, checkpoint_every: int, warmup: float,
              no_cache: bool, group_by_length: str, quiet: bool) -> None:
    """Fine-tune MODEL (registry name or folder) and save the best epoch to --out.

    Under `torchrun --nproc_per_node=N -m zoo train ...` it runs DDP (gloo on CPU)."""
    from .training import train

    summary = train(model, train_data, eval_data, out, resume=resume, epochs=epochs, lr=lr,
                    encoder_lr=encoder_lr, batch_size=batch_size, freeze=_freeze_arg(freeze),
                    seed=seed,
                    on_bad_data=on_bad_data, checkpoint_every=checkpoint_every,
                    warmup=warmup, cache_features=not no_cache, progress=not quiet,
                    group_by_length={"on": True, "off": False}.get(group_by_length, "auto"))
    if int(os.environ.get("RANK", "0")) == 0:
        _echo_json({"best": summary["best"], "best_epoch": summary["best_epoch"],
                    "out": summary["out"]})


@cli.command("pretrain")
@click.option("--encoders", "encoders", required=True,
              help="Two encoders by modality, e.g. image=efficientnet-lite0,text=minilm-l6")
@click.option("--data", required=True, type=click.Path(exists=True, dir_okay=False),
              help="Pairs: JSONL lines such as {\"image\": path, \"text\": \"...\"}")
@click.option("--eval", "eval_data", type=click.Path(exists=True, dir_okay=False))
@click.option("--out", required=True, type=click.Path(file_okay=False))
@click.option("--epochs", type=int, default=10, show_default=True)
@click.option("--lr", type=float, default=1e-3, show_default=True)
@click.option("--batch-size", type=int, default=128, show_default=True,
              help="Large batches give more negatives per step.")
@click.option("--freeze", default="auto", show_default=True)
@click.option("--dim", type=int, default=256, show_default=True, help="Shared space width.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--resume", is_flag=True)
@click.option("--quiet", is_flag=True)
def pretrain_cmd(encoders: str, data: str, eval_data: str | None, out: str, epochs: int,
                 lr: float, batch_size: int, freeze: str, dim: int, seed: int, resume: bool,
                 quiet: bool) -> None:
    """Align two encoders on paired data (CLIP-style InfoNCE): a retrieval model with
    embed, recall@k and zero-shot classification."""
    from .compose import compose
    from .training import train

    pairs = dict(x.split("=", 1) for x in encoders.split(",") if "=" in x)
    if len(pairs) != 2:
        raise ZooError("--encoders takes two modality=encoder pairs, e.g. "
                       "image=efficientnet-lite0,text=minilm-l6")
    model = compose("retrieval", pairs, {"name": "contrastive", "dim": dim},
                    name="aligned-" + "-".join(pairs[m] for m in sorted(pairs)), pretrained=True,
                    description=f"{' and '.join(sorted(pairs))} aligned by contrastive pretraining")
    summary = train(model, data, eval_data, out, resume=resume, epochs=epochs, lr=lr,
                    batch_size=batch_size, freeze=_freeze_arg(freeze), seed=seed,
                    progress=not quiet)
    if int(os.environ.get("RANK", "0")) == 0:
        _echo_json({"best": summary["best"], "best_epoch": summary["best_epoch"],
                    "out": summary["out"]})


@cli.command("eval")
@click.argument("model")
@click.option("--data", required=True, type=click.Path(exists=True, dir_okay=False),
              help="A labelled JSONL manifest, or COCO JSON for detection.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object, metrics at top level.")
@click.option("--batch-size", default=32, show_default=True)
@click.option("--decoder", type=click.Choice(["greedy", "beam"]), help="ASR decoding.")
@click.option("--beam-size", type=int, help="ASR beam width.")
@click.option("--lexicon", type=click.Path(exists=True), help="ASR lexicon for beam search.")
@click.option("--lm", type=click.Path(exists=True), help="KenLM model for beam search.")
@click.option("--on-bad-data", type=click.Choice(["fail", "skip"]), default="fail")
def eval_cmd(model: str, data: str, as_json: bool, batch_size: int, decoder: str | None,
             beam_size: int | None, lexicon: str | None, lm: str | None,
             on_bad_data: str) -> None:
    """Evaluate MODEL on --data; writes eval_results.json beside a saved model."""
    from . import evaluate

    kw = {k: v for k, v in dict(decoder=decoder, beam_size=beam_size, lexicon=lexicon,
                                lm=lm).items() if v is not None}
    result = evaluate(model, data, batch_size=batch_size, on_bad_data=on_bad_data, **kw)
    if as_json:
        click.echo(json.dumps(result))
        return
    for k, v in result.items():
        click.echo(f"{k:10} {v:.4f}" if isinstance(v, float) else f"{k:10} {v}")


@cli.command()
@click.argument("directory", type=click.Path(exists=True, file_okay=False))
@click.argument("repo_id")
@click.option("--revision", help="Branch to push to (created if missing).")
@click.option("--private", is_flag=True)
@click.option("--message", help="Commit message.")
def push(directory: str, repo_id: str, revision: str | None, private: bool,
         message: str | None) -> None:
    """Publish a saved model folder to the Hub as REPO_ID (HF_ENDPOINT and HF_TOKEN honoured)."""
    from .hub import push_folder

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

    from .hub import load_dir
    from .hub import pull as _pull

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
    from .cards import render_card, write_card

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
              help="How long a request waits for others to batch with.")
def serve(model: str, host: str, port: int, feedback_db: str, max_batch: int,
          max_wait_ms: float) -> None:
    """Serve MODEL over HTTP: POST /predict, POST /feedback, GET /health /info /metrics."""
    import uvicorn

    from . import load
    from .serve import create_app

    app = create_app(load(model), feedback_db=feedback_db, max_batch=max_batch,
                     max_wait_ms=max_wait_ms)
    uvicorn.run(app, host=host, port=port, log_level="warning")


@cli.group()
def data() -> None:
    """Data lifecycle: check, clean, label, and feedback back into a manifest."""


@data.command("check")
@click.argument("manifest", type=click.Path(exists=True, dir_okay=False))
@click.option("--labels", help="Comma-separated allowed labels (others are reported).")
@click.option("--plot", type=click.Path(dir_okay=False), help="PNG of the label distribution.")
@click.option("--json", "as_json", is_flag=True)
def data_check(manifest: str, labels: str | None, plot: str | None, as_json: bool) -> None:
    """Report missing or corrupt files, empty texts, unknown labels, duplicates, class
    balance, image sizes, audio durations and sample rates."""
    from .data.tools import check_manifest

    allowed = [x.strip() for x in labels.split(",")] if labels else None
    r = check_manifest(manifest, labels=allowed,
                       plot=plot or str(Path(manifest).with_suffix(".labels.png")))
    if as_json:
        _echo_json(r)
        return
    click.echo(f"{r['manifest']}: {r['lines']} lines, {r['ok']} ok, "
               f"{len(r['problems'])} with problems")
    for p in r["problems"][:20]:
        click.echo(f"  line {p['line']}: {p['problem']}")
    if len(r["problems"]) > 20:
        click.echo(f"  ... {len(r['problems']) - 20} more (--json for all)")
    if r["labels"]:
        click.echo(_table([[k, str(v)] for k, v in r["labels"].items()], ["LABEL", "COUNT"]))
    if r["image_sizes"]:
        click.echo("image sizes: " + ", ".join(f"{k} ({v})" for k, v in r["image_sizes"].items()))
    if r["audio"]:
        a = r["audio"]
        click.echo(f"audio: {a['n']} files, {a['min_s']}-{a['max_s']} s (median "
                   f"{a['median_s']} s), rates {a['sample_rates']}")
    if r.get("plot"):
        click.echo(f"label distribution: {r['plot']}")


@data.command("clean")
@click.argument("manifest", type=click.Path(exists=True, dir_okay=False))
@click.option("--out", required=True, type=click.Path(dir_okay=False))
@click.option("--labels", help="Comma-separated allowed labels.")
def data_clean(manifest: str, out: str, labels: str | None) -> None:
    """Write a cleaned manifest and OUT.dropped.jsonl (what was dropped and why)."""
    from .data.tools import clean_manifest

    allowed = [x.strip() for x in labels.split(",")] if labels else None
    _echo_json(clean_manifest(manifest, out, labels=allowed))


@data.command("label")
@click.argument("model")
@click.option("--data", "data_path", required=True, type=click.Path(exists=True, dir_okay=False))
@click.option("--out", required=True, type=click.Path(dir_okay=False))
@click.option("--min-confidence", type=float, default=0.0, show_default=True)
def data_label(model: str, data_path: str, out: str, min_confidence: float) -> None:
    """Pseudo-label an unlabelled manifest; low-confidence items go to a review manifest."""
    from .data.tools import label_manifest

    _echo_json(label_manifest(model, data_path, out, min_confidence=min_confidence))


@data.command("from-feedback")
@click.argument("db", type=click.Path(exists=True, dir_okay=False))
@click.option("--out", required=True, type=click.Path(dir_okay=False))
def data_from_feedback(db: str, out: str) -> None:
    """Export feedback corrections as a training manifest (one line per feedback row)."""
    from .data.tools import export_feedback

    _echo_json(export_feedback(db, out))


@cli.command("export")
@click.argument("model")
@click.option("--format", "fmt", type=click.Choice(["onnx", "torchscript"]), required=True)
@click.option("--out", required=True, type=click.Path(dir_okay=False))
@click.option("--data", required=True, type=click.Path(exists=True, dir_okay=False),
              help="Eval manifest: the accuracy change and speed are measured on it.")
@click.option("--quantize", type=click.Choice(["int8"]), help="Dynamic int8 (CPU serving).")
@click.option("--json", "as_json", is_flag=True)
def export_cmd(model: str, fmt: str, out: str, data: str, quantize: str | None,
               as_json: bool) -> None:
    """Export a classification model to ONNX or TorchScript (optionally int8)."""
    from .export import export_model

    r = export_model(model, fmt, out, data, quantize=quantize)
    if as_json:
        _echo_json(r)
        return
    click.echo(f"wrote {r['out']} ({fmt}{', int8' if quantize else ''})")
    click.echo(f"accuracy on {r['n']} examples: {r['accuracy_original']:.4f} -> "
               f"{r['accuracy_exported']:.4f} ({r['accuracy_change']:+.4f}); max logit "
               f"difference {r['max_logit_diff']:.2e}")
    click.echo(f"speed: {r['seconds_original'] * 1000:.1f} ms -> "
               f"{r['seconds_exported'] * 1000:.1f} ms per batch, {r['speed_ratio']:.2f}x")


def _add_plugin_commands(group: click.Group) -> None:
    """Let plugins add sub-commands (register_commands); a failing plugin is reported."""
    from . import plugins as plugins_mod

    pm = plugins_mod.get_plugin_manager()
    for impl in pm.hook.register_commands.get_hookimpls():
        info = plugins_mod.info_for(impl.plugin_name)
        if info.error:
            continue
        try:
            impl.function(group)
        except Exception as exc:
            plugins_mod.report_failure(info, "register_commands", exc)


def main(argv: list[str] | None = None) -> None:
    try:
        _add_plugin_commands(cli)
        cli.main(args=argv, prog_name="zoo", standalone_mode=False)
    except ZooError as e:
        click.echo(f"error: {e}", err=True)
        sys.exit(1)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.ClickException as e:
        e.show()
        sys.exit(e.exit_code)
    except KeyboardInterrupt:
        sys.exit(130)
    except BrokenPipeError:
        os._exit(0)


if __name__ == "__main__":
    main()
