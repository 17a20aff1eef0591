"""Training pairs: a prompt and the answer the model should learn to write after it.

GSM8K train with the chat prompt of `interp.data.math_prompts` by default; any JSONL of
(prompt, answer) rows, or of math problems, works too. Pairs are tokenized without added special
tokens (the chat template already holds them) and the answer ends with the end-of-turn token, so
the edit also learns where to stop.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from interp.data.jsonl import read_numbered_jsonl
from interp.data.math_sets import MathProblem, load_gsm8k, subset

_CALCULATOR = re.compile(r"<<[^<>]*>>")


@dataclass(frozen=True)
class Pair:
    """One training example: the prompt text and the answer text that follows it."""

    prompt: str
    answer: str
    id: str = ""


@dataclass(frozen=True)
class EncodedPair:
    """Token ids of a pair; `answer_ids` may have been truncated (`truncated` says so)."""

    prompt_ids: tuple[int, ...]
    answer_ids: tuple[int, ...]
    id: str = ""
    truncated: bool = False

    @property
    def length(self) -> int:
        return len(self.prompt_ids) + len(self.answer_ids)


def worked_answer(problem: MathProblem) -> str:
    """A GSM8K solution as the model should write it: the steps, then the answer in \\boxed{}."""
    if problem.solution is None:
        raise ValueError(
            f"problem {problem.id!r} has no worked solution; training needs one (GSM8K has them)"
        )
    steps = _CALCULATOR.sub("", problem.solution).strip()
    return f"{steps}\nThe answer is \\boxed{{{problem.answer}}}."


def pairs_from_problems(
    problems: Sequence[MathProblem], tokenizer, prompt_style: str = "chat"
) -> list[Pair]:
    """Math problems as pairs: the prompt in `prompt_style` ("chat" or "plain"), the worked answer."""
    from interp.data.math_prompts import chat_prompt, plain_prompt

    if prompt_style not in ("chat", "plain"):
        raise ValueError(f"prompt_style must be 'chat' or 'plain', got {prompt_style!r}")
    pairs = []
    for problem in problems:
        prompt = (
            chat_prompt(problem, tokenizer) if prompt_style == "chat" else plain_prompt(problem)
        )
        if prompt_style == "plain":
            prompt += " "
        pairs.append(Pair(prompt, worked_answer(problem), problem.id))
    return pairs


def gsm8k_pairs(
    tokenizer, n: int | None = None, seed: int = 0, split: str = "train", prompt_style="chat"
) -> list[Pair]:
    """GSM8K (train by default) as training pairs; `n` draws a seeded subset."""
    problems = load_gsm8k(split)
    if n is not None:
        problems = subset(problems, n, seed)
    return pairs_from_problems(problems, tokenizer, prompt_style)


def load_pairs_jsonl(
    path: str | os.PathLike, prompt_field: str = "prompt", answer_field: str = "answer"
) -> list[Pair]:
    """Read (prompt, answer) rows from a JSONL file; a bad row names its line and what is wrong."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no such JSONL file: {path}")
    pairs = []
    for lineno, row in read_numbered_jsonl(path):
        for name in (prompt_field, answer_field):
            if not isinstance(row.get(name), str) or not row[name]:
                present = ", ".join(sorted(row)) or "none"
                raise ValueError(
                    f"{path}:{lineno}: field {name!r} is missing or not a non-empty string "
                    f"(fields present: {present}); set prompt_field/answer_field"
                )
        pairs.append(Pair(row[prompt_field], row[answer_field], f"{path.stem}/{lineno}"))
    if not pairs:
        raise ValueError(f"{path} holds no rows; give at least one (prompt, answer) pair")
    return pairs


def end_of_answer_ids(tokenizer) -> list[int]:
    """The token(s) that close an assistant turn: the chat template's end-of-turn, else EOS."""
    for token in ("<|im_end|>", "<|eot_id|>", "<end_of_turn>"):
        token_id = tokenizer.convert_tokens_to_ids(token)
        if isinstance(token_id, int) and token_id != tokenizer.unk_token_id and token_id >= 0:
            if tokenizer.convert_ids_to_tokens(token_id) == token:
                return [token_id]
    if tokenizer.eos_token_id is not None:
        return [int(tokenizer.eos_token_id)]
    return []


def encode_pairs(
    pairs: Sequence[Pair],
    tokenizer,
    *,
    max_answer_tokens: int | None = None,
    max_length: int | None = None,
    add_end_token: bool = True,
) -> list[EncodedPair]:
    """Tokenize pairs (no added special tokens); cut answers to `max_answer_tokens`.

    A prompt that alone reaches `max_length` is an error: there would be no answer left to learn.
    """
    if not pairs:
        raise ValueError("no training pairs given")
    end = end_of_answer_ids(tokenizer) if add_end_token else []
    encoded = []
    for index, pair in enumerate(pairs):
        prompt_ids = tokenizer.encode(pair.prompt, add_special_tokens=False)
        answer_ids = tokenizer.encode(pair.answer, add_special_tokens=False) + end
        if not prompt_ids or not answer_ids:
            raise ValueError(f"pair {index} ({pair.id!r}) has an empty prompt or answer")
        limit = len(answer_ids)
        if max_answer_tokens is not None:
            limit = min(limit, max_answer_tokens)
        if max_length is not None:
            if len(prompt_ids) >= max_length:
                raise ValueError(
                    f"pair {index} ({pair.id!r}) has a prompt of {len(prompt_ids)} tokens, which "
                    f"reaches max_length={max_length}; raise max_length or shorten the prompt"
                )
            limit = min(limit, max_length - len(prompt_ids))
        encoded.append(
            EncodedPair(
                tuple(prompt_ids),
                tuple(answer_ids[:limit]),
                pair.id,
                truncated=limit < len(answer_ids),
            )
        )
    return encoded
