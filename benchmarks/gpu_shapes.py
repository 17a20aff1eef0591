"""Speed through interp at the real Qwen2.5-0.5B and Qwen2.5-7B shapes, random weights, one GPU.

Speed does not depend on the weights, and the GPU machine can fetch nothing, so each model is
built from its configuration's numbers (written below) with random weights, in bfloat16, booted
through interp's `TransformerBridge`, next to a plain Hugging Face copy with the same weights and
its default attention (the anchor). A filler tokenizer of the full vocabulary stands in for the
real one; prompts are random token ids. Parts (`--parts`):

    decode     greedy decoding, EOS ignored, `--new-tokens` tokens at each batch of `--batches`:
               plain Hugging Face `generate`, the same with a hand-written forward hook adding a
               vector at the middle layer, `interp.generate` with no edit and with that vector as
               an all-positions edit; tokens/s and the ratios to plain `generate`
    bandwidth  the device's copy bandwidth and bf16 matrix rate, measured here, and batch-1
               decoding as a share of them: weight bytes read per token x tokens/s
    sweep      the push sweep (`PushSweep`) on `--sweep-problems` rows with a shared prompt prefix,
               at the middle layer, against full teacher-forced forwards (`greedy_outcomes`)
    train      one RED training step (a RED on every `blocks.L.mlp.hook_pre_linear`, answer loss,
               backward, clipping, AdamW) against a plain forward + backward of the frozen model

Each part prints a table and one line `GPU_SHAPES_RESULT {json}` that scripts/gpu_check.sh
collects (benchmarks/gpu_summary.py prints the summary). Times are medians over `--repeats`
rounds, the ways taking turns, after one warm-up call each, with the device synchronized.

    python benchmarks/gpu_shapes.py --shape 0.5b               # on a CUDA GPU (scripts/gpu_check.sh)
    python benchmarks/gpu_shapes.py --shape 7b
    python benchmarks/gpu_shapes.py --small --device cpu       # tiny shapes, seconds: a dry run
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass

import torch
from timing import hf_greedy, interleaved_times
from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
from transformers import AutoModelForCausalLM, PreTrainedTokenizerFast, Qwen2Config

from interp.core.digit_answers import PushSweep, greedy_outcomes
from interp.data.arithmetic import AdditionProblem, EncodedProblem
from interp.decoding import generate
from interp.interventions import RED, AddVector, Edit, PushAlong
from interp.models.dtypes import resolve_dtype
from interp.models.loading import check_device
from interp.training.data import EncodedPair
from interp.training.masks import make_batch
from interp.training.trainer import answer_loss, attached, frozen

RESULT_PREFIX = "GPU_SHAPES_RESULT"
PARTS = ("decode", "bandwidth", "sweep", "train")
# H200 SXM by the vendor's datasheet: HBM3e at 4.8 TB/s (the copy bandwidth is measured too).
DATASHEET_BANDWIDTH = {"H200": 4.8e12, "H100": 3.35e12}

# The configurations of Qwen/Qwen2.5-0.5B(-Instruct) and Qwen/Qwen2.5-7B(-Instruct): what decides
# the speed. The 0.5B numbers equal ~/.cache/interp/qwen2.5-coder-0.5b-instruct/config.json, except
# that the cache built from the GGUF file holds an untied output matrix (the upstream model ties
# it, as here; tying changes memory, not the bytes read per token). The 7B vocabulary is 152,064.
QWEN_COMMON = dict(
    hidden_act="silu",
    rms_norm_eps=1e-6,
    rope_parameters={"rope_theta": 1_000_000.0, "rope_type": "default"},
    max_position_embeddings=32768,
    use_sliding_window=False,
    attention_dropout=0.0,
    pad_token_id=0,
    bos_token_id=1,
    eos_token_id=1,
)
SHAPES = {
    "0.5b": dict(
        hidden_size=896,
        intermediate_size=4864,
        num_hidden_layers=24,
        num_attention_heads=14,
        num_key_value_heads=2,
        vocab_size=151936,
        tie_word_embeddings=True,
    ),
    "7b": dict(
        hidden_size=3584,
        intermediate_size=18944,
        num_hidden_layers=28,
        num_attention_heads=28,
        num_key_value_heads=4,
        vocab_size=152064,
        tie_word_embeddings=False,
    ),
    "small": dict(  # a dry run on any machine, in seconds
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        vocab_size=512,
        tie_word_embeddings=True,
        max_position_embeddings=512,
    ),
}


@dataclass(frozen=True)
class Sizes:
    """How much work each part does."""

    new_tokens: int
    prompt_tokens: int
    batches: tuple[int, ...]
    repeats: int
    sweep_problems: int
    sweep_batch: int
    strengths: tuple[float, ...]
    sweep_repeats: int
    train_batch: int
    train_prompt: int
    train_answer: int
    copy_bytes: int
    matmul_size: int


FULL = Sizes(
    new_tokens=48,
    prompt_tokens=64,
    batches=(1, 16),
    repeats=3,
    sweep_problems=256,
    sweep_batch=64,
    strengths=(-8.0, -4.0, -2.0, -1.0, 1.0, 2.0, 4.0, 8.0),
    sweep_repeats=2,
    train_batch=8,
    train_prompt=64,
    train_answer=64,
    copy_bytes=2**31,
    matmul_size=8192,
)
SMALL = Sizes(
    new_tokens=4,
    prompt_tokens=8,
    batches=(1, 2),
    repeats=1,
    sweep_problems=8,
    sweep_batch=4,
    strengths=(-4.0, 0.0, 4.0),
    sweep_repeats=1,
    train_batch=2,
    train_prompt=6,
    train_answer=4,
    copy_bytes=2**24,
    matmul_size=256,
)


# ------------------------------------------------------------------------------------------------
# Models with random weights


def filler_tokenizer(vocab_size: int) -> PreTrainedTokenizerFast:
    """A character-level tokenizer over the whole vocabulary: `<pad>`, `<eos>`, digits, `+`, `=`,
    then filler tokens, so that every id the random model writes decodes to something."""
    vocab = {"<pad>": 0, "<eos>": 1}
    for character in "0123456789+= ":
        vocab[character] = len(vocab)
    for index in range(len(vocab), vocab_size):
        vocab[f"<t{index}>"] = index
    backend = Tokenizer(models.WordLevel(vocab, unk_token="<pad>"))
    backend.pre_tokenizer = pre_tokenizers.Split(pattern=Regex(r"."), behavior="isolated")
    backend.decoder = decoders.Fuse()
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend, pad_token="<pad>", eos_token="<eos>", padding_side="left"
    )
    tokenizer.init_kwargs["name_or_path"] = "interp-filler-tokenizer"
    return tokenizer


def random_qwen(shape: str, device: torch.device, dtype: torch.dtype, seed: int):
    """(bridge, plain): interp's bridge over a random Qwen2 model of `shape`, and a plain Hugging
    Face copy with the same weights and its default attention."""
    from transformer_lens.model_bridge import TransformerBridge

    config = Qwen2Config(**{**QWEN_COMMON, **SHAPES[shape]})
    torch.manual_seed(seed)
    with torch.device(device):
        plain = AutoModelForCausalLM.from_config(config, dtype=dtype)
    plain.eval()
    tokenizer = filler_tokenizer(config.vocab_size)
    bridge = TransformerBridge.boot_transformers(
        f"interp-random-qwen2.5-{shape}",
        hf_model=copy.deepcopy(plain),  # the bridge switches its copy to eager attention
        tokenizer=tokenizer,
        dtype=dtype,
        device=str(device),
    )
    bridge.eval()
    bridge.interp_name = f"random-qwen2.5-{shape}"
    return bridge, plain


def weight_bytes_per_token(plain) -> int:
    """Bytes of weights one decoding step reads: every parameter, except that the input embedding
    is looked up (one row) unless it is also the output matrix."""
    total = sum(p.numel() * p.element_size() for p in plain.parameters())
    embedding = plain.get_input_embeddings().weight
    output = plain.get_output_embeddings().weight
    if embedding is not output:
        total -= embedding.numel() * embedding.element_size()
    return total


def block_parameters(plain) -> int:
    """Parameters of the weight matrices of the blocks (no embeddings, norms or biases)."""
    skip = {id(plain.get_input_embeddings().weight), id(plain.get_output_embeddings().weight)}
    return sum(p.numel() for p in plain.parameters() if p.dim() == 2 and id(p) not in skip)


# ------------------------------------------------------------------------------------------------
# Timing


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(
    functions: dict[str, Callable[[], object]], repeats: int, device: torch.device
) -> dict[str, list[float]]:
    """Seconds of each call, the functions taking turns, after one warm-up call each."""

    def synced(function):
        def call():
            function()
            synchronize(device)

        return call

    calls = {name: synced(f) for name, f in functions.items()}
    for call in calls.values():
        call()
    return interleaved_times(repeats, calls)


def median_ratio(numerator: list[float], denominator: list[float]) -> float:
    """Median over rounds of the ratio of two ways' times in the same round."""
    return statistics.median(a / b for a, b in zip(numerator, denominator))


