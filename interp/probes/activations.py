"""Read the residual stream at chosen token positions, every layer at once.

One forward per batch with a `names_filter` that keeps only the hooks asked for, so memory holds
[layers, batch, d_model] at the chosen positions and never the whole cache.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import torch
from einops import rearrange
from jaxtyping import Float
from torch import Tensor
from tqdm.auto import tqdm

from interp.core.runner import shared_prefix_batches
from interp.interventions import Edit, check_hook


def layer_hooks(model, layers: Sequence[int] | None, site: str = "hook_resid_post") -> list[str]:
    """Hook names of `site` at each layer (all layers when None), checked against the model."""
    layers = range(model.cfg.n_layers) if layers is None else layers
    names = [f"blocks.{layer}.{site}" for layer in layers]
    for name in names:
        check_hook(model, name)
    return names


@torch.no_grad()
def activations_at(
    model,
    sequences: Sequence[Sequence[int]],
    positions: Sequence[Sequence[int]],
    hooks: Sequence[str],
    edit_list: Sequence[Edit] = (),
    prompt_lengths: Sequence[int] | None = None,
    batch_size: int = 32,
    progress: bool = False,
) -> Float[Tensor, "hook n_seq n_pos d"]:
    """Activations at `hooks` for each sequence at its `positions` (indices into the unpadded sequence).

    Every sequence must ask for the same number of positions. A prefix shared by all sequences
    runs once (`interp.core.runner.shared_prefix_batches`); only positions after it are read, so
    the shared prefix stops before the earliest requested position. Sequences are batched by
    length (the least padding; results come back in the order given).
    """
    if len(sequences) == 0:
        raise ValueError("no sequences given: nothing to read activations from")
    if len({len(p) for p in positions}) != 1:
        raise ValueError("every sequence must ask for the same number of positions")
    for seq, pos in zip(sequences, positions):
        if any(not 0 <= p < len(seq) for p in pos):
            raise ValueError(f"position out of range for a sequence of {len(seq)} tokens: {pos}")
    wanted = set(hooks)
    earliest = min(min(p) for p in positions)
    # Only reads: end the forward after the last block read when that is not the last block
    # (the runner unembeds a single position otherwise); hooks outside blocks need it all.
    layers = [re.match(r"blocks\.(\d+)\.", hook) for hook in hooks]
    stop = 1 + max(int(m.group(1)) for m in layers) if all(layers) else None
    stop = None if stop is not None and stop >= model.cfg.n_layers else stop
    order = sorted(range(len(sequences)), key=lambda i: len(sequences[i]))
    sequences = [sequences[i] for i in order]
    positions = [positions[i] for i in order]
    if prompt_lengths is not None:
        prompt_lengths = [prompt_lengths[i] for i in order]
    chunks = []
    batches = shared_prefix_batches(
        model,
        sequences,
        prompt_lengths,
        edit_list,
        names_filter=lambda name: name in wanted,
        batch_size=batch_size,
        min_position=earliest,
        stop_at_layer=stop,
    )
    total = (len(sequences) + batch_size - 1) // batch_size
    for batch in tqdm(batches, total=total, disable=not progress, desc="activations"):
        stacked = torch.stack([batch.cache[h] for h in hooks])  # [hook, batch, suffix, d]
        columns = torch.tensor(
            [[batch.index(r, p) for p in positions[batch.rows][r]] for r in range(stacked.shape[1])]
        )
        index = columns[None, :, :, None].expand(len(hooks), -1, -1, stacked.shape[-1])
        chunks.append(stacked.cpu().gather(2, index).float())  # float32 copies for the probes
    in_order = torch.empty(len(order), dtype=torch.long)
    in_order[torch.tensor(order)] = torch.arange(len(order))
    return torch.cat(chunks, dim=1)[:, in_order]


def flatten_positions(acts: Float[Tensor, "hook n_seq n_pos d"]) -> Float[Tensor, "hook n d"]:
    """Merge sequences and positions into one sample axis."""
    return rearrange(acts, "hook n_seq n_pos d -> hook (n_seq n_pos) d")
