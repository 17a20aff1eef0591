"""Token ids and padding, shared by every forward: prompts to ids, padding, pad and end ids.

Strings are tokenized without added special tokens everywhere (the bridge's tokenizer would
prepend BOS where Hugging Face does not). Batches are padded one way, `pad_batch` (left for
decoding, `left_pad`), always with an attention mask; positions are counted from the mask.
"""

from __future__ import annotations

from collections.abc import Sequence
from numbers import Integral
from typing import TYPE_CHECKING, Literal

import torch
from jaxtyping import Int
from torch import Tensor

if TYPE_CHECKING:
    from interp.core.kv_reuse import RowCache


class GenerationError(ValueError):
    """Bad input to the decoding loop; the message says what to change."""


def encode_prompts(model, prompts: Sequence[str] | Sequence[Sequence[int]]) -> list[list[int]]:
    """Token ids for each prompt; strings are tokenized without added special tokens.

    `prompts` is a list: of strings, or of token-id lists (one list per prompt). A bare string or
    a flat list of ids is refused rather than guessed at (a string would be one prompt per
    character). Every id must be an int in 0..vocabulary size - 1.
    """
    if isinstance(prompts, str):
        raise GenerationError(
            "prompts must be a list of prompts, got a single string: pass [text] for one prompt"
        )
    if isinstance(prompts, Tensor):
        if prompts.ndim != 2:
            raise GenerationError(
                f"a tensor of prompts must be [batch, tokens], got shape {tuple(prompts.shape)}: "
                f"pass tokens[None] for one prompt"
            )
        prompts = prompts.tolist()
    if not isinstance(prompts, Sequence) or isinstance(prompts, bytes):
        raise GenerationError(
            f"prompts must be a list of strings or of token-id lists, got {type(prompts).__name__}"
        )
    if len(prompts) == 0:
        raise GenerationError("no prompts given")
    vocabulary = int(model.cfg.d_vocab)
    encoded = []
    for index, prompt in enumerate(prompts):
        if isinstance(prompt, str):
            if model.tokenizer is None:
                raise GenerationError(
                    "this model has no tokenizer: pass token ids, or load it with a tokenizer"
                )
            ids = model.tokenizer.encode(prompt, add_special_tokens=False)
        else:
            ids = _token_ids(prompt, index)
        if not ids:
            raise GenerationError(
                f"prompt {index} is empty: an empty prompt cannot be decoded from; give at least "
                f"one token"
            )
        check_token_ids(ids, vocabulary, f"prompt {index}")
        encoded.append(ids)
    return encoded


def _token_ids(prompt: object, index: int) -> list[int]:
    """One prompt given as token ids, as a list of ints (a flat list of prompts is refused)."""
    if isinstance(prompt, Tensor):
        prompt = prompt.tolist()
    if isinstance(prompt, Integral) or not isinstance(prompt, Sequence):
        raise GenerationError(
            f"prompt {index} is {prompt!r}, not a string or a list of token ids: pass a list of "
            f"prompts, e.g. [[1, 2, 3]] for one prompt of token ids"
        )
    ids = []
    for token in prompt:
        if isinstance(token, bool) or not isinstance(token, Integral):
            raise GenerationError(
                f"prompt {index} holds {token!r}; token ids must be ints (use ids.long() or int())"
            )
        ids.append(int(token))
    return ids


def check_token_ids(ids: Sequence[int], vocabulary: int, where: str) -> None:
    """Raise if an id is outside 0..vocabulary - 1 (it would index past the embedding)."""
    bad = [t for t in ids if not 0 <= t < vocabulary]
    if bad:
        raise GenerationError(
            f"{where} holds token id {bad[0]}, outside this model's vocabulary of {vocabulary} ids "
            f"(0..{vocabulary - 1}): encode the text with this model's tokenizer"
        )


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
