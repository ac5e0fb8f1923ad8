"""The ``zoo`` command line: a thin layer over the Python API.

Errors that users can fix (``ZooError``) print one line, ``error: ...``, and exit 1.
Nothing here imports torch at module level: ``zoo list``/``info``/``plugins``/``--help``
stay fast. Commands live in ``registry_cmds``, ``plugin_cmds``, ``model_cmds``,
``tune_cmds``, ``eval_cmds``, ``explain_cmds``, ``ops_cmds`` and ``data_cmds``; plugins add
theirs through ``register_commands``.
"""
from __future__ import annotations

import os
import sys

import click

from zoo.errors import ZooError
from zoo.cli import (model_cmds, ops_cmds, plugin_cmds, registry_cmds,  # noqa: F401  (commands)
               eval_cmds, explain_cmds, trust_cmds, tune_cmds, data_cmds)
from zoo.cli.base import cli

__all__ = ["cli", "main"]


def _add_plugin_commands(group: click.Group) -> None:
    """Let plugins add sub-commands (register_commands); a failing plugin is reported."""
    from zoo.registry import manager as plugins_mod

    pm = plugins_mod.get_plugin_manager()
    for impl in pm.hook.register_commands.get_hookimpls():
        info = plugins_mod.info_for(impl.plugin_name)
        if info.error:
            continue
        try:
            impl.function(group)
        except Exception as exc:
            plugins_mod.report_failure(info, "register_commands", exc)


def _one_line_warning(message, category, filename, lineno, line=None):  # noqa: ANN001
    """Warnings as users read them: ``warning: <message>``, no source path or code."""
    return f"warning: {message}\n"


def main(argv: list[str] | None = None) -> None:
    import warnings

    from zoo.registry.manager import lenient

    warnings.formatwarning = _one_line_warning
    args = sys.argv[1:] if argv is None else list(argv)
    try:
        if args[:1] == ["plugins"]:  # diagnosing plugins must work whatever they do
            with lenient():
                _add_plugin_commands(cli)
        else:
            _add_plugin_commands(cli)
        cli.main(args=args, prog_name="zoo", standalone_mode=False)
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
