"""Exact greedy correctness of short answers from one teacher-forced forward.

Greedy decoding writes the gold answer exactly when, at every answer position, the argmax given the
gold prefix is the gold token, and after the last answer token the argmax does not extend the
number. One forward over prompt + answer therefore replaces a generation loop. Where greedy
decoding would deviate, the first deviating position also tells whether its answer comes out
larger or smaller than the gold one (same-length numbers compare like their first differing digit).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from jaxtyping import Bool, Int
from torch import Tensor
from tqdm.auto import tqdm

from interp.data.arithmetic import EncodedProblem
from interp.interventions import Edit
from interp.prefix import run_on_shared_prefix


@dataclass
class GreedyOutcome:
    """Per row: did greedy decoding give the gold answer, and if not, was its answer larger (+1) or smaller (-1)."""

    correct: Bool[Tensor, " n"]
    moved: Int[Tensor, " n"]


@torch.no_grad()
def greedy_outcomes(
    model,
    rows: Sequence[EncodedProblem],
    digit_ids: set[int],
    edit_list: Sequence[Edit] = (),
    batch_size: int = 32,
    progress: bool = False,
) -> GreedyOutcome:
    """Greedy correctness (and the direction of any error) for every row under `edit_list`.

    Rows share their prompt prefix (see `interp.prefix`), which runs once.
    """
    digits = torch.tensor(sorted(digit_ids))
    sequences = [r.prompt + r.answer for r in rows]
    correct, moved = [], []
    batches = run_on_shared_prefix(
        model, sequences, [len(r.prompt) for r in rows], edit_list, batch_size=batch_size
    )
    total = (len(rows) + batch_size - 1) // batch_size
    for batch in tqdm(batches, total=total, disable=not progress, desc="teacher forcing"):
        predictions = batch.logits.argmax(-1).cpu()
        for offset, encoded in enumerate(rows[batch.rows]):
            n_prompt, n_answer = len(encoded.prompt), len(encoded.answer)
            # logits at position t predict token t + 1: the answer is predicted from positions
            # n_prompt - 1 .. n_prompt + n_answer - 2, the token after it from the last position
            columns = [batch.index(offset, t) for t in range(n_prompt - 1, n_prompt + n_answer)]
            predicted = predictions[offset, columns[:-1]]
            after = predictions[offset, columns[-1]]
            ok, direction = _compare(
                predicted, torch.tensor(encoded.answer), after, digits, model.tokenizer
            )
            correct.append(ok)
            moved.append(direction)
    return GreedyOutcome(torch.tensor(correct), torch.tensor(moved))


def _compare(predicted, gold, after, digits, tokenizer) -> tuple[bool, int]:
    """Exact match and, if not, whether greedy's number would be larger (+1) or smaller (-1)."""
    mismatch = torch.nonzero(predicted != gold).flatten()
    if len(mismatch) == 0:
        if bool(torch.isin(after, digits)):
            return False, 1  # one more digit: a longer, larger number
        return True, 0
    first = int(mismatch[0])
    if not bool(torch.isin(predicted[first], digits)):
        return False, -1  # the number stops early: shorter, smaller
    got = tokenizer.decode([int(predicted[first])])
    want = tokenizer.decode([int(gold[first])])
    return False, 1 if got > want else -1
