"""Subcommands `python -m interp train` and `python -m interp reft-compare`."""

from __future__ import annotations

import argparse
from pathlib import Path

from interp.cli.common import (
    add_model_arguments,
    add_scale_out_arguments,
    check_input_file,
    command,
    finite_float,
    fraction,
    input_folder,
    ints,
    load_from_args,
    model_folder_name,
    non_negative_float,
    non_negative_int,
    output_folder,
    output_folder_for,
    positive_float,
    positive_int,
    scale_out_from_args,
    strings,
)
from interp.figures.common import save_figure

EDIT_KINDS = ("red", "loreft", "direft", "lora")


def _train_arguments(parser: argparse.ArgumentParser) -> None:
    # bfloat16 where the hardware has it: a RED's loss curve on smollm2 and on the toy adder
    # stays within the seed-to-seed spread of float32 (README: the agreement table); the edit's
    # parameters, the loss and the optimizer state stay float32
    add_model_arguments(parser, dtype_default="auto")
    parser.add_argument(
        "--out",
        type=output_folder,
        default=None,
        help="checkpoint + history folder (default: runs/train/MODEL)",
    )
    parser.add_argument("--edit", choices=EDIT_KINDS, default="red")
    parser.add_argument(
        "--hook",
        default=None,
        help="hook inside each block (default: red mlp.hook_pre_linear, loreft/direft "
        "hook_resid_post)",
    )
    parser.add_argument("--layers", type=ints, default=None, help="e.g. 0,4,8 (default: all)")
    parser.add_argument("--rank", type=positive_int, default=4, help="LoReFT/DiReFT/LoRA rank")
    parser.add_argument("--lora-modules", type=strings, default=("q_proj", "v_proj"))
    parser.add_argument("--data", default="gsm8k", help="'gsm8k' (train split) or a JSONL path")
    parser.add_argument("--prompt-field", default="prompt", help="JSONL field of the prompt")
    parser.add_argument("--answer-field", default="answer", help="JSONL field of the answer")
    parser.add_argument(
        "--n-train", type=positive_int, default=256, help="GSM8K examples (seeded draw)"
    )
    parser.add_argument("--max-answer-tokens", type=positive_int, default=None)
    parser.add_argument("--lr", type=positive_float, default=1e-3)
    parser.add_argument("--epochs", type=positive_int, default=1)
    parser.add_argument("--max-steps", type=positive_int, default=None, help="at least 1")
    parser.add_argument("--batch-size", type=positive_int, default=4)
    parser.add_argument("--grad-accum", type=positive_int, default=1)
    parser.add_argument("--warmup-ratio", type=fraction, default=0.1)
    parser.add_argument("--weight-decay", type=non_negative_float, default=0.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--prefix-tokens",
        type=positive_int,
        default=None,
        help="loss on the first K answer tokens only",
    )
    parser.add_argument("--full-share", type=fraction, default=0.0, help="full answers kept")
    parser.add_argument(
        "--train-prefix",
        type=non_negative_int,
        default=None,
        help="edit only the prompt + first k answer tokens in training (default: all tokens)",
    )
    parser.add_argument(
        "--bias-control", choices=("none", "loss_scale", "penalty", "lr"), default="none"
    )
    parser.add_argument("--bias-target", type=positive_float, default=0.54)
    parser.add_argument("--pid", type=finite_float, nargs=3, default=(0.1, 1e-4, 0.01), metavar="K")
    parser.add_argument("--pid-smoothing", type=non_negative_float, default=5.0)
    parser.add_argument("--pid-interval", type=positive_int, default=4)
    parser.add_argument("--pid-bounds", type=non_negative_float, nargs=2, default=None, metavar="W")
    parser.add_argument(
        "--save-every", type=positive_int, default=8, help="steps between resume states"
    )


