"""`python -m interp ...`: run an analysis on a model and write its results and figures.

Each subcommand is a small function registered with `interp.cli.common.command` in the module of
its research step (number, math, training, seal, faithfulness, generate); `--help` lists them.
"""

from __future__ import annotations

import argparse
import sys

from interp.cli.common import COMMANDS


def build_parser() -> argparse.ArgumentParser:
    _import_analysis_commands()
    parser = argparse.ArgumentParser(
        prog="python -m interp",
        description="Interpretability analyses of representation edits. Subcommands:",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (help_text, add_arguments, _) in COMMANDS.items():
        sub = subparsers.add_parser(name, help=help_text.replace("%", "%%"), description=help_text)
        add_arguments(sub)
    return parser


def _import_analysis_commands() -> None:
    """Each command module registers its subcommands with `@command` when it is imported."""
    import importlib

    for module in (
        "interp.cli.generate",  # generate
        "interp.cli.number",  # number-probe
        "interp.cli.math",  # math-eval, prefix-swap
        "interp.cli.training",  # train, reft-compare
        "interp.cli.seal",  # thoughts, thought-states, steering
        "interp.cli.faithfulness",  # faithfulness
        "interp.cli.reft_study",  # reft-study
    ):
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as error:
            if error.name != module:
                raise


def main(argv: list[str] | None = None) -> int:
    """Run one command and return its exit status: a bad flag value prints argparse's usage error
    and returns 2; a ValueError, OSError or RuntimeError from the command prints `error: ...` and
    returns 2 (so `main([...])` in a notebook or test never raises SystemExit)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as stop:  # usage errors (2) and --help (0)
        return stop.code if isinstance(stop.code, int) else 2
    _, _, function = COMMANDS[args.command]
    try:
        function(args)
    except (ValueError, OSError, RuntimeError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0
