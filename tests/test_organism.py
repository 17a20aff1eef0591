"""The shipped adder organism loads as a bridge, still adds, and the bridge matches Hugging Face."""

from __future__ import annotations

import pytest
import torch

from interp.models.adder import (
    ADDER_PROMPT,
    DEFAULT_ADDER_PATH,
    adder_tokenizer,
    load_adder,
    sample_problems,
    teacher_forced_accuracy,
    teacher_forced_batch,
)

FRESH_SEED = 4242  # not the training run's held-out seed


@pytest.fixture(scope="module")
def adder():
    """The shipped organism, booted once for the module."""
    return load_adder()


def test_tokenizer_is_character_level_without_special_tokens() -> None:
    """Prompt positions are fixed only if each character is one token and nothing is prepended."""
    tokenizer = adder_tokenizer()
    prompt = ADDER_PROMPT.format(a=1234, b=5678)
    ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    assert len(ids) == len(prompt) == 10
    assert tokenizer(prompt)["input_ids"] == ids
    assert tokenizer.decode(ids) == prompt


def test_bridge_is_named_and_in_eval_mode(adder) -> None:
    """Downstream code identifies the organism by name and expects deterministic forwards."""
    assert adder.interp_name == "adder4"
    assert not adder.training
    prompt = ADDER_PROMPT.format(a=1234, b=5678)
    assert adder.to_tokens(prompt).tolist() == [adder_tokenizer()(prompt)["input_ids"]]


def test_greedy_accuracy_on_fresh_problems(adder) -> None:
    """Teacher-forced argmax on 300 fresh problems gets every answer digit and `<eos>` right."""
    problems = sample_problems(300, seed=FRESH_SEED)
    accuracy = teacher_forced_accuracy(lambda ids: adder(ids), adder.tokenizer, problems)
    assert accuracy >= 0.98, accuracy


def test_bridge_logits_match_hugging_face(adder) -> None:
    """The bridge adds hooks, not arithmetic: its logits are the HF model's."""
    ids, _ = teacher_forced_batch(adder.tokenizer, sample_problems(16, seed=FRESH_SEED + 1))
    with torch.no_grad():
        bridge_logits = adder(ids)
        hf_logits = adder.original_model(input_ids=ids).logits
    torch.testing.assert_close(bridge_logits, hf_logits, rtol=1e-5, atol=1e-5)


def test_missing_folder_says_how_to_train(tmp_path) -> None:
    """A checkout without the weights points at the training script instead of a deep HF error."""
    with pytest.raises(FileNotFoundError, match="train_adder.py"):
        load_adder(tmp_path / "nowhere")
    assert DEFAULT_ADDER_PATH.name == "adder4"
