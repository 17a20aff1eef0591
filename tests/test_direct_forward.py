"""The fast path of every forward (`interp.core.direct`): the same tokens, edited positions and
log-probabilities as decoding through the bridge, for every position rule, with and without the
KV cache, batched and alone; the runner's logits and activations (a forward stopped early
included) as the bridge computes them; the bridge itself where a hook has no exact counterpart;
no hook left behind, on error too."""

import pytest
import torch

from interp.core.direct import DirectForward, bridge_forwards, direct_forward
from interp.core.positions import AllPositions, current_state
from interp.core.runner import activations, forward
from interp.decoding import generate
from interp.interventions import RED, AddVector, Edit, edits
from interp.interventions.lora import LoRA
from interp.testing import char_tokenizer, position_rule_examples

PROMPTS = ["12+34=", "a\n\nb<think>c d", "hello 5\n\n", "<think>x"]
RULES = list(position_rule_examples(char_tokenizer()))


@pytest.fixture(params=["qwen2", "llama"])
def model(request, tiny, tiny_llama):
    return tiny if request.param == "qwen2" else tiny_llama


@pytest.fixture
def direct_calls(monkeypatch):
    """Counts the forwards the direct path runs (and keeps the plain trees it ran)."""
    calls: list = []
    original = DirectForward.__call__

    def counted(self, *args, **kwargs):
        calls.append(self.plain)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(DirectForward, "__call__", counted)
    return calls


def steering_edits(model, rule):
    torch.manual_seed(0)
    last = model.cfg.n_layers - 1
    return [
        Edit(f"blocks.{last}.hook_resid_pre", AddVector(torch.randn(model.cfg.d_model), 1.5), rule),
        Edit("blocks.0.hook_mlp_out", RED.random(model.cfg.d_model, bias_norm=1.0), rule),
    ]


def both_paths(model, prompts, **kwargs):
    """`generate` through the direct path and through the bridge."""
    direct = generate(model, prompts, **kwargs)
    with bridge_forwards():
        bridged = generate(model, prompts, **kwargs)
    return direct, bridged


def assert_same(direct, bridged):
    assert direct.tokens == bridged.tokens
    assert direct.edited == bridged.edited
    assert direct.finish_reasons == bridged.finish_reasons
    for a, b in zip(direct.logprobs, bridged.logprobs, strict=True):
        assert a == pytest.approx(b, abs=1e-4)


@pytest.mark.parametrize("rule_name", RULES)
@pytest.mark.parametrize("use_cache", [True, False])
def test_direct_path_decodes_what_the_bridge_decodes(model, rule_name, use_cache, direct_calls):
    rule = position_rule_examples(model.tokenizer)[rule_name]
    kwargs = dict(edit_list=steering_edits(model, rule), max_new_tokens=10, use_cache=use_cache)
    direct, bridged = both_paths(model, PROMPTS, **kwargs)
    assert len(direct_calls) == 10  # every step ran directly, none when bridge_forwards() is on
    assert_same(direct, bridged)
    if use_cache:  # alone as batched (without the cache too in test_generation)
        alone = [generate(model, [p], **kwargs) for p in PROMPTS]
        assert [a.tokens[0] for a in alone] == direct.tokens
        assert [a.edited[0] for a in alone] == direct.edited
    if rule_name == "all":
        assert direct.tokens != generate(model, PROMPTS, max_new_tokens=10).tokens


# Every hook point the direct path mirrors, by the name an edit would use.
MIRRORED = [
    "blocks.{L}.hook_resid_pre",
    "blocks.{L}.hook_resid_mid",
    "blocks.{L}.hook_resid_post",
    "blocks.{L}.hook_attn_out",
    "blocks.{L}.hook_mlp_out",
    "blocks.{L}.attn.hook_in",
    "blocks.{L}.mlp.hook_in",
    "blocks.{L}.ln1.hook_in",
    "blocks.{L}.ln1.hook_out",
    "blocks.{L}.ln2.hook_out",
    "ln_final.hook_in",
    "ln_final.hook_out",
]


