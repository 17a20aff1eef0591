"""Running only the blocks above a push gives exactly what the full forward gives."""

import pytest
import torch

from interp.core.digit_answers import PushSweep, cut_tolerance, greedy_outcomes
from interp.core.layer_skip import LayerSkipError, blocks_from, decoder_stack, forward_from_block
from interp.core.positions import AllPositions, GeneratedPositions, PromptPositions
from interp.data.arithmetic import addition_problems, digit_token_ids, encode_problems
from interp.interventions import Edit, PushAlong
from interp.models.adder import load_adder


def _push_factory(model, block, direction, unit, rule):
    def push(amounts):
        return Edit(f"blocks.{block}.hook_resid_post", PushAlong(direction, amounts, unit), rule)

    return push


def _compare_paths(model, rows, block, strengths, rule, batch_size):
    digits = digit_token_ids(model.tokenizer)
    direction = torch.randn(model.cfg.d_model, generator=torch.Generator().manual_seed(3))
    push = _push_factory(model, block, direction, 1.0, rule)
    sweep = PushSweep(model, rows, digits, push, block, batch_size, strengths_per_forward=3)
    cut = sweep.outcomes(strengths)
    for strength, outcome in zip(strengths, cut):
        full = greedy_outcomes(model, rows, digits, [push(strength)], batch_size=batch_size)
        assert torch.equal(outcome.correct, full.correct), strength
        assert torch.equal(outcome.moved, full.moved), strength
    return cut


@pytest.mark.parametrize("rule", [AllPositions(), PromptPositions(), GeneratedPositions()])
@pytest.mark.parametrize("block", [0, 1])
def test_cut_forward_matches_full_forward_with_shared_prefix(tiny, rule, block):
    """numprobe prompts share "Question: What is the sum of " — the prefix path with padding."""
    rows = encode_problems(addition_problems(24, 2, seed=5), tiny.tokenizer, "numprobe")
    strengths = [-30.0, -3.0, 0.0, 3.0, 30.0]
    cut = _compare_paths(tiny, rows, block, strengths, rule, batch_size=7)
    assert len(cut) == len(strengths) and all(len(o.correct) == len(rows) for o in cut)


def test_cut_forward_matches_on_the_trained_adder():
    """No shared prefix (compact prompts differ from the first token); real, non-trivial outcomes."""
    adder = load_adder()
    rows = encode_problems(addition_problems(64, 4, seed=9), adder.tokenizer, "compact")
    strengths = [-200.0, -50.0, 0.0, 50.0, 200.0]
    cut = _compare_paths(adder, rows, 2, strengths, AllPositions(), batch_size=32)
    assert bool(cut[2].correct.all())  # unpushed: the adder gets them all right
    direction = torch.randn(adder.cfg.d_model, generator=torch.Generator().manual_seed(3))
    push = _push_factory(adder, 2, direction, 1.0, AllPositions())
    digits = digit_token_ids(adder.tokenizer)
    plain = PushSweep(adder, rows, digits, push, 2, screen_unembedding=False).outcomes(strengths)
    for screened, unscreened in zip(cut, plain):  # the float32 unembedding decides the same
        assert torch.equal(screened.correct, unscreened.correct)
        assert torch.equal(screened.moved, unscreened.moved)
    assert not bool(cut[0].correct.all()) or not bool(
        cut[-1].correct.all()
    )  # big pushes break some


def test_a_row_alone_gets_the_outcome_it_gets_in_a_batch(tiny):
    """One row shares its whole prompt with itself: its last prompt token must still be computed
    (it predicts the answer's first token), by `greedy_outcomes` and by the sweep."""
    rows = encode_problems(addition_problems(6, 2, seed=5), tiny.tokenizer, "numprobe")
    digits = digit_token_ids(tiny.tokenizer)
    direction = torch.randn(tiny.cfg.d_model, generator=torch.Generator().manual_seed(3))
    push = _push_factory(tiny, 1, direction, 1.0, AllPositions())
    together = greedy_outcomes(tiny, rows, digits, [push(3.0)], margins=True)
    swept = PushSweep(tiny, rows, digits, push, 1, margins=True).outcomes([3.0])[0]
    for i, row in enumerate(rows):
        alone = greedy_outcomes(tiny, [row], digits, [push(3.0)], margins=True)
        assert bool(alone.correct[0]) == bool(together.correct[i])
        assert int(alone.moved[0]) == int(together.moved[i])
        assert float(alone.margin[0]) == pytest.approx(float(together.margin[i]), abs=1e-4)
        swept_alone = PushSweep(tiny, [row], digits, push, 1, margins=True).outcomes([3.0])[0]
        assert bool(swept_alone.correct[0]) == bool(swept.correct[i])
        assert float(swept_alone.margin[0]) == pytest.approx(float(swept.margin[i]), abs=1e-4)


