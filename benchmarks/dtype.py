"""bfloat16 against float32, side by side in one run: the machine's peak and five analyses.

The same model is loaded twice (float32 and bfloat16) and every part runs both, taking turns
(f32 bf16, f32 bf16, ...), so load from other processes on a shared machine hits both alike. No
absolute time is a claim: the table gives, per part, the best and median time of each dtype, the
speed-up (median over repetitions of the ratio float32 / bfloat16 of the same round, and the ratio
of the best times), the achieved GFLOP/s of each dtype and its share of that dtype's peak measured
in the same run, and how far the bfloat16 answers agree with the float32 ones.

Parts (`--parts`, e.g. `--parts 1,4`):

    1 peak      a large matrix product (`F.linear`, weight [4096, 4096] on N rows, N from
                `--peak-rows`, and the issue's [18944, 3584] on 32 rows); a dtype's peak is its best
                GFLOP/s over these shapes
    2 probe     the number probe's activations: one forward per batch over chat addition prompts
                reading resid_post at every layer (`interp.probes.activations_at`, set up exactly as
                `number_probe.run` does, shared prompt prefix once); agreement: mean cosine of the
                bfloat16 to the float32 activations, worst layer
    3 sweep     the push sweep (`PushSweep` as benchmarks/number_sweep.py uses it, the probe fitted
                once in float32 and used by both); agreement: share of identical (problem,
                strength) outcomes (correct and direction of the error)
    4 decode    greedy `interp.generate` on GSM8K chat prompts (`interp.data.math_prompts`),
                `--new-tokens` each, EOS ignored, at batch 1 and at `--decode-batch`; tokens/s and
                the share of identical output tokens (position by position) and of identical rows
    5 train     one RED training step on every layer (as benchmarks/training_step.py: the runner's
                forward, float32 answer loss, backward into the edits, clipping, AdamW), the same
                batch of GSM8K pairs; agreement: the largest loss difference at the same step

FLOPs counted (useful work, the same count for both dtypes): 2 x parameters x tokens for a forward,
where parameters are the weight matrices of the blocks (biases, norms and attention scores left
out) and tokens are the real tokens fed (a shared prompt prefix once, padding not counted), plus
2 x d_model x vocabulary per position the unembedding runs at (counted by a hook on the output
embedding, or from the kept columns where the sweep screens its argmax). A training step with frozen
weights counts twice its forward (the backward computes input gradients only). Padding, attention
and the decoding loop's own work are therefore overhead in these numbers, not work.

    python benchmarks/dtype.py --model smollm2-135m-instruct --repeats 1 --probe-problems 8 \\
        --sweep-problems 8 --decode-prompts 1 --decode-batch 2 --new-tokens 4 --train-batch 1
    python benchmarks/dtype.py --model qwen2.5-coder-0.5b-instruct     # the measurement
"""

from __future__ import annotations

import argparse
import math
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from timing import interleaved_times

from interp.analyses import number_probe
from interp.core.digit_answers import PushSweep
from interp.core.runner import shared_prefix_length
from interp.data.arithmetic import (
    addition_problems,
    digit_token_ids,
    encode_problems,
    with_prompt_template,
)
from interp.data.math_prompts import chat_prompt
from interp.data.math_sets import load_gsm8k, subset
from interp.decoding import generate
from interp.interventions import RED, Edit, PushAlong
from interp.models import load_model
from interp.probes import activations_at, layer_hooks
from interp.training.data import encode_pairs, gsm8k_pairs
from interp.training.masks import make_batch
from interp.training.trainer import answer_loss, attached, frozen, trainable_parameters

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}
PARTS = {1: "peak", 2: "probe", 3: "sweep", 4: "decode", 5: "train"}


@dataclass
class Row:
    """One line of the table: every time of each dtype, the useful FLOPs of one call, agreement."""

    part: str
    times: dict[str, list[float]]
    flops: float | None = None
    agreement: str = ""
    is_peak: bool = False
    notes: list[str] = field(default_factory=list)

    def best(self, dtype: str) -> float:
        return min(self.times[dtype])

    def median(self, dtype: str) -> float:
        return statistics.median(self.times[dtype])

    def gflops(self, dtype: str) -> float | None:
        return None if self.flops is None else self.flops / self.best(dtype) / 1e9

    def speedups(self) -> tuple[float, float]:
        """Median of the per-round ratios float32 / bfloat16, and the ratio of the best times."""
        rounds = [a / b for a, b in zip(self.times["float32"], self.times["bfloat16"])]
        return statistics.median(rounds), self.best("float32") / self.best("bfloat16")