@pytest.mark.parametrize("pattern", MIRRORED)
def test_each_mirrored_hook_point_sees_and_changes_the_same_tensors(model, pattern, direct_calls):
    name = pattern.format(L=model.cfg.n_layers - 1)
    torch.manual_seed(1)
    edit_list = [Edit(name, AddVector(torch.randn(model.cfg.d_model), 2.0), AllPositions())]
    seen: dict[str, list[torch.Tensor]] = {"direct": [], "bridge": []}

    def recorder(path):
        def record(activation, hook):
            state = current_state()  # padding columns hold whatever each path leaves there
            real = state.real[:, state.chunk_start :, None]
            seen[path].append(torch.where(real, activation, 0.0))

        return record

    with model.hooks(fwd_hooks=[(name, recorder("direct"))]):
        direct = generate(model, PROMPTS, edit_list=edit_list, max_new_tokens=6)
    with model.hooks(fwd_hooks=[(name, recorder("bridge"))]), bridge_forwards():
        bridged = generate(model, PROMPTS, edit_list=edit_list, max_new_tokens=6)
    assert len(direct_calls) == 6
    assert_same(direct, bridged)
    assert len(seen["direct"]) == len(seen["bridge"]) == 6
    for a, b in zip(seen["direct"], seen["bridge"], strict=True):
        assert a.shape == b.shape
        torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-4)
    assert direct.tokens != generate(model, PROMPTS, max_new_tokens=6).tokens


@pytest.mark.parametrize("point", ["mlp.hook_pre_linear", "mlp.hook_pre"])
def test_a_red_on_a_gated_mlp_projection_decodes_directly_and_the_same(model, point, direct_calls):
    """RED's default hook point (the up projection's output) and the gate's: mirrored on the
    `nn.Linear` they are the output of, in every layer, for the same tokens as the bridge."""
    torch.manual_seed(2)
    d_mlp = model.cfg.d_mlp
    edit_list = [
        Edit(f"blocks.{layer}.{point}", RED.random(d_mlp, bias_norm=2.0), AllPositions())
        for layer in range(model.cfg.n_layers)
    ]
    direct, bridged = both_paths(model, PROMPTS, edit_list=edit_list, max_new_tokens=6)
    assert len(direct_calls) == 6
    assert_same(direct, bridged)
    assert direct.tokens != generate(model, PROMPTS, max_new_tokens=6).tokens


@pytest.mark.parametrize(
    "hook", ["blocks.0.attn.hook_pattern", "blocks.0.mlp.hook_post", "hook_embed", "hook_unembed"]
)
def test_a_hook_without_an_exact_counterpart_decodes_through_the_bridge(tiny, hook, direct_calls):
    fired = []

    def watch(activation, hook):
        fired.append(hook.name)

    with tiny.hooks(fwd_hooks=[(hook, watch)]):
        with direct_forward(tiny) as forward:
            assert forward is tiny
        out = generate(tiny, PROMPTS, max_new_tokens=4, stop_at_eos=False)
    assert not direct_calls
    assert len(fired) == 4  # the hook ran at every step, as only the bridge runs it
    assert out.tokens == generate(tiny, PROMPTS, max_new_tokens=4, stop_at_eos=False).tokens


def test_a_torch_hook_on_a_bridge_component_decodes_through_the_bridge(tiny, direct_calls):
    def push(module, args, output):
        return output + 1.0

    handle = tiny.blocks[0].mlp.register_forward_hook(push)
    try:
        with direct_forward(tiny) as forward:
            assert forward is tiny
        pushed = generate(tiny, PROMPTS, max_new_tokens=6)
    finally:
        handle.remove()
    assert not direct_calls
    assert pushed.tokens != generate(tiny, PROMPTS, max_new_tokens=6).tokens


def test_lora_hooks_on_hugging_face_modules_run_on_the_direct_path(tiny, direct_calls):
    lora = LoRA.for_model(tiny, modules=("q_proj", "down_proj"), rank=2, seed=0)
    with torch.no_grad():
        for delta in lora.deltas.values():
            delta.up.normal_(std=0.5)  # a fresh LoRA changes nothing
    with lora.applied(tiny):
        direct, bridged = both_paths(tiny, PROMPTS, max_new_tokens=8)
    assert len(direct_calls) == 8
    assert_same(direct, bridged)
    assert direct.tokens != generate(tiny, PROMPTS, max_new_tokens=8).tokens


