"""`python -m interp faithfulness` (probes for two arms, their difference, token traces) and
`python -m interp faithfulness-triples` (write the seeded GSM8K triples as JSONL)."""

from __future__ import annotations

import argparse

from interp.cli.common import (
    add_model_arguments,
    command,
    edit_checkpoint,
    input_file,
    ints,
    load_from_args,
    non_negative_float,
    non_negative_int,
    open_fraction,
    output_file,
    output_folder,
    output_folder_for,
    positive_int,
)
from interp.figures.common import save_figure
from interp.interventions.random_red import random_red_edits
from interp.results import reuse_or_run


def _faithfulness_arguments(parser: argparse.ArgumentParser) -> None:
    # bfloat16 where the hardware has it: the probes' held-out accuracy moved by at most 3 of 62
    # texts at any layer, the likelihood score not at all (README: the agreement table)
    add_model_arguments(parser, dtype_default="auto")
    parser.add_argument(
        "--out",
        type=output_folder,
        default=None,
        help="output folder (default: runs/faithfulness/MODEL)",
    )
    parser.add_argument("--n-triples", type=positive_int, default=1000, help="triples per arm")
    parser.add_argument(
        "--triples",
        type=input_file,
        default=None,
        help="a JSONL of triples (default: built from GSM8K train)",
    )
    parser.add_argument(
        "--split",
        default="train",
        choices=("train", "test"),
        help="GSM8K split for the built triples",
    )
    parser.add_argument(
        "--facts-per-question",
        type=positive_int,
        default=1,
        help="triples per question (different numbers)",
    )
    parser.add_argument(
        "--max-prompt-tokens", type=positive_int, default=None, help="use only questions this short"
    )
    parser.add_argument("--layers", type=ints, default=None, help="layers to probe, e.g. 0,6,12")
    parser.add_argument(
        "--heads", action="store_true", help="also a probe per attention head (hook_z)"
    )
    parser.add_argument(
        "--edit",
        type=edit_checkpoint,
        default=None,
        help="edit checkpoint of the edited arm (default: random RED)",
    )
    parser.add_argument(
        "--red-bias-norm",
        type=non_negative_float,
        default=0.54,
        help="norm of the random RED's biases",
    )
    parser.add_argument("--no-edited-arm", action="store_true", help="probe the base model only")
    parser.add_argument("--padding-side", choices=("left", "right"), default="left")
    parser.add_argument("--test-fraction", type=open_fraction, default=0.25)
    parser.add_argument(
        "--trace-answers",
        type=non_negative_int,
        default=4,
        help="answers traced token by token (0: none)",
    )
    parser.add_argument(
        "--trace-tokens", type=positive_int, default=48, help="new tokens per traced answer"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch-size", type=positive_int, default=8, help="questions per forward")
    parser.add_argument("--no-resume", action="store_true", help="recompute even if results exist")


@command(
    "faithfulness",
    "number-faithfulness probes per layer (and head) for the base model and an edited arm",
    _faithfulness_arguments,
)
def faithfulness_command(args: argparse.Namespace) -> None:
    from interp.analyses import faithfulness, faithfulness_difference, faithfulness_trace
    from interp.interventions import load_edits
    from interp.interventions.arms import Arm

    out = output_folder_for(args, "runs/faithfulness")
    model = load_from_args(args)
    resume = not args.no_resume
    common = dict(
        n_triples=args.n_triples,
        facts_per_question=args.facts_per_question,
        max_prompt_tokens=args.max_prompt_tokens,
        seed=args.seed,
        split=args.split,
        triples_path=args.triples,
        layers=args.layers,
        heads=args.heads,
        padding_side=args.padding_side,
        test_fraction=args.test_fraction,
        batch_size=args.batch_size,
    )
    arms = [Arm.plain(model, "base")]
    if not args.no_edited_arm:
        if args.edit:
            edit_list, description = load_edits(args.edit, model), f"checkpoint {args.edit}"
        else:
            edit_list = random_red_edits(model, args.red_bias_norm, seed=args.seed)
            description = f"random RED on every hook_mlp_out, bias norm {args.red_bias_norm}"
        arms.append(Arm.edited(model, edit_list, "edited"))
    results = {}
    for arm in arms:
        config = faithfulness.FaithfulnessConfig(
            **common,
            arm=arm.name,
            edit_description="none" if arm.is_plain else description,
        )
        reference = results.get("base")
        results[arm.name] = reuse_or_run(
            out / arm.name,
            faithfulness.FaithfulnessResult,
            config,
            lambda arm=arm, config=config, reference=reference: faithfulness.run(
                arm, reference=reference, **_without(config.__dict__, "arm")
            ),
            resume,
            model=model,
        )
        save_figure(results[arm.name].figure(), out / f"layers_{arm.name}.png")
        _print_arm(results[arm.name])
    if "edited" in results:
        comparison = faithfulness_difference.run(results["base"], results["edited"])
        comparison.save(out / "comparison")
        save_figure(comparison.figure(), out / "difference.png")
        meta = comparison.meta
        print(
            f"likelihood score: base {meta['base_likelihood_accuracy']:.3f}, edited "
            f"{meta['edited_likelihood_accuracy']:.3f}; mean log-likelihood margin (correct - "
            f"incorrect): base {meta['base_likelihood_margin']:.3f}, edited "
            f"{meta['edited_likelihood_margin']:.3f}"
        )
    if args.trace_answers > 0:
        base = results["base"]
        for arm in arms:
            trace_config = faithfulness_trace.TokenTraceConfig(
                prompt_format=base.config.prompt_format,
                answer_format=base.config.answer_format,
                layer=base.best_layer(),
                n_answers=args.trace_answers,
                max_new_tokens=args.trace_tokens,
                arm=arm.name,
            )
            trace = reuse_or_run(
                out / f"trace_{arm.name}",
                faithfulness_trace.TokenTrace,
                trace_config,
                lambda arm=arm, c=trace_config: faithfulness_trace.run(
                    arm,
                    base,
                    layer=c.layer,
                    n_answers=c.n_answers,
                    max_new_tokens=c.max_new_tokens,
                    stop_strings=c.stop_strings,
                    include_restatements=c.include_restatements,
                ),
                resume,
                model=model,
            )
            save_figure(trace.figure(), out / f"trace_{arm.name}.png")
    print(f"wrote {out}")


def _without(mapping: dict, *keys: str) -> dict:
    return {k: v for k, v in mapping.items() if k not in keys}


def _print_arm(result) -> None:
    print(
        f"\narm {result.config.arm} ({result.meta['n_triples']} triples, {result.meta['n_test']} held-out texts)"
    )
    print("layer  accuracy   AUC    pair acc")
    for row in result.tables["per_layer"]:
        print(
            f"{row['layer']:5d}  {row['accuracy']:.3f}    {row['auc']:.3f}   {row['pair_accuracy']:.3f}"
        )
    print(
        f"likelihood score (correct restatement more likely): {result.likelihood_accuracy():.3f} "
        f"(held-out triples {result.likelihood_accuracy(True):.3f})"
    )


def _triples_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=output_file, required=True, help="JSONL file to write")
    parser.add_argument("--n", type=positive_int, default=1000, help="number of triples")
    parser.add_argument("--split", default="train", choices=("train", "test"), help="GSM8K split")
    parser.add_argument("--facts-per-question", type=positive_int, default=1)
    parser.add_argument("--seed", type=int, default=0)


@command(
    "faithfulness-triples",
    "write seeded number-faithfulness triples built from GSM8K questions as JSONL",
    _triples_arguments,
)
def faithfulness_triples_command(args: argparse.Namespace) -> None:
    from interp.data.faithfulness import gsm8k_triples, save_triples

    triples = gsm8k_triples(
        args.n, seed=args.seed, split=args.split, facts_per_question=args.facts_per_question
    )
    path = save_triples(args.out, triples)
    print(f"wrote {len(triples)} triples to {path}")
