"""What every subcommand shares: the registry (`@command`), model arguments, list parsing."""

from __future__ import annotations

import argparse
from collections.abc import Callable

COMMANDS: dict[str, tuple[str, Callable[[argparse.ArgumentParser], None], Callable]] = {}


def command(name: str, help_text: str, add_arguments: Callable[[argparse.ArgumentParser], None]):
    """Register `function(args)` as the subcommand `name`."""

    def register(function: Callable) -> Callable:
        COMMANDS[name] = (help_text, add_arguments, function)
        return function

    return register


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    from interp.models.presets import DEFAULT_MODEL

    parser.add_argument(
        "--model",
        default=DEFAULT_MODEL,
        help=f"preset name, local Hugging Face folder, or hub name (default: {DEFAULT_MODEL})",
    )
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--cache-dir", default=None, help="where dequantized presets are kept")


def load_from_args(args: argparse.Namespace):
    from interp.models import load_model

    return load_model(args.model, device=args.device, cache_dir=args.cache_dir)


def ints(text: str) -> tuple[int, ...]:
    """A comma-separated list of integers ("12,17,20")."""
    return tuple(int(x) for x in text.split(",") if x.strip())


def floats(text: str) -> tuple[float, ...]:
    """A comma-separated list of numbers ("0.5,1,2")."""
    return tuple(float(x) for x in text.split(",") if x.strip())


def strings(text: str) -> tuple[str, ...]:
    """A comma-separated list of words, stripped."""
    return tuple(s.strip() for s in text.split(",") if s.strip())
