"""``zoo calibrate``: fit a model's confidence to held-out labels (temperature scaling)."""
from __future__ import annotations

import json

import click

from zoo.cli.base import _columns, cli, device_options


@cli.command("calibrate")
@click.argument("model")
@click.option("--data", required=True, type=click.Path(exists=True),
              help="Held-out labelled data (not the training data), any format zoo train "
                   "reads; a few hundred examples is plenty.")
@click.option("--out", type=click.Path(file_okay=False),
              help="Save the calibrated model here [the folder MODEL was loaded from].")
@click.option("--column", "column", multiple=True, metavar="KEY=NAME",
              help="Map zoo's keys to the data's columns (as for zoo train).")
@click.option("--batch-size", default=32, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="The record as one JSON object.")
@device_options(precision=False)
def calibrate_cmd(model: str, data: str, out: str | None, column: tuple[str, ...],
                  batch_size: int, as_json: bool, device: str = "auto") -> None:
    """Fit MODEL's confidence on --data (classifiers: temperature scaling) and save it with
    the model, so predict, serve and export apply it. The labels it predicts never change;
    calibration.json and calibration.png record the ECE before and after."""
    from zoo.calibration import calibrate
    from zoo.io.hub import load

    # fitted in fp32 wherever it runs: the temperature is a property of the exact logits
    record = calibrate(load(model, device=device, precision="fp32"), data, out=out,
                       batch_size=batch_size, columns=_columns(column))
    if as_json:
        click.echo(json.dumps(record))
        return
    b, a = record["before"], record["after"]
    click.echo(f"{record['method']}: temperature {record['temperature']:.4f} on "
               f"{record['dataset']} ({record['n']} examples)")
    for k in ("ece", "accuracy"):
        if k in b:
            click.echo(f"{k:10} {b[k]:.4f} -> {a[k]:.4f}")