def test_a_push_on_a_block_output_starts_at_the_next_block(tiny_llama):
    """resid_post of block 1 is the input of block 2: block 1 is not rerun; other sites start at 1."""
    model = tiny_llama
    rows = encode_problems(addition_problems(20, 2, seed=4), model.tokenizer, "numprobe")
    digits = digit_token_ids(model.tokenizer)
    direction = torch.randn(model.cfg.d_model, generator=torch.Generator().manual_seed(5))

    def on_mlp_out(amounts):
        return Edit("blocks.1.hook_mlp_out", PushAlong(direction, amounts, 1.0))

    on_output = _push_factory(model, 1, direction, 1.0, AllPositions())
    on_last = _push_factory(model, 2, direction, 1.0, AllPositions())
    strengths = [-20.0, 0.0, 20.0]
    for push, block, first in [(on_output, 1, 2), (on_mlp_out, 1, 1), (on_last, 2, 2)]:
        sweep = PushSweep(model, rows, digits, push, block, batch_size=6)
        assert sweep.block == first
        for strength, outcome in zip(strengths, sweep.outcomes(strengths)):
            full = greedy_outcomes(model, rows, digits, [push(strength)], batch_size=6)
            assert torch.equal(outcome.correct, full.correct), (block, strength)
            assert torch.equal(outcome.moved, full.moved), (block, strength)


def test_blocks_are_restored_on_error(tiny):
    stack = decoder_stack(tiny)
    before = list(stack.layers)
    with pytest.raises(RuntimeError, match="boom"), blocks_from(stack, 1):
        assert len(stack.layers) == len(before) - 1
        raise RuntimeError("boom")
    assert list(stack.layers) == before
    with pytest.raises(LayerSkipError, match="out of range"), blocks_from(stack, 99):
        pass


def test_forward_from_block_zero_is_the_model(tiny):
    tokens = torch.tensor([[5, 6, 7, 8], [0, 0, 9, 10]])
    mask = torch.tensor([[1, 1, 1, 1], [0, 0, 1, 1]])
    logits, cache = tiny.run_with_cache(
        tokens, attention_mask=mask, names_filter=lambda n: n == "blocks.1.hook_resid_pre"
    )
    cut, _ = forward_from_block(tiny, cache["blocks.1.hook_resid_pre"], 1, mask)
    real = mask.bool()
    assert torch.allclose(cut[real], logits[real], atol=1e-5)


def test_the_cut_check_allows_bfloat16_products_in_float32(smollm2, bfloat16_products):
    """`set_float32_matmul_precision("medium")` rounds float32 products like bfloat16 (on this
    CPU smollm2's cut moved the logits by 0.13, beyond the float32 tolerance): the check that
    a cut forward equals the full one allows that rounding, and the sweep runs."""
    assert cut_tolerance(torch.float32) == cut_tolerance(torch.bfloat16)
    rows = encode_problems(addition_problems(8, 2, seed=9), smollm2.tokenizer, "chat")
    direction = torch.randn(smollm2.cfg.d_model, generator=torch.Generator().manual_seed(3))
    push = _push_factory(smollm2, 10, direction, 1.0, AllPositions())
    sweep = PushSweep(smollm2, rows, digit_token_ids(smollm2.tokenizer), push, 10)  # checks the cut
    assert len(sweep.outcomes([0.0])[0].correct) == len(rows)


def test_full_float32_products_keep_the_tight_cut_tolerance():
    assert torch.get_float32_matmul_precision() == "highest"
    assert cut_tolerance(torch.float32) == 1e-3
