"""interp's decoding loop against plain Hugging Face `generate`, side by side in one run.

The anchor is a plain Hugging Face model loaded on its own from the preset's folder (its default
attention, the same weights), not the model inside the bridge. Five ways of decoding the same
chat prompts greedily, the same number of new tokens (EOS masked on both sides), at batch 1 and 8:

    (a) plain    HF generate
    (b) hook     HF generate with a hand-written forward pre-hook adding the vector to the input
                 of block `layer` at every position
    (c) interp   interp.generate with no edit
    (d) +all     interp.generate with AddVector at blocks.{layer}.hook_resid_pre, every position
    (e) +seal    the same vector only at SEAL's boundary tokens (`boundary_tokens`), which fire
    (f) bridge   with --with-bridge: (d) decoded through the bridge's wrappers
                 (`interp.core.direct.bridge_forwards`), the path before the direct forward

interp decodes through the Hugging Face modules directly, with the edits mirrored as torch hooks
(`interp.core.direct`); the header says which path each edit list takes. The ways take turns
(a b c d e, a b c d e, ...), so load from other processes hits all alike; the table gives the
median over repetitions of each ratio (and the best-of ratio), to (a) and to (b). Tokens must
agree where they should: (a) = (c) and (b) = (d).

    python benchmarks/decoding.py                       # the full setting
    python benchmarks/decoding.py --prompts 2 --new-tokens 16 --repeats 3   # a quick look
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import time

import torch
from timing import chat_token_ids
from transformers import AutoModelForCausalLM

from interp.core.direct import DirectForwardRefusal, bridge_forwards, direct_forward_or_refusal
from interp.core.positions import boundary_tokens
from interp.core.tokens import eos_token_ids, left_pad
from interp.decoding import TokenPenalty, generate
from interp.interventions import AddVector, Edit, edits
from interp.models import load_model, preset_folder

PROMPTS = [
    "Explain step by step how to add 4821 and 1375.\n\n Show your work.",
    "Write a short poem about the sea.\n\n Use two stanzas.",
    "List three prime numbers and say why each is prime.",
    "What is the capital of France? Answer in two paragraphs.",
    "Describe how a binary search works.",
    "Give two tips for writing clear code.",
    "Why is the sky blue?\n\n Answer briefly.",
    "Summarise the rules of chess in a few lines.",
]
NAMES = ("plain", "hook", "interp", "+all", "+seal")


def decoding_path(model, edit_list) -> str:
    """Which path `generate` takes with `edit_list`: direct, or the bridge and why."""
    with edits(model, edit_list):
        found = direct_forward_or_refusal(model)
    if isinstance(found, DirectForwardRefusal):
        return f"bridge ({found.reason})"
    for handle in found[1]:
        handle.remove()
    return "direct"


def hf_tokens(hf_model, tokens, mask, new_tokens: int, pad_id: int) -> list[list[int]]:
    """Plain HF greedy `generate` of exactly `new_tokens` tokens (EOS masked), new tokens only."""
    with torch.no_grad():
        out = hf_model.generate(
            tokens,
            attention_mask=mask,
            max_new_tokens=new_tokens,
            min_new_tokens=new_tokens,
            do_sample=False,
            pad_token_id=pad_id,
        )
    return out[:, tokens.shape[1] :].tolist()


def agreement(first: list[list[int]], second: list[list[int]]) -> str:
    """How many rows are identical, and where the others first part (index of the new token)."""
    parts = [
        next((j for j, (a, b) in enumerate(zip(x, y, strict=True)) if a != b), None)
        for x, y in zip(first, second, strict=True)
    ]
    differ = [f"row {i} at {j}" for i, j in enumerate(parts) if j is not None]
    same = f"{len(parts) - len(differ)}/{len(parts)} rows identical"
    return same + (f" (first difference: {', '.join(differ)})" if differ else "")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--new-tokens", type=int, default=48)
    parser.add_argument("--prompts", type=int, default=8, help="prompts (the largest batch)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--layer", type=int, default=12)
    parser.add_argument("--alpha", type=float, default=4.0)
    parser.add_argument("--batches", default="1,8")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: leave as is)")
    parser.add_argument(
        "--with-bridge", action="store_true", help="also time (d) through the bridge's wrappers"
    )
    args = parser.parse_args()
    names = NAMES + (("bridge",) if args.with_bridge else ())
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = load_model(args.model, dtype=torch.float32)
    plain = AutoModelForCausalLM.from_pretrained(preset_folder(args.model), dtype=torch.float32)
    plain.eval()
    tokenizer = model.tokenizer
    pad_id = tokenizer.pad_token_id
    vector = torch.randn(model.cfg.d_model)
    vector = vector / vector.norm() * args.alpha
    hook_name = f"blocks.{args.layer}.hook_resid_pre"
    add_all = [Edit(hook_name, AddVector(vector, 1.0))]
    add_seal = [Edit(hook_name, AddVector(vector, 1.0), boundary_tokens(tokenizer))]
    block = plain.model.layers[args.layer]

    def pre_hook(module, args_, kwargs):
        if args_:
            return (args_[0] + vector,) + args_[1:], kwargs
        return args_, {**kwargs, "hidden_states": kwargs["hidden_states"] + vector}

    # EOS is masked on both sides, as `min_new_tokens` masks it for Hugging Face: both write the
    # same 48 tokens (interp's stop_at_eos=False alone would write EOS where HF writes the runner-up)
    no_eos = TokenPenalty(tuple(sorted(eos_token_ids(model))), value=float("-inf"))
    encoded = chat_token_ids(tokenizer, PROMPTS)[: args.prompts]
    print(
        f"model {args.model} (float32), {args.new_tokens} new tokens, greedy, EOS masked, "
        f"vector |v|={args.alpha} at {hook_name}; {torch.get_num_threads()} threads; "
        f"plain HF attention: {plain.config._attn_implementation}, bridge's HF model: "
        f"{model.original_model.config._attn_implementation}; {args.repeats} interleaved repeats"
    )
    for label, edit_list in (("no edit", []), ("+all", add_all), ("+seal", add_seal)):
        print(f"interp {label}: {decoding_path(model, edit_list)}")
    for batch in [int(b) for b in args.batches.split(",")]:
        prompts = encoded[:batch]
        tokens, mask = left_pad(prompts, pad_id)

        def run_plain(tokens=tokens, mask=mask):
            return hf_tokens(plain, tokens, mask, args.new_tokens, pad_id)

        def run_hook(tokens=tokens, mask=mask):
            handle = block.register_forward_pre_hook(pre_hook, with_kwargs=True)
            try:
                return hf_tokens(plain, tokens, mask, args.new_tokens, pad_id)
            finally:
                handle.remove()

        def ours(edit_list, prompts=prompts, batch=batch, through_bridge=False):
            def decode():
                with bridge_forwards() if through_bridge else contextlib.nullcontext():
                    return generate(
                        model,
                        prompts,
                        edit_list=edit_list,
                        max_new_tokens=args.new_tokens,
                        stop_at_eos=False,
                        batch_size=batch,
                        logit_processors=[no_eos],
                    )

            return decode

        ways = (run_plain, run_hook, ours([]), ours(add_all), ours(add_seal))
        ways += (ours(add_all, through_bridge=True),) if args.with_bridge else ()
        runs = dict(zip(names, ways, strict=True))
        outputs = {name: run() for name, run in runs.items()}  # warm-up, and the tokens
        same_plain = agreement(outputs["plain"], outputs["interp"].tokens)
        same_hook = agreement(outputs["hook"], outputs["+all"].tokens)
        edited = outputs["+seal"].edited
        fired = (
            sum(sum(e[: len(p)]) for e, p in zip(edited, prompts, strict=True)),
            sum(sum(e[len(p) :]) for e, p in zip(edited, prompts, strict=True)),
        )
        times: dict[str, list[float]] = {name: [] for name in names}
        for _ in range(args.repeats):
            for name, run in runs.items():
                start = time.perf_counter()
                run()
                times[name].append(time.perf_counter() - start)
        print_batch(batch, names, times, same_plain, same_hook, fired)


def print_batch(batch, names, times, same_plain, same_hook, fired) -> None:
    """One batch size's rows of the table (printed as soon as that batch size is done)."""
    print()
    print("batch  way      best (s)  median ratio to plain  to hook   best ratio to plain  to hook")
    for name in names:
        ratio_a = statistics.median(t / a for t, a in zip(times[name], times["plain"], strict=True))
        ratio_b = statistics.median(t / b for t, b in zip(times[name], times["hook"], strict=True))
        best = min(times[name])
        print(
            f"{batch:5d}  {name:7s}  {best:8.3f}  {ratio_a:21.3f}  {ratio_b:7.3f}   "
            f"{best / min(times['plain']):19.3f}  {best / min(times['hook']):7.3f}"
        )
    print(f"       tokens: plain vs interp {same_plain}; hook vs +all {same_hook}")
    print(f"       +seal edited {fired[0]} prompt and {fired[1]} generated positions", flush=True)


if __name__ == "__main__":
    main()
