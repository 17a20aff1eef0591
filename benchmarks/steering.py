"""SEAL's two hot paths against doing the same work plainly, timed side by side in one run.

1. Steered decoding (the SEAL edit at boundary tokens, through interp's loop) vs plain decoding of
   the same prompts and the same number of new tokens (interp's loop without edits, and Hugging
   Face `generate`); EOS is ignored so every run writes exactly `--new-tokens`. Target: <= 1.3x.
2. Thought-state extraction (`thought_states.boundary_states` at every layer + writing the chunk
   file) vs a plain forward (logits) over the same prompt + response tokens, same batches.
   Target: <= 1.2x.

Repeats are interleaved and the best of each is kept, so a busy machine slows both sides alike.

    python benchmarks/steering.py --model smollm2-135m-instruct
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import torch
from safetensors.torch import save_file
from timing import chat_token_ids, hf_greedy, interleaved_best

from interp.analyses.thought_states import boundary_states
from interp.core.tokens import left_pad
from interp.decoding import generate
from interp.interventions.steering_vector import SteeringVector
from interp.models import load_model
from interp.text.thoughts import segment

PROMPTS = [
    "Natalia sold clips to 48 of her friends in April, and then she sold half as many clips in "
    "May. How many clips did Natalia sell altogether in April and May?",
    "Solve for x: 3x + 7 = 22. Explain each step on its own line.",
    "A rectangle is 8 cm long and 5 cm wide. What are its area and perimeter?",
    "What is the sum of the first 20 positive integers? Show your reasoning.",
    "Tom reads 12 pages a day. How many days does he need for a 150-page book?",
    "Factor x^2 - 5x + 6 and check the answer.",
    "If a train travels 60 km in 45 minutes, what is its speed in km/h?",
    "How many ways can 3 books be arranged on a shelf? Explain.",
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--new-tokens", type=int, default=64)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    model = load_model(args.model)
    tokenizer = model.tokenizer
    prompts = chat_token_ids(tokenizer, PROMPTS[: args.batch])
    layer = round(0.7 * model.cfg.n_layers)
    vector = SteeringVector(
        torch.randn(1, model.cfg.d_model, generator=torch.Generator().manual_seed(0)),
        (layer,),
        counts={"execution": 1, "reflection": 1},
    )
    steer = [vector.edit(model, layer, alpha=1.0, span="response")]
    settings = dict(max_new_tokens=args.new_tokens, stop_at_eos=False, batch_size=args.batch)
    tokens, mask = left_pad(prompts, tokenizer.pad_token_id)
    hf = model.original_model

    def steered():
        return generate(model, prompts, edit_list=steer, **settings)

    def plain():
        return generate(model, prompts, **settings)

    def hf_generate():
        hf_greedy(hf, tokens, mask, args.new_tokens, tokenizer.pad_token_id)

    touched = sum(sum(e) for e in steered().edited)
    decoding = interleaved_best(
        args.repeats, {"steered": steered, "plain": plain, "hf": hf_generate}
    )
    print(
        f"model {args.model}, batch {args.batch}, {args.new_tokens} new tokens, best of "
        f"{args.repeats}; steering at layer {layer} touched {touched} boundary tokens"
    )
    print("| steered (interp) | plain (interp) | HF generate | steered / plain | steered / HF |")
    print("| --- | --- | --- | --- | --- |")
    print(
        f"| {decoding['steered']:.2f} s | {decoding['plain']:.2f} s | {decoding['hf']:.2f} s | "
        f"{decoding['steered'] / decoding['plain']:.2f}x | {decoding['steered'] / decoding['hf']:.2f}x |"
    )

    # Thought states over the plain responses: every layer, every boundary of the response.
    responses = plain()
    sequences = [p + t for p, t in zip(responses.prompt_tokens, responses.tokens)]
    positions = [
        [
            t.boundary
            for t in segment(s, len(p), tokenizer, span="response")
            if t.boundary is not None
        ]
        for s, p in zip(sequences, responses.prompt_tokens)
    ]
    layers = list(range(model.cfg.n_layers))
    batch_tokens = left_pad(sequences, tokenizer.pad_token_id)
    folder = Path(tempfile.mkdtemp(prefix="bench_states_"))

    def extraction():
        states = boundary_states(model, sequences, positions, layers, batch_size=args.batch)
        save_file({"states": states.contiguous()}, str(folder / "chunk_00000.safetensors"))

    def forward():
        with torch.no_grad():
            model(batch_tokens[0], attention_mask=batch_tokens[1])

    states_times = interleaved_best(args.repeats, {"extraction": extraction, "forward": forward})
    n_boundaries = sum(map(len, positions))
    print(
        f"\nthought states: {len(sequences)} traces of {batch_tokens[0].shape[1]} tokens, "
        f"{n_boundaries} boundaries, {len(layers)} layers"
    )
    print("| extraction (all layers + chunk file) | plain forward (logits) | ratio |")
    print("| --- | --- | --- |")
    print(
        f"| {states_times['extraction']:.2f} s | {states_times['forward']:.2f} s | "
        f"{states_times['extraction'] / states_times['forward']:.2f}x |"
    )


if __name__ == "__main__":
    main()
