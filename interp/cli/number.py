"""`python -m interp number-probe`: probes, the push sweep (x*), and where an edit lands."""

from __future__ import annotations

import argparse
import json

from interp.cli.common import (
    add_model_arguments,
    add_scale_out_arguments,
    command,
    edit_checkpoint,
    floats,
    ints,
    load_from_args,
    non_negative_float,
    output_folder,
    output_folder_for,
    positive_float,
    positive_int,
    scale_out_from_args,
)
from interp.data.arithmetic import ARITHMETIC_PROMPT_STYLES, with_prompt_template
from interp.figures.common import save_figure
from interp.interventions.random_red import random_red_edits
from interp.results import reuse_or_run, write_json_atomic


def _number_probe_arguments(parser: argparse.ArgumentParser) -> None:
    # float32 by default on purpose, whatever the hardware: on qwen 0.5B bfloat16 activations moved
    # the sum probe's R² at layers 0-3 beyond its seed-to-seed spread and tipped the ridge
    # penalty at the best layer (a 2x longer probe unit), so x* fell from 11.9 to 2.5 units
    # (README: the agreement table)
    add_model_arguments(parser, dtype_default="float32")
    add_scale_out_arguments(parser)  # the push sweep's layers on Ray workers
    parser.add_argument(
        "--out",
        type=output_folder,
        default=None,
        help="output folder (default: runs/number_probe/MODEL)",
    )
    parser.add_argument(
        "--n-problems", type=positive_int, default=2000, help="probe training prompts"
    )
    parser.add_argument("--probe-digits", type=ints, default=(1, 2, 3, 4))
    parser.add_argument(
        "--style",
        default=None,
        choices=ARITHMETIC_PROMPT_STYLES,
        help="prompt style (default: by model)",
    )
    parser.add_argument("--layers", type=ints, default=None, help="push layers, e.g. 6,12")
    parser.add_argument(
        "--strengths", type=floats, default=None, help="push magnitudes (probe units)"
    )
    parser.add_argument(
        "--digits", type=positive_int, default=4, help="digits of the sums in the sweep"
    )
    parser.add_argument("--sweep-problems", type=positive_int, default=300)
    parser.add_argument(
        "--edit",
        type=edit_checkpoint,
        default=None,
        help="edit checkpoint to project (default: random RED)",
    )
    parser.add_argument(
        "--red-bias-norm",
        type=non_negative_float,
        default=0.54,
        help="norm of the random RED's biases",
    )
    parser.add_argument(
        "--float32-confirmation",
        type=positive_float,
        default=None,
        metavar="MARGIN",
        help="with --dtype bfloat16: outcomes within MARGIN logits of flipping are decided again "
        "by a float32 copy (0.5 caught every flip measured on qwen; costs about what bf16 saves "
        "near the break-even pushes). Default: off",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch-size", type=positive_int, default=32)
    parser.add_argument("--no-resume", action="store_true", help="recompute even if results exist")


@command(
    "number-probe",
    "number probes per layer, pushes along the number direction (x*), and where an edit lands",
    _number_probe_arguments,
)
def number_probe_command(args: argparse.Namespace) -> None:
    import torch

    from interp.analyses import perturbation, projection
    from interp.figures.number import combined_figure
    from interp.interventions import load_edits
    from interp.models import dtype_name, model_name
    from interp.models.loading import reload_as

    scale_out = scale_out_from_args(args)
    out = output_folder_for(args, "runs/number_probe")
    model = load_from_args(args)
    if args.edit:  # checked against the model before the probe and the sweep run
        edit_list, description = load_edits(args.edit, model), f"({args.edit})"
    else:
        edit_list = random_red_edits(model, args.red_bias_norm, seed=args.seed)
        description = f"(random RED on every hook_mlp_out, bias norm {args.red_bias_norm})"
    resume = not args.no_resume
    # with --float32-confirmation a bfloat16 run decides its close calls again in float32: one
    # float32 copy for the sweep and the edit check
    margin = args.float32_confirmation
    confirming = margin is not None and model.cfg.dtype != torch.float32
    float32_model = reload_as(model, torch.float32) if confirming else None
    sweep_settings = dict(
        digits=args.digits,
        n_problems=args.sweep_problems,
        style=args.style,
        seed=args.seed + 1,
        batch_size=args.batch_size,
        float32_confirmation_margin=margin,
    )
    if args.layers:
        sweep_settings["layers"] = args.layers
    if args.strengths:
        sweep_settings["strengths"] = args.strengths
    probe, sweep = perturbation.probe_and_sweep(
        model,
        out,
        dict(
            n_problems=args.n_problems,
            digits=args.probe_digits,
            style=args.style,
            seed=args.seed,
            batch_size=args.batch_size,
        ),
        sweep_settings,
        resume=resume,
        float32_model=float32_model,
        **scale_out,
    )
    projection_overrides = dict(
        digits=args.digits, seed=args.seed + 2, edit_description=description
    )
    projection_config = with_prompt_template(
        projection.ProjectionConfig(**projection_overrides), model.tokenizer
    )
    proj = reuse_or_run(
        out / "projection",
        projection.ProjectionResult,
        projection_config,
        lambda: projection.run(model, edit_list, probe, perturbation=sweep, **projection_overrides),
        resume,
        model=model,
    )
    figure = combined_figure(sweep, proj, layer=sweep.layers[0])
    save_figure(figure, out / "number_direction.png")
    effect_path = out / "edit_effect.json"
    settings = dict(
        model=model_name(model),
        edit=description,
        digits=args.digits,
        n_problems=args.sweep_problems,
        seed=args.seed + 1,
        style=args.style,
        dtype=dtype_name(model.cfg.dtype),
        float32_confirmation=margin,
    )
    effect = json.loads(effect_path.read_text()) if resume and effect_path.exists() else None
    if effect is None or effect.get("settings") != settings:
        effect = perturbation.edit_breaks(
            model,
            edit_list,
            digits=args.digits,
            n_problems=args.sweep_problems,
            seed=args.seed + 1,
            style=args.style,
            batch_size=args.batch_size,
            float32_confirmation_margin=margin,
            float32_model=float32_model,
            unedited_correct=sweep.tensors["base_correct"],  # the sweep's problems are these
        )
        effect.update(edit=description, settings=settings)
        write_json_atomic(effect_path, effect)
    _print_summary(probe, sweep, proj)
    print(
        f"the edit {description} breaks {effect['n_broken']} of {effect['n_base_correct']} problems the "
        f"unedited model gets right ({effect['broken_rate']:.1%}, 95% CI {effect['broken_low']:.1%}.."
        f"{effect['broken_high']:.1%})"
    )


def _print_summary(probe, sweep, proj) -> None:
    print("\nlayer  R2(a)   R2(b)   R2(sum)  share of edit beyond x* (layers with a sweep)")
    shares = proj.share_beyond_threshold()
    r2 = {name: probe.r2(name) for name in probe.config.positions}
    for i, layer in enumerate(probe.layers):
        cells = [f"{r2[name][i]:7.3f}" for name in probe.config.positions]
        share = shares.get(layer, float("nan"))
        print(f"{layer:5d} " + " ".join(cells) + ("   -" if share != share else f"   {share:.3f}"))
    for layer in sweep.layers:
        low, high = sweep.x_star_interval(layer)
        print(
            f"x* at layer {layer}: {sweep.x_star(layer):.4g} probe units (95% CI {low:.4g}..{high:.4g}); "
            f"base accuracy {sweep.meta['base_accuracy']:.2%} of {sweep.meta['n_problems']}"
        )
