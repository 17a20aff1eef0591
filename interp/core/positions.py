"""Which positions an edit touches.

A position rule turns a `TokenState` (the tokens of every sequence so far, where its prompt ends,
which positions the current forward covers) into a boolean mask over the positions of that
forward. Every rule here is *causal*: whether position j is touched depends only on tokens 0..j and
on where the prompt ends. That is what makes an edit give the same result with and without the KV
cache (with the cache each position is computed once; without it, again at every step) and batched
the same as one by one (positions are counted from the first real token, never from left padding).
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from jaxtyping import Bool, Int
from torch import Tensor


@dataclass
class TokenState:
    """Where the positions of the current forward sit in their sequences.

    tokens:         every token so far, including the ones this forward feeds.
    real:           True at real tokens, False at padding. Padding is usually on the left, but may
                    sit anywhere (between a shared prompt prefix and each problem's own tokens).
    prompt_lengths: real tokens of each prompt; the real tokens after them are generated (or, in
                    a teacher-forced forward, the answer).
    chunk_start:    index of the first position this forward feeds (0 without cache, or on the prompt).
    active:         per-sequence switch; an edit touches nothing in a sequence that is switched off
                    (KL-budget decoding turns sequences off).
    edit_limit:     per sequence, the real-token index from which nothing is edited (KL-budget
                    decoding); every rule ANDs with `is_real()`, so limiting it limits every rule.

    States are built and published by `interp.core.runner` (and the decoding loop through it).

    Rules count positions in real tokens (`real_index`), so padding never shifts them.
    """

    tokens: Int[Tensor, "batch total"]
    real: Bool[Tensor, "batch total"]
    prompt_lengths: Int[Tensor, " batch"]
    chunk_start: int = 0
    active: Bool[Tensor, " batch"] | None = None
    edit_limit: Int[Tensor, " batch"] | None = None
    touched: Bool[Tensor, "batch total"] | None = field(default=None, repr=False)

    @classmethod
    def for_tokens(
        cls,
        tokens: Int[Tensor, "batch total"],
        attention_mask: Int[Tensor, "batch total"] | None = None,
        prompt_lengths: Sequence[int] | Int[Tensor, " batch"] | None = None,
    ) -> TokenState:
        """State for one plain forward over `tokens` (padding read from the mask).

        Without `prompt_lengths` every real token counts as prompt; with them, the tokens after
        the prompt count as generated (teacher forcing of an answer).
        """
        if attention_mask is None:
            real = torch.ones_like(tokens, dtype=torch.bool)
        else:
            real = attention_mask.bool()
        if prompt_lengths is None:
            lengths = real.sum(-1)
        else:
            lengths = torch.as_tensor(prompt_lengths, dtype=torch.long, device=tokens.device)
        return cls(tokens=tokens, real=real, prompt_lengths=lengths)

    def extend(self, new_tokens: Int[Tensor, " batch"]) -> None:
        """Append one real token per sequence (the decoding loop's step)."""
        self.tokens = torch.cat([self.tokens, new_tokens[:, None]], dim=1)
        self.real = torch.cat([self.real, torch.ones_like(self.real[:, :1])], dim=1)

    @property
    def real_index(self) -> Int[Tensor, "batch total"]:
        """How many real tokens come before each position (its index in the unpadded sequence)."""
        return self.real.long().cumsum(-1) - 1

    @property
    def n_generated(self) -> Int[Tensor, " batch"]:
        """How many tokens each sequence has generated so far (real tokens past the prompt)."""
        return (self.real.sum(-1) - self.prompt_lengths).clamp(min=0)

    def is_real(self) -> Bool[Tensor, "batch chunk"]:
        """True at real tokens of the current forward (below `edit_limit`), False at padding."""
        real = self.real[:, self.chunk_start :]
        if self.edit_limit is None:
            return real
        return real & (self.chunk_index() < self.edit_limit[:, None])

    def chunk_index(self) -> Int[Tensor, "batch chunk"]:
        """Real-token index of each position of the current forward."""
        return self.real_index[:, self.chunk_start :]

    def record(self, mask: Bool[Tensor, "batch chunk"]) -> None:
        """Remember which positions an edit touched (read back by generation and tests)."""
        if self.touched is None:
            self.touched = torch.zeros_like(self.tokens, dtype=torch.bool)
        if self.touched.shape[1] < self.tokens.shape[1]:
            grow = self.tokens.shape[1] - self.touched.shape[1]
            self.touched = torch.nn.functional.pad(self.touched, (0, grow))
        self.touched[:, self.chunk_start :] |= mask


_CURRENT: contextvars.ContextVar[TokenState | None] = contextvars.ContextVar(
    "interp_token_state", default=None
)


@contextlib.contextmanager
def token_state(state: TokenState) -> Iterator[TokenState]:
    """Make `state` the one edits read during the forwards inside this block (see the runner)."""
    token = _CURRENT.set(state)
    try:
        yield state
    finally:
        _CURRENT.reset(token)


def current_state() -> TokenState | None:
    """The state published by `interp.core.runner`, or None in a bare forward."""
    return _CURRENT.get()


class PositionRule:
    """Base of all rules: `mask(state)` says which positions of the current forward to touch."""

    kind: ClassVar[str]
    needs_tokens: ClassVar[bool] = False

    def mask(self, state: TokenState) -> Bool[Tensor, "batch chunk"]:
        raise NotImplementedError

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind}

    def __and__(self, other: PositionRule) -> PositionRule:
        return Both(self, other)

    @staticmethod
    def from_dict(data: dict[str, Any]) -> PositionRule:
        """Rebuild a rule saved with `to_dict`."""
        kinds = {cls.kind: cls for cls in _RULES}
        if data.get("kind") not in kinds:
            raise ValueError(f"unknown position rule {data.get('kind')!r}; known: {sorted(kinds)}")
        cls = kinds[data["kind"]]
        return cls._from_dict(data)

    @classmethod
    def _from_dict(cls, data: dict[str, Any]) -> PositionRule:
        return cls(**{k: v for k, v in data.items() if k != "kind"})


@dataclass(frozen=True)
class AllPositions(PositionRule):
    """Every real token: the prompt and everything generated."""

    kind: ClassVar[str] = "all"

    def mask(self, state: TokenState) -> Bool[Tensor, "batch chunk"]:
        return state.is_real()


@dataclass(frozen=True)
class PromptPositions(PositionRule):
    """Only the prompt's tokens."""

    kind: ClassVar[str] = "prompt"

    def mask(self, state: TokenState) -> Bool[Tensor, "batch chunk"]:
        return state.is_real() & (state.chunk_index() < state.prompt_lengths[:, None])


@dataclass(frozen=True)
class GeneratedPositions(PositionRule):
    """Only generated tokens, at the step where each is fed back into the model."""

    kind: ClassVar[str] = "generated"

    def mask(self, state: TokenState) -> Bool[Tensor, "batch chunk"]:
        return state.is_real() & (state.chunk_index() >= state.prompt_lengths[:, None])


@dataclass(frozen=True)
class PromptAndFirstGenerated(PositionRule):
    """The prompt plus the first `k` generated tokens (prefix-only interventions)."""

    k: int
    kind: ClassVar[str] = "prompt_and_first_k"

    def __post_init__(self) -> None:
        if self.k < 0:
            raise ValueError(f"k must be >= 0, got {self.k}")

    def mask(self, state: TokenState) -> Bool[Tensor, "batch chunk"]:
        return state.is_real() & (state.chunk_index() < state.prompt_lengths[:, None] + self.k)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "k": self.k}