def report(result: dict) -> None:
    print(f"{RESULT_PREFIX} {json.dumps(result)}", flush=True)


# ------------------------------------------------------------------------------------------------
# Parts


def decode_part(bridge, plain, sizes: Sizes, device: torch.device, seed: int) -> dict:
    """Tokens/s of greedy decoding, four ways, at each batch size; ratios to plain `generate`."""
    cfg = bridge.cfg
    layer = cfg.n_layers // 2
    generator = torch.Generator().manual_seed(seed)
    vector = torch.randn(cfg.d_model, generator=generator)
    steer = [Edit(f"blocks.{layer}.hook_resid_pre", AddVector(vector, alpha=1.0))]
    on_device = vector.to(device=device, dtype=plain.dtype)

    def add_vector(module, inputs, output):
        if isinstance(output, tuple):
            return (output[0] + on_device, *output[1:])
        return output + on_device

    rows, ratios, agreement = [], {}, None
    for batch in sizes.batches:
        prompts = torch.randint(16, cfg.d_vocab, (batch, sizes.prompt_tokens), generator=generator)
        tokens = prompts.to(device)
        mask = torch.ones_like(tokens)
        prompt_lists = prompts.tolist()
        n = sizes.new_tokens

        def hf(hook: bool = False, tokens=tokens, mask=mask, n=n):
            handle = None
            if hook:
                handle = plain.model.layers[layer - 1].register_forward_hook(add_vector)
            try:
                hf_greedy(plain, tokens, mask, n, pad_token_id=0)
            finally:
                if handle is not None:
                    handle.remove()

        def ours(edit_list=(), prompt_lists=prompt_lists, batch=batch, n=n):
            return generate(
                bridge,
                prompt_lists,
                edit_list=edit_list,
                max_new_tokens=n,
                stop_at_eos=False,
                batch_size=batch,
            )

        times = timed(
            {
                "hf": hf,
                "hf_hook": lambda: hf(hook=True),
                "interp": ours,
                "interp_edit": lambda: ours(steer),
            },
            sizes.repeats,
            device,
        )
        for way, seconds in times.items():
            median = statistics.median(seconds)
            rows.append(
                dict(
                    batch=batch,
                    way=way,
                    seconds=seconds,
                    median_s=median,
                    tokens_per_s=batch * n / median,
                )
            )
        ratios[f"batch{batch}"] = {
            "interp/hf": median_ratio(times["interp"], times["hf"]),
            "interp_edit/hf": median_ratio(times["interp_edit"], times["hf"]),
            "interp_edit/hf_hook": median_ratio(times["interp_edit"], times["hf_hook"]),
            "hf_hook/hf": median_ratio(times["hf_hook"], times["hf"]),
        }
        if agreement is None:  # greedy tokens, interp (eager attention) against plain (its own)
            with torch.no_grad():
                theirs = plain.generate(
                    tokens,
                    attention_mask=mask,
                    max_new_tokens=n,
                    min_new_tokens=n,
                    do_sample=False,
                    pad_token_id=0,
                )[:, sizes.prompt_tokens :].tolist()
            mine = ours().tokens
            same = sum(a == b for x, y in zip(mine, theirs) for a, b in zip(x, y))
            agreement = same / sum(len(x) for x in theirs)
    print(f"decode ({sizes.new_tokens} new tokens, EOS ignored; median of {sizes.repeats}):")
    print("  batch  way           tokens/s   median s")
    for row in rows:
        print(
            f"  {row['batch']:5d}  {row['way']:12s} {row['tokens_per_s']:9.1f}  {row['median_s']:9.3f}"
        )
    for key, values in ratios.items():
        print(f"  {key}: " + ", ".join(f"{k} {v:.3f}x" for k, v in values.items()))
    return dict(
        rows=rows,
        ratios=ratios,
        token_agreement_with_hf=agreement,
        layer=layer,
        new_tokens=sizes.new_tokens,
        prompt_tokens=sizes.prompt_tokens,
    )


