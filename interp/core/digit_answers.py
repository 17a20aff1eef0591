"""Digit answers: exact greedy correctness of short numeric answers from one teacher-forced forward.

Greedy decoding writes the gold answer exactly when, at every answer position, the argmax given the
gold prefix is the gold token, and after the last answer token the argmax does not extend the
number. One forward over prompt + answer therefore replaces a generation loop. Where greedy
decoding would deviate, the first deviating position also tells whether its answer comes out
larger or smaller than the gold one (same-length numbers compare like their first differing digit).
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from jaxtyping import Bool, Float, Int
from torch import Tensor
from tqdm.auto import tqdm

from interp.core.layer_skip import (
    LayerSkipError,
    fill_skipped_blocks,
    forward_from_block,
    residual_entering,
)
from interp.core.runner import (
    SharedPrefixBatch,
    activations,
    feeding_tokens,
    shared_prefix_batches,
)
from interp.core.screened_argmax import ScreenedUnembed
from interp.data.arithmetic import EncodedProblem
from interp.interventions import Edit, edits


@dataclass
class GreedyOutcome:
    """Per row: did greedy decoding give the gold answer, and if not, was its answer larger (+1) or smaller (-1).

    `margin` (when asked for) is the smallest gap between the best and second-best logit over the
    positions that decided the outcome: a small one means rounding could have decided it.
    """

    correct: Bool[Tensor, " n"]
    moved: Int[Tensor, " n"]
    margin: Float[Tensor, " n"] | None = None

    def select(self, rows: Int[Tensor, " k"]) -> GreedyOutcome:
        """The outcomes of some rows only."""
        margin = None if self.margin is None else self.margin[rows]
        return GreedyOutcome(self.correct[rows], self.moved[rows], margin)


@torch.no_grad()
def greedy_outcomes(
    model,
    rows: Sequence[EncodedProblem],
    digit_ids: set[int],
    edit_list: Sequence[Edit] = (),
    batch_size: int = 32,
    progress: bool = False,
    margins: bool = False,
) -> GreedyOutcome:
    """Greedy correctness (and the direction of any error) for every row under `edit_list`.

    Rows share their prompt prefix (see `interp.core.runner`), which runs once. With `margins`,
    each row also gets the smallest best-minus-second logit gap of its deciding positions.
    """
    digits = torch.tensor(sorted(digit_ids))
    sequences = [r.prompt + r.answer for r in rows]
    correct, moved, margin = [], [], []
    lengths = [len(r.prompt) for r in rows]
    batches = shared_prefix_batches(
        model,
        sequences,
        lengths,
        edit_list,
        batch_size=batch_size,
        min_position=min(lengths) - 1,  # the last prompt token predicts the answer's first
        # left padded, every answer ends at the last column: unembed the answer's columns and
        # the one after it, not the prompt's (most of the vocabulary's cost)
        logits_to_keep=1 + max(len(r.answer) for r in rows),
    )
    total = (len(rows) + batch_size - 1) // batch_size
    for batch in tqdm(batches, total=total, disable=not progress, desc="teacher forcing"):
        predictions = batch.logits.argmax(-1).cpu()
        gaps = deciding_gaps(batch.logits, digits) if margins else None
        ok, direction, gap = _batch_outcomes(
            batch, predictions, rows[batch.rows], digits, model.tokenizer, gaps
        )
        correct.extend(ok)
        moved.extend(direction)
        margin.extend(gap)
    return GreedyOutcome(
        torch.tensor(correct), torch.tensor(moved), torch.tensor(margin) if margins else None
    )


def deciding_gaps(
    logits: Float[Tensor, "batch pos vocab"], digits: Int[Tensor, " n_digits"]
) -> Float[Tensor, "batch pos 2"]:
    """At each position: best minus second-best logit (does the argmax token change?), and the
    distance between the best digit and the best other token (does the number go on?), in
    float32 on the CPU."""
    best_two = logits.topk(2, dim=-1).values.float()
    is_digit = torch.zeros(logits.shape[-1], dtype=torch.bool, device=logits.device)
    is_digit[digits.to(logits.device)] = True
    best_digit = logits.masked_fill(~is_digit, float("-inf")).amax(-1).float()
    best_other = logits.masked_fill(is_digit, float("-inf")).amax(-1).float()
    gaps = torch.stack([best_two[..., 0] - best_two[..., 1], (best_digit - best_other).abs()], -1)
    return gaps.cpu()


def _batch_outcomes(
    batch: SharedPrefixBatch,
    predictions: Int[Tensor, "batch kept"],
    rows: Sequence[EncodedProblem],
    digits: Tensor,
    tokenizer,
    gaps: Float[Tensor, "batch kept 2"] | None = None,
) -> tuple[list[bool], list[int], list[float]]:
    """Greedy correctness, error direction and (with `gaps`, see `deciding_gaps`) deciding margin
    of each row of one teacher-forced batch.

    `predictions` are the argmax tokens of the batch's kept logits columns. The deciding positions
    are the answer's up to the first wrong prediction (their best-minus-second gap: would another
    token win?) and, when none is wrong, the one after the answer (its digit-or-not gap: only
    whether the number goes on matters there). Later positions cannot change the outcome.
    """
    correct, moved, margins = [], [], []
    for offset, encoded in enumerate(rows):
        n_prompt, n_answer = len(encoded.prompt), len(encoded.answer)
        # logits at position t predict token t + 1: the answer is predicted from positions
        # n_prompt - 1 .. n_prompt + n_answer - 2, the token after it from the last position
        columns = [batch.logits_column(offset, t) for t in range(n_prompt - 1, n_prompt + n_answer)]
        predicted = predictions[offset, columns[:-1]]
        after = predictions[offset, columns[-1]]
        gold = torch.tensor(encoded.answer)
        ok, direction = _compare(predicted, gold, after, digits, tokenizer)
        correct.append(ok)
        moved.append(direction)
        if gaps is not None:
            wrong = torch.nonzero(predicted != gold).flatten()
            if len(wrong) == 0:
                answer_gap = gaps[offset, columns[:-1], 0].min()
                margin = min(float(answer_gap), float(gaps[offset, columns[-1], 1]))
            else:
                margin = float(gaps[offset, columns[: int(wrong[0]) + 1], 0].min())
            margins.append(margin)
    return correct, moved, margins


class PushSweep:
    """Greedy outcomes of `rows` under `push(amounts)` at block `block`, for any push strengths.

    `push` builds the edit (at block `block`) from one amount per sequence. The residual entering
    the first block the push can change is computed once, for the shared prompt prefix and every
    row; each forward then runs only the blocks from there up (see `interp.core.layer_skip`), for
    several strengths at once. A push on `blocks.{block}.hook_resid_post` is the same push on the
    input of block + 1, so that block is not run again per strength. Rows are batched by length
    (no padding, fewest unembedded positions) and outcomes come back in the order of `rows`. The
    argmax over the vocabulary is screened in bfloat16 and confirmed in float32
    (`interp.core.screened_argmax`; `screen_unembedding=False` unembeds in float32). Outcomes equal
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
        screen_unembedding: bool = True,
        margins: bool = False,
    ):
        self.model = model
        self.margins = margins
        self.block, self.push = _first_block_changed(model, push, block)
        self.digits = torch.tensor(sorted(digit_ids))
        self.strengths_per_forward = strengths_per_forward
        self.order = sorted(range(len(rows)), key=lambda i: len(rows[i].prompt + rows[i].answer))
        self.rows = [rows[i] for i in self.order]
        # margins need the second-best logit, which the screen does not compute
        screen = screen_unembedding and not margins
        self.unembed = ScreenedUnembed.of(model) if screen else None
        residuals = _residuals_entering(model, self.rows, self.block, batch_size, self.unembed)
        (self.shared_tokens, self.shared_residual), *self.batches = residuals

    @torch.no_grad()
    def outcomes(self, strengths: Sequence[float], progress: bool = False) -> list[GreedyOutcome]:
        """One `GreedyOutcome` per strength, in order."""
        if not strengths:
            raise ValueError("no push strengths given")
        n_forwards = -(-len(strengths) // self.strengths_per_forward)
        per = -(-len(strengths) // n_forwards)  # balanced: 5 strengths run as 3 + 2, not 4 + 1
        chunks = [list(range(len(strengths)))[i : i + per] for i in range(0, len(strengths), per)]
        correct = [[] for _ in strengths]
        moved = [[] for _ in strengths]
        margin = [[] for _ in strengths]
        bar = tqdm(
            total=len(chunks) * len(self.batches),
            disable=not progress,
            desc=f"pushes at block {self.block}",
        )
        for chunk in chunks:
            amounts = torch.tensor([float(strengths[s]) for s in chunk])
            shared_cache = _pushed_shared_cache(
                self.model, self.shared_tokens, self.shared_residual, self.push(amounts), self.block
            )
            for batch in self.batches:
                rows = self.rows[batch.rows]
                predictions, gaps = self._pushed_predictions(batch, rows, amounts, shared_cache)
                n = batch.tokens.shape[0]
                start = batch.tokens.shape[1] - batch.shared_length - predictions.shape[1]
                view = dataclasses.replace(batch, logits=None, cache={}, logits_start=start)
                for i, s in enumerate(chunk):
                    ok, direction, gap = _batch_outcomes(
                        view,
                        predictions[i * n : (i + 1) * n],
                        rows,
                        self.digits,
                        self.model.tokenizer,
                        None if gaps is None else gaps[i * n : (i + 1) * n],
                    )
                    correct[s].extend(ok)
                    moved[s].extend(direction)
                    margin[s].extend(gap)
                bar.update()
        bar.close()
        return [self._in_row_order(c, m, g) for c, m, g in zip(correct, moved, margin)]

    @torch.no_grad()
    def outcomes_for(self, strength: float, rows: Sequence[int]) -> GreedyOutcome:
        """The outcomes of some rows only (indices into the rows given), at one strength, in the
        order asked: the few close calls a float32 confirmation decides again run through the
        upper blocks alone, like the whole sweep."""
        if len(rows) == 0:
            raise ValueError("no rows given")
        if not all(0 <= r < len(self.order) for r in rows):
            raise ValueError(f"row indices must lie in 0..{len(self.order) - 1}, got {list(rows)}")
        sorted_position = {original: i for i, original in enumerate(self.order)}
        wanted = sorted(sorted_position[r] for r in rows)
        amounts = torch.tensor([float(strength)])
        shared_cache = _pushed_shared_cache(
            self.model, self.shared_tokens, self.shared_residual, self.push(amounts), self.block
        )
        found: dict[int, tuple[bool, int]] = {}
        for batch in self.batches:
            chosen = [i for i in wanted if batch.rows.start <= i < batch.rows.stop]
            if not chosen:
                continue
            local = torch.tensor([i - batch.rows.start for i in chosen])
            some = dataclasses.replace(
                batch,
                tokens=batch.tokens[local],
                mask=batch.mask[local],
                cache={"residual": batch.cache["residual"][local]},
            )
            rows_here = [self.rows[i] for i in chosen]
            predictions, _ = self._pushed_predictions(some, rows_here, amounts, shared_cache)
            start = some.tokens.shape[1] - some.shared_length - predictions.shape[1]
            view = dataclasses.replace(some, logits=None, cache={}, logits_start=start)
            ok, direction, _ = _batch_outcomes(
                view, predictions, rows_here, self.digits, self.model.tokenizer
            )
            found.update(zip(chosen, zip(ok, direction)))
        decided = [found[sorted_position[r]] for r in rows]
        return GreedyOutcome(
            torch.tensor([ok for ok, _ in decided], dtype=torch.bool),
            torch.tensor([direction for _, direction in decided], dtype=torch.long),
        )

    def _in_row_order(
        self, correct: list[bool], moved: list[int], margin: list[float]
    ) -> GreedyOutcome:
        """Outcomes of the length-sorted rows, put back in the order the rows were given."""
        order = torch.tensor(self.order, dtype=torch.long)
        out = GreedyOutcome(torch.zeros(len(order), dtype=torch.bool), torch.zeros_like(order))
        out.correct[order] = torch.tensor(correct, dtype=torch.bool)
        out.moved[order] = torch.tensor(moved, dtype=torch.long)
        if self.margins:
            out.margin = torch.zeros(len(order))
            out.margin[order] = torch.tensor(margin)
        return out

    def _pushed_predictions(
        self,
        batch: SharedPrefixBatch,
        rows: Sequence[EncodedProblem],
        amounts: Tensor,
        shared_cache,
    ) -> tuple[
        Int[Tensor, "batch_times_amounts kept"],
        Float[Tensor, "batch_times_amounts kept 2"] | None,
    ]:
        """Greedy next tokens of the upper blocks for one batch of rows, repeated once per amount
        (and their best-minus-second logit gaps when the sweep keeps margins).

        Rows are left padded, so every answer ends at the last column: only the last
        (longest answer + 1) columns are unembedded, through the bf16-screened argmax where the
        model's unembedding allows it (the float32 argmax either way).
        """
        n, k = batch.tokens.shape[0], len(amounts)
        keep = 1 + max(len(r.answer) for r in rows)
        tokens, mask = batch.tokens.repeat(k, 1), batch.mask.repeat(k, 1)
        lengths = [len(r.prompt) for r in rows] * k
        past = None
        if shared_cache is not None:
            past = copy.deepcopy(shared_cache)
            past.batch_repeat_interleave(n)
        residual = batch.cache["residual"].repeat(k, 1, 1)
        push = self.push(amounts.repeat_interleave(n))
        with edits(self.model, [push]), feeding_tokens(tokens, mask, lengths, batch.shared_length):
            if self.unembed is None:
                logits, _ = forward_from_block(
                    self.model, residual, self.block, mask, past, logits_to_keep=keep
                )
                gaps = deciding_gaps(logits, self.digits) if self.margins else None
                return logits.argmax(-1).cpu(), gaps
            hidden, _ = forward_from_block(
                self.model, residual, self.block, mask, past, unembed=False
            )
        kept = hidden[:, -keep:]
        predictions = self.unembed.argmax(kept.reshape(-1, kept.shape[-1]))
        return predictions.view(kept.shape[:2]).cpu(), None


def _residuals_entering(model, rows, block, batch_size, unembed=None) -> list:
    """[(shared prefix tokens, their residual)] + one SharedPrefixBatch per batch, its residual entering `block`.

    Also checks, on the first batch, that running the upper blocks alone reproduces the full
    forward's logits (a decoder stack that cannot be cut would fail here, not give wrong numbers).
    """
    name, stop = residual_entering(model, block)
    sequences = [r.prompt + r.answer for r in rows]
    lengths = [len(r.prompt) for r in rows]
    batches = []
    for batch in shared_prefix_batches(
        model,
        sequences,
        lengths,
        names_filter=lambda n: n == name,
        batch_size=batch_size,
        min_position=min(lengths) - 1,  # the last prompt token predicts the answer's first
        stop_at_layer=stop,
    ):
        batch.cache = {"residual": batch.cache[name]}
        batches.append(batch)
    shared_length = batches[0].shared_length
    shared_tokens = batches[0].tokens[:1, :shared_length]
    shared_residual = None
    if shared_length > 0:
        _, cache = activations(
            model,
            shared_tokens,
            names_filter=lambda n: n == name,
            return_type=None,
            stop_at_layer=stop,
        )
        shared_residual = cache[name]
    _check_cut(model, batches[0], rows, shared_tokens, shared_residual, block, unembed)
    return [(shared_tokens, shared_residual), *batches]


def _pushed_shared_cache(model, shared_tokens, shared_residual, edit, block):
    """The shared prefix's key/value cache for blocks `block`.. under `edit`, one row per amount."""
    if shared_residual is None:
        return None
    n = edit.function.amount.shape[0] if isinstance(edit.function.amount, Tensor) else 1
    tokens = shared_tokens.expand(n, -1)
    with edits(model, [edit]), feeding_tokens(tokens, prompt_lengths=[tokens.shape[1]] * n):
        _, cache = forward_from_block(
            model,
            shared_residual.expand(n, -1, -1),
            block,
            torch.ones_like(tokens),
            use_cache=True,
            logits_to_keep=1,  # only the cache is used
        )
    fill_skipped_blocks(cache, block)
    return cache


def cut_tolerance(dtype: torch.dtype) -> float:
    """How far (relative to the logits' scale) a forward started at a block may differ from the
    full forward by rounding alone: 1e-3 in float32, eight rounding steps in lower precision (the
    cut and the full forward sum in other orders); a wrong cut differs by the logits' own scale.

    Float32 whose matrix products run in lower precision (`torch.set_float32_matmul_precision`:
    "high" allows TF32 on CUDA, "medium" bfloat16 on CUDA and on CPUs with bf16 units) rounds like
    that precision."""
    if dtype == torch.float64:
        return 1e-3
    if dtype == torch.float32:
        products = torch.get_float32_matmul_precision()
        if products == "medium":
            return 8 * torch.finfo(torch.bfloat16).eps
        return 8 * 2.0**-10 if products == "high" else 1e-3  # TF32 keeps 10 mantissa bits
    return 8 * torch.finfo(dtype).eps


def _check_cut(
    model, batch, rows, shared_tokens, shared_residual, block, unembed=None, n_rows=2
) -> None:
    """Upper blocks from the cached residual must give the full forward's logits (no edit).

    Checked on the first `n_rows` rows only: a stack that cannot be cut fails on any row. With
    `unembed`, its screened argmax must also pick the full forward's tokens.
    """
    k = min(n_rows, batch.tokens.shape[0])
    some = rows[batch.rows][:k]
    full = next(
        shared_prefix_batches(
            model,
            [r.prompt + r.answer for r in some],
            [len(r.prompt) for r in some],
            batch_size=k,
            min_position=batch.shared_length,
        )
    )
    past = None
    if shared_residual is not None:
        _, past = forward_from_block(
            model, shared_residual, block, torch.ones_like(shared_tokens), use_cache=True
        )
        fill_skipped_blocks(past, block)
        past.batch_repeat_interleave(k)
    residual, mask = batch.cache["residual"][:k], batch.mask[:k]
    cut, _ = forward_from_block(model, residual, block, mask, copy.deepcopy(past))
    # the same real positions, row by row (the k rows alone may need less padding)
    kept = batch.mask[:k, batch.shared_length :].bool()
    cut = cut[kept]
    real = full.logits[full.mask[:, full.shared_length :].bool()]
    gap = float((cut - real).abs().max())
    scale = float(real.abs().max())
    tolerance = cut_tolerance(real.dtype) * max(scale, 1.0)
    if gap > tolerance:
        raise LayerSkipError(
            f"running blocks {block}.. alone changes the logits by {gap:.3g} on this model "
            f"({type(model.original_model).__name__}); use full forwards (layer_skip=False)"
        )
    if unembed is not None:
        hidden, _ = forward_from_block(model, residual, block, mask, past, unembed=False)
        # positions whose best two logits lie within the rounding tolerance may order either way
        best_two = real.float().topk(2, dim=-1).values
        clear = best_two[:, 0] - best_two[:, 1] > 2 * tolerance
        if not torch.equal(unembed.argmax(hidden[kept])[clear], real.argmax(-1)[clear]):
            raise LayerSkipError(
                f"the screened unembedding of {type(model.original_model).__name__} picks other "
                f"tokens than its logits do (a non-linear output head?); use "
                f"PushSweep(..., screen_unembedding=False)"
            )


def _first_block_changed(model, push, block) -> tuple[int, Callable[[Tensor], Edit]]:
    """The first block a push at `block` changes, and the push re-hooked to that block's input.

    The output of block b is the input of block b + 1, so a push on `blocks.b.hook_resid_post`
    leaves block b itself unchanged: move it to `blocks.{b+1}.hook_resid_pre` and run from there.
    """
    hook = push(torch.zeros(1)).hook
    if hook != f"blocks.{block}.hook_resid_post" or block + 1 >= model.cfg.n_layers:
        return block, push
    entering = f"blocks.{block + 1}.hook_resid_pre"

    def pushed_on_input(amounts: Tensor) -> Edit:
        return dataclasses.replace(push(amounts), hook=entering)

    return block + 1, pushed_on_input


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
