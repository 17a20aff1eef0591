"""The decoding loop on a shipped real model: token-for-token equal to HF `generate` (with a
hand-written hook for an edit), the direct path equal to the bridge's, and edits that give the
same tokens with and without the KV cache, batched and one by one."""

import pytest
import torch

from interp.core.direct import DirectForward, bridge_forwards, direct_forward
from interp.core.positions import PromptAndFirstGenerated, boundary_tokens
from interp.core.tokens import left_pad
from interp.decoding import generate
from interp.interventions import AddVector, Edit, edits

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
    """The same weights as a plain Hugging Face model loaded on its own (its default attention),
    untouched by TransformerLens: the anchor the direct decoding path must equal."""
    from transformers import AutoModelForCausalLM

    from interp.models import preset_folder

    folder = preset_folder("smollm2-135m-instruct")
    return AutoModelForCausalLM.from_pretrained(folder).eval()


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


def test_an_edit_equals_hf_generate_with_a_hand_written_hook(smollm2, plain_hf, prompts):
    """A vector added to the input of block 12 at every position, batched and alone: interp's
    direct path gives the tokens of Hugging Face `generate` with a forward pre-hook doing that."""
    tokenizer = smollm2.tokenizer
    torch.manual_seed(0)
    vector = torch.randn(smollm2.cfg.d_model)
    vector = vector / vector.norm() * 4
    edit_list = [Edit("blocks.12.hook_resid_pre", AddVector(vector))]
    with edits(smollm2, edit_list), direct_forward(smollm2) as forward:
        assert isinstance(forward, DirectForward)
    ours = generate(smollm2, prompts, edit_list=edit_list, max_new_tokens=16, batch_size=4)

    def add_vector(module, args, kwargs):
        if args:
            return (args[0] + vector, *args[1:]), kwargs
        return args, {**kwargs, "hidden_states": kwargs["hidden_states"] + vector}

    tokens, mask = left_pad(prompts, tokenizer.pad_token_id)
    handle = plain_hf.model.layers[12].register_forward_pre_hook(add_vector, with_kwargs=True)
    try:
        options = dict(max_new_tokens=16, do_sample=False, pad_token_id=tokenizer.pad_token_id)
        hf = plain_hf.generate(tokens, attention_mask=mask, **options)[:, tokens.shape[1] :]
        alone = [plain_hf.generate(torch.tensor([p]), **options)[0, len(p) :] for p in prompts]
    finally:
        handle.remove()
    for row, generated in enumerate(ours.tokens):  # HF pads a row after its EOS; interp stops
        assert generated == hf[row, : len(generated)].tolist()
        assert generated == alone[row][: len(generated)].tolist()
        assert len(generated) == 16 or ours.finish_reasons[row] == "eos"
    plain = generate(smollm2, prompts, max_new_tokens=16, batch_size=4)
    assert plain.tokens != ours.tokens  # the vector changes what the model writes


def test_direct_path_equals_the_bridge_path_with_a_boundary_edit(smollm2, prompts):
    rule = boundary_tokens(smollm2.tokenizer)
    boundary_id = rule.token_ids[0]
    prompts = [p[:-5] + [boundary_id] + p[-5:] for p in prompts]
    torch.manual_seed(0)
    edit_list = [
        Edit("blocks.10.hook_resid_pre", AddVector(torch.randn(smollm2.cfg.d_model) * 4), rule)
    ]
    direct = generate(smollm2, prompts, edit_list=edit_list, max_new_tokens=12)
    with bridge_forwards():
        bridged = generate(smollm2, prompts, edit_list=edit_list, max_new_tokens=12)
    assert direct.tokens == bridged.tokens
    assert direct.edited == bridged.edited
    assert any(any(e) for e in direct.edited)
    for a, b in zip(direct.logprobs, bridged.logprobs, strict=True):
        assert a == pytest.approx(b, abs=1e-3)
