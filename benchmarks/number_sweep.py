"""The perturbation sweep (teacher-forced, batched, shared prefix) vs the naive way.

Naive, as the code of the BREP study (arXiv 2511.10707) does it: for every problem and strength, TransformerLens `generate`
with a hook that pushes along the direction, 15 new tokens, then parse the first number.
Ours, two ways: `greedy_outcomes` (one full teacher-forced forward per strength, batched over
problems on a shared prompt prefix) and `PushSweep` (what `perturbation.run` uses: the residual
entering the push layer computed once, then only the blocks above it, batched over strengths).
Prints per-problem agreement and the time ratios (target >= 20x over the naive way).

    python benchmarks/number_sweep.py --model qwen2.5-coder-0.5b-instruct --style chat --digits 3
"""

from __future__ import annotations

import argparse
import re
import time

import torch

from interp.analyses import number_probe
from interp.core.digit_answers import PushSweep, greedy_outcomes
from interp.data.arithmetic import addition_problems, digit_token_ids, encode_problems
from interp.interventions import Edit, PushAlong
from interp.models import load_model


def naive_correct(model, encoded, hook, push) -> list[bool]:
    """TransformerLens generate per problem with the push hooked in; parse the first number."""
    results = []
    for problem in encoded:
        tokens = torch.tensor([problem.prompt])
        with model.hooks(fwd_hooks=[(hook, lambda act, hook: push(act))]):
            out = model.generate(
                tokens,
                max_new_tokens=15,
                do_sample=False,
                verbose=False,
                stop_at_eos=True,
                return_type="tokens",
            )
        text = model.tokenizer.decode(out[0, len(problem.prompt) :])
        match = re.search(r"\d+", text)
        results.append(match is not None and int(match.group(0)) == problem.problem.total)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", default="qwen2.5-coder-0.5b-instruct")
    parser.add_argument("--digits", type=int, default=3)
    parser.add_argument("--style", default="chat", help="chat | numprobe | compact")
    parser.add_argument("--problems", type=int, default=200)
    parser.add_argument("--strengths", default="-1,-0.3,0,0.3,1")
    args = parser.parse_args()
    model = load_model(args.model)
    strengths = [float(s) for s in args.strengths.split(",")]
    probe = number_probe.run(model, n_problems=400, style=args.style, digits=(1, 2, 3))
    layer = probe.best_layer()
    hook = f"blocks.{layer}.hook_resid_post"
    encoded = encode_problems(
        addition_problems(args.problems, args.digits, seed=11), model.tokenizer, args.style
    )
    digit_ids = digit_token_ids(model.tokenizer)
    pushes = [PushAlong(probe.direction(layer), s, probe.unit_length(layer)) for s in strengths]

    baseline = greedy_outcomes(model, encoded, digit_ids, []).correct
    if not bool(baseline.any()):
        raise SystemExit(
            f"{args.model} gets none of these {args.digits}-digit sums right in style "
            f"{args.style!r}, so agreement would be trivial; try --style chat, fewer digits, or "
            f"another model (qwen2.5-coder-0.5b-instruct: --style chat --digits 3)"
        )
    print(f"unedited: {int(baseline.sum())} of {len(encoded)} sums right")

    start = time.perf_counter()
    full = [
        greedy_outcomes(model, encoded, digit_ids, [Edit(hook, p)]).correct.tolist() for p in pushes
    ]
    t_full = time.perf_counter() - start

    def push(amounts):
        return Edit(hook, PushAlong(probe.direction(layer), amounts, probe.unit_length(layer)))

    start = time.perf_counter()
    sweep = PushSweep(model, encoded, digit_ids, push, layer)
    t_setup = time.perf_counter() - start
    ours = [o.correct.tolist() for o in sweep.outcomes(strengths)]
    t_ours = time.perf_counter() - start
    start = time.perf_counter()
    naive = [naive_correct(model, encoded, hook, p) for p in pushes]
    t_naive = time.perf_counter() - start

    pairs = [(a, b) for o, n in zip(ours, naive) for a, b in zip(o, n)]
    agree = sum(a == b for a, b in pairs) / len(pairs)
    print(
        f"model {args.model} ({model.cfg.n_layers} layers), {args.problems} {args.digits}-digit "
        f"problems x {len(strengths)} strengths, push at layer {layer}"
    )
    for s, o, f, n in zip(strengths, ours, full, naive):
        print(
            f"  strength {s:+.2f}: correct sweep {sum(o):4d}  full {sum(f):4d}  naive {sum(n):4d}"
        )
    print(f"agreement with naive {agree:.2%}; sweep equals full forwards: {ours == full}")
    print(
        f"naive {t_naive:.1f}s, full forwards {t_full:.1f}s, layer-skip sweep {t_ours:.1f}s "
        f"(of which {t_setup:.1f}s the shared lower blocks); "
        f"speed-up over naive {t_naive / t_ours:.1f}x, layer skip over full forwards "
        f"{t_full / t_ours:.2f}x"
    )


if __name__ == "__main__":
    main()
