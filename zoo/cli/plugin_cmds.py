"""Commands for plugin authors: `zoo plugins check NAME`, `zoo plugin new NAME`."""
from __future__ import annotations

import sys

import click

from zoo.cli.base import _echo_json, _table, cli
from zoo.cli.registry_cmds import plugins


@plugins.command("check")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="The results as JSON.")
def plugins_check(name: str, as_json: bool) -> None:
    """Run the conformance checks on an installed plugin (entry-point or distribution
    NAME): it loads under the contract it declares, its hooks exist, registration imports
    no torch; modalities read and serve their samples; every component builds,
    preprocesses sample inputs, runs forward with its declared outputs, round-trips its
    config, saves and loads bit-identically, goes through the feature cache and a training
    step; tasks score a sample; loggers and objectives run. Exits 1 on any failure."""
    from zoo.plugincheck import check_plugin

    results = check_plugin(name)
    if as_json:
        _echo_json([r.__dict__ for r in results])
    else:
        click.echo(_table([[r.subject, r.check, r.status.upper(), r.detail] for r in results],
                          ["COMPONENT", "CHECK", "RESULT", "DETAIL"]))
    failed = [r for r in results if r.status == "fail"]
    passed = sum(r.status == "pass" for r in results)
    skipped = sum(r.status == "skip" for r in results)
    warned = sum(r.status == "warn" for r in results)
    click.echo(f"{passed} passed, {len(failed)} failed, {skipped} skipped"
               + (f", {warned} deprecated" if warned else ""), err=True)
    if failed:
        sys.exit(1)


@cli.group()
def plugin() -> None:
    """Tools for writing plugins (`zoo plugin new NAME`)."""


@plugin.command("new")
@click.argument("name")
@click.option("--kind", type=click.Choice(["encoder", "fusion"]), default="encoder",
              show_default=True, help="What the skeleton registers.")
@click.option("--modality", help="For an encoder: its modality (zoo list --kind modality) "
                                 "[the first registered, text].")
@click.option("--out", type=click.Path(file_okay=False), default=".", show_default=True,
              help="The folder to create the package in.")
def plugin_new(name: str, kind: str, modality: str | None, out: str) -> None:
    """Scaffold a plugin package NAME (pyproject with the entry point, a component
    skeleton, a test) that installs and passes `zoo plugins check` as generated."""
    from zoo.scaffold import new_plugin

    path = new_plugin(name, kind=kind, modality=modality, out=out)
    click.echo(f"created {path}\nnext: pip install -e {path} && zoo plugins check {name} "
               f"&& pytest {path}")
