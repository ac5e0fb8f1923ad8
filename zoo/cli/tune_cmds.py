"""``zoo tune``: hyper-parameter search over ``zoo train`` options with Optuna."""
from __future__ import annotations

import click

from zoo.cli.base import _echo_json, cli
from zoo.cli.base import _columns


@cli.command("tune")
@click.argument("model")
@click.option("--train", "train_data", required=True, type=click.Path(exists=True),
              help="Training data (any format zoo train reads).")
@click.option("--eval", "eval_data", required=True, type=click.Path(exists=True),
              help="Eval data: trials are compared (and pruned) on its task metric.")
@click.option("--out", required=True, type=click.Path(file_okay=False),
              help="Output folder: study.db, trials/, best/ (the best model), tune.json.")
@click.option("--trials", type=int, default=20, show_default=True,
              help="Finished (completed or pruned) trials wanted in the study in total: a "
                   "rerun continues and runs only the rest.")
@click.option("--param", "params", multiple=True, metavar="NAME=SPEC",
              help="A searched option: lr=1e-4:1e-2:log, epochs=3:12:int, "
                   "freeze=auto,none,all. Repeatable. Default: lr, epochs, weight_decay "
                   "(+ encoder_lr, freeze for pretrained encoders).")
@click.option("--space", "space_file", type=click.Path(dir_okay=False),
              help="A TOML file of parameters (lr = \"1e-4:1e-2:log\", freeze = [\"auto\", "
                   "\"none\"]); --param adds to it.")
@click.option("--set", "sets", multiple=True, metavar="NAME=VALUE",
              help="A train option held constant in every trial, e.g. --set "
                   "finetune_epochs=0. Repeatable.")
@click.option("--seed", type=int, default=0, show_default=True,
              help="Seeds the TPE sampler (give each parallel worker its own).")
@click.option("--storage", help="Optuna storage URL [sqlite:///OUT/study.db]; workers on "
                                "the same storage search together.")
@click.option("--study-name", help="Study name [the model's name].")
@click.option("--pruner", type=click.Choice(["median", "none"]), default="median",
              show_default=True, help="Stop weak trials early on the per-epoch eval metric.")
@click.option("--column", "column", multiple=True, metavar="KEY=NAME",
              help="Map zoo's keys to the data's columns (as for zoo train).")
@click.option("--quiet", is_flag=True, help="No line per trial.")
def tune_cmd(model: str, train_data: str, eval_data: str, out: str, trials: int,
             params: tuple[str, ...], space_file: str | None, sets: tuple[str, ...],
             seed: int, storage: str | None, study_name: str | None, pruner: str,
             column: tuple[str, ...], quiet: bool) -> None:
    """Search training options for MODEL with Optuna (TPE, median pruning); the best
    model goes to OUT/best, the search to OUT/tune.json and the best model's card.

    Rerun the same command to continue after an interruption (kill -9 included); start
    the same command in several processes (each with its own --seed) to search in
    parallel."""
    from zoo.tuning import tune
    from zoo.tuning.space import parse_param, parse_sets, read_space

    space = read_space(space_file) if space_file else {}
    for text in params:
        p = parse_param(text)
        space[p.name] = p
    fixed = parse_sets(sets)
    summary = tune(model, train_data, eval_data, out, trials=trials,
                   space=space if (space_file or params) else None, seed=seed,
                   storage=storage, study_name=study_name, pruner=pruner,
                   progress=not quiet, columns=_columns(column), **fixed)
    _echo_json({k: summary[k] for k in ("study", "storage", "metric", "best", "counts",
                                        "out", "best_from", "record", "seconds")})
