"""SEAL (arXiv 2504.07986) from the command line: `thoughts`, `thought-states`, `steering`, and `seal` (all three).

    python -m interp thoughts        --out runs/seal   # responses to split A, thoughts per class
    python -m interp thought-states  --out runs/seal   # boundary states, t-SNE, separability, vectors
    python -m interp steering        --out runs/seal   # split B: base, logits penalty, steered, ablations
    python -m interp seal --model /path/to/DeepSeek-R1-Distill-Qwen-1.5B --out runs/seal_r1

Problems: a seeded draw from each data set, split into A (responses, states, vector) and B
(steering evaluation) with no problem in both; the ids are written to `<out>/splits.json`.
Every step resumes from what is on disk in `--out`.
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

from interp.cli.common import (
    add_model_arguments,
    add_scale_out_arguments,
    command,
    finite_float,
    floats,
    ints,
    load_from_args,
    non_negative_int,
    output_folder,
    output_folder_for,
    positive_float,
    positive_int,
    scale_out_from_args,
    strings,
)
from interp.data.reasoning_traces import TRACE_SOURCE
from interp.figures.common import save_figure
from interp.results import reuse_or_run, write_json_atomic
from interp.text.thoughts import SEAL_KEYWORDS, Response, ThoughtKeywords

DATASETS = ("math500", "gsm8k", "organism")  # organism: held-out problems of the trace generator
DEFAULT_DATASETS = ("math500", "gsm8k")


# --------------------------------------------------------------------------------------------------
# Shared arguments and data


def _common_arguments(parser: argparse.ArgumentParser) -> None:
    # bfloat16 where the hardware has it: thought-state separability on the organism moved by at
    # most 0.024 balanced accuracy at any layer, GSM8K accuracy by 1 in 100 (README: the
    # agreement table)
    add_model_arguments(parser, dtype_default="auto")
    add_scale_out_arguments(parser)
    parser.add_argument(
        "--out",
        type=output_folder,
        default=None,
        help="output folder shared by the steps (default: runs/seal/MODEL)",
    )
    parser.add_argument(
        "--span",
        default="auto",
        choices=("auto", "think", "response"),
        help="where thoughts are split and steered: inside <think>..</think>, or the whole "
        "response (for models without a think span); auto: think if <think> is one token",
    )
    parser.add_argument(
        "--datasets",
        type=strings,
        default=DEFAULT_DATASETS,
        help="math500,gsm8k; organism: the held-out word problems of the reasoner's trace "
        "generator (for --model reasoner)",
    )
    parser.add_argument(
        "--n-extract",
        type=positive_int,
        default=16,
        help="problems per data set in split A (vector)",
    )
    parser.add_argument(
        "--n-eval",
        type=positive_int,
        default=12,
        help="problems per data set in split B (steering)",
    )
    parser.add_argument("--seed", type=int, default=0, help="draws the splits")
    parser.add_argument(
        "--prompt-style",
        default="chat",
        choices=("chat", "plain"),
        help="chat (SEAL's prompt) | plain",
    )
    parser.add_argument("--max-new-tokens", type=positive_int, default=512)
    parser.add_argument(
        "--batch-size", type=positive_int, default=16, help="sequences per decoding batch"
    )
    parser.add_argument(
        "--sample", action="store_true", help="sample (seeded) instead of greedy decoding"
    )
    parser.add_argument(
        "--temperature", type=positive_float, default=1.0, help="with --sample (above 0)"
    )
    kw = SEAL_KEYWORDS
    for name, default in (
        ("reflection-prefixes", kw.reflection_prefixes),
        ("reflection-phrases", kw.reflection_phrases),
        ("transition-prefixes", kw.transition_prefixes),
        ("transition-phrases", kw.transition_phrases),
    ):
        parser.add_argument(
            f"--{name}", type=strings, default=default, help="comma-separated (default: SEAL's)"
        )
    parser.add_argument(
        "--pooling",
        default="samples",
        choices=("samples", "classes"),
        help="how reflection and transition states pool: every sample alike (SEAL) or per class",
    )
    parser.add_argument(
        "--normalization", default="none", choices=("none", "unit"), help="of the vector"
    )
    parser.add_argument("--no-resume", action="store_true", help="recompute even if results exist")


def _check_arguments(args: argparse.Namespace) -> None:
    """Checks across flags, before the model loads; fills in the default `--out`."""
    unknown = set(args.datasets) - set(DATASETS)
    if unknown:
        raise ValueError(f"unknown data sets {sorted(unknown)} in --datasets; use {DATASETS}")
    variants = getattr(args, "variants", None)
    if variants is not None:
        from interp.interventions.steering_vector import VARIANTS

        if set(variants) - set(VARIANTS):
            raise ValueError(
                f"unknown --variants {sorted(set(variants) - set(VARIANTS))}; use {sorted(VARIANTS)}"
            )
    scale_out_from_args(args)
    args.out = output_folder_for(args, "runs/seal")


def _keywords(args: argparse.Namespace) -> ThoughtKeywords:
    return ThoughtKeywords(
        args.reflection_prefixes,
        args.reflection_phrases,
        args.transition_prefixes,
        args.transition_phrases,
    )


def seal_splits(datasets, n_extract: int, n_eval: int, seed: int = 0):
    """Per data set, a seeded permutation: the first `n_extract` problems go to A, the next
    `n_eval` to B (never overlapping)."""
    from interp.data.math_sets import load_gsm8k, load_math500
    from interp.data.reasoning_traces import N_HELD_OUT, held_out_problems

    loaders = {
        "math500": load_math500,
        "gsm8k": lambda: load_gsm8k("test"),
        "organism": lambda: [p.as_math_problem() for p in held_out_problems(N_HELD_OUT)],
    }
    split_a, split_b = [], []
    for name in datasets:
        if name not in loaders:
            raise ValueError(f"unknown data set {name!r}; use {sorted(loaders)}")
        problems = loaders[name]()
        if n_extract + n_eval > len(problems):
            raise ValueError(
                f"{name} has {len(problems)} problems; cannot draw {n_extract} + {n_eval}"
            )
        order = list(range(len(problems)))
        random.Random(seed).shuffle(order)
        split_a += [problems[i] for i in order[:n_extract]]
        split_b += [problems[i] for i in order[n_extract : n_extract + n_eval]]
    overlap = {p.id for p in split_a} & {p.id for p in split_b}
    assert not overlap, f"splits overlap: {sorted(overlap)[:5]}"
    return split_a, split_b


def _splits(args: argparse.Namespace):
    """The splits of these arguments, recorded in `<out>/splits.json`."""
    split_a, split_b = seal_splits(args.datasets, args.n_extract, args.n_eval, args.seed)
    record = {
        "datasets": list(args.datasets),
        "n_extract_per_dataset": args.n_extract,
        "n_eval_per_dataset": args.n_eval,
        "seed": args.seed,
        "A": [p.id for p in split_a],
        "B": [p.id for p in split_b],
    }
    write_json_atomic(Path(args.out) / "splits.json", record)
    return split_a, split_b


def _resolved_span(args: argparse.Namespace, model) -> str:
    from interp.text.thoughts import resolve_span

    span = resolve_span(model.tokenizer, args.span)
    if args.span == "auto":
        reason = "<think> is one token" if span == "think" else "no single <think> token"
        print(f"span: {span} ({reason}; recorded in every result)")
    return span


def _load_responses(out: Path) -> list[Response]:
    from interp.data.jsonl import read_jsonl

    path = out / "responses.jsonl"
    if not path.exists():
        raise FileNotFoundError(
            f"{path} is missing: run `python -m interp thoughts --out {out}` (same arguments) first"
        )
    return [Response.from_dict(row) for row in read_jsonl(path)]


# --------------------------------------------------------------------------------------------------
# thoughts


def _thoughts_arguments(parser: argparse.ArgumentParser) -> None:
    _common_arguments(parser)


@command(
    "thoughts",
    "SEAL step 1: responses to split A, split into thoughts; counts per class, by answer and level",
    _thoughts_arguments,
)
def thoughts_command(args: argparse.Namespace, model=None) -> None:
    _check_arguments(args)
    model = model or load_from_args(args)
    _thoughts(args, model)


def _thoughts(args: argparse.Namespace, model):
    from interp.analyses import math_eval, thought_stats
    from interp.analyses.steering import response_from_row

    out = Path(args.out)
    span = _resolved_span(args, model)
    split_a, _ = _splits(args)
    evaluation = math_eval.run(
        model,
        problems=split_a,
        prompt_style=args.prompt_style,
        max_new_tokens=args.max_new_tokens,
        batch_size=args.batch_size,
        seed=args.seed,
        do_sample=args.sample,
        temperature=args.temperature,
        out=out / "responses_eval",
        **scale_out_from_args(args),
    )
    by_id = {p.id: p for p in split_a}
    responses = [response_from_row(row, by_id[row["id"]]) for row in evaluation.rows]
    path = out / "responses.jsonl"
    tmp = path.with_name(".responses.jsonl.tmp")
    tmp.write_text("".join(json.dumps(r.to_dict()) + "\n" for r in responses), encoding="utf-8")
    tmp.replace(path)
    stats = thought_stats.run(model, responses, span=span, keywords=_keywords(args))
    stats.save(out / "thought_stats")
    save_figure(stats.figure(), out / "thought_stats.png")
    print(
        f"split A: {evaluation.n} problems, accuracy {evaluation.accuracy:.1%}, mean "
        f"{evaluation.mean_tokens:.0f} tokens, {evaluation.cap_rate:.0%} hit the cap"
    )
    if all(p.source == TRACE_SOURCE for p in split_a):
        _organism_rates(out, split_a, evaluation.rows, args.seed)
    print("\ngroup       class       thoughts  per response  tokens/response  responses with it")
    for table in ("by_correct", "by_level"):
        for r in stats.tables[table]:
            print(
                f"{r['group']:<11} {r['class']:<11} {r['thoughts']:8d}  {r['thoughts_per_response']:12.2f}"
                f"  {r['tokens_per_response']:15.1f}  {r['responses_with_class']:d}/{r['responses']}"
            )
    return responses


def _organism_rates(out: Path, problems, rows, seed: int) -> None:
    """The organism's thought rates in split A next to its trace generator's on the same problems,
    written to `<out>/organism_rates.json` and printed."""
    from interp.data.reasoning_traces import N_HELD_OUT, held_out_problems
    from interp.models.reasoner import compare_rates

    word_problems = {p.id: p for p in held_out_problems(N_HELD_OUT)}
    texts = {row["id"]: row["output"] for row in rows}
    rates = compare_rates(
        [texts[p.id] for p in problems], [word_problems[p.id] for p in problems], seed=seed
    )
    write_json_atomic(out / "organism_rates.json", {"rows": rates.table()})
    print("\nrate                                  organism  generator")
    for row in rates.table():
        print(f"{row['rate']:<36} {row['organism']:9.3f}  {row['generator']:9.3f}")


# --------------------------------------------------------------------------------------------------
# thought-states


def _states_arguments(parser: argparse.ArgumentParser) -> None:
    _common_arguments(parser)
    _states_only_arguments(parser)


def _states_only_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--layers", type=ints, default=None, help="layers to read (default: all)")
    parser.add_argument("--tsne-layers", type=ints, default=None, help="default: 6 evenly spaced")
    parser.add_argument(
        "--max-points", type=positive_int, default=2000, help="boundaries for t-SNE / CV"
    )
    parser.add_argument(
        "--states-batch-size", type=positive_int, default=4, help="traces per forward"
    )
    parser.add_argument("--chunk-size", type=positive_int, default=64, help="traces per chunk file")


@command(
    "thought-states",
    "SEAL step 2: hidden states at thought boundaries, t-SNE, separability, steering vectors",
    _states_arguments,
)
def thought_states_command(args: argparse.Namespace, model=None) -> None:
    _check_arguments(args)
    model = model or load_from_args(args)
    _thought_states(args, model)


def _thought_states(args: argparse.Namespace, model):
    from interp.analyses import thought_states
    from interp.interventions.steering_vector import VARIANTS

    out = Path(args.out)
    span = _resolved_span(args, model)
    responses = _load_responses(out)
    options = dict(
        layers=args.layers,
        span=span,
        keywords=_keywords(args),
        store=out / "thought_states_chunks",
        batch_size=args.states_batch_size,
        chunk_size=args.chunk_size,
        tsne_layers=args.tsne_layers,
        max_points=args.max_points,
        seed=args.seed,
    )
    config = thought_states.make_config(model, responses, **options)
    states = reuse_or_run(
        out / "thought_states",
        thought_states.ThoughtStatesResult,
        config,
        lambda: thought_states.run(model, responses, **options, **scale_out_from_args(args)),
        not args.no_resume,
        model=model,
    )
    save_figure(states.figure(), out / "thought_states.png")
    print(f"\nboundaries per class: {states.counts} (from {states.meta['n_responses']} responses)")
    print("layer  3-class acc  balanced  majority   exec-vs-rest balanced")
    for r in states.tables["per_layer"]:
        print(
            f"{r['layer']:5d}  {r['accuracy']:11.3f}  {r['balanced_accuracy']:8.3f}  "
            f"{r['majority_baseline']:8.3f}   {r['binary_balanced_accuracy']:.3f}"
        )
    for variant in VARIANTS:
        try:
            vector = states.steering_vector(
                variant, pooling=args.pooling, normalization=args.normalization
            )
        except ValueError as error:
            print(f"vector {variant}: not made ({error})")
            continue
        vector.save(out / "vectors" / variant)
        norms = ", ".join(
            f"L{k}: {v:.2f}"
            for k, v in list(vector.norms().items())[:: max(1, len(vector.layers) // 6)]
        )
        print(f"vector {variant}: {vector.sign}, pooling {vector.pooling}, norms {norms}")
    return states


# --------------------------------------------------------------------------------------------------
# steering


def _steering_arguments(parser: argparse.ArgumentParser) -> None:
    _common_arguments(parser)
    _steering_only_arguments(parser)


def _steering_only_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--steer-layers", type=ints, default=None, help="ablation layers (default: 3 spread)"
    )
    parser.add_argument("--alphas", type=floats, default=(0.5, 1.0, 2.0), help="ablation alphas")
    parser.add_argument(
        "--main-layer", type=non_negative_int, default=None, help="default: ~70%% depth"
    )
    parser.add_argument("--main-alpha", type=finite_float, default=1.0)
    parser.add_argument("--grid", default="cross", choices=("cross", "full"))
    parser.add_argument(
        "--variants",
        type=strings,
        default=("pooled",),
        help="pooled,reflection_only,transition_only (later ones at the main point only)",
    )
    parser.add_argument("--penalty-strings", type=strings, default=("Wait", "Alternatively"))
    parser.add_argument("--penalty-value", type=finite_float, default=-3.0)


def default_steer_layers(n_layers: int) -> tuple[int, ...]:
    """Three layers at about 50%, 70% and 85% depth (SEAL steers layer 20 of 28, ~70%)."""
    return tuple(sorted({round(n_layers * f) for f in (0.5, 0.7, 0.85)} - {n_layers}))


@command(
    "steering",
    "SEAL step 3: split B under base, logits penalty and steering; ablations over layer and alpha",
    _steering_arguments,
)
def steering_command(args: argparse.Namespace, model=None) -> None:
    _check_arguments(args)
    model = model or load_from_args(args)
    _steering(args, model)


def _steering(args: argparse.Namespace, model):
    from interp.analyses import steering, thought_states
    from interp.storage import is_saved

    out = Path(args.out)
    span = _resolved_span(args, model)
    states_dir = out / "thought_states"
    if not is_saved(states_dir):
        raise FileNotFoundError(
            f"{states_dir} is missing: run `python -m interp thought-states --out {out}` first"
        )
    states = thought_states.ThoughtStatesResult.load(states_dir)
    _, split_b = _splits(args)
    layers = args.steer_layers or default_steer_layers(model.cfg.n_layers)
    main_layer = args.main_layer if args.main_layer is not None else round(0.7 * model.cfg.n_layers)
    result = steering.run(
        model,
        states,
        split_b,
        layers=layers,
        alphas=args.alphas,
        main_layer=main_layer,
        main_alpha=args.main_alpha,
        grid=args.grid,
        variants=args.variants,
        pooling=args.pooling,
        normalization=args.normalization,
        penalty_strings=args.penalty_strings,
        penalty_value=args.penalty_value,
        span=span,
        keywords=_keywords(args),
        prompt_style=args.prompt_style,
        max_new_tokens=args.max_new_tokens,
        batch_size=args.batch_size,
        do_sample=args.sample,
        temperature=args.temperature,
        seed=args.seed,
        out=out / "steering_arms",
        **scale_out_from_args(args),
    )
    result.save(out / "steering")
    save_figure(result.figure(), out / "steering.png")
    print("\n" + steering.comparison_markdown(result))
    print("\nablations:\n" + steering.comparison_markdown(result, result.tables["arms"]))
    return result


# --------------------------------------------------------------------------------------------------
# seal: every step


def _seal_arguments(parser: argparse.ArgumentParser) -> None:
    _common_arguments(parser)
    _states_only_arguments(parser)
    _steering_only_arguments(parser)


@command(
    "seal",
    "the whole SEAL study: thoughts, thought states + vectors, steering (e.g. --model /path/to/R1)",
    _seal_arguments,
)
def seal_command(args: argparse.Namespace) -> None:
    _check_arguments(args)
    model = load_from_args(args)
    _thoughts(args, model)
    _thought_states(args, model)
    _steering(args, model)
