"""Train the SEAL model organism: a LoRA on smollm2-135m-instruct that writes chains of thought
with known thoughts (`interp.data.reasoning_traces`) at the generator's rates.

The frozen model runs in bfloat16 (the LoRA's parameters, the loss and AdamW stay float32), the
traces are encoded thought by thought around the blank-line token (`interp.models.reasoner`), and
training goes through `interp.training.trainer`, which keeps a resumable state every
`--save-every` steps: run the same command again after an interruption and it continues. The plan
(examples, tokens, steps) and the cost (seconds per step, measured on the first batch) are printed
before training; the held-out rates after it, and the adapter is saved as a "lora" checkpoint.

Reproduce (the shipped adapter, or without --out the cache folder `load_reasoner` also reads):
    python scripts/train_reasoner.py --seed 0 --out interp/assets/reasoner
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import torch

import interp
from interp.core.tokens import pad_token_id
from interp.data.reasoning_traces import (
    N_HELD_OUT,
    TraceConfig,
    generate_traces,
    held_out_problems,
)
from interp.interventions.lora import LoRA
from interp.models.gguf_cache import default_cache_dir
from interp.models.reasoner import (
    BASE_MODEL,
    REASONER_NAME,
    encode_trace,
    measure_rates,
    reasoner_folder,
)
from interp.training import checkpoints
from interp.training.masks import make_batch
from interp.training.trainer import TrainConfig, answer_loss, attached, frozen, train


@dataclass(frozen=True)
class ReasonerConfig:
    """Every knob of a run besides the trace generator's; saved in the checkpoint's meta."""

    seed: int = 0
    n_train: int = 4800  # traces; one epoch of them at --batch-size per step
    batch_size: int = 8
    learning_rate: float = 1e-3
    warmup_ratio: float = 0.05
    rank: int = 8
    alpha: float = 16.0
    modules: str = "q_proj,v_proj,o_proj,up_proj,down_proj"
    first_layer: int = 12  # LoRA on layers first_layer.. only: the backward stops there
    dtype: str = "bfloat16"
    device: str = "cpu"  # "cuda" trains the same run on a GPU in minutes
    save_every: int = 25
    threads: int = 2
    eval_problems: int = 32
    max_steps: int = 0  # 0: one epoch (n_train / batch_size); else stop the schedule here


def parse_args() -> tuple[ReasonerConfig, TraceConfig, Path, Path]:
    """Flags for every field of both configs (`--seed` seeds both), the output and state folders."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=None, help="default: the reasoner cache")
    parser.add_argument(
        "--state", type=Path, default=None, help="default: reasoner-state in the model cache"
    )
    for config in (ReasonerConfig(), TraceConfig()):
        for field in fields(config):
            if isinstance(config, TraceConfig) and field.name == "seed":
                continue
            default = getattr(config, field.name)
            flag = "--" + field.name.replace("_", "-")
            parser.add_argument(flag, type=type(default), default=default)
    args = vars(parser.parse_args())
    out = args.pop("out") or reasoner_folder()
    # the resumable state never goes next to a shipped adapter (it would enter the package)
    state = args.pop("state") or default_cache_dir() / f"{REASONER_NAME}-state"
    names = {f.name for f in fields(ReasonerConfig)}
    config = ReasonerConfig(**{k: v for k, v in args.items() if k in names})
    trace_args = {k: v for k, v in args.items() if k not in names}
    return config, TraceConfig(seed=config.seed, **trace_args), out, state


def seconds_per_step(model, lora: LoRA, encoded, batch_size: int) -> tuple[float, float]:
    """Wall and CPU seconds of one forward + backward on the first batch (gradients discarded):
    the cost estimate. CPU seconds tell what the step costs on a machine shared with others."""
    chosen = encoded[:batch_size]
    batch = make_batch(chosen, [len(p.answer_ids) for p in chosen], pad_token_id(model))
    batch = batch.to(next(model.parameters()).device)
    with frozen(model), attached(model, (), lora):
        answer_loss(model, batch)  # warm-up
        started, cpu_started = time.perf_counter(), time.process_time()
        answer_loss(model, batch).backward()
        seconds, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    lora.zero_grad(set_to_none=True)
    return seconds, cpu


def main() -> None:
    config, trace_config, out, state = parse_args()
    torch.set_num_threads(config.threads)
    model = interp.load_model(BASE_MODEL, device=config.device, dtype=config.dtype)
    held_out = held_out_problems(N_HELD_OUT, trace_config)
    traces = generate_traces(config.n_train, trace_config, exclude=held_out)
    encoded = [encode_trace(model.tokenizer, trace) for trace in traces]
    layers = range(config.first_layer, int(model.cfg.n_layers))
    lora = LoRA.for_model(
        model,
        modules=tuple(config.modules.split(",")),
        layers=layers,
        rank=config.rank,
        alpha=config.alpha,
        seed=config.seed,
    )
    steps = config.max_steps or -(-len(encoded) // config.batch_size)
    tokens = sum(p.length for p in encoded)
    per_step, cpu_per_step = seconds_per_step(model, lora, encoded, config.batch_size)
    n_params = sum(p.numel() for p in lora.parameters())
    print(
        f"plan: {len(encoded)} traces ({tokens} tokens, {tokens / len(encoded):.0f} per trace), "
        f"batch {config.batch_size}, {steps} steps; LoRA rank {config.rank} on "
        f"{config.modules} of layers {config.first_layer}..{model.cfg.n_layers - 1} "
        f"({n_params / 1e6:.2f}M parameters, {4 * n_params / 2**20:.1f} MiB); {config.dtype} model\n"
        f"cost: {per_step:.1f} s per step measured now ({cpu_per_step:.1f} CPU s on "
        f"{config.threads} threads) -> about {steps * per_step / 60:.0f} min at this load, "
        f"{steps * cpu_per_step / config.threads / 60:.0f} min on {config.threads} idle cores "
        f"(resumable: state in {state} every {config.save_every} steps)",
        flush=True,
    )
    train_config = TrainConfig(
        learning_rate=config.learning_rate,
        warmup_ratio=config.warmup_ratio,
        batch_size=config.batch_size,
        max_steps=config.max_steps or None,
        seed=config.seed,
        save_every=config.save_every,
        weight_decay=0.0,
    )
    result = train(model, encoded, lora=lora, config=train_config, state_dir=state)
    history = result.history
    print(
        f"trained {len(history)} steps in {result.meta['seconds'] / 60:.1f} min; loss "
        f"{history[0]['loss']:.3f} -> {sum(r['loss'] for r in history[-10:]) / min(10, len(history)):.3f}"
        f" (mean of the last 10)",
        flush=True,
    )
    rates = None
    if config.eval_problems:
        with lora.applied(model):
            rates = measure_rates(model, held_out[: config.eval_problems], trace_config)
        for row in rates.table():
            print(
                f"{row['rate']:36s} organism {row['organism']:.3f}  generator {row['generator']:.3f}"
            )
    checkpoints.save(
        out,
        model,
        lora=lora,
        result=result,
        organism=asdict(config),
        trace_config=trace_config.to_dict(),
        held_out=N_HELD_OUT,
        held_out_rates=rates.table() if rates is not None else None,
        seconds_per_step=per_step,
        cpu_seconds_per_step=cpu_per_step,
    )
    print(f"saved the adapter to {out}", flush=True)
    if rates is not None:
        print(json.dumps(rates.texts[:2], indent=1))


if __name__ == "__main__":
    main()
