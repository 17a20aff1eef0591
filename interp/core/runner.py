"""Forwards over many sequences that share a prefix (a chat template, a fixed question stem).

The prefix runs once, at batch size one, with the edits active; its KV cache is copied across the
batch and each sequence's own tokens run on top of it. The layout is [prefix | padding | own
tokens]: padding sits in the middle, masked out, and positions are counted from the mask, so each
row computes exactly what it would alone. Position rules count real tokens (see
`interp.core.positions.TokenState`), so edits land where they would without the shared prefix.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import torch
from jaxtyping import Float, Int
from torch import Tensor

from interp.core.positions import TokenState, token_state
from interp.core.tokens import left_pad, pad_token_id
from interp.interventions import Edit, edits


def shared_prefix_length(sequences: Sequence[Sequence[int]], limit: int | None = None) -> int:
    """Length of the longest common prefix, leaving at least one own token in every sequence."""
    if not sequences:
        return 0
    shortest = min(len(s) for s in sequences)
    cap = shortest - 1 if limit is None else min(shortest - 1, limit)
    length = 0
    first = sequences[0]
    while length < cap and all(s[length] == first[length] for s in sequences):
        length += 1
    return length


@dataclass
class SuffixBatch:
    """One batch run on top of the shared prefix: the full layout and what the forward returned."""

    tokens: Int[Tensor, "batch total"]  # [prefix | padding | own tokens]
    mask: Int[Tensor, "batch total"]
    prefix_length: int
    logits: Float[Tensor, "batch suffix vocab"] | None
    cache: dict[str, Tensor]  # activations of the suffix positions only
    rows: slice
    logits_start: int = 0  # suffix column of the first logits row (> 0 when only the last are kept)

    def index(self, row: int, position: int) -> int:
        """Column in `cache` (and in full `logits`) of an unpadded position past the prefix."""
        real = torch.nonzero(self.mask[row]).flatten()
        column = int(real[position]) - self.prefix_length
        if column < 0:
            raise IndexError(f"position {position} lies in the shared prefix")
        return column

    def logits_column(self, row: int, position: int) -> int:
        """Column in `logits` of an unpadded position, also when only the last columns were kept."""
        return self.index(row, position) - self.logits_start


@torch.no_grad()
def run_on_shared_prefix(
    model,
    sequences: Sequence[Sequence[int]],
    prompt_lengths: Sequence[int] | None = None,
    edit_list: Sequence[Edit] = (),
    names_filter: Callable[[str], bool] | None = None,
    batch_size: int = 32,
    min_position: int | None = None,
    stop_at_layer: int | None = None,
) -> Iterator[SuffixBatch]:
    """Run `sequences` in batches over one shared prefix; yield each batch's suffix outputs.

    `min_position` caps the prefix so that position (and every later one) is computed in the
    suffix forward, where its activations can be read. With `names_filter`, the cache holds those
    hooks' activations and no logits are kept; `stop_at_layer` then ends the forward before
    that block (the hooks read must lie below it).
    """
    if len(sequences) == 0:
        raise ValueError("no sequences given")
    limit = min(prompt_lengths) if prompt_lengths is not None else None
    if min_position is not None:
        limit = min_position if limit is None else min(limit, min_position)
    prefix_length = shared_prefix_length(sequences, limit)
    device = next(model.parameters()).device
    pad_id = pad_token_id(model)
    prefix = torch.tensor([list(sequences[0][:prefix_length])], device=device)
    with edits(model, edit_list):
        prefix_cache = None
        if prefix_length > 0:
            state = TokenState.for_tokens(prefix, prompt_lengths=[prefix_length])
            with token_state(state):
                _, prefix_cache = model(prefix, return_type="logits_and_cache", use_cache=True)
        for start in range(0, len(sequences), batch_size):
            rows = slice(start, min(start + batch_size, len(sequences)))
            own = [list(s[prefix_length:]) for s in sequences[rows]]
            own_tokens, own_mask = left_pad(own, pad_id, device)
            batch = own_tokens.shape[0]
            tokens = torch.cat([prefix.expand(batch, -1), own_tokens], dim=1)
            mask = torch.cat([torch.ones_like(tokens[:, :prefix_length]), own_mask], dim=1)
            lengths = None if prompt_lengths is None else prompt_lengths[rows]
            state = TokenState.for_tokens(tokens, mask, lengths)
            state.chunk_start = prefix_length
            past = None
            if prefix_cache is not None:
                past = copy.deepcopy(prefix_cache)
                past.batch_repeat_interleave(batch)
            with token_state(state):
                if names_filter is None:
                    logits = model(own_tokens, attention_mask=mask, past_key_values=past)
                    cache = {}
                else:
                    logits = None
                    _, activation_cache = model.run_with_cache(
                        own_tokens,
                        attention_mask=mask,
                        past_key_values=past,
                        names_filter=names_filter,
                        return_type=None,
                        stop_at_layer=stop_at_layer,
                    )
                    cache = dict(activation_cache.items())
            yield SuffixBatch(tokens, mask, prefix_length, logits, cache, rows)
