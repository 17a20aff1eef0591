"""KL-budget decoding: edit each sequence until KL(edited || unedited), summed over its steps,
passes a budget; from then on the tokens it is fed are no longer edited.

`generate(..., kl_budget=B)` swaps the model for a `KLBudgetForward` in its loop.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import torch
from torch import Tensor

from interp.core.positions import current_state
from interp.core.runner import feeding
from interp.core.tokens import GenerationError

_NO_LIMIT = 2**62


def _twice(x: Tensor) -> Tensor:
    return torch.cat([x, x], dim=0)


class KLBudgetForward:
    """Stands in for the model in the decoding loop when `kl_budget` is set.

    Each step runs the batch twice over in one forward: rows 0..n-1 with the edits, rows n..2n-1
    with every edit switched off (`TokenState.active`), both fed the same chosen tokens. The KL
    divergence KL(edited || unedited) of the next-token distributions is added to each sequence's
    total; once the total passes the budget, the tokens that sequence is fed from then on are not
    edited. When every sequence has stopped, the unedited copy is dropped (cache rows too).
    """

    def __init__(self, model, budget: float, batch: int):
        if not budget >= 0:
            raise GenerationError(f"kl_budget must be a non-negative number, got {budget}")
        self.model = model
        self.budget = float(budget)
        self.batch = batch
        self.limit = torch.full((batch,), _NO_LIMIT, dtype=torch.long)
        self.spent = torch.zeros(batch, dtype=torch.float64)
        self.step_kl: list[Tensor] = []
        self.paired = True

    def __call__(self, feed, *, attention_mask, return_type: str = "logits", **kwargs):
        state = current_state()
        n = self.batch
        limit = self.limit.to(feed.device)
        # The prompt stays edited whether or not the KV cache keeps it: the limit is a position,
        # not a switch, so decoding without the cache recomputes it edited, as the cache holds it.
        if self.paired:
            run_state = dataclasses.replace(
                state,
                tokens=_twice(state.tokens),
                real=_twice(state.real),
                prompt_lengths=_twice(state.prompt_lengths),
                active=torch.arange(2 * n, device=feed.device) < n,
                edit_limit=_twice(limit),
                touched=None,
            )
            feed, attention_mask = _twice(feed), _twice(attention_mask)
        else:
            run_state = dataclasses.replace(state, edit_limit=limit, touched=None)
        with feeding(run_state, state.chunk_start):
            output = self.model(
                feed, attention_mask=attention_mask, return_type=return_type, **kwargs
            )
        logits, past = output if return_type == "logits_and_cache" else (output, None)
        if run_state.touched is not None:
            state.record(run_state.touched[:n, state.chunk_start :])
        if self.paired:
            # float32 log-softmax and float64 sums on purpose, whatever the model's dtype
            edited = logits[:n, -1].float().log_softmax(-1)
            plain = logits[n:, -1].float().log_softmax(-1)
            kl = (edited.exp() * (edited - plain)).sum(-1).clamp(min=0).cpu()
            self.step_kl.append(kl)
            counting = self.limit == _NO_LIMIT
            self.spent += torch.where(counting, kl.double(), 0.0)
            passed = counting & (self.spent > self.budget)
            # the next token fed has real index = tokens fed so far: from there on, no edit
            self.limit[passed] = state.real.sum(-1).cpu()[passed]
            if not bool((self.limit == _NO_LIMIT).any()):
                if past is not None:
                    past.batch_select_indices(torch.arange(n, device=logits.device))
                self.paired = False
            logits = logits[:n]
        else:
            self.step_kl.append(torch.zeros(n))
        return (logits, past) if return_type == "logits_and_cache" else logits

    def report(self, row: int, n_generated: int) -> dict[str, Any]:
        """KL spent by sequence `row` and the step at which it stopped being edited (None: never).

        `edit_stop = t` means generated tokens 0..t were chosen from the edited model and tokens
        0..t-1 were fed back edited; from token t on, nothing is edited.
        """
        total = 0.0
        for step, values in enumerate(self.step_kl[:n_generated]):
            total += float(values[row])
            if total > self.budget:
                return {"kl_spent": total, "edit_stop": step}
        return {"kl_spent": total, "edit_stop": None}
