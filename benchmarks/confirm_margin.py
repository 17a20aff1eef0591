"""How close must a bfloat16 outcome be to be decided again in float32? (the confirmation margin)

Runs the same push sweep (same rows, same probe direction, same strengths) on a float32 and a
bfloat16 copy of the model, with deciding margins (best minus second-best logit at the positions
that decided each outcome), and prints: how far bf16 moves a margin, the bf16 margins of the
outcomes that flipped, and what share of outcomes each candidate margin would send to float32.
`interp.core.float32_confirmation.DEFAULT_MARGIN` is chosen from this.

    cd benchmarks && ../.venv/bin/python confirm_margin.py --probe ../runs/agreement/float32/number_probe/probe
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from interp import load_model  # noqa: E402
from interp.analyses import number_probe  # noqa: E402
from interp.core.digit_answers import PushSweep, greedy_outcomes  # noqa: E402
from interp.data.arithmetic import (  # noqa: E402
    addition_problems,
    default_style,
    digit_token_ids,
    encode_problems,
)
from interp.interventions import Edit  # noqa: E402
from interp.interventions.functions import PushAlong  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="qwen2.5-coder-0.5b-instruct")
    parser.add_argument("--probe", type=Path, help="a saved number-probe result (else fit one)")
    parser.add_argument("--problems", type=int, default=96)
    parser.add_argument("--strengths", default="4,8,16,24,32,48,64")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()

    model32 = load_model(args.model, dtype="float32")
    model16 = load_model(args.model, dtype="bfloat16")
    if args.probe:
        probe = number_probe.NumberProbeResult.load(args.probe)
    else:
        probe = number_probe.run(model32, n_problems=400, seed=args.seed)
    layer = probe.best_layer()
    direction, unit = probe.direction(layer), probe.unit_length(layer)
    hook = f"blocks.{layer}.{probe.config.site}"

    def push(amounts) -> Edit:
        return Edit(hook, PushAlong(direction, amounts, unit))

    tokenizer = model32.tokenizer
    rows = encode_problems(
        addition_problems(args.problems, 4, seed=args.seed), tokenizer, default_style(tokenizer)
    )
    digits = digit_token_ids(tokenizer)
    base32 = greedy_outcomes(model32, rows, digits, margins=True)
    base16 = greedy_outcomes(model16, rows, digits, margins=True)
    right = [r for r, ok in zip(rows, base32.correct.tolist()) if ok]
    strengths = [float(s) for s in args.strengths.split(",")]
    signed = [-s for s in reversed(strengths)] + strengths
    sweep32 = PushSweep(model32, right, digits, push, layer, margins=True).outcomes(signed)
    sweep16 = PushSweep(model16, right, digits, push, layer, margins=True).outcomes(signed)

    margin32 = torch.cat([base32.margin] + [o.margin for o in sweep32])
    margin16 = torch.cat([base16.margin] + [o.margin for o in sweep16])
    same = torch.cat(
        [base32.correct == base16.correct]
        + [(a.correct == b.correct) & (a.moved == b.moved) for a, b in zip(sweep32, sweep16)]
    )
    shift = (margin16 - margin32).abs()
    print(f"{args.model}, layer {layer}, {len(rows)} problems ({len(right)} right in float32), ")
    print(f"strengths ±{strengths}: {len(same)} outcomes, {int((~same).sum())} differ")
    print(
        f"|margin shift| bf16 vs f32 (outcomes alike): median {shift[same].median():.3f}, "
        f"99th percentile {shift[same].quantile(0.99):.3f}, largest {shift[same].max():.3f}"
    )
    if (~same).any():
        flipped = sorted(margin16[~same].tolist())
        print(f"bf16 margins of the flipped outcomes: {[round(m, 3) for m in flipped]}")
    for candidate in (0.25, 0.5, 1.0, 2.0, 4.0):
        close = margin16 < candidate
        caught = int((~same & close).sum())
        print(
            f"margin {candidate}: {100 * close.float().mean():.1f}% of outcomes go to float32; "
            f"catches {caught} of {int((~same).sum())} flips"
        )


if __name__ == "__main__":
    main()
