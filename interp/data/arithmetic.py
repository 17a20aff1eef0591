"""Seeded addition problems, their prompts, and the gold answer's tokens as the model splits them.

Three prompt styles (`ARITHMETIC_PROMPT_STYLES`; the number-line configs call the choice `style`):
  numprobe  "Question: What is the sum of {a} and {b}?\\nAnswer: " (the NumProbe prompt)
  chat      the model's chat template around "Reply with the number only. What is the sum of
            {a} and {b}?" (the fixed instruction first: every problem shares it, so shared-prefix
            forwards compute it once and each problem's own tokens start at its numbers)
  compact   "{a}+{b}=" (the toy adder the project trains)

`encode_problem` returns the prompt tokens, the answer tokens and where each operand ends, after
checking that the prompt's tokens are a prefix of the tokens of prompt + answer (otherwise teacher
forcing would feed the model a split it never produces).
"""

from __future__ import annotations

import dataclasses
import random
from dataclasses import dataclass
from typing import Any

CHAT_INSTRUCTION = "Reply with the number only. What is the sum of {a} and {b}?"
NUMPROBE_PROMPT = "Question: What is the sum of {a} and {b}?\nAnswer: "
COMPACT_PROMPT = "{a}+{b}="
# How an addition problem becomes a prompt (the number line); math problems have their own
# styles, interp.data.math_prompts.MATH_PROMPT_STYLES.
ARITHMETIC_PROMPT_STYLES = ("numprobe", "chat", "compact")


class ArithmeticDataError(ValueError):
    """Bad arithmetic-data request; the message says what to change."""


@dataclass(frozen=True)
class AdditionProblem:
    a: int
    b: int

    @property
    def total(self) -> int:
        return self.a + self.b


@dataclass(frozen=True)
class EncodedProblem:
    """One problem as tokens: the prompt, the gold answer, and positions of interest in the prompt."""

    problem: AdditionProblem
    prompt: list[int]
    answer: list[int]
    a_last: int  # index of the token holding the last character of a
    b_last: int  # index of the token holding the last character of b

    @property
    def last(self) -> int:
        return len(self.prompt) - 1

    def position(self, name: str) -> int:
        """Index of a named position: 'a_last', 'b_last' or 'last' (last prompt token)."""
        if name not in ("a_last", "b_last", "last"):
            raise ArithmeticDataError(f"unknown position {name!r}; use a_last, b_last or last")
        return getattr(self, name)

    def value_at(self, name: str) -> int:
        """The number a probe at that position reads: a, b, or the sum at the last token."""
        return {"a_last": self.problem.a, "b_last": self.problem.b, "last": self.problem.total}[
            name
        ]


def addition_problems(
    n: int, digits: int | tuple[int, ...] = 4, seed: int = 0
) -> list[AdditionProblem]:
    """`n` distinct problems whose operands have `digits` digits (one count, or drawn from a tuple)."""
    if n < 1:
        raise ArithmeticDataError("ask for at least one problem")
    counts = (digits,) if isinstance(digits, int) else tuple(digits)
    if not counts or min(counts) < 1:
        raise ArithmeticDataError(f"digit counts must be >= 1, got {digits!r}")
    capacity = sum((9 * 10 ** (d - 1)) ** 2 for d in counts)
    if n > capacity:
        raise ArithmeticDataError(f"only {capacity} distinct problems have {digits!r} digits")
    rng = random.Random(seed)
    seen: set[tuple[int, int]] = set()
    problems = []
    while len(problems) < n:
        a = _random_number(rng, rng.choice(counts))
        b = _random_number(rng, rng.choice(counts))
        if (a, b) not in seen:
            seen.add((a, b))
            problems.append(AdditionProblem(a, b))
    return problems


def _random_number(rng: random.Random, digits: int) -> int:
    return rng.randint(10 ** (digits - 1) if digits > 1 else 0, 10**digits - 1)


