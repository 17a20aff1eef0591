"""Make a Hugging Face tokenizer ready for the bridge and for batched, left-padded decoding."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

__all__ = ["prepare_tokenizer"]


def prepare_tokenizer(
    tokenizer: PreTrainedTokenizerBase, name_or_path: str
) -> PreTrainedTokenizerBase:
    """Set what the bridge and batched decoding need on `tokenizer` (in place) and return it.

    TransformerLens reads ``init_kwargs["name_or_path"]`` (KeyError without it); a pad token
    (eos when missing) and left padding let batches decode from aligned last positions.
    """
    if not tokenizer.init_kwargs.get("name_or_path"):
        tokenizer.init_kwargs["name_or_path"] = tokenizer.name_or_path or name_or_path
    if tokenizer.pad_token is None and tokenizer.eos_token is not None:
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "left"
    return tokenizer
