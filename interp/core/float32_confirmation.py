"""Greedy digit outcomes decided in bfloat16, the close calls decided again in float32.

bfloat16 keeps 8 bits of mantissa, so after two dozen blocks its logits sit a fraction of a logit
away from float32's: enough to flip an answer whose best two tokens are that close (5 of 240
push-sweep outcomes on qwen2.5-coder-0.5b, README *Benchmarks*). Every outcome whose deciding
margin (best minus second-best logit, at the positions that decided it) is below `margin` is
recomputed by a float32 copy of the model loaded from the same source; the rest keep the bf16
outcome. The margin is measured, not derived (`benchmarks/confirm_margin.py`: on qwen every
flipped outcome had a bf16 margin of at most 0.25, while a margin moved by up to 0.57 between
the dtypes), and the agreement table checks the result against a float32 run.

It is off by default: near the break-even pushes of a sweep a quarter to a half of all outcomes
fall within such margins, and recomputing them in float32 costs about what bf16 saved. Turn it on
(`float32_confirmation_margin=DEFAULT_MARGIN`) where bf16 must give float32's exact outcomes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from interp.core.digit_answers import GreedyOutcome
from interp.models.dtypes import full_float32_products
from interp.models.loading import reload_as

# logits: twice the largest bf16 margin of a flipped outcome seen (benchmarks/confirm_margin.py)
DEFAULT_MARGIN = 0.5


class Float32Confirmation:
    """Re-decides the close calls of a low-precision model's greedy outcomes in float32."""

    def __init__(self, float32_model, margin: float = DEFAULT_MARGIN):
        if not margin > 0:
            raise ValueError(f"the confirmation margin must be above 0 logits, got {margin!r}")
        self.model = float32_model
        self.margin = margin
        self.outcomes_seen = 0
        self.checked = 0
        self.changed = 0

    @classmethod
    def for_model(
        cls, model, margin: float | None, float32_model=None
    ) -> Float32Confirmation | None:
        """A confirmation for `model`, or None where it computes in float32 already (or `margin`
        is None: confirmation switched off). The float32 copy is loaded from the model's source
        unless given."""
        if margin is None or model.cfg.dtype in (torch.float32, torch.float64):
            return None
        return cls(float32_model or reload_as(model, torch.float32), margin)

    def confirm(
        self,
        outcome: GreedyOutcome,
        recompute: Callable[[Sequence[int]], GreedyOutcome],
    ) -> GreedyOutcome:
        """`outcome` with every row closer than the margin replaced by `recompute(rows)`, which
        runs those rows (indices into `outcome`) through the float32 model."""
        if outcome.margin is None:
            raise ValueError("the outcome has no margins: compute it with margins=True")
        close = torch.nonzero(outcome.margin < self.margin).flatten()
        self.outcomes_seen += len(outcome.correct)
        self.checked += len(close)
        if len(close) == 0:
            return outcome
        with full_float32_products():  # float32 decides, also where products may round lower
            again = recompute(close.tolist())
        differs = (again.correct != outcome.correct[close]) | (again.moved != outcome.moved[close])
        self.changed += int(differs.sum())
        correct, moved = outcome.correct.clone(), outcome.moved.clone()
        correct[close], moved[close] = again.correct, again.moved
        return GreedyOutcome(correct, moved, outcome.margin)

    def summary(self) -> dict:
        """What the confirmation did, for a result's meta."""
        return {
            "margin": self.margin,
            "outcomes": self.outcomes_seen,
            "recomputed_in_float32": self.checked,
            "changed_by_float32": self.changed,
        }