def prompt_text(problem: AdditionProblem, prompt_style: str, tokenizer=None) -> str:
    """The prompt string of one problem in a style of `ARITHMETIC_PROMPT_STYLES` (chat needs the
    tokenizer's template)."""
    if prompt_style == "numprobe":
        return NUMPROBE_PROMPT.format(a=problem.a, b=problem.b)
    if prompt_style == "compact":
        return COMPACT_PROMPT.format(a=problem.a, b=problem.b)
    if prompt_style == "chat":
        if tokenizer is None or not getattr(tokenizer, "chat_template", None):
            raise ArithmeticDataError(
                "the chat style needs a tokenizer with a chat template; use prompt style 'numprobe' "
                "for a base model"
            )
        messages = [{"role": "user", "content": CHAT_INSTRUCTION.format(a=problem.a, b=problem.b)}]
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    raise ArithmeticDataError(
        f"unknown prompt style {prompt_style!r}; use one of {ARITHMETIC_PROMPT_STYLES}"
    )


def prompt_template(prompt_style: str, tokenizer=None) -> str:
    """The whole prompt of `prompt_style` with `{a}` and `{b}` slots (chat: the rendered template),
    recorded in configs so that a result made with another template is never reused."""
    return prompt_text(AdditionProblem("{a}", "{b}"), prompt_style, tokenizer)  # type: ignore[arg-type]


def with_prompt_template(config: Any, tokenizer) -> Any:
    """`config` with its prompt style resolved for `tokenizer` (when it has a `style` field) and
    the `prompt_template` that style gives; computing it again gives the same config."""
    style = getattr(config, "style", None) or default_style(tokenizer)
    changes: dict[str, Any] = {"prompt_template": prompt_template(style, tokenizer)}
    if hasattr(config, "style"):
        changes["style"] = style
    return dataclasses.replace(config, **changes)


def default_style(tokenizer) -> str:
    """The default of `ARITHMETIC_PROMPT_STYLES`: chat when the tokenizer has a template (instruct models), NumProbe's prompt otherwise."""
    return "chat" if getattr(tokenizer, "chat_template", None) else "numprobe"


def encode_problem(problem: AdditionProblem, tokenizer, prompt_style: str) -> EncodedProblem:
    """Tokenize prompt and answer together and locate the operands; see module docstring."""
    text = prompt_text(problem, prompt_style, tokenizer)
    answer_text = str(problem.total)
    prompt_ids = tokenizer.encode(text, add_special_tokens=False)
    full_ids = tokenizer.encode(text + answer_text, add_special_tokens=False)
    if full_ids[: len(prompt_ids)] != prompt_ids:
        raise ArithmeticDataError(
            f"the tokenizer splits {text!r} differently when the answer follows; "
            f"this prompt style cannot be teacher-forced with this tokenizer"
        )
    answer_ids = full_ids[len(prompt_ids) :]
    if tokenizer.decode(answer_ids).strip() != answer_text:
        raise ArithmeticDataError(f"answer tokens decode to {tokenizer.decode(answer_ids)!r}")
    a_end = _operand_end(text, str(problem.a), start=0)
    b_end = _operand_end(text, str(problem.b), start=a_end + 1)
    encoding = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    offsets = encoding["offset_mapping"]
    return EncodedProblem(
        problem=problem,
        prompt=prompt_ids,
        answer=answer_ids,
        a_last=_token_at_char(offsets, a_end),
        b_last=_token_at_char(offsets, b_end),
    )


def _operand_end(text: str, operand: str, start: int) -> int:
    """Index of the last character of `operand` as a whole number in `text`, searching from `start`."""
    index = start
    while True:
        index = text.find(operand, index)
        if index < 0:
            raise ArithmeticDataError(f"operand {operand} not found in prompt {text!r}")
        before = text[index - 1] if index > 0 else " "
        after = text[index + len(operand)] if index + len(operand) < len(text) else " "
        if not before.isdigit() and not after.isdigit():
            return index + len(operand) - 1
        index += 1


def _token_at_char(offsets: list[tuple[int, int]], char_index: int) -> int:
    for token_index, (start, end) in enumerate(offsets):
        if start <= char_index < end:
            return token_index
    raise ArithmeticDataError(f"no token covers character {char_index}")


def encode_problems(
    problems: list[AdditionProblem], tokenizer, prompt_style: str
) -> list[EncodedProblem]:
    """Encode many problems; an empty list is an error (nothing to probe or sweep)."""
    if not problems:
        raise ArithmeticDataError("no problems given")
    return [encode_problem(p, tokenizer, prompt_style) for p in problems]


def digit_token_ids(tokenizer) -> set[int]:
    """Ids of tokens made of digits only: emitting one after an answer would lengthen the number."""
    return {i for i in range(len(tokenizer)) if tokenizer.decode([i]).isdigit()}
