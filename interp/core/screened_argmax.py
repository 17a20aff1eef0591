"""The argmax over a large vocabulary, screened in bfloat16 and confirmed in float32.

Greedy correctness needs only each position's argmax. On a 150k-token vocabulary the float32
unembedding costs about as much as a block; a bfloat16 product is about twice as fast on CPUs with
bf16 instructions, and its rounding error has a bound: |z_bf16 - z_fp32| <= c (|h| |w_v| + |b_v|)
for token v (inputs and output rounded to bf16, sums in float32). Every token whose screened logit
could still be the largest within that bound is recomputed in float32, so the argmax is exactly
the float32 one: on real models the screen leaves a handful of candidates per position.

The confirmation runs in the model's own dtype (float32 for a float32 model, the decision that
matters): for a bfloat16 model it reproduces that model's own greedy choice, which is what
greedy decoding of that model would write.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from jaxtyping import Float, Int
from torch import Tensor, nn

# Relative error of the screen: three bf16 roundings (2^-8 each: input, weight, output) plus float32
# summation on both sides, rounded up to the next power of two.
ROUNDING_BOUND = 2.0**-6


class ScreenedUnembed:
    """argmax(h @ W.T + b) of a linear unembedding, screened in bfloat16 (the result in the
    unembedding's own dtype: float32 for a float32 model)."""

    def __init__(self, unembed: nn.Linear, rows_per_chunk: int = 256):
        self.weight = unembed.weight.detach()
        bias = unembed.bias
        self.bias = None if bias is None or not bool(bias.any()) else bias.detach()
        self.screen = self.weight.to(torch.bfloat16)
        self.screen_bias = None if self.bias is None else self.bias.to(torch.bfloat16)
        # one bound for all tokens (the largest |w_v|, |b_v|): no [rows, vocab] arithmetic
        self.largest_weight = float(self.weight.norm(dim=-1).max())
        self.largest_bias = 0.0 if self.bias is None else float(self.bias.abs().max())
        self.rows_per_chunk = rows_per_chunk

    @classmethod
    def of(cls, model) -> ScreenedUnembed | None:
        """The screen for a bridge's unembedding, or None when it is not a plain linear layer."""
        head = getattr(getattr(model, "original_model", None), "lm_head", None)
        head = getattr(head, "original_component", head)
        return cls(head) if isinstance(head, nn.Linear) else None

    @torch.no_grad()
    def argmax(self, hidden: Float[Tensor, "n d_model"]) -> Int[Tensor, " n"]:
        """The argmax token (in the unembedding's dtype) of each row of final hidden states."""
        if hidden.shape[0] == 0:
            return torch.zeros(0, dtype=torch.long, device=hidden.device)
        return torch.cat([self._argmax(chunk) for chunk in hidden.split(self.rows_per_chunk)])

    def _argmax(self, hidden: Float[Tensor, "n d_model"]) -> Int[Tensor, " n"]:
        rough = F.linear(hidden.to(torch.bfloat16), self.screen, self.screen_bias)
        # |rough_v - z_v| <= slack for every token v, so any token more than 2 slack below the
        # roughly best one is below that token's true logit: it cannot be the argmax
        slack = ROUNDING_BOUND * (hidden.norm(dim=-1) * self.largest_weight + self.largest_bias)
        floor = rough.max(dim=-1).values.float() - 2 * slack
        floor = (floor - floor.abs() * 2.0**-7).to(torch.bfloat16)  # round down, never up
        # a column maximum of bytes: a third faster than any(dim=0) over the bool columns
        above = (rough >= floor[:, None]).to(torch.uint8).amax(dim=0)
        candidates = torch.nonzero(above).flatten()
        bias = None if self.bias is None else self.bias[candidates]
        exact = F.linear(hidden, self.weight[candidates], bias)
        return candidates[exact.argmax(dim=-1)]