class Counter:
    """Counts the positions a module runs on (rows of its input), through a forward hook."""

    def __init__(self, module: torch.nn.Module | None):
        self.positions = 0
        self.handle = None if module is None else module.register_forward_hook(self._count)

    def _count(self, module, inputs, output) -> None:
        x = inputs[0]
        self.positions += x.numel() // x.shape[-1]

    def take(self) -> int:
        n, self.positions = self.positions, 0
        return n


class Model:
    """One loaded model and what the FLOP counts need of it."""

    def __init__(self, name: str, dtype: torch.dtype):
        self.bridge = load_model(name, dtype=dtype)
        hf = self.bridge.original_model
        embed, unembed = hf.get_input_embeddings(), hf.get_output_embeddings()
        skip = {id(embed.weight)} | ({id(unembed.weight)} if unembed is not None else set())
        self.block_params = sum(
            p.numel() for p in hf.parameters() if p.dim() == 2 and id(p) not in skip
        )
        cfg = self.bridge.cfg
        self.unembed_params = cfg.d_model * cfg.d_vocab
        self.unembedded = Counter(unembed)

    def forward_flops(self, tokens: int, unembedded: int) -> float:
        return 2.0 * (self.block_params * tokens + self.unembed_params * unembedded)


def run_side_by_side(
    repeats: int, functions: dict[str, Callable[[], object]], warmup: int
) -> dict[str, list[float]]:
    for _ in range(warmup):
        for function in functions.values():
            function()
    return interleaved_times(repeats, functions)


# ----------------------------------------------------------------------------------------------
# 1. the machine's peak
# ----------------------------------------------------------------------------------------------


def peak_rows(args) -> list[Row]:
    shapes = [(4096, 4096, n) for n in args.peak_rows] + [(18944, 3584, 32)]
    rows = []
    for out_features, in_features, n in shapes:
        generator = torch.Generator().manual_seed(0)
        w32 = torch.randn(out_features, in_features, generator=generator) / in_features**0.5
        x32 = torch.randn(n, in_features, generator=generator)
        data = {name: (w32.to(dtype), x32.to(dtype)) for name, dtype in DTYPES.items()}
        flops_per_call = 2.0 * out_features * in_features * n
        start = time.perf_counter()
        F.linear(data["float32"][1], data["float32"][0])
        once = time.perf_counter() - start
        inner = max(1, math.ceil(0.25 / max(once, 1e-6)))  # each timing at least ~0.25 s

        def product(name: str, inner: int = inner, data: dict = data) -> Callable[[], None]:
            w, x = data[name]

            def call() -> None:
                for _ in range(inner):
                    F.linear(x, w)

            return call

        times = run_side_by_side(
            max(args.repeats, 5), {name: product(name) for name in DTYPES}, warmup=1
        )
        rows.append(
            Row(
                f"peak [{n}x{in_features}]@[{in_features}x{out_features}]",
                times,
                flops=flops_per_call * inner,
                is_peak=True,
            )
        )
    return rows


# ----------------------------------------------------------------------------------------------
# 2. number-probe activations
# ----------------------------------------------------------------------------------------------