@command(
    "train", "train an edit (RED, LoReFT, DiReFT) or a LoRA on a frozen model", _train_arguments
)
def train_command(args: argparse.Namespace) -> None:
    from interp.core.positions import AllPositions, PromptAndFirstGenerated
    from interp.distributed import data_parallel
    from interp.interventions import RED, DiReFT, Edit, LoReFT
    from interp.interventions.lora import LoRA
    from interp.training import checkpoints
    from interp.training.data import gsm8k_pairs, load_pairs_jsonl
    from interp.training.pid import BiasControl
    from interp.training.trainer import TrainConfig, train

    if args.data != "gsm8k":
        check_input_file(args.data)
    if args.pid_bounds and args.pid_bounds[0] > args.pid_bounds[1]:
        raise ValueError(f"--pid-bounds MIN MAX: MIN is above MAX ({args.pid_bounds})")
    out = output_folder_for(args, "runs/train")
    # under torchrun: one rank per process, each a slice of every batch (interp.distributed)
    if data_parallel.init_from_environment():
        args.device = data_parallel.local_device(args.device)
    model = load_from_args(args)
    if args.data == "gsm8k":
        pairs = gsm8k_pairs(model.tokenizer, n=args.n_train, seed=args.seed)
    else:
        pairs = load_pairs_jsonl(args.data, args.prompt_field, args.answer_field)
    control = None
    if args.bias_control != "none":
        bounds = args.pid_bounds or (None, None)
        kp, ki, kd = args.pid
        control = BiasControl(
            form=args.bias_control,
            target=args.bias_target,
            kp=kp,
            ki=ki,
            kd=kd,
            smoothing=args.pid_smoothing,
            interval=args.pid_interval,
            min_weight=bounds[0],
            max_weight=bounds[1],
        )
    config = TrainConfig(
        learning_rate=args.lr,
        weight_decay=args.weight_decay,
        warmup_ratio=args.warmup_ratio,
        epochs=args.epochs,
        max_steps=args.max_steps,
        batch_size=args.batch_size,
        grad_accum=args.grad_accum,
        seed=args.seed,
        prefix_tokens=args.prefix_tokens,
        full_share=args.full_share,
        max_answer_tokens=args.max_answer_tokens,
        bias_control=control,
        save_every=args.save_every,
    )
    n_layers = int(model.cfg.n_layers)
    layers = list(args.layers) if args.layers else list(range(n_layers))
    if max(layers) >= n_layers:
        raise ValueError(
            f"--layers {max(layers)} is out of range: this model has layers 0..{n_layers - 1}"
        )
    rule = (
        AllPositions() if args.train_prefix is None else PromptAndFirstGenerated(args.train_prefix)
    )
    kwargs = {}
    if args.edit == "lora":
        kwargs["lora"] = LoRA.for_model(
            model, modules=args.lora_modules, layers=layers, rank=args.rank, seed=args.seed
        )
    else:
        hook = args.hook or ("mlp.hook_pre_linear" if args.edit == "red" else "hook_resid_post")
        width = model.cfg.d_mlp if hook.startswith("mlp.") else model.cfg.d_model
        make = {
            "red": lambda: RED(width),
            "loreft": lambda: LoReFT(width, args.rank),
            "direft": lambda: DiReFT(width, args.rank),
        }[args.edit]
        kwargs["edit_list"] = [Edit(f"blocks.{layer}.{hook}", make(), rule) for layer in layers]
    result = train(model, pairs, config=config, state_dir=out / "state", **kwargs)
    if data_parallel.rank() != 0:
        return  # every rank holds the same edit; rank 0 writes it
    checkpoints.save(out / "checkpoint", model, result=result, **kwargs)
    result.save(out / "history")
    last = result.history[-1]
    ranks = result.meta["world_size"]
    where = f" over {ranks} processes" if ranks > 1 else ""
    norm = f", mean bias norm {last['bias_norm']:.3f}" if "bias_norm" in last else ""
    print(
        f"trained {args.edit} on {len(pairs)} pairs, {len(result.history)} steps in "
        f"{result.meta['seconds']:.0f} s{where}: final loss {last['loss']:.3f}{norm}\n"
        f"checkpoint: {out / 'checkpoint'}  (python -m interp generate --edits {out / 'checkpoint'})"
    )


