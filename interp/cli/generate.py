"""`python -m interp generate`: decode from prompts, optionally with a saved edit checkpoint."""

from __future__ import annotations

import argparse
import json

from interp.cli.common import (
    add_model_arguments,
    command,
    edit_checkpoint,
    load_from_args,
    positive_float,
    positive_int,
)


def _generate_arguments(parser: argparse.ArgumentParser) -> None:
    # float32 by default on purpose: the text is the answer here, and greedy GSM8K texts in
    # bfloat16 differed from float32's somewhere in 70 of 100 (README: the agreement table)
    add_model_arguments(parser, dtype_default="float32")
    parser.add_argument("--prompt", action="append", required=True, help="repeat for a batch")
    parser.add_argument("--chat", action="store_true", help="wrap each prompt in the chat template")
    parser.add_argument("--max-new-tokens", type=positive_int, default=64)
    parser.add_argument("--sample", action="store_true", help="sample instead of greedy")
    parser.add_argument(
        "--temperature", type=positive_float, default=1.0, help="with --sample (above 0)"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--stop", action="append", default=[], help="stop string (repeatable)")
    parser.add_argument(
        "--edits", type=edit_checkpoint, default=None, help="an edit checkpoint folder to apply"
    )
    parser.add_argument("--json", action="store_true", help="print results as JSON")


@command(
    "generate", "decode from prompts (optionally with a saved edit checkpoint)", _generate_arguments
)
def generate_command(args: argparse.Namespace) -> None:
    if any(stop == "" for stop in args.stop):
        raise ValueError("--stop '' would stop at once: give a non-empty stop string")
    from interp.decoding import generate
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
