"""`python -m interp reft-study`: the ReFT study's whole chain on one model, phase by phase,
resumable (see `interp.analyses.reft_study`)."""

from __future__ import annotations

import argparse
from pathlib import Path

from interp.cli.common import (
    add_model_arguments,
    check_positive_int,
    command,
    fraction,
    input_folder,
    ints,
    load_from_args,
    model_folder_name,
    non_negative_float,
    output_folder,
    output_folder_for,
    positive_float,
    positive_int,
    strings,
)


def _steps(text: str) -> int | None:
    """`auto` (a pilot chooses) or a whole number of optimizer steps."""
    if text == "auto":
        return None
    try:
        return check_positive_int(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"{error}, or 'auto' (a pilot chooses)") from None


def _arguments(parser: argparse.ArgumentParser) -> None:
    from interp.analyses.reft_study import PHASES, TRAINABLE_ARMS, ReftStudyConfig

    d = ReftStudyConfig()
    # bfloat16 where the hardware has it for training, GSM8K, the swap and faithfulness (they
    # agree with float32 within noise); the number and projection phases run on a float32 copy
    add_model_arguments(parser, dtype_default="auto")
    parser.add_argument(
        "--out", type=output_folder, default=None, help="default: runs/reft_study/MODEL"
    )
    parser.add_argument(
        "--phases",
        type=strings,
        default=PHASES,
        help=f"phases to run, comma separated, in any order (default: all: {','.join(PHASES)}); "
        f"a phase computes the earlier ones it needs when they are not saved",
    )
    parser.add_argument(
        "--steps",
        type=_steps,
        default=d.steps,
        help="optimizer steps per arm, or 'auto': a red_all pilot of --pilot-steps picks them "
        "(default: auto)",
    )
    parser.add_argument("--pilot-steps", type=positive_int, default=d.pilot_steps)
    parser.add_argument("--pilot-fraction", type=fraction, default=d.pilot_fraction)
    parser.add_argument(
        "--test-problems", type=positive_int, default=d.test_problems, help="GSM8K test problems"
    )
    parser.add_argument("--k", type=positive_int, default=d.prefix_tokens, help="prefix tokens K")
    parser.add_argument("--decode-prefix", type=positive_int, default=d.decode_prefix)
    parser.add_argument("--batch-size", type=positive_int, default=d.batch_size)
    parser.add_argument("--grad-accum", type=positive_int, default=d.grad_accum)
    parser.add_argument("--max-answer-tokens", type=positive_int, default=d.max_answer_tokens)
    parser.add_argument("--red-lr", type=positive_float, default=d.red_lr)
    parser.add_argument("--lora-lr", type=positive_float, default=d.lora_lr)
    parser.add_argument("--bias-target", type=positive_float, default=d.bias_target)
    parser.add_argument(
        "--arms",
        type=strings,
        default=d.arms,
        help=f"trained arms (default: {','.join(TRAINABLE_ARMS)}; red_all is required)",
    )
    parser.add_argument("--max-new-tokens", type=positive_int, default=d.max_new_tokens)
    parser.add_argument("--eval-batch-size", type=positive_int, default=d.eval_batch_size)
    parser.add_argument("--kl-budget", type=non_negative_float, default=d.kl_budget)
    parser.add_argument("--swap-problems", type=positive_int, default=d.swap_problems)
    parser.add_argument("--swap-ks", type=ints, default=d.swap_ks)
    parser.add_argument(
        "--swap-pool-max", type=positive_int, default=None, help="default: the whole test split"
    )
    parser.add_argument("--faith-triples", type=positive_int, default=d.faith_triples)
    parser.add_argument(
        "--probe-dir",
        type=input_folder,
        default=None,
        help="a number-probe output folder of this model (float32) to reuse "
        "(default: runs/number_probe/MODEL when it holds one)",
    )
    parser.add_argument("--probe-problems", type=positive_int, default=d.probe_problems)
    parser.add_argument("--sweep-problems", type=positive_int, default=d.sweep_problems)
    parser.add_argument("--seed", type=int, default=d.seed)
    parser.add_argument("--no-resume", action="store_true", help="recompute every phase")


@command(
    "reft-study",
    "the ReFT study's chain: plan, number probe, trained arms, GSM8K, projection vs x*, prefix "
    "swap, faithfulness, summary (every phase resumable)",
    _arguments,
)
def reft_study_command(args: argparse.Namespace) -> None:
    from interp.analyses.reft_study import PHASES, ReftStudyConfig, Study

    unknown = set(args.phases) - set(PHASES)
    if unknown:
        raise ValueError(f"unknown --phases {sorted(unknown)}; the phases are {', '.join(PHASES)}")
    probe_dir = args.probe_dir
    if probe_dir is None:
        default = Path("runs/number_probe") / model_folder_name(args.model)
        probe_dir = str(default) if default.is_dir() else None
    config = ReftStudyConfig(  # checked before the model loads
        seed=args.seed,
        probe_dir=str(probe_dir) if probe_dir is not None else None,
        probe_problems=args.probe_problems,
        sweep_problems=args.sweep_problems,
        steps=args.steps,
        pilot_steps=args.pilot_steps,
        pilot_fraction=args.pilot_fraction,
        batch_size=args.batch_size,
        grad_accum=args.grad_accum,
        max_answer_tokens=args.max_answer_tokens,
        red_lr=args.red_lr,
        prefix_tokens=args.k,
        bias_target=args.bias_target,
        lora_lr=args.lora_lr,
        arms=args.arms,
        decode_prefix=args.decode_prefix,
        test_problems=args.test_problems,
        max_new_tokens=args.max_new_tokens,
        eval_batch_size=args.eval_batch_size,
        kl_budget=args.kl_budget,
        swap_ks=args.swap_ks,
        swap_problems=args.swap_problems,
        swap_pool_max=args.swap_pool_max,
        faith_triples=args.faith_triples,
    ).check()
    out = output_folder_for(args, "runs/reft_study")
    model = load_from_args(args)
    study = Study(model, out, config=config, resume=not args.no_resume)
    study.run(("plan", *args.phases))  # the plan (loaded when saved) always comes first
    print(f"wrote {out}")
