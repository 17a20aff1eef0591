"""Thoughts of a chain of thought (SEAL, arXiv 2504.07986): split a response at blank lines and classify each piece.

A *boundary* is any token whose text contains a blank line ("\\n\\n"); the thought a boundary opens
runs to the next boundary or to the end of the span. Reasoning models are split only inside
`<think>`..`</think>` (`span="think"`); a model without a think span can be split over its whole
response (`span="response"`), an explicit option recorded with every result.

Classes, from the lower-cased, stripped text of a thought (SEAL's keyword rule):
reflection if it starts with a reflection prefix or contains a reflection phrase; else transition
by the same test with the transition lists; else execution. Reflection wins over transition.

The span and boundary rules are the very position rules the steering edit uses
(`steering_positions`), so the states read at boundaries and the positions steered are the same.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from interp.core.positions import (
    GeneratedPositions,
    InsideSpan,
    PositionRule,
    TokenMatch,
    TokenState,
    boundary_tokens,
)

__all__ = [
    "EXECUTION",
    "REFLECTION",
    "TRANSITION",
    "CLASSES",
    "SPANS",
    "ThoughtKeywords",
    "SEAL_KEYWORDS",
    "classify_thought",
    "Thought",
    "Response",
    "span_rule",
    "steering_positions",
    "resolve_span",
    "segment",
    "segment_response",
]

EXECUTION, REFLECTION, TRANSITION = "execution", "reflection", "transition"
CLASSES: tuple[str, ...] = (EXECUTION, REFLECTION, TRANSITION)
SPANS: tuple[str, ...] = ("think", "response")
BLANK_LINE = "\n\n"


@dataclass(frozen=True)
class ThoughtKeywords:
    """The keyword lists of the classifier; matching is on lower-cased text."""

    reflection_prefixes: tuple[str, ...] = ("wait",)
    reflection_phrases: tuple[str, ...] = (
        "verify",
        "make sure",
        "hold on",
        "think again",
        "'s correct",
        "'s incorrect",
        "let me check",
        "seems right",
    )
    transition_prefixes: tuple[str, ...] = ("alternatively",)
    transition_phrases: tuple[str, ...] = (
        "think differently",
        "another way",
        "another approach",
        "another method",
        "another solution",
        "another strategy",
        "another technique",
    )

    def __post_init__(self) -> None:
        for field in dataclasses.fields(self):
            value = tuple(getattr(self, field.name))
            if any(not isinstance(v, str) or not v.strip() for v in value):
                raise ValueError(f"ThoughtKeywords.{field.name} must hold non-empty strings")
            object.__setattr__(self, field.name, tuple(v.lower() for v in value))

    def to_dict(self) -> dict[str, list[str]]:
        return {f.name: list(getattr(self, f.name)) for f in dataclasses.fields(self)}


SEAL_KEYWORDS = ThoughtKeywords()
"""The lists of SEAL's code, with its misspelled "think differenly" corrected to "think differently"."""


def _normalise(text: str) -> str:
    """Lower-case and strip; curly apostrophes count as straight ones ("it’s correct")."""
    return text.strip().lower().replace("\u2019", "'")


def classify_thought(text: str, keywords: ThoughtKeywords = SEAL_KEYWORDS) -> str:
    """execution / reflection / transition by keywords; reflection takes precedence."""
    text = _normalise(text)
    if text.startswith(keywords.reflection_prefixes) or any(
        phrase in text for phrase in keywords.reflection_phrases
    ):
        return REFLECTION
    if text.startswith(keywords.transition_prefixes) or any(
        phrase in text for phrase in keywords.transition_phrases
    ):
        return TRANSITION
    return EXECUTION


@dataclass(frozen=True)
class Thought:
    """One thought: its class, text, and where it sits in prompt + response (token positions).

    `boundary` is the position of the boundary token that opens it (where its hidden state is
    read and where steering adds the vector); None for the opening piece of a span, which no
    boundary precedes. Its own tokens are `start`..`end` (exclusive), boundary excluded.
    """

    index: int
    label: str
    text: str
    boundary: int | None
    start: int
    end: int

    @property
    def n_tokens(self) -> int:
        return self.end - self.start


@dataclass(frozen=True)
class Response:
    """A model's response to a prompt, as token ids, with what is known about it."""

    id: str
    prompt_tokens: tuple[int, ...]
    tokens: tuple[int, ...]
    correct: bool | None = None
    level: int | None = None
    source: str = ""
    hit_cap: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "prompt_tokens", tuple(int(t) for t in self.prompt_tokens))
        object.__setattr__(self, "tokens", tuple(int(t) for t in self.tokens))
        if not self.prompt_tokens:
            raise ValueError(f"response {self.id!r} has an empty prompt")

    @property
    def all_tokens(self) -> tuple[int, ...]:
        return self.prompt_tokens + self.tokens

    @property
    def group(self) -> str:
        """Difficulty group: "level N" for MATH problems, else the source (e.g. gsm8k)."""
        if self.level is not None:
            return f"level {self.level}"
        return self.source.split("/")[0] or "unknown"

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["prompt_tokens"] = list(self.prompt_tokens)
        data["tokens"] = list(self.tokens)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Response:
        missing = {"id", "prompt_tokens", "tokens"} - set(data)
        if missing:
            raise ValueError(f"a response row lacks {sorted(missing)} (fields: {sorted(data)})")
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