def _reft_compare_arguments(parser: argparse.ArgumentParser) -> None:
    from interp.analyses.reft_compare import EVAL_ARMS, TRAINED_ARMS, ReftCompareConfig

    defaults = ReftCompareConfig()
    # bfloat16 where the hardware has it: training and GSM8K accuracy agree with float32 within
    # noise (README: the agreement table)
    add_model_arguments(parser, dtype_default="auto")
    add_scale_out_arguments(parser)  # the arms' decoding on Ray workers
    parser.add_argument(
        "--out", type=output_folder, default=None, help="default: runs/reft_compare/MODEL"
    )
    parser.add_argument("--n-train", type=positive_int, default=defaults.n_train)
    parser.add_argument(
        "--max-answer-tokens", type=positive_int, default=defaults.max_answer_tokens
    )
    parser.add_argument("--batch-size", type=positive_int, default=defaults.batch_size)
    parser.add_argument("--grad-accum", type=positive_int, default=defaults.grad_accum)
    parser.add_argument("--epochs", type=positive_int, default=defaults.epochs)
    parser.add_argument("--red-hook", default=defaults.red_hook)
    parser.add_argument("--red-lr", type=positive_float, default=defaults.red_lr)
    parser.add_argument("--prefix-tokens", type=positive_int, default=defaults.prefix_tokens)
    parser.add_argument("--full-share", type=fraction, default=defaults.full_share)
    parser.add_argument("--decode-prefix", type=non_negative_int, default=defaults.decode_prefix)
    parser.add_argument("--bias-target", type=positive_float, default=defaults.bias_target)
    parser.add_argument("--kl-budget", type=non_negative_float, default=defaults.kl_budget)
    parser.add_argument("--lora-rank", type=positive_int, default=defaults.lora_rank)
    parser.add_argument("--lora-lr", type=positive_float, default=defaults.lora_lr)
    parser.add_argument("--loreft-rank", type=positive_int, default=defaults.loreft_rank)
    parser.add_argument("--loreft-lr", type=positive_float, default=defaults.loreft_lr)
    parser.add_argument("--n-eval", type=positive_int, default=defaults.n_eval)
    parser.add_argument("--eval-seed", type=int, default=defaults.eval_seed)
    parser.add_argument("--train-seed", type=int, default=defaults.train_seed)
    parser.add_argument("--max-new-tokens", type=positive_int, default=defaults.max_new_tokens)
    parser.add_argument("--eval-batch-size", type=positive_int, default=defaults.eval_batch_size)
    parser.add_argument(
        "--arms",
        type=strings,
        default=defaults.eval_arms,
        help=f"arms to decode, comma separated (default: {','.join(EVAL_ARMS)})",
    )
    parser.add_argument(
        "--trained-arms",
        type=strings,
        default=defaults.trained_arms,
        help=f"arms to train even if not decoded (default: {','.join(TRAINED_ARMS)})",
    )
    parser.add_argument(
        "--probe-dir",
        type=input_folder,
        default=None,
        help="number-probe output of this model (probe/, sweep/): project each trained RED",
    )


@command(
    "reft-compare",
    "train RED / prefix RED / PID / LoRA / LoReFT and compare GSM8K accuracy and tokens",
    _reft_compare_arguments,
)
def reft_compare_command(args: argparse.Namespace) -> None:
    from interp.analyses import reft_compare
    from interp.analyses.reft_compare import EVAL_ARMS, TRAINED_ARMS
    from interp.figures.training import bias_trajectories_figure
    from interp.storage import is_saved

    unknown = (set(args.arms) - set(EVAL_ARMS) - set(TRAINED_ARMS)) | (
        set(args.trained_arms) - set(TRAINED_ARMS)
    )
    if unknown:
        raise ValueError(f"unknown arms {sorted(unknown)}; known: {EVAL_ARMS + TRAINED_ARMS}")
    scale_out = scale_out_from_args(args)
    out = output_folder_for(args, "runs/reft_compare")
    model = load_from_args(args)
    probe_dir = args.probe_dir
    default_probe_dir = Path("runs/number_probe") / model_folder_name(args.model)
    if probe_dir is None and is_saved(default_probe_dir / "sweep"):
        probe_dir = default_probe_dir
    if probe_dir is not None:
        from interp.analyses.number_probe import NumberProbeResult
        from interp.models import model_name

        probe_model = NumberProbeResult.load(Path(probe_dir) / "probe").meta.get("model")
        if probe_model != model_name(model):
            print(f"(skipping projections: {probe_dir} holds probes of {probe_model})")
            probe_dir = None
    result = reft_compare.run(
        model,
        out=out,
        probe_dir=probe_dir,
        n_train=args.n_train,
        train_seed=args.train_seed,
        max_answer_tokens=args.max_answer_tokens,
        epochs=args.epochs,
        batch_size=args.batch_size,
        grad_accum=args.grad_accum,
        red_hook=args.red_hook,
        red_lr=args.red_lr,
        prefix_tokens=args.prefix_tokens,
        full_share=args.full_share,
        decode_prefix=args.decode_prefix,
        bias_target=args.bias_target,
        kl_budget=args.kl_budget,
        lora_rank=args.lora_rank,
        lora_lr=args.lora_lr,
        loreft_rank=args.loreft_rank,
        loreft_lr=args.loreft_lr,
        n_eval=args.n_eval,
        eval_seed=args.eval_seed,
        max_new_tokens=args.max_new_tokens,
        eval_batch_size=args.eval_batch_size,
        eval_arms=args.arms,
        trained_arms=args.trained_arms,
        **scale_out,
    )
    print(result.markdown())
    try:
        figure = bias_trajectories_figure(out)
    except FileNotFoundError:
        return
    save_figure(figure, out / "bias_control.png")


