"""Prefix swap: the continuation from the donor's cache equals decoding with the donor's edits on
exactly the positions before the swap; the recomputed variant equals decoding from prompt + prefix;
a swap of an arm with itself changes nothing; caches reused across batches and paddings give the
same tokens; the gold-answer score equals a plain forward; runs resume."""

import pytest
import torch

from interp.analyses import prefix_swap
from interp.core.kv_reuse import prefill_caches
from interp.core.positions import PromptAndFirstGenerated
from interp.core.tokens import GenerationError
from interp.data import math_prompts
from interp.data.math_sets import MathProblem
from interp.decoding import generate
from interp.interventions import RED, Edit
from interp.interventions.arms import Arm
from interp.models import model_name

PROBLEMS = [
    MathProblem(id=f"p{i}", question=f"what is {i} + {i * 3}?", answer=str(4 * i)) for i in range(5)
]
KS = (0, 1, 3, 6)
MAX_NEW = 10


def red_edits(model, rule=None):
    kwargs = {} if rule is None else {"positions": rule}
    return [
        Edit(
            f"blocks.{layer}.hook_mlp_out",
            RED.random(model.cfg.d_model, bias_norm=3.0, seed=layer),
            **kwargs,
        )
        for layer in range(model.cfg.n_layers)
    ]


def plain_tiny(tiny):
    tiny.tokenizer.chat_template = None
    return tiny


def swap(model, donor, continuer=None, **kwargs):
    kwargs = {
        "ks": KS,
        "problems": PROBLEMS,
        "prompt_style": "plain",
        "max_new_tokens": MAX_NEW,
        "batch_size": 3,
        "only_donor_wrong": False,
        "n_problems": len(PROBLEMS),
        "progress": False,
        **kwargs,
    }
    return prefix_swap.run(model, donor=donor, continuer=continuer, **kwargs)


@pytest.fixture(scope="module")
def red_swap(tiny, tmp_path_factory):
    """A RED donor and the plain continuer, saved to disk (shared by the tests below)."""
    model = plain_tiny(tiny)
    out = tmp_path_factory.mktemp("swap") / "red"
    return out, swap(model, donor=red_edits(model), out=out)


def rows_by(result):
    return {(r["id"], r["k"], r["variant"]): r for r in result.tables["continuations"]}


def test_donor_cache_equals_editing_only_the_positions_before_the_swap(tiny, red_swap):
    """With k >= 1 the donor's cache holds prompt + first k-1 answer tokens, all computed with its
    edits; the continuer (plain) computes the rest. That is decoding with the donor's edits under
    PromptAndFirstGenerated(k - 1), an independent path through the ordinary loop."""
    model = plain_tiny(tiny)
    rows = rows_by(red_swap[1])
    prompts = [f"Question: {p.question}\nAnswer:" for p in PROBLEMS]
    for k in KS[1:]:
        reference = generate(
            model,
            prompts,
            edit_list=red_edits(model, PromptAndFirstGenerated(k - 1)),
            max_new_tokens=MAX_NEW,
        )
        for p, tokens in zip(PROBLEMS, reference.tokens, strict=True):
            assert rows[(p.id, k, "donor_cache")]["output_tokens"] == tokens, (p.id, k)


def test_recompute_equals_decoding_from_prompt_and_prefix(tiny, red_swap):
    """The continuer encodes prompt + donor prefix itself: as decoding from that text, no cache."""
    model = plain_tiny(tiny)
    rows = rows_by(red_swap[1])
    for k in KS:
        continued = [rows[(p.id, k, "recompute")] for p in PROBLEMS]
        continued = [r for r in continued if r["continued"]]
        prompts = [
            model.tokenizer.encode(f"Question: {p.question}\nAnswer:", add_special_tokens=False)
            for p in PROBLEMS
            if rows[(p.id, k, "recompute")]["continued"]
        ]
        uncached = generate(
            model,
            [prompt + r["output_tokens"][:k] for prompt, r in zip(prompts, continued, strict=True)],
            max_new_tokens=MAX_NEW - k,
            use_cache=False,
        )
        for row, tokens in zip(continued, uncached.tokens, strict=True):
            assert row["output_tokens"] == row["output_tokens"][:k] + tokens, (row["id"], k)


def test_swapping_an_arm_with_itself_changes_nothing(tiny):
    model = plain_tiny(tiny)
    arm = Arm("red", model, tuple(red_edits(model)))
    result = swap(
        model,
        donor=arm,
        continuer=arm,
        closeness=False,
        ks=(0, 1, 6),
        problems=PROBLEMS[:3],
        n_problems=3,
    )
    own = {r["id"]: r["output_tokens"] for r in result.tables["continuations"] if r["k"] == 0}
    for row in result.tables["continuations"]:
        assert row["output_tokens"] == own[row["id"]], (row["id"], row["k"], row["variant"])
    assert len({round(r["accuracy"], 6) for r in result.tables["accuracy"]}) == 1
    # the control agrees: every prefix is the continuer's own, none differs
    control = result.tables["own_prefix"]
    assert {(r["variant"], r["k"]) for r in control} == {
        (v, k) for v in prefix_swap.VARIANTS for k in (1, 6)
    }
    assert all(r["own_n"] == 3 and r["other_n"] == 0 for r in control)


def _swap_row(id_, k, variant, tokens, correct, continued=True):
    return {
        "id": id_,
        "k": k,
        "variant": variant,
        "output_tokens": tokens,
        "correct": correct,
        "continued": continued,
    }