def probe_row(models: dict[str, Model], args) -> Row:
    m = models["float32"].bridge
    config = with_prompt_template(
        number_probe.NumberProbeConfig(n_problems=args.probe_problems), m.tokenizer
    )
    problems = addition_problems(config.n_problems, config.digits, seed=config.seed)
    encoded = encode_problems(problems, m.tokenizer, config.style)
    sequences = [e.prompt for e in encoded]
    positions = [[e.position(p) for p in config.positions] for e in encoded]
    hooks = layer_hooks(m, config.layers, config.site)
    earliest = min(min(p) for p in positions)
    shared = shared_prefix_length(sequences, earliest)
    tokens = shared + sum(len(s) - shared for s in sequences)
    padded = shared + sum(
        len(sequences[i : i + config.batch_size])
        * max(len(s) - shared for s in sequences[i : i + config.batch_size])
        for i in range(0, len(sequences), config.batch_size)
    )
    out: dict[str, torch.Tensor] = {}

    def read(name: str) -> Callable[[], None]:
        def call() -> None:
            models[name].unembedded.take()
            out[name] = activations_at(
                models[name].bridge, sequences, positions, hooks, batch_size=config.batch_size
            )
            out[name + "/unembedded"] = models[name].unembedded.take()

        return call

    times = run_side_by_side(args.repeats, {n: read(n) for n in DTYPES}, args.warmup)
    cosine = F.cosine_similarity(out["float32"], out["bfloat16"], dim=-1)  # [layer, n, pos]
    per_layer = cosine.mean(dim=(1, 2))
    worst = int(per_layer.argmin())
    unembedded = out["float32/unembedded"]
    row = Row(
        "probe activations",
        times,
        flops=models["float32"].forward_flops(tokens, unembedded),
        agreement=f"cos {float(per_layer.min()):.4f} (layer {worst})",
    )
    row.notes.append(
        f"probe: {len(sequences)} prompts ({config.style}), batch {config.batch_size}, "
        f"{tokens} real tokens (shared prefix {shared} once), {padded} fed with padding "
        f"({1 - tokens / padded:.0%} padding), unembedding at {unembedded} positions"
    )
    return row


# ----------------------------------------------------------------------------------------------
# 3. push sweep
# ----------------------------------------------------------------------------------------------


def sweep_row(models: dict[str, Model], args) -> Row:
    m = models["float32"].bridge
    probe = number_probe.run(
        m, n_problems=args.sweep_probe_problems, style=args.style, digits=(1, 2, 3)
    )
    layer = probe.best_layer()
    direction, unit = probe.direction(layer), probe.unit_length(layer)
    encoded = encode_problems(
        addition_problems(args.sweep_problems, args.sweep_digits, seed=11),
        m.tokenizer,
        probe.config.style,
    )
    digit_ids = digit_token_ids(m.tokenizer)
    strengths = args.strengths

    def push(amounts):
        return Edit(f"blocks.{layer}.hook_resid_post", PushAlong(direction, amounts, unit))

    out: dict[str, list] = {}

    def sweep(name: str) -> Callable[[], None]:
        def call() -> None:
            s = PushSweep(models[name].bridge, encoded, digit_ids, push, layer)
            out[name] = s.outcomes(strengths)
            out[name + "/block"] = s.block

        return call

    times = run_side_by_side(args.repeats, {n: sweep(n) for n in DTYPES}, args.warmup)
    same = total = 0
    for a, b in zip(out["float32"], out["bfloat16"]):
        same += int(((a.correct == b.correct) & (a.moved == b.moved)).sum())
        total += len(a.correct)
    # FLOPs (estimate): blocks below the push once over all tokens, blocks from the push up once
    # per strength, the unembedding at the last (longest answer + 1) columns of each row.
    sequences = [e.prompt + e.answer for e in encoded]
    shared = shared_prefix_length(sequences, min(len(e.prompt) for e in encoded))
    tokens = shared + sum(len(s) - shared for s in sequences)
    n_layers, block = m.cfg.n_layers, out["float32/block"]
    per_layer = models["float32"].block_params / n_layers
    kept = len(encoded) * (1 + max(len(e.answer) for e in encoded))
    flops = 2.0 * per_layer * tokens * (block + (n_layers - block) * len(strengths))
    flops += 2.0 * models["float32"].unembed_params * kept * len(strengths)
    correct = [int(o.correct.sum()) for o in out["float32"]]
    row = Row(
        "push sweep",
        times,
        flops=flops,
        agreement=f"{same / total:.1%} of {total} outcomes",
    )
    row.notes.append(
        f"sweep: {len(encoded)} {args.sweep_digits}-digit problems x {len(strengths)} strengths "
        f"{strengths}, push at layer {layer} (blocks {block}.. rerun per strength), float32 "
        f"correct per strength {correct}, bfloat16 "
        f"{[int(o.correct.sum()) for o in out['bfloat16']]}; FLOPs an estimate"
    )
    return row


# ----------------------------------------------------------------------------------------------
# 4. GSM8K decoding
# ----------------------------------------------------------------------------------------------


