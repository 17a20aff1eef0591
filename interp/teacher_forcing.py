"""Exact greedy correctness of short answers from one teacher-forced forward.

Greedy decoding writes the gold answer exactly when, at every answer position, the argmax given the
gold prefix is the gold token, and after the last answer token the argmax does not extend the
number. One forward over prompt + answer therefore replaces a generation loop. Where greedy
decoding would deviate, the first deviating position also tells whether its answer comes out
larger or smaller than the gold one (same-length numbers compare like their first differing digit).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from jaxtyping import Bool, Float, Int
from torch import Tensor
from tqdm.auto import tqdm

from interp.data.arithmetic import EncodedProblem
from interp.interventions import Edit, edits
from interp.layer_skip import (
    LayerSkipError,
    fill_skipped_blocks,
    forward_from_block,
    stop_after_block,
)
from interp.positions import TokenState, token_state
from interp.prefix import SuffixBatch, run_on_shared_prefix


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
        ok, direction = _batch_outcomes(batch, rows[batch.rows], digits, model.tokenizer)
        correct.extend(ok)
        moved.extend(direction)
    return GreedyOutcome(torch.tensor(correct), torch.tensor(moved))


def _batch_outcomes(
    batch: SuffixBatch, rows: Sequence[EncodedProblem], digits: Tensor, tokenizer
) -> tuple[list[bool], list[int]]:
    """Greedy correctness and error direction of each row of one teacher-forced batch."""
    predictions = batch.logits.argmax(-1).cpu()
    correct, moved = [], []
    for offset, encoded in enumerate(rows):
        n_prompt, n_answer = len(encoded.prompt), len(encoded.answer)
        # logits at position t predict token t + 1: the answer is predicted from positions
        # n_prompt - 1 .. n_prompt + n_answer - 2, the token after it from the last position
        columns = [batch.logits_column(offset, t) for t in range(n_prompt - 1, n_prompt + n_answer)]
        predicted = predictions[offset, columns[:-1]]
        after = predictions[offset, columns[-1]]
        ok, direction = _compare(predicted, torch.tensor(encoded.answer), after, digits, tokenizer)
        correct.append(ok)
        moved.append(direction)
    return correct, moved


class PushSweep:
    """Greedy outcomes of `rows` under `push(amounts)` at block `block`, for any push strengths.

    `push` builds the edit (at block `block`) from one amount per sequence. The residual entering
    `block` is computed once, for the shared prompt prefix and every row; each forward then runs only
    the upper blocks, for several strengths at once (see `interp.layer_skip`). Outcomes equal
    those of `greedy_outcomes` with the same edit (tested).
    """

    def __init__(
        self,
        model,
        rows: Sequence[EncodedProblem],
        digit_ids: set[int],
        push: Callable[[Float[Tensor, " batch"]], Edit],
        block: int,
        batch_size: int = 32,
        strengths_per_forward: int = 4,
    ):
        self.model, self.rows, self.push, self.block = model, rows, push, block
        self.digits = torch.tensor(sorted(digit_ids))
        self.strengths_per_forward = strengths_per_forward
        residuals = _residuals_entering(model, rows, block, batch_size)
        (self.prefix_tokens, self.prefix_residual), *self.batches = residuals

    @torch.no_grad()
    def outcomes(self, strengths: Sequence[float], progress: bool = False) -> list[GreedyOutcome]:
        """One `GreedyOutcome` per strength, in order."""
        if not strengths:
            raise ValueError("no push strengths given")
        per = self.strengths_per_forward
        chunks = [list(range(len(strengths)))[i : i + per] for i in range(0, len(strengths), per)]
        correct = [[] for _ in strengths]
        moved = [[] for _ in strengths]
        bar = tqdm(
            total=len(chunks) * len(self.batches),
            disable=not progress,
            desc=f"pushes at block {self.block}",
        )
        for chunk in chunks:
            amounts = torch.tensor([float(strengths[s]) for s in chunk])
            prefix_cache = _pushed_prefix_cache(
                self.model, self.prefix_tokens, self.prefix_residual, self.push(amounts), self.block
            )
            for batch in self.batches:
                logits = self._pushed_logits(batch, amounts, prefix_cache)
                n = batch.tokens.shape[0]
                start = batch.tokens.shape[1] - batch.prefix_length - logits.shape[1]
                for i, s in enumerate(chunk):
                    view = SuffixBatch(
                        batch.tokens,
                        batch.mask,
                        batch.prefix_length,
                        logits[i * n : (i + 1) * n],
                        {},
                        batch.rows,
                        logits_start=start,
                    )
                    ok, direction = _batch_outcomes(
                        view, self.rows[batch.rows], self.digits, self.model.tokenizer
                    )
                    correct[s].extend(ok)
                    moved[s].extend(direction)
                bar.update()
        bar.close()
        return [GreedyOutcome(torch.tensor(c), torch.tensor(m)) for c, m in zip(correct, moved)]

    def _pushed_logits(self, batch: SuffixBatch, amounts: Tensor, prefix_cache) -> Tensor:
        """Logits of the upper blocks for one batch of rows, repeated once per amount.

        Rows are left padded, so every answer ends at the last column: only the last
        (longest answer + 1) columns are unembedded.
        """
        n, k = batch.tokens.shape[0], len(amounts)
        keep = 1 + max(len(r.answer) for r in self.rows[batch.rows])
        tokens, mask = batch.tokens.repeat(k, 1), batch.mask.repeat(k, 1)
        lengths = [len(r.prompt) for r in self.rows[batch.rows]] * k
        state = TokenState.for_tokens(tokens, mask, lengths)
        state.chunk_start = batch.prefix_length
        past = None
        if prefix_cache is not None:
            past = copy.deepcopy(prefix_cache)
            past.batch_repeat_interleave(n)
        residual = batch.cache["residual"].repeat(k, 1, 1)
        with edits(self.model, [self.push(amounts.repeat_interleave(n))]), token_state(state):
            logits, _ = forward_from_block(
                self.model, residual, self.block, mask, past, logits_to_keep=keep
            )
        return logits


def _residuals_entering(model, rows, block, batch_size) -> list:
    """[(prefix tokens, prefix residual)] + one SuffixBatch per batch, its residual entering `block`.

    Also checks, on the first batch, that running the upper blocks alone reproduces the full
    forward's logits (a decoder stack that cannot be cut would fail here, not give wrong numbers).
    """
    name = f"blocks.{block}.hook_resid_pre"
    sequences = [r.prompt + r.answer for r in rows]
    lengths = [len(r.prompt) for r in rows]
    batches = []
    stop = stop_after_block(model, block)
    for batch in run_on_shared_prefix(
        model,
        sequences,
        lengths,
        names_filter=lambda n: n == name,
        batch_size=batch_size,
        stop_at_layer=stop,
    ):
        batch.cache = {"residual": batch.cache[name]}
        batches.append(batch)
    prefix_length = batches[0].prefix_length
    prefix_tokens = batches[0].tokens[:1, :prefix_length]
    prefix_residual = None
    if prefix_length > 0:
        _, cache = model.run_with_cache(
            prefix_tokens, names_filter=lambda n: n == name, return_type=None, stop_at_layer=stop
        )
        prefix_residual = cache[name]
    _check_cut(model, batches[0], rows, prefix_tokens, prefix_residual, block)
    return [(prefix_tokens, prefix_residual), *batches]


def _pushed_prefix_cache(model, prefix_tokens, prefix_residual, edit, block):
    """The shared prefix's key/value cache for blocks `block`.. under `edit`, one row per amount."""
    if prefix_residual is None:
        return None
    n = edit.function.amount.shape[0] if isinstance(edit.function.amount, Tensor) else 1
    tokens = prefix_tokens.expand(n, -1)
    state = TokenState.for_tokens(tokens, prompt_lengths=[tokens.shape[1]] * n)
    with edits(model, [edit]), token_state(state):
        _, cache = forward_from_block(
            model,
            prefix_residual.expand(n, -1, -1),
            block,
            torch.ones_like(tokens),
            use_cache=True,
            logits_to_keep=1,  # only the cache is used
        )
    fill_skipped_blocks(cache, block)
    return cache


def _check_cut(model, batch, rows, prefix_tokens, prefix_residual, block) -> None:
    """Upper blocks from the cached residual must give the full forward's logits (no edit)."""
    full = next(
        run_on_shared_prefix(
            model,
            [r.prompt + r.answer for r in rows[batch.rows]],
            [len(r.prompt) for r in rows[batch.rows]],
            batch_size=len(rows),
            min_position=batch.prefix_length,
        )
    )
    past = None
    if prefix_residual is not None:
        _, past = forward_from_block(
            model, prefix_residual, block, torch.ones_like(prefix_tokens), use_cache=True
        )
        fill_skipped_blocks(past, block)
        past.batch_repeat_interleave(batch.tokens.shape[0])
    cut, _ = forward_from_block(model, batch.cache["residual"], block, batch.mask, past)
    real = batch.mask[:, batch.prefix_length :].bool()
    gap = float((cut - full.logits)[real].abs().max())
    scale = float(full.logits[real].abs().max())
    if gap > 1e-3 * max(scale, 1.0):
        raise LayerSkipError(
            f"running blocks {block}.. alone changes the logits by {gap:.3g} on this model "
            f"({type(model.original_model).__name__}); use full forwards (layer_skip=False)"
        )


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
