"""Helpers shared by the benchmarks: timing that a noisy neighbour inflates less, chat prompts,
and Hugging Face's own greedy `generate` as the baseline."""

import time
from collections.abc import Callable, Sequence

import torch


def best_of(repeats: int, function: Callable[[], object]) -> float:
    """The shortest wall time, in seconds, of `repeats` calls of `function`."""
    return interleaved_best(repeats, {"only": function})["only"]


def interleaved_best(repeats: int, functions: dict[str, Callable[[], object]]) -> dict[str, float]:
    """Best wall time of each function, the functions taking turns, so load changes hit all alike."""
    return {name: min(times) for name, times in interleaved_times(repeats, functions).items()}


def interleaved_times(
    repeats: int, functions: dict[str, Callable[[], object]]
) -> dict[str, list[float]]:
    """Every wall time, in seconds, of each function, the functions taking turns (a b a b ...)."""
    times: dict[str, list[float]] = {name: [] for name in functions}
    for _ in range(repeats):
        for name, function in functions.items():
            start = time.perf_counter()
            function()
            times[name].append(time.perf_counter() - start)
    return times


def chat_token_ids(tokenizer, questions: Sequence[str]) -> list[list[int]]:
    """Each question as one user turn of the tokenizer's chat template, as token ids."""
    chats = [
        tokenizer.apply_chat_template(
            [{"role": "user", "content": q}], tokenize=False, add_generation_prompt=True
        )
        for q in questions
    ]
    return [tokenizer.encode(c, add_special_tokens=False) for c in chats]


def hf_greedy(hf_model, tokens, mask, new_tokens: int, pad_token_id: int) -> None:
    """Hugging Face greedy `generate` writing exactly `new_tokens` tokens (EOS ignored)."""
    with torch.no_grad():
        hf_model.generate(
            tokens,
            attention_mask=mask,
            max_new_tokens=new_tokens,
            min_new_tokens=new_tokens,
            do_sample=False,
            pad_token_id=pad_token_id,
        )