def decode_row(models: dict[str, Model], args, batch: int, n_prompts: int) -> Row:
    m = models["float32"].bridge
    problems = subset(load_gsm8k("test"), n_prompts, seed=0)
    prompts = [chat_prompt(p, m.tokenizer) for p in problems]
    out = {}

    def decode(name: str) -> Callable[[], None]:
        def call() -> None:
            models[name].unembedded.take()
            out[name] = generate(
                models[name].bridge,
                prompts,
                max_new_tokens=args.new_tokens,
                do_sample=False,
                stop_at_eos=False,
                batch_size=batch,
            )
            out[name + "/unembedded"] = models[name].unembedded.take()

        return call

    times = run_side_by_side(args.repeats, {n: decode(n) for n in DTYPES}, args.warmup)
    a, b = out["float32"], out["bfloat16"]
    pairs = [(x, y) for r, s in zip(a.tokens, b.tokens) for x, y in zip(r, s)]
    same = sum(x == y for x, y in pairs) / max(1, len(pairs))
    rows_same = sum(r == s for r, s in zip(a.tokens, b.tokens))
    new = sum(a.n_generated)
    prompt_tokens = sum(len(p) for p in a.prompt_tokens)
    unembedded = out["float32/unembedded"]
    row = Row(
        f"decode batch {batch}",
        times,
        flops=models["float32"].forward_flops(prompt_tokens + new, unembedded),
        agreement=f"{same:.1%} tokens, {rows_same}/{len(prompts)} rows",
    )
    tps = {name: new / row.best(name) for name in DTYPES}
    row.notes.append(
        f"decode batch {batch}: {len(prompts)} GSM8K prompts ({prompt_tokens} prompt tokens), "
        f"{args.new_tokens} new tokens each; tokens/s (best) float32 {tps['float32']:.1f}, "
        f"bfloat16 {tps['bfloat16']:.1f}"
    )
    return row


# ----------------------------------------------------------------------------------------------
# 5. RED training step
# ----------------------------------------------------------------------------------------------


def train_row(models: dict[str, Model], args) -> Row:
    m = models["float32"].bridge
    pairs = gsm8k_pairs(m.tokenizer, n=args.train_batch, seed=0)
    encoded = encode_pairs(pairs, m.tokenizer, max_answer_tokens=args.max_answer_tokens)
    batch = make_batch(encoded, [len(p.answer_ids) for p in encoded], m.tokenizer.pad_token_id)
    keep = batch.loss_mask.any(0).nonzero()[:, 0]
    state = {}
    for name in DTYPES:
        torch.manual_seed(0)
        red = [
            Edit(f"blocks.{layer}.mlp.hook_pre_linear", RED(m.cfg.d_mlp))
            for layer in range(m.cfg.n_layers)
        ]
        params = trainable_parameters(red)
        state[name] = (red, params, torch.optim.AdamW(params, lr=args.lr), [])

    def step(name: str) -> Callable[[], None]:
        red, params, optimizer, losses = state[name]
        model = models[name].bridge

        def call() -> None:
            with frozen(model), attached(model, red):
                optimizer.zero_grad(set_to_none=True)
                loss = answer_loss(model, batch)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(params, 1.0)
                optimizer.step()
            losses.append(float(loss.detach()))

        return call

    times = run_side_by_side(args.repeats, {n: step(n) for n in DTYPES}, args.warmup)
    l32, l16 = state["float32"][3], state["bfloat16"][3]
    worst = max(abs(a - b) for a, b in zip(l32, l16))
    tokens = int(batch.attention_mask.sum())
    unembedded = len(keep) * batch.tokens.shape[0]
    row = Row(
        "RED train step",
        times,
        flops=2 * models["float32"].forward_flops(tokens, unembedded),
        agreement=f"|dloss| <= {worst:.4f} (loss {l32[0]:.3f})",
    )
    row.notes.append(
        f"train: batch {tuple(batch.tokens.shape)}, {tokens} real tokens "
        f"({1 - tokens / batch.tokens.numel():.0%} padding), {int(batch.loss_mask.sum())} answer "
        f"tokens; losses float32 {[round(x, 4) for x in l32]}, bfloat16 {[round(x, 4) for x in l16]}"
    )
    return row


# ----------------------------------------------------------------------------------------------


