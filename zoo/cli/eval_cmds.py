"""``zoo eval``: a model's metrics on labelled data; with --robustness under corruptions,
with --slice per group. Read-only unless --record."""
from __future__ import annotations

import json

import click

from zoo.cli.base import _columns, _json_options, cli, device_options
from zoo.errors import ZooError


@cli.command("eval")
@click.argument("model")
@click.option("--data", required=True, type=click.Path(exists=True),
              help="Labelled data in any format `zoo train` reads.")
@click.option("--column", "column", multiple=True, metavar="KEY=NAME",
              help="Map zoo's keys to the data's columns (as for zoo train).")
@click.option("--json", "as_json", is_flag=True, help="One JSON object, metrics at top level.")
@click.option("--batch-size", default=32, show_default=True)
@click.option("--decoder", type=click.Choice(["greedy", "beam"]), help="ASR decoding.")
@click.option("--beam-size", type=int, help="ASR beam width.")
@click.option("--lexicon", type=click.Path(exists=True), help="ASR lexicon for beam search.")
@click.option("--lm", type=click.Path(exists=True), help="KenLM model for beam search.")
@click.option("--option", "options", multiple=True, metavar="KEY=VALUE",
              help="A decode option of the model's head (JSON or text), as for zoo predict.")
@click.option("--on-bad-data", type=click.Choice(["fail", "skip"]), default="fail")
@click.option("--record", is_flag=True,
              help="Write the figures into the model's folder (eval_results.json, the card's "
                   "model-index). Without it, nothing is changed.")
@click.option("--robustness", is_flag=True, help="Also under each corruption of each input "
              "modality at severities 1-3 (noise, blur, JPEG, typos, babble, ...), with drops.")
@click.option("--corruption", "corruptions", multiple=True, metavar="NAME",
              help="Only this corruption (repeatable; implies --robustness).")
@click.option("--slice", "slices", multiple=True, metavar="COLUMN",
              help="Also every metric per value of this data column, with counts and the gap.")
@click.option("--seed", default=0, show_default=True, help="Seed of the corruptions.")
@click.option("--out", type=click.Path(file_okay=False),
              help="Write robustness.json, robustness.png and slices.json here.")
@click.option("--quantize", type=click.Choice(["int8"]), default=None,
              help="Evaluate the model quantized to int8 for the CPU (as zoo predict "
                   "--quantize), to measure what int8 costs; not with --record.")
@device_options()
def eval_cmd(model: str, data: str, as_json: bool, batch_size: int, decoder: str | None,
             beam_size: int | None, lexicon: str | None, lm: str | None,
             on_bad_data: str, column: tuple[str, ...], record: bool,
             options: tuple[str, ...], robustness: bool = False,
             corruptions: tuple[str, ...] = (), slices: tuple[str, ...] = (), seed: int = 0,
             out: str | None = None, device: str = "auto", precision: str = "auto",
             quantize: str | None = None) -> None:
    """Evaluate MODEL on --data. Read-only: --record writes the figures beside a saved
    model."""
    from zoo.evaluation import evaluate

    if out and not (robustness or corruptions or slices):
        raise ZooError("--out holds the robustness and slice reports: add --robustness or "
                       "--slice COLUMN")

    kw = {k: v for k, v in dict(decoder=decoder, beam_size=beam_size, lexicon=lexicon,
                                lm=lm).items() if v is not None}
    kw.update(_json_options(options))
    result = evaluate(model, data, batch_size=batch_size, on_bad_data=on_bad_data, record=record,
                      columns=_columns(column), robustness=list(corruptions) or robustness,
                      slices=slices, seed=seed, out=out, device=device, precision=precision,
                      quantize=quantize, **kw)
    if as_json:
        click.echo(json.dumps(result))
        return
    from zoo.slices import report_lines

    for k, v in result.items():
        if k not in ("robustness", "slices"):
            click.echo(f"{k:10} {v:.4f}" if isinstance(v, float) else f"{k:10} {v}")
    for line in report_lines(result):
        click.echo(line)
