"""LoRA baseline: low-rank deltas on chosen linear layers, always removed, saved and checked."""

import pytest
import torch

from interp.decoding import generate
from interp.interventions import EditError
from interp.interventions.lora import LoRA, LoRAError, linear_modules, load_lora, save_lora
from interp.testing import tiny_model
from interp.training import checkpoints
from interp.training.data import Pair
from interp.training.trainer import train

TOKENS = torch.tensor([[5, 6, 7, 8, 9, 10, 11]])


def randomized(lora: LoRA, seed: int = 0) -> LoRA:
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for delta in lora.deltas.values():
            delta.up.copy_(torch.randn(delta.up.shape, generator=generator) * 0.5)
    return lora


def test_targets_the_named_layers_of_every_chosen_block(tiny):
    lora = LoRA.for_model(tiny, modules=("q_proj", "down_proj"), layers=[1], rank=2)
    assert sorted(lora.shapes) == [
        "model.layers.1.mlp.down_proj",
        "model.layers.1.self_attn.q_proj",
    ]
    assert lora.shapes["model.layers.1.mlp.down_proj"] == (tiny.cfg.d_mlp, tiny.cfg.d_model)
    with pytest.raises(LoRAError, match="q_proj"):  # the message lists what exists
        LoRA.for_model(tiny, modules=("query",))
    with pytest.raises(LoRAError, match="out of range"):
        LoRA.for_model(tiny, layers=[9])


def test_fresh_lora_changes_nothing_and_a_trained_one_equals_the_merged_weight(tiny):
    with torch.no_grad():
        base = tiny(TOKENS)
    lora = LoRA.for_model(tiny, modules=("v_proj",), rank=2)
    with torch.no_grad(), lora.applied(tiny):
        assert torch.equal(tiny(TOKENS), base)
    randomized(lora)
    name = "model.layers.0.self_attn.v_proj"
    module = linear_modules(tiny)[name]
    delta = lora.delta(name)
    x = torch.randn(3, module.in_features)
    merged = torch.nn.functional.linear(
        x, module.weight + delta.scaling * delta.up @ delta.down, module.bias
    )
    with torch.no_grad(), lora.applied(tiny):
        assert torch.allclose(module(x), merged, atol=1e-5)
        assert not torch.allclose(tiny(TOKENS), base)
    with torch.no_grad():
        assert torch.equal(tiny(TOKENS), base)  # removed when the block ends


def test_lora_is_removed_on_error(tiny):
    lora = randomized(LoRA.for_model(tiny, rank=2))
    with torch.no_grad():
        base = tiny(TOKENS)
    with pytest.raises(RuntimeError, match="boom"):
        with lora.applied(tiny):
            raise RuntimeError("boom")
    for name in lora.shapes:
        assert not linear_modules(tiny)[name]._forward_hooks
    with torch.no_grad():
        assert torch.equal(tiny(TOKENS), base)


def test_lora_decodes_the_same_with_and_without_cache(tiny):
    lora = randomized(LoRA.for_model(tiny, rank=2), seed=1)
    prompts = ["12+34=", "5+6="]
    with lora.applied(tiny):
        cached = generate(tiny, prompts, max_new_tokens=6, stop_at_eos=False)
        uncached = generate(tiny, prompts, max_new_tokens=6, stop_at_eos=False, use_cache=False)
        single = generate(tiny, prompts[1:], max_new_tokens=6, stop_at_eos=False)
    plain = generate(tiny, prompts, max_new_tokens=6, stop_at_eos=False)
    assert cached.tokens == uncached.tokens
    assert cached.tokens[1] == single.tokens[0]
    assert cached.tokens != plain.tokens


def test_training_a_lora_moves_only_its_own_parameters(tiny):
    before = {n: p.detach().clone() for n, p in tiny.named_parameters()}
    lora = LoRA.for_model(tiny, rank=2)
    pairs = [Pair(f"{a}+{a}=", f"{2 * a}") for a in range(8)]
    result = train(tiny, pairs, lora=lora, learning_rate=1e-2, progress=False)
    assert result.meta["lora"]["rank"] == 2
    assert any(float(d.up.detach().abs().sum()) > 0 for d in lora.deltas.values())
    for name, p in tiny.named_parameters():
        assert torch.equal(p, before[name]) and p.grad is None


def test_save_load_and_mismatches(tiny, tmp_path):
    lora = randomized(LoRA.for_model(tiny, rank=2, alpha=4.0))
    folder = checkpoints.save(tmp_path / "lora", tiny, lora=lora)
    loaded = checkpoints.load(folder, tiny, kind="lora")
    assert loaded.rank == 2 and loaded.alpha == 4.0
    for key, value in lora.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value)
    with pytest.raises(EditError, match="not 'red'"):
        checkpoints.load(folder, tiny, kind="red")
    wider = tiny_model("qwen2", n_layers=2, d_model=48, seed=5)
    with pytest.raises(EditError, match="expects"):
        checkpoints.load(folder, wider, allow_other_model=True)
    deeper = tiny_model("qwen2", n_layers=1, d_model=32, seed=5)
    with pytest.raises(LoRAError, match="no linear layer"):
        load_lora(folder, deeper)
    (folder / "tensors.safetensors").write_bytes(b"not a tensor file")
    with pytest.raises(LoRAError, match="corrupt"):
        load_lora(folder)
    with pytest.raises(ValueError, match="either edits or a LoRA"):
        checkpoints.save(tmp_path / "both", tiny)
    save_lora(tmp_path / "plain", lora)
    assert load_lora(tmp_path / "plain").shapes == lora.shapes