def copy_bandwidth(n_bytes: int, device: torch.device) -> float:
    """Bytes per second (read plus written) of a device-to-device copy of `n_bytes` of random data."""
    source = torch.randn(n_bytes // 2, device=device, dtype=torch.bfloat16)
    target = torch.empty_like(source)
    seconds = timed({"copy": lambda: target.copy_(source)}, 10, device)["copy"]
    return 2 * source.numel() * source.element_size() / statistics.median(seconds)


def matmul_rate(k: int, device: torch.device) -> float:
    """FLOP per second of a bfloat16 k x k x k matrix product on random data."""
    a = torch.randn(k, k, device=device, dtype=torch.bfloat16)
    b = torch.randn(k, k, device=device, dtype=torch.bfloat16)
    seconds = timed({"matmul": lambda: a @ b}, 10, device)["matmul"]
    return 2 * k**3 / statistics.median(seconds)


def bandwidth_part(plain, decode: dict | None, sizes: Sizes, device: torch.device) -> dict:
    """The device's copy bandwidth and bf16 matrix rate, and batch-1 decoding against them."""
    copy_bytes_per_s = copy_bandwidth(sizes.copy_bytes, device)
    matmul_flops_per_s = matmul_rate(sizes.matmul_size, device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    datasheet = next((v for key, v in DATASHEET_BANDWIDTH.items() if key in name), None)
    per_token = weight_bytes_per_token(plain)
    result = dict(
        device_name=name,
        copy_GBps=copy_bytes_per_s / 1e9,
        matmul_bf16_TFLOPs=matmul_flops_per_s / 1e12,
        datasheet_GBps=None if datasheet is None else datasheet / 1e9,
        weight_bytes_per_token=per_token,
        floor_ms_per_token=1e3 * per_token / copy_bytes_per_s,
        batch1={},
    )
    print(
        f"bandwidth: {name}: copy {copy_bytes_per_s / 1e9:.0f} GB/s (read + write), bf16 "
        f"{sizes.matmul_size}^3 matmul {matmul_flops_per_s / 1e12:.1f} TFLOP/s; weights read per token "
        f"{per_token / 1e9:.3f} GB, so at least {result['floor_ms_per_token']:.3f} ms per token"
    )
    for row in (decode or {}).get("rows", []):
        if row["batch"] != 1:
            continue
        achieved = per_token * row["tokens_per_s"]
        share = dict(
            tokens_per_s=row["tokens_per_s"],
            achieved_GBps=achieved / 1e9,
            share_of_copy=achieved / copy_bytes_per_s,
            share_of_datasheet=None if datasheet is None else achieved / datasheet,
        )
        result["batch1"][row["way"]] = share
        sheet = "" if datasheet is None else f", {share['share_of_datasheet']:.1%} of the datasheet"
        print(
            f"  batch 1, {row['way']:12s} {row['tokens_per_s']:8.1f} tokens/s = "
            f"{achieved / 1e9:7.1f} GB/s of weights: {share['share_of_copy']:.1%} of the copy bandwidth{sheet}"
        )
    return result


def sweep_rows(tokenizer, n: int, shared: int, own: int, seed: int) -> list[EncodedProblem]:
    """Addition rows behind a shared random prefix and some random own tokens; digit answers."""
    generator = torch.Generator().manual_seed(seed)
    vocabulary = len(tokenizer)
    prefix = torch.randint(16, vocabulary, (shared,), generator=generator).tolist()
    rows = []
    for _ in range(n):
        a, b = (int(x) for x in torch.randint(1000, 10000, (2,), generator=generator))
        filler = torch.randint(16, vocabulary, (own,), generator=generator).tolist()
        question = tokenizer.encode(f"{a}+{b}=", add_special_tokens=False)
        prompt = prefix + filler + question
        answer = tokenizer.encode(str(a + b), add_special_tokens=False)
        start = len(prefix) + len(filler)
        rows.append(EncodedProblem(AdditionProblem(a, b), prompt, answer, start + 3, start + 8))
    return rows


def sweep_part(bridge, sizes: Sizes, device: torch.device, seed: int, flops: Callable) -> dict:
    """The push sweep against full teacher-forced forwards: time and agreement of the outcomes."""
    tokenizer = bridge.tokenizer
    rows = sweep_rows(tokenizer, sizes.sweep_problems, shared=40, own=16, seed=seed)
    digits = {tokenizer.convert_tokens_to_ids(str(d)) for d in range(10)}
    layer = bridge.cfg.n_layers // 2
    direction = torch.randn(bridge.cfg.d_model, generator=torch.Generator().manual_seed(seed))

    def push(amounts):
        return Edit(f"blocks.{layer}.hook_resid_post", PushAlong(direction, amounts, 1.0))

    strengths = list(sizes.strengths)
    outcomes = {}

    def swept():
        sweep = PushSweep(bridge, rows, digits, push, layer, batch_size=sizes.sweep_batch)
        outcomes["sweep"] = sweep.outcomes(strengths)

    def full():
        outcomes["full"] = [
            greedy_outcomes(bridge, rows, digits, [push(s)], batch_size=sizes.sweep_batch)
            for s in strengths
        ]

    times = timed({"sweep": swept, "full": full}, sizes.sweep_repeats, device)
    same = sum(
        int(torch.equal(a.correct, b.correct) and torch.equal(a.moved, b.moved))
        for a, b in zip(outcomes["sweep"], outcomes["full"])
    )
    tokens = sum(len(r.prompt) + len(r.answer) for r in rows) * len(strengths)
    result = dict(
        problems=len(rows),
        strengths=len(strengths),
        layer=layer,
        sweep_s=statistics.median(times["sweep"]),
        full_s=statistics.median(times["full"]),
        speedup=median_ratio(times["full"], times["sweep"]),
        agreement=same / len(strengths),
        full_forward_TFLOPs=flops(tokens) / statistics.median(times["full"]) / 1e12,
    )
    print(
        f"sweep: {len(rows)} problems x {len(strengths)} strengths at layer {layer}: PushSweep "
        f"{result['sweep_s']:.2f} s, full forwards {result['full_s']:.2f} s "
        f"({result['speedup']:.1f}x; full forwards at {result['full_forward_TFLOPs']:.1f} TFLOP/s); "
        f"identical outcomes at {same} of {len(strengths)} strengths"
    )
    return result


def train_part(bridge, plain, sizes: Sizes, device: torch.device, seed: int, flops) -> dict:
    """One RED training step through interp against a plain forward + backward of the frozen model."""
    generator = torch.Generator().manual_seed(seed)
    vocabulary = bridge.cfg.d_vocab
    pairs = [
        EncodedPair(
            tuple(
                torch.randint(16, vocabulary, (sizes.train_prompt,), generator=generator).tolist()
            ),
            tuple(
                torch.randint(16, vocabulary, (sizes.train_answer,), generator=generator).tolist()
            ),
        )
        for _ in range(sizes.train_batch)
    ]
    batch = make_batch(pairs, [sizes.train_answer] * len(pairs), pad_id=0).to(device)
    red = [
        Edit(f"blocks.{layer}.mlp.hook_pre_linear", RED(bridge.cfg.d_mlp))
        for layer in range(bridge.cfg.n_layers)
    ]
    params = [p for e in red for p in e.function.parameters()]
    optimizer = torch.optim.AdamW(params, lr=1e-4)
    keep = batch.loss_mask.any(0).nonzero()[:, 0]
    losses = []

    def red_step():
        optimizer.zero_grad(set_to_none=True)
        loss = answer_loss(bridge, batch)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        losses.append(float(loss.detach()))

    def plain_step():
        embeds = plain.get_input_embeddings()(batch.tokens).detach().requires_grad_(True)
        out = plain(inputs_embeds=embeds, attention_mask=batch.attention_mask, logits_to_keep=keep)
        mask = batch.loss_mask[:, keep]
        loss = torch.nn.functional.cross_entropy(
            out.logits[mask].float(), batch.targets[:, keep][mask]
        )
        loss.backward()

    with frozen(bridge), frozen(plain), attached(bridge, red):
        times = timed({"red": red_step, "plain": plain_step}, sizes.repeats, device)
    tokens = int(batch.attention_mask.sum())
    step_flops = 2 * flops(tokens)  # frozen weights: the backward computes input gradients only
    result = dict(
        batch=list(batch.tokens.shape),
        red_step_s=statistics.median(times["red"]),
        plain_step_s=statistics.median(times["plain"]),
        ratio=median_ratio(times["red"], times["plain"]),
        red_TFLOPs=step_flops / statistics.median(times["red"]) / 1e12,
        loss=losses[-1],
    )
    print(
        f"train: batch {tuple(batch.tokens.shape)}: RED step {result['red_step_s'] * 1e3:.1f} ms, "
        f"plain forward + backward {result['plain_step_s'] * 1e3:.1f} ms ({result['ratio']:.2f}x; "
        f"RED step at {result['red_TFLOPs']:.1f} TFLOP/s of block matrices)"
    )
    return result


# ------------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--shape", choices=list(SHAPES), default="0.5b")
    parser.add_argument("--small", action="store_true", help="tiny shapes and sizes: a dry run")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--dtype", default="bfloat16")
    parser.add_argument(
        "--parts", default=",".join(PARTS), help="comma-separated: " + ", ".join(PARTS)
    )
    parser.add_argument("--new-tokens", type=int)
    parser.add_argument("--batches", help="comma-separated decoding batch sizes, e.g. 1,16")
    parser.add_argument("--repeats", type=int)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    shape = "small" if args.small else args.shape
    sizes = SMALL if args.small else FULL
    overrides = {}
    if args.new_tokens:
        overrides["new_tokens"] = args.new_tokens
    if args.batches:
        overrides["batches"] = tuple(int(b) for b in args.batches.split(","))
    if args.repeats:
        overrides["repeats"] = args.repeats
    sizes = Sizes(**{**sizes.__dict__, **overrides})
    parts = [p.strip() for p in args.parts.split(",") if p.strip()]
    unknown = set(parts) - set(PARTS)
    if unknown:
        parser.error(f"unknown parts {sorted(unknown)}: choose from {', '.join(PARTS)}")
    check_device(args.device)
    device = torch.device(args.device)
    dtype = resolve_dtype(args.dtype, device)
    torch.set_grad_enabled(True)

    start = time.perf_counter()
    bridge, plain = random_qwen(shape, device, dtype, args.seed)
    synchronize(device)
    built = time.perf_counter() - start
    n_block = block_parameters(plain)
    cfg = bridge.cfg

    def forward_flops(tokens: int) -> float:
        """Useful FLOPs of a forward over `tokens` tokens: block matrices (unembedding left out)."""
        return 2.0 * n_block * tokens

    header = dict(
        shape=shape,
        device=str(device),
        dtype=str(dtype).removeprefix("torch."),
        layers=cfg.n_layers,
        d_model=cfg.d_model,
        vocabulary=cfg.d_vocab,
        parameters=sum(p.numel() for p in plain.parameters()),
        build_s=built,
        torch=torch.__version__,
    )
    print(
        f"random Qwen2.5 {shape}: {header['parameters'] / 1e9:.3f}B parameters, {cfg.n_layers} "
        f"layers, d_model {cfg.d_model}, {dtype} on {device}; built in {built:.1f} s",
        flush=True,
    )
    failed = False
    decode = None
    for part in parts:
        started = time.perf_counter()
        try:
            if part == "decode":
                decode = outcome = decode_part(bridge, plain, sizes, device, args.seed)
            elif part == "bandwidth":
                outcome = bandwidth_part(plain, decode, sizes, device)
            elif part == "sweep":
                outcome = sweep_part(bridge, sizes, device, args.seed, forward_flops)
            else:
                outcome = train_part(bridge, plain, sizes, device, args.seed, forward_flops)
        except Exception as error:  # one part failing must not hide the others' numbers
            traceback.print_exc()
            outcome = dict(error=f"{type(error).__name__}: {error}")
            failed = True
        outcome.update(header, part=part, part_s=time.perf_counter() - started)
        report(outcome)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