@dataclass(frozen=True)
class TokenMatch(PositionRule):
    """Positions holding one of `token_ids` (e.g. SEAL's boundary tokens)."""

    token_ids: tuple[int, ...]
    kind: ClassVar[str] = "token_match"
    needs_tokens: ClassVar[bool] = True

    def __post_init__(self) -> None:
        if not self.token_ids:
            raise ValueError("TokenMatch needs at least one token id")
        object.__setattr__(self, "token_ids", tuple(int(t) for t in self.token_ids))

    @classmethod
    def containing(cls, tokenizer, strings: Iterable[str]) -> TokenMatch:
        """Every vocabulary token whose decoded text contains one of `strings`."""
        strings = list(strings)
        ids = [
            token_id
            for token_id in range(len(tokenizer))
            if any(s in tokenizer.decode([token_id]) for s in strings)
        ]
        if not ids:
            raise ValueError(f"no token of this vocabulary contains any of {strings!r}")
        return cls(tuple(ids))

    def mask(self, state: TokenState) -> Bool[Tensor, "batch chunk"]:
        chunk = state.tokens[:, state.chunk_start :]
        return state.is_real() & torch.isin(chunk, id_tensor(self.token_ids, chunk.device))

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "token_ids": list(self.token_ids)}


@functools.lru_cache(maxsize=64)
def id_tensor(token_ids: tuple[int, ...], device: torch.device) -> Int[Tensor, " n"]:
    """`token_ids` as a tensor on `device`, built once (rules run at every decoding step)."""
    return torch.tensor(token_ids, device=device)