def test_kl_budget_decoding_is_the_same_on_both_paths(model, direct_calls):
    edit_list = [
        Edit(f"blocks.{layer}.hook_mlp_out", RED.random(model.cfg.d_model, 4.0, seed=layer))
        for layer in range(model.cfg.n_layers)
    ]
    unbounded = generate(model, PROMPTS, edit_list=edit_list, max_new_tokens=8, kl_budget=1e9)
    budget = sorted(unbounded.kl_spent)[len(PROMPTS) // 2] / 2  # some rows pass it, mid-way
    direct, bridged = both_paths(
        model, PROMPTS, edit_list=edit_list, max_new_tokens=8, kl_budget=budget
    )
    assert direct_calls
    assert_same(direct, bridged)
    assert direct.edit_stops == bridged.edit_stops
    assert direct.kl_spent == pytest.approx(bridged.kl_spent, rel=1e-4, abs=1e-6)
    assert any(stop is not None for stop in direct.edit_stops)


class Stop(Exception):
    pass


def torch_hooks(model) -> set[tuple[int, int]]:
    """Every torch hook on the bridge's modules (wrappers and Hugging Face modules), by id."""
    return {
        (id(module), key)
        for module in model.modules()
        for hooks in (module._forward_hooks, module._forward_pre_hooks)
        for key in hooks
    }


def test_no_hook_is_left_behind_when_decoding_fails(tiny, direct_calls):
    def fail_at_third_step(logits, state):
        if int(state.n_generated.max()) == 2:
            raise Stop
        return logits

    before = generate(tiny, PROMPTS, max_new_tokens=5).tokens
    hooks_before = torch_hooks(tiny)
    edit_list = steering_edits(tiny, AllPositions())
    direct_calls.clear()
    with pytest.raises(Stop):
        generate(
            tiny,
            PROMPTS,
            edit_list=edit_list,
            max_new_tokens=5,
            logit_processors=[fail_at_third_step],
        )
    assert len(direct_calls) == 3
    tree = direct_calls[0]
    # the plain tree keeps copies of the Hugging Face modules' own hooks (transformers installs
    # output-capturing ones once a forward asks for attentions), never a mirrored one
    left = [
        hook
        for module in tree.modules()
        for hooks in (module._forward_hooks, module._forward_pre_hooks)
        for hook in hooks.values()
    ]
    assert not [hook for hook in left if "_pre_hook.<locals>" in hook.__qualname__]
    assert not [hook for hook in left if "_post_hook.<locals>" in hook.__qualname__]
    assert all(not point.fwd_hooks for point in tiny.hook_dict.values())
    assert torch_hooks(tiny) == hooks_before
    assert generate(tiny, PROMPTS, max_new_tokens=5).tokens == before


def padded_batch(model):
    tokens = model.tokenizer(PROMPTS, padding=True, padding_side="left", return_tensors="pt")
    return tokens["input_ids"], tokens["attention_mask"]


def test_runner_forwards_run_directly_and_compute_what_the_bridge_does(model, direct_calls):
    tokens, mask = padded_batch(model)
    with edits(model, steering_edits(model, AllPositions())):
        direct = forward(model, tokens, mask, prompt_lengths=mask.sum(-1))
        assert len(direct_calls) == 1
        with bridge_forwards():
            bridged = forward(model, tokens, mask, prompt_lengths=mask.sum(-1))
    assert len(direct_calls) == 1
    real = mask.bool()
    torch.testing.assert_close(direct[real], bridged[real], atol=1e-4, rtol=1e-4)


def test_activations_read_directly_are_the_bridges_and_stop_where_asked(model, direct_calls):
    tokens, mask = padded_batch(model)
    wanted = {"blocks.0.hook_resid_post", "blocks.0.hook_mlp_out", "blocks.1.hook_resid_post"}
    _, bridged = model.run_with_cache(
        tokens, attention_mask=mask, names_filter=lambda name: name in wanted
    )
    _, direct = activations(model, tokens, mask, names_filter=lambda name: name in wanted)
    assert len(direct_calls) == 1 and set(direct) == wanted
    real = mask.bool()
    for name in wanted:
        torch.testing.assert_close(direct[name][real], bridged[name][real], atol=1e-4, rtol=1e-4)
    # stopped before block 1: block 0 is read, block 1 never runs
    output, stopped = activations(
        model,
        tokens,
        mask,
        names_filter=lambda name: name in wanted,
        return_type=None,
        stop_at_layer=1,
    )
    assert output is None and set(stopped) == {"blocks.0.hook_resid_post", "blocks.0.hook_mlp_out"}
    torch.testing.assert_close(
        stopped["blocks.0.hook_resid_post"], direct["blocks.0.hook_resid_post"]
    )


def test_activations_at_a_hook_without_a_counterpart_come_from_the_bridge(tiny, direct_calls):
    tokens, mask = padded_batch(tiny)
    _, cache = activations(
        tiny, tokens, mask, names_filter=lambda n: n == "blocks.0.attn.hook_pattern"
    )
    assert not direct_calls
    pattern = cache["blocks.0.attn.hook_pattern"]
    assert pattern.shape[-2:] == (tokens.shape[1], tokens.shape[1])
    torch.testing.assert_close(pattern.sum(-1)[:, 0][mask.bool()], torch.ones(int(mask.sum())))
