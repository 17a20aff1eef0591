"""`python -m interp math-eval ...` and `python -m interp prefix-swap ...`."""

from __future__ import annotations

import argparse
from pathlib import Path

from interp.cli.common import (
    add_model_arguments,
    add_scale_out_arguments,
    command,
    edit_checkpoint,
    ints,
    load_from_args,
    non_negative_float,
    non_negative_int,
    output_file,
    output_folder,
    output_folder_for,
    positive_float,
    positive_int,
    saved_result,
    scale_out_from_args,
)
from interp.data.math_prompts import MATH_PROMPT_STYLES
from interp.figures.common import save_figure
from interp.interventions.arms import Arm
from interp.interventions.random_red import random_red_edits


def _edit_arguments(parser: argparse.ArgumentParser, prefix: str, what: str) -> None:
    group = parser.add_mutually_exclusive_group()
    group.add_argument(
        f"--{prefix}edits", type=edit_checkpoint, default=None, help=f"edit checkpoint for {what}"
    )
    group.add_argument(
        f"--{prefix}random-red",
        type=non_negative_float,
        default=None,
        metavar="NORM",
        help=f"{what}: a random RED with this bias norm on every blocks.L.hook_mlp_out",
    )


def _arm(model, checkpoint: str | None, red_norm: float | None, seed: int) -> Arm:
    """The model with a checkpoint's edits, a random RED, or nothing; named after what it carries."""
    from interp.interventions import load_edits

    if checkpoint:
        return Arm.of(model, load_edits(checkpoint, model), name=Path(checkpoint).name)
    if red_norm is not None:
        edits = random_red_edits(model, red_norm, seed=seed)
        return Arm.of(model, edits, name=f"random RED {red_norm:g}")
    return Arm.of(model)


def _common_arguments(parser: argparse.ArgumentParser) -> None:
    # bfloat16 where the hardware has it: on 100 GSM8K problems it gave 25 right against
    # float32's 26 (the same verdict on 97; README: the agreement table)
    add_model_arguments(parser, dtype_default="auto")
    parser.add_argument(
        "--dataset", default="gsm8k", help="gsm8k | math500 | FILE.jsonl | hf:NAME[:CONFIG]"
    )
    parser.add_argument("--split", default="test", help="gsm8k: train or test")
    parser.add_argument("--seed", type=int, default=0, help="seed of the problem subset")
    parser.add_argument(
        "--prompt-style",
        default="chat",
        choices=MATH_PROMPT_STYLES,
        help="chat: SEAL's \\boxed{} prompt in the chat template; plain: Question/Answer; "
        "few_shot: worked GSM8K exemplars first",
    )
    parser.add_argument("--max-new-tokens", type=positive_int, default=384)
    parser.add_argument("--batch-size", type=positive_int, default=8)
    parser.add_argument(
        "--reuse",
        type=saved_result,
        action="append",
        default=[],
        metavar="DIR",
        help="a saved math-eval result whose rows may be reused (repeatable)",
    )
    parser.add_argument(
        "--figure", type=output_file, default=None, help="also write the figure as PNG here"
    )


def _check_dataset(dataset: str) -> None:
    """A JSONL data set must exist before the model loads."""
    if dataset.endswith(".jsonl") and not Path(dataset).expanduser().is_file():
        raise FileNotFoundError(f"--dataset {dataset}: no such file; give an existing JSONL file")


def _load_reuse(directories):
    from interp.analyses.math_eval import MathEvalResult

    return [MathEvalResult.load(d) for d in directories]


def _math_eval_arguments(parser: argparse.ArgumentParser) -> None:
    _common_arguments(parser)
    parser.add_argument(
        "--n-problems", type=non_negative_int, default=100, help="0: the whole split"
    )
    parser.add_argument("--question-field", default="question", help="JSONL field of the question")
    parser.add_argument("--answer-field", default="answer", help="JSONL field of the gold answer")
    parser.add_argument(
        "--n-shots", type=non_negative_int, default=4, help="exemplars of --prompt-style few_shot"
    )
    parser.add_argument("--sample", action="store_true", help="sample instead of greedy")
    parser.add_argument(
        "--temperature", type=positive_float, default=1.0, help="with --sample (above 0)"
    )
    parser.add_argument(
        "--out",
        type=output_folder,
        default=None,
        help="result folder (default: runs/math/DATASET/MODEL)",
    )
    _edit_arguments(parser, "", "the evaluated model")
    add_scale_out_arguments(parser)


