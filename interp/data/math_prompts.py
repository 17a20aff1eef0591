"""Prompts for math problems: SEAL's chat prompt (answer in \\boxed{}), a plain prompt, and GSM8K few-shot.

The chat prompt goes through the tokenizer's own chat template with `add_generation_prompt=True`, so
the string ends where the assistant's reply begins. Plain and few-shot prompts end in "Answer:";
generate with `STOP_STRINGS` so a model that goes on to invent the next question is cut off there.
"""

from __future__ import annotations

import functools
import random
import re
from collections.abc import Sequence
from typing import Any

from interp.data.math_sets import MathProblem, load_gsm8k

__all__ = [
    "BOXED_INSTRUCTION",
    "STOP_STRINGS",
    "chat_prompt",
    "plain_prompt",
    "few_shot_exemplars",
    "few_shot_prompt",
    "exemplar_answer",
]

BOXED_INSTRUCTION = "Please reason step by step, and put your final answer within \\boxed{}."
STOP_STRINGS: tuple[str, ...] = ("\n\nQuestion:", "\nQuestion:")

_CALCULATOR = re.compile(r"<<[^<>]*>>")


def _question(problem: str | MathProblem) -> str:
    text = problem.question if isinstance(problem, MathProblem) else problem
    if not isinstance(text, str) or not text.strip():
        raise ValueError("the question is empty")
    return text.strip()


def _render_chat(tokenizer: Any, messages: list[dict[str, str]]) -> str:
    """Apply the tokenizer's chat template, ending with the assistant's turn; clear error if it has none."""
    if getattr(tokenizer, "chat_template", None) is None:
        name = getattr(tokenizer, "name_or_path", "") or type(tokenizer).__name__
        raise ValueError(
            f"tokenizer {name!r} has no chat template (base models usually lack one): use "
            f"plain_prompt / few_shot_prompt without a tokenizer, or set tokenizer.chat_template"
        )
    prompt = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    if not isinstance(prompt, str):
        raise TypeError(f"apply_chat_template returned {type(prompt).__name__}, expected str")
    return prompt


def chat_prompt(
    problem: str | MathProblem,
    tokenizer: Any,
    *,
    instruction: str = BOXED_INSTRUCTION,
    system: str | None = None,
) -> str:
    """SEAL's prompt: one user turn, the question then "\\n" + the \\boxed{} instruction, via the chat template."""
    messages = [{"role": "system", "content": system}] if system is not None else []
    content = _question(problem) + ("\n" + instruction if instruction else "")
    messages.append({"role": "user", "content": content})
    return _render_chat(tokenizer, messages)


def plain_prompt(problem: str | MathProblem) -> str:
    """A template-free prompt for base models: "Question: ...\\nAnswer:"."""
    return f"Question: {_question(problem)}\nAnswer:"


def exemplar_answer(problem: MathProblem) -> str:
    """A worked answer for few-shot use: the solution without GSM8K's <<calc>> notes, then the final sentence."""
    if problem.solution is None:
        raise ValueError(f"problem {problem.id} has no solution to use as an exemplar")
    solution = _CALCULATOR.sub("", problem.solution).strip()
    return f"{solution}\nThe final answer is {problem.answer}."


@functools.cache
def _gsm8k_train() -> tuple[MathProblem, ...]:
    return tuple(load_gsm8k("train"))


def few_shot_exemplars(
    k: int,
    seed: int = 0,
    *,
    pool: Sequence[MathProblem] | None = None,
    exclude: str | MathProblem | None = None,
) -> list[MathProblem]:
    """`k` exemplars drawn (seeded) from `pool` (default GSM8K train), never the question being asked."""
    pool = _gsm8k_train() if pool is None else pool
    if k < 0:
        raise ValueError(f"k must be >= 0, got {k}")
    skip = _question(exclude) if exclude is not None else None
    candidates = [p for p in pool if p.solution is not None and p.question.strip() != skip]
    if k > len(candidates):
        raise ValueError(
            f"asked for {k} exemplars but the pool has {len(candidates)} with solutions"
        )
    return random.Random(seed).sample(candidates, k)


def few_shot_prompt(
    problem: str | MathProblem,
    k: int = 4,
    seed: int = 0,
    *,
    tokenizer: Any = None,
    exemplars: Sequence[MathProblem] | None = None,
) -> str:
    """k worked GSM8K exemplars then the question; plain text, or chat turns when a tokenizer is given.

    Each exemplar answer ends "The final answer is X.", which `grading.extract_answer` reads.
    """
    question = _question(problem)
    shots = (
        list(exemplars) if exemplars is not None else few_shot_exemplars(k, seed, exclude=question)
    )
    if tokenizer is None:
        blocks = [f"{plain_prompt(shot)} {exemplar_answer(shot)}" for shot in shots]
        return "\n\n".join([*blocks, plain_prompt(question)])
    messages: list[dict[str, str]] = []
    for shot in shots:
        messages.append({"role": "user", "content": _question(shot)})
        messages.append({"role": "assistant", "content": exemplar_answer(shot)})
    messages.append({"role": "user", "content": question})
    return _render_chat(tokenizer, messages)
