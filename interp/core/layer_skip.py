"""Forwards that start at a block: run blocks L..N-1 on a residual stream computed once.

An edit at block L leaves blocks 0..L-1 unchanged, so a sweep over many variants of that edit (push
strengths) computes their output once and runs only the blocks from L on for each variant. The
Hugging Face model runs with its decoder-layer list sliced and the cached residual as
`inputs_embeds`: its plain copy with the edits' hooks mirrored (`interp.core.direct`), or the
model inside the bridge, whose wrappers run them; either way edits at block L fire as usual.

A key/value cache built this way holds entries for blocks L.. only. `fill_skipped_blocks` gives the
skipped blocks zero entries of the same length, which no attention ever reads, so the cache length
that Hugging Face derives positions and masks from stays right.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from jaxtyping import Float, Int
from torch import Tensor, nn

from interp.core.direct import layers_between, plain_module


class LayerSkipError(RuntimeError):
    """This model's decoder stack cannot be run from a middle block."""


def decoder_stack(model) -> nn.Module:
    """The Hugging Face module holding the decoder layers (`.layers`) inside a bridge."""
    inner = getattr(getattr(model, "original_model", None), "model", None)
    if not isinstance(getattr(inner, "layers", None), nn.ModuleList):
        raise LayerSkipError(
            f"{type(model).__name__} has no Hugging Face decoder stack at original_model.model.layers; "
            f"run full forwards instead (interp.core.digit_answers.greedy_outcomes)"
        )
    return inner


@contextlib.contextmanager
def blocks_from(stack: nn.Module, first_block: int) -> Iterator[None]:
    """Within the block, the decoder `stack` (see `decoder_stack`) runs only its blocks
    `first_block`.. (restored after)."""
    if not 0 <= first_block < len(stack.layers):
        raise LayerSkipError(f"block {first_block} is out of range 0..{len(stack.layers) - 1}")
    with layers_between(stack, first_block):
        yield


def stop_after_block(model, block: int) -> int | None:
    """`stop_at_layer` for a forward that needs `blocks.{block}` and nothing above (None: run all)."""
    return block + 1 if block + 1 < model.cfg.n_layers else None


def residual_entering(model, block: int) -> tuple[str, int | None]:
    """The hook holding the residual stream that enters `block`, and the `stop_at_layer` to read it.

    A forward stopped at block k records none of block k's hooks, so the stream entering block
    k >= 1 is read as block k-1's output: block k itself is never run.
    """
    if block == 0:
        return "blocks.0.hook_resid_pre", stop_after_block(model, 0)
    return f"blocks.{block - 1}.hook_resid_post", block


def mask_positions(
    attention_mask: Int[Tensor, "batch total"], n_new: int
) -> Int[Tensor, "batch new"]:
    """Position ids counted in real tokens, as the bridge derives them, for the last `n_new` columns."""
    positions = attention_mask.long().cumsum(-1) - 1
    positions = positions.masked_fill(attention_mask == 0, 1)
    return positions[:, -n_new:]


@torch.no_grad()
def forward_from_block(
    model,
    residual: Float[Tensor, "batch new d_model"],
    first_block: int,
    attention_mask: Int[Tensor, "batch total"],
    past=None,
    use_cache: bool = False,
    logits_to_keep: int = 0,
    unembed: bool = True,
) -> tuple[Float[Tensor, "batch kept vocab"], object]:
    """Logits of blocks `first_block`.. run on `residual` (the stream entering that block), and the cache.

    `attention_mask` covers the cached positions and the new ones; `past` is a cache from an
    earlier call (with the skipped blocks filled, see `fill_skipped_blocks`). `logits_to_keep`
    > 0 unembeds only the last that many positions: on a large vocabulary the unembedding costs
    as much as several blocks. `unembed=False` returns the final normalized hidden states of
    every position instead of logits.
    """
    positions = mask_positions(attention_mask, residual.shape[1])
    inputs = dict(
        inputs_embeds=residual,
        attention_mask=attention_mask,
        position_ids=positions,
        past_key_values=past,
        use_cache=use_cache,
    )
    decoder_stack(model)  # a clear error where the stack cannot be cut
    # the plain Hugging Face modules with the edits' hooks mirrored where it can (interp.core.direct)
    with plain_module(model) as root, blocks_from(root.model, first_block):
        if not unembed:
            out = root.model(**inputs)
            return out.last_hidden_state, out.past_key_values
        out = root(**inputs, logits_to_keep=logits_to_keep)
    return out.logits, out.past_key_values


def fill_skipped_blocks(cache, first_block: int) -> None:
    """Give blocks 0..first_block-1 zero key/value entries as long as block `first_block`'s."""
    layer = cache.layers[first_block]
    for block in range(first_block):
        cache.update(torch.zeros_like(layer.keys), torch.zeros_like(layer.values), block)