def test_own_prefix_control_splits_each_cell_by_the_continuers_own_answer():
    rows = [
        _swap_row("a", 0, "recompute", [1, 2, 3], True),  # the continuer's own answers
        _swap_row("b", 0, "recompute", [5, 6, 7], True),
        _swap_row("a", 1, "recompute", [1, 2, 3], True),  # same first token
        _swap_row("b", 1, "recompute", [8, 6], False),  # another first token
        _swap_row("a", 2, "recompute", [1, 4, 4], False),  # second token differs
        _swap_row("b", 2, "recompute", [8], False, continued=False),  # the donor had ended
    ]
    one, two = prefix_swap.own_prefix_table(rows)
    assert (one["k"], one["own_n"], one["own_correct"], one["other_n"], one["other_correct"]) == (
        1,
        1,
        1,
        1,
        0,
    )
    assert (two["k"], two["own_n"], two["other_n"], two["donor_ended"]) == (2, 0, 2, 1)
    assert two["own_low"] is None and 0 <= two["other_low"] <= two["other_high"] <= 1
    # without the continuer's own answers there is nothing to compare against
    assert prefix_swap.own_prefix_table([r for r in rows if r["k"] > 0]) == []


def test_cached_continuation_is_batch_and_padding_independent(tiny):
    model = plain_tiny(tiny)
    tokenizer = model.tokenizer
    sequences = [
        tokenizer.encode(t, add_special_tokens=False) for t in ("12+3=45", "7*8=", "a b c d e f")
    ]
    caches = prefill_caches(model, sequences, prompt_lengths=[4, 2, 3], edit_list=red_edits(model))
    crops = [c.crop(len(s) - 1) for c, s in zip(caches, sequences, strict=True)]
    together = generate(
        model, sequences, prompt_lengths=[4, 2, 3], caches=crops, max_new_tokens=6, batch_size=3
    )
    for i in range(3):
        alone = generate(
            model,
            [sequences[i]],
            prompt_lengths=[[4, 2, 3][i]],
            caches=[crops[i]],
            max_new_tokens=6,
        )
        assert alone.tokens[0] == together.tokens[i]
    with pytest.raises(GenerationError, match="all but the"):
        generate(model, sequences, caches=caches, max_new_tokens=2)
    with pytest.raises(GenerationError, match="use_cache"):
        generate(model, sequences, caches=crops, max_new_tokens=2, use_cache=False)


def test_gold_answer_logprob_equals_a_plain_forward(tiny):
    model = plain_tiny(tiny)
    tokenizer = model.tokenizer
    context = tokenizer.encode("what is 2+2? it is", add_special_tokens=False)
    cue = tokenizer.encode(" so:", add_special_tokens=False)
    targets = [tokenizer.encode(t, add_special_tokens=False) for t in ("4", "22", "4")]
    keep = [len(context), len(context) - 3, 5]
    scores = prefix_swap.gold_answer_logprobs(
        model, [context] * 3, keep, cue, targets, batch_size=2
    )
    for score, n, target in zip(scores, keep, targets, strict=True):
        ids = torch.tensor([context[:n] + cue + target])
        with torch.no_grad():
            logprobs = torch.log_softmax(model(ids).float(), -1)[0]
        start = n + len(cue)
        expected = sum(float(logprobs[start - 1 + j, t]) for j, t in enumerate(target))
        assert score == pytest.approx(expected, abs=1e-4)


def test_result_tables_figures_and_resume(tiny, red_swap, monkeypatch):
    model = plain_tiny(tiny)
    out, first = red_swap
    accuracy = first.tables["accuracy"]
    assert {(r["variant"], r["k"]) for r in accuracy} == {
        (v, k) for v in prefix_swap.VARIANTS for k in KS
    }
    for r in accuracy:
        cell = [
            c
            for c in first.tables["continuations"]
            if c["k"] == r["k"] and c["variant"] == r["variant"]
        ]
        assert r["n"] == len(PROBLEMS) and r["correct"] == sum(c["correct"] for c in cell)
    closeness = first.tables["closeness"]
    assert len(closeness) == len(PROBLEMS) * len(KS) * 2
    at_zero = {(r["id"], r["arm"]): r["gold_logprob"] for r in closeness if r["k"] == 0}
    for p in PROBLEMS:  # with no prefix both arms condition on the same prompt
        assert at_zero[(p.id, "donor")] == pytest.approx(at_zero[(p.id, "continuer")], abs=1e-4)
    first.figure()
    first.closeness_figure()
    monkeypatch.setattr(prefix_swap, "generate", lambda *a, **k: pytest.fail("decoded again"))
    again = swap(model, donor=red_edits(model), out=out)
    assert again.tables["continuations"] == first.tables["continuations"]
    with pytest.raises(ValueError, match="different config"):
        swap(model, donor=red_edits(model), out=out, ks=(0, 2))
    # what decides the prompts is recorded, so prompts built another way do not reuse this result
    assert first.config.model == model_name(model)
    assert first.config.prompt_template == "Question: {question}\nAnswer:"
    monkeypatch.setattr(
        math_prompts, "plain_prompt", lambda p: f"Q: {getattr(p, 'question', p)}\nA:"
    )
    with pytest.raises(ValueError, match="prompt_template"):
        swap(model, donor=red_edits(model), out=out)


def test_only_donor_wrong_and_bad_arguments(tiny):
    model = plain_tiny(tiny)
    result = swap(model, donor=red_edits(model), only_donor_wrong=True, closeness=False, ks=(0, 2))
    assert result.meta["donor_accuracy"] == 0.0  # the tiny model gets nothing right
    assert result.meta["n_problems"] == len(PROBLEMS)
    with pytest.raises(ValueError, match="below max_new_tokens"):
        swap(model, donor=None, ks=(0, MAX_NEW))
    with pytest.raises(ValueError, match="variants"):
        swap(model, donor=None, variants=("clean",))
