"""The ``zoo`` group and the helpers every command module shares."""
from __future__ import annotations

import json
from typing import Any

import click

from zoo.errors import ZooError
from zoo.version import __version__


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


def device_options(precision: bool = True) -> Any:
    """``--device`` (and ``--precision``) for a command that runs a model (zoo.devices)."""
    from zoo.devices import PRECISIONS

    def add(f: Any) -> Any:
        if precision:
            f = click.option("--precision", type=click.Choice(PRECISIONS), default="auto",
                             show_default=True,
                             help="Inference precision: auto is bf16 autocast on a CUDA GPU "
                                  "(fp16 where bf16 is missing), fp32 elsewhere.")(f)
        return click.option("--device", default="auto", show_default=True,
                            metavar="auto|cpu|cuda[:N]|mps",
                            help="Where the model runs: auto is a CUDA GPU when present, "
                                 "else mps, else the CPU.")(f)
    return add


def _columns(pairs: tuple[str, ...]) -> dict[str, str] | None:
    """``("text=review", "label=sentiment")`` -> ``{"text": "review", ...}``."""
    out = {}
    for pair in pairs:
        key, sep, name = pair.partition("=")
        if not sep or not key or not name:
            raise ZooError(f"--column {pair!r}: expected KEY=NAME, e.g. --column text=review")
        out[key] = name
    return out or None


def _pairs(pairs: tuple[str, ...], flag: str) -> dict[str, str]:
    """``("text=enc/",)`` -> ``{"text": "enc/"}``; a malformed pair is one line."""
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key or not value:
            raise ZooError(f"{flag} {pair!r}: expected MODALITY=VALUE, e.g. {flag} text=enc/")
        out[key.strip()] = value.strip()
    return out


def _json_options(pairs: tuple[str, ...]) -> dict[str, Any]:
    """``--option KEY=VALUE``: the value as JSON when it parses (0.3, true, [1]), else text."""
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.isidentifier():
            raise ZooError(f"--option {pair!r}: expected KEY=VALUE, e.g. --option span=3")
        try:
            out[key] = json.loads(value)
        except ValueError:
            out[key] = value
    return out
