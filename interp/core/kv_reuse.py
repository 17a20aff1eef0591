"""Keys and values reused across models and edits: one model writes a donor's answer prefix,
another goes on from it.

The prefix swap needs the donor's cache for every k without re-running the donor: `prefill_caches`
keeps each row's keys/values without padding (`RowCache`), so rows can be cropped to any length
and stacked again with new left padding (`stack_row_caches`) for `generate(..., caches=...)`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from interp.core.runner import forward
from interp.core.tokens import (
    GenerationError,
    check_continuation,
    encode_prompts,
    left_pad,
    pad_token_id,
)
from interp.interventions import Edit, edits


@dataclass
class RowCache:
    """Keys and values of one sequence's real tokens, one (key, value) pair per layer.

    Shapes are [kv_heads, positions, head_dim]; padding is never stored, so rows from different
    batches can be cropped (`crop`) and stacked again with any left padding (`stack_row_caches`).
    Positions come from the attention mask, so a row's keys do not depend on its old padding.
    """

    layers: list[tuple[Tensor, Tensor]]

    @property
    def length(self) -> int:
        return int(self.layers[0][0].shape[1])

    def crop(self, length: int) -> RowCache:
        """The cache of the first `length` positions (views, no copy)."""
        if not 0 <= length <= self.length:
            raise GenerationError(f"cannot crop a cache of {self.length} positions to {length}")
        return RowCache([(k[:, :length], v[:, :length]) for k, v in self.layers])


def prefill_caches(
    model,
    sequences: Sequence[Sequence[int]],
    *,
    prompt_lengths: Sequence[int] | None = None,
    edit_list: Sequence[Edit] = (),
    batch_size: int = 8,
) -> list[RowCache]:
    """One forward per batch over each sequence with `edit_list` hooked in; the keys/values per row.

    `prompt_lengths` tell position rules where each prompt ends (the rest counts as generated),
    exactly as the decoding loop would have seen it.
    """
    encoded = encode_prompts(model, sequences)
    lengths = check_continuation(encoded, prompt_lengths, None)
    device = next(model.parameters()).device
    rows: list[RowCache] = []
    with edits(model, edit_list), torch.no_grad():
        for start in range(0, len(encoded), batch_size):
            chunk = encoded[start : start + batch_size]
            tokens, mask = left_pad(chunk, pad_token_id(model), device)
            chunk_lengths = None if lengths is None else lengths[start : start + batch_size]
            _, past = forward(
                model,
                tokens,
                mask,
                prompt_lengths=chunk_lengths,
                return_type="logits_and_cache",
                use_cache=True,
            )
            rows.extend(_split_rows(past, [len(ids) for ids in chunk], tokens.shape[1]))
    return rows


def _split_rows(past: Any, real_lengths: list[int], total: int) -> list[RowCache]:
    """Cut a left-padded batch cache into per-row caches of real positions."""
    layers = [(layer.keys, layer.values) for layer in past.layers]
    if any(k is None or k.shape[2] != total for k, _ in layers):
        raise GenerationError(
            "this model's KV cache does not keep every position in every layer (sliding-window "
            "layers?), so it cannot be reused across models; recompute the prefix instead"
        )
    return [
        RowCache(
            [(k[row, :, total - n :].clone(), v[row, :, total - n :].clone()) for k, v in layers]
        )
        for row, n in enumerate(real_lengths)
    ]


def stack_row_caches(model, rows: Sequence[RowCache]) -> Any:
    """A left-padded Hugging Face cache from row caches (zeros at padding, which the mask hides)."""
    from transformers import DynamicCache

    total = max(row.length for row in rows)
    stacked = []
    for layer in range(len(rows[0].layers)):
        key0, _ = rows[0].layers[layer]
        heads, dim = key0.shape[0], key0.shape[2]
        keys = key0.new_zeros(len(rows), heads, total, dim)
        values = key0.new_zeros(len(rows), heads, total, rows[0].layers[layer][1].shape[2])
        for i, row in enumerate(rows):
            k, v = row.layers[layer]
            keys[i, :, total - k.shape[1] :] = k
            values[i, :, total - v.shape[1] :] = v
        stacked.append((keys, values))
    config = getattr(getattr(model, "original_model", None), "config", None)
    return DynamicCache(ddp_cache_data=stacked, config=config)
