"""Edits as hooks: their arithmetic, validation before any forward, no leaks, checkpoints."""

import pytest
import torch

from interp.core import runner
from interp.core.direct import bridge_forwards
from interp.core.positions import (
    GeneratedPositions,
    PromptAndFirstGenerated,
    PromptPositions,
    TokenMatch,
)
from interp.interventions import (
    RED,
    AddVector,
    DiReFT,
    Edit,
    EditError,
    LoReFT,
    PushAlong,
    edits,
    load_edits,
    save_edits,
)
from interp.models.fingerprint import model_fingerprint

TOKENS = torch.tensor([[5, 6, 7, 8, 9, 10]])


def resid(model, layer, tokens=TOKENS):
    """The residual stream at blocks.{layer}.hook_resid_pre."""
    _, cache = model.run_with_cache(tokens, names_filter=f"blocks.{layer}.hook_resid_pre")
    return cache[f"blocks.{layer}.hook_resid_pre"]


def capture(model, hook, tokens=TOKENS):
    """The activation at `hook` as the next hook point sees it (after edits at `hook`)."""
    seen = {}
    point = model.hook_dict[hook]
    handle = point.add_hook(lambda act, hook: seen.setdefault("act", act.detach().clone()))
    try:
        model(tokens)
    finally:
        handle.hook.remove()
        point.fwd_hooks.remove(handle)
    return seen["act"]


def test_edit_functions_compute_their_formulas():
    torch.manual_seed(0)
    h = torch.randn(2, 3, 8)
    v = torch.randn(8)
    assert torch.allclose(AddVector(v, alpha=2.0)(h), h + 2 * v)
    push = PushAlong(v, amount=torch.tensor([1.0, -3.0]), unit=0.5)
    expected = h + torch.tensor([1.0, -3.0])[:, None, None] * 0.5 * v / v.norm()
    assert torch.allclose(push(h), expected)
    red = RED(8)
    with torch.no_grad():
        red.scale.uniform_(0.5, 1.5)
        red.bias.normal_()
    assert torch.allclose(red(h), h * red.scale + red.bias)
    loreft = LoReFT(8, rank=3)
    R = loreft.rotation.weight
    assert torch.allclose(R @ R.T, torch.eye(3), atol=1e-5)
    W, b = loreft.learned_source.weight, loreft.learned_source.bias
    assert torch.allclose(loreft(h), h + (h @ W.T + b - h @ R.T) @ R, atol=1e-5)
    direft = DiReFT(8, rank=3)
    with torch.no_grad():
        direft.project_back.weight.normal_()
    P = direft.project_back.weight
    W, b = direft.learned_source.weight, direft.learned_source.bias
    assert torch.allclose(direft(h), h + (h @ W.T + b) @ P.T, atol=1e-5)


def test_random_red_has_the_requested_bias_norm():
    assert RED.random(64, bias_norm=0.54, seed=3).bias.norm().item() == pytest.approx(
        0.54, rel=1e-5
    )


def test_add_vector_edit_changes_exactly_the_hooked_stream(tiny):
    v = torch.randn(tiny.cfg.d_model)
    before = capture(tiny, "blocks.1.hook_resid_pre")
    with edits(tiny, [Edit("blocks.1.hook_resid_pre", AddVector(v, 0.5))]):
        after = capture(tiny, "blocks.1.hook_resid_pre")
    assert torch.allclose(after, before + 0.5 * v, atol=1e-5)


def test_prompt_rule_touches_prompt_positions_only(tiny):
    v = torch.ones(tiny.cfg.d_model)
    before = capture(tiny, "blocks.1.hook_resid_pre")
    with edits(tiny, [Edit("blocks.1.hook_resid_pre", AddVector(v), PromptPositions())]):
        with runner.feeding_tokens(TOKENS, prompt_lengths=[4]):
            after = capture(tiny, "blocks.1.hook_resid_pre")
    changed = (after - before).abs().amax(-1)[0] > 1e-6
    assert changed.tolist() == [True] * 4 + [False] * 2


def test_red_on_mlp_pre_linear_uses_mlp_width(tiny):
    hook = "blocks.0.mlp.hook_pre_linear"
    with pytest.raises(EditError, match=f"width {tiny.cfg.d_mlp}"):
        with edits(tiny, [Edit(hook, RED(tiny.cfg.d_model))]):
            pass
    baseline = tiny(TOKENS)
    with edits(tiny, [Edit(hook, RED.random(tiny.cfg.d_mlp, bias_norm=2.0))]):
        edited = tiny(TOKENS)
    assert (edited - baseline).abs().max() > 1e-3


@pytest.mark.parametrize(
    "hook, message",
    [
        ("blocks.7.hook_resid_pre", "out of range"),
        ("blocks.0.hook_resid_prez", "unknown hook"),
        ("blocks.-1.hook_resid_pre", "out of range"),
    ],
)
def test_bad_hooks_fail_before_any_forward(tiny, hook, message):
    calls = []
    point = tiny.hook_dict["blocks.0.hook_resid_pre"]
    handle = point.add_hook(lambda act, hook: calls.append(1))
    try:
        with pytest.raises(EditError, match=message):
            with edits(tiny, [Edit(hook, AddVector(tiny.cfg.d_model))]):
                tiny(TOKENS)
    finally:
        handle.hook.remove()
        point.fwd_hooks.remove(handle)
    assert calls == []


