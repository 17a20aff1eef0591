"""Running sequences over one shared prefix gives what each sequence gives alone, edits included."""

import pytest
import torch

from interp.core import runner
from interp.core.positions import InsideSpan, PromptAndFirstGenerated, PromptPositions
from interp.core.runner import shared_prefix_batches, shared_prefix_length
from interp.core.tokens import left_pad
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
    batches = list(shared_prefix_batches(tiny, SEQUENCES, PROMPT_LENGTHS, edit_list, batch_size=2))
    assert batches[0].shared_length == 3
    for batch in batches:
        for offset in range(batch.logits.shape[0]):
            row = batch.rows.start + offset
            sequence = SEQUENCES[row]
            with edits(tiny, edit_list):
                alone = runner.forward(
                    tiny, torch.tensor([sequence]), prompt_lengths=[PROMPT_LENGTHS[row]]
                )[0]
            for position in range(batch.shared_length, len(sequence)):
                got = batch.logits[offset, batch.index(offset, position)]
                assert torch.allclose(got, alone[position], atol=1e-5)


def test_kept_logits_are_the_last_columns_of_the_full_ones(tiny):
    full = list(shared_prefix_batches(tiny, SEQUENCES, PROMPT_LENGTHS, batch_size=2))
    kept = list(
        shared_prefix_batches(tiny, SEQUENCES, PROMPT_LENGTHS, batch_size=2, logits_to_keep=2)
    )
    for whole, last in zip(full, kept, strict=True):
        assert last.logits.shape[1] == 2 and last.logits_start == whole.logits.shape[1] - 2
        for offset in range(last.logits.shape[0]):
            n = len(SEQUENCES[last.rows.start + offset])
            # left padded, every row ends at the last column (positions past the shared prefix)
            for position in range(max(n - 2, last.shared_length), n):
                got = last.logits[offset, last.logits_column(offset, position)]
                want = whole.logits[offset, whole.logits_column(offset, position)]
                torch.testing.assert_close(got, want)
            if n - 3 >= last.shared_length:  # a column fed but not unembedded
                with pytest.raises(IndexError, match="before the logits kept"):
                    last.logits_column(offset, n - 3)


def test_cache_of_suffix_positions_only(tiny):
    hook = "blocks.1.hook_resid_post"
    (batch,) = shared_prefix_batches(
        tiny, SEQUENCES, names_filter=lambda n: n == hook, batch_size=3
    )
    assert batch.cache[hook].shape == (3, 4, 32)
    with pytest.raises(IndexError, match="shared prefix"):
        batch.index(0, 1)


def test_read_positions_gives_the_full_forwards_activations_and_leaves_no_hook(tiny):
    hooks = ["blocks.0.hook_resid_post", "blocks.1.hook_resid_pre"]
    tokens, mask = left_pad(SEQUENCES, 0)
    rows, columns = torch.tensor([0, 1, 2, 2]), torch.tensor([1, 4, 0, 6])
    hook_counts = {name: len(point.fwd_hooks) for name, point in tiny.hook_dict.items()}
    got = runner.read_positions(tiny, tokens, mask, hooks, rows, columns)
    _, full = runner.activations(tiny, tokens, mask, names_filter=lambda n: n in hooks)
    for hook in hooks:
        assert torch.allclose(got[hook], full[hook][rows, columns])
    assert {name: len(p.fwd_hooks) for name, p in tiny.hook_dict.items()} == hook_counts


def test_activations_at_equals_each_sequence_alone_and_stops_after_the_last_block_read(tiny):
    """Probe activations over a shared prefix, with a prompt-only edit, equal a full forward of
    each sequence alone; the forward ends after the deepest block read (no unembedding)."""
    from interp.probes.activations import activations_at

    torch.manual_seed(0)
    edit_list = [Edit("blocks.0.hook_resid_post", AddVector(torch.randn(32)), PromptPositions())]
    hooks = ["blocks.0.hook_resid_post", "blocks.1.hook_resid_post"]
    positions = [[3, len(s) - 1] for s in SEQUENCES]
    unembedded = []  # a plain torch hook: a TransformerLens hook there would turn the saving off
    head = tiny.original_model.lm_head
    handle = head.register_forward_hook(lambda module, args, out: unembedded.append(out))
    try:
        got = activations_at(
            tiny, SEQUENCES, positions, hooks, edit_list, PROMPT_LENGTHS, batch_size=2
        )
    finally:
        handle.remove()
    assert got.shape == (2, len(SEQUENCES), 2, 32)
    # every forward (the shared prefix's and each batch's) unembeds one position only
    assert len(unembedded) == 3 and all(x.shape[1] == 1 for x in unembedded)
    for row, sequence in enumerate(SEQUENCES):
        with edits(tiny, edit_list):
            _, cache = runner.activations(
                tiny,
                torch.tensor([sequence]),
                names_filter=lambda name: name in hooks,
                prompt_lengths=[PROMPT_LENGTHS[row]],
            )
        for h, hook in enumerate(hooks):
            torch.testing.assert_close(got[h, row], cache[hook][0, positions[row]].float())
