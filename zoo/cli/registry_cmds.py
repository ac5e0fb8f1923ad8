"""Commands about the registry and plugins: list, info, plugins, install."""
from __future__ import annotations

import json
import sys

import click

from zoo.errors import ZooError
from zoo.cli.base import _echo_json, _table, cli


@cli.command("list")
@click.argument("pattern", required=False)
@click.option("--task", help="Only models (and heads) for this task.")
@click.option("--modality", help="Only entries of this modality (zoo list --kind modality).")
@click.option("--kind", type=click.Choice(["model", "encoder", "fusion", "head", "task",
                                           "modality", "weights", "logger", "objective"]),
              help="Only this kind (tasks, modalities, weights, loggers and pretraining "
                   "objectives are listed only when asked for).")
@click.option("--pretrained/--no-pretrained", default=None,
              help="Only entries with (or without) pretrained weights.")
@click.option("--ready/--not-ready", default=None,
              help="Only models ready to use: every trained part, head included, has weights.")
@click.option("--json", "as_json", is_flag=True, help="A JSON array, for machines.")
def list_cmd(pattern: str | None, task: str | None, modality: str | None, kind: str | None,
             pretrained: bool | None, ready: bool | None, as_json: bool) -> None:
    """List models and components; PATTERN takes shell wildcards (e.g. '*clf*')."""
    from zoo.registry import get_registry

    reg = get_registry()
    if modality is not None and not reg.has("modality", modality):
        known = ", ".join(s.name for s in reg.all("modality"))
        raise ZooError(f"--modality {modality!r}: no such modality (registered: {known})")
    rows = reg.rows(pattern, kind=kind, task=task, modality=modality, pretrained=pretrained,
                    ready=ready)
    from zoo.registry import KINDS

    rows.sort(key=lambda r: (KINDS.index(r["kind"]), r["name"]))
    if as_json:
        keys = ("name", "kind", "task", "modalities", "description", "source", "pretrained",
                "ready", "license", "params", "metrics", "measured_by", "sources", "sha256",
                "targets")
        _echo_json([{k: r.get(k) for k in keys if k in r or k in keys[:7]} for r in rows])
        return
    if not rows:
        click.echo("no matches (see `zoo list` for everything)", err=True)
        return
    click.echo(_table([[r["name"], r["kind"], r["task"] or "-", ",".join(r["modalities"]) or "-",
                        "ready" if r.get("ready") else "yes" if r["pretrained"] else "-",
                        r["source"], r["description"]]
                       for r in rows],
                      ["NAME", "KIND", "TASK", "MODALITIES", "WEIGHTS", "SOURCE",
                       "DESCRIPTION"]))


@cli.command()
@click.argument("name")
@click.option("--json", "as_json", is_flag=True)
def info(name: str, as_json: bool) -> None:
    """Show what NAME is, which plugin provides it and how it is composed."""
    from zoo.registry.listing import model_info

    row = model_info(name)
    if as_json:
        _echo_json(row)
        return
    for k, v in row.items():
        if v in (None, [], {}, ""):
            continue
        click.echo(f"{k + ':':<13} {json.dumps(v) if isinstance(v, (dict, list)) else v}")


@cli.group(invoke_without_command=True)
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def plugins(ctx: click.Context, as_json: bool) -> None:
    """List loaded plugins, what they registered and any load errors (never fails because
    a plugin does, even with ZOO_STRICT_PLUGINS=1: it is how you diagnose one).
    `zoo plugins check NAME` runs the conformance checks on one plugin."""
    if ctx.invoked_subcommand is not None:
        return
    from zoo.registry import plugin_infos
    from zoo.registry.manager import lenient

    with lenient():
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