def test_wrong_width_is_a_clear_error(tiny):
    with pytest.raises(EditError, match="width 7"):
        with edits(tiny, [Edit("blocks.0.hook_resid_post", AddVector(torch.zeros(7)))]):
            pass


def test_hooks_are_removed_on_error(tiny):
    baseline = tiny(TOKENS)
    hook_counts = {name: len(point.fwd_hooks) for name, point in tiny.hook_dict.items()}
    with pytest.raises(RuntimeError, match="boom"):
        with edits(tiny, [Edit("blocks.1.hook_resid_pre", AddVector(torch.ones(32) * 9))]):
            assert (tiny(TOKENS) - baseline).abs().max() > 1e-3
            raise RuntimeError("boom")
    assert {name: len(p.fwd_hooks) for name, p in tiny.hook_dict.items()} == hook_counts
    assert torch.equal(tiny(TOKENS), baseline)


def test_hooks_are_removed_when_a_forward_inside_fails(tiny):
    baseline = tiny(TOKENS)
    bad = Edit("blocks.1.hook_resid_pre", PushAlong(torch.ones(32), amount=torch.ones(5)))
    with pytest.raises(ValueError, match="5 amounts for a batch of 1"):
        with edits(tiny, [bad]):
            tiny(TOKENS)
    assert torch.equal(tiny(TOKENS), baseline)


@pytest.mark.parametrize(
    "rule",
    [
        PromptPositions(),
        GeneratedPositions(),
        PromptAndFirstGenerated(1),
        TokenMatch((5,)),
        PromptPositions() & TokenMatch((5,)),
    ],
)
def test_a_rule_that_needs_the_token_state_refuses_a_bare_forward(tiny, rule):
    """Without a state it cannot tell prompt from generated: it says to use the runner, not guess."""
    edit = Edit("blocks.0.hook_resid_pre", AddVector(torch.ones(32)), rule)
    with pytest.raises(EditError, match=f"{rule.kind!r}.*interp.core.runner"):
        with edits(tiny, [edit]):
            tiny(TOKENS)
    with edits(tiny, [edit]):  # through the runner it runs, and touches only its positions
        edited = runner.forward(tiny, TOKENS, prompt_lengths=[4])
    assert not torch.equal(edited, tiny(TOKENS))


def test_all_positions_runs_in_a_bare_forward_as_through_the_runner(tiny):
    edit = Edit("blocks.0.hook_resid_pre", AddVector(torch.ones(32)))
    with edits(tiny, [edit]):
        bare = tiny(TOKENS)
        with bridge_forwards():  # the bare forward's kernels, so equal to the bit
            assert torch.equal(bare, runner.forward(tiny, TOKENS, prompt_lengths=[4]))


def test_checkpoint_round_trip_gives_identical_outputs(tiny, tmp_path):
    torch.manual_seed(0)
    loreft = LoReFT(32, rank=4)
    direft = DiReFT(32, rank=2)
    with torch.no_grad():
        direft.project_back.weight.normal_()
    edit_list = [
        Edit("blocks.0.hook_mlp_out", RED.random(32, bias_norm=1.0, scale_std=0.1)),
        Edit("blocks.1.hook_resid_post", loreft, PromptPositions()),
        Edit("blocks.0.hook_resid_pre", direft),
        Edit("blocks.1.hook_resid_pre", AddVector(torch.randn(32), alpha=-2.0)),
    ]
    with edits(tiny, edit_list):
        expected = runner.forward(tiny, TOKENS, prompt_lengths=[4])
    save_edits(tmp_path / "ckpt", edit_list, model=model_fingerprint(tiny)["model"])
    loaded = load_edits(tmp_path / "ckpt", tiny)
    with edits(tiny, loaded):
        assert torch.allclose(runner.forward(tiny, TOKENS, prompt_lengths=[4]), expected, atol=1e-6)
    assert loaded[1].positions == PromptPositions()


def test_checkpoint_that_does_not_fit_the_model_is_refused(tiny, tiny_llama, tmp_path):
    save_edits(tmp_path / "deep", [Edit("blocks.2.hook_mlp_out", RED(32))])
    with pytest.raises(EditError, match="out of range"):
        load_edits(tmp_path / "deep", tiny)
    save_edits(tmp_path / "wide", [Edit("blocks.0.hook_mlp_out", RED(48))])
    with pytest.raises(EditError, match="width"):
        load_edits(tmp_path / "wide", tiny_llama)


def test_corrupt_checkpoint_is_a_clear_error(tiny, tmp_path):
    path = save_edits(tmp_path / "ckpt", [Edit("blocks.0.hook_mlp_out", RED(32))])
    data = (path / "tensors.safetensors").read_bytes()
    (path / "tensors.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(EditError, match="corrupt"):
        load_edits(path, tiny)
