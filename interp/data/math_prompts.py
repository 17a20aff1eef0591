"""Prompts for math problems: SEAL's chat prompt (answer in \\boxed{}), a plain prompt, and GSM8K few-shot.

SEAL: arXiv 2504.07986 (its chat prompt puts the \\boxed{} instruction after the question).

The chat prompt goes through the tokenizer's own chat template with `add_generation_prompt=True`, so
the string ends where the assistant's reply begins. Plain and few-shot prompts end in "Answer:";
generate with `STOP_STRINGS` so a model that goes on to invent the next question is cut off there.
`build_prompt` picks one of the three by its name in `MATH_PROMPT_STYLES`.
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
    "MATH_PROMPT_STYLES",
    "QUESTION_SLOT",
    "STOP_STRINGS",
    "build_prompt",
    "default_stop_strings",
    "prompt_template",
    "chat_prompt",
    "plain_prompt",
    "few_shot_exemplars",
    "few_shot_prompt",
    "exemplar_answer",
]

BOXED_INSTRUCTION = "Please reason step by step, and put your final answer within \\boxed{}."
STOP_STRINGS: tuple[str, ...] = ("\n\nQuestion:", "\nQuestion:")
# How a math problem becomes a prompt: chat = SEAL's \\boxed{} prompt through the chat template,
# plain = "Question: ...\\nAnswer:", few_shot = worked GSM8K exemplars first.
MATH_PROMPT_STYLES = ("chat", "plain", "few_shot")

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


def _has_chat_template(tokenizer: Any) -> bool:
    return getattr(tokenizer, "chat_template", None) is not None


def build_prompt(
    problem: str | MathProblem,
    tokenizer: Any,
    prompt_style: str = "chat",
    n_shots: int = 4,
    seed: int = 0,
) -> str:
    """The prompt of one problem in a style of `MATH_PROMPT_STYLES` (few_shot uses chat turns
    when the tokenizer has a chat template, plain text otherwise)."""
    if prompt_style == "chat":
        return chat_prompt(problem, tokenizer)
    if prompt_style == "plain":
        return plain_prompt(problem)
    if prompt_style == "few_shot":
        return few_shot_prompt(
            problem, n_shots, seed, tokenizer=tokenizer if _has_chat_template(tokenizer) else None
        )
    raise ValueError(f"prompt_style must be one of {MATH_PROMPT_STYLES}, got {prompt_style!r}")


def default_stop_strings(prompt_style: str, tokenizer: Any) -> tuple[str, ...]:
    """Plain and plain-text few-shot prompts stop where the model starts inventing a next question."""
    if prompt_style == "plain" or (
        prompt_style == "few_shot" and not _has_chat_template(tokenizer)
    ):
        return STOP_STRINGS
    return ()


# Stands in for the question when a prompt template is written down (see `prompt_template`).
QUESTION_SLOT = "{question}"


def prompt_template(
    tokenizer: Any, prompt_style: str = "chat", n_shots: int = 4, seed: int = 0
) -> str:
    """The prompt `build_prompt` writes around a question, with `QUESTION_SLOT` in its place.

    Saved in result configs: it holds everything besides the question that decides the prompt
    (chat template, instruction, exemplars), so a result made with other prompts is not reused.
    """
    return build_prompt(QUESTION_SLOT, tokenizer, prompt_style, n_shots, seed)
