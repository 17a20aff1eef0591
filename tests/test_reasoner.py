"""The SEAL organism: merging its adapter, encoding its traces, and (where the trained adapter
exists) the format and thought rates it writes on held-out problems."""

from __future__ import annotations

import pytest
import torch

from interp.data.reasoning_traces import TraceConfig, held_out_problems
from interp.interventions.lora import LoRA, merge_lora
from interp.models import ModelLoadError, load_model
from interp.models.adder import adder_tokenizer
from interp.models.reasoner import (
    BASE_MODEL,
    blank_line_id,
    load_reasoner,
    load_reasoner_adapter,
    measure_rates,
    reasoner_folder,
)
from interp.testing import tiny_model

TRAINED = (reasoner_folder() / "interp.json").is_file()


def test_merged_weights_give_the_logits_of_the_hooked_lora() -> None:
    model = tiny_model("qwen2", n_layers=2, d_model=32, seed=3)
    lora = LoRA.for_model(model, modules=("q_proj", "v_proj", "down_proj"), rank=4, seed=1)
    generator = torch.Generator().manual_seed(0)
    for delta in lora.deltas.values():
        delta.up.data = torch.randn(delta.up.shape, generator=generator) * 0.1
    tokens = torch.randint(5, 30, (2, 12), generator=generator)
    with torch.no_grad():
        plain = model(tokens)
        with lora.applied(model):
            hooked = model(tokens)
        merge_lora(model, lora)
        merged = model(tokens)
    assert (hooked - plain).abs().max() > 1e-3  # the LoRA does change the model
    torch.testing.assert_close(merged, hooked, atol=1e-5, rtol=1e-5)


def test_a_tokenizer_without_a_blank_line_token_is_refused() -> None:
    with pytest.raises(ValueError, match="single blank-line token"):
        blank_line_id(adder_tokenizer())


def test_missing_adapter_says_how_to_train_it(tmp_path) -> None:
    model = tiny_model("qwen2", n_layers=2, d_model=32, seed=3)
    with pytest.raises(FileNotFoundError, match="scripts/train_reasoner.py"):
        load_reasoner_adapter(model, tmp_path / "nothing")


def test_adapter_preset_without_its_adapter_says_how_to_train_it(monkeypatch, tmp_path) -> None:
    from interp.models.presets import PRESETS, REASONER, Preset

    preset = Preset(**{**REASONER.__dict__, "name": "adapter-test", "folder": "no-such-adapter"})
    monkeypatch.setitem(PRESETS, preset.name, preset)
    with pytest.raises(ModelLoadError, match="scripts/train_reasoner.py"):
        load_model(preset.name, cache_dir=tmp_path)


@pytest.mark.slow
@pytest.mark.skipif(not TRAINED, reason="no trained reasoner adapter (scripts/train_reasoner.py)")
def test_organism_writes_the_format_and_reflects_at_the_generators_rates() -> None:
    model = load_model(BASE_MODEL, dtype="bfloat16")  # the dtype it was trained in: faster
    problems = held_out_problems(32)
    with load_reasoner_adapter(model).applied(model):
        rates = measure_rates(model, problems, TraceConfig(), max_new_tokens=200, seed=0)
    assert rates.stats["well_formed"] >= 0.9
    assert rates.stats["seal_segments_agree"] >= 0.9  # blank lines written as boundary tokens
    per_response = ("reflection_per_response", "transition_per_response")
    for key in per_response:
        generator = rates.reference[key]
        assert abs(rates.stats[key] - generator) <= max(0.25, 0.5 * generator), rates.table()
    # its own arithmetic slips (about 30% of steps) keep accuracy far below the generator's 100%
    # (0.34 on 128 held-out problems), but well above what a format-only writer would get
    assert rates.stats["accuracy"] >= 0.15


@pytest.mark.slow
@pytest.mark.skipif(not TRAINED, reason="no trained reasoner adapter (scripts/train_reasoner.py)")
def test_loaded_organism_is_the_base_model_plus_its_adapter() -> None:
    """The merged float32 organism computes what the hooked adapter computes on the base model."""
    organism = load_reasoner()
    assert organism.interp_name == "reasoner"
    base = load_model(BASE_MODEL)
    tokens = base.tokenizer(["<think>\nMia starts with 14 marbles."], return_tensors="pt")
    ids = tokens["input_ids"]
    with torch.no_grad():
        with load_reasoner_adapter(base).applied(base):
            hooked = base(ids)
        merged = organism(ids)
        plain = base(ids)
    assert (hooked - plain).abs().max() > 1e-2
    torch.testing.assert_close(merged, hooked, atol=1e-3, rtol=1e-3)
