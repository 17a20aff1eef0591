"""Activations at the last real token of each text and the log-likelihood of its answer, with
texts that share a question running the question once.

Each text is `prompt + answer`. Texts whose prompt (all but its last token) is the same form a
group: the group's prefix runs once with the KV cache, and every member's suffix (the prompt's last
token, then the answer) runs on top of a copy of it. The suffix forward gives the logits that
predict every answer token and the states at the last real token. Layout of a batch, with padding
on either side of each part:

    left:  [pad | prefix] [pad | suffix]        right: [prefix | pad] [suffix | pad]

Positions are counted from the attention mask, so every row computes what it would alone; the
last real token is read from the mask, never a pad (the truthfulness probe in the code of the BREP
study, arXiv 2511.10707, read position -1 of right-padded input). The forwards run through
`interp.core.runner`, so edits see each row's real positions across both parts.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import torch
from jaxtyping import Float, Int
from torch import Tensor
from tqdm.auto import tqdm

from interp.core.runner import activations, forward
from interp.core.tokens import context_length, pad_batch, pad_token_id
from interp.interventions import Edit, check_hook, edits


@dataclass
class LastTokenReadout:
    """Activations at each text's last real token, and its answer's log-likelihood."""

    states: dict[str, Tensor]  # hook -> [n, *activation shape]
    answer_logprob: Float[Tensor, " n"]  # sum over answer tokens of log p(token | all before it)
    answer_tokens: Int[Tensor, " n"]


def _check_inputs(model, sequences, prompt_lengths, hooks) -> None:
    """Raise a clear error for an empty input, a prompt or answer too short, or a text too long."""
    if len(sequences) == 0:
        raise ValueError("no sequences given: nothing to read")
    if len(prompt_lengths) != len(sequences):
        raise ValueError(f"{len(prompt_lengths)} prompt lengths for {len(sequences)} sequences")
    limit = context_length(model)
    for index, (seq, prompt_length) in enumerate(zip(sequences, prompt_lengths)):
        if not 2 <= prompt_length < len(seq):
            raise ValueError(
                f"sequence {index}: prompt of {prompt_length} tokens in {len(seq)}; the prompt "
                f"needs at least two tokens and the answer at least one"
            )
        if len(seq) > limit:
            raise ValueError(
                f"sequence {index} has {len(seq)} tokens, more than the model's context of "
                f"{limit}; shorten the question or drop it"
            )
    for hook in hooks:
        check_hook(model, hook)


@torch.no_grad()
def read_last_token(
    model,
    sequences: Sequence[Sequence[int]],
    prompt_lengths: Sequence[int],
    hooks: Sequence[str],
    edit_list: Sequence[Edit] = (),
    padding_side: Literal["left", "right"] = "left",
    batch_size: int = 8,
    progress: bool = False,
) -> LastTokenReadout:
    """States at `hooks` at the last real token of each sequence, and the summed log-probability
    of its tokens after `prompt_lengths[i]`. `batch_size` counts shared prompts (questions) per
    batch; longest first, results in the order given."""
    _check_inputs(model, sequences, prompt_lengths, hooks)
    groups: dict[tuple[int, ...], list[int]] = {}
    for index, (seq, prompt_length) in enumerate(zip(sequences, prompt_lengths)):
        groups.setdefault(tuple(seq[: prompt_length - 1]), []).append(index)
    prefixes = sorted(groups, key=lambda p: -len(p))
    wanted = set(hooks)
    states: dict[str, list[Tensor | None]] = {h: [None] * len(sequences) for h in hooks}
    logprob = torch.zeros(len(sequences))
    n_answer = torch.zeros(len(sequences), dtype=torch.long)
    device = next(model.parameters()).device
    pad_id = pad_token_id(model)
    batches = range(0, len(prefixes), batch_size)
    with edits(model, edit_list):
        for start in tqdm(batches, disable=not progress, desc="forwards"):
            chunk = prefixes[start : start + batch_size]
            members = [i for prefix in chunk for i in groups[prefix]]
            owner = torch.tensor([g for g, prefix in enumerate(chunk) for _ in groups[prefix]])
            lengths = [prompt_lengths[i] for i in members]
            # The shared prefix, once per group, keeping its KV cache.
            prefix_tokens, prefix_mask = pad_batch(chunk, pad_id, padding_side, device)
            _, past = forward(
                model,
                prefix_tokens,
                prefix_mask,
                prompt_lengths=[len(p) + 1 for p in chunk],
                return_type="logits_and_cache",
                use_cache=True,
                logits_to_keep=1,
            )
            past.reorder_cache(owner.to(device))
            # Each member's suffix: the prompt's last token, then the answer.
            suffixes = [sequences[i][prompt_lengths[i] - 1 :] for i in members]
            own_tokens, own_mask = pad_batch(suffixes, pad_id, padding_side, device)
            logits, cache = activations(
                model,
                torch.cat([prefix_tokens[owner.to(device)], own_tokens], dim=1),
                torch.cat([prefix_mask[owner.to(device)], own_mask], dim=1),
                names_filter=lambda name: name in wanted,
                prompt_lengths=lengths,
                fed_from=prefix_tokens.shape[1],
                past_key_values=past,
            )
            for row, index in enumerate(members):
                real = torch.nonzero(own_mask[row]).flatten()  # suffix columns of real tokens
                last = int(real[-1])
                for hook in hooks:
                    states[hook][index] = cache[hook][row, last].float().cpu()
                # Suffix token k + 1 is answer token k; the logits at suffix token k predict it.
                # log-likelihood scores in float32 on purpose, whatever the model's dtype
                log_probs = torch.log_softmax(logits[row, real[:-1]].float(), dim=-1)
                picked = log_probs.gather(-1, own_tokens[row, real[1:]][:, None])[:, 0]
                logprob[index] = float(picked.sum())
                n_answer[index] = len(real) - 1
            del logits, cache, past
    return LastTokenReadout(
        states={h: torch.stack(v) for h, v in states.items()},
        answer_logprob=logprob,
        answer_tokens=n_answer,
    )
