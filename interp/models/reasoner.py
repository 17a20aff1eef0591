"""The SEAL model organism: smollm2-135m-instruct with a LoRA trained on chains of thought whose
thoughts are known (`interp.data.reasoning_traces`), so it reflects at rates set by construction.

    model = load_reasoner()                      # = load_model("reasoner"): the adapter merged in
    rates = measure_rates(model, held_out_problems(64))
    rates.stats["reflection_after_right"], rates.reference["reflection_after_right"]

The adapter is a "lora" checkpoint (`interp.training.checkpoints`) written by
`scripts/train_reasoner.py`; it is looked for in `interp/assets/reasoner/`, then in the model
cache (`$INTERP_CACHE/reasoner`, else `~/.cache/interp/reasoner`).

Tokenization: SmolLM2's byte-level BPE splits a blank line before a word into two "\\n" tokens, so
SEAL's boundary rule (a token containing "\\n\\n") would see no boundary in canonically encoded
text. Traces are therefore encoded thought by thought, joined by the single blank-line token, and
the organism learns to write that token: its thoughts have boundaries SEAL can read and steer.
"""

from __future__ import annotations

import os
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from interp.data.reasoning_traces import (
    BLANK_LINE,
    THINK_CLOSE,
    THINK_OPEN,
    ReasoningTrace,
    TraceConfig,
    WordProblem,
    parse_response,
    reasoner_prompt,
    trace_statistics,
    write_trace,
)
from interp.models.gguf_cache import default_cache_dir
from interp.text.thoughts import classify_thought, segment
from interp.training.data import EncodedPair, end_of_answer_ids

__all__ = [
    "REASONER_NAME",
    "BASE_MODEL",
    "DEFAULT_REASONER_PATH",
    "reasoner_folder",
    "blank_line_id",
    "encode_trace",
    "load_reasoner",
    "load_reasoner_adapter",
    "ReasonerRates",
    "measure_rates",
    "compare_rates",
]

REASONER_NAME = "reasoner"
BASE_MODEL = "smollm2-135m-instruct"
DEFAULT_REASONER_PATH = Path(__file__).resolve().parents[1] / "assets" / REASONER_NAME


def reasoner_folder(
    path: str | os.PathLike | None = None, cache_dir: str | os.PathLike | None = None
) -> Path:
    """The adapter folder: `path`, else the shipped asset, else the cache (which may not exist yet)."""
    if path is not None:
        return Path(path)
    if (DEFAULT_REASONER_PATH / "interp.json").is_file():
        return DEFAULT_REASONER_PATH
    return Path(cache_dir or default_cache_dir()) / REASONER_NAME


def blank_line_id(tokenizer) -> int:
    """The one token of "\\n\\n"; a tokenizer without one cannot mark SEAL boundaries this way."""
    ids = tokenizer.encode(BLANK_LINE, add_special_tokens=False)
    if len(ids) != 1:
        raise ValueError(
            f"this tokenizer writes a blank line as {len(ids)} tokens {ids}; the organism needs a "
            f"single blank-line token so that SEAL's boundary rule sees every thought boundary"
        )
    return int(ids[0])


def encode_trace(tokenizer, trace: ReasoningTrace, prompt: str | None = None) -> EncodedPair:
    """Prompt and response ids, the response encoded thought by thought and joined by the
    blank-line token (decoding gives `trace.response` exactly), ending with the end-of-turn token."""
    prompt = reasoner_prompt(trace.problem, tokenizer) if prompt is None else prompt
    separator = blank_line_id(tokenizer)

    def encode(text: str) -> list[int]:
        return tokenizer.encode(text, add_special_tokens=False)

    answer = encode(f"{THINK_OPEN}\n")
    for index, thought in enumerate(trace.thoughts):
        if index:
            answer.append(separator)
        answer += encode(thought.text)
    answer += encode(f"\n{THINK_CLOSE}\n\\boxed{{{trace.answer}}}")
    answer += end_of_answer_ids(tokenizer)
    return EncodedPair(tuple(encode(prompt)), tuple(answer), trace.problem.id)


def load_reasoner(
    path: str | os.PathLike | None = None,
    device: str = "cpu",
    cache_dir: str | os.PathLike | None = None,
    dtype: torch.dtype | str = torch.float32,
):
    """Boot the organism: the base model with the trained adapter merged, named `reasoner`.

    Without `path` this is `load_model("reasoner")`. The merge is done in float32 and the sum
    cast to `dtype` (merging into bfloat16 weights would round most of the adapter away).
    """
    from interp.models.loading import load_model, load_with_adapter

    if path is None:  # the preset: shipped adapter, else the cache, else an error saying how
        return load_model(REASONER_NAME, device=device, dtype=dtype, cache_dir=cache_dir)
    return load_with_adapter(BASE_MODEL, path, REASONER_NAME, device, dtype, cache_dir)


