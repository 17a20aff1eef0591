"""Which answer tokens carry the loss, and batches built from encoded pairs.

Full training puts the loss on every answer token; prefix training on the first K only. The
BREP study's code (arXiv 2511.10707) keeps a share of full-answer examples among the prefix ones (`full_share`); which
examples they are is fixed by a seed. Because attention is causal, a prefix example needs no
tokens past its K-th answer token, so its sequence is cut there (same loss, less compute).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from jaxtyping import Bool, Int
from torch import Tensor

from interp.training.data import EncodedPair

IGNORE = -100


def full_answer_examples(n: int, full_share: float, seed: int = 0) -> list[bool]:
    """Which of `n` examples keep the full-answer loss: round(full_share * n) of them, seeded."""
    if not 0.0 <= full_share <= 1.0:
        raise ValueError(f"full_share must be in [0, 1], got {full_share}")
    n_full = round(full_share * n)
    chosen = set(random.Random(seed).sample(range(n), n_full))
    return [i in chosen for i in range(n)]


def loss_token_counts(
    pairs: Sequence[EncodedPair], prefix_tokens: int | None, full: Sequence[bool] | None = None
) -> list[int]:
    """Answer tokens with a loss per example: all of them, or the first `prefix_tokens`."""
    if prefix_tokens is not None and prefix_tokens < 1:
        raise ValueError("prefix_tokens must be at least 1 (or None for the whole answer)")
    full = full if full is not None else [False] * len(pairs)
    counts = []
    for pair, keep_all in zip(pairs, full, strict=True):
        n = len(pair.answer_ids)
        counts.append(n if prefix_tokens is None or keep_all else min(n, prefix_tokens))
    return counts


@dataclass
class Batch:
    """Right-padded token ids with the target of every position (IGNORE where there is no loss).

    `targets[b, p]` is the token the logits at position p should predict (token p + 1).
    """

    tokens: Int[Tensor, "batch seq"]
    attention_mask: Int[Tensor, "batch seq"]
    targets: Int[Tensor, "batch seq"]
    prompt_lengths: Int[Tensor, " batch"]

    @property
    def loss_mask(self) -> Bool[Tensor, "batch seq"]:
        return self.targets != IGNORE

    def to(self, device) -> Batch:
        return Batch(
            self.tokens.to(device),
            self.attention_mask.to(device),
            self.targets.to(device),
            self.prompt_lengths.to(device),
        )


def make_batch(pairs: Sequence[EncodedPair], loss_tokens: Sequence[int], pad_id: int) -> Batch:
    """Stack pairs into a right-padded batch whose loss covers `loss_tokens[i]` answer tokens each."""
    if not pairs:
        raise ValueError("a batch needs at least one pair")
    sequences = []
    for pair, n_loss in zip(pairs, loss_tokens, strict=True):
        if not 1 <= n_loss <= len(pair.answer_ids):
            raise ValueError(
                f"{n_loss} loss tokens asked for an answer of {len(pair.answer_ids)} tokens"
            )
        sequences.append(list(pair.prompt_ids) + list(pair.answer_ids[:n_loss]))
    length = max(len(s) for s in sequences)
    batch = len(sequences)
    tokens = torch.full((batch, length), pad_id, dtype=torch.long)
    attention = torch.zeros((batch, length), dtype=torch.long)
    targets = torch.full((batch, length), IGNORE, dtype=torch.long)
    prompt_lengths = torch.tensor([len(p.prompt_ids) for p in pairs], dtype=torch.long)
    for row, (seq, pair, n_loss) in enumerate(zip(sequences, pairs, loss_tokens)):
        tokens[row, : len(seq)] = torch.tensor(seq)
        attention[row, : len(seq)] = 1
        start = len(pair.prompt_ids)  # the first answer token sits at `start`
        # logits at position p predict token p + 1: answer tokens start..start+n_loss-1
        targets[row, start - 1 : start - 1 + n_loss] = torch.tensor(seq[start : start + n_loss])
    return Batch(tokens, attention, targets, prompt_lengths)
