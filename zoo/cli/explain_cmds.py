"""``zoo explain``: which parts of each input made the model's answer."""
from __future__ import annotations

import click

from zoo.cli.base import _echo_json, cli, device_options


@cli.command()
@click.argument("model")
@click.argument("inputs", nargs=-1, required=True)
@click.option("--target", help="The label to explain [the predicted one].")
@click.option("--out", type=click.Path(file_okay=False),
              help="Write pictures here: coloured HTML for text, a heat-map PNG over an "
                   "image, a PNG over time for audio; and explanations.json.")
@click.option("--method", type=click.Choice(["ablation", "shapley"]), default="ablation",
              show_default=True,
              help="ablation: each unit removed alone (N + 1 predictions); shapley: "
                   "sampled Shapley values (--samples x N predictions).")
@click.option("--samples", type=click.IntRange(min=1), default=16, show_default=True,
              help="Random orderings of the units for --method shapley.")
@click.option("--max-units", type=click.IntRange(min=1), default=64, show_default=True,
              help="Units per input at most (words, image patches, time windows), shared "
                   "among its modalities.")
@click.option("--json", "as_json", is_flag=True, help="Print the explanations as JSON.")
@click.option("--quantize", type=click.Choice(["int8"]), default=None,
              help="Explain the model quantized to int8 for the CPU, as `zoo serve` or "
                   "`zoo predict --quantize int8` runs it (its scores, not the float ones).")
@device_options()
def explain(model: str, inputs: tuple[str, ...], target: str | None, out: str | None,
            method: str, samples: int, max_units: int, as_json: bool, device: str = "auto",
            precision: str = "auto", quantize: str | None = None) -> None:
    """Explain MODEL's answer for each INPUT: how much each word, image patch or time
    window (and, for several modalities, each modality) contributed to the score of the
    predicted label (or --target), measured with captum by removing them.

    Each INPUT is read as `zoo predict` reads it: a JSON object, an image or audio file,
    a .jsonl manifest, or plain text."""
    from zoo.cli.model_cmds import read_inputs
    from zoo.explanation import explain as run, show
    from zoo.io.hub import load

    examples = read_inputs(inputs)
    m = load(model, device=device, precision=precision, quantize=quantize)
    results = run(m, examples, target, out, method=method, samples=samples,
                  max_units=max_units)
    if as_json:
        _echo_json(results)
        return
    for i, (x, r) in enumerate(zip(examples, results)):
        lines = show(r, x)
        click.echo(f"[{i}] " + "\n".join(lines))
