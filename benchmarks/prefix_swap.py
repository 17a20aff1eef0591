"""Prefix swap over 8 values of k: interp's way against one donor run + the continuations it needs,
and against the naive way that regenerates the donor's prefix for every k. Measured side by side.

    .venv/bin/python benchmarks/prefix_swap.py --model smollm2-135m-instruct --problems 8

interp's way decodes the donor's answer once, encodes prompt + longest prefix once per arm, and
continues each k from cropped caches. The baseline is the least work a prefix swap needs: one
donor answer, plus for every (k, variant) one continuation decoded from prompt + prefix. The naive
way decodes the donor's k-token prefix again for every k, then the same continuations. Both wall
time and this process's CPU time are printed (CPU time is steadier on a shared machine).
"""

from __future__ import annotations

import argparse
import time

import interp
from interp.analyses import prefix_swap
from interp.data.math_prompts import chat_prompt
from interp.data.math_sets import load_problems, subset
from interp.decoding import generate
from interp.interventions.arms import Arm
from interp.interventions.random_red import random_red_edits

KS = (0, 1, 4, 8, 16, 32, 64, 128)


class Clock:
    def __init__(self):
        self.wall = self.cpu = 0.0

    def __enter__(self):
        self._wall, self._cpu = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc):
        self.wall += time.perf_counter() - self._wall
        self.cpu += time.process_time() - self._cpu


def continuations(model, prompts, prefixes, max_new, batch_size, variants):
    """Every (k, variant) continuation decoded from prompt + prefix: the work a swap cannot skip."""
    for k in KS:
        sequences = [p + x[:k] for p, x in zip(prompts, prefixes, strict=True)]
        for _ in variants:
            generate(model, sequences, max_new_tokens=max_new - k, batch_size=batch_size)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--problems", type=int, default=8)
    parser.add_argument("--max-new-tokens", type=int, default=160)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    model = interp.load_model(args.model)
    donor = Arm("random RED 0.54", model, tuple(random_red_edits(model, 0.54, seed=args.seed)))
    plain = Arm("plain", model)
    problems = subset(load_problems("gsm8k", "test"), args.problems, args.seed)
    batch = args.problems  # one batch per call, the same for all three ways
    variants = prefix_swap.VARIANTS
    generate(model, ["warm up"], max_new_tokens=2)

    ours = Clock()
    with ours:
        result = prefix_swap.run(
            model,
            donor=donor,
            continuer=plain,
            ks=KS,
            variants=variants,
            problems=problems,
            n_problems=args.problems,
            only_donor_wrong=False,
            max_new_tokens=args.max_new_tokens,
            batch_size=batch,
            closeness=False,
            progress=False,
        )
    prompts = [
        model.tokenizer.encode(chat_prompt(p, model.tokenizer), add_special_tokens=False)
        for p in problems
    ]
    baseline = Clock()
    with baseline:
        answer = generate(
            model,
            prompts,
            edit_list=donor.edit_list,
            max_new_tokens=args.max_new_tokens,
            batch_size=batch,
        )
        continuations(model, prompts, answer.tokens, args.max_new_tokens, batch, variants)
    naive = Clock()
    with naive:
        prefixes = [[] for _ in prompts]
        for k in KS:
            if k:  # the donor writes its k-token prefix again for this k
                again = generate(
                    model, prompts, edit_list=donor.edit_list, max_new_tokens=k, batch_size=batch
                )
                prefixes = again.tokens
            sequences = [p + x[:k] for p, x in zip(prompts, prefixes, strict=True)]
            for _ in variants:
                generate(model, sequences, max_new_tokens=args.max_new_tokens - k, batch_size=batch)

    n_cont = sum(r["continued"] for r in result.tables["continuations"])
    print(
        f"{args.model}, {args.problems} GSM8K problems, ks={KS}, variants={variants}, "
        f"answers capped at {args.max_new_tokens} tokens ({n_cont} continuations decoded)"
    )
    print(f"{'way':44s} {'wall s':>8s} {'cpu s':>8s}")
    for name, clock in (
        ("interp prefix_swap.run", ours),
        ("baseline: one donor run + continuations", baseline),
        ("naive: donor prefix regenerated per k", naive),
    ):
        print(f"{name:44s} {clock.wall:8.1f} {clock.cpu:8.1f}")
    print(
        f"interp / baseline: {ours.wall / baseline.wall:.2f}x wall, "
        f"{ours.cpu / baseline.cpu:.2f}x cpu (target <= 1.5x)"
    )
    print(f"naive / interp: {naive.wall / ours.wall:.2f}x wall, {naive.cpu / ours.cpu:.2f}x cpu")


if __name__ == "__main__":
    main()
