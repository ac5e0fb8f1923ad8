"""Commands for the data lifecycle: ``zoo data check``, ``clean``, ``label`` and
``from-feedback`` (feedback corrections back into a training manifest)."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from zoo.cli.base import _echo_json, _table, cli


@cli.group()
def data() -> None:
    """Data lifecycle: check, clean, label, and feedback back into a manifest."""


_COLUMN = click.option("--column", "column", multiple=True, metavar="KEY=NAME",
                       help="Map zoo's key to the data's column, e.g. --column label=sentiment.")


@data.command("check")
@click.argument("manifest", type=click.Path(exists=True))
@click.option("--labels", help="Comma-separated allowed labels (others are reported).")
@click.option("--plot", type=click.Path(dir_okay=False), help="PNG of the label distribution.")
@click.option("--json", "as_json", is_flag=True)
@click.option("--task", help="The task whose targets to check [the one whose target keys the "
                             "data holds] (zoo list --kind task).")
@_COLUMN
def data_check(manifest: str, labels: str | None, plot: str | None, as_json: bool,
               column: tuple[str, ...], task: str | None) -> None:
    """Report unusable inputs (missing or corrupt files, empty texts), bad targets
    (unknown labels, malformed boxes), duplicates, and what the good rows hold (class
    balance, image sizes, audio durations). MANIFEST is any data zoo reads (JSONL,
    CSV/TSV, Parquet, an ImageFolder tree, an audiofolder, a datasets folder). Exits 1
    when it finds problems (the report is printed either way)."""
    from zoo.datatools import check_manifest
    from zoo.cli.base import _columns

    allowed = [x.strip() for x in labels.split(",")] if labels else None
    src = Path(manifest)
    default_plot = (src.with_suffix(".labels.png") if src.is_file()
                    else src.parent / f"{src.name}.labels.png")
    r = check_manifest(manifest, labels=allowed, plot=plot or str(default_plot),
                       columns=_columns(column), task=task)
    _report_check(r, as_json)
    if r["problems"]:
        sys.exit(1)


def _report_check(r: dict, as_json: bool) -> None:
    if as_json:
        _echo_json(r)
        return
    click.echo(f"{r['manifest']}: {r['lines']} lines, {r['ok']} ok, "
               f"{len(r['problems'])} with problems")
    for p in r["problems"][:20]:
        click.echo(f"  line {p['line']}: {p['problem']}")
    if len(r["problems"]) > 20:
        click.echo(f"  ... {len(r['problems']) - 20} more (--json for all)")
    if r["task"]:
        click.echo(f"targets of a {r['task']} task")
    if r["labels"]:
        click.echo(_table([[k, str(v)] for k, v in r["labels"].items()], ["LABEL", "COUNT"]))
    for key, value in r["targets"].items():
        if key != "labels":
            click.echo(f"{key}: {json.dumps(value)}")
    for modality, stats in r["inputs"].items():
        if stats:
            click.echo(f"{modality}: " + ", ".join(f"{k} {json.dumps(v)}"
                                                   for k, v in stats.items()))
    if r.get("plot"):
        click.echo(f"label distribution: {r['plot']}")


@data.command("clean")
@click.argument("manifest", type=click.Path(exists=True))
@click.option("--out", required=True, type=click.Path(dir_okay=False))
@click.option("--labels", help="Comma-separated allowed labels.")
@_COLUMN
def data_clean(manifest: str, out: str, labels: str | None, column: tuple[str, ...]) -> None:
    """Write a cleaned JSONL manifest and OUT.dropped.jsonl (what was dropped and why).
    MANIFEST is any data zoo reads."""
    from zoo.datatools import clean_manifest
    from zoo.cli.base import _columns

    allowed = [x.strip() for x in labels.split(",")] if labels else None
    _echo_json(clean_manifest(manifest, out, labels=allowed, columns=_columns(column)))


@data.command("label")
@click.argument("model")
@click.option("--data", "data_path", required=True, type=click.Path(exists=True, dir_okay=False))
@click.option("--out", required=True, type=click.Path(dir_okay=False))
@click.option("--min-confidence", type=float, default=0.0, show_default=True)
def data_label(model: str, data_path: str, out: str, min_confidence: float) -> None:
    """Pseudo-label an unlabelled manifest; low-confidence items go to a review manifest."""
    from zoo.datatools import label_manifest

    _echo_json(label_manifest(model, data_path, out, min_confidence=min_confidence))


@data.command("from-feedback")
@click.argument("db", type=click.Path(exists=True, dir_okay=False))
@click.option("--out", required=True, type=click.Path(dir_okay=False))
@click.option("--task", help="Read bare corrections of rows from before zoo 0.2 as this "
                             "task's target (zoo list --kind task).")
def data_from_feedback(db: str, out: str, task: str | None) -> None:
    """Export feedback corrections as a training manifest (one line per feedback row)."""
    from zoo.datatools import export_feedback

    _echo_json(export_feedback(db, out, task=task))