def _pid_compare_arguments(parser: argparse.ArgumentParser) -> None:
    # adder4 (toy task) or a chat model; bfloat16 where the hardware has it, as `train`
    add_model_arguments(parser, default="adder4", dtype_default="auto")
    parser.add_argument(
        "--out", type=output_folder, default=None, help="default: runs/pid_compare/MODEL"
    )
    parser.add_argument("--forms", type=strings, default=("none", "loss_scale", "penalty", "lr"))
    parser.add_argument(
        "--target", type=positive_float, default=None, help="default: 0.5 adder, 0.54 else"
    )
    parser.add_argument("--hook", default="hook_mlp_out")
    parser.add_argument("--n-train", type=positive_int, default=64)
    parser.add_argument(
        "--lr", type=positive_float, default=None, help="default: 2e-2 adder, 2e-3 else"
    )
    parser.add_argument("--epochs", type=positive_int, default=12)
    parser.add_argument("--batch-size", type=positive_int, default=8)
    parser.add_argument("--prefix-tokens", type=positive_int, default=None)
    parser.add_argument("--seed", type=int, default=0)


@command(
    "pid-compare",
    "train one RED per bias-control form (none, BREP's loss_scale, penalty, lr) and compare the norms",
    _pid_compare_arguments,
)
def pid_compare_command(args: argparse.Namespace) -> None:
    from interp.figures.training import bias_control_figure
    from interp.training.data import gsm8k_pairs
    from interp.training.pid_comparison import adder_suffix_pairs, compare_forms, summary_rows

    unknown = set(args.forms) - {"none", "loss_scale", "penalty", "lr"}
    if unknown:
        raise ValueError(f"unknown --forms {sorted(unknown)}; use none, loss_scale, penalty, lr")
    out = output_folder_for(args, "runs/pid_compare")
    model = load_from_args(args)
    toy = args.model == "adder4"
    target = args.target if args.target is not None else (0.5 if toy else 0.54)
    if toy:
        pairs, held_out = adder_suffix_pairs(args.n_train, args.seed), adder_suffix_pairs(64, 1)
    else:
        drawn = gsm8k_pairs(model.tokenizer, n=args.n_train + 16, seed=args.seed)
        pairs, held_out = drawn[: args.n_train], drawn[args.n_train :]
    runs = compare_forms(
        model,
        pairs,
        held_out=held_out,
        forms=args.forms,
        target=target,
        hook=args.hook,
        out=out,
        progress=True,
        learning_rate=args.lr if args.lr is not None else (2e-2 if toy else 2e-3),
        epochs=args.epochs,
        batch_size=args.batch_size,
        prefix_tokens=args.prefix_tokens,
        seed=args.seed,
    )
    print("form        final norm  mean |norm-target| (last 24)  final weight  held-out loss")
    for row in summary_rows(runs, target):
        weight = "-" if row["final_weight"] is None else f"{row['final_weight']:.3g}"
        print(
            f"{row['form']:<11} {row['final_bias_norm']:10.3f}  {row['mean_abs_error_tail']:28.3f}"
            f"  {weight:>12}  {row['held_out_loss']:13.3f}"
        )
    labels = {
        "none": "no control",
        "loss_scale": "PID, BREP's form (weight scales the CE)",
        "penalty": "PID, penalty form (weight of a hinge norm penalty)",
        "lr": "PID, learning-rate form",
    }
    figure = bias_control_figure({labels[k]: v for k, v in runs.items()}, target=target)
    save_figure(figure, out / "bias_control.png")