def load_reasoner_adapter(model, path: str | os.PathLike | None = None):
    """The trained LoRA for the base model `model` (any dtype), checked against it; apply it with
    `with lora.applied(model): ...` (the hook adds its output, so nothing is rounded away)."""
    from interp.training.checkpoints import load

    folder = reasoner_folder(path)
    if not (folder / "interp.json").is_file():
        raise FileNotFoundError(
            f"no reasoner adapter at {folder}; train it with "
            f"`python scripts/train_reasoner.py --out {folder}` (see its --help for the cost)"
        )
    return load(folder, model, kind="lora")  # checks base model, weights (same dtype), shapes


@dataclass
class ReasonerRates:
    """The organism's rates on held-out problems next to the generator's on the same problems."""

    stats: dict[str, float]
    reference: dict[str, float]
    texts: list[str] = field(default_factory=list)
    generation: dict[str, Any] = field(default_factory=dict)

    def table(self) -> list[dict[str, Any]]:
        """One row per rate the generator also has: organism, generator, difference."""
        return [
            {
                "rate": key,
                "organism": self.stats[key],
                "generator": self.reference[key],
                "difference": self.stats[key] - self.reference[key],
            }
            for key in self.stats
            if key in self.reference and key != "responses"
        ]


def measure_rates(
    model,
    problems: Sequence[WordProblem],
    trace_config: TraceConfig | None = None,
    *,
    max_new_tokens: int = 200,
    batch_size: int = 16,
    do_sample: bool = True,
    temperature: float = 1.0,
    seed: int = 0,
    reference_repeats: int = 20,
    progress: bool = False,
) -> ReasonerRates:
    """Generate an answer per problem and compare its thought rates with the generator's.

    Sampling at temperature 1 (the default) is what reproduces the training rates; greedy decoding
    picks a reflection only where the model puts more than half its mass on one. The reference is
    the generator's own traces for the same problems, `reference_repeats` per problem (seeded).
    """
    from interp.decoding import generate

    if not problems:
        raise ValueError("give at least one problem to measure the rates on")
    trace_config = trace_config or TraceConfig()
    prompts = [reasoner_prompt(p, model.tokenizer) for p in problems]
    settings = dict(
        max_new_tokens=max_new_tokens,
        batch_size=batch_size,
        do_sample=do_sample,
        temperature=temperature,
        seed=seed,
    )
    generation = generate(model, prompts, progress=progress, **settings)
    rates = compare_rates(generation.texts, problems, trace_config, seed, reference_repeats)
    rates.stats["seal_segments_agree"] = _segments_agree(model.tokenizer, generation)
    rates.generation = settings
    return rates


def compare_rates(
    texts: Sequence[str],
    problems: Sequence[WordProblem],
    trace_config: TraceConfig | None = None,
    seed: int = 0,
    reference_repeats: int = 20,
) -> ReasonerRates:
    """The thought rates of responses already written for `problems`, next to the generator's
    own traces for the same problems (`reference_repeats` per problem, seeded)."""
    trace_config = trace_config or TraceConfig()
    reference_traces = _reference_traces(problems, trace_config, seed, reference_repeats)
    return ReasonerRates(
        stats=trace_statistics(texts, [p.answer for p in problems]),
        reference=trace_statistics(
            [t.response for t in reference_traces], [t.answer for t in reference_traces]
        ),
        texts=list(texts),
    )


def _segments_agree(tokenizer, generation) -> float:
    """Share of responses whose thoughts, as SEAL's token-level segmenter finds them, carry the
    labels the text gives: whether every blank line was written as one boundary token."""
    agree = 0
    for prompt, tokens, text in zip(
        generation.prompt_tokens, generation.tokens, generation.texts, strict=True
    ):
        by_text = [classify_thought(t) for t in parse_response(text).thoughts]
        ids = list(prompt) + list(tokens)
        by_tokens = segment(ids, len(prompt), tokenizer, span="think")
        agree += [t.label for t in by_tokens if t.text.strip()] == by_text
    return agree / len(generation.texts)


def _reference_traces(
    problems: Sequence[WordProblem], config: TraceConfig, seed: int, repeats: int
) -> list[ReasoningTrace]:
    """`repeats` generator traces per problem: the rates the organism was trained to, on these
    very problems, with little sampling noise of their own."""
    rng = random.Random(seed)
    return [write_trace(p, rng, config) for p in problems for _ in range(repeats)]
