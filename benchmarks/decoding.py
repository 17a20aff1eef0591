"""Decoding through interp's loop, with a steering edit at boundary tokens, vs plain HF `generate`.

Same model, same prompts, same number of new tokens, batch 1 and batch 8, timed side by side in
one run (best of `--repeats`). Prints the ratio ours / HF; the target is at most 1.3x.

    python benchmarks/decoding.py --model smollm2-135m-instruct
"""

from __future__ import annotations

import argparse

import torch
from timing import best_of, chat_token_ids, hf_greedy

from interp.core.positions import boundary_tokens
from interp.core.tokens import left_pad
from interp.decoding import generate
from interp.interventions import AddVector, Edit
from interp.models import load_model

PROMPTS = [
    "Explain step by step how to add 4821 and 1375.",
    "Write a short poem about the sea.",
    "List three prime numbers and say why each is prime.",
    "What is the capital of France? Answer in two paragraphs.",
    "Describe how a binary search works.",
    "Give two tips for writing clear code.",
    "Why is the sky blue?",
    "Summarise the rules of chess in a few lines.",
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--new-tokens", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.manual_seed(0)
    model = load_model(args.model)
    tokenizer = model.tokenizer
    layer = model.cfg.n_layers // 2
    vector = torch.randn(model.cfg.d_model) * 0.01
    steering = [
        Edit(f"blocks.{layer}.hook_resid_pre", AddVector(vector, 1.0), boundary_tokens(tokenizer))
    ]
    encoded = chat_token_ids(tokenizer, PROMPTS)
    hf = model.original_model
    print(f"model {args.model}, {args.new_tokens} new tokens, best of {args.repeats}")
    print("batch  interp+edit (s)  HF generate (s)  ratio")
    for batch in (1, 8):
        prompts = encoded[:batch]
        tokens, mask = left_pad(prompts, tokenizer.pad_token_id)

        def ours(prompts=prompts, batch=batch):
            with torch.no_grad():
                generate(
                    model,
                    prompts,
                    edit_list=steering,
                    max_new_tokens=args.new_tokens,
                    stop_at_eos=False,
                    batch_size=batch,
                )

        def theirs(tokens=tokens, mask=mask):
            hf_greedy(hf, tokens, mask, args.new_tokens, tokenizer.pad_token_id)

        ours()  # warm-up
        theirs()
        t_ours = best_of(args.repeats, ours)
        t_hf = best_of(args.repeats, theirs)
        print(f"{batch:5d}  {t_ours:15.2f}  {t_hf:15.2f}  {t_ours / t_hf:5.2f}x")


if __name__ == "__main__":
    main()
