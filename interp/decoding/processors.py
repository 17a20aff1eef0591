"""Logit processors: functions of the next-token logits and the token state, applied while decoding."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from jaxtyping import Float
from torch import Tensor

from interp.core.positions import TokenState
from interp.core.tokens import GenerationError

LogitProcessor = Callable[[Float[Tensor, "batch vocab"], TokenState], Float[Tensor, "batch vocab"]]


@dataclass
class TokenPenalty:
    """Add `value` to the logits of `token_ids` (the logits-penalty baseline of SEAL)."""

    token_ids: tuple[int, ...]
    value: float = -3.0

    @classmethod
    def containing(cls, tokenizer, strings: Sequence[str], value: float = -3.0) -> TokenPenalty:
        """Penalise every vocabulary token whose text contains one of `strings`."""
        ids = tuple(
            i for i in range(len(tokenizer)) if any(s in tokenizer.decode([i]) for s in strings)
        )
        if not ids:
            raise GenerationError(f"no token of this vocabulary contains any of {list(strings)!r}")
        return cls(ids, value)

    def __call__(self, logits: Float[Tensor, "batch vocab"], state: TokenState) -> Tensor:
        logits = logits.clone()
        logits[:, list(self.token_ids)] += self.value
        return logits
