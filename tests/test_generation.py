"""The decoding loop: same tokens with and without the KV cache, batched and one by one, for
every position rule; edits land exactly where their rule says; sampling, stops and errors."""

import pytest
import torch

from interp.core.positions import (
    AllPositions,
    InsideSpan,
    PromptAndFirstGenerated,
    boundary_tokens,
)
from interp.core.tokens import GenerationError
from interp.decoding import generate
from interp.decoding.processors import TokenPenalty
from interp.interventions import RED, AddVector, Edit
from interp.testing import char_tokenizer, position_rule_examples

PROMPTS = ["12+34=", "a\n\nb<think>c d", "hello 5\n\n", "<think>x"]


def steering_edits(model, rule):
    torch.manual_seed(0)
    vector = torch.randn(model.cfg.d_model)
    return [
        Edit("blocks.1.hook_resid_pre", AddVector(vector, alpha=1.5), rule),
        Edit("blocks.0.hook_mlp_out", RED.random(model.cfg.d_model, bias_norm=1.0), rule),
    ]


@pytest.mark.parametrize("rule_name", list(position_rule_examples(char_tokenizer())))
def test_cache_and_batching_do_not_change_the_tokens(tiny, rule_name):
    edit_list = steering_edits(tiny, position_rule_examples(tiny.tokenizer)[rule_name])
    runs = {
        "cache": generate(tiny, PROMPTS, edit_list=edit_list, max_new_tokens=10),
        "no_cache": generate(
            tiny, PROMPTS, edit_list=edit_list, max_new_tokens=10, use_cache=False
        ),
    }
    for name, run in list(runs.items()):
        singles = [
            generate(tiny, [p], edit_list=edit_list, max_new_tokens=10, use_cache=name == "cache")
            for p in PROMPTS
        ]
        assert [s.tokens[0] for s in singles] == run.tokens
        assert [s.edited[0] for s in singles] == run.edited
        for single, logprobs in zip(singles, run.logprobs):
            assert single.logprobs[0] == pytest.approx(logprobs, abs=1e-4)
    assert runs["cache"].tokens == runs["no_cache"].tokens
    assert runs["cache"].edited == runs["no_cache"].edited
    for a, b in zip(runs["cache"].logprobs, runs["no_cache"].logprobs):
        assert a == pytest.approx(b, abs=1e-4)


def test_edits_change_the_output(tiny):
    plain = generate(tiny, PROMPTS, max_new_tokens=10)
    edited = generate(
        tiny, PROMPTS, edit_list=steering_edits(tiny, AllPositions()), max_new_tokens=10
    )
    assert plain.tokens != edited.tokens
    assert all(not any(e) for e in plain.edited)


def test_boundary_edit_touches_exactly_the_boundaries_inside_the_span(tiny, force_text):
    """Forced text puts blank lines inside and outside <think>...</think>; only those inside are edited."""
    tokenizer = tiny.tokenizer
    prompt = "q\n\n<think>a"
    continuation = "b\n\nc\n\nd</think>e\n\nf"
    rule = boundary_tokens(tokenizer) & InsideSpan.from_strings(tokenizer)
    forcing = force_text(tokenizer, [continuation])
    n_new = len(tokenizer.encode(continuation, add_special_tokens=False))
    for use_cache in (True, False):
        run = generate(
            tiny,
            [prompt],
            edit_list=steering_edits(tiny, rule),
            max_new_tokens=n_new,
            logit_processors=[forcing],
            use_cache=use_cache,
        )
        assert tokenizer.decode(run.tokens[0]) == continuation
        all_tokens = run.prompt_tokens[0] + run.tokens[0]
        text_before = [tokenizer.decode(all_tokens[:i]) for i in range(len(all_tokens))]
        expected = [
            tokenizer.decode([t]) == "\n\n" and "<think>" in before and "</think>" not in before
            for t, before in zip(all_tokens, text_before)
        ]
        expected[-1] = False  # the last generated token is never fed back into the model
        assert run.edited[0] == expected
        assert sum(expected) == 2


def test_prefix_rule_touches_prompt_and_first_k_generated(tiny):
    run = generate(
        tiny,
        ["12+34="],
        edit_list=steering_edits(tiny, PromptAndFirstGenerated(2)),
        max_new_tokens=6,
        stop_at_eos=False,
    )
    assert run.edited[0] == [True] * (6 + 2) + [False] * 4


def test_greedy_matches_hf_generate_on_the_tiny_model(tiny):
    prompt = tiny.tokenizer.encode("12+34=", add_special_tokens=False)
    ours = generate(tiny, [prompt], max_new_tokens=12, stop_at_eos=False)
    hf = tiny.original_model.generate(
        torch.tensor([prompt]),
        max_new_tokens=12,
        do_sample=False,
        eos_token_id=None,
        pad_token_id=0,
        attention_mask=torch.ones(1, len(prompt), dtype=torch.long),
    )
    assert ours.tokens[0] == hf[0, len(prompt) :].tolist()


def test_sampling_is_seeded_and_batch_invariant(tiny):
    kwargs = dict(max_new_tokens=8, do_sample=True, temperature=1.5, top_k=20, top_p=0.9)
    first = generate(tiny, PROMPTS, seed=7, **kwargs)
    assert generate(tiny, PROMPTS, seed=7, **kwargs).tokens == first.tokens
    assert generate(tiny, PROMPTS, seed=8, **kwargs).tokens != first.tokens
    singles = [generate(tiny, [p], seed=7 + i, **kwargs).tokens[0] for i, p in enumerate(PROMPTS)]
    assert singles == first.tokens


def test_stop_strings_and_max_new_tokens(tiny, force_text):
    forcing = force_text(tiny.tokenizer, ["abc=9 then more"])
    run = generate(tiny, ["x"], max_new_tokens=20, stop_strings=("=9",), logit_processors=[forcing])
    assert tiny.tokenizer.decode(run.tokens[0]) == "abc=9"
    assert run.finish_reasons == ["stop_string"]
    run = generate(tiny, ["x"], max_new_tokens=3, logit_processors=[forcing])
    assert run.n_generated == [3] and run.finish_reasons == ["length"]


def test_eos_ends_a_sequence_and_others_go_on(tiny, force_text):
    forcing = force_text(tiny.tokenizer, ["ab<eos>", "abcdef"])
    run = generate(tiny, ["x", "y"], max_new_tokens=6, logit_processors=[forcing])
    assert run.finish_reasons == ["eos", "length"]
    assert tiny.tokenizer.decode(run.tokens[0]) == "ab<eos>"
    assert tiny.tokenizer.decode(run.tokens[1]) == "abcdef"


def test_token_penalty_lowers_the_penalised_tokens(tiny):
    plain = generate(tiny, ["12+34="], max_new_tokens=1)
    favourite = plain.tokens[0][0]
    penalised = generate(
        tiny,
        ["12+34="],
        max_new_tokens=1,
        logit_processors=[TokenPenalty((favourite,), value=-100.0)],
    )
    assert penalised.tokens[0][0] != favourite


def test_prompt_longer_than_context_is_a_clear_error(tiny):
    with pytest.raises(GenerationError, match="context of 128"):
        generate(tiny, ["1" * 120], max_new_tokens=10)
    with pytest.raises(GenerationError, match="no prompts"):
        generate(tiny, [], max_new_tokens=10)
    with pytest.raises(GenerationError, match="empty prompt"):
        generate(tiny, [""], max_new_tokens=10)
