"""Running sequences over one shared prefix gives what each sequence gives alone, edits included."""

import pytest
import torch

from interp.core.positions import (
    InsideSpan,
    PromptAndFirstGenerated,
    PromptPositions,
    TokenState,
    token_state,
)
from interp.core.runner import run_on_shared_prefix, shared_prefix_length
from interp.interventions import AddVector, Edit, edits

SEQUENCES = [[5, 6, 7, 8, 9, 10], [5, 6, 7, 11], [5, 6, 7, 12, 13, 14, 15]]
PROMPT_LENGTHS = [4, 4, 5]


def test_shared_prefix_length_leaves_one_own_token():
    assert shared_prefix_length(SEQUENCES) == 3
    assert shared_prefix_length([[1, 2], [1, 2]]) == 1
    assert shared_prefix_length(SEQUENCES, limit=2) == 2
    assert shared_prefix_length([[1], [2]]) == 0


@pytest.mark.parametrize(
    "rule", [None, PromptPositions(), PromptAndFirstGenerated(1), InsideSpan((6,), (13,))]
)
def test_shared_prefix_matches_each_sequence_alone(tiny, rule):
    torch.manual_seed(0)
    edit_list = (
        [] if rule is None else [Edit("blocks.1.hook_resid_pre", AddVector(torch.randn(32)), rule)]
    )
    batches = list(run_on_shared_prefix(tiny, SEQUENCES, PROMPT_LENGTHS, edit_list, batch_size=2))
    assert batches[0].prefix_length == 3
    for batch in batches:
        for offset in range(batch.logits.shape[0]):
            row = batch.rows.start + offset
            sequence = SEQUENCES[row]
            state = TokenState.for_tokens(
                torch.tensor([sequence]), prompt_lengths=[PROMPT_LENGTHS[row]]
            )
            with edits(tiny, edit_list), token_state(state):
                alone = tiny(torch.tensor([sequence]))[0]
            for position in range(batch.prefix_length, len(sequence)):
                got = batch.logits[offset, batch.index(offset, position)]
                assert torch.allclose(got, alone[position], atol=1e-5)


def test_cache_of_suffix_positions_only(tiny):
    hook = "blocks.1.hook_resid_post"
    (batch,) = run_on_shared_prefix(tiny, SEQUENCES, names_filter=lambda n: n == hook, batch_size=3)
    assert batch.cache[hook].shape == (3, 4, 32)
    with pytest.raises(IndexError, match="shared prefix"):
        batch.index(0, 1)