def span_rule(
    tokenizer, span: str, open_text: str = "<think>", close_text: str = "</think>"
) -> PositionRule:
    """Generated positions inside `<think>`..`</think>` ("think") or all of them ("response")."""
    if span == "response":
        return GeneratedPositions()
    if span == "think":
        return InsideSpan.from_strings(tokenizer, open_text, close_text) & GeneratedPositions()
    raise ValueError(f"span must be one of {SPANS}, got {span!r}")


def steering_positions(
    tokenizer, span: str, open_text: str = "<think>", close_text: str = "</think>"
) -> PositionRule:
    """SEAL's steering positions: boundary tokens inside the span (each touched when fed back)."""
    return boundary_tokens(tokenizer) & span_rule(tokenizer, span, open_text, close_text)


def resolve_span(tokenizer, span: str, open_text: str = "<think>") -> str:
    """ "auto" becomes "think" when `<think>` is one token of the vocabulary, else "response"."""
    if span in SPANS:
        return span
    if span != "auto":
        raise ValueError(f"span must be 'auto' or one of {SPANS}, got {span!r}")
    return (
        "think" if len(tokenizer.encode(open_text, add_special_tokens=False)) == 1 else "response"
    )


def _boundary_split(tokenizer, token_id: int) -> tuple[str, str]:
    """A boundary token's text before its first blank line, and after its last one."""
    text = tokenizer.decode([token_id])
    return text.split(BLANK_LINE)[0], text.split(BLANK_LINE)[-1]


def segment(
    tokens: Sequence[int],
    prompt_length: int,
    tokenizer,
    *,
    span: str = "think",
    keywords: ThoughtKeywords = SEAL_KEYWORDS,
    boundaries: TokenMatch | None = None,
) -> list[Thought]:
    """The thoughts of prompt + response `tokens` (the response starts at `prompt_length`).

    The text of a thought is its own tokens, plus whatever its boundary token holds after the
    blank line (a token such as "\\n\\nWait" is rare, but then the thought starts with "Wait").
    """
    if not 0 < prompt_length <= len(tokens):
        raise ValueError(
            f"prompt_length {prompt_length} must lie in 1..{len(tokens)} (the prompt + response length)"
        )
    ids = torch.tensor([list(tokens)], dtype=torch.long)
    state = TokenState.for_tokens(ids, prompt_lengths=[prompt_length])
    inside = span_rule(tokenizer, span).mask(state)[0].tolist()
    boundaries = boundaries or boundary_tokens(tokenizer)
    is_boundary = boundaries.mask(state)[0].tolist()

    pieces: list[tuple[int | None, int, int]] = []  # (boundary, start, end)
    current: list[int] | None = None  # [boundary or -1, start, end]
    for position, (in_span, boundary) in enumerate(zip(inside, is_boundary)):
        if not in_span:
            if current is not None:
                pieces.append((current[0], current[1], current[2]))
                current = None
            continue
        if boundary:
            if current is not None:
                pieces.append((current[0], current[1], current[2]))
            current = [position, position + 1, position + 1]
        else:
            if current is None:
                current = [-1, position, position]
            current[2] = position + 1
    if current is not None:
        pieces.append((current[0], current[1], current[2]))

    thoughts = []
    for index, (boundary, start, end) in enumerate(pieces):
        text = tokenizer.decode(list(tokens[start:end]))
        if boundary >= 0:
            text = _boundary_split(tokenizer, tokens[boundary])[1] + text
        if end < len(tokens) and is_boundary[end] and inside[end]:
            text = text + _boundary_split(tokenizer, tokens[end])[0]
        thoughts.append(
            Thought(
                index=index,
                label=classify_thought(text, keywords),
                text=text,
                boundary=None if boundary < 0 else boundary,
                start=start,
                end=end,
            )
        )
    return thoughts


def segment_response(
    response: Response,
    tokenizer,
    *,
    span: str = "think",
    keywords: ThoughtKeywords = SEAL_KEYWORDS,
    boundaries: TokenMatch | None = None,
) -> list[Thought]:
    """`segment` on a `Response`; positions count from the start of its prompt."""
    return segment(
        response.all_tokens,
        len(response.prompt_tokens),
        tokenizer,
        span=span,
        keywords=keywords,
        boundaries=boundaries,
    )