def print_table(rows: list[Row]) -> None:
    peaks = {
        name: max((r.gflops(name) for r in rows if r.is_peak), default=None) for name in DTYPES
    }

    def rate(r: Row, name: str) -> str:
        g = r.gflops(name)
        if g is None:
            return "-"
        share = f" ({g / peaks[name]:4.0%})" if peaks[name] else ""
        return f"{g:7.1f}{share}"

    header = (
        f"{'part':34} {'f32 best/med s':>15} {'bf16 best/med s':>16} {'speed-up':>8} "
        f"{'(best)':>6}  {'f32 GFLOP/s (peak)':>18}  {'bf16 GFLOP/s (peak)':>19}  agreement"
    )
    print(header)
    print("-" * len(header))
    for r in rows:
        median, best = r.speedups()
        print(
            f"{r.part:34} {r.best('float32'):7.3f}/{r.median('float32'):<7.3f} "
            f"{r.best('bfloat16'):8.3f}/{r.median('bfloat16'):<7.3f} {median:7.2f}x "
            f"{best:5.2f}x  {rate(r, 'float32'):>18}  {rate(r, 'bfloat16'):>19}  {r.agreement}"
        )
    for name, value in peaks.items():
        if value:
            print(f"peak {name}: {value:.1f} GFLOP/s (best over the peak rows)")
    for r in rows:
        for note in r.notes:
            print("  " + note)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ints = lambda text: [int(x) for x in text.split(",") if x]  # noqa: E731
    parser.add_argument("--model", default="qwen2.5-coder-0.5b-instruct")
    parser.add_argument("--parts", type=ints, default=[1, 2, 3, 4, 5], help="e.g. 1,2,4")
    parser.add_argument("--repeats", type=int, default=2, help="rounds of (float32, bfloat16)")
    parser.add_argument("--warmup", type=int, default=0, help="untimed rounds before each part")
    parser.add_argument(
        "--threads", type=int, default=None, help="torch threads (default: torch's)"
    )
    parser.add_argument("--peak-rows", type=ints, default=[32, 256, 1024])
    parser.add_argument("--probe-problems", type=int, default=32)
    parser.add_argument("--style", default=None, help="arithmetic prompt style (default: chat)")
    parser.add_argument("--sweep-probe-problems", type=int, default=48, help="to fit the probe")
    parser.add_argument("--sweep-problems", type=int, default=32)
    parser.add_argument("--sweep-digits", type=int, default=3)
    parser.add_argument(
        "--strengths",
        type=lambda t: [float(x) for x in t.split(",")],
        default=[-1.0, -0.3, 0.0, 0.3, 1.0],
    )
    parser.add_argument("--decode-prompts", type=int, default=2, help="prompts at batch 1")
    parser.add_argument("--decode-batch", type=int, default=16, help="the second batch size")
    parser.add_argument("--new-tokens", type=int, default=32)
    parser.add_argument("--train-batch", type=int, default=2)
    parser.add_argument("--max-answer-tokens", type=int, default=64)
    parser.add_argument("--lr", type=float, default=1e-3)
    args = parser.parse_args()
    unknown = set(args.parts) - set(PARTS)
    if unknown:
        parser.error(f"unknown parts {sorted(unknown)}: choose from {PARTS}")
    if args.threads:
        torch.set_num_threads(args.threads)
    start = time.perf_counter()
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, parts "
        f"{[PARTS[p] for p in args.parts]}, {args.repeats} rounds (float32, bfloat16 in turn)"
    )
    rows: list[Row] = []
    if 1 in args.parts:
        rows += peak_rows(args)
    models = {}
    if set(args.parts) - {1}:
        models = {name: Model(args.model, dtype) for name, dtype in DTYPES.items()}
        m = models["float32"]
        print(
            f"model {args.model}: {m.bridge.cfg.n_layers} layers, {m.block_params / 1e6:.1f}M "
            f"block weights, unembedding {m.unembed_params / 1e6:.1f}M"
        )
    for part, build in (
        (2, lambda: [probe_row(models, args)]),
        (3, lambda: [sweep_row(models, args)]),
        (
            4,
            lambda: [
                decode_row(models, args, 1, args.decode_prompts),
                decode_row(models, args, args.decode_batch, args.decode_batch),
            ],
        ),
        (5, lambda: [train_row(models, args)]),
    ):
        if part in args.parts:
            t = time.perf_counter()
            rows += build()
            print(f"  part {PARTS[part]} done in {time.perf_counter() - t:.0f}s", flush=True)
    print()
    print_table(rows)
    print(f"total {time.perf_counter() - start:.0f}s")


if __name__ == "__main__":
    main()
