"""The decoding loop on a shipped real model: token-for-token equal to HF `generate`, and edits
that give the same tokens with and without the KV cache, batched and one by one."""

import pytest
import torch

from interp.core.positions import PromptAndFirstGenerated, boundary_tokens
from interp.core.tokens import left_pad
from interp.decoding import generate
from interp.interventions import AddVector, Edit

pytestmark = pytest.mark.slow

QUESTIONS = [
    "What is 17 + 25?",
    "Name a colour.",
    "Here are two notes.\n\nFirst: cats sleep a lot.\n\nSecond: dogs bark. Summarise them.",
    "Count from 1 to 5.",
]


def chat(tokenizer, text):
    return tokenizer.apply_chat_template(
        [{"role": "user", "content": text}], tokenize=False, add_generation_prompt=True
    )


@pytest.fixture(scope="module")
def plain_hf():
    """The same weights as a plain Hugging Face model, untouched by TransformerLens."""
    from transformers import AutoModelForCausalLM

    from interp.models import preset_folder

    folder = preset_folder("smollm2-135m-instruct")
    return AutoModelForCausalLM.from_pretrained(folder, attn_implementation="eager").eval()


@pytest.fixture(scope="module")
def prompts(smollm2):
    return [
        smollm2.tokenizer.encode(chat(smollm2.tokenizer, q), add_special_tokens=False)
        for q in QUESTIONS
    ]


def test_greedy_equals_hf_generate_token_for_token(smollm2, plain_hf, prompts):
    tokenizer = smollm2.tokenizer
    ours = generate(smollm2, prompts, max_new_tokens=24, batch_size=4)
    tokens, mask = left_pad(prompts, tokenizer.pad_token_id)
    hf = plain_hf.generate(
        tokens,
        attention_mask=mask,
        max_new_tokens=24,
        do_sample=False,
        pad_token_id=tokenizer.pad_token_id,
    )
    for row, generated in enumerate(ours.tokens):
        expected = hf[row, tokens.shape[1] :].tolist()
        expected = expected[: len(generated)]
        assert generated == expected
        if ours.finish_reasons[row] == "length":
            assert len(generated) == 24
    for prompt, batched in zip(prompts, ours.tokens):
        alone = plain_hf.generate(
            torch.tensor([prompt]),
            max_new_tokens=24,
            do_sample=False,
            pad_token_id=tokenizer.pad_token_id,
        )[0, len(prompt) :].tolist()
        assert batched == alone[: len(batched)]


@pytest.mark.parametrize("rule_name", ["boundary", "first_k"])
def test_edits_give_the_same_tokens_with_and_without_cache(smollm2, prompts, rule_name):
    tokenizer = smollm2.tokenizer
    rule = boundary_tokens(tokenizer) if rule_name == "boundary" else PromptAndFirstGenerated(4)
    torch.manual_seed(0)
    vector = torch.randn(smollm2.cfg.d_model) * 4
    edit_list = [Edit("blocks.10.hook_resid_pre", AddVector(vector), rule)]
    if rule_name == "boundary":
        # SmolLM2 writes a blank line as two "\n" tokens, so put one of its boundary tokens
        # (a token whose text contains a blank line) into each prompt
        boundary_id = rule.token_ids[0]
        prompts = [p[:-5] + [boundary_id] + p[-5:] for p in prompts]
    prompts = prompts[1:]
    cached = generate(smollm2, prompts, edit_list=edit_list, max_new_tokens=12)
    uncached = generate(smollm2, prompts, edit_list=edit_list, max_new_tokens=12, use_cache=False)
    singles = [
        generate(smollm2, [p], edit_list=edit_list, max_new_tokens=12).tokens[0] for p in prompts
    ]
    assert cached.tokens == uncached.tokens == singles
    assert cached.edited == uncached.edited
    assert any(any(e) for e in cached.edited)
    plain = generate(smollm2, prompts, max_new_tokens=12)
    assert plain.tokens != cached.tokens  # the edit does something
