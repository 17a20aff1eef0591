"""KL-budget decoding: edit each sequence until KL(edited || unedited) summed over its steps
passes the budget, then stop editing it; same tokens with and without the cache, batched or not."""

import pytest
import torch

from interp.core.positions import (
    AllPositions,
    Both,
    PromptAndFirstGenerated,
    TokenState,
    token_state,
)
from interp.core.tokens import GenerationError
from interp.decoding import generate
from interp.interventions import RED, Edit, edits

PROMPTS = ["12+34=", "5+6=", "what is 7*8?", "99-1="]


def red_edits(model, norm=4.0):
    return [
        Edit(f"blocks.{layer}.hook_mlp_out", RED.random(model.cfg.d_model, norm, seed=layer))
        for layer in range(model.cfg.n_layers)
    ]


def per_step_kl(model, edit_list, prompt, generated, limit):
    """Teacher-forced KL(edited || plain) of each step, the edit touching real positions < limit."""
    ids = model.tokenizer.encode(prompt, add_special_tokens=False)
    tokens = torch.tensor([ids + generated])
    p = len(ids)
    limited = [
        Edit(e.hook, e.function, Both(e.positions, PromptAndFirstGenerated(limit - p)))
        for e in edit_list
    ]
    with torch.no_grad():
        plain = model(tokens)[0].float().log_softmax(-1)
        with edits(model, limited), token_state(TokenState.for_tokens(tokens, prompt_lengths=[p])):
            edited = model(tokens)[0].float().log_softmax(-1)
    steps = torch.arange(p - 1, p - 1 + len(generated))
    e, q = edited[steps], plain[steps]
    return (e.exp() * (e - q)).sum(-1)


def test_unbounded_budget_spends_the_sum_of_the_per_step_kl(tiny):
    edit_list = red_edits(tiny)
    out = generate(tiny, PROMPTS[:2], edit_list=edit_list, max_new_tokens=8, kl_budget=1e9)
    assert out.edit_stops == [None, None]
    for row, prompt in enumerate(PROMPTS[:2]):
        assert all(out.edited[row][:-1])  # never stopped: every fed position edited (the last
        assert not out.edited[row][-1]  # generated token is never fed back)
        expected = per_step_kl(tiny, edit_list, prompt, out.tokens[row], limit=10**6)
        assert out.kl_spent[row] == pytest.approx(float(expected.sum()), rel=1e-4, abs=1e-6)
    plain_edited = generate(tiny, PROMPTS[:2], edit_list=edit_list, max_new_tokens=8)
    assert plain_edited.tokens == out.tokens  # budget never reached: the same as a plain edit


def test_editing_stops_exactly_when_the_cumulative_kl_passes_the_budget(tiny):
    edit_list = red_edits(tiny)
    probe = generate(tiny, PROMPTS[:1], edit_list=edit_list, max_new_tokens=10, kl_budget=1e9)
    kls = per_step_kl(tiny, edit_list, PROMPTS[0], probe.tokens[0], limit=10**6)
    cumulative = kls.cumsum(0)
    budget = float(cumulative[3] + cumulative[4]) / 2  # passes at step 4
    out = generate(tiny, PROMPTS[:1], edit_list=edit_list, max_new_tokens=10, kl_budget=budget)
    stop = out.edit_stops[0]
    assert stop == 4
    p = len(out.prompt_tokens[0])
    generated = out.tokens[0]
    # the tokens chosen up to the stop come from the edited model, as in the unbounded run
    assert generated[: stop + 1] == probe.tokens[0][: stop + 1]
    # fed positions: prompt and generated tokens before `stop` edited, none after
    flags = out.edited[0]
    assert all(flags[: p + stop])
    assert not any(flags[p + stop : p + len(generated) - 1])
    # an independent teacher-forced computation of the same rule agrees
    recomputed = per_step_kl(tiny, edit_list, PROMPTS[0], generated, limit=p + stop).cumsum(0)
    assert float(recomputed[stop - 1]) <= budget < float(recomputed[stop])
    assert out.kl_spent[0] == pytest.approx(float(recomputed[stop]), rel=1e-4)
    # after the stop the model decodes from the unedited prompt-edited state: different tokens
    # than an edit that never stops (checked loosely: at least the rule was applied)
    assert out.edited[0] != probe.edited[0]


@pytest.mark.parametrize("budget", [0.0, 0.02, 0.05])
def test_same_tokens_with_and_without_cache_batched_and_one_by_one(tiny, budget):
    edit_list = red_edits(tiny)
    kwargs = dict(edit_list=edit_list, max_new_tokens=9, kl_budget=budget, stop_at_eos=False)
    cached = generate(tiny, PROMPTS, batch_size=4, **kwargs)
    uncached = generate(tiny, PROMPTS, batch_size=4, use_cache=False, **kwargs)
    singles = [generate(tiny, [p], batch_size=1, **kwargs) for p in PROMPTS]
    assert cached.tokens == uncached.tokens == [s.tokens[0] for s in singles]
    assert cached.edit_stops == uncached.edit_stops == [s.edit_stops[0] for s in singles]
    assert cached.edited == uncached.edited == [s.edited[0] for s in singles]
    if budget == 0.0:  # any positive KL passes a zero budget at the first step
        assert cached.edit_stops == [0] * len(PROMPTS)


def test_rule_positions_are_kept_within_the_budget(tiny):
    """With a prompt-and-first-k rule, the budget can only cut editing shorter, never extend it."""
    rule = PromptAndFirstGenerated(2)
    edit_list = [Edit(e.hook, e.function, rule) for e in red_edits(tiny)]
    out = generate(tiny, PROMPTS[:2], edit_list=edit_list, max_new_tokens=8, kl_budget=1e9)
    for row in range(2):
        p = len(out.prompt_tokens[row])
        assert out.edited[row][: p + 2] == [True] * (p + 2)
        assert not any(out.edited[row][p + 2 :])


def test_bad_budget_is_an_error(tiny):
    with pytest.raises(GenerationError, match="kl_budget"):
        generate(tiny, PROMPTS[:1], edit_list=red_edits(tiny), max_new_tokens=2, kl_budget=-1.0)


def test_without_budget_nothing_changes(tiny):
    out = generate(tiny, PROMPTS[:1], edit_list=red_edits(tiny), max_new_tokens=3)
    assert out.kl_spent is None and out.edit_stops is None
    assert isinstance(AllPositions(), AllPositions)
