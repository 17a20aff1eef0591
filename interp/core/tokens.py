"""Token ids and padding, shared by every forward: prompts to ids, padding, pad and end ids.

Strings are tokenized without added special tokens everywhere (the bridge's tokenizer would
prepend BOS where Hugging Face does not). Batches are padded one way, `pad_batch` (left for
decoding, `left_pad`), always with an attention mask; positions are counted from the mask.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Literal

import torch
from jaxtyping import Int
from torch import Tensor

if TYPE_CHECKING:
    from interp.core.kv_reuse import RowCache


class GenerationError(ValueError):
    """Bad input to the decoding loop; the message says what to change."""


def encode_prompts(model, prompts: Sequence[str] | Sequence[Sequence[int]]) -> list[list[int]]:
    """Token ids for each prompt; strings are tokenized without added special tokens."""
    if len(prompts) == 0:
        raise GenerationError("no prompts given")
    encoded = []
    for prompt in prompts:
        if isinstance(prompt, str):
            if model.tokenizer is None:
                raise GenerationError(
                    "this model has no tokenizer: pass token ids, or load it with a tokenizer"
                )
            ids = model.tokenizer.encode(prompt, add_special_tokens=False)
        else:
            ids = [int(t) for t in prompt]
        if not ids:
            raise GenerationError("an empty prompt cannot be decoded from; give at least one token")
        encoded.append(ids)
    return encoded


def pad_batch(
    sequences: Sequence[Sequence[int]],
    pad_id: int,
    side: Literal["left", "right"] = "left",
    device: torch.device | str = "cpu",
) -> tuple[Int[Tensor, "batch total"], Int[Tensor, "batch total"]]:
    """Stack token lists with padding on `side`, and the attention mask (1 at real tokens)."""
    if side not in ("left", "right"):
        raise ValueError(f"padding side must be 'left' or 'right', got {side!r}")
    length = max(len(s) for s in sequences)
    tokens = torch.full((len(sequences), length), pad_id, dtype=torch.long)
    mask = torch.zeros((len(sequences), length), dtype=torch.long)
    for row, seq in enumerate(sequences):
        if seq:
            columns = slice(length - len(seq), length) if side == "left" else slice(0, len(seq))
            tokens[row, columns] = torch.tensor(list(seq), dtype=torch.long)
            mask[row, columns] = 1
    return tokens.to(device), mask.to(device)


def left_pad(
    sequences: Sequence[Sequence[int]], pad_id: int, device: torch.device | str = "cpu"
) -> tuple[Int[Tensor, "batch total"], Int[Tensor, "batch total"]]:
    """Stack token lists into a left-padded batch and its attention mask (what decoding needs)."""
    return pad_batch(sequences, pad_id, "left", device)


def pad_token_id(model) -> int:
    """The id padding is filled with: the tokenizer's pad id, else its eos id, else 0."""
    tokenizer = model.tokenizer
    if tokenizer is not None and tokenizer.pad_token_id is not None:
        return int(tokenizer.pad_token_id)
    if tokenizer is not None and tokenizer.eos_token_id is not None:
        return int(tokenizer.eos_token_id)
    return 0


def context_length(model) -> int:
    """How many positions the model can attend over."""
    return int(model.cfg.n_ctx)


def eos_token_ids(model) -> set[int]:
    """The ids that end a sequence: the tokenizer's eos and the model's generation config's."""
    ids: set[int] = set()
    tokenizer = model.tokenizer
    if tokenizer is not None and tokenizer.eos_token_id is not None:
        ids.add(int(tokenizer.eos_token_id))
    generation_config = getattr(getattr(model, "original_model", None), "generation_config", None)
    configured = getattr(generation_config, "eos_token_id", None)
    if isinstance(configured, int):
        ids.add(configured)
    elif configured:
        ids.update(int(i) for i in configured)
    return ids


def check_continuation(
    encoded: list[list[int]],
    prompt_lengths: Sequence[int] | None,
    caches: Sequence[RowCache] | None,
    use_cache: bool = True,
) -> list[int] | None:
    """Validate forced prefixes and initial caches against the encoded prompts."""
    if prompt_lengths is not None:
        if len(prompt_lengths) != len(encoded):
            raise GenerationError(
                f"{len(prompt_lengths)} prompt_lengths for {len(encoded)} prompts; give one each"
            )
        for index, (n, ids) in enumerate(zip(prompt_lengths, encoded, strict=True)):
            if not 1 <= n <= len(ids):
                raise GenerationError(
                    f"prompt_lengths[{index}]={n} must be between 1 and the {len(ids)} tokens given"
                )
    if caches is not None:
        if not use_cache:
            raise GenerationError("initial caches need use_cache=True")
        if len(caches) != len(encoded):
            raise GenerationError(f"{len(caches)} caches for {len(encoded)} prompts; give one each")
        for index, (cache, ids) in enumerate(zip(caches, encoded, strict=True)):
            if cache.length != len(ids) - 1:
                raise GenerationError(
                    f"cache {index} covers {cache.length} positions; it must cover all but the "
                    f"last of the {len(ids)} tokens given (crop it with RowCache.crop)"
                )
    return None if prompt_lengths is None else list(prompt_lengths)
