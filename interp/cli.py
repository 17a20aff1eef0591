"""`python -m interp ...`: run an analysis on a model and write its results and figures.

Each subcommand is a small function registered with `@command`; `python -m interp --help` lists them.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable

COMMANDS: dict[str, tuple[str, Callable[[argparse.ArgumentParser], None], Callable]] = {}


def command(name: str, help_text: str, add_arguments: Callable[[argparse.ArgumentParser], None]):
    """Register `function(args)` as the subcommand `name`."""

    def register(function: Callable) -> Callable:
        COMMANDS[name] = (help_text, add_arguments, function)
        return function

    return register


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    from interp.presets import DEFAULT_MODEL

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


def _generate_arguments(parser: argparse.ArgumentParser) -> None:
    add_model_arguments(parser)
    parser.add_argument("--prompt", action="append", required=True, help="repeat for a batch")
    parser.add_argument("--chat", action="store_true", help="wrap each prompt in the chat template")
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--sample", action="store_true", help="sample instead of greedy")
    parser.add_argument("--temperature", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--stop", action="append", default=[], help="stop string (repeatable)")
    parser.add_argument("--edits", default=None, help="an edit checkpoint folder to apply")
    parser.add_argument("--json", action="store_true", help="print results as JSON")


@command(
    "generate", "decode from prompts (optionally with a saved edit checkpoint)", _generate_arguments
)
def generate_command(args: argparse.Namespace) -> None:
    from interp.generation import generate
    from interp.interventions import load_edits

    model = load_from_args(args)
    prompts = args.prompt
    if args.chat:
        prompts = [
            model.tokenizer.apply_chat_template(
                [{"role": "user", "content": p}], tokenize=False, add_generation_prompt=True
            )
            for p in prompts
        ]
    edit_list = load_edits(args.edits, model) if args.edits else []
    result = generate(
        model,
        prompts,
        edit_list=edit_list,
        max_new_tokens=args.max_new_tokens,
        do_sample=args.sample,
        temperature=args.temperature,
        seed=args.seed,
        stop_strings=tuple(args.stop),
    )
    if args.json:
        rows = [
            {"prompt": p, "text": t, "tokens": toks, "finish": f}
            for p, t, toks, f in zip(
                args.prompt, result.texts, result.tokens, result.finish_reasons
            )
        ]
        print(json.dumps(rows, indent=1))
        return
    for prompt, text, finish in zip(args.prompt, result.texts, result.finish_reasons):
        print(f"--- {prompt!r} ({finish})\n{text}")


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
    """Analyses register their subcommands when their CLI module is imported."""
    import importlib

    for module in (
        "interp.analyses.cli_commands",  # number-probe
        "interp.analyses.cli_math",  # math-eval, prefix-swap
        "interp.analyses.cli_training",  # train, reft-compare
        "interp.analyses.cli_seal",  # thoughts, thought-states, steering
        "interp.analyses.cli_faithfulness",  # faithfulness
    ):
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as error:
            if error.name != module:
                raise


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    _, _, function = COMMANDS[args.command]
    try:
        function(args)
    except (ValueError, FileNotFoundError, RuntimeError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0