@command(
    "math-eval",
    "decode and grade GSM8K / MATH-500 / JSONL problems; accuracy with a 95% interval",
    _math_eval_arguments,
)
def math_eval_command(args: argparse.Namespace) -> None:
    from interp.analyses import math_eval
    from interp.data.math_sets import load_problems, subset

    _check_dataset(args.dataset)
    scale_out = scale_out_from_args(args)
    out = output_folder_for(args, f"runs/math/{Path(args.dataset).stem.replace(':', '_')}")
    model = load_from_args(args)
    arm = _arm(model, args.edits, args.random_red, args.seed)
    problems = None
    if args.question_field != "question" or args.answer_field != "answer":
        problems = load_problems(
            args.dataset,
            args.split,
            question_field=args.question_field,
            answer_field=args.answer_field,
        )
        if args.n_problems:
            problems = subset(problems, min(args.n_problems, len(problems)), args.seed)
    extra = {"do_sample": True, "temperature": args.temperature} if args.sample else {}
    result = math_eval.run(
        arm,
        problems=problems,
        dataset=args.dataset,
        split=args.split,
        n_problems=args.n_problems or None,
        seed=args.seed,
        prompt_style=args.prompt_style,
        n_shots=args.n_shots,
        max_new_tokens=args.max_new_tokens,
        batch_size=args.batch_size,
        out=out,
        reuse=_load_reuse(args.reuse),
        **scale_out,
        **extra,
    )
    summary = result.summary()
    print(
        f"{summary['model']} on {summary['dataset']}: {summary['correct']}/{summary['n']} correct, "
        f"accuracy {summary['accuracy']:.1%} (95% CI {summary['accuracy_low']:.1%}–"
        f"{summary['accuracy_high']:.1%}); mean {summary['mean_tokens']:.0f} tokens, "
        f"{summary['cap_rate']:.1%} hit the {args.max_new_tokens}-token cap. Rows: {out}"
    )
    save_figure(result.figure(), args.figure)


def _prefix_swap_arguments(parser: argparse.ArgumentParser) -> None:
    _common_arguments(parser)
    parser.add_argument(
        "--ks", type=ints, default=(0, 1, 4, 8, 16, 32, 64, 128), help="prefix lengths (>= 0)"
    )
    parser.add_argument(
        "--variants", default="donor_cache,recompute", help="donor_cache and/or recompute"
    )
    parser.add_argument("--n-problems", type=positive_int, default=150, help="problems in the swap")
    parser.add_argument(
        "--pool-size", type=positive_int, default=500, help="problems the donor answers first"
    )
    parser.add_argument(
        "--all-problems",
        action="store_true",
        help="swap on every pool problem, not only those the donor gets wrong",
    )
    parser.add_argument("--no-closeness", action="store_true", help="skip the trajectory closeness")
    parser.add_argument(
        "--closeness-figure", type=output_file, default=None, help="closeness figure as PNG here"
    )
    parser.add_argument(
        "--out",
        type=output_folder,
        default=None,
        help="result folder (default: runs/math/prefix_swap/MODEL)",
    )
    _edit_arguments(parser, "donor-", "the donor")
    _edit_arguments(parser, "continuer-", "the continuer")
    add_scale_out_arguments(parser)


@command(
    "prefix-swap",
    "the donor writes the first k answer tokens, the continuer goes on: accuracy against k",
    _prefix_swap_arguments,
)
def prefix_swap_command(args: argparse.Namespace) -> None:
    from interp.analyses import prefix_swap

    if args.donor_edits is None and args.donor_random_red is None:
        raise ValueError(
            "give the donor an edit: --donor-edits CHECKPOINT or --donor-random-red NORM"
        )
    variants = tuple(v.strip() for v in args.variants.split(",") if v.strip())
    unknown = set(variants) - set(prefix_swap.VARIANTS)
    if unknown or not variants:
        raise ValueError(
            f"--variants must be taken from {prefix_swap.VARIANTS}, got {args.variants!r}"
        )
    if max(args.ks) >= args.max_new_tokens:
        raise ValueError(
            f"the largest k ({max(args.ks)}) must be below --max-new-tokens ({args.max_new_tokens}), "
            f"which caps prefix + continuation"
        )
    _check_dataset(args.dataset)
    scale_out = scale_out_from_args(args)
    out = output_folder_for(args, "runs/math/prefix_swap")
    model = load_from_args(args)
    donor = _arm(model, args.donor_edits, args.donor_random_red, args.seed)
    continuer = _arm(model, args.continuer_edits, args.continuer_random_red, args.seed)
    result = prefix_swap.run(
        model,
        donor=donor,
        continuer=continuer,
        ks=args.ks,
        variants=variants,
        only_donor_wrong=not args.all_problems,
        n_problems=args.n_problems,
        pool_size=args.pool_size,
        dataset=args.dataset,
        split=args.split,
        seed=args.seed,
        prompt_style=args.prompt_style,
        max_new_tokens=args.max_new_tokens,
        batch_size=args.batch_size,
        closeness=not args.no_closeness,
        out=out,
        reuse=_load_reuse(args.reuse),
        **scale_out,
    )
    meta = result.meta
    print(
        f"{meta['n_problems']} problems (pool {meta['pool_size']}, donor accuracy on the pool "
        f"{meta['donor_pool_accuracy']:.1%}); {continuer.name} alone on them: "
        f"{meta['continuer_accuracy']:.1%}"
    )
    print("variant       " + "  ".join(f"k={k:<5d}" for k in result.config.ks))
    for variant in result.config.variants:
        cells = "  ".join(f"{a:7.1%}" for a in result.accuracy(variant))
        print(f"{variant:13s} {cells}")
    if "closeness" in result.tables:
        for arm in ("donor", "continuer"):
            values = []
            for k in result.config.ks:
                rows = [
                    r["gold_logprob"]
                    for r in result.tables["closeness"]
                    if r["arm"] == arm and r["k"] == k
                ]
                values.append(sum(rows) / len(rows))
            print(f"log p(gold) after {arm:9s} prefix: " + "  ".join(f"{v:7.2f}" for v in values))
    save_figure(result.figure(), args.figure)
    if args.closeness_figure and "closeness" in result.tables:
        save_figure(result.closeness_figure(), args.closeness_figure)
