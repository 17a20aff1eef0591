"""Position rules on hand-built token states: each rule picks exactly the positions it names."""

import torch

from interp.core.positions import (
    AllPositions,
    GeneratedPositions,
    InsideSpan,
    PositionRule,
    PromptAndFirstGenerated,
    PromptPositions,
    TokenMatch,
    TokenState,
    boundary_tokens,
)
from interp.testing import char_tokenizer

PAD = 0


def state_for(rows, prompt_lengths, chunk_start=0):
    """Left-pad `rows` (token lists) and build a state whose prompts have the given lengths."""
    width = max(len(r) for r in rows)
    tokens = torch.tensor([[PAD] * (width - len(r)) + r for r in rows])
    mask = torch.tensor([[0] * (width - len(r)) + [1] * len(r) for r in rows])
    state = TokenState.for_tokens(tokens, mask, prompt_lengths)
    state.chunk_start = chunk_start
    return state


def test_prompt_generated_and_first_k_split_at_the_prompt_end():
    state = state_for([[5, 6, 7, 8, 9], [5, 6, 7]], prompt_lengths=[2, 1])
    assert AllPositions().mask(state).tolist() == [[1, 1, 1, 1, 1], [0, 0, 1, 1, 1]]
    assert PromptPositions().mask(state).tolist() == [[1, 1, 0, 0, 0], [0, 0, 1, 0, 0]]
    assert GeneratedPositions().mask(state).tolist() == [[0, 0, 1, 1, 1], [0, 0, 0, 1, 1]]
    assert PromptAndFirstGenerated(2).mask(state).tolist() == [[1, 1, 1, 1, 0], [0, 0, 1, 1, 1]]
    assert PromptAndFirstGenerated(0).mask(state).tolist() == PromptPositions().mask(state).tolist()


def test_padding_in_the_middle_does_not_shift_positions():
    """A shared prefix, then padding, then each row's own tokens: rules count real tokens only."""
    tokens = torch.tensor([[5, 6, PAD, PAD, 7, 8], [5, 6, 7, 8, 9, 4]])
    mask = torch.tensor([[1, 1, 0, 0, 1, 1], [1, 1, 1, 1, 1, 1]])
    state = TokenState.for_tokens(tokens, mask, prompt_lengths=[3, 3])
    assert PromptPositions().mask(state).tolist() == [[1, 1, 0, 0, 1, 0], [1, 1, 1, 0, 0, 0]]
    assert PromptAndFirstGenerated(1).mask(state).tolist() == [
        [1, 1, 0, 0, 1, 1],
        [1, 1, 1, 1, 0, 0],
    ]
    split_marker = InsideSpan((6, 7), (99,))  # the marker's tokens are separated by padding
    assert split_marker.mask(state).tolist() == [[0, 0, 0, 0, 0, 1], [0, 0, 0, 1, 1, 1]]


def test_masks_cover_only_the_chunk_being_fed():
    state = state_for([[5, 6, 7, 8, 9]], prompt_lengths=[2], chunk_start=4)
    assert GeneratedPositions().mask(state).tolist() == [[True]]
    assert PromptPositions().mask(state).tolist() == [[False]]


def test_token_match_ignores_padding_even_when_pad_id_matches():
    state = state_for([[3, 4, 3], [3]], prompt_lengths=[3, 1])
    assert TokenMatch((3, PAD)).mask(state).tolist() == [[1, 0, 1], [0, 0, 1]]


def test_boundary_tokens_are_every_token_containing_a_blank_line():
    tokenizer = char_tokenizer()
    rule = boundary_tokens(tokenizer)
    texts = [tokenizer.decode([i]) for i in rule.token_ids]
    assert texts and all("\n\n" in t for t in texts)
    assert tokenizer.convert_tokens_to_ids("\n") not in rule.token_ids


def test_inside_span_excludes_markers_and_closes_causally():
    open_id, close_id = 90, 91
    row = [1, open_id, 2, 3, close_id, 4, open_id, 5]
    state = state_for([row], prompt_lengths=[8])
    rule = InsideSpan((open_id,), (close_id,))
    assert rule.mask(state).tolist() == [[0, 0, 1, 1, 0, 0, 0, 1]]


def test_inside_span_with_multi_token_markers():
    row = [1, 7, 8, 2, 3, 9, 9, 4]  # open = (7, 8), close = (9, 9)
    rule = InsideSpan((7, 8), (9, 9))
    # the first token of the closing marker cannot yet be known as closing: it counts as inside
    assert rule.mask(state_for([row], [8])).tolist() == [[0, 0, 0, 1, 1, 1, 0, 0]]


def test_rule_is_causal_so_stepwise_masks_equal_the_full_mask():
    """Computing the mask one position at a time (KV cache) equals computing it at once."""
    row = [1, 90, 4, 44, 4, 91, 44, 90, 44]
    rule = TokenMatch((44,)) & InsideSpan((90,), (91,))
    full = rule.mask(state_for([row], [3]))[0].tolist()
    stepwise = [
        rule.mask(state_for([row[: j + 1]], [3], chunk_start=j))[0, 0].item()
        for j in range(len(row))
    ]
    assert full == stepwise == [0, 0, 0, 1, 0, 0, 0, 0, 1]


def test_rules_round_trip_through_dicts():
    rules = [
        AllPositions(),
        PromptPositions(),
        GeneratedPositions(),
        PromptAndFirstGenerated(4),
        TokenMatch((3, 4)),
        InsideSpan((1, 2), (3,)),
        TokenMatch((3,)) & InsideSpan((1,), (2,)),
    ]
    for rule in rules:
        assert PositionRule.from_dict(rule.to_dict()) == rule