def boundary_tokens(tokenizer) -> TokenMatch:
    """SEAL's thought boundaries: every vocabulary token whose text contains a blank line."""
    return TokenMatch.containing(tokenizer, ["\n\n"])


@dataclass(frozen=True)
class InsideSpan(PositionRule):
    """Positions strictly after an opening marker and before the matching closing marker.

    Markers are token-id sequences (`<think>` and `</think>` are single tokens in reasoning
    models). To stay causal, a position is outside once a closing marker has *ended* at or before
    it; the tokens of a multi-token closing marker before its last one therefore count as inside.
    A span that is never closed stays open to the end.
    """

    open_ids: tuple[int, ...]
    close_ids: tuple[int, ...]
    kind: ClassVar[str] = "inside_span"
    needs_tokens: ClassVar[bool] = True

    def __post_init__(self) -> None:
        if not self.open_ids or not self.close_ids:
            raise ValueError("InsideSpan needs non-empty opening and closing markers")
        object.__setattr__(self, "open_ids", tuple(int(t) for t in self.open_ids))
        object.__setattr__(self, "close_ids", tuple(int(t) for t in self.close_ids))

    @classmethod
    def from_strings(cls, tokenizer, open_text: str = "<think>", close_text: str = "</think>"):
        """Markers given as text, tokenized without special additions."""
        open_ids = tokenizer.encode(open_text, add_special_tokens=False)
        close_ids = tokenizer.encode(close_text, add_special_tokens=False)
        return cls(tuple(open_ids), tuple(close_ids))

    def mask(self, state: TokenState) -> Bool[Tensor, "batch chunk"]:
        # Markers are matched on the real tokens only, so padding can never split or fake one.
        index = state.real_index
        tokens = torch.where(state.real, state.tokens, torch.full_like(state.tokens, -1))
        last_open = _last_marker_end(tokens, state.real, self.open_ids, index)
        last_close = _last_marker_end(tokens, state.real, self.close_ids, index)
        inside = (last_open > last_close) & (index > last_open)
        return state.is_real() & inside[:, state.chunk_start :]

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "open_ids": list(self.open_ids),
            "close_ids": list(self.close_ids),
        }


def _last_marker_end(
    tokens: Int[Tensor, "batch total"],
    real: Bool[Tensor, "batch total"],
    marker: tuple[int, ...],
    index: Int[Tensor, "batch total"],
) -> Int[Tensor, "batch total"]:
    """For each position, the real-token index where the marker last ended at or before it (-1 if never).

    Padding is squeezed out first (real tokens packed to the right), so a marker whose tokens are
    separated only by padding is still found.
    """
    order = torch.sort(real.long(), dim=1, stable=True).indices  # pads first, real tokens in order
    packed = tokens.gather(1, order)
    length = len(marker)
    ends_packed = torch.zeros_like(packed, dtype=torch.bool)
    if packed.shape[1] >= length:
        windows = packed.unfold(1, length, 1)  # [batch, total - length + 1, length]
        wanted = id_tensor(marker, tokens.device)
        ends_packed[:, length - 1 :] = (windows == wanted).all(-1)
    ends = torch.zeros_like(ends_packed).scatter(1, order, ends_packed) & real
    marked = torch.where(ends, index, torch.full_like(index, -1))
    return marked.cummax(dim=1).values


@dataclass(frozen=True)
class Both(PositionRule):
    """Positions where both rules hold (e.g. boundary tokens inside the think span)."""

    first: PositionRule
    second: PositionRule
    kind: ClassVar[str] = "both"

    @property
    def needs_tokens(self) -> bool:  # type: ignore[override]
        return self.first.needs_tokens or self.second.needs_tokens

    def mask(self, state: TokenState) -> Bool[Tensor, "batch chunk"]:
        return self.first.mask(state) & self.second.mask(state)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "first": self.first.to_dict(), "second": self.second.to_dict()}

    @classmethod
    def _from_dict(cls, data: dict[str, Any]) -> PositionRule:
        return cls(PositionRule.from_dict(data["first"]), PositionRule.from_dict(data["second"]))


_RULES: tuple[type[PositionRule], ...] = (
    AllPositions,
    PromptPositions,
    GeneratedPositions,
    PromptAndFirstGenerated,
    TokenMatch,
    InsideSpan,
    Both,
)
